"""A tiny text encoder: caption tokens -> one vector per token, the context of cross-attention.

Real systems encode the prompt with a large pretrained model (CLIP in Stable Diffusion, T5 in
Imagen, Sora and CogVideoX; Rombach et al. 2022). The course's captions use a few dozen words
(:data:`course_lib.data.captions.VOCABULARY`), so a learned embedding per word, a learned embedding
per position and two transformer layers suffice. Nothing is downloaded: the encoder is trained
jointly with the denoiser, as one more module behind the denoiser's loss.

    ids (B, L) int64, mask (B, L) bool (True = real token) -> context (B, L, dim)

Self-attention looks only at real tokens, so the padding never changes the vectors of the words;
the padded positions of the output are zero. The denoiser's cross-attention takes ``context`` with
the same ``mask`` (its keys are the real tokens).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_positive_int, check_rank, check_tensor, fail


class TextBlock(nn.Module):
    """Pre-norm transformer layer over tokens: x + attention(LN(x)), then x + MLP(LN(x)); (B, L, dim) -> same."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, heads, L, d/heads); every query attends to the real tokens only
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, heads, L, d/heads)
        x = x + self.proj(h.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """Token + position embeddings and ``depth`` transformer layers: ids, mask (B, L) -> (B, L, dim).

    vocab_size: the number of token ids (``VOCAB_SIZE`` of :mod:`course_lib.data.captions`);
    max_len: the longest token sequence it accepts (its learned positions).
    """

    def __init__(self, vocab_size: int, dim: int = 64, depth: int = 2, num_heads: int = 4, max_len: int = 16):
        super().__init__()
        check_positive_int("vocab_size", vocab_size)
        check_positive_int("dim", dim)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            fail("depth", "an int >= 0 (transformer layers)", depth)
        check_positive_int("num_heads", num_heads)
        if dim % num_heads:
            fail("num_heads", f"a divisor of dim={dim}", num_heads)
        self.vocab_size, self.dim, self.max_len = vocab_size, dim, check_positive_int("max_len", max_len)
        self.tokens = nn.Embedding(vocab_size, dim)
        self.positions = nn.Embedding(max_len, dim)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.blocks = nn.ModuleList(TextBlock(dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def check_inputs(self, ids: object, mask: object) -> None:
        """Raise a clear ValueError unless ids (B, L ≤ max_len) are ids below vocab_size and mask (B, L) bool
        has at least one real token per row."""
        check_rank("ids", check_tensor("ids", ids), 2, "(B, L)")
        check_rank("mask", check_tensor("mask", mask), 2, "(B, L)")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            fail("ids", "an integer tensor of token ids", f"dtype {ids.dtype}")
        if ids.shape[1] > self.max_len:
            fail("ids", f"at most max_len={self.max_len} tokens per caption", f"shape {tuple(ids.shape)}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            fail("ids", f"token ids in [0, {self.vocab_size - 1}]", f"values in [{int(ids.min())}, {int(ids.max())}]")
        if mask.dtype != torch.bool or mask.shape != ids.shape:
            fail("mask", f"a bool tensor of the shape of ids {tuple(ids.shape)}",
                 f"dtype {mask.dtype}, shape {tuple(mask.shape)}")
        if not mask.any(1).all():
            fail("mask", "at least one real token per caption (the null caption is one NULL_ID token)",
                 f"rows without one: {torch.nonzero(~mask.any(1)).flatten().tolist()}")

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids (B, L) int64, mask (B, L) bool (True = real token) -> (B, L, dim), zero at the padding."""
        self.check_inputs(ids, mask)
        x = self.tokens(ids) + self.positions.weight[: ids.shape[1]]  # (B, L, dim)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x) * mask[..., None]


# Text encoder sizes per preset: (dim, depth). The captions are short and the vocabulary tiny, so
# the encoder stays much smaller than the video transformer that attends to it.
PRESET_SIZES = {"smoke": (32, 1), "cpu": (64, 2), "gpu": (256, 2)}


class CaptionConditioned(nn.Module):
    """A video denoiser conditioned on captions: a :class:`TextEncoder` and a transformer that cross-attends to it.

    Both train together behind one loss (one optimiser): the words' vectors become whatever helps
    the denoiser. Two ways to call it::

        forward(x, t, ids=ids, mask=mask)                  # training: the tokens are encoded here
        forward(x, t, context=c, context_mask=mask)        # sampling: c = encode_text(ids, mask), once

    x (B, F, C, H, W), t (B,), ids and mask (B, L) -> (B, F, C, H, W), the denoiser's prediction.
    ``denoiser`` must take ``(x, t, context=..., context_mask=...)`` with context width the encoder's
    dim (:class:`~course_lib.models.transformer.SpaceTimeTransformer` built with ``context_dim``).
    """

    def __init__(self, denoiser: nn.Module, text_encoder: TextEncoder):
        super().__init__()
        if not isinstance(text_encoder, TextEncoder):
            fail("text_encoder", "a TextEncoder", type(text_encoder).__name__)
        if getattr(denoiser, "context_dim", None) != text_encoder.dim:
            fail("denoiser", f"a denoiser built with context_dim={text_encoder.dim} (the text encoder's dim)",
                 f"context_dim={getattr(denoiser, 'context_dim', None)}")
        self.denoiser, self.text_encoder = denoiser, text_encoder

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The context of cross-attention: ids, mask (B, L) -> (B, L, dim)."""
        return self.text_encoder(ids, mask)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: None = None, *, ids: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            fail("y", "None: a caption-conditioned model takes caption tokens (ids=, mask=), not labels", "labels")
        if ids is not None:
            if context is not None:
                fail("context", "None when ids are given (the model encodes the tokens itself)", "a context")
            context, context_mask = self.encode_text(ids, mask), mask
        return self.denoiser(x, t, context=context, context_mask=context_mask)


def text_encoder_for_preset(preset, vocab_size: int, max_len: int = 16) -> TextEncoder:
    """A :class:`TextEncoder` sized by ``preset`` (:data:`PRESET_SIZES`: smoke 32 wide, 1 layer; cpu 64, 2)."""
    if not hasattr(preset, "name") or preset.name not in PRESET_SIZES:
        fail("preset", f"a course_lib.config.Preset named one of {', '.join(PRESET_SIZES)}", getattr(preset, "name", preset))
    dim, depth = PRESET_SIZES[preset.name]
    return TextEncoder(vocab_size, dim=dim, depth=depth, num_heads=4, max_len=max_len)
