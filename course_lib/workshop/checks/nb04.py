"""Checks for notebook 04 (image DDPM). References: course_lib.diffusion.forward, course_lib.diffusion.samplers,
course_lib.diffusion.guidance, course_lib.models.blocks and course_lib.models.embeddings."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import build_or_report, check_idea, seeded, with_seed
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.guidance import guided_denoiser
from course_lib.diffusion.samplers import ddim_sample, ddim_timesteps
from course_lib.diffusion.schedules import NoiseSchedule, make_schedule, schedule_from_betas
from course_lib.models.blocks import ResBlock
from course_lib.models.embeddings import TimestepEmbedding

NUM_CLASSES = 10


HINTS = {
    "4.1": ("noise each image to its own timestep in one jump (q_sample), ask the model for the noise, and score "
            "its guess against the noise you used.",
            "x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε with ᾱ_t = alpha_bars[t] reshaped to (B, 1, 1, 1); the model gets "
            "(x_t, t, labels) and its output is compared with the noise ε (mean squared error)."),
    "4.2": ("a DDIM sampler walks the listed steps from noise to data; at each one, ask the model twice (with the "
            "labels and with the null label), mix the two predictions with guidance, then take one DDIM step.",
            "ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, y) − ε̂(x_t, ∅)) (Ho & Salimans 2022); x̂0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t; "
            "x_next = √ᾱ_next·x̂0 + √(1 − ᾱ_next)·ε̂ (Song et al. 2021a, Eq. 12, η = 0).",
            "the null label is model.null_label; ᾱ_next = 1 after the last listed step, so the last jump lands on x̂0; "
            "no clipping."),
    "4.3": ("a residual block with a timestep: the time features become one shift per channel, added between the two "
            "convolutions, and the input comes back through the skip path at the end.",
            "emb = time_mlp([cos, sin] features of t); h = conv1(SiLU(norm1(x))) + emb_proj(SiLU(emb))[:, :, None, None]; "
            "h = conv2(SiLU(norm2(h))); return h + skip(x) (Ho et al. 2020, appendix B).",
            "the shift has shape (B, C_out, 1, 1): one number per channel per example, broadcast over the pixels."),
}


def _schedule_from_alpha_bars(alpha_bars: torch.Tensor) -> NoiseSchedule:
    """The schedule whose ᾱ_t are ``alpha_bars`` (T,), decreasing: β_t = 1 − ᾱ_t / ᾱ_{t−1}."""
    alpha_bars = alpha_bars.double().reshape(-1)
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    return schedule_from_betas(1 - alpha_bars / previous)


class StandInDenoiser(nn.Module):
    """An analytic stand-in for the U-Net: ε̂(x_t, t, y) = 0.6·x_t + 0.002·t + 0.05·y, per pixel.

    It needs ``y`` (like the class-conditional U-Net), and t and y change its output, so a loss
    computed with the wrong x_t, t or labels differs from the reference.
    """

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        return 0.6 * x + 0.002 * t.view(shape).float() + 0.05 * y.view(shape).float()


# --- references ---------------------------------------------------------------------------------

def reference_training_loss(model, x0: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                            alpha_bars: torch.Tensor) -> torch.Tensor:
    """‖ε − ε_θ(x_t, t, y)‖² averaged (Ho et al. 2020, Eq. 14), x_t from course_lib.diffusion.forward.q_sample (Eq. 4)."""
    x_t = q_sample(x0, t, _schedule_from_alpha_bars(alpha_bars), noise=noise)
    return F.mse_loss(model(x_t, t, labels), noise)


class GuidedStandIn(nn.Module):
    """A fixed nonlinear stand-in for a class-conditional U-Net: ε̂(x_t, t, y) = tanh(0.7·x_t + 0.002·t + 0.08·y).

    Its label K = 10 is the null label ("no class"), as in the course's denoisers; t and y change
    its output, so a sampler that asks at the wrong t or forgets a label differs from the reference.
    """

    num_classes = NUM_CLASSES
    null_label = NUM_CLASSES

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        return torch.tanh(0.7 * x + 0.002 * t.view(shape).float() + 0.08 * y.view(shape).float())


def reference_guided_ddim_sample(model, x, labels, w, timesteps, alpha_bars) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021a, Eq. 12, η = 0, no clipping) from the noise ``x`` over ``timesteps``,
    with classifier-free guidance ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, y) − ε̂(x_t, ∅)) (Ho & Salimans 2022), via
    course_lib's ddim_sample and guided_denoiser. ``timesteps`` are ``ddim_timesteps(T, steps)``."""
    schedule = _schedule_from_alpha_bars(alpha_bars)
    if list(timesteps) != ddim_timesteps(schedule.num_steps, len(timesteps)):
        raise ValueError("the check's timesteps must be ddim_timesteps(T, steps)")
    return ddim_sample(guided_denoiser(model, labels, w), x.shape, schedule, steps=len(timesteps), x_start=x,
                       clip_x0=False)


def reference_res_block_output(block: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """course_lib's TimestepEmbedding and ResBlock (Ho et al. 2020, appendix B) holding ``block``'s weights."""
    embed = TimestepEmbedding(block.time_dim, block.emb_proj.in_features)
    embed.mlp.load_state_dict(block.time_mlp.state_dict())
    res = ResBlock(block.conv1.in_channels, block.conv1.out_channels, block.emb_proj.in_features)
    res.load_state_dict({k: v for k, v in block.state_dict().items() if not k.startswith("time_mlp.")})
    return res(x, embed(t))


# --- common mistakes, each named by its diagnosis ------------------------------------------------

def _loss_with(model, x0, labels, t, noise, alpha_bars, target="eps", roots=True, shift=0, use_labels=True,
               reduction="mean"):
    """The ε loss with one mistake: another target, no square roots, ᾱ_{t−shift}, labels dropped, a sum."""
    ab = alpha_bars[(t - shift).clamp(min=0)].view(-1, *[1] * (x0.dim() - 1))
    x_t = (ab.sqrt() * x0 + (1 - ab).sqrt() * noise) if roots else (ab * x0 + (1 - ab) * noise)
    prediction = model(x_t, t, labels if use_labels else torch.zeros_like(labels))
    return F.mse_loss(prediction, noise if target == "eps" else x0, reduction=reduction)


_LOSS_MISTAKES = {
    "the prediction compared with x0, not with the noise ε": lambda *a: _loss_with(*a, target="x0"),
    "square roots missing in x_t: ᾱ_t where √ᾱ_t belongs": lambda *a: _loss_with(*a, roots=False),
    "off by one timestep (paper vs code index): ᾱ_{t−1} where ᾱ_t = alpha_bars[t] belongs":
        lambda *a: _loss_with(*a, shift=1),
    "the labels never reach the model": lambda *a: _loss_with(*a, use_labels=False),
    "a sum where the mean belongs": lambda *a: _loss_with(*a, reduction="sum"),
}



def _other_convention(model, x, labels, w, timesteps, alpha_bars):
    return reference_guided_ddim_sample(model, x, labels, w + 1, timesteps, alpha_bars)


def _reversed_guidance(model, x, labels, w, timesteps, alpha_bars):
    return reference_guided_ddim_sample(model, x, labels, 1 - w, timesteps, alpha_bars)


def _guided_ddim_with(model, x, labels, w, timesteps, alpha_bars, last_alpha_bar=None, clip=False):
    """Guided DDIM written out, with one mistake: ᾱ after the last step taken as ``last_alpha_bar`` (not 1), or
    x̂0 clipped to [−1, 1]."""
    null = torch.full_like(labels, model.null_label)
    timesteps = list(timesteps)
    for t, t_next in zip(timesteps, timesteps[1:] + [None]):
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        cond, uncond = model(x, tt, labels), model(x, tt, null)
        eps = uncond + w * (cond - uncond)
        a = alpha_bars[t]
        a_next = alpha_bars[t_next] if t_next is not None else (last_alpha_bar if last_alpha_bar is not None
                                                                 else torch.ones(()))
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x0 = x0.clamp(-1, 1) if clip else x0
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x


_GUIDED_MISTAKES = {
    "the other convention: yours is ours with w + 1 (Ho & Salimans write ε(y) + w·(ε(y) − ε(∅)))": _other_convention,
    "the direction reversed: move from ε(x_t, ∅) towards ε(x_t, y)": _reversed_guidance,
    "alpha_bars[-1] after the last step (a negative index wraps round): ᾱ_next = 1 there, so it lands on x̂0":
        lambda model, x, labels, w, timesteps, alpha_bars: _guided_ddim_with(
            model, x, labels, w, timesteps, alpha_bars, last_alpha_bar=alpha_bars[-1]),
    "x̂0 clipped to [−1, 1]: this sampler takes η = 0 and no clipping":
        lambda *a: _guided_ddim_with(*a, clip=True),
}

# --- checks ---------------------------------------------------------------------------------------

def _linear_alpha_bars(T: int = 1000) -> torch.Tensor:
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


def check_training_loss(learner_fn) -> bool:
    g = torch.Generator().manual_seed(41)
    alpha_bars = _linear_alpha_bars()
    model = StandInDenoiser()
    cases = []
    for shape in [(4, 1, 6, 6), (3, 1, 5, 7), (6, 1, 4, 4)]:
        b = shape[0]
        x0 = torch.rand(shape, generator=g) * 2 - 1
        labels = torch.randint(0, NUM_CLASSES, (b,), generator=g)
        t = torch.randint(0, len(alpha_bars), (b,), generator=g)
        cases.append(((model, x0, labels, t, torch.randn(shape, generator=g), alpha_bars), {}))
    t_ends = torch.tensor([0, 999])  # the first and the last step
    cases.append(((model, torch.ones(2, 1, 3, 3), torch.tensor([3, 7]), t_ends, torch.randn(2, 1, 3, 3, generator=g),
                   alpha_bars), {}))
    short = torch.linspace(0.95, 0.05, 8)  # a coarse 8-step schedule: indexing ᾱ one step off shows clearly
    cases.append(((model, torch.rand(5, 1, 4, 4, generator=g) * 2 - 1, torch.arange(5), torch.tensor([0, 2, 4, 6, 7]),
                   torch.randn(5, 1, 4, 4, generator=g), short), {}))
    return compare("4.1", learner_fn, reference_training_loss, cases, "training_loss", variants=_LOSS_MISTAKES)

# --- 4.2 classifier-free guidance inside a DDIM sampler ---------------------------------------------

def _guided_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    linear, short = _linear_alpha_bars(), make_schedule("linear", 100).alpha_bars
    # w = 3 first: at w = 0 or 1 some mistakes give the same numbers (ours with w + 1 = 1 − w at w = 0)
    for w, steps, alpha_bars, shape in [(3.0, 10, short, (4, 1, 4, 4)), (0.0, 5, short, (3, 1, 4, 4)),
                                        (1.0, 4, linear, (2, 1, 3, 5)), (7.5, 6, linear, (2, 1, 2, 2))]:
        x = torch.randn(shape, generator=g)
        labels = torch.randint(0, NUM_CLASSES, (shape[0],), generator=g)
        yield (GuidedStandIn(), x, labels, w, ddim_timesteps(len(alpha_bars), steps), alpha_bars), {}


class _Spy(GuidedStandIn):
    """The stand-in, noting for each call the timesteps and the labels it was asked with."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[list[int], set[int]]] = []

    def forward(self, x, t, y):
        self.calls.append((sorted(set(torch.as_tensor(t).flatten().tolist())), set(y.flatten().tolist())))
        return super().forward(x, t, y)


def _asks_both_at_every_step(learner_fn) -> str | None:
    """At each listed t, in order, the model is asked with the labels and with the null label."""
    spy, timesteps = _Spy(), [79, 59, 39, 19]
    labels = torch.tensor([2, 7])
    learner_fn(spy, torch.randn(2, 1, 3, 3, generator=seeded(0)), labels, 2.0, timesteps, make_schedule("linear", 80).alpha_bars)
    asked: dict[int, set[int]] = {}
    order = []
    for ts, ys in spy.calls:
        if len(ts) != 1:
            return f"one call got several timesteps {ts}: every image of the batch is at the same step t"
        if not order or order[-1] != ts[0]:
            order.append(ts[0])
        asked.setdefault(ts[0], set()).update(ys)
    if order != timesteps:
        shown = ", ".join(map(str, order[:6])) + (", …" if len(order) > 6 else "")
        return (f"with timesteps {timesteps} your sampler asked the model at t = {shown} ({len(order)} steps): "
                "visit each listed step once, in order")
    for t, ys in asked.items():
        if not {2, 7, NUM_CLASSES} <= ys:
            return (f"at t = {t} the model was asked with labels {sorted(ys)}: guidance needs the labels and the "
                    f"null label {NUM_CLASSES} (model.null_label) at every step")
    return None


def _w0_ignores_the_labels(learner_fn) -> str | None:
    """w = 0 is the unconditional model: the labels make no difference."""
    x, alpha_bars = torch.randn(2, 1, 3, 3, generator=seeded(1)), make_schedule("linear", 100).alpha_bars
    a, b = (learner_fn(GuidedStandIn(), x, torch.tensor(y), 0.0, ddim_timesteps(100, 5), alpha_bars)
            for y in ([1, 2], [8, 9]))
    if not torch.allclose(a, b, atol=1e-6):
        return "with w = 0 your samples change with the labels: w = 0 must give the unconditional model"
    return None


def check_guided_ddim_sample(learner_fn) -> bool:
    with torch.no_grad():
        return check_idea("4.2", learner_fn, reference_guided_ddim_sample, list(_guided_cases(42)),
                          "guided_ddim_sample", before=[_asks_both_at_every_step, _w0_ignores_the_labels],
                          done="asks for both predictions at every visited step", variants=_GUIDED_MISTAKES)


# --- 4.3 a ResBlock that reads the timestep ---------------------------------------------------------

def _res_block_specs():
    """(seed, in, out, time_dim, emb_dim, x shape (B, H, W)) of each case."""
    return [(430, 4, 8, 16, 32, (2, 5, 5)), (431, 8, 8, 8, 16, (3, 4, 6)), (432, 1, 4, 32, 64, (2, 3, 3))]


def _build(block_class, seed: int, cin: int, cout: int, time_dim: int, emb_dim: int) -> nn.Module:
    return with_seed(seed, lambda: block_class(cin, cout, time_dim, emb_dim))


def _zero_last_conv_is_the_skip(block_class) -> str | None:
    """With conv2 zeroed the block is its skip path: the identity when the channels stay (a residual block)."""
    for cin, cout in [(8, 8), (4, 8)]:
        block = _build(block_class, 0, cin, cout, 16, 32)
        nn.init.zeros_(block.conv2.weight)
        nn.init.zeros_(block.conv2.bias)
        x, t = torch.randn(2, cin, 4, 4, generator=seeded(2)), torch.tensor([3, 700])
        if not torch.allclose(block(x, t), block.skip(x), atol=1e-6):
            return (f"with conv2 set to zero your block ({cin} -> {cout} channels) does not return skip(x): the "
                    "input must come back through the skip, added to the output of conv2")
    return None


def _reads_each_timestep(block_class) -> str | None:
    """Two copies of one image at different t give different outputs; at the same t the same output."""
    block = _build(block_class, 1, 4, 4, 16, 32)
    x = torch.randn(1, 4, 4, 4, generator=seeded(3)).expand(3, 4, 4, 4)
    out = block(x, torch.tensor([10, 10, 600]))
    if not torch.allclose(out[0], out[1], atol=1e-6):
        return "two copies of one image at the same t gave different outputs"
    if torch.allclose(out[0], out[2], atol=1e-4):
        return "an image at t = 10 and at t = 600 gave the same output: the timestep must change the features"
    return None


def _res_block_with(block: nn.Module, x: torch.Tensor, t: torch.Tensor, mistake: str) -> torch.Tensor:
    """The block's forward pass written out with ``block``'s weights and one ``mistake``: "sin first", "freqs"
    (ω_k = 10000^(−k)), "no silu" (before emb_proj), "shift after" (conv2), "no skip"."""
    half = block.time_dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half) / (1 if mistake == "freqs" else half))
    angles = t.float()[:, None] * freqs[None]
    features = [angles.sin(), angles.cos()] if mistake == "sin first" else [angles.cos(), angles.sin()]
    emb = block.time_mlp(torch.cat(features, dim=-1))
    shift = block.emb_proj(emb if mistake == "no silu" else F.silu(emb))[:, :, None, None]
    h = block.conv1(F.silu(block.norm1(x))) + (0 if mistake == "shift after" else shift)
    h = block.conv2(F.silu(block.norm2(h))) + (shift if mistake == "shift after" else 0)
    return h if mistake == "no skip" else h + block.skip(x)


_RES_BLOCK_MISTAKES = {
    "[sin, cos] where [cos, sin] belongs: the features in the other order":
        lambda *a: _res_block_with(*a, "sin first"),
    "other frequencies: compare your ω_k with the lesson's (the exponent's divisor)":
        lambda *a: _res_block_with(*a, "freqs"),
    "no SiLU before emb_proj": lambda *a: _res_block_with(*a, "no silu"),
    "the time shift added after conv2: it goes between the two convolutions":
        lambda *a: _res_block_with(*a, "shift after"),
    "no skip path: add skip(x) at the end (a residual block)": lambda *a: _res_block_with(*a, "no skip"),
}


def check_time_res_block(block_class) -> bool:
    blocks, built = build_or_report("4.3", "TimeResBlock", lambda: [
        _build(block_class, *spec[:5]) for spec in _res_block_specs()])
    if not built:
        return False
    g = torch.Generator().manual_seed(43)
    cases = []
    for block, (_, cin, _, _, _, (b, h, w)) in zip(blocks, _res_block_specs()):
        cases.append(((block, torch.randn(b, cin, h, w, generator=g), torch.randint(0, 1000, (b,), generator=g)), {}))

    def run(fn):  # compare() runs the learner's blocks; the reference copies each block's weights
        return (lambda block, x, t: block(x, t)) if fn is block_class else fn

    with torch.no_grad():
        return check_idea("4.3", block_class, reference_res_block_output, cases, "TimeResBlock",
                          after=[_zero_last_conv_is_the_skip, _reads_each_timestep], call=run,
                          variants=_RES_BLOCK_MISTAKES,
                          done="is a residual block that reads each example's timestep")
