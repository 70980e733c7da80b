"""Pictures of images, videos and trajectories: grids, filmstrips, animations, files, sliders.

Everything takes the course layouts — images (B, C, H, W), videos (T, C, H, W) or
(B, T, C, H, W), C = 1 (grey) or 3 (RGB) — with values in [-1, 1], and works headless (Agg) and in
notebooks. :func:`to_unit_range` is the one place where [-1, 1] becomes [0, 1] for display.

**Values out of range** (``out_of_range``): ``"warn"`` (default) clips to ``value_range`` and warns
with the range found; ``"clip"`` clips silently (meant for noisy x_t, which leaves [-1, 1] by
design); ``"error"`` raises ValueError. ``value_range=None`` instead rescales the tensor's own
min..max to [0, 1]. NaN or inf is always an error.

**Sliders** (:func:`slider_view`, :func:`frame_scrubber`, :func:`step_scrubber`) need ipywidgets
and a running notebook kernel; elsewhere they return a static figure of a few slider positions.
"""
from __future__ import annotations

import base64
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import imageio.v3 as iio
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from course_lib._validation import check_choice, check_finite, check_positive_int, check_tensor, fail

IMAGE_LAYOUT = "(B, C, H, W)"
VIDEO_LAYOUTS = "(T, C, H, W) or (B, T, C, H, W)"
OUT_OF_RANGE = ("warn", "clip", "error")
PAD_VALUE = 0.5  # grey lines between tiles


# --- values and layouts ----------------------------------------------------------------------

def to_unit_range(x: torch.Tensor, value_range: tuple[float, float] | None = (-1.0, 1.0), name: str = "images",
                  out_of_range: str = "warn") -> torch.Tensor:
    """Map ``value_range`` (default [-1, 1]) linearly to [0, 1] for display -> float32, same shape.

    value_range=None rescales x's own min..max. See the module docstring for ``out_of_range``.
    """
    x = check_tensor(name, x).detach().float().cpu()
    check_finite(name, x)
    check_choice("out_of_range", out_of_range, OUT_OF_RANGE)
    if value_range is None:
        low, high = x.min().item(), x.max().item()
        return (x - low) / max(high - low, 1e-12)
    low, high = value_range
    if not high > low:
        fail("value_range", "a pair (low, high) with low < high", value_range)
    slack = 1e-3 * (high - low)
    if x.numel() and (x.min() < low - slack or x.max() > high + slack) and out_of_range != "clip":
        message = (f"{name}: expected values in [{low:g}, {high:g}], got values in [{x.min():.3g}, {x.max():.3g}]")
        if out_of_range == "error":
            raise ValueError(message)
        warnings.warn(message + "; clipped for display (pass value_range=None to rescale, or out_of_range='clip')",
                      stacklevel=3)
    return ((x - low) / (high - low)).clamp(0, 1)


def _check_channels(name: str, x: torch.Tensor, layout: str) -> None:
    if x.shape[-3] not in (1, 3):
        hint = ""
        if x.dim() >= 4 and x.shape[-4] in (1, 3):
            hint = " (it looks channels-first in time, (B, C, T, H, W): use course_lib.data.video.from_channels_first_time)"
        raise ValueError(f"{name}: expected 1 or 3 channels at dim -3 of {layout}, got shape {tuple(x.shape)}{hint}")


def _as_images(name: str, images: torch.Tensor) -> torch.Tensor:
    check_tensor(name, images)
    if images.dim() != 4:
        hint = {5: " (a video (B, T, C, H, W)? use filmstrip or animate)", 3: " (one image? use x[None])"}.get(images.dim(), "")
        raise ValueError(f"{name}: expected a tensor of rank 4 {IMAGE_LAYOUT}, got shape {tuple(images.shape)}{hint}")
    _check_channels(name, images, IMAGE_LAYOUT)
    return images


def _as_clips(name: str, video: torch.Tensor) -> torch.Tensor:
    """(T, C, H, W) or (B, T, C, H, W) -> (B, T, C, H, W), checked."""
    check_tensor(name, video)
    if video.dim() not in (4, 5):
        raise ValueError(f"{name}: expected a tensor of rank 4 or 5 {VIDEO_LAYOUTS}, got shape {tuple(video.shape)}")
    _check_channels(name, video, VIDEO_LAYOUTS)
    return video if video.dim() == 5 else video[None]


def _mosaic(tiles: torch.Tensor, ncol: int, pad: int = 1) -> torch.Tensor:
    """Tiles (N, C, H, W) in [0, 1] -> one image (C, rows·(H+pad) − pad, ncol·(W+pad) − pad), row-major."""
    n, c, h, w = tiles.shape
    rows = -(-n // ncol)
    blank = torch.full((rows * ncol - n, c, h, w), PAD_VALUE)
    padded = F.pad(torch.cat([tiles, blank]), (0, pad, 0, pad), value=PAD_VALUE)  # (rows·ncol, C, H+p, W+p)
    grid = padded.view(rows, ncol, c, h + pad, w + pad).permute(2, 0, 3, 1, 4).reshape(c, rows * (h + pad), ncol * (w + pad))
    return grid[:, : grid.shape[1] - pad, : grid.shape[2] - pad]


def _show(ax, image: torch.Tensor) -> None:
    """imshow one (C, H, W) image in [0, 1], grey or RGB, pixels unsmoothed, no ticks."""
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _new_axes(ax, mosaic: torch.Tensor, inches_per_pixel: float = 1 / 28):
    """``ax``'s figure, or a new figure sized to the (C, H, W) mosaic (at most 14 inches a side)."""
    if ax is not None:
        return ax.figure, ax
    h, w = mosaic.shape[-2:]
    scale = min(inches_per_pixel, 14 / w, 14 / h)
    fig, ax = plt.subplots(figsize=(w * scale + 0.9, h * scale + 0.7))
    return fig, ax


# --- static pictures -------------------------------------------------------------------------

def image_grid(images: torch.Tensor, nrow: int = 8, ax=None, title: str | None = None,
               value_range: tuple[float, float] | None = (-1.0, 1.0), out_of_range: str = "warn") -> Figure:
    """Images (B, C, H, W) in a grid of ``nrow`` images per row -> the Figure (drawn into ``ax`` if given)."""
    images = _as_images("images", images)
    check_positive_int("nrow", nrow)
    tiles = to_unit_range(images, value_range, "images", out_of_range)
    ncol = min(nrow, len(tiles))
    mosaic = _mosaic(tiles, ncol)
    fig, ax = _new_axes(ax, mosaic)
    _show(ax, mosaic)
    if title:
        ax.set_title(title)
    return fig


def _frame_indices(frames: int, max_frames: int) -> list[int]:
    if frames <= max_frames:
        return list(range(frames))
    return torch.linspace(0, frames - 1, max_frames).round().long().tolist()


def filmstrip(video: torch.Tensor, ax=None, title: str | None = None, positions: torch.Tensor | None = None,
              max_frames: int = 16, value_range: tuple[float, float] | None = (-1.0, 1.0),
              out_of_range: str = "warn", frame_labels: Sequence | None = None,
              row_labels: Sequence | None = None) -> Figure:
    """Frames side by side, one row per clip -> the Figure.

    video: (T, C, H, W) or (B, T, C, H, W). positions: optional (T, K, 2) or (B, T, K, 2) object
    centres (y, x) in pixels (as in VideoBatch), drawn as red crosses. At most ``max_frames``
    evenly spaced frames are shown; columns are labelled with their frame index (or ``frame_labels``),
    rows "clip i" (or ``row_labels``).
    """
    clips = _as_clips("video", video)
    check_positive_int("max_frames", max_frames)
    b, t, _, h, w = clips.shape
    keep = _frame_indices(t, max_frames)
    if frame_labels is not None and len(frame_labels) != t:
        fail("frame_labels", f"one label per frame ({t})", f"{len(frame_labels)} labels")
    if row_labels is not None and len(row_labels) != b:
        fail("row_labels", f"one label per clip ({b})", f"{len(row_labels)} labels")
    tiles = to_unit_range(clips[:, keep], value_range, "video", out_of_range).flatten(0, 1)
    mosaic = _mosaic(tiles, len(keep))
    fig, ax = _new_axes(ax, mosaic, 0.9 / 28)
    _show(ax, mosaic)
    ax.set_xticks([(w + 1) * i + (w - 1) / 2 for i in range(len(keep))])
    ax.set_xticklabels([str(frame_labels[i]) if frame_labels is not None else f"t={i}" for i in keep], fontsize=7)
    if b > 1 or row_labels is not None:
        ax.set_yticks([(h + 1) * i + (h - 1) / 2 for i in range(b)])
        ax.set_yticklabels([str(x) for x in row_labels] if row_labels is not None else [f"clip {i}" for i in range(b)], fontsize=7)
    if positions is not None:
        _draw_positions(ax, positions, clips.shape, keep)
    if title:
        ax.set_title(title)
    return fig


def _draw_positions(ax, positions: torch.Tensor, shape: torch.Size, keep: list[int]) -> None:
    b, t, _, h, w = shape
    check_tensor("positions", positions)
    if positions.dim() == 3:
        positions = positions[None]
    if positions.dim() != 4 or tuple(positions.shape[:2]) != (b, t) or positions.shape[-1] != 2:
        fail("positions", f"a tensor of shape ({b}, {t}, K, 2) (centres (y, x) per clip, frame, object)",
             f"shape {tuple(positions.shape)}")
    p = positions[:, keep].detach().float().cpu()  # (B, F, K, 2)
    rows = torch.arange(b).view(b, 1, 1) * (h + 1)
    cols = torch.arange(len(keep)).view(1, -1, 1) * (w + 1)
    ax.scatter((p[..., 1] + cols).flatten(), (p[..., 0] + rows).flatten(), marker="+", s=25, c="red", linewidths=0.8)


def plot_trajectory(trajectory: torch.Tensor | Sequence[torch.Tensor], steps: Sequence | None = None,
                    num_panels: int = 6, max_paths: int = 64, title: str | None = None) -> Figure:
    """A denoising trajectory: S snapshots of a batch -> the Figure.

    trajectory: a list of S tensors (B, ...) or one tensor (S, B, ...); ``steps`` labels the S
    snapshots (e.g. the timesteps t). Points (B, 1): each particle's value against step.
    Points (B, 2): ``num_panels`` scatter plots at evenly spaced steps. Images (B, C, H, W): a
    filmstrip per sample (at most 4) over ``num_panels`` steps, values clipped to [-1, 1].
    """
    stack = _as_trajectory(trajectory)
    s = len(stack)
    labels = _step_labels(steps, s)
    keep = _frame_indices(s, num_panels)
    if stack.dim() == 5:  # (S, B, C, H, W): images
        return filmstrip(stack[:, :4].transpose(0, 1), max_frames=num_panels, out_of_range="clip",
                         frame_labels=labels, title=title)
    points = stack.detach().float().cpu()
    if points.shape[-1] == 1:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(range(s), points[:, :max_paths, 0].numpy(), lw=0.7, alpha=0.7)
        ax.set_xticks(keep)
        ax.set_xticklabels([str(labels[i]) for i in keep])
        ax.set_xlabel("step")
        ax.set_ylabel("x")
    else:
        fig, axes = plt.subplots(1, len(keep), figsize=(2.3 * len(keep), 2.5), sharex=True, sharey=True)
        for ax, i in zip(np.atleast_1d(axes), keep):
            ax.scatter(points[i, :, 0].numpy(), points[i, :, 1].numpy(), s=2, alpha=0.5)
            ax.set_title(f"step {labels[i]}", fontsize=9)
            ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _as_trajectory(trajectory) -> torch.Tensor:
    """A list of S (B, ...) tensors or an (S, B, ...) tensor -> (S, B, ...) with ... = (1,), (2,) or (C, H, W)."""
    if isinstance(trajectory, (list, tuple)):
        if not trajectory or not all(isinstance(x, torch.Tensor) for x in trajectory):
            fail("trajectory", "a non-empty list of tensors (B, ...) or one tensor (S, B, ...)", type(trajectory).__name__)
        shapes = {tuple(x.shape) for x in trajectory}
        if len(shapes) > 1:
            fail("trajectory", "snapshots of one shape", f"shapes {sorted(shapes)}")
        trajectory = torch.stack([x.detach() for x in trajectory])
    check_tensor("trajectory", trajectory)
    points = trajectory.dim() == 3 and trajectory.shape[-1] in (1, 2)
    images = trajectory.dim() == 5 and trajectory.shape[2] in (1, 3)
    if not (points or images):
        raise ValueError(f"trajectory: expected (S, B, 1), (S, B, 2) or (S, B, C, H, W) with C in (1, 3), "
                         f"got shape {tuple(trajectory.shape)}")
    check_finite("trajectory", trajectory)
    return trajectory


def _step_labels(steps, s: int) -> list:
    if steps is None:
        return list(range(s))
    steps = [int(x) if isinstance(x, torch.Tensor) else x for x in steps]
    if len(steps) != s:
        fail("steps", f"one label per snapshot ({s})", f"{len(steps)} labels")
    return steps


# --- animations and files --------------------------------------------------------------------

def video_to_uint8(video: torch.Tensor, nrow: int | None = None, scale: int = 1,
                   value_range: tuple[float, float] | None = (-1.0, 1.0), out_of_range: str = "warn") -> np.ndarray:
    """Video (T, C, H, W) or (B, T, C, H, W) -> RGB frames uint8 (T, H', W', 3), clips tiled ``nrow`` per row (default 8).

    scale: integer upscaling (nearest neighbour), so small clips stay crisp in players.
    """
    clips = _as_clips("video", video)
    check_positive_int("scale", scale)
    b, t = clips.shape[:2]
    ncol = min(8 if nrow is None else check_positive_int("nrow", nrow), b)
    unit = to_unit_range(clips, value_range, "video", out_of_range)
    frames = torch.stack([_mosaic(unit[:, i], ncol) for i in range(t)])  # (T, C, H', W')
    frames = frames.expand(-1, 3, -1, -1) if frames.shape[1] == 1 else frames
    frames = frames.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
    return (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


def _gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """Encode RGB frames (T, H, W, 3) as a looping GIF; grey frames are written as one channel (faster)."""
    if (frames[..., :1] == frames[..., 1:]).all():
        frames = frames[..., 0]
    return iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)


def _check_fps(fps) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 120:
        fail("fps", "frames per second in (0, 120]", fps)
    return float(fps)


def animate(video: torch.Tensor, fps: float = 8, nrow: int | None = None, width: int | None = None,
            value_range: tuple[float, float] | None = (-1.0, 1.0), out_of_range: str = "warn"):
    """An in-notebook animation (an inline base64 GIF; no ffmpeg) -> ``IPython.display.HTML``.

    video: (T, C, H, W) or (B, T, C, H, W), clips tiled ``nrow`` per row. ``width``: displayed
    width in screen pixels (default: at least 256, pixels kept sharp).
    """
    from IPython.display import HTML

    frames = video_to_uint8(video, nrow, 1, value_range, out_of_range)
    data = base64.b64encode(_gif_bytes(frames, _check_fps(fps))).decode("ascii")
    width = width or max(256, frames.shape[2])
    return HTML(f'<img src="data:image/gif;base64,{data}" style="width:{int(width)}px; image-rendering:pixelated;"/>')


def save_gif(video: torch.Tensor, path: str | Path, fps: float = 8, nrow: int | None = None, scale: int = 1,
             value_range: tuple[float, float] | None = (-1.0, 1.0), out_of_range: str = "warn") -> Path:
    """Write a looping GIF (Pillow) of ``video`` (T, C, H, W) or (B, T, C, H, W) -> the path.

    GIF stores identical consecutive frames once (Pillow adds up their durations), so a clip that
    stands still reads back with fewer frames.
    """
    frames = video_to_uint8(video, nrow, scale, value_range, out_of_range)
    path = Path(path)
    path.write_bytes(_gif_bytes(frames, _check_fps(fps)))
    return path


def save_mp4(video: torch.Tensor, path: str | Path, fps: float = 8, nrow: int | None = None, scale: int = 1,
             value_range: tuple[float, float] | None = (-1.0, 1.0), out_of_range: str = "warn") -> Path:
    """Write an H.264 MP4 (imageio-ffmpeg) of ``video`` -> the path. Odd sizes get one black row/column."""
    frames = video_to_uint8(video, nrow, scale, value_range, out_of_range)
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))  # yuv420p needs even sizes
    path = Path(path)
    iio.imwrite(path, frames, plugin="FFMPEG", fps=_check_fps(fps), codec="libx264", macro_block_size=1)
    return path


# --- sliders ---------------------------------------------------------------------------------

def _widgets():
    """The ipywidgets module when a notebook kernel can show it, else None."""
    try:
        import ipywidgets
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    return ipywidgets


def _parse_spec(name: str, spec):
    """A slider spec -> (kind, options, first value). (lo, hi[, step[, value]]) or a list of choices."""
    if isinstance(spec, list) and spec:
        return "choice", spec, spec[0]
    if isinstance(spec, tuple) and 2 <= len(spec) <= 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec) and spec[0] < spec[1]:
        is_int = all(isinstance(v, int) for v in spec)
        step = spec[2] if len(spec) > 2 else (1 if is_int else (spec[1] - spec[0]) / 100)
        value = spec[3] if len(spec) > 3 else spec[0]
        return ("int" if is_int else "float"), (spec[0], spec[1], step), value
    fail(name, "a slider spec (low, high), (low, high, step), (low, high, step, value) or a list of choices", spec)


def _static_values(kind: str, options, count: int) -> list:
    if kind == "choice":
        return list(options)[:count]
    low, high, _ = options
    values = np.linspace(low, high, count)
    return sorted({int(round(v)) for v in values}) if kind == "int" else [float(v) for v in values]


def slider_view(render_fn: Callable, figsize: tuple[float, float] = (5, 4), interactive: bool | None = None,
                static_count: int = 4, **specs):
    """Sliders (or drop-downs) that redraw ``render_fn(fig, **values)`` on every change.

    specs: ``name=(low, high)``, ``(low, high, step)``, ``(low, high, step, value)`` (ints give an
    integer slider) or ``name=[choice, ...]`` (a drop-down). ``render_fn`` draws into the Figure
    (or SubFigure) it is given, e.g. ``ax = fig.subplots()``. Returns the ipywidgets box (end the
    cell with it) or, without widgets, a static Figure showing ``static_count`` values of the first
    spec (others at their first value), each panel titled "name = value".
    """
    if not callable(render_fn):
        fail("render_fn", "a function render_fn(fig, **values)", render_fn)
    if not specs:
        fail("specs", "at least one slider, e.g. t=(0, 999)", "none")
    parsed = {name: _parse_spec(name, spec) for name, spec in specs.items()}
    widgets = _widgets() if interactive in (None, True) else None
    if interactive and widgets is None:
        fail("interactive", "ipywidgets installed and a running notebook kernel", "no widgets available")
    if widgets is None:
        return _static_view(render_fn, figsize, static_count, parsed)
    controls = {}
    for name, (kind, options, value) in parsed.items():
        if kind == "choice":
            controls[name] = widgets.Dropdown(options=options, value=value, description=name)
        else:
            slider = widgets.IntSlider if kind == "int" else widgets.FloatSlider
            controls[name] = slider(min=options[0], max=options[1], step=options[2], value=value, description=name)
    out = widgets.Output()

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            fig = plt.figure(figsize=figsize)
            render_fn(fig, **{name: c.value for name, c in controls.items()})
            plt.show()
            plt.close(fig)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(controls.values())), out])


def _static_view(render_fn: Callable, figsize, count: int, parsed: dict) -> Figure:
    check_positive_int("static_count", count)
    first = next(iter(parsed))
    kind, options, _ = parsed[first]
    values = _static_values(kind, options, count)
    fig = plt.figure(figsize=(figsize[0] * len(values), figsize[1]))
    panels = np.atleast_1d(fig.subfigures(1, len(values)))
    defaults = {name: value for name, (_, _, value) in parsed.items()}
    for panel, value in zip(panels, values):
        render_fn(panel, **{**defaults, first: value})
        panel.suptitle(f"{first} = {value:.3g}" if isinstance(value, float) else f"{first} = {value}")
    return fig


def frame_scrubber(video: torch.Tensor, nrow: int = 8, interactive: bool | None = None,
                   value_range: tuple[float, float] | None = (-1.0, 1.0), out_of_range: str = "warn"):
    """A slider over the frames of ``video`` (T, C, H, W) or (B, T, C, H, W), showing every clip at frame t.

    Returns the widget box, or (no widgets) a static figure of 4 frames.
    """
    clips = _as_clips("video", video)
    unit = to_unit_range(clips, value_range, "video", out_of_range)
    ncol = min(nrow, len(unit))

    def render(fig, frame):
        _show(fig.subplots(), _mosaic(unit[:, frame], ncol))

    size = (1.2 * ncol + 0.5, 1.2 * -(-len(unit) // ncol) + 0.8)
    return slider_view(render, figsize=size, interactive=interactive, frame=(0, clips.shape[1] - 1))


def step_scrubber(trajectory: torch.Tensor | Sequence[torch.Tensor], steps: Sequence | None = None, nrow: int = 8,
                  interactive: bool | None = None):
    """A slider over the S snapshots of a trajectory (see :func:`plot_trajectory` for the shapes).

    Images are shown as a grid (clipped to [-1, 1]); 2D points as a scatter plot, 1D points as a
    histogram, with axes fixed over all steps. Returns the widget box or a static figure.
    """
    stack = _as_trajectory(trajectory).detach().float().cpu()
    labels = _step_labels(steps, len(stack))
    if stack.dim() == 5:
        unit = to_unit_range(stack, name="trajectory", out_of_range="clip")
        ncol = min(nrow, unit.shape[1])

        def render(fig, step):
            ax = fig.subplots()
            _show(ax, _mosaic(unit[step], ncol))
            ax.set_title(f"step {labels[step]}", fontsize=9)
    else:
        low, high = stack.min().item(), stack.max().item()

        def render(fig, step):
            ax = fig.subplots()
            if stack.shape[-1] == 1:
                ax.hist(stack[step, :, 0].numpy(), bins=60, range=(low, high), density=True)
            else:
                ax.scatter(stack[step, :, 0].numpy(), stack[step, :, 1].numpy(), s=2, alpha=0.5)
                ax.set_xlim(low, high)
                ax.set_ylim(low, high)
            ax.set_title(f"step {labels[step]}", fontsize=9)

    return slider_view(render, figsize=(4, 3.5), interactive=interactive, step=(0, len(stack) - 1))
