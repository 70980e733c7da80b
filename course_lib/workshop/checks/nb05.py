"""Checks for notebook 05 (video data). References come from course_lib.data.video."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.data.video import bouncing_shapes, frame_correlation, from_channels_first_time, moving_digits


def reference_to_course_layout(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, T, C, H, W), via course_lib.data.video.from_channels_first_time."""
    return from_channels_first_time(x)


def reference_frame_correlation(video: torch.Tensor, lag: int) -> torch.Tensor:
    """Mean Pearson correlation between frames ``lag`` apart, via course_lib.data.video.frame_correlation."""
    return frame_correlation(video, lag)


def check_to_course_layout(learner_fn) -> bool:
    g = torch.Generator().manual_seed(5)
    shapes = [(2, 3, 5, 4, 6), (1, 1, 7, 5, 5), (3, 3, 2, 8, 3)]  # (B, C, T, H, W), all sizes distinct where it matters
    cases = [((torch.randn(shape, generator=g),), {}) for shape in shapes]
    return compare("5.1", learner_fn, reference_to_course_layout, cases, "to_course_layout",
                   hint="move the axes with permute (or einops.rearrange); reshape/view keeps the memory order "
                        "and scrambles frames and channels.")


def check_frame_correlation(learner_fn) -> bool:
    g = torch.Generator().manual_seed(6)
    digits = moving_digits(2, frames=6, size=32, seed=11).video
    shapes = bouncing_shapes(3, frames=5, size=16, seed=12).video
    noise = torch.randn(2, 4, 1, 5, 5, generator=g)
    cases = [((digits, 0), {}), ((digits, 1), {}), ((digits, 5), {}), ((shapes, 2), {}), ((noise, 1), {})]
    return compare("5.2", learner_fn, reference_frame_correlation, cases, "frame_correlation",
                   hint="pair frame t with frame t + lag for t = 0 … T − 1 − lag, subtract each frame's own mean, "
                        "divide by both frames' norms, then average over all pairs and clips.")
