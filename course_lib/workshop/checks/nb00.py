"""Checks for notebook 00 (setup and tour)."""
from __future__ import annotations

import torch
from torch import nn

from course_lib.workshop.checks import compare


def reference_to_model_range(image: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float32 in [-1, 1] (the course's value range)."""
    return image.float() / 127.5 - 1


def check_to_model_range(learner_fn) -> bool:
    g = torch.Generator().manual_seed(100)
    cases = [((torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),), {})
             for shape in [(1, 28, 28), (2, 3, 8, 8), (5,)]]
    cases.append(((torch.tensor([0, 255], dtype=torch.uint8),), {}))
    return compare("0.1", learner_fn, reference_to_model_range, cases, "to_model_range",
                   hint="0 must map to -1 and 255 to +1.")


def reference_count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_count_parameters(learner_fn) -> bool:
    frozen = nn.Linear(4, 4)
    frozen.bias.requires_grad_(False)
    models = [nn.Linear(3, 5), nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1)), frozen]
    cases = [((m,), {}) for m in models]
    return compare("0.2", learner_fn, reference_count_parameters, cases, "count_parameters",
                   hint="count the numbers in every trainable tensor (numel), not the tensors.")
