"""Particles flowing from noise to data: an animation of a 1D or 2D sampling trajectory (notebooks 02-03).

``particle_animation`` turns the snapshots a sampler yields (``ddpm_steps``/``ddim_steps``) into an
inline JavaScript animation (matplotlib ``to_jshtml``: no ffmpeg needed). For a static picture of
the same trajectory use :func:`course_lib.views.figures.plot_trajectory`; for a slider,
:func:`course_lib.views.figures.step_scrubber`.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib import animation

from course_lib._validation import check_finite, check_positive_int, check_tensor, fail


def trajectory_from_steps(steps, keep: int = 40) -> tuple[torch.Tensor, list[int]]:
    """Collect ``keep`` evenly spaced snapshots from a sampler's step iterator.

    steps: an iterable of SamplerStep (from ``ddpm_steps``/``ddim_steps``) -> (trajectory (S, B, ...),
    labels: the code timestep t of each snapshot, the last one the final sample).
    """
    check_positive_int("keep", keep)
    xs, ts = [], []
    for step in steps:
        xs.append(step.x)
        ts.append(step.t)
    if not xs:
        fail("steps", "a non-empty iterator of sampler steps", "nothing")
    count = min(keep, len(xs))
    chosen = sorted({round(i * (len(xs) - 1) / max(count - 1, 1)) for i in range(count)})
    return torch.stack([xs[i] for i in chosen]).cpu(), [ts[i] for i in chosen]


def particle_animation(trajectory: torch.Tensor, steps: Sequence | None = None, data: torch.Tensor | None = None,
                       fps: float = 10, bins: int = 60, title: str = ""):
    """trajectory (S, B, D), D = 1 or 2 -> ``IPython.display.HTML`` animation, one frame per snapshot.

    2D: a scatter of the particles (``data`` (N, 2), if given, drawn faintly behind). 1D: a
    histogram of the particles (``data`` (N, 1) as a faint histogram behind). ``steps`` labels the
    frames (e.g. the timestep t of each snapshot). Axes stay fixed over the frames.
    """
    from IPython.display import HTML

    check_tensor("trajectory", trajectory)
    if trajectory.dim() != 3 or trajectory.shape[-1] not in (1, 2) or len(trajectory) == 0:
        fail("trajectory", "snapshots of points, shape (S, B, 1) or (S, B, 2)", f"shape {tuple(trajectory.shape)}")
    check_finite("trajectory", trajectory)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 60:
        fail("fps", "frames per second in (0, 60]", fps)
    labels = list(range(len(trajectory))) if steps is None else list(steps)
    if len(labels) != len(trajectory):
        fail("steps", f"one label per snapshot ({len(trajectory)})", f"{len(labels)} labels")
    if data is not None:
        check_tensor("data", data)
        if data.dim() != 2 or data.shape[1] != trajectory.shape[-1]:
            fail("data", f"points (N, {trajectory.shape[-1]}) like the trajectory", f"shape {tuple(data.shape)}")
    points = trajectory.detach().float().cpu()
    reference = None if data is None else data.detach().float().cpu()
    lim = max(3.0, float(points[-1].abs().max()) * 1.1)

    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=72)
    plt.close(fig)  # shown through the HTML, not as a static figure
    ax.set_xlim(-lim, lim)
    if points.shape[-1] == 2:
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        if reference is not None:
            ax.scatter(reference[:, 0], reference[:, 1], s=1, c="lightgray")
        dots = ax.scatter(points[0, :, 0], points[0, :, 1], s=3, c="C0")

        def draw(i):
            dots.set_offsets(points[i].numpy())
            ax.set_title(f"{title} t = {labels[i]}".strip(), fontsize=10)
            return (dots,)
    else:
        edges = torch.linspace(-lim, lim, bins + 1)
        if reference is not None:
            ax.hist(reference[:, 0].numpy(), bins=edges.numpy(), density=True, color="lightgray")
        heights = [torch.histc(p[:, 0], bins, -lim, lim) / (len(p) * (2 * lim / bins)) for p in points]
        ax.set_ylim(0, max(float(h.max()) for h in heights) * 1.1)
        bars = ax.bar(edges[:-1].numpy(), heights[0].numpy(), width=2 * lim / bins, align="edge", color="C0", alpha=0.7)

        def draw(i):
            for bar, h in zip(bars, heights[i].tolist()):
                bar.set_height(h)
            ax.set_title(f"{title} t = {labels[i]}".strip(), fontsize=10)
            return tuple(bars)

    movie = animation.FuncAnimation(fig, draw, frames=len(points), interval=1000 / fps, blit=False)
    return HTML(movie.to_jshtml(default_mode="once"))
