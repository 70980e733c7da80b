"""``python -m course_lib bench video``: the quick run prints a well-formed table; its helpers measure what they say."""
import json
import math

import pytest
import torch

from course_lib.workshop.bench import __main__ as bench, video as bench_video
from course_lib.workshop.bench.video import (
    QUICK,
    StepMeasurement,
    VideoBenchConfig,
    build_video_model,
    measure_train_step,
    step_time_verdicts,
    video_benchmark,
)
from course_lib.metrics.video import sample_in_batches, score_samples
from course_lib.config import get_preset
from course_lib.models.inspect import count_parameters
from course_lib.workshop.recipes import get_recipe
from _exercise_checks import number, parse_table

SMOKE = get_preset("smoke")


@pytest.fixture(scope="module")
def quick_run(run_bench):
    return run_bench("video", "--preset", "smoke", "--threads", "1")


def test_quick_video_bench_prints_one_table_with_every_model_and_shape(quick_run):
    assert quick_run["code"] == 0
    columns, rows = parse_table(quick_run["text"])
    assert tuple(columns) == bench_video.VIDEO_COLUMNS
    steps = [(shape, model) for shape in QUICK["shapes"] for model in bench_video.MODELS]
    assert [(row["model"], row["measured on"]) for row in rows[:4]] == [
        (model, f"train step {shape}") for shape, model in steps]
    for row, (shape, model) in zip(rows[:4], steps):
        assert int(row["params"]) == count_parameters(build_video_model(model, shape, SMOKE))
        assert number(row["step s"]) > 0 and number(row["peak MB"]) >= 0
    real, *samples = rows[4:]
    assert real["model"] == "real clips" and [row["model"] for row in samples] == list(bench_video.MODELS)
    for row in (real, *samples):
        assert math.isfinite(number(row["FVD ↓"])) and number(row["FVD ↓"]) >= 0
        assert all(0 <= number(row[part]) <= 1 for part in ("present", "motion", "look kept", "consistent"))
        assert number(row["consistent"]) <= min(number(row[part]) for part in ("present", "motion", "look kept"))
    for row in samples:
        assert row["trained"] == f"{QUICK['train_steps']} steps (quick)" and number(row["sampling s/batch"]) > 0
        # real clips show one object moving and keeping its look; a model trained for 2 steps samples noise
        assert number(row["consistent"]) < number(real["consistent"]) == 1.0
    assert "target not judged" in quick_run["text"]


def test_results_are_written_as_markdown_and_json(quick_run):
    out = quick_run["out"]
    assert (out / "video-smoke-quick.md").read_text().strip() in quick_run["text"]
    results = json.loads((out / "video-smoke-quick.json").read_text())
    assert [row["model"] for row in results["rows"]] == [row["model"] for row in parse_table(quick_run["text"])[1]]
    assert len(results["steps"]) == 4 and all(step["median_s"] > 0 for step in results["steps"])
    assert results["samples"]["unet3d"]["n"] == QUICK["samples"]


def test_measure_train_step_counts_the_recipes_model_and_times_it():
    m = measure_train_step("conv_lstm", (1, 2, 1, 8, 8), SMOKE, steps=1, warmup=0)
    assert m.params == count_parameters(build_video_model("conv_lstm", (1, 2, 1, 8, 8), SMOKE))
    assert m.median_s > 0 and m.threads == torch.get_num_threads() and m.device == "cpu"
    # C picks the recipe: RGB clips are the (unconditional) shapes, grey ones the class-conditional digits
    rgb = build_video_model("unet3d", (1, 2, 3, 16, 16), SMOKE)
    grey = build_video_model("unet3d", (1, 2, 1, 16, 16), SMOKE)
    assert (rgb.conv_in.in_channels, rgb.conv_out.out_channels) == (3, 3)
    assert (grey.conv_in.in_channels, grey.conv_out.out_channels) == (1, 1)
    assert rgb.label_embedding is None and grey.num_classes == 10
    width = rgb.conv_in.out_channels
    extra_io = 2 * (2 * width * 3 * 3) + 2  # conv_in and conv_out: two more channels each, two more biases
    labels = count_parameters(grey.label_embedding)
    assert count_parameters(rgb) - count_parameters(grey) == extra_io - labels


def _measurement(params: int, seconds: float, shape=bench_video.TARGET_SHAPE) -> StepMeasurement:
    return StepMeasurement("unet3d", shape, params, seconds, seconds, 0.9, None, "-", 2, "cpu")


@pytest.mark.parametrize("params, seconds, mark", [(2_440_000, 0.3, "✓"), (2_440_000, 0.8, "✗"), (1_500_000, 0.3, "✗")])
def test_the_step_time_target_needs_both_the_size_and_the_speed(params, seconds, mark):
    config = VideoBenchConfig(preset=SMOKE)
    (verdict,) = step_time_verdicts(config, [_measurement(params, seconds)])
    assert verdict.startswith(mark) and f"{seconds:.3f} s" in verdict


def test_the_target_is_not_judged_elsewhere():
    config = VideoBenchConfig(preset=SMOKE, shapes=((1, 2, 1, 8, 8),))
    (verdict,) = step_time_verdicts(config, [_measurement(2_440_000, 0.3, shape=(1, 2, 1, 8, 8))])
    assert "not judged" in verdict


def tiny_shapes_recording_batch_sizes():
    """(recipe, model, sizes): a tiny shapes recipe (batch 2, 3 frames of 16x16) whose ``sample`` appends
    each call's batch size to ``sizes``."""
    recipe = get_recipe("video-shapes", SMOKE.replace(video_batch_size=2, video_size=16, video_frames=3,
                                                      num_diffusion_steps=20, sample_steps=2, video_base_channels=8))
    model, sizes = recipe.build_model().eval(), []
    sample = recipe.sample
    object.__setattr__(recipe, "sample", lambda m, size, **kwargs: sizes.append(size) or sample(m, size, **kwargs))
    return recipe, model, sizes


def test_sample_in_batches_draws_n_clips_batch_by_batch_the_same_for_a_seed():
    recipe, model, sizes = tiny_shapes_recording_batch_sizes()
    clips, seconds = sample_in_batches(recipe, model, 5, seed=3)
    assert clips.shape == (5, 3, recipe.channels, 16, 16) and sizes == [2, 2, 1] and seconds > 0
    assert clips.abs().max() <= 1
    assert torch.equal(sample_in_batches(recipe, model, 5, seed=3)[0], clips)
    assert not torch.equal(sample_in_batches(recipe, model, 5, seed=4)[0], clips)
    ddpm, _ = sample_in_batches(recipe, model, 2, seed=3, sampler="ddpm")  # sample_kwargs reach recipe.sample
    assert ddpm.shape == (2, 3, recipe.channels, 16, 16) and not torch.equal(ddpm, clips[:2])


def test_sample_in_batches_takes_its_own_batch_size_and_refuses_a_bad_one():
    recipe, model, sizes = tiny_shapes_recording_batch_sizes()
    clips, _ = sample_in_batches(recipe, model, 7, seed=3, batch_size=3)
    assert clips.shape[0] == 7 and sizes == [3, 3, 1]
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match=r"batch_size: expected a positive int"):
            sample_in_batches(recipe, model, 2, batch_size=bad)
    with pytest.raises(ValueError, match=r"n: expected a positive int"):
        sample_in_batches(recipe, model, 0)


def test_sample_in_batches_asks_moving_digits_for_0_to_9_across_batches():
    recipe = get_recipe("video-digits", SMOKE.replace(video_batch_size=4, video_size=16, video_frames=3,
                                                      num_diffusion_steps=20, sample_steps=2, video_base_channels=8))
    model, asked = recipe.build_model().eval(), []
    sample = recipe.sample
    object.__setattr__(recipe, "sample", lambda m, size, **kwargs: asked.append(kwargs["labels"].tolist())
                       or sample(m, size, **kwargs))
    clips, _ = sample_in_batches(recipe, model, 11, seed=3, guidance_scale=2.0)
    assert clips.shape == (11, 3, 1, 16, 16) and asked == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0]]


def test_missing_checkpoints_read_not_trained_and_no_judge_is_trained(tmp_path):
    config = VideoBenchConfig(preset=SMOKE, shapes=((1, 2, 1, 8, 8),), models=("conv_lstm",), steps=1, warmup=0,
                              checkpoints=str(tmp_path / "empty"), out=str(tmp_path), progress=False)
    table = video_benchmark(config, judge="not a judge: any use of it fails")
    models = [row[0] for row in table.rows]
    assert models == ["conv_lstm", "conv_lstm"] and table.rows[-1][-1] == "not trained"


def test_train_minutes_trains_a_missing_checkpoint_and_it_is_then_loaded(tmp_path):
    preset = SMOKE.replace(num_diffusion_steps=20, sample_steps=2)
    config = VideoBenchConfig(preset=preset, shapes=((1, 2, 1, 8, 8),), models=("conv_lstm",), steps=1, warmup=0,
                              samples=2, checkpoints=str(tmp_path / "ckpt"), train_minutes=0.002, out=str(tmp_path),
                              judge_changes=bench_video.QUICK_JUDGE_CHANGES, progress=False)
    table = video_benchmark(config)
    assert [row[0] for row in table.rows] == ["conv_lstm", "real clips", "conv_lstm"]
    assert "steps" in table.rows[-1][-1] and table.rows[-1][6] > 0
    assert list((tmp_path / "ckpt").glob("video-shapes-conv_lstm-smoke-*.pt"))


@pytest.mark.parametrize("call, message", [
    (lambda: build_video_model("unet3d", (8, 8, 2, 32, 32), SMOKE), "shape: expected clips with C = 1"),
    (lambda: build_video_model("unet3d", (8, 8, 1, 32), SMOKE), r"shape: expected 5 positive ints"),
    (lambda: build_video_model("unet3d", (8, 8, 1, 32, 16), SMOKE), "shape: expected square frames"),
    (lambda: build_video_model("lstm", (8, 8, 1, 32, 32), SMOKE), "model: expected one of"),
    # frames the U-Net cannot halve three times: its own check names the input
    (lambda: measure_train_step("unet3d", (1, 2, 1, 20, 20), SMOKE, steps=1, warmup=0),
     "x: expected height and width divisible by 8"),
    (lambda: measure_train_step("unet3d", (1, 2, 1, 16, 16), SMOKE, steps=0), "steps: expected a positive int"),
    (lambda: measure_train_step(3, (1, 2, 1, 16, 16), SMOKE), "model: expected one of"),
    (lambda: VideoBenchConfig(preset=SMOKE, samples=1), "samples: expected an int >= 2"),
    (lambda: VideoBenchConfig(preset=SMOKE, models=("unet2d",)), "models: expected one of"),
    (lambda: VideoBenchConfig(preset=SMOKE, task="digits"), "task: expected one of"),
    (lambda: VideoBenchConfig(preset="smoke"), "preset: expected a course_lib.config.Preset"),
    (lambda: VideoBenchConfig(preset=SMOKE, train_minutes=0), "train_minutes: expected"),
    (lambda: score_samples(get_recipe("video-shapes", SMOKE, model="conv_lstm"), torch.nn.Identity(), 1, None),
     "n: expected at least 2 clips"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_command_line_arguments_exit_with_2(capsys):
    assert bench.main(["video", "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err
    assert bench.main(["video", "--models", "unet2d"]) == 2


def test_a_busy_machine_gets_an_idle_estimate_but_the_verdict_uses_the_measured_time():
    config = VideoBenchConfig(preset=SMOKE)
    busy = StepMeasurement("unet3d", bench_video.TARGET_SHAPE, 2_440_000, 1.0, 0.9, 0.4, None, "-", 1, "cpu")
    (verdict,) = step_time_verdicts(config, [busy])
    assert verdict.startswith("✗") and "about 0.40 s on an idle machine" in verdict
