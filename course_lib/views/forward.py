"""Pictures of the forward process for notebook 01: how each schedule destroys the signal.

``noising_explorer`` is the interactive slider over t and schedule (ipywidgets, through
``course_lib.views.figures.slider_view``); without widgets it draws the panels for a few fixed t instead.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from course_lib._validation import check_rank, fail
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.schedules import SCHEDULES, make_schedule
from course_lib.views.figures import slider_view


def noised_panels(points: torch.Tensor, image: torch.Tensor, t: int, schedule_name: str,
                  num_steps: int = 1000, seed: int = 0, axes=None):
    """Draw a histogram of q(x_t | x0) for 1D ``points`` (N, 1) and ``image`` (C, H, W) noised to t."""
    check_rank("points", points, 2, "(N, 1)")
    check_rank("image", image, 3, "(C, H, W)")
    schedule = make_schedule(schedule_name, num_steps)
    g = torch.Generator().manual_seed(seed)
    noisy_points = q_sample(points, t, schedule, generator=g)
    noisy_image = q_sample(image[None], t, schedule, generator=g)[0]
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3))
    hist_ax, image_ax = axes
    hist_ax.hist(points[:, 0].numpy(), bins=80, range=(-4, 4), density=True, alpha=0.4, label="data x0")
    hist_ax.hist(noisy_points[:, 0].numpy(), bins=80, range=(-4, 4), density=True, alpha=0.6, label=f"x_t, t={t}")
    grid = torch.linspace(-4, 4, 200)
    hist_ax.plot(grid, torch.exp(-grid**2 / 2) / (2 * torch.pi) ** 0.5, "k--", lw=1, label="N(0, 1)")
    hist_ax.set_title(f"{schedule_name}: ᾱ_t = {schedule.alpha_bars[t]:.3f}")
    hist_ax.legend(fontsize=7)
    shown = ((noisy_image.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).squeeze(-1).numpy()
    image_ax.imshow(shown, cmap="gray", vmin=0, vmax=1)
    image_ax.set_title(f"image at t={t}")
    image_ax.axis("off")
    return axes


def noising_explorer(points: torch.Tensor, image: torch.Tensor, num_steps: int = 1000, interactive: bool | None = None):
    """A slider over t and a drop-down over schedules redrawing :func:`noised_panels`.

    Returns the ipywidgets box (display it as a cell's last expression), or, when widgets are
    unavailable, a static figure of the linear schedule at four values of t (``viz.slider_view``).
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 2:
        fail("num_steps", "an int >= 2", num_steps)
    check_rank("points", points, 2, "(N, 1)")
    check_rank("image", image, 3, "(C, H, W)")

    def render(fig, t, schedule):
        noised_panels(points, image, t, schedule, num_steps, axes=fig.subplots(1, 2))

    return slider_view(render, figsize=(8, 3), interactive=interactive,
                       t=(0, num_steps - 1, 1, num_steps // 4), schedule=list(SCHEDULES))


def snr_plot(num_steps: int = 1000, ax=None):
    """log SNR(t) = log(ᾱ_t / (1 − ᾱ_t)) for every schedule, with the step where SNR = 1 marked."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for name in SCHEDULES:
        s = make_schedule(name, num_steps)
        log_snr = s.snr.log()
        (line,) = ax.plot(log_snr.numpy(), label=name)
        half = int((log_snr < 0).nonzero()[0]) if (log_snr < 0).any() else num_steps - 1
        ax.axvline(half, color=line.get_color(), ls=":", lw=1)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("code timestep t")
    ax.set_ylabel("log SNR = log ᾱ/(1 − ᾱ)")
    ax.legend()
    return ax
