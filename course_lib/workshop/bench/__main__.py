"""``python -m course_lib bench``: train one part of the course from scratch (or load it), measure it, print one table.

    python -m course_lib bench image                  # cpu preset: 10 min of training, then DDPM vs DDIM
    python -m course_lib bench image --quick          # a tiny run (seconds) that exercises everything
    python -m course_lib bench all --preset cpu       # every benchmark in one run, every table printed
    python -m course_lib bench all --quick            # the same in a minute: tiny runs of each
    python -m course_lib bench quality --task video-shapes --minutes 15   # train a video recipe, score its clips

Benchmarks: ``image`` (:mod:`~course_lib.workshop.bench.image`), ``video``
(:mod:`~course_lib.workshop.bench.video`), ``sampling`` (:mod:`~course_lib.workshop.bench.sampling`),
``prediction`` (:mod:`~course_lib.workshop.bench.prediction`), ``training``
(:mod:`~course_lib.workshop.bench.training`), ``latent`` (:mod:`~course_lib.workshop.bench.latent`),
``captions`` (:mod:`~course_lib.workshop.bench.captions`), ``identity``
(:mod:`~course_lib.workshop.bench.identity`), ``site`` (:mod:`~course_lib.workshop.bench.site`), and
``all``, which runs them in that order with their defaults (all but ``latent``, ``captions``,
``identity`` and ``site``). Each is a :class:`Benchmark` in
:data:`BENCHMARKS`; its name is the subcommand. To add one, write ``add_arguments(parser)`` and
``run(args) -> Table`` and register them. Results go to
``--out`` (default ``runs/bench``) as ``<name>-<preset>.md`` (the table) and ``.json`` (every
number, rewritten after each row); ``all`` also writes ``all-<preset>.md`` with every table.
``quality`` (:mod:`~course_lib.workshop.bench.quality`) has its own options and prints lines;
``report`` (:mod:`~course_lib.workshop.bench.report`) rewrites BENCHMARKS.md's tables from the records.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from course_lib.config import PRESETS, get_device, get_preset
from course_lib.workshop.bench import (
    captions, identity, image, latent, prediction, quality, report, sampling, site, training, video,
)
from course_lib.workshop.bench.common import DEFAULT_OUT, PROG, Report, Stopwatch, Table, configure_threads
from course_lib.workshop.cli import positive_int, positive_minutes


@dataclass(frozen=True)
class Benchmark:
    """A subcommand: ``add_arguments(parser)`` declares its options, ``run(args)`` measures and returns a
    Table (or, for ``all``, a Report of several)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Table | Report]


ALL_ORDER = ("image", "video", "sampling", "prediction", "training")  # what `all` runs, in this order


def add_all_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=tuple(PRESETS), default=None,
                        help="the preset of every benchmark (default: $COURSE_PRESET, else gpu with CUDA, cpu without)")
    parser.add_argument("--checkpoints", default="checkpoints",
                        help="folder of train_or_load's checkpoints, for video, sampling and prediction")
    parser.add_argument("--train-minutes", type=positive_minutes, default=None,
                        help="video, sampling, prediction: train missing models for this many minutes first")
    parser.add_argument("--skip", choices=ALL_ORDER, nargs="+", default=[], help="benchmarks to leave out")
    parser.add_argument("--quick", action="store_true", help="the quick run of every benchmark (about a minute)")


def _argv_for(name: str, args: argparse.Namespace) -> list[str]:
    """The command line of benchmark ``name`` inside ``all``: its defaults, and the options ``all`` passes on."""
    argv = [name, "--out", args.out, "--seed", str(args.seed), "--checkpoints", args.checkpoints]
    argv += ["--quick"] * args.quick + ["--quiet"] * args.quiet
    for option, value in (("--preset", args.preset), ("--device", args.device), ("--threads", args.threads),
                          ("--train-minutes", args.train_minutes)):
        argv += [option, str(value)] if value is not None else []
    return argv


def run_all(args: argparse.Namespace) -> Report:
    """Every benchmark of :data:`ALL_ORDER` (less ``--skip``) with its defaults; writes ``<out>/all-<preset>.md``."""
    parser = build_parser()
    report = Report(f"All benchmarks, preset {get_preset(args.preset).name}" + (" (quick runs)" if args.quick else ""))
    for name in ALL_ORDER:
        if name in args.skip:
            continue
        sub, _ = parser.parse_known_args(_argv_for(name, args))  # drops what a benchmark does not take
        sub.device_obj, threads = args.device_obj, torch.get_num_threads()
        with Stopwatch() as watch:
            try:
                report.tables.append(BENCHMARKS[name].run(sub))
            finally:
                torch.set_num_threads(threads)  # each benchmark starts from the same threads
        took = f"{watch.wall:.0f} s" if watch.wall < 120 else f"{watch.wall / 60:.1f} min"
        report.notes.append(f"{name}: {took}")
        print(f"all: {name} done in {took}", file=sys.stderr, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"all-{get_preset(args.preset).name}" + ("-quick" if args.quick else "")
    (out / f"{name}.md").write_text(report.to_markdown() + "\n")
    return report


BENCHMARKS: dict[str, Benchmark] = {
    "image": Benchmark("train the class-conditional digits U-Net for a time budget; DDPM vs DDIM time, IS, FID, "
                       "judge accuracy of guided samples", image.add_image_arguments, image.run_image),
    "video": Benchmark("the 3D U-Net and the conv+LSTM denoiser: parameters, training-step time and peak memory at "
                       "two clip shapes; sampling time, FVD-style distance and video consistency of trained models",
                       video.add_video_arguments, video.run_video),
    "training": Benchmark("training steps/s of the digits U-Net and the video 3D U-Net in fp32, bf16 autocast, "
                          "compiled and channels-last, with their memory estimates",
                          training.add_training_arguments, training.run_training),
    "sampling": Benchmark("DDPM vs DDIM at 100/50/20/10 steps, and flow matching's Euler and Heun at as many network "
                          "calls, on the trained digits U-Net and video 3D U-Net: time per sample, FID and judge "
                          "accuracy, FVD-style distance and motion pass",
                          sampling.add_sampling_arguments, sampling.run_sampling),
    "prediction": Benchmark("predict the future frames of bouncing shapes with the frame-conditional U-Net, "
                            "replacement and reconstruction guidance against 'repeat the last frame'; roll out 4x "
                            "longer videos", prediction.add_prediction_arguments, prediction.run_prediction),
    "latent": Benchmark("lesson 15: the video autoencoder's reconstruction (PSNR, SSIM), the latent space-time "
                        "transformer's training step beside the pixel 3D U-Net's, and both models' sampled clips",
                        latent.add_latent_arguments, latent.run_latent),
    "captions": Benchmark("lesson 16: caption match (shape, colour, direction read from the frames) of the "
                          "caption-conditioned latent transformer's clips, guided on the caption, unguided and "
                          "unconditional", captions.add_captions_arguments, captions.run_captions),
    "identity": Benchmark("bouncing shapes: each checkpoint's clips scored by the video consistency (present, motion, "
                          "colour, shape) and the share whose frames have parted ways in colour at each noise level "
                          "of the sampler", identity.add_identity_arguments, identity.run_identity),
    "site": Benchmark("the website: site build with every lesson run from an empty execution cache, lesson by lesson, "
                      "then the pages", site.add_site_arguments, site.run_site),
    "all": Benchmark("run image, video, sampling, prediction and training one after another with their defaults "
                     "and print every table", add_all_arguments, run_all),
}
QUALITY_HELP = ("train a video recipe within a budget, then print its video consistency (present, motion, look kept), "
                "FVD ratio and (digits) frame digit accuracy (its own options: quality --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Train and measure a part of the course; print one table.")
    commands = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, benchmark in BENCHMARKS.items():
        sub = commands.add_parser(name, help=benchmark.help, description=benchmark.help)
        benchmark.add_arguments(sub)
        sub.add_argument("--seed", type=int, default=0, help="seed of the model, data and noise (default 0)")
        sub.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None,
                         help="where to compute (default: $COURSE_DEVICE, else CUDA, MPS, CPU)")
        sub.add_argument("--threads", type=positive_int, default=None,
                         help="torch CPU threads (default: torch's, or 1 when the machine is already busy)")
        sub.add_argument("--out", default=DEFAULT_OUT, help=f"folder for the checkpoint and results (default {DEFAULT_OUT})")
        sub.add_argument("--quiet", action="store_true", help="no progress bars")
    commands.add_parser("quality", help=QUALITY_HELP, add_help=False)  # listed here; main hands it its own argv
    commands.add_parser("report", help="rewrite BENCHMARKS.md's tables from the records in benchmarks/ "
                                       "(--check: only say whether it is up to date)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv`` (default ``sys.argv[1:]``), print the table(s) to stdout; returns the exit code (2: bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        try:
            return report.main(argv[1:])
        except SystemExit as exit:  # --help (0) or an argparse error (2), already printed
            return int(exit.code or 0)
    if argv[:1] == ["quality"]:
        try:
            return quality.main(argv[1:])
        except SystemExit as exit:  # --help (0) or an argparse error (2), already printed
            return int(exit.code or 0)
        except ValueError as error:
            print(f"{PROG} quality: error: {error}", file=sys.stderr)
            return 2
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help (0) or an argparse error (2), already printed
        return int(exit.code or 0)
    threads = torch.get_num_threads()
    try:
        args.device_obj = get_device(args.device)
        note = configure_threads(args.threads, args.device_obj)
        if note:
            print(f"note: {note}", file=sys.stderr, flush=True)
        table = BENCHMARKS[args.benchmark].run(args)
    except ValueError as error:
        print(f"{PROG} {args.benchmark}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG} {args.benchmark}: interrupted", file=sys.stderr)
        return 130
    finally:
        torch.set_num_threads(threads)  # main() called from Python leaves the process as it found it
    print(table.to_markdown(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
