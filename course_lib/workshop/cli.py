"""``python -m course_lib``: train, sample and evaluate the course's models from a terminal.

    python -m course_lib demo                      # train a small video model, write demo_out/samples.gif
    python -m course_lib train --task digits --steps 2000
    python -m course_lib sample --checkpoint demo_out/model.pt --out clips.mp4
    python -m course_lib eval --checkpoint demo_out/model.pt
    python -m course_lib doctor                    # is this machine ready for the course?

Every command is :func:`main` (``main(argv) -> exit code``), so tests run it in-process. Bad
arguments, and output paths that cannot be written (checked before any work), print one clear line
and exit with code 2; an expected failure during the work (a damaged or foreign file, a full disk,
a permission, a NaN loss) prints one line naming the file or argument and what to do, and exits
with code 1; Ctrl-C exits with 130 and SIGTERM with 143. Never a traceback for these.
"""
from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
import tempfile
import textwrap
import sys
import threading
import time
from pathlib import Path

import torch

from course_lib.config import PRESETS, Preset, cpu_has_native_bf16, get_device, get_preset
from course_lib.workshop.recipes import (
    CAPTION_GUIDANCE_SCALE, CAPTION_TASKS, RECIPE_OBJECTIVES, SAMPLERS, TASK_MODELS, TASKS, Recipe, get_recipe,
    is_video_task,
)
from course_lib.training import read_checkpoint
from course_lib._files import CheckpointError, stale_temp_files

PROG = "python -m course_lib"
VIDEO_EXTENSIONS = (".gif", ".mp4")
IMAGE_EXTENSIONS = (".png",)
DEMO_CLIPS = 8
PRECISIONS = ("fp32", "bf16", "fp16")
DEMO_MINUTES = 4.0  # training budget of demo: with start-up, sampling and the GIF it ends within 5 minutes
# On a CPU the demo trains the cpu preset's 3D U-Net at base width 16 (0.6M parameters), not 32: in its
# few minutes the narrower network makes more steps, and more of its clips pass motion consistency.
DEMO_CPU_BASE_CHANNELS = 16
# The demo trains at lr 2e-3, not the recipe's 1e-3: its run is short (at most the recipe's steps), and
# 2e-3 breaks only longer ones.
DEMO_LR = 2e-3
MAX_SEED = 2**63  # seeds are in [0, 2**63): torch's generators take a signed 64-bit int

EPILOG = f"""\
examples:
  {PROG} demo                             # a video model in a few minutes
  {PROG} train --task digits --steps 2000
  {PROG} train --task video-shapes --minutes 30 --checkpoint shapes.pt
  {PROG} train --task video-shapes --checkpoint shapes.pt --resume
  {PROG} sample --checkpoint shapes.pt --n 8 --out clips.gif
  {PROG} eval --checkpoint shapes.pt
  {PROG} export --checkpoint shapes.pt       # EMA weights in float16, an eighth of the size
  {PROG} doctor                             # is this machine ready? (before a workshop)

Sizes come from the preset: smoke (seconds), cpu (a laptop), gpu (a CUDA GPU); the
default is $COURSE_PRESET, else gpu with CUDA, else cpu. "{PROG} COMMAND --help"
shows a command's options.
"""


class UsageError(Exception):
    """A bad argument found after parsing: reported like argparse's errors (exit code 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, containers, schedulers): stops like Ctrl-C, so the checkpoint is saved; exit 143."""


# --- argument types: each names what it expected ------------------------------------------------

def _whole_number(low: int, high: float, expected: str):
    """An argparse type: ``int(text)`` in [low, high), else an error saying ``expected``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value < high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


positive_int = _whole_number(1, float("inf"), "a positive whole number")
seed_int = _whole_number(0, MAX_SEED, "a whole number in [0, 2**63)")
non_negative_int = _whole_number(0, float("inf"), "a whole number >= 0")


def positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of minutes > 0, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of minutes > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


# --- the parser ----------------------------------------------------------------------------------

def _common(parser: argparse.ArgumentParser, seed_help: str) -> None:
    parser.add_argument("--seed", type=seed_int, default=0, help=seed_help + " (default 0)")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None,
                        help="where to compute (default: $COURSE_DEVICE, else CUDA, MPS, CPU)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: torch's choice, or 1 when the machine is already "
                             "busy: threads that wait on each other are then several times slower)")


def _wrap(text: str) -> str:
    return textwrap.fill(text, 90)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Train, sample and evaluate the diffusion models of the video diffusion course.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    presets = tuple(PRESETS)

    demo = commands.add_parser(
        "demo", help="train a small video model for a few minutes, write sample clips and a score",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("Train a 3D U-Net on bouncing shapes within a time budget, sample a few clips with "
                          "DDIM, write OUT/samples.gif and OUT/model.pt, and print how many clips move like "
                          "the data."),
        epilog=f"examples:\n  {PROG} demo\n  {PROG} demo --minutes 10 --out my_demo\n  {PROG} demo --preset smoke")
    demo.add_argument("--preset", choices=presets, default=None, help="sizes (default: $COURSE_PRESET or the hardware's)")
    demo.add_argument("--minutes", type=positive_minutes, default=None,
                      help=f"training budget in minutes of wall-clock time (default {DEMO_MINUTES:g}; the run ends "
                           "within about 5 minutes)")
    demo.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    demo.add_argument("--precision", choices=PRECISIONS, default=None,
                      help="autocast while training (default: bf16 on a CPU that computes it natively, where it is "
                           "1.5-1.8x faster; else the preset's)")
    _common(demo, "seed of the model, the data and the samples")

    train = commands.add_parser(
        "train", help="train any task's model; resumable from its checkpoint",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap(f"Train the model of a task ({', '.join(TASKS)}) and save "
                          "a checkpoint that sample and eval understand. The checkpoint is written every minute "
                          "and on Ctrl-C; --resume continues it."),
        epilog=f"examples:\n  {PROG} train --task toy-moons --preset smoke\n"
               f"  {PROG} train --task video-digits --model conv_lstm --minutes 20 --checkpoint lstm.pt\n"
               f"  {PROG} train --task video-digits --model conv_lstm --checkpoint lstm.pt --resume\n"
               f"  {PROG} train --task video-shapes --model dit --preset cpu  # lesson 15: the autoencoder first\n"
               f"  {PROG} train --task video-captions --model dit --preset cpu  # text-conditioned clips\n"
               f"  torchrun --standalone --nproc_per_node 2 -m course_lib train --task video-shapes  # 2 processes\n\n"
               "Under torchrun the same arguments train data-parallel (DDP): the preset's batch is the global\n"
               "batch, split evenly over the processes, with the same learning rate; rank 0 prints and saves.")
    train.add_argument("--task", default=None, choices=TASKS, metavar="TASK",
                       help="what to learn: " + ", ".join(TASKS) + " (with --resume: taken from the checkpoint)")
    train.add_argument("--model", default=None, help="the network: " + "; ".join(
        f"{task}: {' or '.join(models)}" for task, models in TASK_MODELS.items()) + " (default: the first)")
    train.add_argument("--preset", choices=presets, default=None, help="sizes (default: $COURSE_PRESET or the hardware's)")
    train.add_argument("--steps", type=positive_int, default=None, help="training steps (default: the preset's)")
    train.add_argument("--objective", choices=RECIPE_OBJECTIVES, default=None,
                       help="what the network learns: eps, x0 or v (diffusion) or flow (flow matching; "
                            "sample it with --sampler euler or heun); default: the task's")
    train.add_argument("--minutes", type=positive_minutes, default=None,
                       help="stop after this many minutes of training (continue later with --resume)")
    train.add_argument("--checkpoint", default=None,
                       help="checkpoint file (default: checkpoints/<task>-<model>-<preset>-<key>.pt)")
    resume = train.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue training the existing checkpoint (an error if it does not exist)")
    resume.add_argument("--resume-if-exists", action="store_true",
                        help="continue the checkpoint if it exists, else start a new run there (for scripts that "
                             "are restarted)")
    train.add_argument("--accumulate", type=positive_int, default=1,
                       help="gradient accumulation: split each step's batch into this many micro-batches per "
                            "process (the same batch and maths, 1/N of the activation memory; default 1)")
    train.add_argument("--workers", type=non_negative_int, default=None,
                       help="worker processes that draw the batches (the same data as 0 = in this process; "
                            "default: 0 on CPU, min(4, CPU cores / 2 / processes) on CUDA)")
    train.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="autocast while training: fp32, bf16 or fp16 (fp16 with loss scaling, CUDA only; "
                            "default: the preset's)")
    train.add_argument("--channels-last", action="store_true",
                       help="store 4-D weights and images channels-last (NHWC), which GPU convolutions prefer")
    _common(train, "seed of the model, the data and the noise (with --resume and no --task: the checkpoint's)")
    train.set_defaults(seed=None)  # 0 for a new run; with --resume and no --task, the checkpoint's

    sample = commands.add_parser(
        "sample", help="generate samples from a checkpoint into a .gif/.mp4 (videos) or .png (images, points)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("Load a checkpoint written by train or demo (it knows its task and model) and "
                          "sample from its EMA weights."),
        epilog=f"examples:\n  {PROG} sample --checkpoint demo_out/model.pt --out clips.gif\n"
               f"  {PROG} sample --checkpoint demo_out/model.pt --sampler ddpm --n 4 --out clips.mp4\n"
               f"  {PROG} sample --checkpoint digits.pt --guidance 3 --out digits.png\n"
               f"  {PROG} sample --checkpoint captions.pt --caption \"a red square moves left\" --out red.gif")
    sample.add_argument("--checkpoint", required=True, help="a checkpoint written by train or demo")
    sample.add_argument("--sampler", choices=SAMPLERS, default=None,
                        help="ddim (fast, deterministic; the default) or ddpm (ancestral, all T steps); for a "
                             "flow-matching model euler (the default) or heun")
    sample.add_argument("--steps", type=positive_int, default=None,
                        help="DDIM steps (default: the preset's sample_steps); DDPM always takes all T")
    sample.add_argument("--n", type=positive_int, default=8, help="how many samples (default 8)")
    sample.add_argument("--out", default=None, help="output file: .gif or .mp4 for videos, .png for images and "
                                                    "points (default samples.gif / samples.png)")
    sample.add_argument("--guidance", type=non_negative_float, default=None,
                        help="digits, moving digits and captioned clips only: classifier-free guidance scale w "
                             f"(1 = plain conditional, 0 = unconditional; default: 1, or {CAPTION_GUIDANCE_SCALE:g} "
                             "on the caption for video-captions)")
    sample.add_argument("--caption", action="append", default=None, metavar="TEXT",
                        help="video-captions only: what to draw, e.g. \"a red square moves left\"; repeat it for "
                             "several captions, which the samples take in turn (default: held-out clips' captions)")
    _common(sample, "seed of the starting noise")

    evaluate = commands.add_parser(
        "eval", help="score a checkpoint: video consistency (video), IS/FID/accuracy (digits), MMD (toy)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("Sample from a checkpoint and print its metrics next to the same metrics of real "
                          "data."),
        epilog=f"examples:\n  {PROG} eval --checkpoint demo_out/model.pt\n  {PROG} eval --checkpoint digits.pt --n 500")
    evaluate.add_argument("--checkpoint", required=True, help="a checkpoint written by train or demo")
    evaluate.add_argument("--n", type=positive_int, default=None,
                          help="samples to score (default: 16 clips for video, the preset's eval_samples otherwise)")
    evaluate.add_argument("--steps", type=positive_int, default=None, help="DDIM steps (default: the preset's)")
    evaluate.add_argument("--guidance", type=non_negative_float, default=None,
                          help="digits, moving digits and captioned clips only: classifier-free guidance scale w "
                               f"(default: 1, the plain conditional model; {CAPTION_GUIDANCE_SCALE:g} on the caption "
                               "for video-captions)")
    _common(evaluate, "seed of the starting noise")

    export = commands.add_parser(
        "export", help="write a finished checkpoint's EMA weights as a small file to ship or share",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("Keep what sampling needs -- the recipe, the EMA weights in float16, the loss history "
                          "and the training record -- in a file about an eighth of the checkpoint's size (no raw "
                          "weights or optimiser moments, half the bytes per weight). By default it goes to the "
                          "course's shipped folder under the recipe's name, where the notebooks' train_or_load "
                          "finds it."),
        epilog=f"examples:\n  {PROG} export --checkpoint runs/shapes.pt\n"
               f"  {PROG} export --checkpoint runs/shapes.pt --out shapes-small.pt --force")
    export.add_argument("--checkpoint", required=True, help="a finished checkpoint written by train")
    export.add_argument("--out", default=None,
                        help="output file (default: course_lib/workshop/pretrained/<task>-<model>-<preset>-<key>.pt); "
                             "never the checkpoint itself or another training checkpoint")
    export.add_argument("--force", action="store_true", help="replace an existing export at --out")

    commands.add_parser(
        "doctor", help="check this machine before a workshop: versions, threads, memory, preset, widgets, ffmpeg, "
                       "shipped weights, disk, time per lesson",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("Print one line per topic, then a warning line for what makes the course worse (no widgets, "
                          "few threads, little memory) and an error line for what would stop a lesson, each saying "
                          "what to do. Exit code 1 when there is an error, else 0. Takes seconds."),
        epilog=f"examples:\n  {PROG} doctor\n  COURSE_PRESET=cpu OMP_NUM_THREADS=2 {PROG} doctor   # as the "
               "workshop will run")
    # the course machinery's own command lines, routed by course_lib/__main__.py (listed here for --help)
    commands.add_parser("notebooks", add_help=False,
                        help="build the lessons' notebooks, check they are in sync, time them (notebooks --help)")
    commands.add_parser("bench", add_help=False,
                        help="train and measure a part of the course, write BENCHMARKS.md's tables (bench --help)")
    commands.add_parser("site", add_help=False,
                        help="build the course as a website: the lessons executed, as a static book (site --help)")
    return parser


# --- shared helpers ----------------------------------------------------------------------------

def _setup(args) -> torch.device:
    """The device; torch's CPU threads from --threads, or 1 thread when the machine is already busy."""
    device = get_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu" and torch.get_num_threads() > 1 and hasattr(os, "getloadavg"):
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if load >= cores:  # every core is taken: threads that wait on each other are slower than one
            torch.set_num_threads(1)
            print(f"note: this machine is busy (load {load:.1f} on {cores} cores), so torch uses 1 thread, "
                  "which is faster here; choose with --threads N", flush=True)
    return device


def _preset(args) -> Preset:
    """--preset (default: $COURSE_PRESET or the hardware's) with --precision, when given, as its autocast."""
    preset = get_preset(args.preset)
    return preset if args.precision is None else preset.replace(precision=args.precision)


def _checkpoint_file(path: str) -> Path:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--checkpoint: no such file: {path}")
    return file


def _check_output(option: str, path: Path) -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written: a folder, a path through a
    file, or a folder this process cannot write to (a missing folder is fine where it can be created)."""
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a folder; expected a file name such as {path / ('out' + path.suffix)}")
    folder = Path(os.path.realpath(path)).parent  # a symlink is written through to the file it names
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{option}: cannot create {path}: {folder} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"{option}: cannot write {path}: {error.strerror or error} in {folder}; "
                         "choose a folder you can write to") from None
    return path


def _os_error_line(error: OSError, writing: Path | None) -> str:
    """One line for a failed file operation: what happened, to which file, and what to do."""
    file = error.filename if error.filename is not None else writing
    reason = error.strerror or str(error) or type(error).__name__
    line = reason if file is None else f"{reason}: {file}"
    hint = {errno.EACCES: "check its permissions, or choose a folder you can write to",
            errno.EPERM: "check its permissions, or choose a folder you can write to",
            errno.ENOSPC: "free some space or choose another disk (a file saved there before is unchanged)",
            errno.EDQUOT: "free some space or choose another disk (a file saved there before is unchanged)",
            errno.EROFS: "the file system is read-only: choose another folder",
            errno.EISDIR: "it is a folder: give a file name",
            errno.ENOTDIR: "a part of the path is a file, not a folder"}.get(error.errno)
    return f"{line}; {hint}" if hint else line


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _load(args, device: torch.device):
    """(recipe, EMA model on device) from --checkpoint."""
    from course_lib.workshop.zoo import load_checkpoint

    recipe, trainer = load_checkpoint(_checkpoint_file(args.checkpoint), device=device, progress=False)
    return recipe, trainer.ema_model.eval()


def _consistency_line(recipe: Recipe, clips: torch.Tensor, labels: torch.Tensor | None = None) -> str:
    """Video consistency of generated clips, part by part, next to real clips of the same task."""
    from course_lib.metrics.consistency import video_consistency

    generated = video_consistency(clips.cpu().clamp(-1, 1), recipe.object_size, labels)
    real = video_consistency(recipe.real_examples(len(clips)), recipe.object_size)
    n = len(clips)
    parts = ", ".join(f"{name} {int(ok.sum())}/{n}" for name, ok in generated.parts.items())
    return (f"video consistency: {int(generated.passed.sum())}/{n} generated clips pass ({generated.pass_rate:.0%}; "
            f"{parts}); real clips: {int(real.passed.sum())}/{n} ({real.pass_rate:.0%})")


def _save_samples(recipe: Recipe, samples: torch.Tensor, out: Path) -> None:
    from course_lib.views.figures import save_gif, save_mp4, video_to_uint8

    out.parent.mkdir(parents=True, exist_ok=True)
    samples = samples.cpu()
    if is_video_task(recipe.task):
        scale = max(1, 96 // samples.shape[-1])
        (save_gif if out.suffix.lower() == ".gif" else save_mp4)(samples, out, nrow=4, scale=scale, out_of_range="clip")
    elif recipe.task == "digits":
        import imageio.v3 as iio

        iio.imwrite(out, video_to_uint8(samples[:, None], nrow=10, scale=2, out_of_range="clip")[0], extension=".png")
    else:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(*samples.T.numpy(), s=4)
        ax.set_aspect("equal")
        ax.set_title(f"{len(samples)} samples")
        fig.savefig(out, dpi=100)
        plt.close(fig)


def _command_line(command: str) -> str | None:
    """This process's command line, when it is this command (not when main() is called from Python)."""
    return f"{PROG} {shlex.join(sys.argv[1:])}" if sys.argv[1:2] == [command] else None


def _check_out(recipe: Recipe, out: str | None) -> Path:
    allowed = VIDEO_EXTENSIONS if is_video_task(recipe.task) else IMAGE_EXTENSIONS
    if out is None:
        return _check_output("--out", Path("samples" + allowed[0]))
    path = Path(out)
    if path.suffix.lower() not in allowed:
        kind = "video" if is_video_task(recipe.task) else "image/points"
        raise UsageError(f"--out: expected a file name ending in {' or '.join(allowed)} for the "
                         f"{kind} task {recipe.task!r}, got {out!r}")
    return _check_output("--out", path)


def _check_precision(args, device: torch.device) -> None:
    """fp16 trains with loss scaling on CUDA only: elsewhere the trainer would use bf16 while the
    checkpoint recorded fp16, so it is refused (the recorded precision is always the one used)."""
    if args.precision == "fp16" and device.type != "cuda":
        raise UsageError(f"--precision: fp16 needs a CUDA GPU (it trains with loss scaling there); on {device.type} "
                         "use bf16 (fast where the CPU computes it natively) or fp32")


def _remove_stale_temp_files(path: Path, say) -> None:
    """Delete the temporary files that saves of ``path`` killed mid-write left behind (``.NAME.*.tmp``)."""
    stale = stale_temp_files(path)
    for file in stale:
        file.unlink(missing_ok=True)
    if stale:
        say(f"note: removed {len(stale)} temporary file(s) left by a save of {path} that was cut short "
            f"({', '.join(f.name for f in stale[:3])}{' ...' if len(stale) > 3 else ''})", flush=True)


# --- the commands ------------------------------------------------------------------------------

def run_demo(args) -> int:
    from course_lib.workshop import zoo

    device = _setup(args)
    _check_precision(args, device)
    if args.precision is None and device.type == "cpu" and cpu_has_native_bf16():
        args.precision = "bf16"
    preset = _preset(args)
    if device.type == "cpu" and preset.video_base_channels > DEMO_CPU_BASE_CHANNELS:
        preset = preset.replace(video_base_channels=DEMO_CPU_BASE_CHANNELS)
    recipe = get_recipe("video-shapes", preset, seed=args.seed, lr=DEMO_LR)
    minutes = DEMO_MINUTES if args.minutes is None else args.minutes
    out = Path(args.out)
    for name in ("model.pt", "samples.gif"):  # before any work: both files can be written
        _check_output("--out", out / name)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(out / "model.pt", print)
    args.saving, args.saved_before = out / "model.pt", _mtime(out / "model.pt")
    p = recipe.preset
    print(f"Training a {recipe.model_name} (base width {p.video_base_channels}) on bouncing shapes ({p.video_frames} "
          f"frames of {p.video_size}x{p.video_size}, preset {p.name}, {p.precision}) on {device.type} for at most "
          f"{minutes:g} min or {recipe.steps} steps. Ctrl-C stops and keeps the checkpoint.", flush=True)
    trainer = zoo.train(recipe, out / "model.pt", resume=False, minutes=minutes, progress=True, device=device,
                        command=_command_line("demo"))
    start = time.perf_counter()
    clips = recipe.sample(trainer.ema_model, DEMO_CLIPS, generator=torch.Generator().manual_seed(args.seed),
                          progress=True)
    sample_seconds = time.perf_counter() - start
    _save_samples(recipe, clips, out / "samples.gif")
    print(f"trained {trainer.step} steps in {trainer.seconds / 60:.1f} min (loss {trainer.recent_loss(50):.3f}); "
          f"sampled {DEMO_CLIPS} clips with {p.sample_steps} DDIM steps in {sample_seconds:.1f} s; "
          + _consistency_line(recipe, clips))
    print(f"wrote {out / 'samples.gif'} and {out / 'model.pt'} "
          f"(continue with: {PROG} train --checkpoint {out / 'model.pt'} --resume)")
    return 0


def run_train(args) -> int:
    from course_lib.workshop import zoo
    from course_lib.training import distributed, parallel

    device = _setup(args)
    _check_precision(args, device)
    found = distributed.launch_from_env()  # under torchrun; names a missing variable before connecting
    world = found["world_size"] if found else 1
    overrides = {} if args.steps is None else {"steps": args.steps}
    if args.objective is not None:
        if args.task is None:
            raise UsageError("--objective: a new run needs --task (a resumed checkpoint keeps its objective)")
        overrides["objective"] = args.objective
    if args.task is None:
        recipe, state = _resumed_without_task(args, overrides)
        path = Path(args.checkpoint)
    else:
        recipe = get_recipe(args.task, _preset(args), args.model, seed=args.seed or 0, **overrides)
        path = Path(args.checkpoint) if args.checkpoint else zoo.checkpoint_path(recipe)
        _check_output("--checkpoint", path)
        if args.resume and not path.exists():
            raise UsageError(f"--resume: {path} does not exist, so there is nothing to resume; leave out --resume to "
                             "start a new run there, or use --resume-if-exists")
        if path.exists() and not (args.resume or args.resume_if_exists):
            raise UsageError(f"--checkpoint: {path} already exists; add --resume to continue training it, "
                             "or choose another --checkpoint")
        args.resume = path.exists()
        state = read_checkpoint(path) if args.resume else None
    if world > 1:  # refused before any process waits for another
        parallel.split_batch_size(recipe.batch_size, world)
    if args.workers is None:
        args.workers = default_workers(device, world, state)
    if state is not None:
        expected = zoo.resume_shards(path, state, None, args.accumulate, args.workers, world)
        parallel.check_checkpoint_layout(path, state, world, expected)
        if int(state["step"]) >= recipe.steps:  # nothing to train: the file stays as it is
            print(f"{path} is already at step {int(state['step'])}, at or past the {recipe.steps} steps asked for: "
                  f"nothing to train (ask for more with --steps N)")
            return 0
    args.saving, args.saved_before = path, _mtime(path)
    try:
        with distributed.distributed_session(device) as launch:  # outside torchrun: one plain process
            return _train(args, recipe, path, state, launch)
    except distributed.PeersLostError as error:
        print(f"{PROG} train: error: {error} {path} holds the last step rank 0 saved: run the same launch "
              "again with --resume.", file=sys.stderr)
        return 1


def _resumed_without_task(args, overrides: dict) -> tuple[Recipe, dict]:
    """``train --checkpoint FILE --resume`` without --task: (FILE's recipe with --steps applied, FILE's state)."""
    from course_lib.workshop import zoo

    resuming = args.resume or (args.resume_if_exists and args.checkpoint and Path(args.checkpoint).exists())
    if not (resuming and args.checkpoint):
        raise UsageError(f"--task: expected one of {', '.join(TASKS)} (only --checkpoint FILE --resume may leave it "
                         "out: the task then comes from FILE), got none")
    for option in ("model", "preset", "precision", "seed"):
        if getattr(args, option) is not None:
            raise UsageError(f"--{option}: expected no value when --task is left out (the checkpoint's recipe is "
                             f"resumed as it is), got {getattr(args, option)}")
    path = _check_output("--checkpoint", _checkpoint_file(args.checkpoint))
    args.resume = True
    state = read_checkpoint(path)  # a damaged or foreign file: CheckpointError, exit 1
    try:
        return zoo.stored_recipe(path, state).replace(**overrides), state
    except ValueError as error:
        raise UsageError(f"--checkpoint: {error}") from None


def default_workers(device: torch.device, world: int, state=None) -> int:
    """Worker processes for the batches: 0 off CUDA, and to continue a file of one process's carried
    streams (they cannot be drawn elsewhere); on CUDA min(4, half the CPU cores / processes), at least 1."""
    saved = state.get("config", {}).get("shards", 0) if isinstance(state, dict) else None
    if device.type != "cuda" or (saved == 0 and world == 1):
        return 0
    return max(1, min(4, (os.cpu_count() or 2) // (2 * world)))


def _train(args, recipe: Recipe, path: Path, state, launch) -> int:
    """The train command in one process of ``launch`` (every rank trains, rank 0 prints)."""
    from course_lib.workshop import zoo

    say = print if launch.is_main else (lambda *_, **__: None)
    if launch.is_main:
        _remove_stale_temp_files(path, say)
    if state is not None:
        say(f"Resuming {path} at step {int(state['step'])} of {recipe.steps}.", flush=True)
    elif args.resume_if_exists:
        say(f"note: {path} does not exist yet, so a new run starts there (--resume-if-exists)", flush=True)
    if launch.world_size > 1:
        say(f"Data-parallel training on {launch.world_size} processes ({launch.backend}): global batch "
            f"{recipe.batch_size} = {launch.world_size} x {recipe.batch_size // launch.world_size}, "
            f"lr {recipe.lr:g} as for one process.", flush=True)
    if args.accumulate > 1:
        say(f"Gradient accumulation: each step's batch of {recipe.batch_size} is {launch.world_size * args.accumulate} "
            f"micro-batches of {recipe.batch_size // (launch.world_size * args.accumulate)}, {args.accumulate} per "
            "process.", flush=True)
    trainer = zoo.train(recipe, path, resume=args.resume, minutes=args.minutes, device=launch.device,
                        command=_command_line("train"), accumulate=args.accumulate, workers=args.workers,
                        memory_format="channels_last" if args.channels_last else "contiguous", report_memory=True,
                        state=state)
    done = "finished" if trainer.step >= recipe.steps else "stopped by --minutes"
    say(f"{done}: {trainer.step}/{recipe.steps} steps in {trainer.seconds / 60:.1f} min, "
        f"loss {trainer.recent_loss(50):.4f}; checkpoint {path}")
    if trainer.step < recipe.steps:
        launcher = PROG if launch.world_size == 1 else "torchrun <same options> -m course_lib"
        say(f"continue with: {launcher} train --checkpoint {path} --resume")
    return 0


def run_sample(args) -> int:
    device = _setup(args)
    from course_lib.workshop.zoo import read_recipe

    recipe, _ = read_recipe(_checkpoint_file(args.checkpoint))
    out = _check_out(recipe, args.out)  # before the model is built: a bad --out fails at once
    args.saving = out
    captions = _check_captions_option(recipe, args.caption, args.n)  # before the model is built, too
    recipe, model = _load(args, device)
    guidance = recipe.guidance_scale if recipe.captioned and args.guidance is None else args.guidance
    start = time.perf_counter()
    samples = recipe.sample(model, args.n, steps=args.steps, sampler=args.sampler, guidance_scale=guidance,
                            generator=torch.Generator().manual_seed(args.seed), progress=True, captions=captions)
    seconds = time.perf_counter() - start
    _save_samples(recipe, samples, out)
    sampler = args.sampler or ("euler" if recipe.objective == "flow" else "ddim")
    guided = f", caption guidance w = {guidance:g}" if recipe.captioned else ""
    print(f"wrote {args.n} samples of {recipe.task} ({sampler}{guided}, {seconds:.1f} s) to {out}")
    return 0


def _check_captions_option(recipe: Recipe, captions: list[str] | None, n: int) -> list[str] | None:
    """--caption: None, or n captions (the given ones in turn), each checked against the vocabulary."""
    if captions is None:
        return None
    if not recipe.captioned:
        raise UsageError(f"--caption: expected no caption for this checkpoint: its task {recipe.task!r} is not "
                         f"conditioned on captions (captioned tasks: {', '.join(CAPTION_TASKS)}), got {captions[0]!r}")
    from course_lib.data.captions import tokenize

    for caption in captions:
        if not caption.strip():
            raise UsageError(f"--caption: expected a caption of at least one word, e.g. \"a red square moves left\", "
                             f"got {caption!r}")
        try:
            tokenize([caption])
        except ValueError as error:
            raise UsageError(f"--caption: {str(error).removeprefix('captions[0]: ')}") from None
    return [captions[i % len(captions)] for i in range(n)]


def run_export(args) -> int:
    from course_lib.workshop import shipped

    source = _checkpoint_file(args.checkpoint)
    state = read_checkpoint(source)  # a damaged or foreign file: CheckpointError, exit 1
    export = shipped.export_state(state)
    out = Path(args.out) if args.out is not None else shipped.SHIPPED_FOLDER / f"{shipped.export_stem(export)}.pt"
    if os.path.realpath(out) == os.path.realpath(source) or (out.exists() and os.path.samefile(out, source)):
        raise UsageError(f"--out: {out} is the --checkpoint itself; an export keeps no optimiser state, so it would "
                         "replace the resumable checkpoint: choose another --out")
    _check_output("--out", out)
    if out.exists():
        if not args.force:
            raise UsageError(f"--out: {out} already exists; add --force to replace it, or choose another --out")
        try:
            read_checkpoint(out)
        except (CheckpointError, OSError):
            pass  # not a training checkpoint (an earlier export, say): --force replaces it
        else:
            raise UsageError(f"--out: {out} is a resumable training checkpoint, which an export never replaces "
                             "(even with --force): choose another --out")
    args.saving = out
    out = shipped.export_checkpoint(source, out, command=_command_line("export"))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB; {source} is {source.stat().st_size / 1e6:.1f} MB) "
          f"and {out.name}.json")
    return 0


def run_eval(args) -> int:
    device = _setup(args)
    recipe, model = _load(args, device)
    video = is_video_task(recipe.task)
    n = args.n or (16 if video else recipe.preset.eval_samples)
    g = torch.Generator().manual_seed(args.seed)
    labels = recipe.cycled_labels(n)
    if recipe.captioned and args.guidance is None:
        args.guidance = recipe.guidance_scale
    start = time.perf_counter()
    samples = recipe.sample(model, n, steps=args.steps, generator=g, labels=labels, guidance_scale=args.guidance,
                            progress=True).cpu()
    seconds = time.perf_counter() - start
    if recipe.captioned:  # do the clips show what their captions asked for?
        from course_lib.metrics.caption_match import caption_match

        report = caption_match(samples, recipe.real_captioned(n).captions, recipe.object_size)
        line = f"{recipe.task}, {n} clips: caption match {report.summary()}"
    elif video:
        line = _consistency_line(recipe, samples, labels if args.guidance != 0 else None)  # w = 0 asks for no digit
        if labels is not None:  # moving digits: is the requested digit legible in every frame?
            from course_lib.metrics.video import frame_digit_accuracy

            line += (f"; frames whose digit the video judge reads as the requested one: "
                     f"{frame_digit_accuracy(samples, labels=labels):.0%}")
    elif recipe.task == "digits":
        from course_lib.metrics import judge

        scores = judge.image_scores(samples, recipe.real_examples(n), labels)
        line = (f"digits, {n} samples (FID is comparable only at equal n; the course uses {judge.FID_SAMPLES}): "
                f"judge accuracy {scores['accuracy']:.1%}, IS {scores['IS']:.2f} (max 10), FID {scores['FID']:.2f}")
    else:
        from course_lib.metrics.toy import mmd_rbf

        real = recipe.real_examples(n, seed=1)
        fresh = recipe.real_examples(n, seed=2)
        line = f"two moons, {n} samples: MMD {mmd_rbf(samples, real):.4f} (fresh data: {mmd_rbf(fresh, real):.4f})"
    guided = "" if args.guidance is None else f" (guidance w = {args.guidance:g})"
    print(f"{line}; sampling took {seconds:.1f} s{guided}")
    return 0


def run_doctor(args) -> int:
    from course_lib.workshop import doctor

    return doctor.run(prog=f"{PROG} doctor")


COMMANDS = {"demo": run_demo, "train": run_train, "sample": run_sample, "eval": run_eval, "export": run_export,
            "doctor": run_doctor}


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    0: done; 1: an expected failure during the work (one line says which file and what to do);
    2: bad arguments or an output path that cannot be written; 130: Ctrl-C; 143: SIGTERM.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help (0) or an argparse error (2), already printed
        return int(exit.code or 0)
    args.saving, args.saved_before = None, None  # the file the command writes, and its mtime before (if any)

    def error(message: object, code: int) -> int:
        print(f"{PROG} {args.command}: error: {' '.join(str(message).split())}", file=sys.stderr)
        return code

    if args.command not in COMMANDS:  # bench, notebooks: their own command lines
        return error(f"run it as {PROG} {args.command} ... (course_lib/__main__.py routes it)", 2)
    try:
        with _sigterm_stops():
            return COMMANDS[args.command](args)
    except UsageError as problem:
        return error(problem, 2)
    except CheckpointError as problem:  # a damaged, foreign or other-format file
        return error(problem, 1)
    except ValueError as problem:  # a bad argument found by the library
        return error(problem, 2)
    except FloatingPointError as problem:  # a NaN/inf loss: the trainer stopped before updating the weights
        return error(f"{problem}{_saved_note(args)}", 1)
    except (MemoryError, torch.OutOfMemoryError) as problem:
        return error(f"out of memory ({str(problem).splitlines()[0] if str(problem) else type(problem).__name__}); "
                     "use a smaller --preset, or --accumulate N to split each batch", 1)
    except OSError as problem:  # permissions, a full disk, a read-only file system, ...
        return error(_os_error_line(problem, args.saving) + _saved_note(args), 1)
    except KeyboardInterrupt as stop:
        sigterm = isinstance(stop, Terminated) or getattr(stop, "signum", None) == getattr(signal, "SIGTERM", None)
        code, name = (143, "terminated (SIGTERM)") if sigterm else (130, "interrupted")
        print(f"\n{PROG} {args.command}: {name}{_saved_note(args, interrupted=True)}", file=sys.stderr)
        return code


def _saved_note(args, interrupted: bool = False) -> str:
    """What happened to the checkpoint: saved now, unchanged from before, or never written (no claim that is not so)."""
    if args.command not in ("demo", "train") or args.saving is None:
        return ""
    path, now = args.saving, _mtime(args.saving)
    if now is None:
        return f" (nothing was saved to {path})"
    if now == args.saved_before:
        return f" ({path} is unchanged)"
    how = f"; continue with: {PROG} train --checkpoint {path} --resume" if interrupted else ""
    return f" ({path} holds the last save of this run{how})"


class _sigterm_stops:
    """While a command runs, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt), so training saves and
    stops as on Ctrl-C; the previous handler comes back afterwards. Only the main thread can set handlers."""

    def __enter__(self):
        self.previous = None
        if hasattr(signal, "SIGTERM") and threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, _raise_terminated)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()

