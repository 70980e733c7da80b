"""Each notebook-12 check accepts the right answer and rejects the stub and plausible wrong answers."""
import math

import pytest
import torch

from course_lib.workshop.checks import nb12
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


# --- 12.1 conv output bytes -------------------------------------------------------------------------

def conv_bytes(shape, cout, k, stride, padding, nbytes, pad=True, ceil=False, channels="out", bits=False):
    n, cin, h, w = shape
    size = (lambda d: math.ceil((d + 2 * padding * pad - k) / stride) + 1) if ceil else \
        (lambda d: (d + 2 * padding * pad - k) // stride + 1)
    c = cout if channels == "out" else cin
    return n * c * size(h) * size(w) * nbytes * (8 if bits else 1)


def no_stride(shape, cout, k, stride, padding, nbytes):
    n, _, h, w = shape
    return n * cout * (h + 2 * padding - k + 1) * (w + 2 * padding - k + 1) * nbytes


RIGHT_AND_WRONG = [
    (nb12.check_conv_output_bytes, conv_bytes, [
        (lambda *a: conv_bytes(*a, pad=False), "the padding left out"),
        (lambda *a: conv_bytes(*a, ceil=True), "rounded up"),
        (lambda *a: conv_bytes(*a, channels="in"), "the input channels"),
        (lambda *a: conv_bytes(*a, bits=True), "bits, not bytes"),
        (no_stride, "the stride ignored"),
        (lambda *a: conv_bytes(*a) / 3 * 3 + 0.25, "expected a whole number"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys, hint=True)


def test_conv_reference_agrees_with_the_formula_and_a_real_layer():
    shape = (2, 3, 15, 9)
    assert nb12.reference_conv_output_bytes(shape, 5, 3, 2, 1, 4) == 2 * 5 * 8 * 5 * 4
    real = torch.nn.Conv2d(3, 5, 3, stride=2, padding=1)(torch.zeros(shape))
    assert nb12.reference_conv_output_bytes(shape, 5, 3, 2, 1, 4) == real.numel() * real.element_size()
