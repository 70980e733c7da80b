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

HINTS = {
    "9.1": ("strength says how far along the code timesteps 0 … T − 1 to start (0: no change, 1: pure noise); then "
            "noise the input to that step in one jump.",
            "t_start = round(strength · (T − 1)), a whole number; x_t = √ᾱ[t_start] · x + √(1 − ᾱ[t_start]) · noise."),
    "9.2": ("the forward chain from step t_next up to step t keeps the fraction ᾱ_t / ᾱ_{t_next} of the signal "
            "variance and fills the rest with fresh noise.",
            "scale x_next by √(ᾱ_t / ᾱ_{t_next}) and add √(1 − ᾱ_t / ᾱ_{t_next}) · noise."),
    "9.3": ("each damaged frame is a blend of the nearest intact frame before it and the nearest after it, weighted by "
            "closeness; with intact frames on one side only, copy the nearest.",
            "for damaged j between intact a < j < b: ((b − j) · x_a + (j − a) · x_b) / (b − a)."),
}
VARIANCES = "ᾱ where √ᾱ belongs: the scales are square roots of the variances"


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


def _sdedit_truncated(x, strength, schedule, noise):
    t = int(strength * (schedule.num_steps - 1))
    return t, q_sample(x, t, schedule, noise=noise)


def _sdedit_with_variances(x, strength, schedule, noise):
    t = sdedit_start(strength, schedule.num_steps)
    return t, schedule.alpha_bars[t] * x + (1 - schedule.alpha_bars[t]) * noise


def check_sdedit_start_point(learner_fn) -> bool:
    g = torch.Generator().manual_seed(91)
    cases = []
    for steps, strength in [(1000, 0.35), (50, 0.75), (1000, 1.0), (100, 0.5), (50, 0.0)]:
        schedule = make_schedule("linear", steps)
        x = torch.rand(2, 3, 1, 4, 4, generator=g) * 2 - 1
        cases.append(((x, strength, schedule, torch.randn(x.shape, generator=g)), {}))
    mistakes = {"truncated: int() rounds down, round() to the nearest step": _sdedit_truncated,
                VARIANCES: _sdedit_with_variances}
    return compare("9.1", learner_fn, reference_sdedit_start_point, cases, "sdedit_start_point", variants=mistakes)


def check_renoise(learner_fn) -> bool:
    g = torch.Generator().manual_seed(92)
    schedule = make_schedule("linear", 100)
    cases = []
    for t_next, t in [(40, 50), (0, 10), (89, 99), (5, 6)]:
        x = torch.randn(2, 3, 1, 4, 4, generator=g)
        cases.append(((x, t_next, t, schedule, torch.randn(x.shape, generator=g)), {}))
    def with_ratio(x_next, t_next, t, schedule, noise, from_clean=False, roots=True):
        ratio = schedule.alpha_bars[t] / (1 if from_clean else schedule.alpha_bars[t_next])
        return (ratio.sqrt() * x_next + (1 - ratio).sqrt() * noise) if roots else (ratio * x_next + (1 - ratio) * noise)

    mistakes = {"ᾱ_t alone jumps from clean data: from x_{t_next} the signal kept is ᾱ_t / ᾱ_{t_next}":
                lambda *a: with_ratio(*a, from_clean=True),
                VARIANCES: lambda *a: with_ratio(*a, roots=False)}
    return compare("9.2", learner_fn, reference_renoise, cases, "renoise", variants=mistakes)


def check_interpolate_frames(learner_fn) -> bool:
    clips = bouncing_shapes(2, frames=8, size=16, seed=93).video
    cases = [((clips, [3]), {}), ((clips, [2, 3, 4]), {}), ((clips, [0, 5]), {}), ((clips, [6, 7]), {}),
             ((clips[:1, :3], [1]), {})]
    mistakes = {"copied the nearest intact frame: blend the two neighbours": lambda video, damaged: _fill(video, damaged, "copy"),
                "the plain mean of the neighbours: weight each by its closeness":
                    lambda video, damaged: _fill(video, damaged, "mean")}
    return compare("9.3", learner_fn, reference_interpolate_frames, cases, "interpolate_frames", variants=mistakes)


def _fill(video: torch.Tensor, damaged: list[int], how: str) -> torch.Tensor:
    """Damaged frames filled with one mistake: a copy of the previous intact frame, or the plain mean of both neighbours."""
    out = video.clone()
    intact = [j for j in range(video.shape[1]) if j not in damaged]
    for j in damaged:
        before, after = [a for a in intact if a < j], [b for b in intact if b > j]
        if before and after and how == "mean":
            out[:, j] = (video[:, before[-1]] + video[:, after[0]]) / 2
        else:
            out[:, j] = video[:, before[-1]] if before else video[:, after[0]]
    return out
