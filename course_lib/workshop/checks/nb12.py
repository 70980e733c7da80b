"""Checks for notebook 12 (memory, scale and limits). References: torch itself."""
from __future__ import annotations

import math

import torch
from torch import nn

from course_lib.workshop.checks import compare


HINTS = {
    "12.1": ("bytes = number of output values × bytes per value; the output keeps the batch, has out_channels "
             "channels and a smaller (or equal) height and width.",
             "the output is (N, C_out, H_out, W_out) with H_out = (H + 2·padding − kernel_size) // stride + 1 (the "
             "same for W); multiply the four numbers and the bytes per value."),
}


# --- references ---------------------------------------------------------------------------------

def reference_conv_output_bytes(input_shape: tuple[int, int, int, int], out_channels: int, kernel_size: int,
                                stride: int, padding: int, bytes_per_value: int) -> int:
    """Bytes of a Conv2d's output, measured by running the layer on the meta device (no memory used)."""
    conv = nn.Conv2d(input_shape[1], out_channels, kernel_size, stride=stride, padding=padding, device="meta")
    return conv(torch.empty(input_shape, device="meta")).numel() * bytes_per_value


# --- checks ---------------------------------------------------------------------------------------

def check_conv_output_bytes(learner_fn) -> bool:
    cases = [
        (((8, 16, 32, 32), 32, 3, 1, 1, 4), {}),  # "same" padding: the size stays
        (((4, 3, 64, 64), 64, 3, 2, 1, 2), {}),  # a stride-2 downsampling in bf16
        (((2, 8, 17, 17), 8, 3, 2, 1, 4), {}),  # odd size: floor((17 + 2 − 3)/2) + 1 = 9
        (((3, 4, 10, 12), 6, 5, 1, 0, 4), {}),  # no padding: shrinks by k − 1
        (((128, 32, 16, 16), 96, 1, 1, 0, 2), {}),  # frames folded into the batch, a 1x1 projection
        (((1, 1, 28, 28), 16, 4, 2, 1, 4), {}),
    ]
    def size_with(shape, c_out, k, stride, padding, nbytes, pad=True, ceil=False, channels=None, bits=False, strided=True):
        n, c_in, h, w = shape
        step = stride if strided else 1
        side = (lambda d: math.ceil((d + 2 * padding * pad - k) / step) + 1) if ceil else \
            (lambda d: (d + 2 * padding * pad - k) // step + 1)
        return n * (channels or c_out) * side(h) * side(w) * nbytes * (8 if bits else 1)

    mistakes = {"the padding left out": lambda *a: size_with(*a, pad=False),
                "rounded up: the output size rounds down (//)": lambda *a: size_with(*a, ceil=True),
                "the input channels where out_channels belongs": lambda *a: size_with(*a, channels=a[0][1]),
                "bits, not bytes": lambda *a: size_with(*a, bits=True),
                "the stride ignored": lambda *a: size_with(*a, strided=False)}
    return compare("12.1", learner_fn, reference_conv_output_bytes, cases, "conv_output_bytes", variants=mistakes)
