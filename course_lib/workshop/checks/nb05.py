"""Checks for notebook 05 (video data). References come from course_lib.data.video."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.data.video import bouncing_shapes, frame_correlation, from_channels_first_time, moving_digits

HINTS = {
    "5.1": ("a new order of the axes, not a new shape: the values have to move in memory.",
            "move the axes with permute (or einops.rearrange): (B, C, T, H, W) -> (B, T, C, H, W) is permute(0, 2, 1, 3, 4); "
            "reshape/view keeps the memory order and scrambles frames and channels."),
    "5.2": ("the Pearson correlation between each frame and the frame lag steps later, averaged over all such pairs.",
            "pair frame t with frame t + lag for t = 0 … T − 1 − lag, subtract each frame's own mean, divide by both "
            "frames' norms, then average over all pairs and clips."),
}


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
    return compare("5.1", learner_fn, reference_to_course_layout, cases, "to_course_layout")


def check_frame_correlation(learner_fn) -> bool:
    g = torch.Generator().manual_seed(6)
    digits = moving_digits(2, frames=6, size=32, seed=11).video
    shapes = bouncing_shapes(3, frames=5, size=16, seed=12).video
    noise = torch.randn(2, 4, 1, 5, 5, generator=g)
    cases = [((digits, 0), {}), ((digits, 1), {}), ((digits, 5), {}), ((shapes, 2), {}), ((noise, 1), {})]
    mistakes = {
        "off by one: frames lag + 1 apart paired": lambda video, lag: frame_correlation(video, lag + 1),
        "a covariance, not a correlation (not divided by the frames' norms)": _covariance,
        "one correlation of all pairs pooled, not the mean of each pair's correlation": _pooled_correlation,
    }
    return compare("5.2", learner_fn, reference_frame_correlation, cases, "frame_correlation", variants=mistakes)


def _pairs(video: torch.Tensor, lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames t and t + lag, each flattened and centred: (B, T − lag, N) twice."""
    u, v = video[:, : video.shape[1] - lag].flatten(2), video[:, lag:].flatten(2)
    return u - u.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)


def _covariance(video: torch.Tensor, lag: int) -> torch.Tensor:
    u, v = _pairs(video, lag)
    return (u * v).mean()


def _pooled_correlation(video: torch.Tensor, lag: int) -> torch.Tensor:
    u, v = video[:, : video.shape[1] - lag].flatten(), video[:, lag:].flatten()
    return torch.corrcoef(torch.stack([u, v]))[0, 1]
