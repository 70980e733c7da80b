"""Flow matching on the straight path between data and noise, and samplers that are ODE solvers.

The straight path (rectified flow, Liu et al. 2023, Eq. 1; the optimal-transport path of Lipman
et al. 2023 with σ_min = 0, its time reversed; the convention of Esser et al. 2024):

    x_s = (1 − s)·x0 + s·ε,   s ∈ [0, 1],   s = 0 is data, s = 1 is noise ε ~ N(0, I),

moves each pair (x0, ε) at the constant velocity dx_s/ds = v = ε − x0. A network trained to
regress this target, E_{s, x0, ε}‖v_θ(x_s, s) − (ε − x0)‖² (Lipman et al. 2023, Eq. 23), learns
v(x, s) = E[ε − x0 | x_s = x], the velocity field of an ODE dx/ds = v(x, s) whose flow carries
N(0, I) at s = 1 onto the data at s = 0. Sampling is solving that ODE backwards in s:
:func:`euler_steps` and :func:`heun_steps` (Karras et al. 2022, Algorithm 1).

Time: s is a float in [0, 1] everywhere here; a sampler's ``model_fn(x, s)`` receives s as a (B,)
float tensor. The course's networks embed a timestep in 0..T−1 with sinusoidal features, which
accept float timesteps (:func:`course_lib.models.embeddings.sinusoidal_embedding` uses ``t.float()``),
so a network sees ``s · time_scale`` with ``time_scale = T − 1 = 999``: :func:`velocity_fn` wraps a
network into a ``model_fn(x, s)`` that way, and :class:`FlowMatchingObjective` trains it the same way.

The samplers yield :class:`course_lib.diffusion.samplers.SamplerStep` like the diffusion samplers do, with
``t`` the float time s the step starts from, so trajectory plots and animations work unchanged.

DDIM is the same family: deterministic DDIM is an Euler step of the probability-flow ODE in
x̄ = x/√ᾱ and σ̄ = √((1 − ᾱ)/ᾱ) (:func:`ddim_step_as_euler`), and the VP path is the straight
path rescaled (:func:`vp_to_straight`, :func:`straight_to_vp`). An Euler step on the straight path
keeps the predicted x̂0 and ε̂, x_{s'} = (1 − s')·x̂0 + s'·ε̂, and so is DDIM too once the times
are matched by signal-to-noise ratio (tested in tests/test_flow_matching.py).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib._validation import (
    check_choice, check_float_range, check_int_range, check_positive_int, check_tensor, fail,
)
from course_lib.diffusion.forward import as_timesteps, extract, randn_like, to_x0_eps
from course_lib.diffusion.objectives import batch_x0, label_kwargs
from course_lib.diffusion.samplers import SamplerStep
from course_lib.diffusion.schedules import NoiseSchedule

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TIME_SAMPLERS = ("uniform", "logit-normal")
SOLVERS = ("euler", "heun")
TIME_SCALE = 999.0  # T − 1 for the course's T = 1000: a network sees the float timestep s · 999


# --- checks shared by this module ----------------------------------------------------------------

def _check_time(name: str, s: float | torch.Tensor) -> None:
    """s is a number or a tensor of times in [0, 1]."""
    if not isinstance(s, torch.Tensor):
        check_float_range(name, s, 0.0, 1.0)
        return
    if not s.is_floating_point():
        fail(name, "a float tensor of times in [0, 1]", f"dtype {s.dtype}")
    if s.numel() and not (torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1):
        fail(name, "times in [0, 1]", f"values in [{s.min().item()}, {s.max().item()}]")


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        fail(name, "a finite number > 0", value)
    return float(value)


def _per_sample(s: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """s as (B, 1, ..., 1) in x's dtype and device, to broadcast against x (B, ...)."""
    s = torch.as_tensor(s, dtype=x.dtype, device=x.device)
    if s.dim() == 0:
        return s.expand(x.shape[0]).reshape(-1, *([1] * (x.dim() - 1)))
    if s.shape != (x.shape[0],):
        fail("s", f"a number or one time per sample, shape ({x.shape[0]},)", f"shape {tuple(s.shape)}")
    return s.reshape(-1, *([1] * (x.dim() - 1)))


# --- the path and its velocity ---------------------------------------------------------------------

def straight_path(x0: torch.Tensor, eps: torch.Tensor, s: float | torch.Tensor) -> torch.Tensor:
    """x_s = (1 − s)·x0 + s·ε: x0, ε (B, ...), s a number or (B,) in [0, 1] -> (B, ...)."""
    check_tensor("x0", x0)
    check_tensor("eps", eps)
    if eps.shape != x0.shape:
        fail("eps", f"the shape of x0 {tuple(x0.shape)}", f"shape {tuple(eps.shape)}")
    _check_time("s", s)
    s = _per_sample(s, x0)
    return (1 - s) * x0 + s * eps


def x0_eps_from_velocity(v: torch.Tensor, x_s: torch.Tensor,
                         s: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert the path for a velocity v = ε − x0 at x_s: x0 = x_s − s·v, ε = x_s + (1 − s)·v.

    v, x_s: (B, ...), s a number or (B,) in [0, 1] -> (x0, ε), each (B, ...).
    """
    check_tensor("v", v)
    if v.shape != x_s.shape:
        fail("v", f"the shape of x_s {tuple(x_s.shape)}", f"shape {tuple(v.shape)}")
    _check_time("s", s)
    s = _per_sample(s, x_s)
    return x_s - s * v, x_s + (1 - s) * v


def sample_time(
    batch: int,
    sampler: str = "uniform",
    generator: torch.Generator | None = None,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(batch,) float32 training times s in [0, 1], drawn from ``generator``.

    * "uniform": s ~ U[0, 1] (Lipman et al. 2023; Liu et al. 2023);
    * "logit-normal": s = sigmoid(m + σ·n), n ~ N(0, 1) (Esser et al. 2024, Sec. 3.1), with
      m = ``logit_mean``, σ = ``logit_std``; median sigmoid(m), and the middle times, where
      predicting v is hardest, get more of the training than the ends.

    Drawn on the generator's device and moved, so a CPU generator gives the same s on any device.
    """
    check_positive_int("batch", batch)
    check_choice("sampler", sampler, TIME_SAMPLERS)
    check_float_range("logit_mean", logit_mean, -10.0, 10.0)
    _check_positive("logit_std", logit_std)
    where = generator.device if generator is not None else "cpu"
    if sampler == "uniform":
        s = torch.rand(batch, generator=generator, device=where)
    else:
        s = torch.sigmoid(logit_mean + logit_std * torch.randn(batch, generator=generator, device=where))
    return s.to(device if device is not None else "cpu")


def time_of_snr(snr: float) -> float:
    """The time s on the straight path whose signal-to-noise ratio is ``snr``.

    x_s = (1 − s)·x0 + s·ε has SNR(s) = ((1 − s)/s)², so s = 1/(1 + √SNR): SNR 1 is s = ½, and the
    low SNRs where a diffusion model decides what a sample shows are the times near 1.
    """
    _check_positive("snr", snr)
    return 1.0 / (1.0 + snr ** 0.5)


def focus_times(s: torch.Tensor, focus: float, snr_range: tuple[float, float] | None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Move each time s (B,) with probability ``focus`` to a time uniform over those whose SNR lies in
    ``snr_range`` (low, high): flow matching's twin of
    :class:`~course_lib.diffusion.objectives.SNRFocusedTimesteps`, so both objectives can spend the same
    share of training on the same noise levels. Draws, in order: the focused times, the coin.
    """
    check_float_range("focus", focus, 0.0, 1.0)
    if not (isinstance(snr_range, (tuple, list)) and len(snr_range) == 2
            and 0 < snr_range[0] <= snr_range[1]):
        fail("focus_snr", "a pair (low, high) with 0 < low <= high", snr_range)
    earliest, latest = time_of_snr(snr_range[1]), time_of_snr(snr_range[0])  # high SNR is the earlier time
    where = generator.device if generator is not None else "cpu"
    focused = earliest + (latest - earliest) * torch.rand(s.shape[0], generator=generator, device=where)
    coin = torch.rand(s.shape[0], generator=generator, device=where) < focus
    return torch.where(coin.to(s.device), focused.to(s.device, s.dtype), s)


def velocity_fn(model: Callable[..., torch.Tensor], time_scale: float = TIME_SCALE, **model_kwargs) -> VelocityFn:
    """A ``model_fn(x, s)`` for the samplers from a network that embeds a timestep.

    It calls ``model(x, s · time_scale, **model_kwargs)``; ``model_kwargs`` (e.g. ``y=labels``) are
    passed on every call.
    """
    _check_positive("time_scale", time_scale)

    def model_fn(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return model(x, s * time_scale, **model_kwargs)

    return model_fn


def flow_matching_loss(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    time_sampler: str = "uniform",
    generator: torch.Generator | None = None,
    time_scale: float = TIME_SCALE,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    model_kwargs: dict | None = None,
    focus: float = 0.0,
    focus_snr: tuple[float, float] | None = None,
) -> torch.Tensor:
    """The conditional flow matching loss E_{s, ε}‖(ε − x0) − v_θ(x_s, s)‖² (Lipman et al. 2023, Eq. 23).

    s ~ ``time_sampler`` (:func:`sample_time`), moved with probability ``focus`` into the times whose
    SNR lies in ``focus_snr`` (:func:`focus_times`), then ε ~ N(0, I), all from ``generator``; the
    network is called as ``model(x_s, s · time_scale, **model_kwargs)``. Its minimiser is
    v(x, s) = E[ε − x0 | x_s = x]; the loss is not zero there (many pairs pass through one x_s),
    except for data at a single point. x0: (B, ...) -> scalar.
    """
    check_tensor("x0", x0)
    if x0.dim() < 2:
        fail("x0", "a batch with at least 2 dims (B, ...)", f"shape {tuple(x0.shape)}")
    check_choice("time_sampler", time_sampler, TIME_SAMPLERS)
    s = sample_time(x0.shape[0], time_sampler, generator, logit_mean, logit_std, x0.device)
    if focus:
        s = focus_times(s, focus, focus_snr, generator)
    s = s.to(x0.dtype)
    eps = randn_like(x0, generator)
    x_s = straight_path(x0, eps, s)
    prediction = velocity_fn(model, time_scale, **(model_kwargs or {}))(x_s, s)
    if prediction.shape != x0.shape:
        fail("model output", f"the shape of x0 {tuple(x0.shape)}", f"shape {tuple(prediction.shape)}")
    return F.mse_loss(prediction.float(), (eps - x0).float())


@dataclass
class FlowMatchingObjective:
    """``loss_fn(model, batch, generator)`` for the trainer: :func:`flow_matching_loss`.

    ``batch`` is x0 (B, ...), or a tuple/list whose first item is x0. With ``null_label`` set (the
    model's num_classes) the batch must be (x0, labels (B,)): each label becomes ``null_label`` with
    probability ``label_dropout`` (:func:`~course_lib.diffusion.objectives.drop_labels`) and the labels
    reach the model as ``y``, as for the diffusion loss of class-conditional models. Without it the
    rest of a tuple is ignored. With ``focus`` > 0, that share of the times is drawn from the SNR range
    ``focus_snr`` (:func:`focus_times`). Draws, in order: the label coins, s, the focused s and coin, ε.
    """

    time_sampler: str = "uniform"
    time_scale: float = TIME_SCALE
    logit_mean: float = 0.0
    logit_std: float = 1.0
    null_label: int | None = None
    label_dropout: float = 0.0
    focus: float = 0.0
    focus_snr: tuple[float, float] | None = None

    def __post_init__(self):
        check_choice("time_sampler", self.time_sampler, TIME_SAMPLERS)
        check_float_range("focus", self.focus, 0.0, 1.0)
        if self.focus and self.focus_snr is None:
            fail("focus_snr", "a pair (low, high) of SNRs when focus > 0", None)
        _check_positive("time_scale", self.time_scale)
        check_float_range("logit_mean", self.logit_mean, -10.0, 10.0)
        _check_positive("logit_std", self.logit_std)
        check_float_range("label_dropout", self.label_dropout, 0.0, 1.0)
        if self.null_label is not None:
            check_positive_int("null_label", self.null_label)
        elif self.label_dropout > 0:
            fail("null_label", "the model's num_classes when label_dropout > 0", None)

    def __call__(self, model, batch, generator: torch.Generator) -> torch.Tensor:
        x0 = batch_x0(batch)
        model_kwargs = label_kwargs(batch, x0, self.null_label, self.label_dropout, generator)
        return flow_matching_loss(model, x0, self.time_sampler, generator, self.time_scale,
                                  self.logit_mean, self.logit_std, model_kwargs, self.focus, self.focus_snr)


# --- samplers: solving dx/ds = v(x, s) from s = 1 to s = 0 -------------------------------------------

def shift_time(s: float | torch.Tensor, shift: float) -> float | torch.Tensor:
    """s' = shift·s / (1 + (shift − 1)·s) (Esser et al. 2024, resolution-dependent shifting).

    A monotone map of [0, 1] onto itself with 0 ↦ 0 and 1 ↦ 1; shift = 1 is the identity, shift > 1
    moves times towards noise (a uniform grid then spends more steps at high noise, where large
    images keep their structure longer). s: a number or a tensor of times in [0, 1].
    """
    _check_time("s", s)
    shift = _check_positive("shift", shift)
    return shift * s / (1 + (shift - 1) * s)


def time_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """(steps + 1,) float64 times from 1 down to 0: a uniform grid passed through :func:`shift_time`."""
    check_positive_int("steps", steps)
    return shift_time(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)


def _velocity(model_fn: VelocityFn, x: torch.Tensor, s: float) -> torch.Tensor:
    """Call ``model_fn(x, s)`` with s as a (B,) tensor; check the output shape."""
    v = model_fn(x, torch.full((x.shape[0],), s, dtype=x.dtype, device=x.device))
    if v.shape != x.shape:
        fail("model_fn output", f"the shape of x {tuple(x.shape)}", f"shape {tuple(v.shape)}")
    return v.to(x.dtype)


def _check_step(x: torch.Tensor, s: float, s_next: float) -> tuple[float, float]:
    check_tensor("x", x)
    if x.dim() < 2:
        fail("x", "a batch with at least 2 dims (B, ...)", f"shape {tuple(x.shape)}")
    return check_float_range("s", s, 0.0, 1.0), check_float_range("s_next", s_next, 0.0, 1.0)


def euler_step(model_fn: VelocityFn, x: torch.Tensor, s: float, s_next: float) -> SamplerStep:
    """One Euler step of dx/ds = v(x, s): x_{s'} = x_s + (s' − s)·v(x_s, s). One network call.

    x: (B, ...) at time s -> SamplerStep(t=s, x at s_next, x0_pred = x_s − s·v).
    """
    s, s_next = _check_step(x, s, s_next)
    v = _velocity(model_fn, x, s)
    return SamplerStep(s, x + (s_next - s) * v, x0_eps_from_velocity(v, x, s)[0])


def heun_step(model_fn: VelocityFn, x: torch.Tensor, s: float, s_next: float) -> SamplerStep:
    """One step of Heun's method (Karras et al. 2022, Algorithm 1), second order.

    Euler predicts x̃ = x_s + (s' − s)·v(x_s, s); the step then uses the mean slope,
    x_{s'} = x_s + (s' − s)·(v(x_s, s) + v(x̃, s'))/2. Two network calls, except when s' = 0: there
    the step is Euler (one call), as in Karras et al., so the network is never asked for v at the
    clean data, where it is least reliable: near a data point x0, v(x, s) ≈ (x − x0)/s is steep as s → 0.
    x: (B, ...) -> SamplerStep(t=s, x at s_next, x0_pred from the first slope).
    """
    s, s_next = _check_step(x, s, s_next)
    v = _velocity(model_fn, x, s)
    x_next = x + (s_next - s) * v
    if s_next > 0:
        x_next = x + (s_next - s) * 0.5 * (v + _velocity(model_fn, x_next, s_next))
    return SamplerStep(s, x_next, x0_eps_from_velocity(v, x, s)[0])


_STEPS = {"euler": euler_step, "heun": heun_step}


@torch.no_grad()
def ode_steps(
    model_fn: VelocityFn,
    shape: Sequence[int],
    steps: int = 50,
    solver: str = "euler",
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    x_start: torch.Tensor | None = None,
) -> Iterator[SamplerStep]:
    """Solve dx/ds = v(x, s) from s = 1 (noise, or ``x_start``) to s = 0 on :func:`time_grid` (steps, shift).

    One :class:`SamplerStep` per step. ``solver`` "euler" makes ``steps`` network calls, "heun"
    makes 2·steps − 1 (its last step, to s = 0, is Euler). ``model_fn(x, s)``: x (B, ...), s (B,)
    floats in [0, 1] -> v (B, ...); wrap a network with :func:`velocity_fn`.
    """
    check_choice("solver", solver, SOLVERS)
    grid = time_grid(steps, shift).tolist()
    if x_start is not None:
        check_tensor("x_start", x_start)
        if tuple(x_start.shape) != tuple(shape):
            fail("x_start", f"shape {tuple(shape)}", f"shape {tuple(x_start.shape)}")
        x = x_start.to(device or x_start.device)
    else:
        if len(shape) < 2:
            fail("shape", "a batch shape (B, ...) with at least 2 dims", tuple(shape))
        x = randn_like(torch.empty(tuple(shape), device=device or "cpu"), generator)
    for s, s_next in zip(grid[:-1], grid[1:]):
        step = _STEPS[solver](model_fn, x, s, s_next)
        x = step.x
        yield step


def ode_sample(model_fn: VelocityFn, shape: Sequence[int], **kwargs) -> torch.Tensor:
    """Run :func:`ode_steps` to the end and return the sample (B, ...)."""
    step = None
    for step in ode_steps(model_fn, shape, **kwargs):
        pass
    return step.x


def euler_steps(model_fn: VelocityFn, shape: Sequence[int], steps: int = 50, **kwargs) -> Iterator[SamplerStep]:
    """Euler's method from noise to data, ``steps`` network calls: :func:`ode_steps` with solver "euler"."""
    return ode_steps(model_fn, shape, steps, solver="euler", **kwargs)


def euler_sample(model_fn: VelocityFn, shape: Sequence[int], steps: int = 50, **kwargs) -> torch.Tensor:
    """Run :func:`euler_steps` to the end and return the sample (B, ...)."""
    return ode_sample(model_fn, shape, steps=steps, solver="euler", **kwargs)


def heun_steps(model_fn: VelocityFn, shape: Sequence[int], steps: int = 25, **kwargs) -> Iterator[SamplerStep]:
    """Heun's method from noise to data, 2·steps − 1 network calls: :func:`ode_steps` with solver "heun"."""
    return ode_steps(model_fn, shape, steps, solver="heun", **kwargs)


def heun_sample(model_fn: VelocityFn, shape: Sequence[int], steps: int = 25, **kwargs) -> torch.Tensor:
    """Run :func:`heun_steps` to the end and return the sample (B, ...)."""
    return ode_sample(model_fn, shape, steps=steps, solver="heun", **kwargs)


# --- DDIM and the VP path are the same family --------------------------------------------------------

def ddim_step_as_euler(model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, t: int,
                       t_next: int, schedule: NoiseSchedule, objective: str = "eps") -> SamplerStep:
    """Deterministic DDIM (η = 0) from code timestep t to t_next < t, written as one Euler step.

    With x̄ = x/√ᾱ and σ̄ = √((1 − ᾱ)/ᾱ), the VP path is x̄_t = x0 + σ̄_t·ε, and the probability-flow
    ODE reads dx̄/dσ̄ = ε̂(x̄/√(σ̄² + 1), t) (Song et al. 2021a, Eq. 14). Its Euler step

        x̄_{t'} = x̄_t + (σ̄_{t'} − σ̄_t)·ε̂          (Song et al. 2021a, Eq. 13)

    is exactly DDIM's x_{t'} = √ᾱ_{t'} x̂0 + √(1 − ᾱ_{t'}) ε̂ (Eq. 12 with σ = 0): it keeps the
    same x̂0 = x̄_t − σ̄_t·ε̂ and moves along ε̂. t_next = −1 means clean data (ᾱ = 1, σ̄ = 0).
    ``model_fn(x_t, t)`` is a diffusion network predicting ``objective`` ("eps", "x0" or "v");
    nothing is clipped. x: (B, ...) -> SamplerStep(t, x_{t'}, x̂0).
    """
    check_tensor("x", x)
    check_int_range("t", t, 0, schedule.num_steps - 1)
    check_int_range("t_next", t_next, -1, t - 1)
    tt = as_timesteps(t, x.shape[0], schedule, x.device)
    prediction = model_fn(x, tt)
    if prediction.shape != x.shape:
        fail("model_fn output", f"the shape of x {tuple(x.shape)}", f"shape {tuple(prediction.shape)}")
    _, eps = to_x0_eps(prediction.double(), x.double(), tt, schedule, objective)  # ε̂ (B, ...)
    a = torch.cat([schedule.sqrt_alpha_bars.double(), torch.ones(1, dtype=torch.float64)])  # √ᾱ, [−1] = 1
    b = torch.cat([schedule.sqrt_one_minus_alpha_bars.double(), torch.zeros(1, dtype=torch.float64)])  # √(1 − ᾱ)
    sigma_bar, sigma_bar_next = b[t] / a[t], b[t_next] / a[t_next]  # σ̄_t, σ̄_{t'} (σ̄ = 0 at t' = −1)
    x_bar = x.double() / a[t]  # x̄_t
    x_bar_next = x_bar + (sigma_bar_next - sigma_bar) * eps  # Eq. 13
    x0 = x_bar - sigma_bar * eps  # x̂0, the same before and after the step
    return SamplerStep(t, (a[t_next] * x_bar_next).to(x.dtype), x0.to(x.dtype))


def straight_time_from_vp(t: int | torch.Tensor, schedule: NoiseSchedule) -> torch.Tensor:
    """The straight-path time with the same signal-to-noise ratio as code timestep t:

        s_t = √(1 − ᾱ_t) / (√ᾱ_t + √(1 − ᾱ_t)),   so that ((1 − s)/s)² = ᾱ_t/(1 − ᾱ_t) = SNR_t.

    t: an int or (B,) integer timesteps -> float64, 0-dim for an int, (B,) for (B,).
    """
    batched = isinstance(t, torch.Tensor) and t.dim() == 1
    tt = as_timesteps(t, t.shape[0] if batched else 1, schedule, "cpu")  # (B,)
    a = schedule.sqrt_alpha_bars.to(torch.float64)[tt]  # √ᾱ_t
    b = schedule.sqrt_one_minus_alpha_bars.to(torch.float64)[tt]  # √(1 − ᾱ_t)
    s = b / (a + b)
    return s if batched else s[0]


def vp_to_straight(x_t: torch.Tensor, t: int | torch.Tensor,
                   schedule: NoiseSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """The VP sample x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε as a point of the straight path.

    Dividing by √ᾱ_t + √(1 − ᾱ_t) gives (1 − s)·x0 + s·ε with s = :func:`straight_time_from_vp`:
    the same x0 and ε, only the scale differs. x_t: (B, ...) -> (x_s (B, ...), s (B,) float64).
    """
    check_tensor("x_t", x_t)
    if x_t.dim() < 2:
        fail("x_t", "a batch with at least 2 dims (B, ...)", f"shape {tuple(x_t.shape)}")
    t = as_timesteps(t, x_t.shape[0], schedule, x_t.device)
    scale = extract(schedule.sqrt_alpha_bars.double(), t, x_t.shape) + extract(
        schedule.sqrt_one_minus_alpha_bars.double(), t, x_t.shape)  # √ᾱ_t + √(1 − ᾱ_t)
    return (x_t / scale).to(x_t.dtype), straight_time_from_vp(t.cpu(), schedule).to(x_t.device)


def straight_to_vp(x_s: torch.Tensor, s: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The straight-path point x_s = (1 − s)·x0 + s·ε as a VP sample √ᾱ x0 + √(1 − ᾱ) ε.

    ᾱ = (1 − s)² / ((1 − s)² + s²) and x = x_s / √((1 − s)² + s²); ᾱ need not be one of a
    schedule's ᾱ_t. x_s: (B, ...), s a number or (B,) in [0, 1] -> (x (B, ...), ᾱ (B,) float64).
    """
    check_tensor("x_s", x_s)
    if x_s.dim() < 2:
        fail("x_s", "a batch with at least 2 dims (B, ...)", f"shape {tuple(x_s.shape)}")
    _check_time("s", s)
    s = _per_sample(torch.as_tensor(s, dtype=torch.float64), x_s.double())  # (B, 1, ...)
    norm = (1 - s) ** 2 + s**2  # (1 − s)² + s², never below 1/2
    return (x_s.double() / norm.sqrt()).to(x_s.dtype), ((1 - s) ** 2 / norm).flatten()
