"""Checks for notebook 15 (latent video diffusion). References: course_lib.models.transformer.

Videos are (B, F, C, H, W); a patch size p divides H = W = size; tokens are (B, F, N, C·p·p) with the
N = (size/p)² patches of a frame numbered row by row and each token's values channel first, as
:func:`course_lib.models.transformer.patchify` lays them out.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.models.transformer import modulate, patchify, unpatchify
from course_lib.workshop.checks import compare

HINTS = {
    "15.1": ("a frame of size x size cut into p x p squares is a (size/p) x (size/p) grid of patches; each patch, "
             "flattened, is one token. Split each spatial axis into (which patch, where inside it), move the two "
             "'which patch' axes before the channel, then flatten; unpatchify does the same steps backwards.",
             "x (B, F, C, H, W) -> reshape (B, F, C, H/p, p, W/p, p) -> permute to (B, F, H/p, W/p, C, p, p) -> "
             "reshape (B, F, (H/p)·(W/p), C·p·p): patch n = row·(W/p) + column, value c·p·p + i·p + j.",
             "B, F, C, H, W = x.shape; x = x.reshape(B, F, C, H // p, p, W // p, p); "
             "x = x.permute(0, 1, 3, 5, 2, 4, 6); return x.reshape(B, F, -1, C * p * p). A reshape alone keeps "
             "the values in memory order: the permute is what gathers each square together."),
    "15.2": ("adaLN turns the conditioning (timestep, label) into a per-feature shift and scale of the normalised "
             "tokens, and a gate on what each sub-layer adds; with all three zero the block is the identity "
             "(Peebles & Xie 2023 call it adaLN-Zero).",
             "modulate(x, shift, scale) = x·(1 + scale) + shift; a gated sub-layer is "
             "h + gate · f(modulate(LayerNorm(h), shift, scale)).",
             "return x * (1 + scale) + shift; for the sub-layer: a = F.layer_norm(h, h.shape[-1:]) (no learned "
             "weights), return h + gate * f(modulate(a, shift, scale))."),
}


def stand_in_sublayer(a: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear sub-layer (an attention or MLP stand-in) on tokens (..., D): mixes features and tokens."""
    return torch.tanh(1.5 * a.flip(-1) + 0.5 * a.roll(1, dims=-2)) + 0.3


# --- references ------------------------------------------------------------------------------------

def reference_patchify(x, patch_size):
    """x (B, F, C, H, W) -> tokens (B, F, N, C·p·p): course_lib.models.transformer.patchify."""
    return patchify(x, patch_size)


def reference_unpatchify(tokens, patch_size, channels, size):
    """tokens (B, F, N, C·p·p) -> x (B, F, C, size, size): course_lib.models.transformer.unpatchify."""
    return unpatchify(tokens, patch_size, channels, size)


def reference_modulate(x, shift, scale):
    """x·(1 + scale) + shift: course_lib.models.transformer.modulate."""
    return modulate(x, shift, scale)


def reference_gated_residual(h, sublayer, shift, scale, gate):
    """h + gate · f(modulate(LN(h), shift, scale)), LN without learned weights (as SpaceTimeBlock does)."""
    return h + gate * sublayer(modulate(F.layer_norm(h, h.shape[-1:], eps=1e-6), shift, scale))


# --- 15.1 patchify and unpatchify ------------------------------------------------------------------

def _patchify_with(x, p, no_permute=False, pixel_first=False, by_column=False, strided=False):
    """Tokens written out with one mistake: a reshape with no permute, a token's values pixel first,
    patches numbered column by column, or every p-th pixel gathered (a strided split) instead of a square."""
    B, T, C, H, W = x.shape
    if no_permute:
        return x.reshape(B, T, (H // p) * (W // p), C * p * p)
    if strided:  # H split as (i, row): patch (row, col) gathers pixels row + i·H/p, every H/p-th one
        x = x.reshape(B, T, C, p, H // p, p, W // p).permute(0, 1, 4, 6, 2, 3, 5)
    else:
        x = x.reshape(B, T, C, H // p, p, W // p, p).permute(0, 1, 3, 5, 2, 4, 6)  # (B, F, rows, cols, C, i, j)
    if by_column:
        x = x.transpose(2, 3)
    if pixel_first:
        x = x.permute(0, 1, 2, 3, 5, 6, 4)  # (…, i, j, C)
    return x.reshape(B, T, (H // p) * (W // p), C * p * p)


PATCHIFY_MISTAKES = {
    "a reshape with no permute: the values stay in memory order, so a 'patch' is a strip of one row, "
    "not a p x p square (split H and W, then permute the patch axes before the channel)":
        lambda x, p: _patchify_with(x, p, no_permute=True),
    "each token's values pixel first (i, j, C): the order is channel first, (C, i, j)":
        lambda x, p: _patchify_with(x, p, pixel_first=True),
    "patches numbered column by column: number them row by row, patch n = row·(W/p) + column":
        lambda x, p: _patchify_with(x, p, by_column=True),
    "H split as (p, H/p): that gathers every (H/p)-th pixel; split as (H/p, p) so a patch is p neighbouring pixels":
        lambda x, p: _patchify_with(x, p, strided=True),
}


def _unpatchify_with(tokens, p, channels, size, no_permute=False, pixel_first=False, by_column=False):
    """Frames written out with one mistake: a reshape with no permute, values read pixel first, or
    patches placed column by column."""
    B, T = tokens.shape[:2]
    g = size // p
    if no_permute:
        return tokens.reshape(B, T, channels, size, size)
    if pixel_first:
        x = tokens.reshape(B, T, g, g, p, p, channels).permute(0, 1, 2, 3, 6, 4, 5)
    else:
        x = tokens.reshape(B, T, g, g, channels, p, p)
    if by_column:
        x = x.transpose(2, 3)
    return x.permute(0, 1, 4, 2, 5, 3, 6).reshape(B, T, channels, size, size)


UNPATCHIFY_MISTAKES = {
    "a reshape with no permute: the values stay in token order, so each frame is strips of tokens, "
    "not squares put back in place (permute (B, F, rows, cols, C, i, j) to (B, F, C, rows, i, cols, j))":
        lambda t, p, c, s: _unpatchify_with(t, p, c, s, no_permute=True),
    "each token's values read pixel first (i, j, C): they are channel first, (C, i, j)":
        lambda t, p, c, s: _unpatchify_with(t, p, c, s, pixel_first=True),
    "patches placed column by column: token n is row n // (size/p), column n % (size/p)":
        lambda t, p, c, s: _unpatchify_with(t, p, c, s, by_column=True),
}


def _patch_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=g), p) for shape, p in
            (((2, 3, 2, 4, 4), 2), ((1, 2, 3, 6, 6), 3), ((1, 2, 2, 8, 8), 2), ((2, 1, 1, 8, 8), 4))]


def check_patchify(learner_fn) -> bool:
    cases = [((x, p), {}) for x, p in _patch_cases(151)]
    return compare("15.1", learner_fn, reference_patchify, cases, "patchify", variants=PATCHIFY_MISTAKES)


def check_unpatchify(learner_fn) -> bool:
    cases = [((patchify(x, p), p, x.shape[2], x.shape[-1]), {}) for x, p in _patch_cases(152)]
    return compare("15.1", learner_fn, reference_unpatchify, cases, "unpatchify", variants=UNPATCHIFY_MISTAKES)


# --- 15.2 adaLN modulation and the gated residual ---------------------------------------------------

MODULATE_MISTAKES = {
    "x·scale + shift: the scale is 1 + scale, so that scale = 0 leaves x unchanged (the adaLN-Zero start)":
        lambda x, shift, scale: x * scale + shift,
    "the shift added before the scale: (x + shift)·(1 + scale); scale first, then shift":
        lambda x, shift, scale: (x + shift) * (1 + scale),
    "shift and scale swapped: x·(1 + scale) + shift": lambda x, shift, scale: x * (1 + shift) + scale,
}


def _conditioning(shape, seed: int) -> tuple[torch.Tensor, ...]:
    """Tokens (B, L, D) and a shift, scale and gate (B, 1, D) per example, as a block gets them."""
    g = torch.Generator().manual_seed(seed)
    B, L, D = shape
    return (torch.randn(shape, generator=g) * 2 + 0.5,
            *(0.7 * torch.randn(B, 1, D, generator=g) for _ in range(3)))


def check_modulate(learner_fn) -> bool:
    cases = [(_conditioning(shape, 153 + k)[:3], {}) for k, shape in enumerate(((2, 5, 4), (3, 2, 8), (1, 7, 6)))]
    return compare("15.2", learner_fn, reference_modulate, cases, "modulate", variants=MODULATE_MISTAKES)


def _residual_with(h, f, shift, scale, gate, no_norm=False, gate_all=False, one_plus_gate=False, late=False):
    """The gated sub-layer with one mistake: no LayerNorm, the gate on the residual too, 1 + gate, or the
    modulation applied to f's output instead of its input."""
    a = h if no_norm else F.layer_norm(h, h.shape[-1:], eps=1e-6)
    out = modulate(f(a), shift, scale) if late else f(modulate(a, shift, scale))
    if gate_all:
        return gate * (h + out)
    return h + (1 + gate if one_plus_gate else gate) * out


RESIDUAL_MISTAKES = {
    "no LayerNorm before the modulation: normalise h first, F.layer_norm(h, h.shape[-1:])":
        lambda *a: _residual_with(*a, no_norm=True),
    "the gate multiplies the residual too, gate·(h + f(…)): only the sub-layer's output is gated, so that "
    "gate = 0 leaves h unchanged": lambda *a: _residual_with(*a, gate_all=True),
    "1 + gate where gate belongs: adaLN-Zero's gate starts at 0 and switches the sub-layer off":
        lambda *a: _residual_with(*a, one_plus_gate=True),
    "the modulation applied to the sub-layer's output: it shifts and scales f's input, f(modulate(LN(h), …))":
        lambda *a: _residual_with(*a, late=True),
}


def check_gated_residual(learner_fn) -> bool:
    cases = []
    for k, shape in enumerate(((2, 5, 4), (3, 3, 8), (1, 6, 6))):
        h, shift, scale, gate = _conditioning(shape, 157 + k)
        cases.append(((h, stand_in_sublayer, shift, scale, gate), {}))
    return compare("15.2", learner_fn, reference_gated_residual, cases, "gated_residual", variants=RESIDUAL_MISTAKES)
