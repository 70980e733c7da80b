"""``python -m course_lib bench training``: the quick run prints one well-formed table and writes its files."""
import json

import pytest
import torch

from course_lib.workshop.bench import __main__ as bench, training as bench_training
from course_lib.workshop.bench.training import QUICK_SETTINGS, TASKS, TRAINING_COLUMNS, TrainingBenchConfig, measure_settings
from course_lib.config import get_preset
from course_lib.workshop.recipes import get_recipe
from _exercise_checks import number, parse_table


@pytest.fixture(scope="module")
def quick_run(run_bench):
    threads = torch.get_num_threads()
    return {**run_bench("training"), "threads_after": torch.get_num_threads(), "threads_before": threads}


def test_quick_training_bench_prints_every_setting_of_every_model(quick_run):
    assert quick_run["code"] == 0
    assert quick_run["threads_after"] == quick_run["threads_before"]  # 1 thread while measuring, then restored
    assert "with 1 thread(s)" in quick_run["text"] and "load average" in quick_run["text"]
    columns, rows = parse_table(quick_run["text"])
    assert tuple(columns) == TRAINING_COLUMNS
    assert [(row["model"].split()[0], row["setting"]) for row in rows] == [
        (task, setting) for task in TASKS for setting in QUICK_SETTINGS]
    for row in rows:
        steps_per_s, ms = number(row["steps/s"]), number(row["ms/step"])
        assert steps_per_s > 0 and ms == pytest.approx(1000 / steps_per_s, rel=0.02, abs=1)
        assert number(row["first step s"]) >= 0 and number(row["memory MiB"]) >= 0  # rounded: 0.00 is possible
    assert {row["vs fp32"] for row in rows if row["setting"] == "fp32"} == {"1.00"}


def test_quick_training_bench_writes_markdown_and_json(quick_run):
    out = quick_run["out"]
    assert (out / "training-cpu-quick.md").read_text().strip() in quick_run["text"]
    results = json.loads((out / "training-cpu-quick.json").read_text())
    assert results["threads"] == 1 and len(results["rows"]) == len(TASKS) * len(QUICK_SETTINGS)
    assert [(t["task"], t["setting"]) for t in results["timings"]] == [
        (task, setting) for task in TASKS for setting in QUICK_SETTINGS]
    for row, timing in zip(results["rows"], results["timings"]):
        assert len(timing["wall_s"]) == len(timing["cpu_s"]) == bench_training.QUICK["steps"] and row["steps/s"] > 0
        assert row["first step s"] > 0  # unrounded here


def test_measure_settings_trains_one_trainer_per_setting_interleaved():
    preset = get_preset("smoke").replace(num_diffusion_steps=50, video_size=16, video_frames=3,
                                         video_base_channels=8, video_batch_size=2)
    timings, memory = measure_settings(get_recipe("video-shapes", preset), ("fp32", "bf16"), steps=2)
    assert list(timings) == ["fp32", "bf16"] and all(len(t.wall_s) == 2 for t in timings.values())
    assert memory["bf16"] < memory["fp32"]  # bf16 autocast keeps smaller activations


def test_bad_benchmark_arguments_are_named(capsys):
    with pytest.raises(ValueError, match=r"^settings: expected distinct names among fp32, bf16, compile"):
        TrainingBenchConfig(preset=get_preset("smoke"), settings=("fp32", "fp8"))
    with pytest.raises(ValueError, match=r"^tasks: expected one or more of digits, video-shapes, got \('toy-moons',\)"):
        TrainingBenchConfig(preset=get_preset("smoke"), tasks=("toy-moons",))
    assert bench.main(["training", "--settings", "fp8"]) == 2
    assert "argument --settings: invalid choice: 'fp8'" in capsys.readouterr().err
