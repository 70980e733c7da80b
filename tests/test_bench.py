"""``python -m course_lib bench image``: the quick image benchmark runs end to end and prints a well-formed table."""
import json
import math

import pytest
import torch

from course_lib.workshop.bench import __main__ as bench, image as bench_image
from course_lib.workshop.bench.common import Stopwatch, Table
from course_lib.config import get_preset
from course_lib.workshop.recipes import get_recipe
from _exercise_checks import number, parse_table

NUMERIC = ("steps", "seconds", "steps/s", "CPU share", "speed-up vs DDPM", "IS ↑", "FID ↓", "judge accuracy")


@pytest.fixture(scope="module")
def quick_run(run_bench):
    return run_bench("image", "--preset", "smoke", "--threads", "1")


def test_quick_image_bench_prints_one_table_with_finite_numbers(quick_run):
    assert quick_run["code"] == 0
    columns, rows = parse_table(quick_run["text"])
    assert tuple(columns) == bench_image.IMAGE_COLUMNS
    stages = [row["stage"] for row in rows]
    steps = [s for s in bench_image.QUICK["ddim_steps"] for _ in bench_image.IMAGE_DDIM_ETAS]
    assert stages == ["training, from scratch", "real digits (held-out fonts)", "DDPM",
                      *(label for s in bench_image.QUICK["ddim_steps"] for label in (f"DDIM {s}", f"DDIM {s}, η = 1"))]
    for row in rows:
        for column in NUMERIC:
            value = number(row[column])
            assert value is None or math.isfinite(value), (row["stage"], column, row[column])
    training, real, ddpm, *ddims = rows
    assert int(training["steps"]) == bench_image.QUICK["train_steps"] and number(training["steps/s"]) > 0
    assert int(ddpm["steps"]) == bench_image.QUICK["num_diffusion_steps"] and number(ddpm["speed-up vs DDPM"]) == 1.0
    for row, s in zip(ddims, steps):
        assert int(row["steps"]) == s
    for row in (real, ddpm, *ddims):  # IS lies in [1, 10], accuracy in [0, 1], FID >= 0
        assert 1 <= number(row["IS ↑"]) <= 10 and number(row["FID ↓"]) >= 0 and 0 <= number(row["judge accuracy"]) <= 1
    # real digits are read far better than samples of a model trained for 4 steps
    assert number(real["judge accuracy"]) > 0.8 and number(real["FID ↓"]) < number(ddpm["FID ↓"])
    assert "targets not judged" in quick_run["text"]


def test_results_are_written_as_markdown_and_json(quick_run):
    out = quick_run["out"]
    assert (out / "image-smoke-quick.md").read_text().strip() in quick_run["text"]
    results = json.loads((out / "image-smoke-quick.json").read_text())
    assert [row["stage"] for row in results["rows"]] == [row["stage"] for row in parse_table(quick_run["text"])[1]]
    assert results["samplers"]["DDPM"]["seconds"] > 0 and (out / "image-smoke-quick.pt").exists()


def test_a_saved_checkpoint_is_measured_without_training_and_ddpm_can_be_skipped(quick_run, capsys):
    checkpoint = quick_run["out"] / "image-smoke-quick.pt"
    code = bench.main(["image", "--quick", "--preset", "smoke", "--out", str(quick_run["out"] / "again"), "--quiet",
                       "--threads", "1", "--checkpoint", str(checkpoint), "--no-ddpm", "--ddim-steps", "5",
                       "--ddim-eta", "0"])
    assert code == 0
    text = capsys.readouterr().out
    _, rows = parse_table(text)
    assert [row["stage"] for row in rows] == ["training (loaded)", "real digits (held-out fonts)", "DDIM 5"]
    assert "training budget (loaded checkpoint)" in text, "a loaded model has no training budget"
    assert int(rows[0]["steps"]) == bench_image.QUICK["train_steps"] and rows[2]["speed-up vs DDPM"] == "–"


def test_table_markdown_formats_cells():
    table = Table("t", ("name", "x", "share"), rows=[("a", 1.23456, 0.5), ("b", None, None)],
                        formats={"x": ".2f", "share": ".0%"}, notes=["a note"], verdicts=["✓ fine"])
    text = table.to_markdown()
    assert "| a | 1.23 | 50% |" in text and "| b | – | – |" in text
    assert text.index("a note") < text.index("| name |") < text.index("✓ fine")
    assert table.as_dicts()[0] == {"name": "a", "x": 1.23456, "share": 0.5}


def test_verdicts_compare_the_measured_numbers_with_the_targets():
    config = bench_image.ImageBenchConfig(preset=get_preset("smoke"), samples=500, ddim_etas=(0.0,))
    good = {"DDIM 50": {"accuracy": 0.95, "FID": 11.0}, "DDPM": {"accuracy": 0.96, "FID": 10.0}}
    lines = bench_image._verdicts(config, good, {"DDIM 50": 10.0, "DDPM": 200.0})
    assert [line[0] for line in lines] == ["✓", "✓", "✓"]
    bad = {"DDIM 50": {"accuracy": 0.85, "FID": 12.0}, "DDPM": {"accuracy": 0.9, "FID": 10.0}}
    lines = bench_image._verdicts(config, bad, {"DDIM 50": 20.0, "DDPM": 200.0})
    assert [line[0] for line in lines] == ["✗", "✗", "✗"]
    assert "not measured" in bench_image._verdicts(config, {"DDIM 50": good["DDIM 50"]}, {"DDIM 50": 1.0})[-1]
    few = bench_image.ImageBenchConfig(preset=get_preset("smoke"), samples=100, ddim_etas=(0.0,))
    assert "not judged" in bench_image._verdicts(few, good, {"DDIM 50": 10.0, "DDPM": 200.0})[0]


def test_the_fid_and_speed_targets_are_judged_for_each_eta():
    config = bench_image.ImageBenchConfig(preset=get_preset("smoke"), samples=500, ddim_etas=(0.0, 1.0))
    scores = {"DDIM 50": {"accuracy": 0.95, "FID": 18.0}, "DDIM 50, η = 1": {"accuracy": 0.99, "FID": 9.0},
              "DDPM": {"accuracy": 0.96, "FID": 10.0}}
    lines = bench_image._verdicts(config, scores, {"DDIM 50": 10.0, "DDIM 50, η = 1": 11.0, "DDPM": 200.0})
    assert [line[0] for line in lines] == ["✓", "✗", "✓", "✓", "✓"]
    assert "DDIM 50 / FID DDPM = 1.800" in lines[1] and "DDIM 50, η = 1 / FID DDPM = 0.900" in lines[3]
    assert bench_image.ddim_label(20, 0.0) == "DDIM 20" and bench_image.ddim_label(20, 0.5) == "DDIM 20, η = 0.5"


def test_an_eta_row_samples_with_fresh_noise(quick_run):
    """η = 1 changes the samples (DDIM's noise term is used), η = 0 reproduces them from the same start."""
    results = json.loads((quick_run["out"] / "image-smoke-quick.json").read_text())
    runs = results["samplers"]
    steps = bench_image.QUICK["ddim_steps"][0]
    assert runs[f"DDIM {steps}"]["FID"] != runs[f"DDIM {steps}, η = 1"]["FID"]


def test_stopwatch_measures_wall_and_cpu_time():
    with Stopwatch() as watch:
        torch.randn(300, 300) @ torch.randn(300, 300)
    assert watch.wall > 0 and watch.cpu > 0 and 0 < watch.cpu_share <= 1.5


@pytest.mark.parametrize("changes, argument", [
    ({"samples": 1}, "samples"),
    ({"ddim_steps": (0,)}, "ddim_steps"),
    ({"ddim_steps": ()}, "ddim_steps"),
    ({"ddim_etas": ()}, "ddim_etas"),
    ({"ddim_etas": (1.5,)}, "ddim_etas"),
    ({"ddim_etas": (True,)}, "ddim_etas"),
    ({"minutes": None, "train_steps": None}, "minutes"),
    ({"minutes": -1.0}, "minutes"),
    ({"train_steps": 0}, "train_steps"),
    ({"guidance_scale": -0.5}, "guidance_scale"),
    ({"batch": 0}, "batch"),
    ({"idle_minutes": 0.0, "minutes": None}, "idle_minutes"),
    ({"idle_minutes": 1.0, "minutes": 5.0}, "minutes"),
    ({"preset": "cpu"}, "preset"),
    ({"lr": 0.0}, "lr"),
])
def test_bad_config_names_the_argument(changes, argument):
    with pytest.raises(ValueError, match=rf"^{argument}: expected"):
        bench_image.ImageBenchConfig(**{"preset": get_preset("smoke"), **changes})


def test_bad_command_lines_exit_with_code_2(capsys):
    assert bench.main(["image", "--minutes", "0"]) == 2
    assert "--minutes" in capsys.readouterr().err
    assert bench.main(["image", "--guidance", "-1"]) == 2
    assert "--guidance" in capsys.readouterr().err
    assert bench.main(["image", "--ddim-eta", "2"]) == 2
    assert "--ddim-eta" in capsys.readouterr().err
    assert bench.main(["nonsense"]) == 2
    assert bench.main(["image", "--quick", "--preset", "smoke", "--samples", "1", "--quiet"]) == 2
    assert "samples: expected an int >= 2" in capsys.readouterr().err


def test_a_checkpoint_of_another_preset_is_refused(quick_run, capsys):
    checkpoint = quick_run["out"] / "image-smoke-quick.pt"
    code = bench.main(["image", "--preset", "cpu", "--checkpoint", str(checkpoint), "--quiet", "--samples", "2",
                       "--out", str(quick_run["out"] / "other")])
    assert code == 2
    assert "checkpoint: expected a checkpoint of the digits recipe at preset 'cpu'" in capsys.readouterr().err


def test_an_idle_machine_budget_stops_training_on_cpu_time(tmp_path):
    """--idle-minutes: training stops on this process's CPU time (idle minutes x threads), not on wall time."""
    preset = get_preset("smoke").replace(num_diffusion_steps=bench_image.QUICK["num_diffusion_steps"])
    spent = bench_image.ImageBenchConfig(preset=preset, minutes=None, idle_minutes=1e-6, train_steps=50,
                                         out=str(tmp_path), progress=False)
    trainer, watch = bench_image._train(spent, get_recipe("digits", preset), torch.device("cpu"))
    assert 0 <= trainer.step < 50 and watch.cpu > 0
    roomy = bench_image.ImageBenchConfig(preset=preset, minutes=None, idle_minutes=60.0, train_steps=3,
                                         out=str(tmp_path / "roomy"), progress=False)
    trainer, _ = bench_image._train(roomy, get_recipe("digits", preset), torch.device("cpu"))
    assert trainer.step == 3  # the step cap ends it before the budget


def test_idle_minutes_and_minutes_are_not_given_together(capsys):
    with pytest.raises(SystemExit, match="--minutes and --idle-minutes"):
        bench.main(["image", "--minutes", "1", "--idle-minutes", "1", "--preset", "smoke", "--quick"])


def test_precision_and_lr_reach_the_recipe_and_the_notes(tmp_path, capsys):
    code = bench.main(["image", "--quick", "--preset", "smoke", "--out", str(tmp_path), "--quiet", "--threads", "1",
                       "--no-ddpm", "--precision", "bf16", "--lr", "0.002"])
    text = capsys.readouterr().out
    assert code == 0 and "lr 0.002, bf16;" in text
    from course_lib.workshop.zoo import read_recipe

    recipe, _ = read_recipe(tmp_path / "image-smoke-quick.pt")
    assert recipe.lr == 0.002 and recipe.preset.precision == "bf16"
    assert bench.main(["image", "--quick", "--precision", "fp8"]) == 2
    assert "--precision: invalid choice" in capsys.readouterr().err


def test_one_command_line_routes_bench_notebooks_and_the_learners_commands(capsys):
    from course_lib.__main__ import main

    assert main(["bench", "image", "--minutes", "0"]) == 2
    assert "python -m course_lib bench image: error: argument --minutes" in capsys.readouterr().err
    assert main(["bench", "quality", "--task", "digits"]) == 2
    assert "python -m course_lib bench quality: error: argument --task: invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["notebooks", "nonsense"])
    assert exit.value.code == 2 and "python -m course_lib notebooks: error" in capsys.readouterr().err
    assert main(["train", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
