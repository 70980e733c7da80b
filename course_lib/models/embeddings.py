"""Timestep embeddings shared by every denoiser in the course (MLP, U-Net 2D, video models)."""
from __future__ import annotations

import math

import torch
from torch import nn

from course_lib._checks_args import check_positive_int, check_rank, fail


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
