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

# %%
import torch
from torch import nn

from course_lib.checks.nb00 import check_count_parameters, check_to_model_range

# %% [markdown]
# ## Exercise 0.1 · Into the model's value range
#
# Images are stored as bytes 0…255; the course's models see values in [−1, 1]. Write
# `to_model_range(image)` for a `uint8` tensor of any shape, returning `float32` with 0 → −1 and
# 255 → +1.

# %%
def to_model_range(image: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION map 0..255 to -1..1
    return image.float() / 127.5 - 1
    ### END SOLUTION


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
    ### BEGIN SOLUTION count trainable elements
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_count_parameters(count_parameters)
