"""Each notebook-15 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.workshop.checks import nb15
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def patchify(x, p, no_permute=False, pixel_first=False, by_column=False, strided=False):
    """Written with loops over the patches, as a learner might."""
    B, T, C, H, W = x.shape
    if no_permute:
        return x.reshape(B, T, -1, C * p * p)
    tokens = []
    rows, cols = H // p, W // p
    for n in range(rows * cols):
        r, c = (n % rows, n // rows) if by_column else (n // cols, n % cols)
        if strided:
            patch = x[:, :, :, r::rows, c::cols]  # every rows-th pixel
        else:
            patch = x[:, :, :, r * p:(r + 1) * p, c * p:(c + 1) * p]  # (B, F, C, p, p)
        if pixel_first:
            patch = patch.permute(0, 1, 3, 4, 2)
        tokens.append(patch.reshape(B, T, -1))
    return torch.stack(tokens, dim=2)


def unpatchify(tokens, p, channels, size, no_permute=False, pixel_first=False, by_column=False):
    B, T, N, _ = tokens.shape
    if no_permute:
        return tokens.reshape(B, T, channels, size, size)
    g = size // p
    x = torch.zeros(B, T, channels, size, size)
    for n in range(N):
        r, c = (n % g, n // g) if by_column else (n // g, n % g)
        if pixel_first:
            patch = tokens[:, :, n].reshape(B, T, p, p, channels).permute(0, 1, 4, 2, 3)
        else:
            patch = tokens[:, :, n].reshape(B, T, channels, p, p)
        x[:, :, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = patch
    return x


def modulate(x, shift, scale):
    return x + x * scale + shift


def gated_residual(h, f, shift, scale, gate):
    mean, var = h.mean(-1, keepdim=True), h.var(-1, unbiased=False, keepdim=True)
    return h + gate * f(modulate((h - mean) / (var + 1e-6).sqrt(), shift, scale))


def layer_norm(h):
    return F.layer_norm(h, h.shape[-1:])


RIGHT_AND_WRONG = [
    (nb15.check_patchify, patchify,
     [(lambda x, p: patchify(x, p, no_permute=True), "a reshape with no permute"),
      (lambda x, p: patchify(x, p, pixel_first=True), "pixel first"),
      (lambda x, p: patchify(x, p, by_column=True), "column by column"),
      (lambda x, p: patchify(x, p, strided=True), "H split as (p, H/p)")]),
    (nb15.check_unpatchify, unpatchify,
     [(lambda *a: unpatchify(*a, no_permute=True), "a reshape with no permute"),
      (lambda *a: unpatchify(*a, pixel_first=True), "pixel first"),
      (lambda *a: unpatchify(*a, by_column=True), "column by column")]),
    (nb15.check_modulate, modulate,
     [(lambda x, shift, scale: x * scale + shift, "the scale is 1 + scale"),
      (lambda x, shift, scale: (x + shift) * (1 + scale), "the shift added before the scale"),
      (lambda x, shift, scale: x * (1 + shift) + scale, "swapped"),
      (lambda x, shift, scale: x * (1 + scale), "`shift` has no effect")]),
    (nb15.check_gated_residual, gated_residual,
     [(lambda h, f, shift, scale, gate: h + gate * f(modulate(h, shift, scale)), "no LayerNorm"),
      (lambda h, f, shift, scale, gate: gate * (h + f(modulate(layer_norm(h), shift, scale))), "the gate multiplies"),
      (lambda h, f, shift, scale, gate: h + (1 + gate) * f(modulate(layer_norm(h), shift, scale)), "1 + gate"),
      (lambda h, f, shift, scale, gate: h + gate * modulate(f(layer_norm(h)), shift, scale), "sub-layer's output")]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_every_exercise_has_three_levels_of_hints():
    assert set(nb15.HINTS) == {"15.1", "15.2"} and all(len(h) == 3 for h in nb15.HINTS.values())


def test_a_fresh_gated_sub_layer_is_the_identity():
    h = torch.randn(2, 5, 4)
    zero = torch.zeros(2, 1, 4)
    assert torch.equal(nb15.reference_gated_residual(h, nb15.stand_in_sublayer, zero, zero, zero), h)
