"""Motion consistency: does the object in a generated clip move like the data's objects do?

The course's synthetic videos have known dynamics: one object moving at constant velocity that
bounces off the frame's walls. So a generated clip can be *measured*, not only looked at:

1. track the object: per frame, the centroid of the foreground pixels (brighter than the
   background), and the number of separate blobs (scipy.ndimage.label after a 1-pixel dilation,
   so a thin digit whose strokes break apart still counts as one);
2. fit, per axis, the best "reflected line" p(t) = fold(p0 + v·t) between the walls (a triangle
   wave: constant speed, direction flips at a wall) by a grid search over (p0, v);
3. the clip passes when every frame shows exactly one blob whose area is between MIN_AREA and
   MAX_AREA times object_size² (and varies at most 3×), and the fit's RMS error is at most
   FIT_TOLERANCE pixels.

Videos are (B, T, C, H, W) in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from course_lib._validation import check_finite, check_float_range, check_rank, fail

# plausible foreground area per frame, in units of object_size²: a thin digit covers ~0.1–0.4 of its
# box, a disc π/4, a square 1; a frame-filling blob or a speck is not the object. object_size is
# the data's *mean* width, and bouncing_shapes draws squares up to 1.25× it, whose anti-aliased rim
# counts too: (1.25 w + 1)² ≈ 1.9 w² at w = 8.5 px, hence the upper bound 2
MIN_AREA, MAX_AREA = 0.05, 2.0
FIT_TOLERANCE = 1.5  # px: RMS distance allowed between the track and its best bouncing straight path
FOREGROUND = 0.0  # a pixel whose brightest channel is above this (in [-1, 1]) belongs to an object
MIN_BLOB_PIXELS = 4  # blobs smaller than this are noise, not an object


@dataclass
class MotionReport:
    """Per-clip results: passed (B,) bool, fit_error (B,) px RMS, blobs (B, T) count, track (B, T, 2) (y, x)."""

    passed: np.ndarray
    fit_error: np.ndarray
    blobs: np.ndarray
    track: np.ndarray

    @property
    def pass_rate(self) -> float:
        return float(self.passed.mean())


def object_masks(video: torch.Tensor, foreground: float = FOREGROUND) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of the objects in every frame, and how many objects (blobs) each frame shows.

    video: (B, T, C, H, W) -> masks (B, T, H, W) bool, blobs (B, T) int. Foreground = brightest
    channel above ``foreground``; blobs are joined over a 1-pixel gap (a thin digit whose strokes
    break apart is one object), and blobs smaller than MIN_BLOB_PIXELS are noise, left out of the mask.
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    fg = (video.detach().float().amax(dim=2) > foreground).cpu().numpy()  # (B, T, H, W)
    b, t = fg.shape[:2]
    masks = np.zeros_like(fg)
    blobs = np.zeros((b, t), dtype=int)
    for i in range(b):
        for j in range(t):
            labels, n = ndimage.label(ndimage.binary_dilation(fg[i, j], iterations=1))  # join broken strokes
            labels = labels * fg[i, j]
            sizes = ndimage.sum_labels(fg[i, j], labels, range(1, n + 1)) if n else np.zeros(0)
            keep = np.flatnonzero(sizes >= MIN_BLOB_PIXELS) + 1
            blobs[i, j] = len(keep)
            masks[i, j] = np.isin(labels, keep)
    return masks, blobs


def track_objects(video: torch.Tensor, foreground: float = FOREGROUND) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid (y, x) of the foreground per frame, the number of blobs and the foreground area.

    video: (B, T, C, H, W) -> track (B, T, 2) (NaN where nothing is found), blobs (B, T), area (B, T).
    The foreground is :func:`object_masks`'s: brightest channel above ``foreground``, no specks.
    """
    masks, blobs = object_masks(video, foreground)
    area = masks.sum(axis=(2, 3))
    track = np.full((*blobs.shape, 2), np.nan)
    for i, j in zip(*np.nonzero(area)):
        ys, xs = np.nonzero(masks[i, j])
        track[i, j] = ys.mean(), xs.mean()
    return track, blobs, area


def reflected_path(p0: np.ndarray, v: np.ndarray, frames: int, low: float, high: float) -> np.ndarray:
    """Positions of a point starting at p0 with velocity v, bouncing between ``low`` and ``high``.

    p0, v: broadcastable arrays -> (..., frames). Unfolded motion p0 + v t folded into a triangle wave.
    """
    span = high - low
    u = (np.asarray(p0)[..., None] - low) + np.asarray(v)[..., None] * np.arange(frames)
    u = np.mod(u, 2 * span)
    return low + np.where(u > span, 2 * span - u, u)


def best_reflected_line(path: np.ndarray, low: float, high: float, max_speed: float) -> tuple[float, float, float]:
    """The reflected line closest to one axis of a track ``path`` (T,) -> (RMS error px, p0, v).

    A grid search over the start p0 in [low, high] and the velocity v in [−max_speed, max_speed]
    (px per frame at frame 0), refined around the best grid point. Frames where ``path`` is NaN
    (nothing found) are left out of the error.
    """
    frames, seen = len(path), np.flatnonzero(np.isfinite(path))
    path = path[seen]
    p0 = np.linspace(low, high, 97)[:, None]
    v = np.linspace(-max_speed, max_speed, 161)[None, :]
    err = np.sqrt(((reflected_path(p0, v, frames, low, high)[..., seen] - path) ** 2).mean(-1))  # (97, 161)
    i, j = np.unravel_index(err.argmin(), err.shape)
    # refine around the best grid point
    p0f = np.linspace(p0[max(i - 1, 0), 0], p0[min(i + 1, 96), 0], 21)[:, None]
    vf = np.linspace(v[0, max(j - 1, 0)], v[0, min(j + 1, 160)], 21)[None, :]
    fine = np.sqrt(((reflected_path(p0f, vf, frames, low, high)[..., seen] - path) ** 2).mean(-1))
    if fine.min() < err.min():
        k, m = np.unravel_index(fine.argmin(), fine.shape)
        return float(fine[k, m]), float(p0f[k, 0]), float(vf[0, m])
    return float(err[i, j]), float(p0[i, 0]), float(v[0, j])


def fit_reflected_line(path: np.ndarray, low: float, high: float, max_speed: float) -> float:
    """Smallest RMS error (px) of a reflected line fitted to one axis of a track ``path`` (T,)."""
    return best_reflected_line(path, low, high, max_speed)[0]


def motion_consistency(video: torch.Tensor, object_size: float, foreground: float = FOREGROUND) -> MotionReport:
    """Score each clip of ``video`` (B, T, C, H, W): one object, constant velocity between bounces.

    object_size: the object's width in pixels (the centroid moves between object_size/2 and
    size − object_size/2; the fit allows speeds up to one width per frame). foreground: the
    brightness above which a pixel belongs to an object (a lower one keeps thin grey strokes).
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    if video.shape[0] == 0:
        fail("video", "at least one clip", "an empty batch (B = 0)")
    check_finite("video", video)
    check_float_range("object_size", object_size, 1.0, float(min(video.shape[-2:])))
    check_float_range("foreground", foreground, -1.0, 1.0)
    if video.shape[1] < 3:
        fail("video", "clips of at least 3 frames (motion needs them)", f"{video.shape[1]} frames")
    height, width = video.shape[-2:]
    max_speed = object_size
    track, blobs, area = track_objects(video, foreground)
    b = video.shape[0]
    errors = np.full(b, np.inf)
    passed = np.zeros(b, dtype=bool)
    for i in range(b):
        ok_area = area[i] > 0
        if not (blobs[i] == 1).all() or not ok_area.all():
            continue
        if area[i].max() > 3 * area[i].min():  # the object must not melt or explode
            continue
        if not (MIN_AREA * object_size**2 <= area[i]).all() or not (area[i] <= MAX_AREA * object_size**2).all():
            continue  # a blob far smaller or larger than the object (e.g. the whole frame lit) is not it
        half = object_size / 2 - 0.5
        ey = fit_reflected_line(track[i, :, 0], half, height - 1 - half, max_speed)
        ex = fit_reflected_line(track[i, :, 1], half, width - 1 - half, max_speed)
        errors[i] = float(np.hypot(ey, ex))
        passed[i] = errors[i] <= FIT_TOLERANCE
    return MotionReport(passed=passed, fit_error=errors, blobs=blobs, track=track)
