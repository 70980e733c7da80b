"""The prediction benchmark: predict the future of bouncing-shapes clips, then roll out videos 4x longer.

    python -m course_lib bench prediction             # the preset's clips (cpu: 8 frames), 4 known, 64 test clips
    python -m course_lib bench prediction --quick     # tiny models trained for 2 steps: seconds, checks the machinery
    python -m course_lib bench prediction --checkpoint runs/video-shapes-unet3d-cpu.pt --train-minutes 30
    python -m course_lib bench prediction --method forcing   # lesson 14's diffusion-forcing model alone

Notebook 08's task, on the same clips: the first K = T // 2 frames of each test clip are given
and the other T − K predicted by the *repeat the last frame* baseline and by three diffusion methods
(:func:`course_lib.workshop.predictor.video_predictors`, the notebook's sampler settings): (a) the
frame-conditional U-Net (:mod:`course_lib.workshop.predictor`), (b) replacement and (c)
reconstruction guidance with the unconditional video-shapes 3D U-Net, and (d) lesson 14's U-Net trained
with diffusion forcing (the known frames at level 0, the rest sampled together,
:func:`~course_lib.diffusion.forcing.forcing_predictor`). Each is scored against the
true future (:func:`~course_lib.metrics.prediction.score_predictions`): PSNR and SSIM of the
predicted frames, the share of clips on which it beats the baseline's PSNR, and the motion pass of
the whole clip. Then the best method rolls out 4T-frame videos from K true frames
(:func:`~course_lib.diffusion.rollout.autoregressive_rollout`, keeping K frames per chunk, and the
notebook's remedies: keeping T − T/4, or dropping each chunk's last frame), scored the same way
over the whole video. The forcing model also rolls out with its rolling window
(:func:`~course_lib.diffusion.forcing.rolling_rollout`, a window of T frames, K of them clean context,
the preset's sampling steps as noise levels) to 8T frames, scored at 4T (the same videos as above)
and at 8T. ``--method NAME`` runs one method alone.

The targets (cpu preset): the best method beats the baseline on >= 80% of test clips; the
rollout keeps the object tracked (motion pass) in >= 60% of clips; the forcing model's rolling window
in >= 60% at 4T and >= 40% at 8T.

Trained models come as in ``bench video`` (:func:`course_lib.workshop.bench.common.trained_model`,
the frame-conditional U-Net as :func:`course_lib.workshop.predictor.frame_conditional_parts`):
``--checkpoint FILE`` / ``--conditional-checkpoint FILE``, else the train_or_load checkpoints in
``--checkpoints``; a missing one reads "not trained" unless ``--train-minutes`` trains it first.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from course_lib._validation import check_choice, check_float_range, check_int_range, check_positive_int, fail
from course_lib.config import PRESETS, get_device, get_preset
from course_lib.workshop.bench.common import (
    Record, Stopwatch, Table, TrainedModelsConfig, add_trained_model_arguments, check_checkpoint_file, trained_model,
)
from course_lib.workshop.cli import non_negative_float, positive_int
from course_lib.workshop.predictor import PREDICTOR_NAMES, PREDICTOR_SEED, frame_conditional_parts, known_frames
from course_lib.workshop.recipes import get_recipe

BASELINE = "repeat last frame"
DEFAULT_CLIPS = 64
TEST_SEED, LONG_SEED = 808, 809  # notebook 08's test clips and long clips (plus --seed)
ROLLOUT_FACTOR = 4  # roll out to 4 x the training length
TARGET_BEATS = 0.80  # the best method beats the baseline in PSNR on >= 80% of clips ...
TARGET_ROLLOUT_PASS = 0.60  # ... and a 4T rollout passes motion consistency in >= 60% of clips
TARGET_ROLLING_PASS = {4: 0.60, 8: 0.40}  # the forcing model's rolling window: 4T and 8T rollouts
FORCING_NAME = "(d) diffusion forcing"
METHODS = {"frame-conditional": PREDICTOR_NAMES[0], "replacement": PREDICTOR_NAMES[1],
           "guidance": PREDICTOR_NAMES[2], "forcing": FORCING_NAME}  # --method -> its rows' name
MIN_JUDGED_CLIPS = 32  # fewer clips than this: a share is too rough to judge a target
QUICK = {"num_diffusion_steps": 50, "sample_steps": 2, "train_steps": 2, "clips": 4}
PREDICTION_COLUMNS = ("method", "task", "future PSNR (dB)", "future SSIM", "beats baseline", "motion pass", "seconds",
                      "trained")
PREDICTION_FORMATS = {"future PSNR (dB)": ".2f", "future SSIM": ".3f", "beats baseline": ".0%", "motion pass": ".0%",
                      "seconds": ".1f"}


# --- the benchmark ---------------------------------------------------------------------------------

@dataclass
class PredictionBenchConfig(TrainedModelsConfig):
    """What :func:`prediction_benchmark` does.

    clips: test clips for prediction; rollout_clips: long clips for the rollout (None: the
    notebook's max(4, clips // 2)); mitigation: also roll out keeping T − T/4 frames (twice the
    chunks), and keeping K but committing only the first T − K − 1 frames of each chunk.
    checkpoint, conditional_checkpoint: the two models as files (else see :class:`TrainedModelsConfig`).
    context_noise: the frame-conditional model trains with this conditioning augmentation and
    samples with half of it. past_guidance: (a) samples with this guidance weight on the past (1:
    none; see :func:`~course_lib.diffusion.conditioning.conditioned_on`). methods: the keys of
    :data:`METHODS` to run (default all). forcing_checkpoint: the forcing model as a file.
    history_guidance: (d) samples with this guidance weight on its past (1: none; see
    :func:`~course_lib.diffusion.forcing.history_guided`).
    """

    kind: ClassVar[str] = "prediction"
    clips: int = DEFAULT_CLIPS
    rollout_clips: int | None = None
    mitigation: bool = True
    checkpoint: str | None = None
    conditional_checkpoint: str | None = None
    context_noise: int = 0
    past_guidance: float = 1.0
    methods: tuple[str, ...] = tuple(METHODS)
    forcing_checkpoint: str | None = None
    history_guidance: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if self.preset.video_frames < 4:
            fail("preset", "clips of at least 4 frames (2 known, 2 to predict)", f"video_frames = {self.preset.video_frames}")
        check_positive_int("clips", self.clips)
        if self.rollout_clips is not None:
            check_positive_int("rollout_clips", self.rollout_clips)
        check_checkpoint_file("checkpoint", self.checkpoint)
        check_checkpoint_file("conditional_checkpoint", self.conditional_checkpoint)
        check_int_range("context_noise", self.context_noise, 0, self.preset.num_diffusion_steps - 1)
        check_float_range("past_guidance", self.past_guidance, 0.0, 100.0)
        check_checkpoint_file("forcing_checkpoint", self.forcing_checkpoint)
        check_float_range("history_guidance", self.history_guidance, 0.0, 100.0)
        if isinstance(self.methods, str) or not self.methods:
            fail("methods", "a non-empty tuple of method names (" + ", ".join(METHODS) + ")", self.methods)
        for method in self.methods:
            check_choice("methods", method, METHODS)

    @property
    def long_clips(self) -> int:
        return self.rollout_clips or max(4, self.clips // 2)


def sampling_context_noise(context_noise: int) -> int:
    """The step at which a model trained with conditioning augmentation up to ``context_noise`` sees
    its past while sampling: the middle of its training range, a past noised like the pasts it
    learned from, yet clear enough to keep the object."""
    return context_noise // 2


def best_method(scores: dict[str, Any]) -> str | None:
    """The method (not the baseline) that beats the baseline on most clips; ties go to the higher mean PSNR."""
    methods = [name for name in scores if name != BASELINE]
    if not methods:
        return None
    return max(methods, key=lambda name: (scores[name].beats(scores[BASELINE]), float(scores[name].psnr.mean())))


def prediction_verdicts(scores: dict[str, Any], rollouts: dict[str, Any], quick: bool = False,
                        rolling: dict[int, Any] | None = None) -> list[str]:
    """The targets, met (✓), missed (✗) or not judged (–: a quick run, or too few clips).

    scores: {method: PredictionScores} of the prediction task, the baseline included; rollouts:
    {row label: PredictionScores} of the best method's rollouts (judged on the best of them);
    rolling: {factor: PredictionScores} of the forcing model's rolling window at 4T and 8T.
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
             f"(target, cpu preset: ≥ {TARGET_BEATS:.0%}){why}"]
    if rollouts:
        label = max(rollouts, key=lambda name: rollouts[name].motion_pass_rate)
        rate, n = rollouts[label].motion_pass_rate, len(rollouts[label].psnr)
        sign, why = mark(rate >= TARGET_ROLLOUT_PASS, n)
        lines.append(f"{sign} {label} with {best}: the object is still tracked (motion pass) in {rate:.0%} of {n} "
                     f"videos (target: ≥ {TARGET_ROLLOUT_PASS:.0%}){why}")
    for factor, rolled in (rolling or {}).items():
        rate, n = rolled.motion_pass_rate, len(rolled.psnr)
        sign, why = mark(rate >= TARGET_ROLLING_PASS[factor], n)
        lines.append(f"{sign} {FORCING_NAME}, rolling window to {factor}× the training length: motion pass in "
                     f"{rate:.0%} of {n} videos (target: ≥ {TARGET_ROLLING_PASS[factor]:.0%}){why}")
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


def _forcing(trained, config: PredictionBenchConfig, device) -> tuple[Any, Any]:
    """(predictor, rolling(first, total) -> video) of the forcing model, or (None, None) when it is not trained."""
    from course_lib.diffusion.forcing import forcing_predictor, history_guided, rolling_rollout

    model = trained.model
    if model is None:
        return None, None
    if trained.recipe.model_name != "forcing":
        fail("forcing_checkpoint", "a checkpoint of the 'forcing' model (python -m course_lib train --model forcing)",
             f"one of {trained.recipe.model_name!r}")
    recipe, steps, K = trained.recipe, config.preset.sample_steps, known_frames(config.preset)
    if config.history_guidance != 1.0:
        model = history_guided(model, config.history_guidance, recipe.schedule.num_steps,
                               torch.Generator(device).manual_seed(PREDICTOR_SEED))
    inner = forcing_predictor(model, recipe.schedule, steps, objective=recipe.objective, seed=PREDICTOR_SEED)

    def predict(past: torch.Tensor, frames: int) -> torch.Tensor:
        return inner(past.to(device), frames).to(past.device)

    def rolling(first: torch.Tensor, total: int) -> torch.Tensor:
        return rolling_rollout(model, first.to(device), total, config.preset.video_frames, recipe.schedule, steps,
                               context=K, objective=recipe.objective,
                               generator=torch.Generator(device).manual_seed(PREDICTOR_SEED)).cpu()

    return predict, rolling


def prediction_benchmark(config: PredictionBenchConfig, device: torch.device | None = None) -> Table:
    """Predict the future of test clips with every trained method, then roll out 4T frames with the best.

    Writes ``<out>/prediction-<preset>[-quick].md`` and ``.json`` (rewritten after each row).
    """
    from course_lib.data.video import bouncing_shapes
    from course_lib.metrics.prediction import min_moving_speed, repeat_last_frame, run_predictor, score_predictions
    from course_lib.workshop.predictor import video_predictors

    if not isinstance(config, PredictionBenchConfig):
        fail("config", "a PredictionBenchConfig", type(config).__name__)
    device = get_device(None if device is None else str(device))
    recipe = get_recipe("video-shapes", config.preset, seed=config.seed)
    T, S = config.preset.video_frames, config.preset.video_size
    K, long_T, min_speed, batch = known_frames(config.preset), ROLLOUT_FACTOR * T, min_moving_speed(S), recipe.batch_size
    table = Table(f"Prediction benchmark: bouncing shapes, {T - K} future frames from {K}, preset {config.preset.name}",
                  PREDICTION_COLUMNS, formats=PREDICTION_FORMATS)
    record = Record(config, table, device, methods={}, rollouts={})

    def store(where: dict, name: str, scores, seconds: float | None) -> None:
        where[name] = {"psnr": scores.psnr.tolist(), "ssim": scores.ssim.tolist(),
                       "motion_passed": scores.motion_passed.tolist(), "seconds": seconds}

    def find(checkpoint, argument: str, name: str, parts=None):
        return trained_model(recipe, config.checkpoints, device, checkpoint=checkpoint, argument=argument,
                             train_minutes=config.train_minutes, quick_steps=config.train_steps,
                             quick_path=f"{config.out}/{config.name}-{name}.pt", progress=config.progress, parts=parts)

    wanted = {METHODS[method] for method in config.methods}
    names = [name for name in METHODS.values() if name in wanted]  # in the table's order
    predictors, status, rolling, unconditional = {}, {}, None, None
    if wanted & {PREDICTOR_NAMES[0]}:
        conditional = find(config.conditional_checkpoint, "conditional_checkpoint", "framecond",
                           frame_conditional_parts(recipe, config.context_noise))
        predictors.update(video_predictors(conditional.recipe, conditional=conditional.model,
                                           context_noise=sampling_context_noise(config.context_noise),
                                           past_guidance=config.past_guidance))
        status[PREDICTOR_NAMES[0]] = conditional.status
    if wanted & set(PREDICTOR_NAMES[1:]):
        unconditional = find(config.checkpoint, "checkpoint", recipe.model_name)
        predictors.update(video_predictors(unconditional.recipe, unconditional=unconditional.model))
        status.update({name: unconditional.status for name in PREDICTOR_NAMES[1:]})
    if FORCING_NAME in wanted:
        forcing_recipe = get_recipe("video-shapes", config.preset, "forcing", seed=config.seed)
        forcing = trained_model(forcing_recipe, config.checkpoints, device, checkpoint=config.forcing_checkpoint,
                                argument="forcing_checkpoint", train_minutes=config.train_minutes,
                                quick_steps=config.train_steps, quick_path=f"{config.out}/{config.name}-forcing.pt",
                                progress=config.progress)
        predict, rolling = _forcing(forcing, config, device)
        if predict is not None:
            predictors[FORCING_NAME] = predict
        status[FORCING_NAME] = forcing.status
    predictors = {name: predictors[name] for name in names if name in predictors}

    task = f"predict {T - K} of {T} frames from {K}"
    truth = bouncing_shapes(config.clips, frames=T, size=S, seed=TEST_SEED + config.seed).video  # (N, T, 3, S, S)
    with Stopwatch() as watch:
        still = run_predictor(repeat_last_frame, truth, K)
    scores = {BASELINE: score_predictions(still, truth, K, recipe.object_size, min_speed)}
    table.rows.append(_row(BASELINE, task, scores[BASELINE], None, watch.wall, None))
    store(record.data["methods"], BASELINE, scores[BASELINE], watch.wall)
    record.save()
    for name in names:
        if name not in predictors:
            table.rows.append((name, task, None, None, None, None, None, status[name]))
            continue
        with Stopwatch() as watch:
            prediction = run_predictor(predictors[name], truth, K, batch_size=batch)
        scores[name] = score_predictions(prediction, truth, K, recipe.object_size, min_speed)
        table.rows.append(_row(name, task, scores[name], scores[BASELINE], watch.wall, status[name]))
        store(record.data["methods"], name, scores[name], watch.wall)
        print(f"{name}: {config.clips} clips in {watch.wall:.1f} s, beats the baseline on "
              f"{scores[name].beats(scores[BASELINE]):.0%}", file=sys.stderr, flush=True)
        record.save()

    best, rollouts, rolled_far = best_method(scores), {}, {}
    n_long = config.long_clips
    long_truth = bouncing_shapes(n_long, frames=2 * long_T, size=S, seed=LONG_SEED + config.seed).video
    long_truth, longer_truth = long_truth[:, :long_T], long_truth  # 4T and 8T: the first 4T frames are the same
    if best is not None:
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
            store(record.data["rollouts"], label, rollouts[label], watch.wall)
            print(f"{label}: {n_long} videos in {watch.wall:.1f} s, motion pass "
                  f"{rollouts[label].motion_pass_rate:.0%}", file=sys.stderr, flush=True)
            record.save()
    if rolling is not None:
        with Stopwatch() as watch:
            rolled = torch.cat([rolling(longer_truth[i:i + batch, :K], 2 * long_T) for i in range(0, n_long, batch)])
        task = f"rollout {K} → {2 * long_T} frames"
        table.rows.append(_row(BASELINE, task, score_predictions(repeat_last_frame(longer_truth[:, :K], 2 * long_T),
                                                                 longer_truth, K, recipe.object_size, min_speed),
                               None, None, None))
        for factor, frames in ((ROLLOUT_FACTOR, long_T), (2 * ROLLOUT_FACTOR, 2 * long_T)):
            label = f"rollout {K} → {frames} frames, rolling window"
            rolled_far[factor] = score_predictions(rolled[:, :frames], longer_truth[:, :frames], K,
                                                   recipe.object_size, min_speed)
            baseline = score_predictions(repeat_last_frame(longer_truth[:, :K], frames), longer_truth[:, :frames], K,
                                         recipe.object_size, min_speed)
            table.rows.append(_row(FORCING_NAME, label, rolled_far[factor], baseline,
                                   watch.wall if factor != ROLLOUT_FACTOR else None, status[FORCING_NAME]))
            store(record.data["rollouts"], label, rolled_far[factor], watch.wall)
        print(f"rolling window: {n_long} videos of {2 * long_T} frames in {watch.wall:.1f} s, motion pass "
              f"{rolled_far[ROLLOUT_FACTOR].motion_pass_rate:.0%} at {long_T} frames, "
              f"{rolled_far[2 * ROLLOUT_FACTOR].motion_pass_rate:.0%} at {2 * long_T}", file=sys.stderr, flush=True)
        record.save()

    trained_from = (f"trained here for {config.train_steps} steps each (quick run)" if config.train_steps else
                    f"--checkpoint / --conditional-checkpoint, else train_or_load checkpoints in {config.checkpoints}/ "
                    "(--train-minutes M trains missing ones)")
    table.notes = [
        record.machine_note(),
        f"clips: bouncing shapes, {T} frames of {S}×{S} RGB; the first {K} given, {T - K} predicted; {config.clips} "
        f"test clips (seed {TEST_SEED + config.seed}), the same for every method",
        f"scores against the true future: PSNR and SSIM of the predicted frames (mean over clips); beats baseline = "
        f"share of clips whose PSNR is above '{BASELINE}' on the same clip; motion pass = the whole clip shows one "
        f"object at constant velocity between bounces, moving ≥ {min_speed:.2g} px/frame",
        f"sampling as notebook 08 (metrics.prediction.video_predictors): DDIM {config.preset.sample_steps} "
        f"steps, noise seeded with 1 for every batch of {batch}; (a) the frame-conditional U-Net, (b) replacement "
        f"and (c) reconstruction guidance with the unconditional "
        f"{(unconditional.recipe if unconditional else recipe).model_name}, (d) the diffusion-forcing U-Net of "
        "lesson 14 with the known frames at level 0; seconds: wall time for all clips" + (f"; (a) trained with conditioning augmentation (its past at a random forward step ≤ "
                           f"{config.context_noise}) and shown its past at step "
                           f"{sampling_context_noise(config.context_noise)}" if config.context_noise else "")
        + (f"; (a) guided by its past with weight w = {config.past_guidance:g}" if config.past_guidance != 1 else ""),
        f"rollout: {n_long} videos of {long_T} frames (seed {LONG_SEED + config.seed}) from their first {K} frames, "
        f"by the best method ({best or 'none trained'}: most clips beating the baseline), chunks of {T} frames keeping "
        f"the last `keep`; PSNR/SSIM over frames {K}–{long_T - 1}, motion pass over the whole video",
        f"trained models: {trained_from}",
    ]
    if rolling is not None:
        table.notes.append(f"rolling window ({FORCING_NAME}): one rollout of {2 * long_T} frames per video, a window "
                           f"of {T} frames with {K} clean ones before the frames being denoised, "
                           f"{config.preset.sample_steps} noise levels per frame; scored on its first {long_T} frames "
                           f"and on all {2 * long_T}; seconds: the whole rollout"
                           + (f"; (d) guided by its past with weight w = {config.history_guidance:g}"
                              if config.history_guidance != 1 else ""))
    table.verdicts = prediction_verdicts(scores, rollouts, quick=config.quick, rolling=rolled_far)
    return record.finish(best=best)


# --- the subcommand ----------------------------------------------------------------------------

def add_prediction_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="clip size and the models' recipes (default: $COURSE_PRESET, else gpu with CUDA, cpu without)")
    parser.add_argument("--clips", type=positive_int, default=None, help=f"test clips (default {DEFAULT_CLIPS})")
    parser.add_argument("--rollout-clips", type=positive_int, default=None,
                        help="long videos rolled out (default: max(4, clips / 2), as notebook 08)")
    parser.add_argument("--no-mitigation", action="store_true",
                        help="skip the remedies: the rollouts that keep T - T/4 frames per chunk (twice the chunks) "
                             "and that drop each chunk's last frame")
    add_trained_model_arguments(parser)
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
    parser.add_argument("--forcing-checkpoint", default=None,
                        help="lesson 14's forcing model (a file of python -m course_lib train --model forcing)")
    parser.add_argument("--history-guidance", type=non_negative_float, default=1.0,
                        help="guidance weight w on the past for the forcing model (history guidance): the past "
                             "masked as pure noise for out_u (default 1: none; w > 1 costs two network calls)")
    parser.add_argument("--method", choices=tuple(METHODS), default=None,
                        help="run this method alone (default: all: " + ", ".join(METHODS) + ")")
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
                                   forcing_checkpoint=args.forcing_checkpoint, history_guidance=args.history_guidance,
                                   methods=tuple(METHODS) if args.method is None else (args.method,),
                                   seed=args.seed, out=args.out,
                                   progress=not args.quiet, quick=args.quick, **settings)
    return prediction_benchmark(config, device=args.device_obj)
