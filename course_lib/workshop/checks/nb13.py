"""Checks for notebook 13 (flow matching). References: course_lib.diffusion.flow.

Flow time s is a float in [0, 1]: s = 0 is data, s = 1 is noise. The learner's velocity functions
are called as ``velocity(x, s)`` with x (B, ...) and s a (B,) tensor; the stand-in velocities here
also accept a number, so an answer that passes a float is not failed for that.

Behaviour is checked against an exact answer: for Gaussian data N(m, c²) (per coordinate) the
velocity of the straight path is linear in x, and its ODE carries noise ε at s = 1 to m + c·ε at
s = 0 (:func:`exact_endpoint`), so a sampler can be scored without any network: the sampler checks
(13.3, 13.4) compare values, then ask the sampler to land there (``check_idea``). ``HINTS`` holds each
exercise's hints in levels, for ``hint("13.1")``; a failure shows only the first.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_lib.diffusion.flow import euler_sample, heun_step, straight_path
from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import Behaviour, check_idea
from course_lib.workshop.checks.diagnose import OFF_BY_ONE, find_mismatch

DATA_MEAN = torch.tensor([[0.8, -0.5]])  # m, (1, 2)
DATA_STD = torch.tensor([[0.3, 0.6]])  # c, (1, 2)

HINTS = {
    "13.1": ("the straight path runs from the data x0 at s = 0 to the noise ε at s = 1, each weighted linearly in s; "
             "the target is how fast x_s moves as s grows, and s (B,) must be reshaped to broadcast over x0's "
             "other axes.",
             "x_s = (1 − s)·x0 + s·ε and its velocity dx_s/ds = ε − x0, the same at every s; reshape s to "
             "(B, 1, ..., 1) with s.reshape(-1, *[1] * (x0.dim() − 1))."),
    "13.2": ("ask the velocity at the noisy point x_s and the time s, and compare it with the path's velocity by the "
             "mean of the squared error over every element.",
             "x_s, target = path_and_target(x0, ε, s); loss = mean((velocity(x_s, s) − target)²) over every element "
             "(Lipman et al. 2023, Eq. 23)."),
    "13.3": ("sampling runs the ODE backwards in time: start with the noise x1 at s = 1, walk a grid down to s = 0, and "
             "move x at each step along the velocity read where the step starts.",
             "grid s_i = 1 − i/steps for i = 0 … steps (steps + 1 times, both ends included); "
             "x ← x + (s_(i+1) − s_i)·v(x, s_i), where s_(i+1) − s_i < 0.",
             "times go to the velocity as a (B,) tensor, torch.full((x.shape[0],), s); one call per step; return x "
             "after the last step, at s = 0."),
    "13.4": ("predict with an Euler step, read a second slope where that prediction lands and at its time, then step "
             "from the old x with the mean of the two slopes; the last step, to s = 0, is a plain Euler step.",
             "x̃ = x + (s_next − s)·v(x, s); x_next = x + (s_next − s)·(v(x, s) + v(x̃, s_next))/2, or x̃ itself when "
             "s_next = 0 (Karras et al. 2022, Algorithm 1)."),
}


def _per_sample(s: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """s (a number or (B,)) as (B, 1, ..., 1) in x's dtype, to broadcast against x (B, ...)."""
    s = torch.as_tensor(s, dtype=x.dtype, device=x.device).reshape(-1)
    return s.expand(x.shape[0]).reshape(-1, *[1] * (x.dim() - 1))


def gaussian_velocity(x: torch.Tensor, s: float | torch.Tensor) -> torch.Tensor:
    """The exact velocity E[ε − x0 | x_s = x] for data x0 ~ N(m, c²) on the straight path, x (B, 2).

    With a = 1 − s and V = a²c² + s² (the variance of x_s): v = (s − a·c²)(x − a·m)/V − m.
    """
    s = _per_sample(s, x)
    a = 1 - s
    variance = a**2 * DATA_STD**2 + s**2
    return (s - a * DATA_STD**2) * (x - a * DATA_MEAN) / variance - DATA_MEAN


def exact_endpoint(x1: torch.Tensor) -> torch.Tensor:
    """Where the exact ODE of :func:`gaussian_velocity` carries noise x1 (B, 2) at s = 1: m + c·x1 at s = 0."""
    return DATA_MEAN + DATA_STD * x1


def stand_in_velocity(x: torch.Tensor, s: float | torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear field for any shape (B, ...): v = 0.7·x − 0.4·s·tanh(x) + 0.3·sin(3s).

    It depends on x and s in different ways, so calling it at the wrong point or time shows.
    """
    s = _per_sample(s, x)
    return 0.7 * x - 0.4 * s * torch.tanh(x) + 0.3 * torch.sin(3 * s)


# --- references ---------------------------------------------------------------------------------

def reference_path_and_target(x0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_s, v): x_s = (1 − s)·x0 + s·ε by course_lib.diffusion.flow.straight_path, v = dx_s/ds = ε − x0."""
    return straight_path(x0, eps, s), eps - x0


def reference_flow_matching_loss(velocity: Callable, x0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """mean ‖velocity(x_s, s) − (ε − x0)‖² for given s and ε: what
    course_lib.diffusion.flow.flow_matching_loss computes after drawing them (Lipman et al. 2023, Eq. 23)."""
    x_s, target = reference_path_and_target(x0, eps, s)
    return F.mse_loss(velocity(x_s, s), target)


def reference_euler_sample(velocity: Callable, x1: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` Euler steps from s = 1 (x1) to s = 0 on the uniform grid: course_lib.diffusion.flow.euler_sample."""
    return euler_sample(velocity, x1.shape, steps=steps, x_start=x1)


def reference_heun_step(velocity: Callable, x: torch.Tensor, s: float, s_next: float) -> torch.Tensor:
    """One Heun step from s to s_next (Euler when s_next = 0): course_lib.diffusion.flow.heun_step."""
    return heun_step(velocity, x, s, s_next).x


# --- behaviours: a sampler must carry noise onto the data -------------------------------------------

def _lands_on_the_data(sampler_of: Callable[[Callable], Callable[[torch.Tensor], torch.Tensor]], tolerance: float,
                       what: str) -> Behaviour:
    """A behaviour: ``sampler_of(learner_fn)(x1)``, run with the exact Gaussian velocity on noise x1 (256, 2), lands
    within ``tolerance`` of the exact endpoint m + c·x1; ``what`` names the sampler in the complaint."""
    def behaviour(learner_fn: Callable) -> str | None:
        x1 = torch.randn(256, 2, generator=torch.Generator().manual_seed(1300))
        x0 = sampler_of(learner_fn)(x1)
        if not isinstance(x0, torch.Tensor) or x0.shape != x1.shape:
            got = f"shape {tuple(x0.shape)}" if isinstance(x0, torch.Tensor) else type(x0).__name__
            return f"started from noise of shape {tuple(x1.shape)}, {what} returned {got}"
        error = (x0.detach().float() - exact_endpoint(x1)).abs().max().item()
        if not error < tolerance:  # also catches NaN
            return (f"with the exact velocity of Gaussian data, {what} lands up to {error:.3g} from the exact answer "
                    f"m + c·ε (allowed {tolerance})")
        return None
    return behaviour


# --- checks ---------------------------------------------------------------------------------------

def _cases(seed: int, count: int = 4):
    """Fresh (x0, ε, s) of several shapes; the first case holds both ends, s = 0 and s = 1."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 2), (4, 1), (3, 2, 4, 4), (2, 1, 3, 4, 4)]
    for i in range(count):
        shape = shapes[i % len(shapes)]
        s = torch.rand(shape[0], generator=g)
        if i == 0:
            s[0], s[1] = 0.0, 1.0
        yield torch.randn(shape, generator=g), torch.randn(shape, generator=g), s


# --- common mistakes, each named by its diagnosis ------------------------------------------------

PATH_MISTAKES = {
    "a variance-preserving path (square roots on the weights): the straight path's weights are linear in s":
        lambda x0, eps, s: ((1 - _per_sample(s, x0)).sqrt() * x0 + _per_sample(s, x0).sqrt() * eps, eps - x0),
    "the data never shrinks (a variance-exploding path): at s = 1 the path is pure noise":
        lambda x0, eps, s: (x0 + _per_sample(s, x0) * eps, eps),
}


def _loss_with(velocity, x0, eps, s, target_sign=1, at_data=False, reverse_time=False, reduction="mean"):
    """The flow matching loss with one mistake: the target x0 − ε, the velocity asked at x0, at time 1 − s, a sum."""
    x_s, target = reference_path_and_target(x0, eps, s)
    prediction = velocity(x0 if at_data else x_s, 1 - s if reverse_time else s)
    return F.mse_loss(prediction, target_sign * target, reduction=reduction)


LOSS_MISTAKES = {
    "the target x0 − ε, a wrong sign: as s grows the path moves from the data towards the noise":
        lambda *a: _loss_with(*a, target_sign=-1),
    "the velocity asked at the data x0: call it at the noisy point x_s": lambda *a: _loss_with(*a, at_data=True),
    "time reversed: call the velocity at s, not at 1 − s": lambda *a: _loss_with(*a, reverse_time=True),
    "a sum where the mean belongs": lambda *a: _loss_with(*a, reduction="sum"),
}


def _euler_with(velocity, x1, steps, grid=None, at_next=False, sign=1.0):
    """Euler steps on ``grid`` (default 1 → 0 in ``steps`` steps) with one mistake: the velocity read at s_next, or
    stepped against it."""
    grid = torch.linspace(1.0, 0.0, steps + 1) if grid is None else grid
    x = x1
    for s, s_next in zip(grid[:-1].tolist(), grid[1:].tolist()):
        t = torch.full((x.shape[0],), s_next if at_next else s)
        x = x + (s_next - s) * sign * velocity(x, t)
    return x


EULER_MISTAKES = {
    "from data towards noise: the grid runs from s = 1 (noise) down to s = 0 (data)":
        lambda f, x1, steps: _euler_with(f, x1, steps, torch.linspace(0.0, 1.0, steps + 1)),
    f"{OFF_BY_ONE}: steps − 1 steps; the grid holds steps + 1 times from 1 to 0":
        lambda f, x1, steps: _euler_with(f, x1, steps, torch.linspace(1.0, 0.0, steps)),
    "stops short of s = 0: the grid holds steps + 1 times from 1 to 0, both ends included":
        lambda f, x1, steps: _euler_with(f, x1, steps, torch.linspace(1.0, 0.0, steps + 2)[:-1]),
    "the velocity read at s_next: an Euler step reads it where it starts, at (x, s)":
        lambda f, x1, steps: _euler_with(f, x1, steps, at_next=True),
    "stepped against the velocity: x moves by (s_next − s)·v, and s_next < s does the turning":
        lambda f, x1, steps: _euler_with(f, x1, steps, sign=-1.0),
}


def _heun_with(velocity, x, s, s_next, mistake):
    """One Heun step with one ``mistake``: "second only" (its slope alone), "no half" (the slopes added), "old point"
    (the second slope at x), "old time" (the second slope at s), "heun at 0" (no Euler rule at s_next = 0)."""
    def at(value):
        return torch.full((x.shape[0],), float(value))
    v = velocity(x, at(s))
    x_euler = x + (s_next - s) * v
    if s_next == 0 and mistake != "heun at 0":
        return x_euler
    v2 = velocity(x if mistake == "old point" else x_euler, at(s if mistake == "old time" else s_next))
    if mistake == "second only":
        return x + (s_next - s) * v2
    return x + (s_next - s) * (1.0 if mistake == "no half" else 0.5) * (v + v2)


HEUN_MISTAKES = {
    "the second slope only: a Heun step averages two slopes":
        lambda *a: _heun_with(*a, "second only"),
    "the two slopes added, not averaged: the ½ missing": lambda *a: _heun_with(*a, "no half"),
    "the second slope read at the old point x: read it where the Euler step lands": lambda *a: _heun_with(*a, "old point"),
    "the second slope read at the old time s: read it at s_next": lambda *a: _heun_with(*a, "old time"),
    "a Heun step to s = 0: the last step, s_next = 0, is a plain Euler step (the docstring's rule)":
        lambda *a: _heun_with(*a, "heun at 0"),
}


def check_path_and_target(learner_fn) -> bool:
    cases = [((x0, eps, s), {}) for x0, eps, s in _cases(1310)]
    return compare("13.1", learner_fn, reference_path_and_target, cases, "path_and_target (x_s and its velocity)",
                   variants=PATH_MISTAKES)


def check_flow_matching_loss(learner_fn) -> bool:
    cases = [((stand_in_velocity, x0, eps, s), {}) for x0, eps, s in _cases(1320)]
    return compare("13.2", learner_fn, reference_flow_matching_loss, cases, "flow_matching_loss",
                   variants=LOSS_MISTAKES)


def _right_with_many_steps_only(learner_fn) -> str | None:
    """Run when 200 steps land on the data: do 3 steps still differ from the reference's?"""
    x1 = torch.randn(64, 2, generator=torch.Generator().manual_seed(1331))
    if find_mismatch(learner_fn(gaussian_velocity, x1, 3), reference_euler_sample(gaussian_velocity, x1, 3)) is None:
        return None
    return ("with 200 steps your sampler lands on the data, with 3 it differs from the reference: the grid holds "
            "steps + 1 times from 1 to 0, and each step reads the velocity where it starts, at (x, s)")


def check_euler_sample(learner_fn) -> bool:
    g = torch.Generator().manual_seed(1330)
    cases = [((gaussian_velocity, torch.randn(64, 2, generator=g), steps), {}) for steps in (3, 1, 10)]
    cases.append(((stand_in_velocity, torch.randn(3, 1, 4, 4, generator=g), 5), {}))
    # 200 Euler steps land within about 0.013 of the exact answer.
    lands = _lands_on_the_data(lambda fn: lambda x1: fn(gaussian_velocity, x1, 200), 0.03,
                               "your sampler with 200 steps")
    return check_idea("13.3", learner_fn, reference_euler_sample, cases, "euler_sample",
                      before=[lands, _right_with_many_steps_only], done="carries noise onto Gaussian data",
                      variants=EULER_MISTAKES)


def _heun_sampler(learner_fn: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """8 of the learner's Heun steps from s = 1 to 0 with the exact Gaussian velocity: 2·8 − 1 = 15 velocity calls."""
    def sampler(x1: torch.Tensor) -> torch.Tensor:
        x, grid = x1, torch.linspace(1.0, 0.0, 9, dtype=torch.float64).tolist()
        for s, s_next in zip(grid[:-1], grid[1:]):
            x = learner_fn(gaussian_velocity, x, s, s_next)
        return x
    return sampler


def check_heun_step(learner_fn) -> bool:
    g = torch.Generator().manual_seed(1340)
    cases = [((stand_in_velocity, torch.randn(shape, generator=g), s, s_next), {})
             for shape, s, s_next in [((6, 2), 1.0, 0.8), ((4, 1), 0.55, 0.3), ((2, 1, 4, 4), 0.3, 0.05),
                                      ((5, 2), 0.2, 0.0)]]
    # Heun with 8 steps lands within about 0.06 of the exact answer (its last step, to s = 0, is Euler);
    # Euler with as many calls (15 steps) is 0.17 off: a step no better than Euler's fails.
    lands = _lands_on_the_data(_heun_sampler, 0.1, "a sampler of 8 of your Heun steps")
    return check_idea("13.4", learner_fn, reference_heun_step, cases, "heun_step",
                      before=[lands], done="works as a sampler", variants=HEUN_MISTAKES)
