"""What the trainer needs from data and loss: ``make_batch(generator)`` and ``loss_fn(model, batch, generator)``.

Both take a ``torch.Generator`` owned by the trainer, so that all randomness of training (which
examples, which t, which ε) is replayed exactly after a resume.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from course_lib._validation import check_choice, check_positive_int, check_tensor, fail
from course_lib.diffusion.forward import OBJECTIVES, diffusion_loss
from course_lib.diffusion.schedules import NoiseSchedule


def random_rows(data: torch.Tensor, batch_size: int) -> Callable[[torch.Generator], torch.Tensor]:
    """``make_batch`` drawing ``batch_size`` rows of ``data`` (N, ...) with replacement: -> (batch_size, ...)."""
    check_tensor("data", data)
    if data.dim() < 1 or data.shape[0] == 0:
        fail("data", "a non-empty tensor (N, ...)", f"shape {tuple(data.shape)}")
    check_positive_int("batch_size", batch_size)

    def make_batch(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=generator.device)
        return data[index.to(data.device)]

    return make_batch


@dataclass
class DiffusionObjective:
    """``loss_fn`` for the trainer: the simple diffusion loss E_{t, ε}‖target − model(x_t, t)‖² (Ho et al. Eq. 14).

    ``objective`` picks the target: "eps" (ε, Ho et al. 2020), "x0" (the clean data) or "v"
    (v = √ᾱ_t ε − √(1 − ᾱ_t) x0, Salimans & Ho 2022). For the same x_t, a prediction of any kind
    fixes the other two (x0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t), and the three squared errors are tied:

        ‖ε − ε̂‖² = SNR_t · ‖x0 − x̂0‖²          ‖v − v̂‖² = (1 + SNR_t) · ‖x0 − x̂0‖²,

    with SNR_t = ᾱ_t / (1 − ᾱ_t) (Salimans & Ho 2022, Sec. 4; Kingma et al. 2021). Relative to
    ε-MSE the x0-MSE is weighted by 1/SNR_t and the v-MSE by 1/ᾱ_t = 1 + 1/SNR_t. So the ε loss
    barely cares about x0 errors at high noise (SNR → 0) and stresses nearly clean steps, the x0
    loss weights all steps alike in data space, and v sits between: never below x0's weight and
    never below ε's. :func:`objective_weight` gives these weights; tested in tests/test_training.py.

    ``batch`` is x0 (B, ...) or a tuple/list whose first item is x0 (the rest is ignored here).
    """

    schedule: NoiseSchedule
    objective: str = "eps"

    def __post_init__(self):
        check_choice("objective", self.objective, OBJECTIVES)

    def __call__(self, model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        return diffusion_loss(model, x0, self.schedule, self.objective, generator=generator)


def objective_weight(schedule: NoiseSchedule, objective: str) -> torch.Tensor:
    """(T,) w_t with MSE_objective = w_t · ‖x0 − x̂0‖² at each t: SNR_t for "eps", 1 for "x0", 1 + SNR_t for "v"."""
    check_choice("objective", objective, OBJECTIVES)
    if objective == "x0":
        return torch.ones_like(schedule.snr)
    return schedule.snr.clone() if objective == "eps" else 1 + schedule.snr
