"""How long videos degrade, drawn (lesson 08): quality per frame and tracking against length."""
from __future__ import annotations

import numpy as np

from course_lib.metrics.prediction import DecayCurve

from course_lib._validation import check_positive_int


def plot_decay(curves: dict[str, DecayCurve], train_frames: int, axes=None):
    """Two panels: mean PSNR per frame, and motion pass rate against video length; one line per curve -> Figure."""
    import matplotlib.pyplot as plt

    check_positive_int("train_frames", train_frames)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    ax_psnr, ax_motion = axes
    for name, curve in curves.items():
        ax_psnr.plot(np.arange(len(curve.frame_psnr)), curve.frame_psnr.numpy(), marker=".", label=name)
        ax_motion.plot(curve.lengths, [100 * r for r in curve.motion_pass_rate], marker="o", label=name)
    for ax in axes:
        ax.axvline(train_frames - 0.5 if ax is ax_psnr else train_frames, color="gray", ls=":", lw=1)
    ax_psnr.set(xlabel="frame", ylabel="PSNR vs truth (dB, capped at 60)", title="quality per frame")
    ax_motion.set(xlabel="video length (frames)", ylabel="motion-consistency pass (%)", ylim=(-5, 105),
                  title="object still tracked")
    ax_psnr.legend(fontsize=8)
    return ax_psnr.figure
