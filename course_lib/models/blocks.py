"""Building blocks shared by the image U-Net and the video U-Net.

* :func:`group_norm` -- GroupNorm with a group count that divides the channels.
* :class:`ResBlock`  -- two 3x3 convolutions with GroupNorm, SiLU and the timestep embedding added
  in between (Ho et al. 2020, appendix B; the Wide-ResNet block of Zagoruyko & Komodakis 2016).
* :class:`SelfAttention` -- multi-head self-attention over *all trailing axes* of a channel-first
  tensor (B, C, *axes): (B, C, H, W) attends over the H·W pixels, (B, C, T) over T frames.
* :class:`Downsample` / :class:`Upsample` -- halve / double the spatial size of (B, C, H, W).

Every block here is 2D (or axis-agnostic for attention). A video model reuses them frame by frame
by folding time into the batch: ``x.reshape(B * T, C, H, W)`` with the embedding repeated T times
(``emb.repeat_interleave(T, dim=0)``), and attends along time by moving the frames last:
``(B, T, C, H, W) -> (B·H·W, C, T)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_positive_int, check_rank, fail


MAX_GROUPS = 32


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over ``channels`` with the most groups (≤ MAX_GROUPS) of at least 4 channels.

    32 channels -> 8 groups, 64 -> 16, 128 -> 32; a count with no such divisor falls back to 1 group
    (LayerNorm over C, H, W).
    """
    check_positive_int("channels", channels)
    groups = max((g for g in range(1, MAX_GROUPS + 1) if channels % g == 0 and channels // g >= 4), default=1)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Residual block conditioned on an embedding (timestep, plus class when there is one).

    h = Conv(SiLU(GN(x)));  h = h + Linear(SiLU(emb));  h = Conv(Dropout(SiLU(GN(h))));  out = skip(x) + h

    x: (B, in_channels, H, W), emb: (B, emb_dim) -> (B, out_channels, H, W). ``skip`` is a 1x1
    convolution when the channel count changes, else the identity.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels, self.emb_dim = in_channels, out_channels, emb_dim
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_channels)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = h + self.emb_proj(F.silu(emb))[:, :, None, None]  # the same shift for every pixel
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention with a residual connection, over every axis after the channels.

    x: (B, C, *axes) -> same shape. The N = prod(axes) positions are the tokens; each attends to all
    others with softmax(QKᵀ/√d)·V (Vaswani et al. 2017, eq. 1), d = C / num_heads.
    (B, C, H, W) gives spatial attention over H·W pixels; (B', C, T) attention along time.
    """

    def __init__(self, channels: int, num_heads: int = 1):
        super().__init__()
        check_positive_int("num_heads", num_heads)
        if channels % num_heads:
            fail("num_heads", f"a divisor of channels={channels}", num_heads)
        self.channels, self.num_heads = channels, num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[1] != self.channels:
            fail("x", f"a tensor (B, {self.channels}, ...) with at least one axis after the channels",
                 f"shape {tuple(x.shape)}")
        B, C = x.shape[:2]
        tokens = self.norm(x).reshape(B, C, -1)  # (B, C, N)
        q, k, v = self.qkv(tokens).reshape(B, 3, self.num_heads, C // self.num_heads, -1).unbind(1)
        # each (B, heads, d, N) -> (B, heads, N, d) for scaled_dot_product_attention
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        out = out.transpose(-1, -2).reshape(B, C, -1)  # (B, C, N)
        return x + self.proj(out).reshape(x.shape)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 convolution: (B, C, H, W) -> (B, C, H/2, W/2), H and W even."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rank("x", x, 4, "(B, C, H, W)")
        if x.shape[-1] % 2 or x.shape[-2] % 2:
            fail("x", "an even height and width to halve", f"shape {tuple(x.shape)}")
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W (nearest neighbour) then a 3x3 convolution: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_rank("x", x, 4, "(B, C, H, W)")
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
