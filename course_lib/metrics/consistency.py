"""Video consistency: does each clip show one object that stays itself, as a person would check?

A viewer of the course's clips expects one object that never changes: present in every frame,
moving like the data's objects, and keeping its look. A ball that turns from red to yellow on a
clean path passes :func:`~course_lib.metrics.motion.motion_consistency`, which follows positions
only, but no viewer. :func:`video_consistency` checks each clip (B, T, C, H, W) in [-1, 1] in parts:

1. **present** -- every frame shows exactly one object of the data's size: one blob
   (:func:`~course_lib.metrics.motion.object_masks`, pixels brighter than OBJECT_FOREGROUND) whose
   area lies in [MIN_AREA, MAX_AREA] · object_size²;
2. **motion** -- :func:`~course_lib.metrics.motion.motion_consistency` with the same pixels: a
   constant velocity between bounces. It needs the object in every frame, so a clip that fails
   *present* fails *motion* too;
3. **appearance**, read in every frame that shows one object; a clip keeps it when no two frames
   read *clearly* different values (a reading between two values is no evidence of a change):

   * **colour** (3 channels, bouncing shapes): the PALETTE entry nearest the object's mean colour,
     clear when it is at most CLEAR_RATIO times as far as the second nearest;
   * **shape** (3 channels): which SHAPE_KINDS template fits the object's coverage
     α = (brightest channel + 1) / 2 better. Both are drawn by the data's own renderer
     (:func:`~course_lib.data.video.shape_coverage`) at the object's centroid with its area; with
     e_c, e_s their squared errors, the squareness q = (e_c − e_s) / (e_c + e_s) is −1 for a perfect
     circle, +1 for a perfect square, and the reading is clear when |q| ≥ CLEAR_SHAPE (a blurred
     blob is neither);
   * **digit** (1 channel, moving digits): the digit judge's reading of the object_size box centred
     on the object (:func:`~course_lib.metrics.judge.get_digit_judge` for digits of that size),
     every frame; with ``labels`` (class-conditional samples) each must be the requested digit.

A clip passes when every part does. :meth:`ConsistencyReport.failures` names each clip's first
failing part in the order above: its kind of failure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from course_lib._validation import check_float_range, check_rank, check_tensor, fail
from course_lib.data.video import PALETTE, SHAPE_KINDS, VIDEO_LAYOUT, shape_coverage
from course_lib.metrics.judge import get_digit_judge
from course_lib.metrics.motion import MAX_AREA, MIN_AREA, MotionReport, motion_consistency, object_masks

# a pixel whose brightest channel is above this belongs to an object: coverage α > 1/4, so the grey
# strokes of a thin digit drawn at 14 px stay one object of its size (motion's default, α > 1/2, breaks
# some of them apart)
OBJECT_FOREGROUND = -0.5
RANGE_SLACK = 0.1  # values up to this far outside [-1, 1] are accepted (raw, unclamped samples)
UNCLEAR = -1  # the reading of a frame without one object, or between two values
CLEAR_RATIO = 0.5  # a colour reading is clear when the nearest palette entry is at most half as far as the next
CLEAR_SHAPE = 0.5  # a shape reading is clear when the squareness q is at least this far from 0
FRAMES_PER_CHUNK = 1024  # shape templates are drawn for this many frames at a time (bounds memory)
PARTS = ("present", "motion", "colour", "shape", "digit")


@dataclass
class ConsistencyReport:
    """Per-clip verdicts (B,) bool of each part; None where a part does not apply to the clips.

    readings: per-frame readings (B, T) int of the appearance parts: "colour" (index into PALETTE),
    "shape" (index into SHAPE_KINDS) or "digit" (0-9); UNCLEAR where a frame shows no single object
    or its reading is not clear.
    motion_report: the full :class:`~course_lib.metrics.motion.MotionReport` (track, fit errors).
    """

    present: np.ndarray
    motion: np.ndarray
    colour: np.ndarray | None
    shape: np.ndarray | None
    digit: np.ndarray | None
    readings: dict[str, np.ndarray]
    motion_report: MotionReport

    @property
    def parts(self) -> dict[str, np.ndarray]:
        """{part: (B,) bool} of the parts that apply, in order: present, motion, then colour and shape, or digit."""
        return {name: getattr(self, name) for name in PARTS if getattr(self, name) is not None}

    @property
    def look(self) -> np.ndarray:
        """(B,) bool: the clips that keep their look (every appearance part: colour and shape, or digit)."""
        return np.logical_and.reduce([ok for name, ok in self.parts.items() if name not in ("present", "motion")])

    @property
    def passed(self) -> np.ndarray:
        """(B,) bool: the clips that pass every part."""
        return np.logical_and.reduce(list(self.parts.values()))

    @property
    def pass_rate(self) -> float:
        """Share of clips that pass every part (the combined score)."""
        return float(self.passed.mean())

    @property
    def rates(self) -> dict[str, float]:
        """{part: share of clips passing it, ..., "combined": share passing all}."""
        return {**{name: float(ok.mean()) for name, ok in self.parts.items()}, "combined": self.pass_rate}

    def failures(self) -> list[str]:
        """Each clip's first failing part ("present", "motion", "colour", "shape" or "digit"), "" if it passes."""
        parts = self.parts
        return [next((name for name, ok in parts.items() if not ok[i]), "") for i in range(len(self.present))]

    def summary(self) -> str:
        """One line: each part's pass rate, then the combined one ("present 100%, motion 94%, ...: 55% of 64 ...")."""
        parts = ", ".join(f"{name} {rate:.0%}" for name, rate in self.rates.items() if name != "combined")
        return f"{parts}: {self.pass_rate:.0%} of {len(self.present)} clips pass all"


def check_clips(name: str, video: object) -> torch.Tensor:
    """Clips (B, T, C, H, W) of moving digits (C = 1) or bouncing shapes (C = 3), floats in [-1, 1]."""
    check_rank(name, check_tensor(name, video), 5, VIDEO_LAYOUT)
    if video.shape[2] not in (1, 3):
        fail(name, f"1 channel (moving digits) or 3 (bouncing shapes) at dim 2 of {VIDEO_LAYOUT}",
             f"shape {tuple(video.shape)}")
    if video.shape[0] == 0:
        fail(name, "at least one clip", "an empty batch (B = 0)")
    if video.shape[1] < 3:
        fail(name, "clips of at least 3 frames (motion needs them)", f"{video.shape[1]} frames")
    if not video.dtype.is_floating_point:
        fail(name, "float clips in [-1, 1] (bytes become x / 127.5 - 1)", f"dtype {video.dtype}")
    if not torch.isfinite(video).all():
        fail(name, "only finite values", "NaN or inf entries")
    low, high = video.min().item(), video.max().item()
    if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
        fail(name, "values in [-1, 1] (bytes become x / 127.5 - 1)", f"values in [{low:g}, {high:g}]")
    if low >= 0:
        fail(name, "values in [-1, 1] with the background near -1 (images in [0, 1] become 2x - 1)",
             f"values in [{low:g}, {high:g}] only")
    return video


def _check_labels(labels: object, video: torch.Tensor) -> np.ndarray | None:
    if labels is None:
        return None
    if video.shape[2] != 1:
        fail("labels", "None for bouncing shapes (only moving digits are class-conditional)", "labels")
    check_rank("labels", check_tensor("labels", labels), 1, "(B,)")
    if len(labels) != len(video) or labels.dtype.is_floating_point or labels.min() < 0 or labels.max() > 9:
        fail("labels", f"{len(video)} integer digits in [0, 9], one per clip",
             f"shape {tuple(labels.shape)}, dtype {labels.dtype}")
    return labels.cpu().numpy()


def _dilate(masks: np.ndarray) -> np.ndarray:
    """Masks (..., H, W) grown by one pixel in each frame (never across frames or clips)."""
    structure = np.zeros((1,) * (masks.ndim - 2) + (3, 3), dtype=bool)
    structure[..., 1, :] = structure[..., :, 1] = True
    return ndimage.binary_dilation(masks, structure=structure)


def read_colours(video: torch.Tensor, masks: np.ndarray) -> np.ndarray:
    """The PALETTE entry nearest the object's colour per frame, UNCLEAR when not clearly nearer than the next.

    video (B, T, 3, H, W), masks (B, T, H, W) -> (B, T) indices into PALETTE. A pixel of colour c
    drawn with coverage α is −1 + α(c + 1), so its colour at full brightness is
    2 (x + 1) / (max channel + 1) − 1 whatever α (every PALETTE entry has a channel at 1): the
    object's colour is the α-weighted mean of that over its mask, dim rim and bright core alike.
    """
    lit = video + 1  # (B, T, 3, H, W) in [0, 2]: α (c + 1)
    brightness = lit.amax(2, keepdim=True)  # 2α
    weight = torch.from_numpy(masks)[:, :, None] * brightness  # (B, T, 1, H, W)
    full = 2 * lit / brightness.clamp_min(1e-6) - 1  # the colour at full brightness
    colour = (full * weight).sum((-2, -1)) / weight.sum((-2, -1)).clamp_min(1e-6)  # (B, T, 3)
    distance = (colour[..., None, :] - PALETTE).norm(dim=-1)  # (B, T, 6)
    two = distance.topk(2, dim=-1, largest=False)
    clear = two.values[..., 0] <= CLEAR_RATIO * two.values[..., 1]
    return torch.where(clear, two.indices[..., 0], UNCLEAR).numpy()


def squareness(video: torch.Tensor, masks: np.ndarray) -> np.ndarray:
    """q = (e_c − e_s) / (e_c + e_s) per frame: −1 a circle, +1 a square, near 0 neither; (B, T, 3, H, W) -> (B, T).

    The object's coverage α = (brightest channel + 1) / 2 in its mask grown by a pixel (the
    anti-aliased rim); a circle of diameter 2·√(A/π) and a square of side √A, both of the object's
    soft area A = Σα, drawn at its soft centroid; e_c, e_s = Σ(α − template)² of each.
    """
    b, t, _, h, w = video.shape
    alpha = ((video.amax(2) + 1) / 2).clamp(0, 1) * torch.from_numpy(_dilate(masks))  # (B, T, H, W)
    alpha = alpha.flatten(0, 1)  # (N, H, W), N = B·T frames
    area = alpha.sum((-2, -1)).clamp_min(1e-6)  # (N,)
    ys, xs = torch.arange(h, dtype=alpha.dtype), torch.arange(w, dtype=alpha.dtype)
    centre = torch.stack([(alpha.sum(-1) * ys).sum(-1), (alpha.sum(-2) * xs).sum(-1)], -1) / area[:, None]  # (N, 2)
    widths = torch.stack([2 * (area / torch.pi).sqrt(), area.sqrt()], -1)  # (N, 2): circle, square
    kinds = torch.tensor([SHAPE_KINDS.index("circle"), SHAPE_KINDS.index("square")]).expand(len(alpha), 2)
    errors = []
    for start in range(0, len(alpha), FRAMES_PER_CHUNK):
        part = slice(start, start + FRAMES_PER_CHUNK)
        positions = centre[part, None, None, :].expand(-1, 1, 2, 2)  # (n, 1 frame, 2 kinds, (y, x))
        templates = shape_coverage(positions, widths[part], kinds[part], h)[:, 0]  # (n, 2, H, W)
        errors.append(((templates - alpha[part, None]) ** 2).sum((-2, -1)))
    e = torch.cat(errors)  # (N, 2)
    return ((e[:, 0] - e[:, 1]) / (e.sum(-1) + 1e-12)).view(b, t).numpy()


def read_shapes(video: torch.Tensor, masks: np.ndarray) -> np.ndarray:
    """The SHAPE_KINDS kind per frame (B, T) from the :func:`squareness` q.

    circle where q ≤ −CLEAR_SHAPE, square where q ≥ CLEAR_SHAPE, else UNCLEAR.
    """
    q = squareness(video, masks)
    circle, square = SHAPE_KINDS.index("circle"), SHAPE_KINDS.index("square")
    return np.where(q <= -CLEAR_SHAPE, circle, np.where(q >= CLEAR_SHAPE, square, UNCLEAR))


def read_digits(video: torch.Tensor, track: np.ndarray, object_size: float,
                judge: nn.Module | None = None) -> np.ndarray:
    """The digit judge's reading of the box of side round(object_size) centred on the object, per frame.

    video (B, T, 1, H, W), track (B, T, 2) centroids (y, x) (NaN: nothing found) -> (B, T) digits,
    UNCLEAR where nothing was found. judge: default the digit judge for digits of the box's size.
    """
    b, t = video.shape[:2]
    box = round(object_size)
    judge = judge if judge is not None else get_digit_judge(size=box)
    frames = F.pad(video.flatten(0, 1).float(), (box,) * 4, value=-1.0)  # (N, 1, H + 2 box, W + 2 box)
    centres = track.reshape(b * t, 2)
    found = ~np.isnan(centres[:, 0])
    readings = np.full(b * t, UNCLEAR)
    if found.any():
        corner = np.round(centres[found] - (box - 1) / 2).astype(int) + box  # top-left in the padded frame
        crops = torch.stack([frames[i, :, y:y + box, x:x + box] for i, (y, x) in zip(np.flatnonzero(found), corner)])
        readings[found] = judge.logits(crops).argmax(1).numpy()
    return readings.reshape(b, t)


def kept(readings: np.ndarray, shown: np.ndarray, required: np.ndarray | None = None) -> np.ndarray:
    """(B,) bool: the clip shows its object at least once and no two clear readings differ.

    readings (B, T) with UNCLEAR where unclear; shown (B, T) bool, the frames with one object.
    required (B,): the value every shown frame must read (the requested digit), or None.
    """
    if required is not None:
        return shown.any(1) & ((readings == required[:, None]) | ~shown).all(1)
    clear = readings != UNCLEAR
    low = np.where(clear, readings, np.iinfo(readings.dtype).max).min(1)
    high = np.where(clear, readings, np.iinfo(readings.dtype).min).max(1)
    return shown.any(1) & (~clear.any(1) | (low == high))


def video_consistency(video: torch.Tensor, object_size: float, labels: torch.Tensor | None = None,
                      digit_judge: nn.Module | None = None) -> ConsistencyReport:
    """Score each clip of ``video`` (B, T, C, H, W) in [-1, 1]: present, motion, and a constant look.

    C = 3: bouncing shapes (parts present, motion, colour, shape); C = 1: moving digits (present,
    motion, digit). object_size: the object's typical width in pixels (``recipe.object_size``).
    labels: (B,) the digits class-conditional clips were asked for (each must be read in every
    frame), or None. digit_judge: the reader of digits (default the cached judge for digits of
    round(object_size) pixels, trained once in about 10 s). Values up to RANGE_SLACK outside [-1, 1]
    are accepted; other ranges, ranks and channel counts are refused with a ValueError.
    """
    video = check_clips("video", video).detach().float().cpu()
    check_float_range("object_size", object_size, 1.0, float(min(video.shape[-2:])))
    required = _check_labels(labels, video)
    masks, blobs = object_masks(video, OBJECT_FOREGROUND)
    area = masks.sum(axis=(2, 3))
    one_object = (blobs == 1) & (area >= MIN_AREA * object_size**2) & (area <= MAX_AREA * object_size**2)  # (B, T)
    motion = motion_consistency(video, object_size, OBJECT_FOREGROUND)

    if video.shape[2] == 3:
        readings = {"colour": read_colours(video, masks), "shape": read_shapes(video, masks)}
    else:
        readings = {"digit": read_digits(video, motion.track, object_size, digit_judge)}
    readings = {name: np.where(one_object, values, UNCLEAR) for name, values in readings.items()}
    appearance = {name: kept(readings[name], one_object, required if name == "digit" else None)
                  if name in readings else None for name in ("colour", "shape", "digit")}
    return ConsistencyReport(present=one_object.all(1), motion=motion.passed, readings=readings,
                             motion_report=motion, **appearance)

