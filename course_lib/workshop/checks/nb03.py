"""Checks for notebook 03 (schedules and parameterisations). References: course_lib.diffusion.schedules, course_lib.diffusion.forward."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.diffusion.forward import to_x0_eps, v_from_eps
from course_lib.diffusion.schedules import make_schedule, schedule_from_betas

HINTS = {
    "3.1": ("SNR compares how much signal is left with how much noise was added, as variances.",
            "SNR_t = ᾱ_t / (1 − ᾱ_t): the signal variance ᾱ_t over the noise variance 1 − ᾱ_t (no square roots)."),
    "3.2": ("v mixes the noise and the data like x_t does, with the roles of the two scales exchanged and a minus sign.",
            "v = √ᾱ_t·ε − √(1 − ᾱ_t)·x0: the noise gets √ᾱ_t, the data √(1 − ᾱ_t), with a minus sign."),
    "3.3": ("write x_t and v in terms of x0 and ε; one combination of the two cancels ε.",
            "x0 = √ᾱ_t·x_t − √(1 − ᾱ_t)·v (check it: √ᾱ_t² + (1 − ᾱ_t) = 1)."),
}
NO_ROOTS = "square roots missing: ᾱ where √ᾱ belongs"


def _constant_schedule(alpha_bar_t: torch.Tensor):
    """A schedule whose first step has ᾱ_0 = alpha_bar_t (so code t = 0 carries that noise level)."""
    return schedule_from_betas((1 - alpha_bar_t.double()).reshape(1).expand(2).clone())


def reference_snr(alpha_bars: torch.Tensor) -> torch.Tensor:
    """SNR_t = ᾱ_t / (1 − ᾱ_t) for every t, via course_lib.diffusion.schedules (β_t = 1 − ᾱ_t/ᾱ_{t−1})."""
    alpha_bars = alpha_bars.double()
    previous = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bars[:-1]])
    return schedule_from_betas(1 - alpha_bars / previous).snr


def reference_v_target(x0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x0 (Salimans & Ho 2022), via course_lib.diffusion.forward.v_from_eps."""
    return v_from_eps(x0, 0, eps, _constant_schedule(alpha_bar_t))


def reference_x0_from_v(x_t: torch.Tensor, v: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """x0 = √ᾱ_t x_t − √(1 − ᾱ_t) v, via course_lib.diffusion.forward.to_x0_eps(..., "v")."""
    return to_x0_eps(v, x_t, 0, _constant_schedule(alpha_bar_t), "v")[0]


def _tensor_cases(seed: int, count: int = 4):
    g = torch.Generator().manual_seed(seed)
    shapes = [(5, 1), (4, 2), (2, 1, 4, 4), (1, 2, 3, 4, 4)]
    for i in range(count):
        shape = shapes[i % len(shapes)]
        alpha_bar = torch.rand((), generator=g) * 0.9 + 0.05
        yield torch.randn(shape, generator=g), torch.randn(shape, generator=g), alpha_bar


def check_snr(learner_fn) -> bool:
    # The cosine and sigmoid schedules end near ᾱ = 0; stop at T−2 so that every SNR is well scaled.
    cases = [((make_schedule(name, 50).alpha_bars[:-1].clone(),), {}) for name in ("linear", "cosine", "sigmoid")]
    cases.append(((torch.tensor([0.99, 0.5, 0.2, 0.01]),), {}))
    mistakes = {"the log of the SNR, not the SNR": lambda ab: torch.log(reference_snr(ab))}
    return compare("3.1", learner_fn, reference_snr, cases, "snr", variants=mistakes)


def check_v_target(learner_fn) -> bool:
    cases = [((x0, eps, ab), {}) for x0, eps, ab in _tensor_cases(500)]
    mistakes = {NO_ROOTS: lambda x0, eps, ab: ab * eps - (1 - ab) * x0}
    return compare("3.2", learner_fn, reference_v_target, cases, "v_target", variants=mistakes)


def check_x0_from_v(learner_fn) -> bool:
    cases = [((x_t, v, ab), {}) for x_t, v, ab in _tensor_cases(600)]
    mistakes = {"that is ε, not x0": lambda x_t, v, ab: (1 - ab).sqrt() * x_t + ab.sqrt() * v,
                "v treated as ε: that formula recovers x0 from the noise": lambda x_t, v, ab: (x_t - (1 - ab).sqrt() * v) / ab.sqrt()}
    return compare("3.3", learner_fn, reference_x0_from_v, cases, "x0_from_v", variants=mistakes)
