"""``python -m course_lib``: every subcommand in-process on tiny sizes, bad arguments exit 2 without a traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

from course_lib import config
from course_lib.workshop.cli import main
from course_lib.metrics import judge
from course_lib.workshop.recipes import get_recipe
from course_lib.workshop.zoo import sidecar_path

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def tiny_smoke_preset(monkeypatch, tmp_path):
    """Shrink the smoke preset so that each command trains and samples in about a second; work in tmp_path."""
    tiny = config.PRESETS["smoke"].replace(
        num_diffusion_steps=50, sample_steps=2, toy_train_steps=4, toy_batch_size=32, image_base_channels=8,
        image_batch_size=4, image_train_steps=2, video_size=16, video_frames=3, video_base_channels=8,
        video_batch_size=2, video_train_steps=2, eval_samples=6)
    monkeypatch.setitem(config.PRESETS, "smoke", tiny)
    monkeypatch.chdir(tmp_path)


def run(argv, capsys):
    """(exit code, stdout, stderr) of main(argv)."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def train_toy(capsys, path="toy.pt", *extra):
    code, out, err = run(["train", "--task", "toy-moons", "--preset", "smoke", "--checkpoint", path, *extra], capsys)
    assert code == 0, err
    return out


def printed_continue_command(out: str) -> list[str]:
    """The arguments after "continue with: python -m course_lib" in ``out`` (its own line or in parentheses)."""
    return out.split("continue with: python -m course_lib ")[1].splitlines()[0].rstrip(")").split()


def test_python_dash_m_help_runs_in_a_real_process():
    root = Path(__file__).resolve().parents[1]  # this checkout's course_lib, whatever is installed
    env = {**os.environ, "COURSE_PRESET": "smoke", "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "course_lib", "--help"], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    for command in ("demo", "train", "sample", "eval", "export", "doctor"):
        assert command in result.stdout
    assert "examples:" in result.stdout and "python -m course_lib demo" in result.stdout


@pytest.mark.parametrize("command", ["demo", "train", "sample", "eval", "export", "doctor"])
def test_every_command_has_help_with_examples(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0 and "examples:" in out and f"python -m course_lib {command}" in out


def test_train_writes_a_checkpoint_that_resume_continues(capsys, tmp_path, monkeypatch):
    out = train_toy(capsys, "toy.pt", "--steps", "3")
    assert "finished: 3/3 steps" in out
    assert torch.load(tmp_path / "toy.pt", weights_only=True)["step"] == 3
    record = json.loads(sidecar_path(tmp_path / "toy.pt").read_text())
    assert record["recipe"]["task"] == "toy-moons" and record["steps"] == 3
    code, _, err = run(["train", "--task", "toy-moons", "--preset", "smoke", "--checkpoint", "toy.pt"], capsys)
    assert code == 2 and "--checkpoint: toy.pt already exists; add --resume" in err
    load, reads = torch.load, []
    monkeypatch.setattr(torch, "load", lambda file, **kwargs: reads.append(str(getattr(file, "name", file))) or load(file, **kwargs))
    out = train_toy(capsys, "toy.pt", "--steps", "5", "--resume")
    assert "Resuming toy.pt at step 3 of 5" in out and "finished: 5/5 steps" in out
    code, out, err = run(["train", "--checkpoint", "toy.pt", "--resume", "--steps", "6"], capsys)  # no --task
    assert code == 0 and "Resuming toy.pt at step 5 of 6" in out, err
    assert reads == ["toy.pt", "toy.pt"]  # the file is read once per resume, not again by the trainer
    monkeypatch.undo()
    assert torch.load(tmp_path / "toy.pt", weights_only=True)["step"] == 6


def test_train_without_a_checkpoint_uses_the_keyed_name(capsys, tmp_path):
    code, out, err = run(["train", "--task", "toy-moons", "--preset", "smoke", "--steps", "2"], capsys)
    assert code == 0, err
    files = list((tmp_path / "checkpoints").glob("toy-moons-mlp-smoke-*.pt"))
    assert len(files) == 1 and str(files[0].relative_to(tmp_path)) in out


def test_a_time_budget_stops_training_and_says_how_to_continue(capsys, tmp_path):
    code, out, _ = run(["train", "--task", "toy-moons", "--preset", "smoke", "--steps", "1000", "--minutes", "1e-9",
                        "--checkpoint", "cut.pt"], capsys)
    assert code == 0 and "stopped by --minutes: 0/1000 steps" in out
    continue_with = printed_continue_command(out)
    assert continue_with == ["train", "--checkpoint", "cut.pt", "--resume"]
    code, out, err = run([*continue_with, "--steps", "3"], capsys)  # the line as printed (a shorter target)
    assert code == 0 and "Resuming cut.pt at step 0 of 3" in out and "finished: 3/3 steps" in out, err
    state = torch.load(tmp_path / "cut.pt", weights_only=True)
    assert state["step"] == 3 and state["recipe"]["task"] == "toy-moons" and state["recipe"]["preset"]["name"] == "smoke"


@pytest.mark.parametrize("argv,message", [
    (["train", "--checkpoint", "toy.pt"], "--task: expected one of toy-moons, digits, video-shapes, video-digits, "
                                          "video-captions (only --checkpoint FILE --resume may leave it out"),
    (["train", "--resume"], "--task: expected one of"),
    (["train", "--checkpoint", "toy.pt", "--resume", "--preset", "smoke"],
     "--preset: expected no value when --task is left out (the checkpoint's recipe is resumed as it is), got smoke"),
    (["train", "--checkpoint", "toy.pt", "--resume", "--seed", "4"], "--seed: expected no value when --task is left out"),
    (["train", "--checkpoint", "missing.pt", "--resume"], "--checkpoint: no such file: missing.pt"),
])
def test_resuming_without_a_task_needs_the_checkpoint_and_nothing_that_would_change_it(argv, message, capsys):
    train_toy(capsys, "toy.pt", "--steps", "1")
    code, out, err = run(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err + out


@pytest.mark.parametrize("argv,message", [
    (["train", "--task", "cats"], "argument --task: invalid choice: 'cats'"),
    (["train", "--task", "toy-moons", "--steps", "-3"], "argument --steps: expected a positive whole number, got '-3'"),
    (["train", "--task", "toy-moons", "--minutes", "0"], "argument --minutes: expected a number of minutes > 0"),
    (["train", "--task", "video-shapes", "--model", "mlp", "--preset", "smoke"],
     "model: expected one of 'unet3d', 'conv_lstm', 'forcing', 'autoencoder', 'dit' for task 'video-shapes', got 'mlp'"),
    (["train", "--task", "toy-moons", "--preset", "huge"], "argument --preset: invalid choice: 'huge'"),
    (["sample", "--checkpoint", "missing.pt"], "--checkpoint: no such file: missing.pt"),
    (["eval", "--checkpoint", "missing.pt"], "--checkpoint: no such file: missing.pt"),
    (["sample"], "the following arguments are required: --checkpoint"),
    (["sample", "--checkpoint", "x.pt", "--n", "0"], "argument --n: expected a positive whole number, got '0'"),
    (["sample", "--checkpoint", "x.pt", "--sampler", "rk4"], "argument --sampler: invalid choice: 'rk4'"),
    (["fly"], "argument COMMAND: invalid choice: 'fly'"),
])
def test_bad_arguments_exit_2_with_a_clear_message(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err + out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_a_missing_device_exits_2(capsys):
    code, _, err = run(["train", "--task", "toy-moons", "--preset", "smoke", "--device", "cuda"], capsys)
    assert code == 2 and "device: expected an available device (CUDA is not available here; use 'cpu')" in err


def test_a_busy_machine_gets_one_thread_unless_told_otherwise(capsys, monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (99.0, 99.0, 99.0))
    torch.set_num_threads(2)
    out = train_toy(capsys, "a.pt", "--steps", "1", "--device", "cpu")
    assert torch.get_num_threads() == 1 and "this machine is busy (load 99.0" in out
    torch.set_num_threads(2)
    out = train_toy(capsys, "b.pt", "--steps", "1", "--device", "cpu", "--threads", "2")
    assert torch.get_num_threads() == 2 and "busy" not in out
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    out = train_toy(capsys, "c.pt", "--steps", "1", "--device", "cpu")
    assert torch.get_num_threads() == 2 and "busy" not in out
    torch.set_num_threads(1)


def test_foreign_and_corrupted_checkpoints_are_refused(capsys, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    code, _, err = run(["sample", "--checkpoint", "junk.pt"], capsys)  # a damaged or foreign file: exit 1
    assert code == 1 and "checkpoint junk.pt: cannot be read" in err and "Traceback" not in err
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    code, _, err = run(["eval", "--checkpoint", "foreign.pt"], capsys)
    assert code == 1 and "checkpoint foreign.pt: expected a course_lib training checkpoint" in err
    train_toy(capsys, "toy.pt", "--steps", "1")
    code, _, err = run(["train", "--task", "toy-moons", "--preset", "smoke", "--steps", "2", "--seed", "1",
                        "--checkpoint", "toy.pt", "--resume"], capsys)
    assert code == 2 and "trained for another recipe (seed: 0 in the file, 1 here)" in err


def test_sample_rejects_an_output_it_cannot_write(capsys):
    train_toy(capsys, "toy.pt", "--steps", "1")
    code, _, err = run(["sample", "--checkpoint", "toy.pt", "--out", "moons.gif"], capsys)
    assert code == 2 and "--out: expected a file name ending in .png for the image/points task 'toy-moons', got 'moons.gif'" in err
    code, _, err = run(["sample", "--checkpoint", "toy.pt", "--sampler", "ddpm", "--steps", "5"], capsys)
    assert code == 2 and "steps: expected None or 50 for sampler='ddpm'" in err
    code, _, err = run(["sample", "--checkpoint", "toy.pt", "--guidance", "2"], capsys)
    assert code == 2 and "guidance_scale: expected None: task 'toy-moons' is not class-conditional" in err
    code, _, err = run(["eval", "--checkpoint", "toy.pt", "--guidance", "2"], capsys)
    assert code == 2 and "guidance_scale: expected None: task 'toy-moons' is not class-conditional" in err


def test_sample_and_eval_a_toy_checkpoint(capsys, tmp_path):
    train_toy(capsys, "toy.pt", "--steps", "2")
    code, out, err = run(["sample", "--checkpoint", "toy.pt", "--n", "50", "--out", "moons.png"], capsys)
    assert code == 0, err
    assert iio.imread(tmp_path / "moons.png").ndim == 3 and "wrote 50 samples of toy-moons" in out
    code, out, err = run(["eval", "--checkpoint", "toy.pt", "--n", "64"], capsys)
    assert code == 0, err
    assert "two moons, 64 samples: MMD" in out and "(fresh data:" in out


def test_video_train_sample_gif_and_mp4_and_eval(capsys, tmp_path):
    code, _, err = run(["train", "--task", "video-shapes", "--preset", "smoke", "--checkpoint", "v.pt"], capsys)
    assert code == 0, err
    for name in ("clips.gif", "clips.mp4"):
        code, out, err = run(["sample", "--checkpoint", "v.pt", "--n", "2", "--out", name], capsys)
        assert code == 0, err
        frames = iio.imread(tmp_path / name, index=None)
        assert frames.shape[0] >= 1 and frames.shape[-1] == 3  # frames, height, width, RGB
    code, _, err = run(["sample", "--checkpoint", "v.pt", "--out", "clips.avi"], capsys)
    assert code == 2 and "--out: expected a file name ending in .gif or .mp4 for the video task 'video-shapes'" in err
    code, out, err = run(["eval", "--checkpoint", "v.pt", "--n", "3"], capsys)
    assert code == 0, err
    assert "video consistency:" in out and "/3 generated clips pass" in out and "real clips: 3/3" in out
    assert "present " in out and "motion " in out and "colour " in out and "shape " in out


def test_digits_sample_and_eval_with_a_small_judge(capsys, tmp_path, monkeypatch):
    small = judge.train_judge(judge.JudgeConfig(train_images=64, steps=2, batch_size=16, test_images=20))
    monkeypatch.setattr(judge, "get_digit_judge", lambda size=28, device=None, **_: small)
    code, _, err = run(["train", "--task", "digits", "--preset", "smoke", "--checkpoint", "d.pt"], capsys)
    assert code == 0, err
    code, out, err = run(["sample", "--checkpoint", "d.pt", "--n", "4", "--guidance", "2", "--out", "d.png"], capsys)
    assert code == 0, err
    assert iio.imread(tmp_path / "d.png").shape[-1] == 3
    code, out, err = run(["eval", "--checkpoint", "d.pt"], capsys)
    assert code == 0, err
    assert "digits, 6 samples" in out and "judge accuracy" in out and "IS" in out and "FID" in out


def test_moving_digits_eval_reads_the_requested_digit_in_every_frame(capsys, tmp_path, monkeypatch):
    from course_lib.metrics import video as video_metrics

    asked = []
    monkeypatch.setattr(video_metrics, "frame_digit_accuracy",
                        lambda video, judge=None, labels=None: asked.append(labels.tolist()) or 0.25)
    code, _, err = run(["train", "--task", "video-digits", "--preset", "smoke", "--checkpoint", "md.pt"], capsys)
    assert code == 0, err
    code, out, err = run(["eval", "--checkpoint", "md.pt", "--n", "3"], capsys)
    assert code == 0, err
    assert "/3 generated clips pass" in out and "reads as the requested one: 25%" in out and asked == [[0, 1, 2]]
    assert "digit 0/3" in out  # a model trained for 2 steps draws no digit, let alone the one asked for
    seen = []  # the clips each eval scored: --guidance must reach the sampler
    monkeypatch.setattr(video_metrics, "frame_digit_accuracy",
                        lambda video, judge=None, labels=None: seen.append(video.clone()) or 0.25)
    for extra in ([], ["--guidance", "1"], ["--guidance", "3"]):
        code, out, err = run(["eval", "--checkpoint", "md.pt", "--n", "3", *extra], capsys)
        assert code == 0, err
    assert "(guidance w = 3)" in out
    assert torch.allclose(seen[0], seen[1], atol=1e-5) and not torch.allclose(seen[0], seen[2], atol=1e-3)  # w = 1: plain
    code, _, err = run(["eval", "--checkpoint", "md.pt", "--guidance", "-1"], capsys)
    assert code == 2 and "--guidance" in err
    code, _, err = run(["sample", "--checkpoint", "md.pt", "--n", "2", "--guidance", "3", "--out", "md.gif"], capsys)
    assert code == 0, err


def test_demo_trains_samples_and_scores(capsys, tmp_path):
    code, out, err = run(["demo", "--preset", "smoke", "--out", "demo", "--seed", "3"], capsys)
    assert code == 0, err
    frames = iio.imread(tmp_path / "demo" / "samples.gif", index=None)
    assert frames.shape[-1] == 3 and frames.shape[1] >= 2 * 16  # two rows of 4 clips, upscaled
    assert "video consistency:" in out and "/8 generated clips pass" in out and "trained 2 steps" in out
    state = torch.load(tmp_path / "demo" / "model.pt", weights_only=True)
    assert state["recipe"]["task"] == "video-shapes" and state["recipe"]["seed"] == 3
    code, out, _ = run(["demo", "--preset", "smoke", "--out", "demo", "--minutes", "1e-9"], capsys)
    assert code == 0 and "trained 0 steps" in out


def test_demo_on_a_cpu_trains_the_narrower_unet_and_its_continue_line_resumes_it(capsys, tmp_path):
    from course_lib.workshop.cli import DEMO_CPU_BASE_CHANNELS, DEMO_LR

    assert config.PRESETS["cpu"].video_base_channels > DEMO_CPU_BASE_CHANNELS
    assert get_recipe("video-shapes", "cpu").lr != DEMO_LR  # the short demo keeps its own lr
    code, out, err = run(["demo", "--preset", "cpu", "--out", "demo", "--device", "cpu", "--minutes", "1e-9"], capsys)
    assert code == 0, err
    assert f"(base width {DEMO_CPU_BASE_CHANNELS})" in out and "preset cpu" in out and "trained 0 steps" in out
    state = torch.load(tmp_path / "demo" / "model.pt", weights_only=True)
    assert state["recipe"]["preset"]["video_base_channels"] == DEMO_CPU_BASE_CHANNELS
    assert state["recipe"]["lr"] == DEMO_LR
    continue_with = printed_continue_command(out)
    assert continue_with == ["train", "--checkpoint", str(Path("demo") / "model.pt"), "--resume"]
    code, out, err = run([*continue_with, "--steps", "1"], capsys)
    assert code == 0 and "finished: 1/1 steps" in out, err
    resumed = torch.load(tmp_path / "demo" / "model.pt", weights_only=True)
    assert resumed["step"] == 1 and resumed["recipe"]["lr"] == DEMO_LR


@pytest.mark.parametrize("native", [True, False])
def test_demo_trains_in_bf16_where_the_cpu_computes_it_natively(native, capsys, tmp_path, monkeypatch):
    from course_lib.workshop import cli

    monkeypatch.setattr(cli, "cpu_has_native_bf16", lambda: native)
    code, out, err = run(["demo", "--preset", "smoke", "--out", "demo", "--device", "cpu"], capsys)
    assert code == 0, err
    expected = "bf16" if native else config.PRESETS["smoke"].precision
    assert f"preset smoke, {expected})" in out  # and the file keeps it, so that train --resume goes on with it
    state = torch.load(tmp_path / "demo" / "model.pt", weights_only=True)
    assert state["recipe"]["preset"]["precision"] == expected


def test_train_precision_reaches_the_recipe_and_resume_needs_the_same(capsys, tmp_path):
    code, out, err = run(["train", "--task", "toy-moons", "--preset", "smoke", "--precision", "bf16",
                          "--checkpoint", "bf16.pt", "--steps", "2"], capsys)
    assert code == 0, err
    assert torch.load(tmp_path / "bf16.pt", weights_only=True)["recipe"]["preset"]["precision"] == "bf16"
    code, _, err = run(["train", "--task", "toy-moons", "--preset", "smoke", "--checkpoint", "bf16.pt", "--resume",
                        "--steps", "3"], capsys)
    assert code == 2 and "trained for another recipe" in err and "precision" in err
    code, _, err = run(["train", "--task", "toy-moons", "--precision", "fp8"], capsys)
    assert code == 2 and "--precision: invalid choice: 'fp8'" in err


