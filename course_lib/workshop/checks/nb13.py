"""Checks for notebook 13 (flow matching). References: course_lib.diffusion.flow.

Flow time s is a float in [0, 1]: s = 0 is data, s = 1 is noise. The learner's velocity functions
are called as ``velocity(x, s)`` with x (B, ...) and s a (B,) tensor; the stand-in velocities here
also accept a number, so an answer that passes a float is not failed for that.

Behaviour is checked against an exact answer: for Gaussian data N(m, c²) (per coordinate) the
velocity of the straight path is linear in x, and its ODE carries noise ε at s = 1 to m + c·ε at
s = 0 (:func:`exact_endpoint`), so a sampler can be scored without any network.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from course_lib.diffusion.flow import euler_sample, heun_step, straight_path
from course_lib.workshop.checks import compare, report

DATA_MEAN = torch.tensor([[0.8, -0.5]])  # m, (1, 2)
DATA_STD = torch.tensor([[0.3, 0.6]])  # c, (1, 2)


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


# --- running the learner's function in a behaviour test -------------------------------------------

def _attempt(exercise: str, learner_fn: Callable, *args) -> tuple[bool, Any]:
    """(True, result), or (False, None) after printing the one line that says what went wrong."""
    try:
        return True, learner_fn(*args)
    except NotImplementedError:
        return False, report(exercise, False, "not done yet: replace the `raise NotImplementedError` line with your code.")
    except Exception as error:  # the learner's code failed: say how, in one line
        return False, report(exercise, False, f"your function raised {type(error).__name__}: {error}")


def _lands_on_the_data(exercise: str, sampler: Callable[[torch.Tensor], torch.Tensor], tolerance: float,
                       hint: str) -> bool | None:
    """Run ``sampler(x1)`` on noise with the exact Gaussian velocity; None when it lands within
    ``tolerance`` of the exact endpoint m + c·x1, else the failure reported."""
    x1 = torch.randn(256, 2, generator=torch.Generator().manual_seed(1300))
    ok, x0 = _attempt(exercise, sampler, x1)
    if not ok:
        return False
    if not isinstance(x0, torch.Tensor) or x0.shape != x1.shape:
        got = f"shape {tuple(x0.shape)}" if isinstance(x0, torch.Tensor) else type(x0).__name__
        return report(exercise, False, f"started from noise of shape {tuple(x1.shape)}, your sampler returned {got}.")
    error = (x0.detach().float() - exact_endpoint(x1)).abs().max().item()
    if not error < tolerance:  # also catches NaN
        return report(exercise, False, f"with the exact velocity of Gaussian data, your samples land up to {error:.3g} "
                                       f"from the exact answer (allowed {tolerance}). Hint: {hint}")
    return None


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


def check_path_and_target(learner_fn) -> bool:
    cases = [((x0, eps, s), {}) for x0, eps, s in _cases(1310)]
    return compare("13.1", learner_fn, reference_path_and_target, cases, "path_and_target (x_s and its velocity)",
                   hint="at s = 0 the path is the data x0 and at s = 1 the noise ε; the target is how fast x_s "
                        "moves as s grows; s (B,) must be reshaped to broadcast over x0's other dims.")


def check_flow_matching_loss(learner_fn) -> bool:
    cases = [((stand_in_velocity, x0, eps, s), {}) for x0, eps, s in _cases(1320)]
    return compare("13.2", learner_fn, reference_flow_matching_loss, cases, "flow_matching_loss",
                   hint="call the velocity at the noisy point x_s and the time s, and compare it with the path's "
                        "velocity ε − x0 by the mean of the squared error over every element.")


def check_euler_sample(learner_fn) -> bool:
    # 200 Euler steps land within about 0.013 of the exact answer.
    failed = _lands_on_the_data(
        "13.3", lambda x1: learner_fn(gaussian_velocity, x1, 200), 0.03,
        hint="the loop starts at s = 1 with x1 and ends at s = 0; each step moves x by (s_next − s) times the "
             "velocity, and s_next < s: it runs backwards in time.")
    if failed is not None:
        return failed
    g = torch.Generator().manual_seed(1330)
    cases = [((gaussian_velocity, torch.randn(64, 2, generator=g), steps), {}) for steps in (1, 3, 10)]
    cases.append(((stand_in_velocity, torch.randn(3, 1, 4, 4, generator=g), 5), {}))
    return compare("13.3", learner_fn, reference_euler_sample, cases,
                   "euler_sample carries noise onto Gaussian data and",
                   hint="with many steps your sampler is right; with few it is not: the grid holds steps + 1 times "
                        "from 1 to 0, and each step reads the velocity where it starts (x, s).")


def check_heun_step(learner_fn) -> bool:
    def sampler(x1: torch.Tensor, steps: int = 8) -> torch.Tensor:  # 2·8 − 1 = 15 velocity calls
        x, grid = x1, torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
        for s, s_next in zip(grid[:-1], grid[1:]):
            x = learner_fn(gaussian_velocity, x, s, s_next)
        return x

    # Heun with 8 steps lands within about 0.06 of the exact answer (its last step, to s = 0, is Euler);
    # Euler with as many calls (15 steps) is 0.17 off.
    failed = _lands_on_the_data(
        "13.4", sampler, 0.1,
        hint="as a sampler your step is no better than Euler's: the second velocity belongs at the point the "
             "Euler step reaches, at its time, and the step uses the mean of the two slopes.")
    if failed is not None:
        return failed
    g = torch.Generator().manual_seed(1340)
    cases = [((stand_in_velocity, torch.randn(shape, generator=g), s, s_next), {})
             for shape, s, s_next in [((6, 2), 1.0, 0.8), ((4, 1), 0.55, 0.3), ((2, 1, 4, 4), 0.3, 0.05),
                                      ((5, 2), 0.2, 0.0)]]
    return compare("13.4", learner_fn, reference_heun_step, cases, "heun_step works as a sampler and",
                   hint="as a sampler it is accurate, but one step differs: read the docstring's rule for "
                        "the last step, s_next = 0.")
