"""Caption match: does each clip show what its caption asked for, read with the course's own tools?

A caption-conditioned model is asked for "a red square moves left"; the clip it draws is read back
without any learned text model, part by part (:func:`caption_match`):

* **shape** and **colour** (bouncing shapes, 3 channels): per frame, the object's kind and PALETTE
  colour as :mod:`~course_lib.metrics.consistency` reads them (:func:`read_shapes`,
  :func:`read_colours` over :func:`object_masks`), in the frames that show exactly one object of the
  data's size; the clip reads the most frequent clear value;
* **digit** (moving digits, 1 channel): the digit judge's reading of the box around the object
  (:func:`read_digits`), the most frequent one;
* **direction**: the tracker's centroid path (:func:`track_objects`), fitted per axis with the best
  bouncing straight line (:func:`best_reflected_line`); the direction is the compass bin
  (:func:`~course_lib.data.captions.compass_direction`) of the fitted velocity at frame 1, the
  velocity a caption names.

A part matches when the reading equals the caption's value; a clip where nothing clear is read
does not match. One case stays ambiguous: an object that reaches a wall right at frame 1 has moved
one step towards it and every later step away; a digit, pasted at whole pixels with its ink off
the centre of its box, is read the other way in a few clips in a hundred. Real clips with their own captions match in every part; a caption with one attribute
changed fails that part only (``tests/test_caption_match.py``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from course_lib._validation import check_float_range, fail
from course_lib.data.captions import NONE, CaptionAttributes, compass_direction, parse_captions
from course_lib.data.video import SHAPE_KINDS
from course_lib.metrics.consistency import (
    OBJECT_FOREGROUND,
    UNCLEAR,
    check_clips,
    read_colours,
    read_digits,
    read_shapes,
)
from course_lib.metrics.motion import MAX_AREA, MIN_AREA, best_reflected_line, object_masks, track_objects

MIN_TRACKED_FRAMES = 3  # frames showing one object needed to read a direction
CAPTION_PARTS = ("shape", "colour", "digit", "direction")


@dataclass
class CaptionMatchReport:
    """Per-clip verdicts (B,) bool of each part; None where a part does not apply to the clips.

    readings: {part: (B,) int} what the frames show (index into SHAPE_KINDS / PALETTE, digit,
    compass bin), UNCLEAR where nothing clear was read. asked: what the captions state.
    velocity: (B, 2) the fitted (dy, dx) at frame 0 in px per frame, NaN where unread.
    """

    shape: np.ndarray | None
    colour: np.ndarray | None
    digit: np.ndarray | None
    direction: np.ndarray
    readings: dict[str, np.ndarray]
    asked: CaptionAttributes
    velocity: np.ndarray

    @property
    def parts(self) -> dict[str, np.ndarray]:
        """{part: (B,) bool} of the parts that apply: shape, colour, direction or digit, direction."""
        return {name: getattr(self, name) for name in CAPTION_PARTS if getattr(self, name) is not None}

    @property
    def matched(self) -> np.ndarray:
        """(B,) bool: the clips that match their caption in every part."""
        return np.logical_and.reduce(list(self.parts.values()))

    @property
    def rates(self) -> dict[str, float]:
        """{part: share of clips matching it, ..., "all": share matching every part}."""
        return {**{name: float(ok.mean()) for name, ok in self.parts.items()}, "all": float(self.matched.mean())}

    def summary(self) -> str:
        """One line: "shape 97%, colour 100%, direction 91%: 89% of 128 clips match their caption"."""
        parts = ", ".join(f"{name} {rate:.0%}" for name, rate in self.rates.items() if name != "all")
        return f"{parts}: {self.rates['all']:.0%} of {len(self.direction)} clips match their caption"


def most_frequent(readings: np.ndarray) -> np.ndarray:
    """Each clip's most frequent clear reading (B, T) -> (B,), UNCLEAR where no frame reads clearly (ties: the smaller)."""
    out = np.full(len(readings), UNCLEAR)
    for i, row in enumerate(readings):
        clear = row[row != UNCLEAR]
        if len(clear):
            values, counts = np.unique(clear, return_counts=True)
            out[i] = values[counts.argmax()]
    return out


def shape_widths(video: torch.Tensor, masks: np.ndarray, one_object: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Each clip's object width in pixels from its area: (B, T, 3, H, W), masks (B, T, H, W) -> (B,).

    The soft area A = Σα (coverage α = (brightest channel + 1) / 2 inside the mask), the median over
    the frames that show one object; a square of side s has A = s², a circle of diameter s π s²/4.
    ``shape`` (B,) is the clip's reading (an unclear one counts as a square). NaN without such frames.
    """
    alpha = ((video.amax(2) + 1) / 2).clamp(0, 1).numpy() * masks  # (B, T, H, W)
    area = alpha.sum((-2, -1))
    area = np.array([np.median(a[seen]) if seen.any() else np.nan for a, seen in zip(area, one_object)])
    return np.where(shape == SHAPE_KINDS.index("circle"), 2 * np.sqrt(area / np.pi), np.sqrt(area))


def read_velocity(track: np.ndarray, widths: np.ndarray, height: int, width: int, max_speed: float) -> np.ndarray:
    """The velocity (dy, dx) at frame 1 of the best bouncing straight path through each track.

    track (B, T, 2) centroids (y, x), NaN where a frame shows no single object; widths (B,) each
    object's width s: its centre moves between (s − 1)/2 and the far wall minus that, at most
    ``max_speed`` px per frame -> (B, 2) px per frame, NaN where fewer than MIN_TRACKED_FRAMES frames
    were tracked. The path p(t) = low + fold(p0 − low + v·t) moves with −v on its way back from a wall.
    """
    velocity = np.full((len(track), 2), np.nan)
    for i, path in enumerate(track):
        if np.isfinite(path[:, 0]).sum() < MIN_TRACKED_FRAMES or not np.isfinite(widths[i]):
            continue
        for axis, extent in ((0, height), (1, width)):
            low, high = (widths[i] - 1) / 2, extent - 1 - (widths[i] - 1) / 2
            _, p0, v = best_reflected_line(path[:, axis], low, high, max_speed)
            returning = np.mod(p0 - low + v, 2 * (high - low)) > high - low  # at frame 1
            velocity[i, axis] = -v if returning else v
    return velocity


def _check_captions(captions: object, video: torch.Tensor) -> CaptionAttributes:
    asked = captions if isinstance(captions, CaptionAttributes) else parse_captions(captions)
    if len(asked) != len(video):
        fail("captions", f"one caption per clip ({len(video)})", f"{len(asked)} captions")
    shapes = video.shape[2] == 3
    if (asked.colour == NONE).any() if shapes else (asked.digit == NONE).any():
        kind = "bouncing shapes ('a red square moves left')" if shapes else "moving digits ('the digit 7 drifts up')"
        fail("captions", f"captions of {kind} for clips of {video.shape[2]} channel(s)", captions)
    return asked


def caption_match(video: torch.Tensor, captions: Sequence[str] | CaptionAttributes, object_size: float,
                  digit_judge: nn.Module | None = None) -> CaptionMatchReport:
    """Score each clip of ``video`` (B, T, C, H, W) in [-1, 1] against its caption.

    captions: B strings (:func:`~course_lib.data.captions.parse_captions` reads them) or their
    CaptionAttributes. C = 3: bouncing shapes (parts shape, colour, direction); C = 1: moving digits
    (digit, direction). object_size: the object's typical width in pixels (``recipe.object_size``).
    digit_judge: the reader of digits (default the cached judge for digits of round(object_size) px).
    """
    video = check_clips("video", video).detach().float().cpu()
    check_float_range("object_size", object_size, 1.0, float(min(video.shape[-2:])))
    asked = _check_captions(captions, video)
    masks, blobs = object_masks(video, OBJECT_FOREGROUND)
    area = masks.sum(axis=(2, 3))
    one_object = (blobs == 1) & (area >= MIN_AREA * object_size**2) & (area <= MAX_AREA * object_size**2)  # (B, T)
    track = track_objects(video, OBJECT_FOREGROUND)[0]
    track[~one_object] = np.nan
    if video.shape[2] == 3:
        readings = {"shape": most_frequent(np.where(one_object, read_shapes(video, masks), UNCLEAR)),
                    "colour": most_frequent(np.where(one_object, read_colours(video, masks), UNCLEAR))}
        widths = shape_widths(video, masks, one_object, readings["shape"])
    else:
        digits = read_digits(video, track, object_size, digit_judge)
        readings = {"digit": most_frequent(np.where(one_object, digits, UNCLEAR))}
        widths = np.full(len(video), float(object_size))  # digits are pasted in boxes of one size
    velocity = read_velocity(track, widths, *video.shape[-2:], max_speed=object_size)
    direction = compass_direction(torch.from_numpy(velocity)).numpy()
    readings["direction"] = np.where(np.isnan(velocity).any(1), UNCLEAR, direction)
    verdicts = {name: readings[name] == getattr(asked, name).numpy() if name in readings else None
                for name in CAPTION_PARTS}
    return CaptionMatchReport(readings=readings, asked=asked, velocity=velocity, **verdicts)
