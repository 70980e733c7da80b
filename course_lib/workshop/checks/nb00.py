"""Checks for notebook 00 (setup and tour)."""
from __future__ import annotations

import torch
from torch import nn

from course_lib.workshop.checks import compare

HINTS = {
    "0.1": ("a straight line through two points: 0 goes to −1 and 255 to +1; compute in float32, not in uint8.",
            "x / 127.5 − 1 on image.float() (127.5 is half of 255)."),
    "0.2": ("count the numbers in every trainable tensor (numel), not the tensors; skip the frozen ones.",
            "sum(p.numel() for p in model.parameters() if p.requires_grad)."),
}


def reference_to_model_range(image: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float32 in [-1, 1] (the course's value range)."""
    return image.float() / 127.5 - 1


def check_to_model_range(learner_fn) -> bool:
    g = torch.Generator().manual_seed(100)
    cases = [((torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),), {})
             for shape in [(1, 28, 28), (2, 3, 8, 8), (5,)]]
    cases.append(((torch.tensor([0, 255], dtype=torch.uint8),), {}))
    mistakes = {"scaled to [0, 1], not to [−1, 1]": lambda image: image.float() / 255}
    return compare("0.1", learner_fn, reference_to_model_range, cases, "to_model_range", variants=mistakes,
                   check_dtype=True)


def reference_count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_count_parameters(learner_fn) -> bool:
    frozen = nn.Linear(4, 4)
    frozen.bias.requires_grad_(False)
    models = [nn.Linear(3, 5), nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1)), frozen]
    cases = [((m,), {}) for m in models]
    mistakes = {
        "counted the tensors, not the numbers in them": lambda model: len([p for p in model.parameters() if p.requires_grad]),
        "frozen parameters counted too (requires_grad=False)": lambda model: sum(p.numel() for p in model.parameters()),
        "the biases left out": lambda model: sum(p.numel() for name, p in model.named_parameters()
                                                 if p.requires_grad and not name.endswith("bias")),
    }
    return compare("0.2", learner_fn, reference_count_parameters, cases, "count_parameters", variants=mistakes)
