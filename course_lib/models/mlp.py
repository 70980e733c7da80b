"""A small residual MLP denoiser for 1D and 2D toy data (notebooks 02-03).

Like every network in the course it knows nothing of noise: it maps (x_t, t) to a prediction of
ε, x0 or v, whichever the loss asks for.
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib._validation import check_positive_int, check_rank, fail
from course_lib.models.embeddings import TimestepEmbedding


class ResidualBlock(nn.Module):
    """h + Linear(SiLU(Linear(LayerNorm(h)) · (1 + scale) + shift)), with (scale, shift) from the time embedding."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.inner = nn.Linear(hidden, hidden)
        self.time_to_scale_shift = nn.Linear(hidden, 2 * hidden)
        self.outer = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """h: (B, hidden), time: (B, hidden) -> (B, hidden)."""
        scale, shift = self.time_to_scale_shift(time).chunk(2, dim=-1)
        inner = self.inner(self.norm(h)) * (1 + scale) + shift
        return h + self.outer(nn.functional.silu(inner))


class MLPDenoiser(nn.Module):
    """x_t (B, D), t (B,) int -> prediction (B, D).

    ``depth`` residual blocks of width ``hidden``; the timestep enters every block through a
    sinusoidal embedding of size ``time_dim`` and an MLP (:class:`TimestepEmbedding`). The output
    layer starts at zero, so an untrained ε-model predicts "no noise" and its loss starts near 1.
    """

    def __init__(self, data_dim: int, hidden: int = 256, depth: int = 3, time_dim: int = 64):
        super().__init__()
        self.data_dim = check_positive_int("data_dim", data_dim)
        check_positive_int("hidden", hidden)
        check_positive_int("depth", depth)
        if check_positive_int("time_dim", time_dim) % 2:
            fail("time_dim", "an even int (sin and cos features)", time_dim)
        self.time_embedding = TimestepEmbedding(time_dim, hidden)
        self.input = nn.Linear(data_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(depth))
        self.output = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, data_dim))
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        check_rank("x", x, 2, f"(B, D={self.data_dim})")
        if x.shape[1] != self.data_dim:
            fail("x", f"points of dimension D={self.data_dim}, shape (B, {self.data_dim})", f"shape {tuple(x.shape)}")
        check_rank("t", t, 1, "(B,)")
        if t.shape[0] != x.shape[0]:
            fail("t", f"one timestep per point, shape ({x.shape[0]},)", f"shape {tuple(t.shape)}")
        time = self.time_embedding(t)  # (B, hidden)
        h = self.input(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, time)
        return self.output(h)  # (B, D)
