"""A space-time transformer denoiser over video patches: DiT (Peebles & Xie 2023) made a video model as in Latte (Ma et al. 2024).

Where the U-Net of notebook 07 works on pixels with convolutions, this model cuts every frame into
p x p patches, turns each patch into one token, and lets the tokens attend to each other::

    x (B, F, C, H, W) --patchify--> (B, F, N, C·p·p), N = (H/p)·(W/p) patches per frame
      --linear--> tokens (B, F, N, D) + spatial and temporal positions
      --depth x SpaceTimeBlock--> (B, F, N, D)
      --final layer--> (B, F, N, C·p·p) --unpatchify--> (B, F, C, H, W)

**Attention.** ``attention="factorised"`` (Latte's variant with a spatial and a temporal attention
in every block; also the factorised encoder of ViViT, Arnab et al. 2021): spatial attention mixes
the N patches of one frame, then temporal attention mixes the F copies of one patch position
across frames. Its cost is F·N² + N·F² pairs instead of (F·N)² for ``attention="full"``, one
attention over all F·N tokens of the clip.

**Positions.** Fixed sinusoidal features (Vaswani et al. 2017), no parameters: the 2D sin-cos of DiT
for the patch's (row, column) plus a 1D sin-cos of the frame index, both added to the tokens.
Fixed rather than learned because there is little data to learn them from, and because a clip
shorter than ``frames`` uses the first rows of the same table.

**Conditioning: adaLN-Zero** (Peebles & Xie 2023, Sec. 3.2). The timestep embedding (plus the
label embedding, with the null label ``num_classes`` for classifier-free guidance, as the U-Nets
do) is a vector c (B, D). A linear layer of SiLU(c) gives, for every sub-layer of a block, a shift
β, a scale γ and a gate α, and the sub-layer f becomes::

    h = h + α · f(modulate(LayerNorm(h), β, γ)),    modulate(x, β, γ) = x·(1 + γ) + β.

That linear layer starts at zero (α = 0): every block begins as the identity, and the final
linear layer starts at zero too, so a fresh model predicts 0.

**Text: cross-attention** (Rombach et al. 2022; PixArt-α, Chen et al. 2023). With ``context_dim``
each block attends from every video token to ``context`` (B, L, context_dim), e.g. the token
features of a caption; ``context_mask`` (B, L) marks the real tokens (True) and padding (False),
which gets no weight. Every query also sees a learned null token, so a caption of only padding, or
``context=None``, is the "no caption" of classifier-free guidance. Its output projection starts at
zero, keeping the block an identity at the start.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_choice, check_positive_int, check_rank, check_tensor, fail
from course_lib.models.embeddings import ClassEmbedding, TimestepEmbedding, check_unconditional_labels

ATTENTIONS = ("factorised", "full")


# --- patches ---------------------------------------------------------------------------------------

def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut every frame into p x p patches: x (B, F, C, H, W) -> tokens (B, F, N, C·p·p).

    N = (H/p)·(W/p). Patches are numbered row by row (patch n sits at row n // (W/p), column
    n % (W/p)); a token lists its patch's values channel first: index c·p·p + i·p + j is channel c,
    pixel (i, j) of the patch. :func:`unpatchify` is the exact inverse.
    """
    check_rank("x", x, 5, "(B, F, C, H, W)")
    p = check_positive_int("patch_size", patch_size)
    B, T, C, H, W = x.shape
    if H % p or W % p:
        fail("patch_size", f"a divisor of the frame height and width {H}x{W}", patch_size)
    x = x.reshape(B, T, C, H // p, p, W // p, p)  # (B, F, C, rows, i, cols, j)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)  # (B, F, rows, cols, C, i, j)
    return x.reshape(B, T, (H // p) * (W // p), C * p * p)


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int, size: int) -> torch.Tensor:
    """Put patches back into frames: tokens (B, F, N, C·p·p) -> x (B, F, C, size, size); inverse of :func:`patchify`."""
    check_rank("tokens", tokens, 4, "(B, F, N, C·p·p)")
    p, C = check_positive_int("patch_size", patch_size), check_positive_int("channels", channels)
    check_positive_int("size", size)
    if size % p:
        fail("patch_size", f"a divisor of size={size}", patch_size)
    B, T, N, D = tokens.shape
    g = size // p  # patches per row and per column
    if (N, D) != (g * g, C * p * p):
        fail("tokens", f"shape (B, F, {g * g}, {C * p * p}) for {C} channel(s), size {size}, patch_size {p}",
             f"shape {tuple(tokens.shape)}")
    x = tokens.reshape(B, T, g, g, C, p, p).permute(0, 1, 4, 2, 5, 3, 6)  # (B, F, C, rows, i, cols, j)
    return x.reshape(B, T, C, size, size)


# --- positions and modulation ----------------------------------------------------------------------

def sinusoidal_positions(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin(pos·w_k), cos(pos·w_k)] with w_k = 10000^(−k/(dim/2)) (Vaswani et al. 2017): (P,) -> (P, dim), dim even."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def space_time_positions(frames: int, grid: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed position features: spatial (N, dim) for a grid x grid of patches, temporal (frames, dim).

    Spatial (as DiT): half the features encode the patch's row, half its column. Temporal: the
    frame index. dim must be a multiple of 4.
    """
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")  # patch n = row·grid + col
    spatial = torch.cat([sinusoidal_positions(rows.flatten(), dim // 2),
                         sinusoidal_positions(cols.flatten(), dim // 2)], dim=-1)
    return spatial, sinusoidal_positions(torch.arange(frames), dim)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation x·(1 + scale) + shift (Peebles & Xie 2023): scale 0 and shift 0 leave x unchanged.

    x: (..., D); shift and scale broadcast against it (here (B, F or 1, 1, D) for tokens (B, F, N, D)).
    """
    return x * (1 + scale) + shift


# --- layers ----------------------------------------------------------------------------------------

class Attention(nn.Module):
    """Multi-head attention softmax(QKᵀ/√d)·V (Vaswani et al. 2017, eq. 1), d = D / num_heads.

    forward(x (S, L, D), context (S, L_c, D_c) = x, mask (S, L_c) bool = None) -> (S, L, D). Self-attention
    when ``context`` is None; keys where ``mask`` is False get no weight. The caller decides what the
    S sequences are (frames, patch positions or whole clips).
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        S, L, D = x.shape
        context = x if context is None else context
        heads = lambda a: a.reshape(S, a.shape[1], self.num_heads, D // self.num_heads).transpose(1, 2)  # noqa: E731
        q = heads(self.q(x))  # (S, heads, L, d)
        k, v = (heads(a) for a in self.kv(context).chunk(2, dim=-1))  # each (S, heads, L_c, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None, None, :])
        return self.proj(out.transpose(1, 2).reshape(S, L, D))


class SpaceTimeBlock(nn.Module):
    """One transformer block over video tokens, with adaLN-Zero modulation.

    forward(h (B, F, N, D), c (B, F or 1, D), context (B, L, D_c) | None, mask (B, L) | None) -> (B, F, N, D).

    ``attention="factorised"``: spatial attention (each frame's N tokens), then temporal attention
    (each patch position's F tokens); ``"full"``: one attention over all F·N tokens. Then
    cross-attention to ``context`` (if built with ``context_dim``), then an MLP (D -> 4D -> D, GELU).
    Each self-attention and the MLP is h = h + α·f(modulate(LN(h), β, γ)) with (β, γ, α) from c; the
    cross-attention is h = h + f(LN(h), context) (PixArt-α), conditioned by its keys already.
    """

    def __init__(self, dim: int, num_heads: int, attention: str = "factorised", context_dim: int | None = None):
        super().__init__()
        self.attention = check_choice("attention", attention, ATTENTIONS)
        if attention == "factorised":
            self.spatial, self.temporal = Attention(dim, num_heads), Attention(dim, num_heads)
        else:
            self.full = Attention(dim, num_heads)
        self.cross = Attention(dim, num_heads, context_dim) if context_dim is not None else None
        if self.cross is not None:  # the learned "nothing to say" key and value every query may attend to
            self.null_context = nn.Parameter(torch.randn(1, 1, context_dim) * 0.02)
            nn.init.zeros_(self.cross.proj.weight)  # the block starts as the identity
            nn.init.zeros_(self.cross.proj.bias)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.sublayers = 3 if attention == "factorised" else 2  # (shift, scale, gate) for each attention and the MLP
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * self.sublayers * dim))
        nn.init.zeros_(self.adaLN[1].weight)  # adaLN-Zero: shift = scale = gate = 0
        nn.init.zeros_(self.adaLN[1].bias)

    def _spatial(self, a: torch.Tensor) -> torch.Tensor:
        """Each frame is a sequence: a (B, F, N, D) -> (B·F, N, D) -> attention -> (B, F, N, D)."""
        B, T, N, D = a.shape
        return self.spatial(a.reshape(B * T, N, D)).reshape(B, T, N, D)

    def _temporal(self, a: torch.Tensor) -> torch.Tensor:
        """Each patch position is a sequence: a (B, F, N, D) -> (B·N, F, D) -> attention -> (B, F, N, D)."""
        B, T, N, D = a.shape
        out = self.temporal(a.transpose(1, 2).reshape(B * N, T, D))
        return out.reshape(B, N, T, D).transpose(1, 2)

    def _full(self, a: torch.Tensor) -> torch.Tensor:
        """The whole clip is one sequence: a (B, F, N, D) -> (B, F·N, D) -> attention -> (B, F, N, D)."""
        B, T, N, D = a.shape
        return self.full(a.reshape(B, T * N, D)).reshape(B, T, N, D)

    def forward(self, h: torch.Tensor, c: torch.Tensor, context: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        modulation = self.adaLN(c)[:, :, None, :].chunk(3 * self.sublayers, dim=-1)  # each (B, F|1, 1, D)
        mixers = (self._spatial, self._temporal) if self.attention == "factorised" else (self._full,)
        for i, mix in enumerate(mixers):
            shift, scale, gate = modulation[3 * i: 3 * i + 3]
            h = h + gate * mix(modulate(self.norm(h), shift, scale))
        if self.cross is not None:
            h = h + self._cross(self.norm(h), context, mask)
        shift, scale, gate = modulation[-3:]
        return h + gate * self.mlp(modulate(self.norm(h), shift, scale))

    def _cross(self, a: torch.Tensor, context: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        """Every token of a clip attends to [null token, context]: a (B, F, N, D) -> (B, F, N, D)."""
        B, T, N, D = a.shape
        null = self.null_context.expand(B, 1, -1).to(a.dtype)
        keys = null if context is None else torch.cat([null, context.to(a.dtype)], dim=1)  # (B, 1 + L, D_c)
        if mask is not None:
            mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=a.device), mask], dim=1)  # the null token is always seen
        return self.cross(a.reshape(B, T * N, D), keys, mask).reshape(B, T, N, D)


class FinalLayer(nn.Module):
    """LayerNorm, adaLN modulation (shift, scale) and a linear map back to patch values, zero-initialised.

    h (B, F, N, D), c (B, F or 1, D) -> (B, F, N, out_dim).
    """

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_dim)
        for layer in (self.adaLN[1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN(c)[:, :, None, :].chunk(2, dim=-1)
        return self.linear(modulate(self.norm(h), shift, scale))


# --- the model -------------------------------------------------------------------------------------

class SpaceTimeTransformer(nn.Module):
    """ε/x0/v- or velocity-predicting video transformer: forward(x (B, F, C, H, W), t, y, context, context_mask) -> (B, F, C, H, W).

    in_channels: C (e.g. the latent channels of a video autoencoder). frames: the longest clip F.
    size: H = W of the frames. patch_size: p, a divisor of size; the model sees (size/p)² tokens per
    frame. dim: token width D. depth: number of :class:`SpaceTimeBlock`. num_heads: a divisor of D.
    num_classes: None, or K for one label per clip with the null label K (classifier-free
    guidance, as :class:`~course_lib.models.unet3d.UNet3D`). context_dim: None, or the width of the
    text tokens the blocks cross-attend to. attention: "factorised" or "full".
    """

    def __init__(self, in_channels: int, frames: int, size: int, patch_size: int = 2, dim: int = 128,
                 depth: int = 4, num_heads: int = 4, num_classes: int | None = None,
                 context_dim: int | None = None, attention: str = "factorised"):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("frames", frames), ("size", size),
                            ("patch_size", patch_size), ("dim", dim), ("depth", depth), ("num_heads", num_heads)):
            check_positive_int(name, value)
        if size % patch_size:
            fail("patch_size", f"a divisor of size={size}", patch_size)
        if dim % num_heads or dim % 4:
            fail("dim", f"a multiple of 4 and of num_heads={num_heads}", dim)
        if context_dim is not None:
            check_positive_int("context_dim", context_dim)
        check_choice("attention", attention, ATTENTIONS)
        self.in_channels, self.frames, self.size, self.patch_size = in_channels, frames, size, patch_size
        self.num_classes, self.context_dim, self.attention = num_classes, context_dim, attention

        self.patch_embedding = nn.Linear(in_channels * patch_size**2, dim)
        spatial, temporal = space_time_positions(frames, size // patch_size, dim)
        self.register_buffer("spatial_positions", spatial, persistent=False)  # (N, D)
        self.register_buffer("temporal_positions", temporal, persistent=False)  # (frames, D)
        self.time_embedding = TimestepEmbedding(dim, dim)
        self.label_embedding = ClassEmbedding(num_classes, dim) if num_classes is not None else None
        self.blocks = nn.ModuleList(SpaceTimeBlock(dim, num_heads, attention, context_dim) for _ in range(depth))
        self.final = FinalLayer(dim, in_channels * patch_size**2)

    @property
    def null_label(self) -> int | None:
        """The label index that means "no class" (= num_classes), or None for an unconditional model."""
        return self.num_classes

    def _check_inputs(self, x, t, y, context, context_mask) -> None:
        check_tensor("x", x)
        check_rank("x", x, 5, "(B, F, C, H, W)")
        B, T, C, H, W = x.shape
        if C != self.in_channels or (H, W) != (self.size, self.size) or not 1 <= T <= self.frames:
            fail("x", f"shape (B, 1…{self.frames}, {self.in_channels}, {self.size}, {self.size}) "
                      f"(at most frames={self.frames}, in_channels={self.in_channels}, size={self.size})",
                 f"shape {tuple(x.shape)}")
        check_rank("t", t, (1, 2), "(B,) or (B, F)")
        if tuple(t.shape) not in ((B,), (B, T)):
            fail("t", f"one timestep per clip, shape ({B},), or one per frame, shape ({B}, {T})",
                 f"shape {tuple(t.shape)}")
        if self.label_embedding is None:
            check_unconditional_labels(y)
        else:
            self.label_embedding.check_labels(y, B, "clip")
        if self.context_dim is None:
            if context is not None or context_mask is not None:
                fail("context", "None: this model has no cross-attention (build it with context_dim=D_c)",
                     "a context" if context is not None else "a context_mask")
            return
        if context is None:
            if context_mask is not None:
                fail("context_mask", "None when context is None", f"shape {tuple(context_mask.shape)}")
            return
        check_rank("context", context, 3, "(B, L, context_dim)")
        if context.shape[0] != B or context.shape[2] != self.context_dim:
            fail("context", f"shape ({B}, L, {self.context_dim})", f"shape {tuple(context.shape)}")
        if context_mask is not None:
            check_tensor("context_mask", context_mask)
            if context_mask.dtype != torch.bool or tuple(context_mask.shape) != tuple(context.shape[:2]):
                fail("context_mask", f"a bool tensor of shape {tuple(context.shape[:2])} (True = a real token)",
                     f"{context_mask.dtype} of shape {tuple(context_mask.shape)}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, F, C, H, W), t: (B,) or (B, F) timesteps (int or float), y: (B,) labels in [0, K] or None,
        context: (B, L, context_dim) or None, context_mask: (B, L) bool (True = a real token) or None -> (B, F, C, H, W).

        y=None on a class-conditional model means the null label; context=None (or a mask of only
        False) on a text-conditional model means no caption. t (B, F) gives every frame its own noise
        level (Diffusion Forcing, Chen et al. 2024), as :class:`~course_lib.models.unet3d.UNet3D` allows.
        """
        self._check_inputs(x, t, y, context, context_mask)
        B, T, C, H, W = x.shape
        h = self.patch_embedding(patchify(x, self.patch_size))  # (B, F, N, D)
        h = h + self.spatial_positions[None, None] + self.temporal_positions[None, :T, None]
        c = self.time_embedding(t.reshape(-1)).reshape(B, -1, h.shape[-1])  # (B, 1 or F, D)
        if self.label_embedding is not None:
            c = c + self.label_embedding(y, B)[:, None]
        for block in self.blocks:
            h = block(h, c, context, context_mask)
        return unpatchify(self.final(h, c), self.patch_size, C, self.size)  # (B, F, C, H, W)


# --- sizes per preset ------------------------------------------------------------------------------

PRESET_SIZES = {  # preset name -> (dim, depth, num_heads, patch_size)
    "smoke": (32, 2, 2, 2),
    "cpu": (128, 6, 4, 2),
    "gpu": (384, 12, 6, 2),
}


def transformer_for_preset(preset, in_channels: int, size: int, frames: int, num_classes: int | None = None,
                           context_dim: int | None = None) -> SpaceTimeTransformer:
    """A factorised :class:`SpaceTimeTransformer` sized by ``preset``: (dim, depth, heads, patch) from PRESET_SIZES.

    ``smoke``: D = 32, 2 blocks; ``cpu``: D = 128, 6 blocks, 4 heads (about the parameter count of
    the ``cpu`` :func:`~course_lib.models.unet3d.unet3d_for_preset`); ``gpu``: D = 384, 12 blocks,
    6 heads (the width and depth of DiT-S). Patch size 2 for all: an 8x8 latent is 16 tokens per frame.
    """
    if not hasattr(preset, "video_base_channels"):
        fail("preset", "a course_lib.config.Preset (see get_preset())", type(preset).__name__)
    dim, depth, num_heads, patch_size = PRESET_SIZES[check_choice("preset.name", preset.name, PRESET_SIZES)]
    return SpaceTimeTransformer(in_channels, frames, size, patch_size, dim, depth, num_heads, num_classes,
                                context_dim)
