"""The image denoiser: a U-Net with timestep (and optional class) conditioning, plus guidance.

Layout (Ho et al. 2020, after PixelCNN++ / Wide-ResNet U-Nets), for ``channel_mults=(1, 2, 2)``
at 28x28::

    conv_in -> level 0 (28x28) -> down -> level 1 (14x14) -> down -> level 2 (7x7, attention)
            -> middle (res, attention, res)
            -> level 2 (7x7) -> up -> level 1 (14x14) -> up -> level 0 (28x28) -> conv_out

Every level of the way down stores its activations; the way up concatenates them back in (the
skip connections). Level ``i`` works at H / 2**i, so H and W must be divisible by
2**(len(channel_mults) - 1).

Classifier-free guidance (Ho & Salimans 2022): with ``num_classes=K`` the label embedding has K + 1
rows; row K is the "null" label meaning "no class". Training drops labels to the null class with
:func:`course_lib.diffusion.objectives.drop_labels`; sampling mixes both predictions with
:func:`~course_lib.diffusion.guidance.guided_denoiser`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import (
    check_float_range,
    check_int_range,
    check_positive_int,
    check_rank,
    check_tensor,
    fail,
)
from course_lib.models.blocks import Downsample, ResBlock, SelfAttention, Upsample, group_norm
from course_lib.models.embeddings import ClassEmbedding, TimestepEmbedding, check_unconditional_labels


class UNet2D(nn.Module):
    """ε/x0/v-predicting U-Net for images: forward(x (B, C, H, W), t (B,), y (B,) | None) -> (B, C, H, W).

    in_channels: C of the images. base_channels: width of level 0; level i has
    ``base_channels * channel_mults[i]`` channels. num_res_blocks: ResBlocks per level on the way
    down (one more on the way up, which also takes the skip). attention_levels: levels with
    self-attention (default: the lowest resolution only; the middle always has attention).
    num_classes: None for an unconditional model; K adds a label embedding for K classes plus the
    null label K. time_dim: size of the timestep embedding (default 4 * base_channels).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention_levels: Sequence[int] | None = None,
        num_classes: int | None = None,
        dropout: float = 0.0,
        time_dim: int | None = None,
        num_heads: int = 1,
    ):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("base_channels", base_channels)
        check_positive_int("num_res_blocks", num_res_blocks)
        check_float_range("dropout", dropout, 0.0, 1.0)
        channel_mults = tuple(channel_mults)
        if not channel_mults or not all(isinstance(m, int) and m >= 1 for m in channel_mults):
            fail("channel_mults", "a non-empty sequence of positive ints", channel_mults)
        levels = len(channel_mults)
        attention_levels = (levels - 1,) if attention_levels is None else tuple(attention_levels)
        for level in attention_levels:
            check_int_range("attention_levels", level, 0, levels - 1)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        time_dim = 4 * base_channels if time_dim is None else check_positive_int("time_dim", time_dim)

        self.in_channels, self.num_classes, self.channel_mults = in_channels, num_classes, channel_mults
        self.attention_levels = attention_levels
        self.time_embedding = TimestepEmbedding(base_channels, time_dim)
        # K classes + 1 null label (index K) for classifier-free guidance
        self.label_embedding = ClassEmbedding(num_classes, time_dim) if num_classes is not None else None
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, time_dim, dropout)

        def attention(level: int, ch: int) -> nn.Module:
            return SelfAttention(ch, num_heads) if level in attention_levels else nn.Identity()

        # way down: remember the channel count of every activation stored for a skip connection
        self.down = nn.ModuleList()
        skip_channels, ch = [base_channels], base_channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(nn.ModuleList([res(ch, base_channels * mult), attention(level, base_channels * mult)]))
                ch = base_channels * mult
                skip_channels.append(ch)
            if level < levels - 1:
                self.down.append(Downsample(ch))
                skip_channels.append(ch)

        self.middle = nn.ModuleList([res(ch, ch), SelfAttention(ch, num_heads), res(ch, ch)])

        # way up: each block eats one stored activation
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                cin = ch + skip_channels.pop()
                self.up.append(nn.ModuleList([res(cin, base_channels * mult), attention(level, base_channels * mult)]))
                ch = base_channels * mult
            if level > 0:
                self.up.append(Upsample(ch))

        self.norm_out = group_norm(ch)
        self.conv_out = nn.Conv2d(ch, in_channels, 3, padding=1)

    @property
    def null_label(self) -> int | None:
        """The label index that means "no class" (= num_classes), or None for an unconditional model."""
        return self.num_classes

    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> None:
        check_rank("x", x, 4, "(B, C, H, W)")
        if x.shape[1] != self.in_channels:
            fail("x", f"{self.in_channels} channel(s), shape (B, {self.in_channels}, H, W)", f"shape {tuple(x.shape)}")
        factor = 2 ** (len(self.channel_mults) - 1)
        if x.shape[-2] % factor or x.shape[-1] % factor:
            fail("x", f"height and width divisible by {factor} (halved {factor.bit_length() - 1} times for "
                      f"{len(self.channel_mults)} levels)", f"shape {tuple(x.shape)}")
        check_rank("t", t, 1, "(B,)")
        if t.shape[0] != x.shape[0]:
            fail("t", f"one timestep per image, shape ({x.shape[0]},)", f"shape {tuple(t.shape)}")
        if self.label_embedding is None:
            check_unconditional_labels(y)
        else:
            self.label_embedding.check_labels(y, x.shape[0], "image")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W), t: (B,) timesteps, y: (B,) labels in [0, K] (K = null) or None -> (B, C, H, W).

        A class-conditional model called with ``y=None`` uses the null label (unconditional).
        """
        check_tensor("x", x)
        check_tensor("t", t)
        self._check_inputs(x, t, y)
        emb = self.time_embedding(t)  # (B, time_dim)
        if self.label_embedding is not None:
            emb = emb + self.label_embedding(y, x.shape[0])

        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            if isinstance(block, Downsample):
                h = block(h)
            else:
                res, attention = block
                h = attention(res(h, emb))
            skips.append(h)

        res1, attention, res2 = self.middle
        h = res2(attention(res1(h, emb)), emb)

        for block in self.up:
            if isinstance(block, Upsample):
                h = block(h)
            else:
                res, attention = block
                h = attention(res(torch.cat([h, skips.pop()], dim=1), emb))
        return self.conv_out(F.silu(self.norm_out(h)))


def unet2d_for_preset(preset, num_classes: int | None = None, in_channels: int = 1) -> UNet2D:
    """A :class:`UNet2D` sized by ``preset`` (``image_base_channels``; mults (1, 2, 2) for 28x28 / 32x32).

    ``cpu`` preset (base 32): about 1.1M parameters.
    """
    if not hasattr(preset, "image_base_channels"):
        fail("preset", "a course_lib.config.Preset (see get_preset())", type(preset).__name__)
    return UNet2D(in_channels=in_channels, base_channels=preset.image_base_channels, num_classes=num_classes)
