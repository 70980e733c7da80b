"""Measuring predicted futures and long rollouts against the true clips (notebooks 08 and 09).

Every method is a *predictor* ``predict(past (B, k, C, H, W), frames) -> (B, frames, C, H, W)``
that keeps the k past frames and fills in the rest. The course's clips are generated, so their true
futures are known and each method is measured on the same clips, per clip:

* PSNR and SSIM of the predicted future frames against the truth (:mod:`course_lib.metrics.image`);
* whether it beats the *repeat the last frame* baseline in PSNR (a still picture is a strong
  baseline for short horizons: most pixels are background and stay so);
* motion consistency of the whole clip (:mod:`course_lib.metrics.motion`): one object, moving at
  constant velocity between bounces -- and still *moving*: a frozen object fits a line of speed ≈ 0
  within the metric's tolerance, so a clip also needs a median speed of at least ``min_speed``.

For long videos :func:`autoregressive_rollout` chains a predictor, and :func:`decay_with_length`
measures how per-frame PSNR and motion consistency fall as the video grows. :func:`video_predictors`
makes the three methods of notebook 08 (frame-conditional, replacement, guidance) with its settings.
Videos are (B, T, C, H, W) in [-1, 1].
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from course_lib._validation import (
    check_float_range, check_int_range, check_positive_int, check_rank, check_tensor, fail,
)
from course_lib.metrics.image import psnr, psnr_from_mse, ssim
from course_lib.metrics.motion import motion_consistency

Predictor = Callable[[torch.Tensor, int], torch.Tensor]


# --- baselines -------------------------------------------------------------------------------------

def repeat_last_frame(past: torch.Tensor, frames: int) -> torch.Tensor:
    """The still-picture baseline: past (B, k, C, H, W) -> (B, frames, C, H, W), frame k−1 repeated."""
    check_rank("past", past, 5, "(B, k, C, H, W)")
    k = past.shape[1]
    check_int_range("frames", frames, k + 1, 10_000)
    return torch.cat([past, past[:, -1:].expand(-1, frames - k, -1, -1, -1)], dim=1)


def interpolate_frames(video: torch.Tensor, damaged: Sequence[int]) -> torch.Tensor:
    """The repair baseline: each damaged frame a linear blend of the nearest intact frames before and after.

    video: (B, T, C, H, W); damaged: frame indices. A damaged frame with intact frames only on one
    side copies the nearest one: x_j = ((b − j)·x_a + (j − a)·x_b) / (b − a) for intact a < j < b.
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    frames = video.shape[1]
    damaged = sorted(set(_frame_indices("damaged", damaged, frames)))
    intact = [j for j in range(frames) if j not in damaged]
    if not intact:
        fail("damaged", f"at least one intact frame of {frames}", damaged)
    out = video.clone()
    for j in damaged:
        before = [a for a in intact if a < j]
        after = [b for b in intact if b > j]
        if before and after:
            a, b = before[-1], after[0]
            out[:, j] = ((b - j) * video[:, a] + (j - a) * video[:, b]) / (b - a)
        else:
            out[:, j] = video[:, (before or after)[-1 if before else 0]]
    return out


def _frame_indices(name: str, indices, frames: int) -> list[int]:
    indices = list(indices)
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < frames:
            fail(name, f"frame indices in [0, {frames - 1}]", indices)
    return indices


# --- scores of predicted futures ------------------------------------------------------------------------

def _check_prediction(prediction: torch.Tensor, truth: torch.Tensor, known: int) -> None:
    check_rank("prediction", prediction, 5, "(B, T, C, H, W)")
    check_rank("truth", truth, 5, "(B, T, C, H, W)")
    if prediction.shape != truth.shape:
        fail("prediction", f"the shape of truth {tuple(truth.shape)}", f"shape {tuple(prediction.shape)}")
    check_int_range("known", known, 0, truth.shape[1] - 1)


def future_psnr(prediction: torch.Tensor, truth: torch.Tensor, known: int) -> torch.Tensor:
    """(B,) PSNR of each clip's future frames k…T−1: 10·log10(4 / MSE), MSE over all their pixels."""
    _check_prediction(prediction, truth, known)
    return frames_psnr(prediction, truth, list(range(known, truth.shape[1])))


def frames_psnr(prediction: torch.Tensor, truth: torch.Tensor, frames: Sequence[int]) -> torch.Tensor:
    """(B,) PSNR of each clip over the listed frames only (e.g. the repaired ones), MSE over all their pixels."""
    _check_prediction(prediction, truth, 0)
    frames = _frame_indices("frames", frames, truth.shape[1])
    if not frames:
        fail("frames", "at least one frame index", frames)
    pick = lambda v: v[:, frames].flatten(1, 2).float().cpu()  # (B, F·C, H, W)
    return psnr(pick(prediction), pick(truth), reduction="none")


def region_psnr(prediction: torch.Tensor, truth: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR inside ``region`` (1 = counted; broadcastable to the clips, e.g. (1, 1, 1, H, W)) only.

    PSNR = 10·log10(4 / MSE) with MSE = Σ region·(prediction − truth)² / Σ region, per clip.
    """
    _check_prediction(prediction, truth, 0)
    check_tensor("region", region)
    try:
        weight = torch.broadcast_to(region.float().cpu(), truth.shape)
    except RuntimeError:
        fail("region", f"a shape broadcastable to the clips {tuple(truth.shape)}", f"shape {tuple(region.shape)}")
    area = weight.flatten(1).sum(1)
    if (area == 0).any():
        fail("region", "at least one pixel in every clip", "an empty region")
    error = ((prediction.float().cpu() - truth.float().cpu()) ** 2 * weight).flatten(1).sum(1) / area
    return psnr_from_mse(error.double()).float()


def future_ssim(prediction: torch.Tensor, truth: torch.Tensor, known: int) -> torch.Tensor:
    """(B,) SSIM of each future frame against the truth (Wang et al. 2004), averaged over the frames."""
    _check_prediction(prediction, truth, known)
    b = truth.shape[0]
    frames = lambda v: v[:, known:].flatten(0, 1).float().cpu()  # (B·(T−k), C, H, W)
    return ssim(frames(prediction), frames(truth), reduction="none").view(b, -1).mean(1)


def keeps_moving(track: np.ndarray, min_speed: float) -> np.ndarray:
    """(B,) True where the tracked centre (B, T, 2) moves at least ``min_speed`` px/frame (median over frames).

    The median ignores a few bad steps (a bounce, a tracking slip) but not an object that stops.
    """
    check_float_range("min_speed", min_speed, 0.0, 1e3)
    steps = np.linalg.norm(np.diff(np.asarray(track, dtype=float), axis=1), axis=-1)  # (B, T − 1), NaN if lost
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(np.median(steps, axis=1), nan=0.0) >= min_speed


def motion_passes(video: torch.Tensor, object_size: float, min_speed: float) -> np.ndarray:
    """(B,) motion consistency (one object on a bouncing constant-velocity path) *and* still moving."""
    report = motion_consistency(video.detach().float().cpu(), object_size)
    return report.passed & keeps_moving(report.track, min_speed)


@dataclass
class PredictionScores:
    """Per-clip scores of one method: psnr (B,) dB, ssim (B,), motion_passed (B,) bool (consistent and moving)."""

    psnr: torch.Tensor
    ssim: torch.Tensor
    motion_passed: np.ndarray

    def beats(self, other: "PredictionScores") -> float:
        """Fraction of clips where this method's PSNR is higher than ``other``'s on the same clip."""
        if self.psnr.shape != other.psnr.shape:
            fail("other", f"scores of the same {len(self.psnr)} clips", f"{len(other.psnr)} clips")
        return float((self.psnr > other.psnr).float().mean())

    @property
    def motion_pass_rate(self) -> float:
        """Fraction of clips that pass :func:`motion_passes`."""
        return float(self.motion_passed.mean())


def score_predictions(prediction: torch.Tensor, truth: torch.Tensor, known: int, object_size: float,
                      min_speed: float = 0.5) -> PredictionScores:
    """PSNR/SSIM of the future frames and :func:`motion_passes` of the whole clip, per clip."""
    _check_prediction(prediction, truth, known)
    return PredictionScores(future_psnr(prediction, truth, known), future_ssim(prediction, truth, known),
                            motion_passes(prediction, object_size, min_speed))


def run_predictor(predict: Predictor, truth: torch.Tensor, known: int, batch_size: int = 16) -> torch.Tensor:
    """Predict every clip of ``truth`` (B, T, C, H, W) from its first ``known`` frames, ``batch_size`` at a time."""
    if not callable(predict):
        fail("predict", "a function predict(past, frames)", type(predict).__name__)
    check_rank("truth", truth, 5, "(B, T, C, H, W)")
    check_int_range("known", known, 1, truth.shape[1] - 1)
    check_positive_int("batch_size", batch_size)
    chunks = [predict(truth[i:i + batch_size, :known], truth.shape[1]) for i in range(0, len(truth), batch_size)]
    return torch.cat([c.detach().cpu() for c in chunks])


def comparison_table(scores: dict[str, PredictionScores], baseline: str) -> str:
    """One line per method: mean PSNR, mean SSIM, % of clips beating ``baseline`` in PSNR, motion pass rate."""
    if baseline not in scores:
        fail("baseline", "one of the methods in scores (" + ", ".join(scores) + ")", baseline)
    width = max(len(name) for name in scores)
    lines = [f"{'method':{width}s}   PSNR (dB)   SSIM    beats '{baseline}'   motion pass"]
    for name, s in scores.items():
        beats = "—" if name == baseline else f"{100 * s.beats(scores[baseline]):5.0f} %"
        lines.append(f"{name:{width}s}   {s.psnr.mean():9.2f}   {s.ssim.mean():5.3f}   {beats:>{len(baseline) + 8}s}   "
                     f"{100 * s.motion_pass_rate:9.0f} %")
    return "\n".join(lines)


def palette_distance(video: torch.Tensor) -> torch.Tensor:
    """(B,) how far a bouncing-shapes clip's colours are from the data's: for every pixel the distance
    (RGB, in [-1, 1] units) to the nearest colour the data uses -- the black background or one of
    :data:`~course_lib.data.video.PALETTE` -- averaged over the clip.

    Clean shapes score near 0 (only anti-aliased edges are in between); blur, blocks, colour drift
    and noise score higher. A measure of "looks like the data" that needs no trained network.
    video: (B, T, 3, H, W).
    """
    from course_lib.data.video import PALETTE

    check_rank("video", video, 5, "(B, T, C, H, W)")
    if video.shape[2] != 3:
        fail("video", "RGB clips (C = 3) of bouncing shapes", f"shape {tuple(video.shape)}")
    colours = torch.cat([torch.full((1, 3), -1.0), PALETTE])  # (7, 3): background first
    pixels = video.detach().float().cpu().movedim(2, -1).reshape(video.shape[0], -1, 1, 3)  # (B, T·H·W, 1, 3)
    nearest = (pixels - colours).norm(dim=-1).amin(-1)  # (B, T·H·W)
    return nearest.mean(1)


# --- long videos ---------------------------------------------------------------------------------------

@dataclass
class DecayCurve:
    """How a long video degrades: frame_psnr (T,) mean PSNR of frame j against the truth over clips;
    lengths: clip lengths L; motion_pass_rate: fraction of clips whose first L frames pass motion consistency."""

    frame_psnr: torch.Tensor
    lengths: list[int]
    motion_pass_rate: list[float]


def decay_with_length(video: torch.Tensor, truth: torch.Tensor, object_size: float, lengths: Sequence[int],
                      min_speed: float = 0.5) -> DecayCurve:
    """Per-frame PSNR of ``video`` against ``truth`` (both (B, T, C, H, W)), and the rate of
    :func:`motion_passes` on the first L frames for each L in ``lengths``."""
    _check_prediction(video, truth, 0)
    lengths = [check_int_range("lengths", L, 3, video.shape[1]) for L in lengths]
    b, t = video.shape[:2]
    per_frame = psnr(video.flatten(0, 1).float().cpu(), truth.flatten(0, 1).float().cpu(), reduction="none")
    rates = [float(motion_passes(video[:, :L], object_size, min_speed).mean()) for L in lengths]
    return DecayCurve(per_frame.view(b, t).clamp(max=60).mean(0), lengths, rates)


def decay_table(curves: dict[str, DecayCurve]) -> str:
    """One line per curve: its name, then the motion pass rate at each length ("8 frames 75 %, ...")."""
    width = max(len(name) for name in curves)
    return "\n".join(f"{name:{width}s}   motion pass: " + ", ".join(
        f"{L} frames {100 * rate:.0f} %" for L, rate in zip(curve.lengths, curve.motion_pass_rate))
        for name, curve in curves.items())


def min_moving_speed(size: int) -> float:
    """Slowest speed (px/frame) that counts as moving in ``size`` px bouncing shapes: half the data's
    slowest, size/32 (so size/64)."""
    return check_positive_int("size", size) / 64
