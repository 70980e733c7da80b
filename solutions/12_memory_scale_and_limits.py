# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises 12 · Memory, scale and limits
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
# Images are (N, C, H, W). At the end your function sizes the activations of the `gpu` preset's
# video U-Net.
#
# Stuck? `hint("12.1")` gives the idea of the exercise, `hint("12.1", 2)` the formula.

# %%
# Set-up. Where the course is installed this only shows the device and preset. On Colab or a fresh
# machine it first installs the course from $COURSE_SOURCE: a clone (default /content/course, see
# the README, "Run on Colab") or a wheel file.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("course_lib") is None:
    COURSE_SOURCE = os.environ.get("COURSE_SOURCE", "/content/course")
    is_wheel, is_clone = COURSE_SOURCE.endswith(".whl"), os.path.isfile(os.path.join(COURSE_SOURCE, "pyproject.toml"))
    if not (is_wheel and os.path.isfile(COURSE_SOURCE)) and not is_clone:
        raise ModuleNotFoundError(
            f"course_lib is not installed, and COURSE_SOURCE={COURSE_SOURCE!r} is neither a clone of the course "
            f"nor a wheel: run `!git clone <the course repository> {COURSE_SOURCE}` (or set COURSE_SOURCE), then this cell")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *([] if is_wheel else ["-e"]), COURSE_SOURCE], check=True)
    if is_clone:
        sys.path.insert(0, COURSE_SOURCE)  # importable now, without restarting the kernel
        os.chdir(os.path.join(COURSE_SOURCE, "notebooks"))  # ../checkpoints as in JupyterLab
    importlib.invalidate_caches()
from course_lib.config import describe_environment

print(describe_environment())

# %%
import torch
from torch import nn

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb12 import check_conv_output_bytes

# %% [markdown]
# ## Exercise 12.1 · The memory of a convolution's output
#
# A `Conv2d(C_in, C_out, kernel_size, stride, padding)` turns an input (N, C_in, H, W) into an
# output (N, C_out, H_out, W_out) with
#
# H_out = ⌊(H + 2·padding − kernel_size) / stride⌋ + 1   (the same for W),
#
# and during training that output is kept for the backward pass. Return how many bytes it takes,
# for `bytes_per_value` bytes per number (4 for fp32, 2 for bf16). In a video U-Net the frames are
# folded into the batch, so N = B·F.

# %%
def conv_output_bytes(input_shape: tuple[int, int, int, int], out_channels: int, kernel_size: int, stride: int,
                      padding: int, bytes_per_value: int) -> int:
    ### BEGIN SOLUTION the output keeps the batch, has out_channels channels and a smaller (or equal) H and W
    n, _, h, w = input_shape
    h_out = (h + 2 * padding - kernel_size) // stride + 1
    w_out = (w + 2 * padding - kernel_size) // stride + 1
    return n * out_channels * h_out * w_out * bytes_per_value
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_conv_output_bytes(conv_output_bytes)

# %% [markdown]
# ## Use your function
#
# **Your memory formula on the `gpu` preset.** Build the `gpu` preset's video U-Net on the *meta*
# device (shapes without memory), record the input shape of every `Conv2d` during one forward
# pass at the preset's batch, and add up your `conv_output_bytes` in bf16. (The transposed
# convolutions that upsample are left out: their output size follows another formula.)

# %%
from course_lib.config import get_preset
from course_lib.workshop.recipes import get_recipe

gpu = get_preset("gpu")
gpu_recipe = get_recipe("video-shapes", gpu)
with torch.device("meta"):
    unet = gpu_recipe.build_model()
inputs = []
hooks = [m.register_forward_pre_hook(lambda m, args: inputs.append((m, tuple(args[0].shape))))
         for m in unet.modules() if type(m) is nn.Conv2d]
shape = gpu_recipe.sample_shape(gpu_recipe.batch_size)  # (B, F, C, H, W)
with torch.no_grad():
    unet(torch.empty(shape, device="meta"), torch.zeros(shape[0], dtype=torch.long, device="meta"))
for hook in hooks:
    hook.remove()
total = sum(conv_output_bytes(s, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], 2) for m, s in inputs)
largest = max(inputs, key=lambda item: conv_output_bytes(item[1], item[0].out_channels, item[0].kernel_size[0],
                                                          item[0].stride[0], item[0].padding[0], 2))
print(f"gpu preset, batch {shape}: {len(inputs)} convolutions; their outputs alone take {total / 2**30:.2f} GiB in bf16; "
      f"the largest output comes from the one reading {largest[1]} (frames folded into the batch)")

