"""Exponential moving average (EMA) of a model's weights: the weights we sample from.

After every optimiser step, θ_ema ← d·θ_ema + (1 − d)·θ. Diffusion models sample much better from
θ_ema than from the last θ (Ho et al. 2020 use d = 0.9999; Song & Ermon 2020, Sec. 3.5).
With warm-up the decay grows as d_k = min(d, (1 + k) / (10 + k)) for update k = 0, 1, ..., so that
early, still-random weights are forgotten quickly (as in TensorFlow's ExponentialMovingAverage).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(update: int, decay: float, warmup: bool = True) -> float:
    """The decay used for EMA update number ``update`` (0 for the first)."""
    if not warmup:
        return decay
    return min(decay, (1 + update) / (10 + update))


def make_ema_model(model: nn.Module) -> nn.Module:
    """A frozen deep copy of ``model`` to hold the averaged weights."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    return ema.eval()


@torch.no_grad()
def update_ema(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← decay·θ_ema + (1 − decay)·θ for every floating-point parameter and buffer.

    Integer buffers (e.g. counters) are copied.
    """
    ema_state, state = ema_model.state_dict(), model.state_dict()
    for name, value in state.items():
        if value.dtype.is_floating_point:
            ema_state[name].lerp_(value.detach(), 1 - decay)  # ema + (1 − d)(θ − ema) = d·ema + (1 − d)·θ
        else:
            ema_state[name].copy_(value)
