"""``python -m course_lib bench sampling`` (DDPM vs DDIM on the trained models) and ``all`` (every table in one run)."""
import argparse
import contextlib
import io
import json
import shutil

import pytest

from course_lib.workshop.bench import __main__ as bench
from course_lib.workshop import zoo
from course_lib.workshop.bench.sampling import (
    QUICK,
    SAMPLING_COLUMNS,
    SamplerRun,
    SamplingBenchConfig,
    sampling_benchmark,
    sampling_findings,
)
from course_lib.workshop.bench.common import trained_model
from course_lib.config import get_preset
from course_lib.workshop.recipes import get_recipe
from _exercise_checks import number, parse_table

SMOKE = get_preset("smoke")
QUICK_ARGS = ["sampling", "--quick", "--preset", "smoke", "--quiet", "--threads", "1"]
TASKS = ("digits", "video-shapes")


def run(argv) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = bench.main(argv)
    return code, stdout.getvalue()


def tables(text: str) -> list[str]:
    """The '### ' sections of a printed report, one per table."""
    return ["### " + part for part in text.split("\n### ")[1:]]


@pytest.fixture(scope="module")
def quick_run(run_bench):
    return run_bench("sampling", "--preset", "smoke", "--threads", "1")


def by_model(rows):
    """{(task, objective): its rows}; the real-data row is the first of its task's ε model."""
    models = {}
    for row in rows:
        task = row["model"].split()[0]
        models.setdefault((task, "flow" if row["model"].endswith("(flow matching)") else "eps"), []).append(row)
    return models


def test_quick_run_times_and_scores_every_sampler_of_both_models(quick_run):
    assert quick_run["code"] == 0
    columns, rows = parse_table(quick_run["text"])
    assert tuple(columns) == SAMPLING_COLUMNS
    T = QUICK["num_diffusion_steps"]
    models = by_model(rows)
    assert sorted(models) == [(task, objective) for task in TASKS for objective in ("eps", "flow")]
    for task in TASKS:
        n = QUICK["samples"][task]
        assert [row["sampler"] for row in models[task, "eps"]] == ["real data (the floor)", "DDPM", "DDIM 10", "DDIM 4"]
        real, ddpm, *ddims = models[task, "eps"]
        assert [int(row["network calls"]) for row in (ddpm, *ddims)] == [T, 10, 4]
        assert [int(row["n"]) for row in models[task, "eps"]] == [n, min(QUICK["ddpm_samples"], n), n, n]
        assert number(ddpm["speed-up vs DDPM"]) == 1.0 and all(number(r["s/sample"]) > 0 for r in (ddpm, *ddims))
        assert number(ddims[1]["speed-up vs DDPM"]) > 1  # 4 network calls per sample instead of 50
        assert all(row["trained"] == f"{QUICK['train_steps']} steps (quick)" for row in (ddpm, *ddims))
        flows = models[task, "flow"]  # Euler N and Heun with the most steps in N calls: 10 -> 5 (9 calls), 4 -> 2 (3)
        assert [(row["sampler"], int(row["network calls"])) for row in flows] == [
            ("Euler 10", 10), ("Heun 5", 9), ("Euler 4", 4), ("Heun 2", 3)]
        assert all(int(row["n"]) == n and number(row["speed-up vs DDPM"]) > 1 for row in flows)
        if task == "digits":  # real digits are read well; 2-step models draw noise
            assert number(real["judge accuracy"]) > 0.8
            assert all(number(row["FID ↓"]) > number(real["FID ↓"]) for row in ddims + flows)
            assert ddpm["FID ↓"] == "–" and real["FVD ↓"] == "–"  # DDPM drew 4 of 10: quality not measured
        else:
            assert all(number(row["motion pass"]) < number(real["motion pass"]) for row in (ddpm, *ddims, *flows))
            assert number(real["consistent"]) > 0.9 and all(number(row["consistent"]) < 0.5 for row in ddims + flows)
            assert number(ddpm["FVD ↓"]) >= 0 and real["FID ↓"] == "–"  # DDPM drew all 4: measured
    assert "DDPM: timed on 4 of 10 samples; its quality is not measured at that n" in quick_run["text"]
    findings = [line for line in quick_run["text"].splitlines() if line.startswith("- ")]
    assert [line.split(" ")[1].rstrip(":") for line in findings] == ["digits", "digits", "digits", "video-shapes",
                                                                      "video-shapes", "video-shapes"]
    assert all("faster than DDPM" in line for line in (findings[0], findings[3]))
    assert findings[1].startswith("- digits within 10 network calls: FID DDIM 10 ")
    assert "Euler 10" in findings[1] and "Heun 5" in findings[1] and "accuracy DDIM 10" in findings[1]
    assert findings[5].startswith("- video-shapes within 4 network calls: FVD DDIM 4 ")


def test_results_are_written_as_markdown_and_json(quick_run):
    out = quick_run["out"]
    assert (out / "sampling-smoke-quick.md").read_text().strip() in quick_run["text"]
    results = json.loads((out / "sampling-smoke-quick.json").read_text())
    assert [row["sampler"] for row in results["rows"]] == [row["sampler"] for row in parse_table(quick_run["text"])[1]]
    assert [run["label"] for run in results["models"]["digits"]["runs"]] == ["DDIM 10", "DDIM 4", "DDPM"]
    assert [run["label"] for run in results["models"]["digits-flow"]["runs"]] == ["Euler 10", "Heun 5", "Euler 4",
                                                                                  "Heun 2"]
    assert results["models"]["video-shapes"]["runs"][0]["seconds"] > 0


def test_checkpoint_files_named_on_the_command_line_are_measured_the_same(quick_run):
    out = quick_run["out"]
    code, text = run([*QUICK_ARGS, "--out", str(out / "again"), "--no-ddpm",
                      "--digits-checkpoint", str(out / "sampling-smoke-quick-digits.pt"),
                      "--video-checkpoint", str(out / "sampling-smoke-quick-video-shapes.pt"),
                      "--digits-flow-checkpoint", str(out / "sampling-smoke-quick-digits-flow.pt"),
                      "--video-flow-checkpoint", str(out / "sampling-smoke-quick-video-shapes-flow.pt")])
    assert code == 0
    quality = ("FID ↓", "judge accuracy", "FVD ↓", "motion pass", "consistent")
    before = [(r["model"], r["sampler"], *(r[c] for c in quality)) for r in parse_table(quick_run["text"])[1]
              if r["sampler"] != "DDPM"]
    after = parse_table(text)[1]
    assert [(r["model"], r["sampler"], *(r[c] for c in quality)) for r in after] == before
    assert all(row["trained"].startswith("2 of ") for row in after if row["sampler"] != "real data (the floor)")


def test_missing_models_read_not_trained(tmp_path):
    config = SamplingBenchConfig(preset=SMOKE, checkpoints=str(tmp_path / "empty"), out=str(tmp_path), progress=False)
    table = sampling_benchmark(config)
    assert [(row[0], row[-1]) for row in table.rows] == [
        (f"{task} {model}{flow}", "not trained") for task, model in (("digits", "unet2d"), ("video-shapes", "unet3d"))
        for flow in ("", " (flow matching)")]
    assert all("not trained" in line for line in table.verdicts)


def test_the_image_benchmarks_digits_model_is_used_when_the_folder_has_none(quick_run, tmp_path):
    shutil.copy(quick_run["out"] / "sampling-smoke-quick-digits.pt", tmp_path / "image-smoke.pt")
    preset = SMOKE.replace(num_diffusion_steps=QUICK["num_diffusion_steps"])
    config = SamplingBenchConfig(preset=preset, tasks=("digits",), objectives=("eps",), ddim_steps=(2,), samples=2,
                                 ddpm=False,
                                 checkpoints=str(tmp_path / "empty"), out=str(tmp_path), progress=False)
    table = sampling_benchmark(config)
    assert [row[1] for row in table.rows] == ["real data (the floor)", "DDIM 2"]
    assert table.rows[-1][-1].endswith("(image-smoke.pt)") and table.rows[-1][-1].startswith("2 of ")


def test_train_minutes_trains_a_missing_checkpoint_into_the_folder(tmp_path):
    recipe = get_recipe("toy-moons", "smoke", steps=3)
    missing = trained_model(recipe, tmp_path, "cpu")
    assert missing.trainer is None and missing.status == "not trained"
    trained = trained_model(recipe, tmp_path, "cpu", train_minutes=1.0)
    assert zoo.checkpoint_path(recipe, folder=tmp_path).exists()
    assert trained.trainer.step == 3 and trained.status.startswith("3 steps") and trained.model is not None


def run_of(label, steps, seconds, score):
    return SamplerRun(label, steps, 10, seconds, 1.0, None if score is None else {"FID": score})


def test_flow_findings_set_ddim_beside_the_solvers_within_as_many_calls():
    from course_lib.workshop.bench.sampling import flow_findings

    def scored(label, calls, fid, accuracy):
        return SamplerRun(label, calls, 10, 1.0, 1.0, {"FID": fid, "accuracy": accuracy})

    ddims = [scored("DDIM 20", 20, 14.0, 0.9), scored("DDIM 10", 10, 20.0, 0.8)]
    flows = [scored("Euler 20", 20, 12.0, 0.92), scored("Heun 10", 19, 11.0, 0.95),
             scored("Euler 10", 10, 18.0, 0.85), scored("Heun 5", 9, 15.0, 0.9)]
    assert flow_findings("digits", ddims, flows) == [
        "digits within 20 network calls: FID DDIM 20 14, Euler 20 12, Heun 10 11; "
        "accuracy DDIM 20 90.0%, Euler 20 92.0%, Heun 10 95.0%",
        "digits within 10 network calls: FID DDIM 10 20, Euler 10 18, Heun 5 15; "
        "accuracy DDIM 10 80.0%, Euler 10 85.0%, Heun 5 90.0%"]
    assert flow_findings("digits", ddims, []) == []


def test_findings_compare_the_fewest_ddim_steps_with_ddpm_and_the_most_steps():
    runs = [run_of("DDIM 50", 50, 5.0, 10.0), run_of("DDIM 10", 10, 1.0, 14.0), run_of("DDPM", 1000, 100.0, None)]
    (line,) = sampling_findings("digits", runs)
    assert line == "digits: DDIM 10 takes 0.1 s/sample, 100x faster than DDPM (1000 steps); FID 14 at 10 steps vs 10 at 50"
    assert sampling_findings("digits", runs[-1:]) == []


@pytest.mark.parametrize("changes, message", [
    ({"samples": 1}, "samples: expected an int >= 2"),
    ({"ddim_steps": (0,)}, r"ddim_steps: expected one or more ints in \[1, 1000\]"),
    ({"ddim_steps": (2000,)}, "ddim_steps: expected one or more ints"),
    ({"tasks": ("digits", "digits")}, "tasks: expected distinct names among digits, video-shapes"),
    ({"tasks": ("toy-moons",)}, "tasks: expected distinct names"),
    ({"objectives": ("v",)}, "objectives: expected distinct names among eps, flow"),
    ({"objectives": ()}, "objectives: expected distinct names among eps, flow"),
    ({"digits_flow_checkpoint": "nope.pt"}, "digits_flow_checkpoint: expected an existing checkpoint file"),
    ({"ddpm_samples": 0}, "ddpm_samples: expected a positive int"),
    ({"batch": 0}, "batch: expected a positive int"),
    ({"train_minutes": 0}, "train_minutes: expected a number in"),
    ({"video_checkpoint": "nope.pt"}, "video_checkpoint: expected an existing checkpoint file, got 'nope.pt'"),
    ({"digits_checkpoint": "nope.pt"}, "digits_checkpoint: expected an existing checkpoint file"),
    ({"preset": "smoke"}, "preset: expected a course_lib.config.Preset"),
])
def test_bad_config_names_the_argument(changes, message):
    with pytest.raises(ValueError, match=message):
        SamplingBenchConfig(**{"preset": SMOKE, **changes})


def test_bad_command_lines_exit_with_2_and_name_the_argument(quick_run, tmp_path, capsys):
    assert bench.main(["sampling", "--ddim-steps", "0"]) == 2
    assert "argument --ddim-steps: expected a positive whole number" in capsys.readouterr().err
    assert bench.main([*QUICK_ARGS, "--ddim-steps", "60"]) == 2  # the quick run's chain has 50 steps
    assert "ddim_steps: expected one or more ints in [1, 50]" in capsys.readouterr().err
    assert bench.main([*QUICK_ARGS, "--samples", "1"]) == 2
    assert "samples: expected an int >= 2" in capsys.readouterr().err
    video = quick_run["out"] / "sampling-smoke-quick-video-shapes.pt"
    assert bench.main([*QUICK_ARGS, "--out", str(tmp_path), "--tasks", "digits", "--digits-checkpoint", str(video)]) == 2
    assert "digits_checkpoint: expected a checkpoint of task 'digits'" in capsys.readouterr().err


# --- all: every benchmark in one run -----------------------------------------------------------------

def test_all_quick_runs_every_benchmark_and_prints_every_table_in_order(tmp_path):
    code, text = run(["all", "--quick", "--preset", "smoke", "--out", str(tmp_path), "--quiet", "--threads", "1"])
    assert code == 0
    titles = [section.splitlines()[0] for section in tables(text)]
    assert [title.split()[1] for title in titles] == ["Image", "Video", "Sampling", "Prediction", "Training"]
    for name in bench.ALL_ORDER:
        table_file = tmp_path / f"{name}-smoke-quick.md"
        assert table_file.read_text().strip() in text, name
    assert (tmp_path / "all-smoke-quick.md").read_text().strip() == text.strip()
    assert text.index("image: ") < text.index("### Image")  # how long each took, at the top


def namespace(**changes) -> argparse.Namespace:
    args = dict(out="o", seed=0, checkpoints="ck", quick=True, quiet=False, preset="cpu", device=None, threads=None,
                train_minutes=2.5)
    return argparse.Namespace(**{**args, **changes})


def test_all_passes_on_only_the_options_each_benchmark_takes():
    parser = bench.build_parser()
    video, extra = parser.parse_known_args(bench._argv_for("video", namespace()))
    assert (video.checkpoints, video.train_minutes, video.quick, video.preset, video.out) == ("ck", 2.5, True, "cpu", "o")
    assert extra == []
    image, extra = parser.parse_known_args(bench._argv_for("image", namespace(threads=1)))
    assert image.minutes is None and image.threads == 1 and not hasattr(image, "checkpoints")
    assert extra == ["--checkpoints", "ck", "--train-minutes", "2.5"]
    assert bench.main(["all", "--skip", "nothing"]) == 2


def test_a_run_of_some_tasks_keeps_its_own_record_and_the_command_is_recorded_as_typed(monkeypatch):
    from course_lib.workshop.bench.common import command_line

    assert SamplingBenchConfig(preset=SMOKE).name == "sampling-smoke"
    assert SamplingBenchConfig(preset=SMOKE, tasks=("digits",)).name == "sampling-smoke-digits"
    for argv in (["-m", "bench", "sampling", "--quick"], ["-m", "sampling", "--quick"]):  # course_lib / its bench
        monkeypatch.setattr("sys.argv", argv)
        assert command_line() == "python -m course_lib bench sampling --quick"
