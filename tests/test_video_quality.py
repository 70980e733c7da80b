"""The video-quality measurement: budgeted training, frame digit accuracy, FVD ratio against the untrained model."""
import json

import numpy as np

import pytest
import torch
from torch import nn

from course_lib.workshop.bench import quality as video_quality
from course_lib.config import get_preset
from course_lib.data.video import moving_digits
from course_lib.metrics import video as video_metrics
from course_lib.metrics.video import VideoJudgeConfig, train_video_judge
from course_lib.workshop.recipes import GUIDANCE_SCALE, get_recipe
from course_lib.workshop.bench.quality import measure, train_for
from course_lib.metrics.video import frame_digit_accuracy


def tiny_preset():
    return get_preset("smoke").replace(num_diffusion_steps=50, sample_steps=3, video_size=16, video_frames=3,
                                       video_base_channels=8, video_batch_size=2)


def tiny_judge(frames: int, size: int, channels: int):
    """A video judge trained for 3 steps: its features are all FVD needs here (seconds, no cache)."""
    config = VideoJudgeConfig(frames=frames, size=size, channels=channels, train_clips=16, steps=3, batch_size=4,
                              test_clips=4)
    return train_video_judge(config)


class BrightnessJudge(nn.Module):
    """Reads class 1 when the first frame of a clip has ink brighter than 0.5, else class 0: (B, T, 1, H, W) -> (B, 10)."""

    def logits(self, video: torch.Tensor) -> torch.Tensor:
        bright = (video[:, 0].flatten(1).amax(1) > 0.5).long()
        return nn.functional.one_hot(bright, 10).float()


class ConstantJudge(nn.Module):
    """Reads every clip as digit 7."""

    def logits(self, video: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((len(video),), 7), 10).float()


def digits(n=6, seed=0):
    return moving_digits(n, frames=6, size=32, seed=seed)


# --- training within a budget ------------------------------------------------------------------------

def test_train_for_stops_at_the_step_count_and_at_spent_budgets():
    recipe = get_recipe("video-shapes", tiny_preset())
    trainer, run = train_for(recipe, steps=3)
    assert trainer.step == run.steps == 3
    assert run.cpu_seconds > 0 and run.wall_seconds > 0 and run.threads == torch.get_num_threads()
    for budget in ({"minutes": 0.0}, {"cpu_minutes": 0.0}):
        trainer, run = train_for(recipe, steps=3, **budget)
        assert trainer.step == run.steps == 0


def test_loss_curve_averages_equal_windows_and_shows_where_a_run_broke():
    losses = [1.0] * 4 + [0.2] * 4 + [0.9] * 2  # learned, then broke near the end
    assert video_quality.loss_curve(losses, points=5) == [(2, 1.0), (4, 1.0), (6, 0.2), (8, 0.2), (10, 0.9)]
    assert video_quality.loss_curve([0.5, 0.3, 0.1], points=10) == [(1, 0.5), (2, 0.3), (3, 0.1)]  # no empty windows
    assert video_quality.loss_curve([], points=3) == []
    with pytest.raises(ValueError, match="points"):
        video_quality.loss_curve(losses, points=0)


def test_train_for_names_bad_arguments():
    recipe = get_recipe("video-shapes", tiny_preset())
    with pytest.raises(ValueError, match="recipe: expected a Recipe"):
        train_for("video-shapes")
    with pytest.raises(ValueError, match="minutes: expected"):
        train_for(recipe, minutes=-1.0)
    with pytest.raises(ValueError, match="cpu_minutes: expected"):
        train_for(recipe, cpu_minutes=-1.0)
    with pytest.raises(ValueError, match="steps: expected"):
        train_for(recipe, steps=0)


# --- frame digit accuracy -------------------------------------------------------------------------------

def test_frame_digit_accuracy_counts_frames_read_as_the_clips_digit():
    clips = digits().video
    judge = BrightnessJudge()  # reads a frame (slid into a clip) as 1 when its ink is bright
    assert frame_digit_accuracy(clips, judge) == 1.0
    dimmed = clips.clone()
    dimmed[:, 4:] = torch.where(dimmed[:, 4:] > -1, dimmed[:, 4:].clamp(max=0.3), dimmed[:, 4:])  # still ink, read 0
    assert frame_digit_accuracy(dimmed, judge) == pytest.approx(4 / 6)  # the clip's digit: 1, read in 4 frames
    # known labels replace the most frequent reading
    assert frame_digit_accuracy(dimmed, judge, labels=torch.zeros(len(clips), dtype=torch.long)) == pytest.approx(2 / 6)


def test_frame_digit_accuracy_never_counts_noise_or_empty_frames():
    clips = digits().video
    judge = ConstantJudge()  # every frame read as the clip: only the one-object test can refuse a frame
    assert frame_digit_accuracy(clips, judge) == 1.0
    noise = torch.rand(clips.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert frame_digit_accuracy(noise, judge) == 0.0  # many blobs, or one frame-filling one
    assert frame_digit_accuracy(torch.full_like(clips, -1.0), judge) == 0.0
    half_empty = clips.clone()
    half_empty[:, ::2] = -1.0
    assert frame_digit_accuracy(half_empty, judge) == pytest.approx(0.5)


def test_frames_slide_toward_the_centre_to_be_read():
    frame = torch.full((1, 1, 16, 16), -1.0)
    frame[0, 0, 2, 3] = 1.0  # top-left: slides down and right
    clip = video_metrics._slide_toward_centre(frame, np.array([[2.0, 3.0]]), 4)
    assert [tuple(torch.nonzero(clip[0, k, 0] > 0)[0].tolist()) for k in range(4)] == [(2, 3), (3, 4), (4, 5), (5, 6)]
    frame = torch.flip(frame, dims=(-2, -1))  # bottom-right: slides up and left
    clip = video_metrics._slide_toward_centre(frame, np.array([[13.0, 12.0]]), 3)
    assert [tuple(torch.nonzero(clip[0, k, 0] > 0)[0].tolist()) for k in range(3)] == [(13, 12), (12, 11), (11, 10)]
    assert (clip[0, 2] == -1).sum() == 16 * 16 - 1  # the uncovered border is background


@pytest.mark.slow
def test_the_video_judge_reads_real_frames_right():
    judge = video_metrics.get_video_judge(frames=8, size=32, channels=1)  # the cached one (trained once, ~30 s)
    batch = moving_digits(64, frames=8, size=32, seed=1, split="test")
    accuracy = frame_digit_accuracy(batch.video, judge, labels=batch.labels[:, 0])
    wrong = frame_digit_accuracy(batch.video, judge, labels=(batch.labels[:, 0] + 1) % 10)
    assert accuracy > 0.85 and wrong < 0.1  # measured: 0.94 (a frame held still instead: 0.75)


def test_frame_digit_accuracy_names_bad_arguments():
    clips = digits().video
    with pytest.raises(ValueError, match="video: expected grey clips"):
        frame_digit_accuracy(clips.expand(-1, -1, 3, -1, -1), BrightnessJudge())
    with pytest.raises(ValueError, match="video: expected"):
        frame_digit_accuracy(clips[0], BrightnessJudge())
    with pytest.raises(ValueError, match="labels: expected one digit per clip"):
        frame_digit_accuracy(clips, BrightnessJudge(), labels=torch.zeros(2, dtype=torch.long))


# --- the measurement ------------------------------------------------------------------------------------

def test_an_untrained_model_scores_an_fvd_ratio_of_one_and_real_clips_are_consistent():
    recipe = get_recipe("video-shapes", tiny_preset())
    judge = tiny_judge(3, 16, 3)
    quality = measure(recipe, recipe.build_model(), n=4, judge=judge)
    assert quality.fvd_ratio == pytest.approx(1.0)  # the same network from the same noise: the reference itself
    assert quality.real_consistency == {"present": 1.0, "motion": 1.0, "colour": 1.0, "shape": 1.0, "combined": 1.0}
    assert set(quality.consistency) == set(quality.real_consistency) and quality.frame_digit_accuracy is None
    assert 0.0 <= quality.consistent <= min(quality.consistency.values())
    assert quality.fvd > quality.real_fvd  # noise-like clips are farther from real clips than real clips are


def test_measure_reads_digits_frame_by_frame_for_video_digits():
    recipe = get_recipe("video-digits", tiny_preset())
    quality = measure(recipe, recipe.build_model(), n=4, judge=BrightnessJudgeWithFeatures(),
                      digit_judge=ConstantJudge())
    assert quality.frame_digit_accuracy == 0.0  # an untrained model draws no digit
    assert quality.real_frame_digit_accuracy is not None
    assert quality.consistency["digit"] == 0.0 and quality.consistent == 0.0  # no digit, let alone the one asked for
    assert quality.real_consistency == {"present": 1.0, "motion": 1.0, "digit": 1.0, "combined": 1.0}  # one reading


def test_the_verdicts_judge_the_combined_score_for_shapes_and_the_requested_digit_for_digits():
    shapes = video_quality.VideoQuality(n=4, consistency={"present": 1.0, "motion": 0.9, "colour": 0.8, "shape": 1.0,
                                                          "combined": 0.8},
                                        real_consistency={"combined": 1.0}, fvd=1.0, untrained_fvd=4.0, real_fvd=0.5)
    first, fvd = video_quality.verdicts(get_recipe("video-shapes", tiny_preset()), shapes)
    assert first == "✗ consistent 80% (target >= 85%; real clips 100%)" and fvd.startswith("✓ FVD ratio 0.25")
    digits = video_quality.VideoQuality(n=4, consistency={"present": 1.0, "motion": 1.0, "digit": 0.75, "combined": 0.75},
                                        real_consistency={"digit": 1.0}, fvd=1.0, untrained_fvd=1.0, real_fvd=0.5,
                                        frame_digit_accuracy=0.8, real_frame_digit_accuracy=0.9)
    first, _ = video_quality.verdicts(get_recipe("video-digits", tiny_preset()), digits)
    assert first == "✓ requested digit in every frame 75% of clips (target >= 70%; real clips 100%)"


class BrightnessJudgeWithFeatures(BrightnessJudge):
    def features(self, video: torch.Tensor) -> torch.Tensor:
        return torch.stack([video.mean((1, 2, 3, 4)), video.std((1, 2, 3, 4))], 1).double()


def test_measure_names_bad_arguments():
    recipe = get_recipe("video-shapes", tiny_preset())
    model = recipe.build_model()
    with pytest.raises(ValueError, match="recipe: expected a recipe of a video task"):
        measure(get_recipe("toy-moons", tiny_preset()), model)
    with pytest.raises(ValueError, match="n: expected at least 2 clips"):
        measure(recipe, model, n=1)


def test_command_line_trains_measures_and_records(tmp_path, monkeypatch, capsys):
    judge = tiny_judge(4, 32, 3)  # the smoke preset's clips
    monkeypatch.setattr(video_metrics, "get_video_judge", lambda **kwargs: judge)
    record, saved = tmp_path / "runs.jsonl", tmp_path / "model.pt"
    assert video_quality.main(["--preset", "smoke", "--steps", "2", "--n", "2", "--sample-steps", "2",
                               "--lr", "1e-3", "--json", str(record), "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "2 steps in" in out and "FVD ratio" in out and "loss by step: 1 " in out
    assert "consistent " in out and "(present " in out and ", motion " in out and ", colour " in out and "shape " in out
    line = json.loads(record.read_text())
    assert line["run"]["steps"] == 2 and line["recipe"]["lr"] == 1e-3 and line["preset"]["name"] == "smoke"
    assert [step for step, _ in line["run"]["loss_curve"]] == [1, 2]
    # the saved model is measured again as it was: the same samples, so the same consistency and FVD
    assert video_quality.main(["--checkpoint", str(saved), "--n", "2", "--sample-steps", "2",
                               "--json", str(record)]) == 0
    first, again = [json.loads(text) for text in record.read_text().splitlines()]
    assert again["run"]["steps"] == 2 and again["recipe"]["lr"] == 1e-3
    assert again["quality"]["fvd"] == pytest.approx(first["quality"]["fvd"])
    assert again["quality"]["consistency"] == first["quality"]["consistency"]
    # with --eta 1 the same model draws other clips (fresh noise at every step), and the record says so
    assert video_quality.main(["--checkpoint", str(saved), "--n", "2", "--sample-steps", "2", "--eta", "1",
                               "--json", str(record)]) == 0
    assert "DDIM 2, η = 1" in capsys.readouterr().out
    noisy = json.loads(record.read_text().splitlines()[-1])
    assert noisy["sampling"] == {"steps": 2, "eta": 1.0, "guidance": None}
    assert again["sampling"] == {"steps": 2, "eta": 0.0, "guidance": None}
    assert noisy["quality"]["fvd"] != pytest.approx(first["quality"]["fvd"])


def test_eta_reaches_the_sampler():
    recipe = get_recipe("video-shapes", tiny_preset())
    model = recipe.build_model()
    plain, noisy = (video_quality.sample_clips(recipe, model, 2, seed=3, eta=eta) for eta in (0.0, 1.0))
    assert torch.equal(plain, video_quality.sample_clips(recipe, model, 2, seed=3))
    assert not torch.allclose(plain, noisy)


def test_moving_digits_are_sampled_as_0_to_9_and_judged_against_the_requested_digit(monkeypatch):
    recipe = get_recipe("video-digits", tiny_preset())
    seen = {}
    original = type(recipe).sample

    def recording_sample(self, model, n, **kwargs):
        seen.setdefault("labels", []).append(kwargs["labels"].tolist())
        seen["guidance"] = kwargs["guidance_scale"]
        return original(self, model, n, **kwargs)

    monkeypatch.setattr(type(recipe), "sample", recording_sample)
    monkeypatch.setattr(video_quality, "SAMPLE_BATCH", 8)
    video_quality.sample_clips(recipe, recipe.build_model(), 12, guidance_scale=2.5)
    assert seen["labels"] == [[0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 0, 1]] and seen["guidance"] == 2.5

    judged = []
    monkeypatch.setattr(video_quality, "frame_digit_accuracy",
                        lambda video, judge=None, labels=None: judged.append(labels) or 0.5)
    quality = measure(recipe, recipe.build_model(), n=4, judge=BrightnessJudgeWithFeatures(), guidance_scale=2.0)
    assert seen["guidance"] == 2.0 and quality.frame_digit_accuracy == 0.5
    assert judged[0].tolist() == [0, 1, 2, 3]  # the samples are read against the digits they were asked for
    assert judged[1].shape == (4,)  # the real clips against their true digits


def test_guidance_is_refused_for_shapes_on_the_command_line(capsys):
    with pytest.raises(ValueError, match="--guidance: expected no value: task 'video-shapes' is not class-conditional"):
        video_quality.main(["--preset", "smoke", "--steps", "1", "--n", "2", "--guidance", "2"])


def test_command_line_guides_moving_digits_and_records_the_scale(tmp_path, monkeypatch, capsys):
    judge = tiny_judge(4, 32, 1)  # the smoke preset's digit clips
    monkeypatch.setattr(video_metrics, "get_video_judge", lambda **kwargs: judge)
    record = tmp_path / "runs.jsonl"
    assert video_quality.main(["--task", "video-digits", "--preset", "smoke", "--steps", "1", "--n", "2",
                               "--sample-steps", "2", "--guidance", "2.5", "--json", str(record)]) == 0
    assert "guidance w = 2.5" in capsys.readouterr().out
    assert json.loads(record.read_text())["sampling"]["guidance"] == 2.5
    assert video_quality.main(["--task", "video-digits", "--preset", "smoke", "--steps", "1", "--n", "2",
                               "--sample-steps", "2", "--json", str(record)]) == 0
    assert f"guidance w = {GUIDANCE_SCALE:g}" in capsys.readouterr().out  # moving digits: the recipe's w = 3
    assert json.loads(record.read_text().splitlines()[-1])["sampling"]["guidance"] == 3.0
