"""Timestep embeddings shared by every denoiser in the course (MLP, U-Net 2D, video models)."""
from __future__ import annotations

import math

import torch
from torch import nn

from course_lib._validation import check_positive_int, check_rank, fail


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sinusoidal features of the timestep.

    t: (B,) integer or float timesteps -> (B, dim) with ``[cos(t*w_k), sin(t*w_k)]``,
    ``w_k = max_period ** (-k / (dim/2))`` (Vaswani et al. 2017, used by Ho et al. 2020).
    """
    check_rank("t", t, 1, "(B,)")
    check_positive_int("dim", dim)
    if dim % 2:
        fail("dim", "an even embedding size", dim)
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class TimestepEmbedding(nn.Module):
    """Sinusoidal features followed by a 2-layer MLP: t (B,) -> (B, out_dim)."""

    def __init__(self, dim: int, out_dim: int | None = None):
        super().__init__()
        out_dim = out_dim or 4 * dim
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim))


class ClassEmbedding(nn.Embedding):
    """A learned vector per class plus one for "no class": y (B,) | None -> (B, dim).

    Row ``num_classes`` is the null label of classifier-free guidance (Ho & Salimans 2022): training
    drops labels to it (:func:`course_lib.diffusion.objectives.drop_labels`) and ``y=None`` means
    it for the whole batch. A plain ``nn.Embedding`` of ``num_classes + 1`` rows (state dict:
    ``weight``) that checks its labels: one per example, integers in [0, num_classes].
    """

    def __init__(self, num_classes: int, dim: int):
        super().__init__(check_positive_int("num_classes", num_classes) + 1, check_positive_int("dim", dim))
        self.num_classes = num_classes

    def check_labels(self, y: torch.Tensor | None, batch: int, what: str = "example") -> None:
        """Raise a clear ValueError unless ``y`` is None or (batch,) integer labels in [0, num_classes]."""
        if y is None:
            return
        check_rank("y", y, 1, "(B,)")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            fail("y", "an integer tensor of labels", f"dtype {y.dtype}")
        if y.shape[0] != batch:
            fail("y", f"one label per {what}, shape ({batch},)", f"shape {tuple(y.shape)}")
        if y.numel() and (y.min() < 0 or y.max() > self.num_classes):
            fail("y", f"labels in [0, {self.num_classes - 1}] or the null label {self.num_classes}",
                 f"values in [{int(y.min())}, {int(y.max())}]")

    def forward(self, y: torch.Tensor | None, batch: int | None = None) -> torch.Tensor:
        """y: (B,) labels, or None with ``batch`` = B for the null label -> (B, dim)."""
        if y is None:
            if batch is None:
                fail("batch", "the batch size when y is None", batch)
            y = torch.full((batch,), self.num_classes, dtype=torch.long, device=self.weight.device)
        return super().forward(y)


def check_unconditional_labels(y: torch.Tensor | None) -> None:
    """The error of an unconditional model given labels."""
    if y is not None:
        fail("y", "None: this model is unconditional (build it with num_classes=K to use labels)", "labels")
