"""Checks for notebook 11 (speed, scale and limits). References: course_lib.diffusion.samplers and torch itself."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from course_lib.workshop.checks import compare
from course_lib.diffusion.samplers import ddim_timesteps

HINTS = {
    "11.1": ("S whole timesteps spread evenly over the code timesteps 0 … T − 1, largest first, starting at the "
             "noisiest step T − 1.",
             "step down from T by T/S (a float) each time, round each value to a whole timestep, and subtract 1.",
             "round(T − i·T/S) − 1 for i = 0, ..., S − 1, as a list of ints."),
    "11.2": ("bytes = number of output values × bytes per value; the output keeps the batch, has out_channels "
             "channels and a smaller (or equal) height and width.",
             "the output is (N, C_out, H_out, W_out) with H_out = (H + 2·padding − kernel_size) // stride + 1 (the "
             "same for W); multiply the four numbers and the bytes per value."),
    "11.3": ("Amdahl's law: the parts you did not speed up still take all their time.",
             "new time = Σ over parts of t / f (f = 1 for a part not in factors); speed-up = old total time / new total time."),
}


# --- references ---------------------------------------------------------------------------------

def reference_ddim_timesteps(num_steps: int, steps: int) -> list[int]:
    """The "trailing" DDIM subsequence, via course_lib.diffusion.samplers.ddim_timesteps: round(T − i·T/S) − 1, i = 0..S−1."""
    return ddim_timesteps(num_steps, steps, spacing="trailing")


def reference_conv_output_bytes(input_shape: tuple[int, int, int, int], out_channels: int, kernel_size: int,
                                stride: int, padding: int, bytes_per_value: int) -> int:
    """Bytes of a Conv2d's output, measured by running the layer on the meta device (no memory used)."""
    conv = nn.Conv2d(input_shape[1], out_channels, kernel_size, stride=stride, padding=padding, device="meta")
    return conv(torch.empty(input_shape, device="meta")).numel() * bytes_per_value


def reference_speedup_from_profile(seconds: Mapping[str, float], factors: Mapping[str, float]) -> float:
    """Amdahl's law over the parts of a profile: Σ_k t_k / Σ_k (t_k / f_k), f_k = 1 for parts not sped up."""
    return sum(seconds.values()) / sum(t / factors.get(kind, 1.0) for kind, t in seconds.items())


# --- checks ---------------------------------------------------------------------------------------

def check_ddim_timesteps(learner_fn) -> bool:
    # (T, S) pairs where no i·T/S ends in .5, so that the rounding convention cannot matter
    cases = [((1000, 50), {}), ((1000, 10), {}), ((1000, 7), {}), ((1000, 3), {}), ((50, 6), {}),
             ((1000, 1), {}), ((20, 20), {})]
    mistakes = {
        "the leading spacing of Song et al. (never starts at the noisiest step T − 1)":
            lambda T, S: [i * (T // S) for i in range(S)][::-1],
        "evenly spaced from 0 to T − 1 (linspace): the spacing steps down by T/S from T − 1":
            lambda T, S: torch.linspace(0, T - 1, S).round().long().flip(0).tolist(),
        "a whole-number stride T // S: it drifts when S does not divide T; step by T/S and round":
            lambda T, S: [T - 1 - i * (T // S) for i in range(S)],
        "truncated: int() rounds down, round() to the nearest step": lambda T, S: [int(T - i * T / S) - 1 for i in range(S)],
    }
    return compare("11.1", learner_fn, reference_ddim_timesteps, cases, "ddim_timesteps", variants=mistakes)


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
    return compare("11.2", learner_fn, reference_conv_output_bytes, cases, "conv_output_bytes", variants=mistakes)


def check_speedup_from_profile(learner_fn) -> bool:
    profile = {"convolution": 0.090, "matrix products": 0.050, "normalisation": 0.010, "optimizer": 0.015,
               "element-wise": 0.025}
    cases = [
        ((profile, {"convolution": 2.0}), {}),
        ((profile, {"matrix products": math.inf}), {}),  # attention for free: the rest still takes its time
        ((profile, {"convolution": 3.0, "matrix products": 3.0, "element-wise": 1.5}), {}),
        ((profile, {}), {}),  # nothing faster: speed-up 1
        (({"a": 1.0, "b": 3.0}, {"b": 4.0}), {}),
        (({"a": 2.0}, {"a": 0.5}), {}),  # twice as slow: speed-up 0.5
    ]
    def only_sped_up(seconds, factors):
        sped = {kind: t for kind, t in seconds.items() if kind in factors}
        return sum(sped.values()) / sum(t / factors[kind] for kind, t in sped.items()) if sped else 1.0

    mistakes = {
        "the factors averaged by time: times add up, speeds do not (divide each time by its factor)":
            lambda seconds, factors: sum(t * factors.get(kind, 1.0) for kind, t in seconds.items()) / sum(seconds.values()),
        "only the sped-up parts counted: the other parts still take their time": only_sped_up,
        "the mean of the factors: weigh each part by its time": lambda seconds, factors:
            sum(factors.values()) / len(factors) if factors else 1.0,
    }
    return compare("11.3", learner_fn, reference_speedup_from_profile, cases, "speedup_from_profile", variants=mistakes)
