"""Checks for notebook 11 (speed, scale and limits). References: course_lib.diffusion.samplers and torch itself."""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from course_lib.workshop.checks import compare
from course_lib.diffusion.samplers import ddim_timesteps


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

def _as_int_list(result) -> list[int] | object:
    """A list/tuple/tensor of timesteps as a list of ints (anything else unchanged, for the error message)."""
    if isinstance(result, torch.Tensor):
        return [int(v) for v in result.reshape(-1).tolist()]
    if isinstance(result, (list, tuple)):
        return [int(v) if isinstance(v, (int, float)) else v for v in result]
    return result


def check_ddim_timesteps(learner_fn) -> bool:
    # (T, S) pairs where no i·T/S ends in .5, so that the rounding convention cannot matter
    cases = [((1000, 50), {}), ((1000, 10), {}), ((1000, 7), {}), ((1000, 3), {}), ((50, 6), {}),
             ((1000, 1), {}), ((20, 20), {})]
    return compare("11.1", lambda T, S: _as_int_list(learner_fn(T, S)), reference_ddim_timesteps, cases,
                   "ddim_timesteps",
                   hint="a list of S ints, largest first, starting at T − 1: "
                        "round(T − i·T/S) − 1 for i = 0, ..., S − 1.")


def check_conv_output_bytes(learner_fn) -> bool:
    cases = [
        (((8, 16, 32, 32), 32, 3, 1, 1, 4), {}),  # "same" padding: the size stays
        (((4, 3, 64, 64), 64, 3, 2, 1, 2), {}),  # a stride-2 downsampling in bf16
        (((2, 8, 17, 17), 8, 3, 2, 1, 4), {}),  # odd size: floor((17 + 2 − 3)/2) + 1 = 9
        (((3, 4, 10, 12), 6, 5, 1, 0, 4), {}),  # no padding: shrinks by k − 1
        (((128, 32, 16, 16), 96, 1, 1, 0, 2), {}),  # frames folded into the batch, a 1x1 projection
        (((1, 1, 28, 28), 16, 4, 2, 1, 4), {}),
    ]
    return compare("11.2", learner_fn, reference_conv_output_bytes, cases, "conv_output_bytes",
                   hint="the output is (N, C_out, H_out, W_out) with H_out = (H + 2·padding − kernel_size) // stride + 1 "
                        "(the same for W); multiply the four numbers and the bytes per value.")


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
    return compare("11.3", learner_fn, reference_speedup_from_profile, cases, "speedup_from_profile",
                   hint="new time = Σ over parts of t / f (f = 1 for a part not in factors); "
                        "speed-up = old total time / new total time.")
