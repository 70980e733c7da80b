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
# # Exercises 00 · Set-up and tour
#
# Write your code where it says `raise NotImplementedError(...)`, run the cell, then run the check
# cell below it. When every check prints ✓, `python -m pytest --nbval` on this notebook passes.
#
# Stuck? `hint("0.1")` gives the idea of an exercise, `hint("0.1", 2)` the formula.

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
from course_lib.workshop.checks.nb00 import check_count_parameters, check_to_model_range

# %% [markdown]
# ## Exercise 0.1 · Into the model's value range
#
# Images are stored as bytes 0…255; the course's models see values in [−1, 1]. Write
# `to_model_range(image)` for a `uint8` tensor of any shape, returning `float32` with 0 → −1 and
# 255 → +1.

# %%
def to_model_range(image: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError("Exercise 0.1: map 0..255 to -1..1")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_to_model_range(to_model_range)

# %% [markdown]
# ## Exercise 0.2 · How big is a model?
#
# Write `count_parameters(model)`: the number of trainable numbers in a model (every parameter
# tensor with `requires_grad`, counted element by element). You will use it to compare video models.

# %%
def count_parameters(model: nn.Module) -> int:
    raise NotImplementedError("Exercise 0.2: count trainable elements")


# %%
# NBVAL_CHECK_OUTPUT
_ = check_count_parameters(count_parameters)
