"""The video denoiser of notebook 07: a factorised space-time U-Net (Ho et al. 2022a, "Video Diffusion Models").

Space and time are handled by separate, cheap operations instead of 3D convolutions:

* **space**: every frame goes through the same 2D layers, time folded into the batch
  ((B, T, C, H, W) -> (B·T, C, H, W)): 3x3 convolutions ((1, 3, 3) kernels in 3D terms), ResBlocks
  with the timestep embedding, and spatial self-attention at the lowest resolution;
* **time**: after each ResBlock, :class:`TemporalAttention` lets every pixel attend along the frame
  axis (one sequence of T feature vectors per pixel), with a learned relative position bias, as in
  Imagen Video (Ho et al. 2022b) and T5 (Raffel et al. 2020). Nothing else mixes frames, unless
  ``temporal_conv=True`` adds a :class:`TemporalConv` (a kernel-3 convolution along time) after
  each ResBlock too, and ``frame_embedding=True`` tells every frame its index in the clip.

Layout for ``channel_mults=(1, 2, 4)``, 32x32 frames::

    conv_in -> level 0 (32x32) -> down -> level 1 (16x16) -> down -> level 2 (8x8)
            -> middle (res, spatial attention, temporal attention, res)
            -> level 2 (8x8) -> up -> level 1 (16x16) -> up -> level 0 (32x32) -> conv_out

where a level is ``num_res_blocks`` x (ResBlock [+ spatial attention] [+ temporal attention]),
"down" a stride-2 3x3 convolution and "up" a stride-2 4x4 transposed convolution, both changing
the width to the next level's.

Each level keeps one skip connection (its output on the way down); on the way up the first ResBlock
of the level takes ``concat[h, skip]``, or, for a level with no ResBlocks, the skip is added.
``num_res_blocks`` may differ per level: ``(0, 1, 1, 1)`` leaves the full-resolution level with
only ``conv_in``, the skip and ``conv_out`` -- the fast layout of :func:`unet3d_for_preset`, which
puts its parameters where pixels are few (about 4x fewer multiply-adds per parameter at each
level down).

**Joint image + video training** (Ho et al. 2022a, "Video Diffusion Models"): ``image_mode=True``
masks temporal attention so that each frame attends only to itself. The T "frames" of a clip are
then T independent images that share the clip's timestep, and the network is exactly an image
model applied frame by frame. Train on video batches with ``image_mode=False`` and on image batches
reshaped to (B, T, C, H, W) with ``image_mode=True``, with the same weights.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_int_range, check_positive_int, check_rank, check_tensor, fail
from course_lib.models.blocks import ResBlock, SelfAttention, group_norm
from course_lib.models.embeddings import ClassEmbedding, TimestepEmbedding, check_unconditional_labels


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class RelativePositionBias(nn.Module):
    """A learned scalar per head and frame offset, added to temporal attention logits (T5-style).

    forward(frames) -> bias (num_heads, frames, frames) with ``bias[h, i, j] = table[h, j - i]``:
    it depends on how far apart two frames are, not on where they sit in the clip. Offsets run over
    ``-(max_frames - 1) … max_frames - 1`` (one entry each; T5 buckets long offsets, our clips are
    short). Starts at zero: an untrained model does not prefer any offset.
    """

    def __init__(self, num_heads: int, max_frames: int):
        super().__init__()
        self.max_frames = check_positive_int("max_frames", max_frames)
        self.table = nn.Parameter(torch.zeros(num_heads, 2 * max_frames - 1))

    def forward(self, frames: int) -> torch.Tensor:
        check_int_range("frames", frames, 1, self.max_frames)
        position = torch.arange(frames, device=self.table.device)
        offset = position[None, :] - position[:, None]  # (T, T): j - i
        return self.table[:, offset + self.max_frames - 1]  # (heads, T, T)


class TemporalAttention(nn.Module):
    """Self-attention along time at every pixel, with a residual connection.

    h: (B·T, C, H, W) (frames folded into the batch) -> same shape. Each pixel's T feature vectors
    form one sequence; attention is softmax(QKᵀ/√d + bias)·V (Vaswani et al. 2017, eq. 1, plus the
    relative position bias), d = C / num_heads, per head. ``image_mode=True`` adds -inf off the
    diagonal: every frame attends only to itself, so frames do not influence each other.
    ``causal=True`` adds -inf above it: frame i attends to frames j ≤ i only, so no frame sees its
    future (the causal video models of Diffusion Forcing, Chen et al. 2024).

    The pixels stay where they are: q, k, v are (B, T, heads, d, H·W) and the T x T attention of
    every pixel is computed with ``einsum`` at once, (B, T, T, heads, H·W). On CPU this measured
    about 20% faster (forward + backward, T = 8, 16x16, 32 channels) than moving the pixels into
    the batch for ``F.scaled_dot_product_attention``, which with a learned bias falls back to its
    unfused path anyway. The normalisation is a per-frame GroupNorm: no statistic mixes frames.
    """

    def __init__(self, channels: int, num_heads: int = 4, max_frames: int = 32, causal: bool = False):
        super().__init__()
        self.causal = causal
        check_positive_int("channels", channels)
        check_positive_int("num_heads", num_heads)
        if channels % num_heads:
            fail("num_heads", f"a divisor of channels={channels}", num_heads)
        self.channels, self.num_heads = channels, num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)  # a Linear on each pixel's channels
        self.proj = nn.Conv2d(channels, channels, 1)
        self.position_bias = RelativePositionBias(num_heads, max_frames)

    def forward(self, h: torch.Tensor, frames: int, image_mode: bool = False) -> torch.Tensor:
        BT, C, H, W = h.shape
        B, T, heads, d = BT // frames, frames, self.num_heads, C // self.num_heads
        q, k, v = self.qkv(self.norm(h)).reshape(B, T, 3, heads, d, H * W).unbind(2)  # each (B, T, heads, d, P)
        logits = torch.einsum("bihdp,bjhdp->bijhp", q, k) * d**-0.5  # (B, T_query, T_key, heads, P)
        bias = self.position_bias(T).permute(1, 2, 0)  # (T, T, heads)
        if image_mode:
            alone = torch.eye(T, dtype=torch.bool, device=h.device)[:, :, None]
            bias = bias.masked_fill(~alone, float("-inf"))
        elif self.causal:
            future = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1)[:, :, None]  # j > i
            bias = bias.masked_fill(future, float("-inf"))
        weights = torch.softmax(logits + bias[:, :, :, None].to(logits.dtype), dim=2)  # over the keys j
        out = torch.einsum("bijhp,bjhdp->bihdp", weights, v)  # (B, T, heads, d, P)
        return h + self.proj(out.reshape(BT, C, H, W))


class TemporalConv(nn.Module):
    """A residual convolution along time at every pixel: h + W·[h_{t−1}, h_t, h_{t+1}] (kernel 3, zero-padded).

    h: (B·T, C, H, W) (frames folded into the batch) -> same shape. The "pseudo-3D" temporal layer of
    Make-A-Video (Singer et al. 2022): a 1D convolution over frames after the 2D spatial one. Where
    attention averages frames with positive weights, this takes differences directly
    (h_{t+1} − h_{t−1} is a velocity), which is what constant motion needs. Written as one 1x1
    convolution over the three frames' channels side by side (a matmul; faster on CPU than a
    (3, 1, 1) Conv3d). The output weights start at zero: a new layer begins as the identity.
    ``image_mode=True`` skips it (no frame sees another); ``causal=True`` gives frame t zeros in
    place of h_{t+1} (no frame sees its future).
    """

    def __init__(self, channels: int, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.norm = group_norm(check_positive_int("channels", channels))
        self.mix = nn.Conv2d(3 * channels, channels, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, h: torch.Tensor, frames: int, image_mode: bool = False) -> torch.Tensor:
        if image_mode:
            return h
        BT, C, H, W = h.shape
        a = F.silu(self.norm(h)).reshape(BT // frames, frames, C, H, W)
        before = F.pad(a[:, :-1], (0, 0, 0, 0, 0, 0, 1, 0))  # frame t sees t − 1 (zeros before the first)
        after = F.pad(a[:, 1:], (0, 0, 0, 0, 0, 0, 0, 1))  # and t + 1 (zeros after the last)
        if self.causal:
            after = torch.zeros_like(after)
        return h + self.mix(torch.cat([before, a, after], dim=2).reshape(BT, 3 * C, H, W))


class SpaceTimeLayer(nn.Module):
    """ResBlock per frame, [temporal convolution], optional spatial attention per frame, optional temporal attention.

    h: (B·T, C_in, H, W), emb: (B·T, emb_dim) -> (B·T, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, spatial_attention: bool,
                 temporal_attention: bool, num_heads: int, max_frames: int, temporal_conv: bool = False,
                 causal: bool = False):
        super().__init__()
        self.res = ResBlock(in_channels, out_channels, emb_dim)
        self.temporal_conv = TemporalConv(out_channels, causal) if temporal_conv else None
        self.spatial = SelfAttention(out_channels, num_heads) if spatial_attention else None
        self.temporal = TemporalAttention(out_channels, num_heads, max_frames, causal) if temporal_attention else None

    def forward(self, h: torch.Tensor, emb: torch.Tensor, frames: int, image_mode: bool) -> torch.Tensor:
        h = self.res(h, emb)
        if self.temporal_conv is not None:
            h = self.temporal_conv(h, frames, image_mode)
        if self.spatial is not None:
            h = self.spatial(h)
        if self.temporal is not None:
            h = self.temporal(h, frames, image_mode)
        return h


class Upsample(nn.Module):
    """Double H and W with a learned 4x4 transposed convolution (stride 2) that also sets the channels.

    (N, C_in, H, W) -> (N, C_out, 2H, 2W). Every output pixel mixes a 2x2 neighbourhood of inputs;
    the kernel is a multiple of the stride, so every output pixel gets the same number of
    contributions (no uneven-overlap checkerboard, Odena et al. 2016). About half the time of
    nearest-neighbour + 3x3 convolution at the doubled size on CPU.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h)


class UNet3D(nn.Module):
    """ε/x0/v-predicting video U-Net: forward(x (B, T, C, H, W), t (B,) or (B, T), y=None, image_mode=False) -> (B, T, C, H, W).

    in_channels: C of the frames. base_channels: width at full resolution; level i works at
    H / 2**i with ``base_channels * channel_mults[i]`` channels. num_res_blocks: ResBlocks per level
    on each path, an int or one count per level (0: the level only passes its skip).
    attention_levels: levels whose ResBlocks are followed by spatial self-attention (default: the
    lowest level; the middle always has it). temporal_attention: a temporal attention after every
    ResBlock and in the middle. num_heads: heads of both attentions. max_frames: the longest clip
    (size of the relative position table). time_dim: timestep embedding size (default
    4 * base_channels). num_classes: None (unconditional) or K: one label per clip (e.g. the digit
    that moves), embedded and added to the timestep embedding, with the null label K for
    classifier-free guidance (as in :class:`~course_lib.models.unet2d.UNet2D`). temporal_conv: a
    :class:`TemporalConv` after every ResBlock too (frames then mix by differences as well as by attention).
    frame_embedding: a learned vector per frame index 0 … max_frames − 1, added to that frame's
    timestep embedding (starts at zero; left out in ``image_mode``, where frames are independent images).
    causal: no frame sees the frames after it (causal temporal attention and convolution), so frame j's
    output depends on frames 0 … j only, as in Diffusion Forcing's causal models (Chen et al. 2024).
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 4),
        num_res_blocks: int | Sequence[int] = 1,
        attention_levels: Sequence[int] | None = None,
        temporal_attention: bool = True,
        num_heads: int = 4,
        max_frames: int = 32,
        time_dim: int | None = None,
        num_classes: int | None = None,
        temporal_conv: bool = False,
        frame_embedding: bool = False,
        causal: bool = False,
    ):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("base_channels", base_channels)
        check_positive_int("num_heads", num_heads)
        check_positive_int("max_frames", max_frames)
        channel_mults = tuple(channel_mults)
        if not channel_mults or not all(_is_int(m) and m >= 1 for m in channel_mults):
            fail("channel_mults", "a non-empty sequence of positive ints", channel_mults)
        levels = len(channel_mults)
        widths = [base_channels * m for m in channel_mults]
        blocks = (num_res_blocks,) * levels if _is_int(num_res_blocks) else tuple(num_res_blocks)
        if len(blocks) != levels or not all(_is_int(n) and n >= 0 for n in blocks):
            fail("num_res_blocks", f"an int >= 0 or {levels} of them (one per level)", num_res_blocks)
        attention_levels = (levels - 1,) if attention_levels is None else tuple(attention_levels)
        for level in attention_levels:
            check_int_range("attention_levels", level, 0, levels - 1)
        for name, flag in (("temporal_attention", temporal_attention), ("temporal_conv", temporal_conv),
                           ("frame_embedding", frame_embedding), ("causal", causal)):
            if not isinstance(flag, bool):
                fail(name, "True or False", flag)
        for width in widths:
            if width % num_heads:
                fail("num_heads", f"a divisor of every level's width {widths}", num_heads)
        time_dim = 4 * base_channels if time_dim is None else check_positive_int("time_dim", time_dim)

        self.in_channels, self.channel_mults, self.num_res_blocks = in_channels, channel_mults, blocks
        self.attention_levels, self.max_frames = attention_levels, max_frames
        self.num_classes = num_classes
        self.time_embedding = TimestepEmbedding(base_channels, time_dim)
        self.label_embedding = ClassEmbedding(num_classes, time_dim) if num_classes is not None else None
        self.frame_embedding = nn.Embedding(max_frames, time_dim) if frame_embedding else None
        if self.frame_embedding is not None:  # starts at zero: an untrained model treats every frame alike
            nn.init.zeros_(self.frame_embedding.weight)
        self.conv_in = nn.Conv2d(in_channels, widths[0], 3, padding=1)

        def layer(level: int, cin: int, cout: int) -> SpaceTimeLayer:
            return SpaceTimeLayer(cin, cout, time_dim, level in attention_levels, temporal_attention,
                                  num_heads, max_frames, temporal_conv, causal)

        self.down = nn.ModuleList(
            nn.ModuleList(layer(level, widths[level], widths[level]) for _ in range(blocks[level]))
            for level in range(levels)
        )
        self.downsample = nn.ModuleList(  # stride-2 conv from level i's width to level i+1's
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(levels - 1)
        )
        bottom = widths[-1]
        self.middle_in = SpaceTimeLayer(bottom, bottom, time_dim, True, temporal_attention, num_heads, max_frames,
                                        temporal_conv, causal)
        self.middle_out = ResBlock(bottom, bottom, time_dim)
        self.up = nn.ModuleList(  # the first block of each level eats the skip: 2 * width channels in
            nn.ModuleList(layer(level, (2 if j == 0 else 1) * widths[level], widths[level])
                          for j in range(blocks[level]))
            for level in range(levels)
        )
        self.upsample = nn.ModuleList(Upsample(widths[i + 1], widths[i]) for i in range(levels - 1))
        self.norm_out = group_norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], in_channels, 3, padding=1)

    @property
    def null_label(self) -> int | None:
        """The label index that means "no class" (= num_classes), or None for an unconditional model."""
        return self.num_classes

    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, image_mode: object) -> None:
        check_tensor("x", x)
        if x.dim() == 4:
            fail("x", "a video batch of rank 5 (B, T, C, H, W); for images (B, C, H, W) use x.unsqueeze(1) "
                      "(one-frame clips), or reshape to (B', T, C, H, W) with image_mode=True "
                      "(T independent images per clip)", f"shape {tuple(x.shape)}")
        check_rank("x", x, 5, "(B, T, C, H, W)")
        weight = self.conv_in.weight.dtype
        # autocast is asked about only when the dtypes differ: devices without autocast (meta) have no answer
        if x.dtype != weight and not (x.dtype in (torch.float32, torch.bfloat16, torch.float16)
                                      and torch.is_autocast_enabled(x.device.type)):
            fail("x", f"dtype {weight} like the model's weights (convert with x.to({weight}))",
                 f"dtype {x.dtype}")
        B, T, C, H, W = x.shape
        if C != self.in_channels:
            fail("x", f"{self.in_channels} channel(s), shape (B, T, {self.in_channels}, H, W)",
                 f"shape {tuple(x.shape)}")
        if not 1 <= T <= self.max_frames:
            fail("x", f"between 1 and max_frames={self.max_frames} frames (axis 1 of (B, T, C, H, W))",
                 f"shape {tuple(x.shape)}")
        factor = 2 ** (len(self.channel_mults) - 1)
        if H % factor or W % factor:
            fail("x", f"height and width divisible by {factor} (halved {len(self.channel_mults) - 1} times for "
                      f"{len(self.channel_mults)} levels)", f"shape {tuple(x.shape)}")
        check_rank("t", t, (1, 2), "(B,) or (B, T)")
        if tuple(t.shape) not in ((B,), (B, T)):
            fail("t", f"one timestep per clip, shape ({B},), or one per frame, shape ({B}, {T})",
                 f"shape {tuple(t.shape)}")
        if not isinstance(image_mode, bool):
            fail("image_mode", "True or False", image_mode)
        if self.label_embedding is None:
            check_unconditional_labels(y)
        else:
            self.label_embedding.check_labels(y, B, "clip")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                image_mode: bool = False) -> torch.Tensor:
        """x: (B, T, C, H, W), t: (B,) or (B, T) timesteps, y: (B,) labels in [0, K] (K = null) or None -> (B, T, C, H, W).

        A class-conditional model called with ``y=None`` uses the null label (unconditional).

        t (B, T): a noise level per frame (Diffusion Forcing, Chen et al. 2024): frame j of clip b
        is embedded with its own t[b, j], so the network can tell clean, half-noisy and pure-noise
        frames of one clip apart. t (B,) is one level for the whole clip, as in every other lesson.

        image_mode: treat the T frames of each clip as independent images (temporal attention sees
        only the frame itself); used for joint image + video training.
        """
        self._check_inputs(x, t, y, image_mode)
        B, T, C, H, W = x.shape
        if t.dim() == 1:
            emb = self.time_embedding(t)  # (B, time_dim)
            if self.label_embedding is not None:
                emb = emb + self.label_embedding(y, B)
            emb = emb.repeat_interleave(T, dim=0)  # (B·T, time_dim): one t (and label) per clip
        else:  # a timestep per frame: (B, T) -> (B·T, time_dim), the label still one per clip
            emb = self.time_embedding(t.reshape(B * T))
            if self.label_embedding is not None:
                emb = emb + self.label_embedding(y, B).repeat_interleave(T, dim=0)
        if self.frame_embedding is not None and not image_mode:  # where the frame sits in its clip (0 … T − 1)
            emb = emb + self.frame_embedding.weight[:T].repeat(B, 1)

        h = self.conv_in(x.reshape(B * T, C, H, W))  # (B·T, width_0, H, W)
        skips = []
        for level, layers in enumerate(self.down):
            for layer in layers:
                h = layer(h, emb, T, image_mode)
            skips.append(h)  # the level's output, before it is halved
            if level < len(self.downsample):
                h = self.downsample[level](h)

        h = self.middle_out(self.middle_in(h, emb, T, image_mode), emb)

        for level in reversed(range(len(self.up))):
            skip = skips.pop()
            if not self.up[level]:
                h = h + skip
            for j, layer in enumerate(self.up[level]):
                h = layer(torch.cat([h, skip], dim=1) if j == 0 else h, emb, T, image_mode)
            if level > 0:
                h = self.upsample[level - 1](h)
        out = self.conv_out(F.silu(self.norm_out(h)))  # (B·T, C, H, W)
        return out.reshape(B, T, C, H, W)


FAST_CHANNEL_MULTS = (1, 1, 2, 4)
FAST_NUM_RES_BLOCKS = (0, 1, 1, 1)


def unet3d_for_preset(preset, max_frames: int = 32, num_classes: int | None = None, temporal_conv: bool = False,
                      frame_embedding: bool = False) -> UNet3D:
    """A :class:`UNet3D` sized by ``preset`` (video_channels, video_base_channels, video_frames).

    The fast layout: ``channel_mults=(1, 1, 2, 4)`` and ``num_res_blocks=(0, 1, 1, 1)``, so the
    full-resolution level only has conv_in, its skip and conv_out, and the parameters sit at 1/2,
    1/4 and 1/8 of the frame size. ``cpu`` preset (base 32): 2.44M parameters, one training step at
    (B=8, T=8, 1, 32x32) in about 0.3 s on 2 CPU cores (``python -m course_lib bench video``);
    ``smoke`` (base 16): 0.61M; ``gpu`` (base 64, RGB): 9.7M. H and W must be divisible by 8.
    num_classes: None, or K for a class-conditional model (one label per clip). temporal_conv,
    frame_embedding: see :class:`UNet3D` (the frame-conditional U-Net of notebook 08 has both).
    """
    if not hasattr(preset, "video_base_channels"):
        fail("preset", "a course_lib.config.Preset (see get_preset())", type(preset).__name__)
    return UNet3D(in_channels=preset.video_channels, base_channels=preset.video_base_channels,
                  channel_mults=FAST_CHANNEL_MULTS, num_res_blocks=FAST_NUM_RES_BLOCKS,
                  max_frames=max(max_frames, preset.video_frames), num_classes=num_classes,
                  temporal_conv=temporal_conv, frame_embedding=frame_embedding)
