"""The prediction benchmark: predict the future of bouncing-shapes clips, then roll out videos 4x longer.

    python -m course_lib.workshop.bench.image prediction             # the preset's clips (cpu: 8 frames), 4 known, 64 test clips
    python -m course_lib.workshop.bench.image prediction --quick     # tiny models trained for 2 steps: seconds, checks the machinery
    python -m course_lib.workshop.bench.image prediction --checkpoint runs/video-shapes-unet3d-cpu.pt --train-minutes 30

Notebook 08 measured, on the same clips: the first K = T // 2 frames of each test clip are given
and the other T − K predicted by the *repeat the last frame* baseline and by three diffusion methods
(:func:`course_lib.workshop.predictor.video_predictors`, the notebook's sampler settings): (a) the
frame-conditional U-Net (:mod:`course_lib.workshop.predictor`), (b) replacement and (c)
reconstruction guidance with the unconditional video-shapes 3D U-Net. Each is scored against the
true future (:func:`~course_lib.metrics.prediction.score_predictions`): PSNR and SSIM of the
predicted frames, the share of clips on which it beats the baseline's PSNR, and the motion pass of
the whole clip. Then the best method rolls out 4T-frame videos from K true frames
(:func:`~course_lib.diffusion.rollout.autoregressive_rollout`, keeping K frames per chunk, and the
notebook's remedies: keeping T − T/4, or dropping each chunk's last frame), scored the same way
over the whole video.

Issue 7's targets (cpu preset): the best method beats the baseline on >= 80% of test clips; the
rollout keeps the object tracked (motion pass) in >= 60% of clips.

Trained models come as in ``bench video``: ``--checkpoint FILE`` / ``--conditional-checkpoint
FILE``, else the train_or_load checkpoints in ``--checkpoints``; a missing one reads "not trained"
unless ``--train-minutes`` trains it first.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from course_lib._validation import check_float_range, check_int_range, check_positive_int, fail
from course_lib.workshop.bench.image import DEFAULT_OUT, Stopwatch, Table, describe_machine, load_average
from course_lib.workshop.bench.sampling import Trained, check_checkpoint_file, trained_model, trained_status
from course_lib.config import Preset, get_device, get_preset
from course_lib.workshop.predictor import frame_conditional_parts, known_frames, predictor_steps

BASELINE = "repeat last frame"
DEFAULT_CLIPS = 64
TEST_SEED, LONG_SEED = 808, 809  # notebook 08's test clips and long clips (plus --seed)
ROLLOUT_FACTOR = 4  # roll out to 4 x the training length
TARGET_BEATS = 0.80  # issue 7: the best method beats the baseline in PSNR on >= 80% of clips ...
TARGET_ROLLOUT_PASS = 0.60  # ... and a 4T rollout passes motion consistency in >= 60% of clips
MIN_JUDGED_CLIPS = 32  # fewer clips than this: a share is too rough to judge a target
TRAIN_CHUNK_STEPS = 10  # frame-conditional training looks at its wall-clock budget this often
QUICK = {"num_diffusion_steps": 50, "sample_steps": 2, "train_steps": 2, "clips": 4}
PREDICTION_COLUMNS = ("method", "task", "future PSNR (dB)", "future SSIM", "beats baseline", "motion pass", "seconds",
                      "trained")
PREDICTION_FORMATS = {"future PSNR (dB)": ".2f", "future SSIM": ".3f", "beats baseline": ".0%", "motion pass": ".0%",
                      "seconds": ".1f"}


# --- the frame-conditional model: load, or train within a budget ---------------------------------------

def load_frame_conditional(recipe, path: str | os.PathLike, device=None, context_noise: int = 0):
    """The Trainer stored at ``path`` by :func:`~course_lib.workshop.predictor.train_or_load_frame_conditional`
    (or :func:`train_frame_conditional`) for ``recipe``; a file of another model is an error naming it.
    context_noise: the conditioning augmentation it trains with if trained further."""
    from course_lib.training import Trainer

    model, objective = frame_conditional_parts(recipe, context_noise)
    return Trainer.load(path, model, objective, recipe.make_batch, device, progress=False)


def train_frame_conditional(recipe, path: str | os.PathLike, steps: int | None = None, minutes: float | None = None,
                            resume: bool = True, device=None, context_noise: int = 0):
    """Train the frame-conditional U-Net of ``recipe`` into ``path`` up to ``steps`` (default :func:`predictor_steps`),
    stopping once ``minutes`` of wall-clock time are spent; returns the Trainer.

    Same model, objective, data and seeds as ``train_or_load_frame_conditional`` (which continues
    the file exactly), but with a time budget, looked at after every TRAIN_CHUNK_STEPS steps.
    """
    from course_lib.training import Trainer

    steps = predictor_steps(recipe, steps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if resume and path.exists():
        trainer = load_frame_conditional(recipe, path, device, context_noise)
    else:
        model, objective = frame_conditional_parts(recipe, context_noise)
        config = recipe.train_config(steps, checkpoint_path=os.fspath(path), progress=False)
        trainer = Trainer(model, objective, recipe.make_batch, config, device)
    start = time.perf_counter()
    while trainer.step < steps:  # the first chunk always runs, then the budget is looked at
        trainer.fit(steps=min(TRAIN_CHUNK_STEPS, steps - trainer.step))
        if minutes is not None and time.perf_counter() - start >= 60 * minutes:
            break
    trainer.save(path)
    return trainer


def trained_frame_conditional(recipe, checkpoints: str | os.PathLike = "checkpoints", device=None, *,
                              checkpoint: str | os.PathLike | None = None, train_minutes: float | None = None,
                              quick_steps: int | None = None, quick_path: str | os.PathLike | None = None,
                              context_noise: int = 0) -> Trained:
    """The frame-conditional model of ``recipe``, found like :func:`course_lib.workshop.bench.sampling.trained_model`:
    ``checkpoint`` (a file), else ``quick_steps`` trained into ``quick_path``, else the file of
    ``train_or_load_frame_conditional(recipe, context_noise=context_noise)`` in ``checkpoints``
    (trained for ``train_minutes`` first if missing or unfinished), else "not trained"."""
    from course_lib.workshop.predictor import checkpoint_path
    from course_lib.training import read_checkpoint

    steps = predictor_steps(recipe)
    if checkpoint is not None:
        try:
            trainer = load_frame_conditional(recipe, check_checkpoint_file("conditional_checkpoint", checkpoint), device)
        except ValueError as error:  # another model, or an unreadable file: say which option named it
            message = str(error)
            raise ValueError(message if message.startswith("conditional_checkpoint:")
                             else f"conditional_checkpoint: {message}") from error
        return Trained(recipe, trainer, trained_status(trainer, steps))
    if quick_steps is not None:
        trainer = train_frame_conditional(recipe, quick_path, steps=quick_steps, resume=False, device=device,
                                          context_noise=context_noise)
        return Trained(recipe, trainer, f"{trainer.step} steps (quick)")
    path = checkpoint_path(recipe, steps, checkpoints, context_noise)
    finished = path.exists() and int(read_checkpoint(path)["step"]) >= steps
    if train_minutes is not None and not finished:
        trainer = train_frame_conditional(recipe, path, steps, minutes=train_minutes, device=device,
                                          context_noise=context_noise)
        print(f"frame-conditional U-Net: trained to step {trainer.step} of {steps}", file=sys.stderr, flush=True)
    if not path.exists():
        return Trained(recipe, None, "not trained")
    trainer = load_frame_conditional(recipe, path, device)
    return Trained(recipe, trainer, trained_status(trainer, steps))


# --- the benchmark ---------------------------------------------------------------------------------

@dataclass
class PredictionBenchConfig:
    """What :func:`prediction_benchmark` does.

    clips: test clips for prediction; rollout_clips: long clips for the rollout (None: the
    notebook's max(4, clips // 2)); mitigation: also roll out keeping T − T/4 frames (twice the
    chunks), and keeping K but committing only the first T − K − 1 frames of each chunk.
    checkpoints, train_minutes, checkpoint, conditional_checkpoint: where the two models come from
    (quick runs train ``train_steps`` steps into ``out`` instead). context_noise: the
    frame-conditional model trains with this conditioning augmentation and samples with half of it.
    past_guidance: (a) samples with this guidance weight on the past (1: none; see
    :func:`~course_lib.diffusion.conditioning.conditioned_on`).
    """

    preset: Preset
    clips: int = DEFAULT_CLIPS
    rollout_clips: int | None = None
    mitigation: bool = True
    checkpoints: str = "checkpoints"
    train_minutes: float | None = None
    train_steps: int | None = None
    checkpoint: str | None = None
    conditional_checkpoint: str | None = None
    context_noise: int = 0
    past_guidance: float = 1.0
    seed: int = 0
    out: str = DEFAULT_OUT
    progress: bool = True
    quick: bool = False

    def __post_init__(self):
        if not isinstance(self.preset, Preset):
            fail("preset", "a course_lib.config.Preset", type(self.preset).__name__)
        if self.preset.video_frames < 4:
            fail("preset", "clips of at least 4 frames (2 known, 2 to predict)", f"video_frames = {self.preset.video_frames}")
        check_positive_int("clips", self.clips)
        if self.rollout_clips is not None:
            check_positive_int("rollout_clips", self.rollout_clips)
        if self.train_minutes is not None:
            check_float_range("train_minutes", self.train_minutes, 1e-6, 1e6)
        if self.train_steps is not None:
            check_positive_int("train_steps", self.train_steps)
        check_checkpoint_file("checkpoint", self.checkpoint)
        check_checkpoint_file("conditional_checkpoint", self.conditional_checkpoint)
        check_int_range("context_noise", self.context_noise, 0, self.preset.num_diffusion_steps - 1)
        check_float_range("past_guidance", self.past_guidance, 0.0, 100.0)

    @property
    def name(self) -> str:
        return f"prediction-{self.preset.name}" + ("-quick" if self.quick else "")

    @property
    def long_clips(self) -> int:
        return self.rollout_clips or max(4, self.clips // 2)


def sampling_context_noise(context_noise: int) -> int:
    """The step at which a model trained with conditioning augmentation up to ``context_noise`` sees
    its past while sampling: the middle of its training range (16 rollouts of the cpu model, 150:
    the object kept its brightness at 75, and more videos passed at 24 and 32 frames than at 0)."""
    return context_noise // 2


def best_method(scores: dict[str, Any]) -> str | None:
    """The method (not the baseline) that beats the baseline on most clips; ties go to the higher mean PSNR."""
    methods = [name for name in scores if name != BASELINE]
    if not methods:
        return None
    return max(methods, key=lambda name: (scores[name].beats(scores[BASELINE]), float(scores[name].psnr.mean())))


def prediction_verdicts(scores: dict[str, Any], rollouts: dict[str, Any], quick: bool = False) -> list[str]:
    """Issue 7's two targets, met (✓), missed (✗) or not judged (–: a quick run, or too few clips).

    scores: {method: PredictionScores} of the prediction task, the baseline included; rollouts:
    {row label: PredictionScores} of the best method's rollouts (judged on the best of them).
    """
    def mark(ok: bool, n: int) -> tuple[str, str]:
        if quick:
            return "–", " — not judged: a quick run (tiny models, machinery only)"
        if n < MIN_JUDGED_CLIPS:
            return "–", f" — not judged: {n} clips (judged over ≥ {MIN_JUDGED_CLIPS})"
        return ("✓" if ok else "✗"), ""

    best = best_method(scores)
    if best is None:
        return ["– no method trained: the prediction and rollout targets are not judged "
                "(--train-minutes M trains the missing models)"]
    share, n = scores[best].beats(scores[BASELINE]), len(scores[best].psnr)
    sign, why = mark(share >= TARGET_BEATS, n)
    lines = [f"{sign} best method {best} beats '{BASELINE}' in future PSNR on {share:.0%} of {n} clips "
             f"(issue 7, cpu preset: ≥ {TARGET_BEATS:.0%}){why}"]
    if rollouts:
        label = max(rollouts, key=lambda name: rollouts[name].motion_pass_rate)
        rate, n = rollouts[label].motion_pass_rate, len(rollouts[label].psnr)
        sign, why = mark(rate >= TARGET_ROLLOUT_PASS, n)
        lines.append(f"{sign} {label} with {best}: the object is still tracked (motion pass) in {rate:.0%} of {n} "
                     f"videos (issue 7: ≥ {TARGET_ROLLOUT_PASS:.0%}){why}")
    return lines


def _row(method: str, task: str, scores, baseline, seconds: float | None, status: str | None) -> tuple:
    beats = None if baseline is None else scores.beats(baseline)
    return (method, task, float(scores.psnr.mean()), float(scores.ssim.mean()), beats, scores.motion_pass_rate,
            seconds, status)


def _rollout(predict, first: torch.Tensor, total: int, keep: int, frames: int, batch: int,
             commit: int | None = None) -> torch.Tensor:
    """autoregressive_rollout of the clips in ``first`` (B, K, C, H, W), ``batch`` clips at a time."""
    from course_lib.diffusion.rollout import autoregressive_rollout

    return torch.cat([autoregressive_rollout(predict, first[i:i + batch], total_frames=total, keep=keep, frames=frames,
                                             commit=commit) for i in range(0, len(first), batch)])


def prediction_benchmark(config: PredictionBenchConfig, device: torch.device | None = None) -> Table:
    """Predict the future of test clips with every trained method, then roll out 4T frames with the best.

    Writes ``<out>/prediction-<preset>[-quick].md`` and ``.json`` (rewritten after each row).
    """
    from course_lib.data.video import bouncing_shapes
    from course_lib.metrics.prediction import min_moving_speed, repeat_last_frame, run_predictor, score_predictions
    from course_lib.workshop.predictor import PREDICTOR_NAMES, video_predictors
    from course_lib.workshop.recipes import get_recipe

    if not isinstance(config, PredictionBenchConfig):
        fail("config", "a PredictionBenchConfig", type(config).__name__)
    device = get_device(None if device is None else str(device))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    recipe = get_recipe("video-shapes", config.preset, seed=config.seed)
    T, S = config.preset.video_frames, config.preset.video_size
    K, long_T, min_speed, batch = known_frames(config.preset), ROLLOUT_FACTOR * T, min_moving_speed(S), recipe.batch_size
    table = Table(f"Prediction benchmark: bouncing shapes, {T - K} future frames from {K}, preset {config.preset.name}",
                  PREDICTION_COLUMNS, formats=PREDICTION_FORMATS)
    results: dict[str, Any] = {"config": {k: v for k, v in vars(config).items() if k != "preset"},
                               "preset": config.preset.name, "machine": describe_machine(device),
                               "load_before": load_before, "methods": {}, "rollouts": {}}

    def save() -> None:
        results["rows"] = table.as_dicts()
        (out / f"{config.name}.json").write_text(json.dumps(results, indent=2, default=str))

    def record(where: dict, name: str, scores, seconds: float | None) -> None:
        where[name] = {"psnr": scores.psnr.tolist(), "ssim": scores.ssim.tolist(),
                       "motion_passed": scores.motion_passed.tolist(), "seconds": seconds}

    quick_path = lambda model: out / f"{config.name}-{model}.pt"
    unconditional = trained_model(recipe, config.checkpoints, device, checkpoint=config.checkpoint,
                                  train_minutes=config.train_minutes, quick_steps=config.train_steps,
                                  quick_path=quick_path(recipe.model_name), progress=config.progress)
    conditional = trained_frame_conditional(recipe, config.checkpoints, device,
                                            checkpoint=config.conditional_checkpoint,
                                            train_minutes=config.train_minutes, quick_steps=config.train_steps,
                                            quick_path=quick_path("framecond"), context_noise=config.context_noise)
    predictors = {**video_predictors(conditional.recipe, conditional=conditional.model,
                                     context_noise=sampling_context_noise(config.context_noise),
                                     past_guidance=config.past_guidance),
                  **video_predictors(unconditional.recipe, unconditional=unconditional.model)}
    status = dict(zip(PREDICTOR_NAMES, (conditional.status, unconditional.status, unconditional.status)))

    task = f"predict {T - K} of {T} frames from {K}"
    truth = bouncing_shapes(config.clips, frames=T, size=S, seed=TEST_SEED + config.seed).video  # (N, T, 3, S, S)
    with Stopwatch() as watch:
        still = run_predictor(repeat_last_frame, truth, K)
    scores = {BASELINE: score_predictions(still, truth, K, recipe.object_size, min_speed)}
    table.rows.append(_row(BASELINE, task, scores[BASELINE], None, watch.wall, None))
    record(results["methods"], BASELINE, scores[BASELINE], watch.wall)
    save()
    for name in PREDICTOR_NAMES:
        if name not in predictors:
            table.rows.append((name, task, None, None, None, None, None, status[name]))
            continue
        with Stopwatch() as watch:
            prediction = run_predictor(predictors[name], truth, K, batch_size=batch)
        scores[name] = score_predictions(prediction, truth, K, recipe.object_size, min_speed)
        table.rows.append(_row(name, task, scores[name], scores[BASELINE], watch.wall, status[name]))
        record(results["methods"], name, scores[name], watch.wall)
        print(f"{name}: {config.clips} clips in {watch.wall:.1f} s, beats the baseline on "
              f"{scores[name].beats(scores[BASELINE]):.0%}", file=sys.stderr, flush=True)
        save()

    best, rollouts = best_method(scores), {}
    n_long = config.long_clips
    if best is not None:
        long_truth = bouncing_shapes(n_long, frames=long_T, size=S, seed=LONG_SEED + config.seed).video
        long_task = f"rollout {K} → {long_T} frames"
        long_still = score_predictions(repeat_last_frame(long_truth[:, :K], long_T), long_truth, K,
                                       recipe.object_size, min_speed)
        table.rows.append(_row(BASELINE, long_task, long_still, None, None, None))
        ways = [(K, None)]  # (keep, commit): the plain rollout, then the two remedies of notebook 08
        if config.mitigation:
            ways += [(T - T // 4, None)] if T - T // 4 != K else []
            ways += [(K, T - K - 1)] if T - K > 1 else []
        for keep, commit in ways:
            label = (f"{long_task}, keep {keep}" + (" (more context)" if keep != K else "")
                     + (f", commit {commit} (each chunk's last frame dropped)" if commit else ""))
            with Stopwatch() as watch:
                rolled = _rollout(predictors[best], long_truth[:, :K], long_T, keep, T, batch, commit)
            rollouts[label] = score_predictions(rolled, long_truth, K, recipe.object_size, min_speed)
            table.rows.append(_row(best, label, rollouts[label], long_still, watch.wall, status[best]))
            record(results["rollouts"], label, rollouts[label], watch.wall)
            print(f"{label}: {n_long} videos in {watch.wall:.1f} s, motion pass "
                  f"{rollouts[label].motion_pass_rate:.0%}", file=sys.stderr, flush=True)
            save()

    load_after = load_average()
    load = "" if load_before is None else f"; load average {load_before:.1f} before, {load_after:.1f} after"
    trained_from = (f"trained here for {config.train_steps} steps each (quick run)" if config.train_steps else
                    f"--checkpoint / --conditional-checkpoint, else train_or_load checkpoints in {config.checkpoints}/ "
                    "(--train-minutes M trains missing ones)")
    table.notes = [
        f"machine: {describe_machine(device)}{load}",
        f"clips: bouncing shapes, {T} frames of {S}×{S} RGB; the first {K} given, {T - K} predicted; {config.clips} "
        f"test clips (seed {TEST_SEED + config.seed}), the same for every method",
        f"scores against the true future: PSNR and SSIM of the predicted frames (mean over clips); beats baseline = "
        f"share of clips whose PSNR is above '{BASELINE}' on the same clip; motion pass = the whole clip shows one "
        f"object at constant velocity between bounces, moving ≥ {min_speed:.2g} px/frame",
        f"sampling as notebook 08 (prediction_eval.video_predictors): DDIM {unconditional.recipe.preset.sample_steps} "
        f"steps, noise seeded with 1 for every batch of {batch}; (a) the frame-conditional U-Net, (b) replacement "
        f"and (c) reconstruction guidance with the unconditional {unconditional.recipe.model_name}; seconds: wall time "
        "for all clips" + (f"; (a) trained with conditioning augmentation (its past at a random forward step ≤ "
                           f"{config.context_noise}) and shown its past at step "
                           f"{sampling_context_noise(config.context_noise)}" if config.context_noise else "")
        + (f"; (a) guided by its past with weight w = {config.past_guidance:g}" if config.past_guidance != 1 else ""),
        f"rollout: {n_long} videos of {long_T} frames (seed {LONG_SEED + config.seed}) from their first {K} frames, "
        f"by the best method ({best or 'none trained'}: most clips beating the baseline), chunks of {T} frames keeping "
        f"the last `keep`; PSNR/SSIM over frames {K}–{long_T - 1}, motion pass over the whole video",
        f"trained models: {trained_from}",
    ]
    table.verdicts = prediction_verdicts(scores, rollouts, quick=config.quick)
    results.update(best=best, load_after=load_after, notes=table.notes, verdicts=table.verdicts)
    save()
    (out / f"{config.name}.md").write_text(table.to_markdown() + "\n")
    return table


# --- the command line (registered in course_lib.workshop.bench.image) -------------------------------------------

def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    from course_lib.workshop.cli import non_negative_float, positive_int, positive_minutes
    from course_lib.config import PRESETS

    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="clip size and the models' recipes (default: $COURSE_PRESET, else gpu with CUDA, cpu without)")
    parser.add_argument("--clips", type=positive_int, default=None, help=f"test clips (default {DEFAULT_CLIPS})")
    parser.add_argument("--rollout-clips", type=positive_int, default=None,
                        help="long videos rolled out (default: max(4, clips / 2), as notebook 08)")
    parser.add_argument("--no-mitigation", action="store_true",
                        help="skip the remedies: the rollouts that keep T - T/4 frames per chunk (twice the chunks) "
                             "and that drop each chunk's last frame")
    parser.add_argument("--checkpoints", default="checkpoints",
                        help="folder of train_or_load's checkpoints (default checkpoints)")
    parser.add_argument("--train-minutes", type=positive_minutes, default=None,
                        help="train a missing or unfinished model for this many minutes first (default: 'not trained')")
    parser.add_argument("--checkpoint", default=None,
                        help="the unconditional video-shapes model (a file of python -m course_lib train)")
    parser.add_argument("--conditional-checkpoint", default=None,
                        help="the frame-conditional model (a file of train_or_load_frame_conditional)")
    parser.add_argument("--context-noise", type=int, default=0,
                        help="conditioning augmentation of the frame-conditional model: trained with its past at "
                             "a random forward-process step <= S, sampled at S/2 (default 0: a clean past)")
    parser.add_argument("--past-guidance", type=non_negative_float, default=1.0,
                        help="guidance weight w on the past for the frame-conditional model: out_u + w (out_c - out_u) "
                             "(default 1: none; w > 1 costs two network calls per step)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a run in seconds: T = 50, 2 sampling steps, models trained for 2 steps, {QUICK['clips']} clips")


def run_prediction(args: argparse.Namespace) -> Table:
    preset = get_preset(args.preset)
    settings: dict[str, Any] = dict(clips=args.clips or DEFAULT_CLIPS)
    if args.quick:
        preset = preset.replace(num_diffusion_steps=QUICK["num_diffusion_steps"], sample_steps=QUICK["sample_steps"])
        settings = dict(clips=args.clips or QUICK["clips"], train_steps=QUICK["train_steps"])
    config = PredictionBenchConfig(preset=preset, rollout_clips=args.rollout_clips, mitigation=not args.no_mitigation,
                                   checkpoints=args.checkpoints, train_minutes=args.train_minutes,
                                   checkpoint=args.checkpoint, conditional_checkpoint=args.conditional_checkpoint,
                                   context_noise=args.context_noise, past_guidance=args.past_guidance,
                                   seed=args.seed, out=args.out,
                                   progress=not args.quiet, quick=args.quick, **settings)
    return prediction_benchmark(config, device=args.device_obj)
