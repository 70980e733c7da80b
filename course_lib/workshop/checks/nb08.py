"""Checks for notebook 08 (prediction and long videos). References come from course_lib.diffusion.conditioning,
course_lib.diffusion.forward and course_lib.diffusion.rollout; the denoisers are small fixed functions, so
every case is exact and fast."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.diagnose import OFF_BY_ONE_T
from course_lib.workshop.checks.behaviour import check_idea, seeded
from course_lib.diffusion.conditioning import _guided_x0
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.rollout import autoregressive_rollout
from course_lib.diffusion.schedules import make_schedule


HINTS = {
    "8.1": ("x_next sits at noise level t_next: give the known frames that same level (or none at the very end) and "
            "keep your own frames everywhere else.",
            "noise the known frames to t_next with q_sample (not to t); at t_next = -1 paste them clean; "
            "mask · known_now + (1 − mask) · x_next."),
    "8.2": ("nudge the clean-video estimate x̂0 towards the known frames, along the gradient of the reconstruction "
            "error taken with respect to x_t, so that it flows through the model.",
            "x0_hat = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t computed from x_t.requires_grad_(); grad = gradient of "
            "((known − x0_hat) · mask)².sum() with respect to x_t (not x0_hat).",
            "return x0_hat − weight · √ᾱ_t / 2 · grad (Ho et al. 2022, Eq. 7), detached."),
    "8.3": ("predict a chunk from the last frames you have, keep only the frames that are new, and repeat until the "
            "video is long enough; the predictor sees its past a little noised, the video keeps every frame clean.",
            "context = video[:, -keep:], noised to step context_noise with q_sample and the generator (not when "
            "context_noise = 0); chunk = predict(context, T) with T = first.shape[1] (Ho et al. 2022c).",
            "append chunk[:, keep:] (never the noised context), repeat while the video is shorter than total_frames, "
            "then cut it to total_frames."),
}


def reference_replace_known(x_next, known, mask, t_next, schedule, noise):
    """The replacement step: known part ← known noised to t_next (Ho et al. 2020, Eq. 4), clean at t_next = −1."""
    known_now = known if t_next < 0 else q_sample(known, t_next, schedule, noise=noise)
    return mask * known_now + (1 - mask) * x_next


def reference_guided_x0(model_fn, x_t, t, known, mask, schedule, weight):
    """Reconstruction guidance (Ho et al. 2022a, Eq. 7), via course_lib.diffusion.conditioning (no clipping, ε model)."""
    return _guided_x0(model_fn, x_t, t, known, mask, schedule, "eps", weight, clip_x0=False)


def reference_rollout(predict, first, total_frames, keep, schedule, context_noise, generator):
    """Autoregressive rollout (course_lib.diffusion.rollout.autoregressive_rollout) whose predictor sees its
    context through the forward process to step ``context_noise`` (conditioning augmentation, Ho et al.
    2022c, "Cascaded Diffusion Models"; 0: as it is), as course_lib.diffusion.rollout.predict_future does."""
    def predict_from_noised_past(past, frames):
        seen = q_sample(past, context_noise, schedule, generator=generator) if context_noise else past
        return predict(seen, frames)
    return autoregressive_rollout(predict_from_noised_past, first, total_frames, keep)


def _video_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    for b, t, k in [(2, 6, 3), (1, 4, 1), (3, 5, 4)]:
        known = torch.rand(b, t, 3, 4, 4, generator=g) * 2 - 1
        mask = torch.zeros(b, t, 1, 1, 1)
        mask[:, :k] = 1
        yield known, mask, g


def check_replace_known(learner_fn) -> bool:
    schedule = make_schedule("linear", 100)
    cases = []
    for (known, mask, g), t_next in zip(_video_cases(81), (40, 0, -1)):
        x_next = torch.randn(known.shape, generator=g)
        noise = torch.randn(known.shape, generator=g)
        cases.append(((x_next, known, mask, t_next, schedule, noise), {}))
    mistakes = {
        "at t_next = -1 the known frames go in clean, not noised":
            lambda x_next, known, mask, t_next, schedule, noise: mask * q_sample(known, max(t_next, 0), schedule, noise=noise)
            + (1 - mask) * x_next,
        "the known frames pasted clean at every step: noise them to t_next first":
            lambda x_next, known, mask, t_next, schedule, noise: mask * known + (1 - mask) * x_next,
        "the mask inverted: mask = 1 marks the known frames":
            lambda x_next, known, mask, t_next, schedule, noise: reference_replace_known(x_next, known, 1 - mask, t_next,
                                                                                         schedule, noise),
    }
    return compare("8.1", learner_fn, reference_replace_known, cases, "replace_known", variants=mistakes)


class _Denoiser:
    """A fixed, nonlinear ε-model: its Jacobian is far from the identity, so the gradient must go through it."""

    def __init__(self, channels: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.mix = torch.randn(channels, channels, generator=g) / channels**0.5

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shifted = torch.roll(x, 1, dims=1)  # the previous frame: couples known and unknown frames
        return torch.tanh(torch.einsum("btchw,dc->btdhw", x + shifted, self.mix)) * (1 + t.view(-1, 1, 1, 1, 1) / 100)


def _guided_with(model_fn, x_t, t, known, mask, schedule, weight, through_model=True, root=True, sign=-1):
    """Reconstruction guidance with one mistake: the gradient w.r.t. x̂0, no √ᾱ_t in the factor, a + sign."""
    x = x_t.detach().requires_grad_(True)
    ab = schedule.alpha_bars[t]
    x0 = (x - (1 - ab).sqrt() * model_fn(x, torch.full((x.shape[0],), t, dtype=torch.long))) / ab.sqrt()
    if through_model:
        (grad,) = torch.autograd.grad(((known - x0) * mask).pow(2).sum(), x)
    else:
        grad = -2 * (known - x0) * mask
    return (x0 + sign * weight * (ab.sqrt() if root else 1) / 2 * grad).detach()


GUIDANCE_MISTAKES = {
    "the gradient taken with respect to x̂0, not x_t: it must flow through the model":
        lambda *a: _guided_with(*a, through_model=False),
    "√ᾱ_t missing from the step size weight · √ᾱ_t / 2": lambda *a: _guided_with(*a, root=False),
    "wrong sign: step against the gradient of the error": lambda *a: _guided_with(*a, sign=1),
    "the mask ignored: only the known frames are compared":
        lambda model_fn, x_t, t, known, mask, *rest: _guided_with(model_fn, x_t, t, known, torch.ones_like(mask), *rest),
}


def check_guided_x0(learner_fn) -> bool:
    schedule = make_schedule("linear", 100)
    cases = []
    for (known, mask, g), t, w in zip(_video_cases(82), (70, 10, 40), (1.0, 3.0, 0.5)):
        x_t = torch.randn(known.shape, generator=g)
        cases.append(((_Denoiser(3, t), x_t, t, known, mask, schedule, w), {}))
    return compare("8.2", learner_fn, reference_guided_x0, cases, "guided_x0", variants=GUIDANCE_MISTAKES)


def _drifting_predictor(past: torch.Tensor, frames: int) -> torch.Tensor:
    """A deterministic stand-in for a model: each new frame = 0.9 · last + 0.1 · mean of the context + its index."""
    video = past
    while video.shape[1] < frames:
        nxt = 0.9 * video[:, -1] + 0.1 * past.mean(1) + 0.01 * video.shape[1]
        video = torch.cat([video, nxt[:, None]], 1)
    return video


def _call_rollout(fn):
    return lambda predict, first, total, keep, schedule, context_noise, seed: fn(
        predict, first, total, keep, schedule, context_noise, seeded(seed))


class _Recorder:
    """A predictor that remembers every context it is given and fills the future with whole numbers (the
    number of the call), so any noised frame that ends up in the video shows."""

    def __init__(self):
        self.contexts: list[torch.Tensor] = []

    def __call__(self, past: torch.Tensor, frames: int) -> torch.Tensor:
        self.contexts.append(past.clone())
        future = past.new_full((past.shape[0], frames - past.shape[1], *past.shape[2:]), float(len(self.contexts)))
        return torch.cat([past, future], dim=1)


def _keeps_clean_frames_and_noises_the_context(learner_fn) -> str | None:
    """The video keeps ``first`` and every new frame as predicted; only what the predictor *sees* is noised,
    to the level of step ``context_noise``; with context_noise = 0 it sees the clean frames."""
    schedule = make_schedule("linear", 100)
    first = torch.zeros(1, 4, 1, 16, 16)
    for context_noise in (0, 60):
        record = _Recorder()
        video = learner_fn(record, first, 10, 2, schedule, context_noise, seeded(3))
        if tuple(video.shape) != (1, 10, 1, 16, 16):
            return f"a rollout to 10 frames gave shape {tuple(video.shape)}"
        if not torch.equal(video[:, :4], first):
            return "the first frames of your video are not `first` as given: keep them exactly"
        if not record.contexts or any(c.shape[1] != 2 for c in record.contexts):
            return f"the predictor got contexts of {[c.shape[1] for c in record.contexts]} frames: give it the last `keep` = 2"
        clean = record.contexts[0] if context_noise == 0 else None
        if context_noise == 0 and not torch.equal(clean, first[:, -2:]):
            return "with context_noise = 0 the predictor must see the last frames exactly as they are"
        if context_noise:
            ab = schedule.alpha_bars[context_noise].item()
            seen = record.contexts[0]  # the clean last frames of `first` are 0: what it saw is pure noise · √(1 − ᾱ)
            if abs(seen.std().item() - (1 - ab) ** 0.5) > 0.1:
                return (f"with context_noise = {context_noise} the predictor saw frames with spread {seen.std():.2f}; "
                        f"q(x_t | x0) at that step gives √(1 − ᾱ_t) = {(1 - ab) ** 0.5:.2f}")
            if torch.allclose(record.contexts[0], record.contexts[-1]):
                return "every context got the same noise: draw fresh noise for each chunk"
            new = video[:, 4:]
            if (new - new.round()).abs().max() > 1e-6:
                return ("your video holds noised frames: the noise is only for what the predictor sees; append the "
                        "chunk's new frames, never the noised context")
    return None


def _rollout_with(predict, first, total_frames, keep, schedule, context_noise, seed, append_all=False,
                  from_start=False, cut=True, noised=True, step_shift=0, noise_once=False):
    """The rollout with one mistake: the whole chunk appended, context from the start, the video not cut,
    the context not noised, noised to step context_noise + step_shift, or one noise draw for every chunk."""
    generator, frames, video = seeded(seed), first.shape[1], first
    fixed = torch.randn(first[:, -keep:].shape, generator=generator) if noise_once else None
    while video.shape[1] < total_frames:
        context = video[:, :keep] if from_start else video[:, -keep:]
        if noised and context_noise:
            step = min(max(context_noise + step_shift, 0), schedule.num_steps - 1)
            context = q_sample(context, step, schedule, noise=fixed, generator=None if noise_once else generator)
        chunk = predict(context, frames)
        video = torch.cat([video, chunk if append_all else chunk[:, keep:]], 1)
    return video[:, :total_frames] if cut else video


ROLLOUT_MISTAKES = {
    "the whole chunk appended: its first keep frames are the context you already have":
        lambda *a: _rollout_with(*a, append_all=True),
    "the context taken from the start of the video: use its last keep frames": lambda *a: _rollout_with(*a, from_start=True),
    "the video not cut to total_frames": lambda *a: _rollout_with(*a, cut=False),
    "the context not noised: the predictor must see it at step context_noise (q_sample)":
        lambda *a: _rollout_with(*a, noised=False),
    f"{OFF_BY_ONE_T}: the context noised to step context_noise − 1; q_sample it at step context_noise":
        lambda *a: _rollout_with(*a, step_shift=-1),
    f"{OFF_BY_ONE_T}: the context noised to step context_noise + 1; q_sample it at step context_noise":
        lambda *a: _rollout_with(*a, step_shift=1),
    "one noise draw for every chunk: draw fresh noise for each chunk's context":
        lambda *a: _rollout_with(*a, noise_once=True),
}


def check_rollout(learner_fn) -> bool:
    g = torch.Generator().manual_seed(83)
    schedule = make_schedule("linear", 100)
    cases = []
    for number, (b, t, total, keep, context_noise) in enumerate([(2, 6, 20, 3, 0), (1, 4, 9, 1, 30), (2, 5, 5, 2, 50),
                                                                  (1, 8, 19, 6, 10), (2, 4, 11, 2, 99)]):
        first = torch.randn(b, t, 1, 3, 3, generator=g)
        cases.append(((_drifting_predictor, first, total, keep, schedule, context_noise, 830 + number), {}))
    return check_idea("8.3", learner_fn, reference_rollout, cases, "rollout (with conditioning augmentation)",
                      before=[_keeps_clean_frames_and_noises_the_context], call=_call_rollout,
                      done="keeps every frame clean while the predictor sees a noised past", variants=ROLLOUT_MISTAKES)
