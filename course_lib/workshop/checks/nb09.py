"""Checks for notebook 09 (editing). References come from course_lib.diffusion.editing, course_lib.diffusion.forward and
course_lib.metrics.prediction; all cases pass explicit noise, so answers are compared exactly."""
from __future__ import annotations

import torch

from course_lib.workshop.checks import compare
from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.editing import sdedit_start
from course_lib.metrics.prediction import interpolate_frames
from course_lib.diffusion.schedules import make_schedule


def reference_sdedit_start_point(x, strength, schedule, noise):
    """(t_start, x_t): t_start = round(strength · (T − 1)) (course_lib.diffusion.editing.sdedit_start), x_t ~ q(x_t | x)."""
    t_start = sdedit_start(strength, schedule.num_steps)
    return t_start, q_sample(x, t_start, schedule, noise=noise)


def reference_renoise(x_next, t_next, t, schedule, noise):
    """RePaint's jump back up (Lugmayr et al. 2022): x_t ~ q(x_t | x_{t_next}),
    N(√(ᾱ_t/ᾱ_{t_next}) x_{t_next}, (1 − ᾱ_t/ᾱ_{t_next}) I)."""
    ratio = schedule.alpha_bars[t].double() / schedule.alpha_bars[t_next].double()
    return ratio.sqrt().float() * x_next + (1 - ratio).sqrt().float() * noise


def reference_interpolate_frames(video, damaged):
    """Linear blend of the nearest intact frames, via course_lib.metrics.prediction.interpolate_frames."""
    return interpolate_frames(video, damaged)


def check_sdedit_start_point(learner_fn) -> bool:
    g = torch.Generator().manual_seed(91)
    cases = []
    for steps, strength in [(1000, 0.35), (50, 0.75), (1000, 1.0), (100, 0.5), (50, 0.0)]:
        schedule = make_schedule("linear", steps)
        x = torch.rand(2, 3, 1, 4, 4, generator=g) * 2 - 1
        cases.append(((x, strength, schedule, torch.randn(x.shape, generator=g)), {}))
    return compare("9.1", learner_fn, reference_sdedit_start_point, cases, "sdedit_start_point",
                   hint="t_start = round(strength * (T - 1)) (code timesteps run 0 … T-1), then "
                        "x_t = sqrt(abar[t_start]) * x + sqrt(1 - abar[t_start]) * noise.")


def check_renoise(learner_fn) -> bool:
    g = torch.Generator().manual_seed(92)
    schedule = make_schedule("linear", 100)
    cases = []
    for t_next, t in [(40, 50), (0, 10), (89, 99), (5, 6)]:
        x = torch.randn(2, 3, 1, 4, 4, generator=g)
        cases.append(((x, t_next, t, schedule, torch.randn(x.shape, generator=g)), {}))
    return compare("9.2", learner_fn, reference_renoise, cases, "renoise",
                   hint="the forward chain from step t_next to step t keeps abar_t / abar_t_next of the signal "
                        "variance: scale x by its square root and add sqrt(1 - abar_t / abar_t_next) * noise.")


def check_interpolate_frames(learner_fn) -> bool:
    clips = bouncing_shapes(2, frames=8, size=16, seed=93).video
    cases = [((clips, [3]), {}), ((clips, [2, 3, 4]), {}), ((clips, [0, 5]), {}), ((clips, [6, 7]), {}),
             ((clips[:1, :3], [1]), {})]
    return compare("9.3", learner_fn, reference_interpolate_frames, cases, "interpolate_frames",
                   hint="for each damaged frame j find the nearest intact frames a < j < b and blend "
                        "((b - j) x_a + (j - a) x_b) / (b - a); with intact frames on one side only, copy the nearest.")
