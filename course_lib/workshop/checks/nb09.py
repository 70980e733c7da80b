"""Checks for notebook 09 (editing). References come from course_lib.diffusion.editing (SDEdit),
course_lib.diffusion.conditioning (RePaint's resampling) and course_lib.metrics.prediction; every case
draws its noise from a fresh seeded generator, so the learner's loops are compared with the
course's on the same noise."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import check_idea, seeded
from course_lib.workshop.checks.diagnose import OFF_BY_ONE_T
from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.conditioning import conditional_sample
from course_lib.diffusion.editing import sdedit
from course_lib.diffusion.forward import eps_from_x0, q_sample
from course_lib.diffusion.samplers import ddim_step, ddim_timesteps
from course_lib.metrics.prediction import interpolate_frames
from course_lib.diffusion.schedules import make_schedule


HINTS = {
    "9.1": ("SDEdit edits by forgetting: noise the clip part of the way (strength says how far along the steps), "
            "then let the model denoise it back to data from there; strength 0 changes nothing.",
            "t0 = round(strength · (T − 1)); x_t0 = q_sample of x at t0 with noise from the generator; then DDIM "
            "(η = 0, no clipping) from t0 down to clean data (Meng et al. 2022).",
            "visit the n listed steps from t0 down, n in proportion to t0 + 1 (steps for the whole chain); "
            "strength 0 returns x unchanged."),
    "9.2": ("fill the unknown part by sampling while pasting the known part, noised to the current level, after "
            "every step; RePaint redoes each step r times, jumping back up with the forward process in between, so "
            "the two parts agree.",
            "per step t -> t_next: x = ddim_step (η = 1), then x = mask · known noised to t_next + (1 − mask) · x; "
            "unless it is the last round: jump back up, x = √(ᾱ_t/ᾱ_t_next) · x + √(1 − ᾱ_t/ᾱ_t_next) · noise, "
            "and redo (Lugmayr et al. 2022).",
            "r rounds per step, none of them after the last step to clean data; paste the known part clean at the end."),
    "9.3": ("each damaged frame is a blend of the nearest intact frame before it and the nearest after it, weighted by "
            "closeness; with intact frames on one side only, copy the nearest.",
            "for damaged j between intact a < j < b: ((b − j) · x_a + (j − a) · x_b) / (b − a)."),
}


def reference_sdedit(model_fn, x, strength, schedule, steps, generator):
    """SDEdit (Meng et al. 2022) with deterministic DDIM and no clipping, via course_lib.diffusion.editing.sdedit."""
    return sdedit(model_fn, x, strength, schedule, steps=steps, generator=generator, clip_x0=False)


def reference_repaint(model_fn, known, mask, schedule, steps, resample, generator):
    """The replacement method with RePaint's resampling (Lugmayr et al. 2022), DDIM with η = 1 and no clipping,
    via course_lib.diffusion.conditioning.conditional_sample(..., resample=r)."""
    return conditional_sample(model_fn, known, mask, schedule, method="replacement", steps=steps, eta=1.0,
                              resample=resample, generator=generator, clip_x0=False)


RHO, SPREAD = 0.9, 0.5  # a correlated 2D Gaussian x0 ~ N(0, Σ), Σ = SPREAD²[[1, ρ], [ρ, 1]]


def gaussian_2d_denoiser(schedule):
    """The exact ε-model of x0 ~ N(0, Σ): E[x0 | x_t] = √ᾱ Σ (ᾱΣ + (1 − ᾱ)I)⁻¹ x_t (points (B, 2))."""
    sigma = SPREAD**2 * torch.tensor([[1.0, RHO], [RHO, 1.0]])

    def model_fn(x_t, t):
        ab = schedule.alpha_bars[t[0]]
        x0 = x_t @ (ab.sqrt() * sigma @ torch.linalg.inv(ab * sigma + (1 - ab) * torch.eye(2))).T
        return eps_from_x0(x_t, t, x0, schedule)
    return model_fn


def _video_denoiser(x_t, t):
    """A fixed nonlinear stand-in for a video denoiser: mixes each frame with the previous one."""
    scale = (1 + t.float() / 50).view(-1, *[1] * (x_t.dim() - 1))
    return torch.tanh(0.6 * x_t + 0.3 * torch.roll(x_t, 1, dims=1)) * 0.8 / scale


def _call_with_seed(fn):
    """The case's last argument is a seed; the function gets a fresh generator made from it."""
    return lambda *args: fn(*args[:-1], seeded(args[-1]))


def reference_interpolate_frames(video, damaged):
    """Linear blend of the nearest intact frames, via course_lib.metrics.prediction.interpolate_frames."""
    return interpolate_frames(video, damaged)


# --- 9.1 SDEdit --------------------------------------------------------------------------------------

def _strength_trades_faithfulness(learner_fn) -> str | None:
    """Strength 0 returns the input; the stronger the edit, the further the result moves from it."""
    schedule, x = make_schedule("linear", 200), torch.tensor([[0.8, -0.8]]).expand(500, 2).clone()
    model_fn = gaussian_2d_denoiser(schedule)
    same = learner_fn(model_fn, x, 0.0, schedule, 20, seeded(0))
    if not torch.equal(same, x):
        return "strength 0 must return the clip unchanged (no noise, no steps)"
    moved = [(learner_fn(model_fn, x, s, schedule, 20, seeded(0)) - x).norm(dim=1).mean().item() for s in (0.1, 0.5, 0.9)]
    if not moved[0] < moved[1] < moved[2]:
        return (f"edits at strength 0.1, 0.5, 0.9 moved the points by {[round(m, 3) for m in moved]}: a stronger edit "
                "starts from more noise and should move further")
    return None


def _sdedit_truncated(model_fn, x, strength, schedule, steps, seed):
    """SDEdit started at int(strength · (T − 1)), rounded down."""
    t0 = int(strength * (schedule.num_steps - 1))
    return reference_sdedit(model_fn, x, t0 / (schedule.num_steps - 1), schedule, steps, seeded(seed))


def _sdedit_with(model_fn, x, strength, schedule, steps, seed, start_scale=None, every_step=False, from_top=False):
    """SDEdit written out (q_sample, then DDIM steps) with one mistake: t0 = strength·``start_scale``, ``steps``
    steps whatever the strength, or the steps spaced over the whole chain instead of 0 … t0."""
    T, generator = schedule.num_steps, seeded(seed)
    if strength == 0:
        return x.clone()
    t0 = min(round(strength * (T - 1 if start_scale is None else start_scale)), T - 1)
    x_t = q_sample(x, t0, schedule, generator=generator)
    n = min(steps, t0 + 1) if every_step else max(1, round(steps * (t0 + 1) / T))
    timesteps = ddim_timesteps(T, n) if from_top else ddim_timesteps(t0 + 1, n)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        x_t = ddim_step(model_fn, x_t, t, t_next, schedule, clip_x0=False).x
    return x_t


SDEDIT_MISTAKES = {
    "truncated: int() rounds down, round() to the nearest step": _sdedit_truncated,
    f"{OFF_BY_ONE_T}: t0 = strength·T where strength·(T − 1) belongs (the last code step is T − 1)":
        lambda model_fn, x, strength, schedule, steps, seed: _sdedit_with(
            model_fn, x, strength, schedule, steps, seed, start_scale=schedule.num_steps),
    "`steps` steps whatever the strength: a weaker edit takes proportionally fewer":
        lambda *a: _sdedit_with(*a, every_step=True),
    "the steps spaced over the whole chain: space them over 0 … t0 only":
        lambda *a: _sdedit_with(*a, from_top=True),
}


def check_sdedit(learner_fn) -> bool:
    g = torch.Generator().manual_seed(91)
    linear, cosine = make_schedule("linear", 100), make_schedule("cosine", 50)
    cases = [((gaussian_2d_denoiser(linear), torch.randn(6, 2, generator=g), 0.5, linear, 20, 910), {}),
             ((_video_denoiser, torch.rand(2, 3, 1, 4, 4, generator=g) * 2 - 1, 0.35, cosine, 10, 911), {}),
             ((_video_denoiser, torch.rand(1, 4, 1, 3, 3, generator=g) * 2 - 1, 1.0, linear, 8, 912), {}),
             ((_video_denoiser, torch.rand(2, 2, 1, 3, 3, generator=g) * 2 - 1, 0.02, cosine, 50, 913), {})]
    return check_idea("9.1", learner_fn, reference_sdedit, cases, "sdedit", before=[_strength_trades_faithfulness],
                      call=_call_with_seed, done="keeps more of the clip the weaker the edit", variants=SDEDIT_MISTAKES)


# --- 9.2 RePaint's resampling loop ----------------------------------------------------------------------

class _CountingModel:
    """Wraps a model_fn and counts its calls."""

    def __init__(self, model_fn):
        self.model_fn, self.calls = model_fn, 0

    def __call__(self, x_t, t):
        self.calls += 1
        return self.model_fn(x_t, t)


def _rounds_and_known_part(learner_fn) -> str | None:
    """r rounds at every step but the last, the known part back exactly, and r = 1 is plain replacement."""
    schedule = make_schedule("linear", 100)
    known = torch.tensor([[0.8, 0.0]]).expand(50, 2).clone()
    mask = torch.tensor([[1.0, 0.0]])
    for resample in (1, 3):
        model = _CountingModel(gaussian_2d_denoiser(schedule))
        x = learner_fn(model, known, mask, schedule, 5, resample, seeded(1))
        if model.calls != 4 * resample + 1:
            return (f"5 steps with r = {resample} called the model {model.calls} times; RePaint takes each step r times "
                    f"(redoing it after a jump back up), except the last step to clean data: {4 * resample + 1} calls")
        if not torch.equal(x[:, 0], known[:, 0]):
            return "the known part must come back exactly (paste it clean after the last step)"
    return None


def _resampling_harmonises(learner_fn) -> str | None:
    """On a correlated Gaussian, resampling pulls the unknown coordinate towards its true conditional mean ρ·a."""
    schedule = make_schedule("linear", 200)
    known, mask, truth = torch.tensor([[0.8, 0.0]]).expand(3000, 2).clone(), torch.tensor([[1.0, 0.0]]), RHO * 0.8
    means = [learner_fn(gaussian_2d_denoiser(schedule), known, mask, schedule, 20, r, seeded(2))[:, 1].mean().item()
             for r in (1, 4)]
    if not abs(means[1] - truth) < 0.7 * abs(means[0] - truth):
        return (f"given x0[0] = 0.8 the other coordinate should average {truth:.2f}; yours averaged {means[0]:.2f} with "
                f"r = 1 and {means[1]:.2f} with r = 4: resampling should bring it closer")
    return None


def _no_resampling(model_fn, known, mask, schedule, steps, resample, seed):
    return reference_repaint(model_fn, known, mask, schedule, steps, 1, seeded(seed))


def _repaint_with(model_fn, known, mask, schedule, steps, resample, seed, jump=True, known_at_t=False,
                  jump_from_clean=False):
    """RePaint written out (DDIM with η = 1, the known part pasted, a jump back up between rounds) with one mistake:
    no jump between rounds, the known part noised to t instead of t_next, or the jump taken with ᾱ_t (from clean
    data) instead of ᾱ_t / ᾱ_next."""
    generator, alpha_bars = seeded(seed), schedule.alpha_bars
    x = torch.randn(known.shape, generator=generator)
    timesteps = ddim_timesteps(schedule.num_steps, steps)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        rounds = resample if t_next >= 0 else 1
        for u in range(rounds):
            step = ddim_step(model_fn, x, t, t_next, schedule, eta=1.0, generator=generator, clip_x0=False).x
            known_now = known if t_next < 0 else q_sample(known, t if known_at_t else t_next, schedule,
                                                          generator=generator)
            x = mask * known_now + (1 - mask) * step
            if u + 1 < rounds and jump:
                ratio = alpha_bars[t] if jump_from_clean else alpha_bars[t] / alpha_bars[t_next]
                x = ratio.sqrt() * x + (1 - ratio).sqrt() * torch.randn(x.shape, generator=generator)
    return x


REPAINT_MISTAKES = {
    "each step taken once: redo it resample times, jumping back up in between": _no_resampling,
    "no jump back up between the rounds: renoise x_next to step t before redoing the step":
        lambda *a: _repaint_with(*a, jump=False),
    f"{OFF_BY_ONE_T}: the known part noised to step t; it joins x_next, so noise it to t_next":
        lambda *a: _repaint_with(*a, known_at_t=True),
    "the jump back up taken from clean data (ᾱ_t): it goes from step t_next back up to t":
        lambda *a: _repaint_with(*a, jump_from_clean=True),
}


def check_repaint(learner_fn) -> bool:
    g = torch.Generator().manual_seed(92)
    linear, cosine = make_schedule("linear", 100), make_schedule("cosine", 60)
    video = torch.rand(2, 4, 1, 3, 3, generator=g) * 2 - 1
    frames = torch.zeros(1, 4, 1, 1, 1)
    frames[:, :2] = 1
    square = torch.ones(1, 1, 1, 3, 3)
    square[..., 1, 1] = 0
    cases = [((gaussian_2d_denoiser(linear), torch.randn(5, 2, generator=g), torch.tensor([[1.0, 0.0]]), linear, 6, 3, 920), {}),
             ((_video_denoiser, video, frames, cosine, 5, 2, 921), {}),
             ((_video_denoiser, video, square, linear, 4, 1, 922), {}),
             ((_video_denoiser, video, square, cosine, 3, 4, 923), {})]
    return check_idea("9.2", learner_fn, reference_repaint, cases, "repaint",
                      before=[_rounds_and_known_part], after=[_resampling_harmonises], call=_call_with_seed,
                      done="redoes each step r times and brings a Gaussian's conditional mean closer",
                      variants=REPAINT_MISTAKES)


def check_interpolate_frames(learner_fn) -> bool:
    clips = bouncing_shapes(2, frames=8, size=16, seed=93).video
    cases = [((clips, [3]), {}), ((clips, [2, 3, 4]), {}), ((clips, [0, 5]), {}), ((clips, [6, 7]), {}),
             ((clips[:1, :3], [1]), {})]
    mistakes = {"copied the nearest intact frame: blend the two neighbours": lambda video, damaged: _fill(video, damaged, "copy"),
                "the plain mean of the neighbours: weight each by its closeness":
                    lambda video, damaged: _fill(video, damaged, "mean")}
    return compare("9.3", learner_fn, reference_interpolate_frames, cases, "interpolate_frames", variants=mistakes)


def _fill(video: torch.Tensor, damaged: list[int], how: str) -> torch.Tensor:
    """Damaged frames filled with one mistake: a copy of the previous intact frame, or the plain mean of both neighbours."""
    out = video.clone()
    intact = [j for j in range(video.shape[1]) if j not in damaged]
    for j in damaged:
        before, after = [a for a in intact if a < j], [b for b in intact if b > j]
        if before and after and how == "mean":
            out[:, j] = (video[:, before[-1]] + video[:, after[0]]) / 2
        else:
            out[:, j] = video[:, before[-1]] if before else video[:, after[0]]
    return out
