"""Synthetic videos with known motion, and the course's video layout.

**Layout.** A batch of videos is ``(B, T, C, H, W)``: clips, frames, channels, height, width, with
values in [-1, 1]. ``Conv3d`` wants ``(B, C, T, H, W)`` (:func:`to_channels_first_time` and back);
per-frame 2D layers want ``(B·T, C, H, W)`` (:func:`frames_to_batch` and back).

**Data.** :func:`moving_digits` (the Moving-MNIST protocol, C = 1) and :func:`bouncing_shapes`
(coloured circles and squares, C = 3) move each object at constant velocity and reflect it off the
frame's walls. They return a :class:`VideoBatch` with the ground truth: object centres, velocities,
labels. Pass ``seed=`` for a fixed batch or ``generator=`` for a stream (a fresh batch per training
step, see :func:`infinite_batches`).

**Motion.** Per axis, the centre moves between ``low = (s − 1)/2`` and ``high = L − 1 − (s − 1)/2``
(s the object's size, L the frame's): unfold u = p0 − low + v·t, fold it into [0, 2·span) and
mirror the second half — a triangle wave, i.e. constant speed with a bounce at each wall.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from einops import rearrange

from course_lib._validation import check_int_range, check_positive_int, check_rank, check_tensor, fail
from course_lib.data.digits import render_digits
from course_lib.data.toy import make_generator

VIDEO_LAYOUT = "(B, T, C, H, W)"
SHAPE_KINDS = ("circle", "square")  # label k of bouncing_shapes is SHAPE_KINDS[k]
# Saturated colours (RGB in [-1, 1]), named by PALETTE_NAMES.
PALETTE = torch.tensor([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], dtype=torch.float32)
PALETTE_NAMES = ("red", "green", "blue", "yellow", "magenta", "cyan")


# --- layout ----------------------------------------------------------------------------------

def check_video(name: str, video: object, channels: tuple[int, ...] | None = None) -> torch.Tensor:
    """Raise a clear ValueError unless ``video`` is a (B, T, C, H, W) tensor (with C in ``channels``)."""
    check_rank(name, check_tensor(name, video), 5, VIDEO_LAYOUT)
    if channels is not None and video.shape[2] not in channels:
        fail(name, f"{' or '.join(map(str, channels))} channels at dim 2 of {VIDEO_LAYOUT}",
             f"shape {tuple(video.shape)}")
    return video


def to_channels_first_time(video: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, C, T, H, W), the layout of ``nn.Conv3d``."""
    check_video("video", video)
    return rearrange(video, "b t c h w -> b c t h w")


def from_channels_first_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, T, C, H, W), back to the course layout."""
    check_rank("x", x, 5, "(B, C, T, H, W)")
    return rearrange(x, "b c t h w -> b t c h w")


def frames_to_batch(video: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B·T, C, H, W): every frame an image, for per-frame 2D layers."""
    check_video("video", video)
    return rearrange(video, "b t c h w -> (b t) c h w")


def batch_to_frames(images: torch.Tensor, frames: int) -> torch.Tensor:
    """(B·T, C, H, W) -> (B, T, C, H, W), undoing :func:`frames_to_batch`."""
    check_rank("images", images, 4, "(B·T, C, H, W)")
    check_positive_int("frames", frames)
    if images.shape[0] % frames:
        fail("frames", f"a divisor of the batch size {images.shape[0]}", frames)
    return rearrange(images, "(b t) c h w -> b t c h w", t=frames)


# --- statistics over time --------------------------------------------------------------------

def frame_correlation(video: torch.Tensor, lag: int) -> torch.Tensor:
    """Mean Pearson correlation between frames ``lag`` apart -> 0-dim tensor.

    ρ_k = mean over clips b and frames t of corr(x[b, t], x[b, t + k]), where
    corr(u, v) = Σ(u − ū)(v − v̄) / √(Σ(u − ū)² · Σ(v − v̄)²) over the pixels of one frame.
    """
    check_video("video", video)
    check_int_range("lag", lag, 0, video.shape[1] - 1)
    a = video[:, : video.shape[1] - lag].flatten(2).double()  # (B, T − k, C·H·W)
    b = video[:, lag:].flatten(2).double()
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    corr = (a * b).sum(-1) / ((a**2).sum(-1) * (b**2).sum(-1)).sqrt().clamp_min(1e-12)
    return corr.mean().float()


def correlation_by_lag(video: torch.Tensor, max_lag: int | None = None) -> torch.Tensor:
    """ρ_k of :func:`frame_correlation` for k = 0 … max_lag (default T − 1) -> (max_lag + 1,)."""
    check_video("video", video)
    max_lag = video.shape[1] - 1 if max_lag is None else check_int_range("max_lag", max_lag, 0, video.shape[1] - 1)
    return torch.stack([frame_correlation(video, k) for k in range(max_lag + 1)])


def shuffle_frames(video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each clip's frames in a random order (B, T, C, H, W): same images, no temporal structure."""
    check_video("video", video)
    b, t = video.shape[:2]
    order = torch.rand(b, t, generator=generator).argsort(1).to(video.device)
    return video[torch.arange(b, device=video.device)[:, None], order]


# --- synthetic videos ------------------------------------------------------------------------

@dataclass
class VideoBatch:
    """A batch of synthetic clips and their ground truth (K objects per clip).

    * video: (B, T, C, H, W) float32 in [-1, 1];
    * positions: (B, T, K, 2) float32, each object's *centre* (y, x) in pixels (row, column; pixel
      i covers [i − ½, i + ½]). Digits are pasted at the nearest whole pixel, so their drawn centre
      is within ½ px of this; shapes are drawn at exactly this point;
    * velocities: (B, T, K, 2) float32, (dy, dx) in pixels per frame at frame t (flips at a bounce);
    * labels: (B, K) int64: the digit (moving_digits) or the index into SHAPE_KINDS;
    * colors: (B, K, 3) float32 RGB in [-1, 1] for shapes; None for digits;
    * sizes: (B, K) float32: object width in pixels (digit box or shape diameter/side).
    """

    video: torch.Tensor
    positions: torch.Tensor
    velocities: torch.Tensor
    labels: torch.Tensor
    colors: torch.Tensor | None = None
    sizes: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.video.shape[0]

    def to(self, device: torch.device | str) -> "VideoBatch":
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return VideoBatch(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()})


def bounce(start: torch.Tensor, velocity: torch.Tensor, frames: int, low: torch.Tensor, high: torch.Tensor):
    """Positions and velocities of points reflected between ``low`` and ``high`` (all broadcastable).

    start, velocity: (...) -> positions, velocities (..., frames); position at frame t is
    low + fold(start − low + velocity·t), fold = triangle wave of period 2·(high − low).
    """
    span = high - low
    t = torch.arange(frames, dtype=start.dtype)
    unfolded = torch.remainder((start - low)[..., None] + velocity[..., None] * t, 2 * span[..., None])
    returning = unfolded > span[..., None]  # on the way back after a wall
    positions = low[..., None] + torch.where(returning, 2 * span[..., None] - unfolded, unfolded)
    velocities = torch.where(returning, -velocity[..., None], velocity[..., None])
    return positions, velocities


def _random_motion(batch: int, count: int, frames: int, size: int, sizes: torch.Tensor,
                   speed: tuple[float, float], g: torch.Generator, headings: int | None = None):
    """Start anywhere, move in a random direction -> positions, velocities (B, T, K, 2) (y, x).

    headings: None for any direction, or n to round each direction to the nearest of n equally
    spaced headings (8: the compass directions a caption names); the same random draws either way.
    """
    low = (sizes - 1) / 2  # (B, K)
    high = size - 1 - low
    start = low[..., None] + torch.rand(batch, count, 2, generator=g) * (high - low)[..., None]  # (B, K, 2)
    angle = torch.rand(batch, count, generator=g) * 2 * math.pi
    if headings is not None:
        angle = torch.round(angle / (2 * math.pi / headings)) * (2 * math.pi / headings)
    speeds = speed[0] + (speed[1] - speed[0]) * torch.rand(batch, count, generator=g)
    velocity = torch.stack([angle.sin(), angle.cos()], -1) * speeds[..., None]  # (B, K, 2) (dy, dx)
    positions, velocities = bounce(start, velocity, frames, low[..., None], high[..., None])  # (B, K, 2, T)
    return positions.permute(0, 3, 1, 2).contiguous(), velocities.permute(0, 3, 1, 2).contiguous()


def _check_common(batch: int, frames: int, size: int, count_name: str, count: int, speed, headings=None):
    check_positive_int("batch", batch)
    if headings is not None:
        check_int_range("headings", headings, 1, 360)
    check_positive_int("frames", frames)
    check_int_range("size", size, 8, 1024)
    check_int_range(count_name, count, 1, 16)
    if speed is not None:
        if not (isinstance(speed, (tuple, list)) and len(speed) == 2 and 0 <= speed[0] <= speed[1]):
            fail("speed", "a pair (low, high) of pixels per frame with 0 <= low <= high", speed)
    return (size / 32, size / 16) if speed is None else (float(speed[0]), float(speed[1]))


def _paste_max(ink: torch.Tensor, top_left: torch.Tensor, frames: int, size: int) -> torch.Tensor:
    """Paste square patches into blank frames, keeping the max where they overlap.

    ink: (B, K, s, s) in [0, 1]; top_left: (B, T, K, 2) integer pixels inside the frame
    -> (B, T, size, size) in [0, 1]. One scatter of all B·T·K·s² pixels (index arithmetic).
    """
    b, k, s, _ = ink.shape
    offsets = torch.arange(s)
    rows = top_left[..., 0, None] + offsets  # (B, T, K, s)
    cols = top_left[..., 1, None] + offsets
    frame = torch.arange(b * frames).view(b, frames, 1, 1, 1)
    index = (frame * size + rows[..., :, None]) * size + cols[..., None, :]  # (B, T, K, s, s)
    values = ink[:, None].expand(b, frames, k, s, s)
    canvas = torch.zeros(b * frames * size * size)
    canvas.scatter_reduce_(0, index.reshape(-1), values.reshape(-1), reduce="amax")
    return canvas.view(b, frames, size, size)


def moving_digits(
    batch: int,
    frames: int = 16,
    size: int = 64,
    num_digits: int = 1,
    seed: int = 0,
    digit_size: int | None = None,
    split: str = "train",
    speed: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    headings: int | None = None,
) -> VideoBatch:
    """Moving digits (Srivastava et al. 2015 protocol) -> VideoBatch with video (B, T, 1, size, size).

    Each clip shows ``num_digits`` digits from :func:`render_digits` (``split`` chooses the fonts),
    each moving at constant velocity and bouncing off the walls; overlapping digits combine by max.
    digit_size: box side in pixels (default 28·size/64: 28 in a 64-pixel frame, 14 in 32).
    speed: (low, high) pixels per frame, default (size/32, size/16); direction uniform, or the
    nearest of ``headings`` equally spaced ones (8: the compass directions of a caption).
    """
    speed = _check_common(batch, frames, size, "num_digits", num_digits, speed, headings)
    digit_size = max(8, round(28 * size / 64)) if digit_size is None else digit_size
    check_int_range("digit_size", digit_size, 4, min(32, size - 1))
    g = make_generator(seed, generator)
    images, labels = render_digits(batch * num_digits, size=32 if digit_size > 28 else 28, split=split, generator=g)
    ink = (images + 1) / 2
    if ink.shape[-1] != digit_size:
        ink = F.interpolate(ink, size=(digit_size, digit_size), mode="bilinear", antialias=True, align_corners=False)
    sizes = torch.full((batch, num_digits), float(digit_size))
    positions, velocities = _random_motion(batch, num_digits, frames, size, sizes, speed, g, headings)
    top_left = (positions - (digit_size - 1) / 2).round().long().clamp(0, size - digit_size)
    canvas = _paste_max(ink.view(batch, num_digits, digit_size, digit_size).clamp(0, 1), top_left, frames, size)
    return VideoBatch(video=canvas[:, :, None] * 2 - 1, positions=positions, velocities=velocities,
                      labels=labels.view(batch, num_digits), sizes=sizes)


def shape_coverage(positions: torch.Tensor, sizes: torch.Tensor, kinds: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased masks of circles/squares centred at ``positions`` (B, T, K, 2) -> (B, T, K, H, W).

    Per pixel: coverage = clamp(r − d + ½, 0, 1), r = s/2; d is the distance to the centre for a
    circle and the per-axis distance (product of the two axes' coverage) for a square.
    """
    pixels = torch.arange(size, dtype=torch.float32)
    dy = (pixels.view(1, 1, 1, size, 1) - positions[..., 0, None, None]).abs()  # (B, T, K, H, 1)
    dx = (pixels.view(1, 1, 1, 1, size) - positions[..., 1, None, None]).abs()  # (B, T, K, 1, W)
    edge = (sizes / 2 + 0.5)[:, None, :, None, None]  # r + ½: (B, 1, K, 1, 1)
    circle = (edge - (dy**2 + dx**2).sqrt()).clamp_(0, 1)
    square = (edge - dy).clamp(0, 1) * (edge - dx).clamp(0, 1)
    return torch.where(kinds[:, None, :, None, None] == SHAPE_KINDS.index("circle"), circle, square)


def bouncing_shapes(
    batch: int,
    frames: int = 16,
    size: int = 32,
    num_shapes: int = 1,
    seed: int = 0,
    shape_size: tuple[float, float] | None = None,
    speed: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    headings: int | None = None,
) -> VideoBatch:
    """Coloured circles and squares bouncing on black -> VideoBatch with video (B, T, 3, size, size).

    Kind uniform over SHAPE_KINDS, colour uniform over PALETTE, width uniform in ``shape_size``
    (default (size/5, size/3) pixels); later shapes are drawn over earlier ones.
    speed: (low, high) pixels per frame, default (size/32, size/16); direction uniform, or the
    nearest of ``headings`` equally spaced ones (8: the compass directions of a caption).
    """
    speed = _check_common(batch, frames, size, "num_shapes", num_shapes, speed, headings)
    if shape_size is None:
        shape_size = (size / 5, size / 3)
    if not (isinstance(shape_size, (tuple, list)) and len(shape_size) == 2 and 2 <= shape_size[0] <= shape_size[1] < size):
        fail("shape_size", f"a pair (low, high) of widths with 2 <= low <= high < size={size}", shape_size)
    g = make_generator(seed, generator)
    kinds = torch.randint(0, len(SHAPE_KINDS), (batch, num_shapes), generator=g)
    colors = PALETTE[torch.randint(0, len(PALETTE), (batch, num_shapes), generator=g)]  # (B, K, 3)
    sizes = shape_size[0] + (shape_size[1] - shape_size[0]) * torch.rand(batch, num_shapes, generator=g)
    positions, velocities = _random_motion(batch, num_shapes, frames, size, sizes, speed, g, headings)
    alpha = shape_coverage(positions, sizes, kinds, size)  # (B, T, K, H, W)
    video = torch.full((batch, frames, 3, size, size), -1.0)
    for k in range(num_shapes):  # "over" compositing, back to front
        video = torch.lerp(video, colors[:, None, k, :, None, None], alpha[:, :, k, None])  # (1 − a)·video + a·colour
    return VideoBatch(video=video, positions=positions, velocities=velocities, labels=kinds,
                      sizes=sizes, colors=colors)


def infinite_batches(maker: Callable[..., VideoBatch], batch: int, seed: int = 0, **kwargs) -> Iterator[VideoBatch]:
    """Endless fresh batches ``maker(batch, generator=g, **kwargs)`` from one generator seeded with ``seed``.

    E.g. ``batches = infinite_batches(moving_digits, 16, seed=0, frames=8, size=32)``, then
    ``next(batches).video`` in a training loop. The same seed repeats the same sequence of batches.
    """
    if not callable(maker):
        fail("maker", "a function such as moving_digits or bouncing_shapes", maker)
    check_positive_int("batch", batch)
    g = make_generator(seed)
    while True:
        yield maker(batch, generator=g, **kwargs)
