"""Video metrics: per-frame PSNR/SSIM, motion labels, the cached video judge, FVD ordering, video scores."""
import dataclasses
import math
import os

import pytest
import torch

from course_lib._files import lock_path
from course_lib.data.video import PALETTE, SHAPE_KINDS, bouncing_shapes, moving_digits, shuffle_frames
from course_lib.metrics import video as video_module
from course_lib.metrics.frechet import frechet_distance_from_features
from course_lib.metrics.image import psnr, ssim
from course_lib.metrics.video import (
    DIRECTIONS,
    FVD_SAMPLES,
    VideoJudge,
    VideoJudgeConfig,
    frechet_video_distance,
    get_video_judge,
    judge_clips,
    motion_direction,
    per_frame_psnr,
    per_frame_ssim,
    train_video_judge,
    video_judge_path,
    video_scores,
)

USER_CACHE = os.environ.get("COURSE_CACHE")  # the slow test uses (and fills) the real cache
TINY = VideoJudgeConfig(frames=6, train_clips=400, steps=100, test_clips=200)  # ~5 s of one CPU core


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("cache")
        mp.setenv("COURSE_CACHE", str(folder))
        mp.setattr(video_module, "_LOADED", {})
        yield folder


@pytest.fixture(scope="module")
def tiny_judge(cache):
    return get_video_judge(frames=6, config=TINY)


def clips(n, frames=6, seed=1):
    return moving_digits(n, frames=frames, size=32, seed=seed, split="test")


# --- per-frame PSNR / SSIM ---------------------------------------------------------------------

def test_per_frame_metrics_are_the_image_metrics_of_each_frame():
    g = torch.Generator().manual_seed(0)
    target = clips(3, frames=5).video
    pred = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(-1, 1)
    pred[1, 2] = target[1, 2].roll(1, dims=-1)  # one frame shifted by a pixel
    values = per_frame_psnr(pred, target)
    assert values.shape == (3, 5)
    for b, t in [(0, 0), (1, 2), (2, 4)]:
        assert values[b, t].item() == pytest.approx(psnr(pred[b, t][None], target[b, t][None]).item(), rel=1e-6)
        expected_ssim = ssim(pred[b, t][None], target[b, t][None]).item()
        assert per_frame_ssim(pred, target)[b, t].item() == pytest.approx(expected_ssim, rel=1e-6)
    expected = values[0, 0].item() - 20 * math.log10(2)  # R = 1 instead of 2: 6 dB less
    assert per_frame_psnr(pred, target, data_range=1.0)[0, 0].item() == pytest.approx(expected, rel=1e-5)


def test_a_frozen_clip_is_perfect_at_frame_0_only():
    target = clips(2, frames=6).video
    frozen = target[:, :1].expand_as(target)
    values = per_frame_psnr(frozen, target)
    assert torch.isinf(values[:, 0]).all() and torch.isfinite(values[:, 1:]).all()
    assert (per_frame_ssim(frozen, target)[:, 1:] < 0.9).all()


def test_per_frame_metrics_name_bad_arguments():
    video = clips(2, frames=4).video
    with pytest.raises(ValueError, match=r"pred: expected a tensor of rank 5 \(B, T, C, H, W\)"):
        per_frame_psnr(video[0], video)
    with pytest.raises(ValueError, match=r"target: expected the shape of pred \(2, 4, 1, 32, 32\)"):
        per_frame_ssim(video, video[:, :3])
    with pytest.raises(ValueError, match="data_range: expected a positive number"):
        per_frame_psnr(video, video.flip(0), data_range=0)


# --- what the judge reads ----------------------------------------------------------------------

def test_motion_direction_bins_headings_counter_clockwise_from_east():
    velocity = torch.tensor([[0.0, 1.0], [-1.0, 1.0], [-2.0, 0.0], [-1.0, -1.0], [0.0, -1.5], [1.0, -1.0],
                             [1.0, 0.0], [1.0, 1.0], [-0.3, 1.0], [0.45, 1.0]])  # (dy, dx), rows grow downwards
    names = [DIRECTIONS[k] for k in motion_direction(velocity)]
    assert names == ["E", "NE", "N", "NW", "W", "SW", "S", "SE", "E", "SE"]
    assert motion_direction(velocity.view(2, 5, 2)).shape == (2, 5)
    with pytest.raises(ValueError, match=r"velocity: expected a tensor \(\.\.\., 2\) of \(dy, dx\)"):
        motion_direction(torch.zeros(4, 3))


def test_judge_clips_label_digits_and_shapes_with_their_ground_truth():
    video, classes, directions = judge_clips(VideoJudgeConfig(frames=5), 6, "test", seed=3)
    batch = moving_digits(6, frames=5, size=32, seed=3, split="test")
    torch.testing.assert_close(video, batch.video)
    assert classes.tolist() == batch.labels[:, 0].tolist()
    assert directions.tolist() == motion_direction(batch.velocities[:, 0, 0]).tolist()
    config = VideoJudgeConfig(frames=5, channels=3)
    video, classes, _ = judge_clips(config, 8, "train", seed=3)
    shapes = bouncing_shapes(8, frames=5, size=32, seed=3)
    kinds, colours = classes // len(PALETTE), classes % len(PALETTE)
    assert kinds.tolist() == shapes.labels[:, 0].tolist()
    torch.testing.assert_close(PALETTE[colours], shapes.colors[:, 0])
    assert config.num_classes == len(SHAPE_KINDS) * len(PALETTE) == 12
    assert not torch.equal(judge_clips(config, 8, "test", seed=3)[0], video)  # held-out clips differ


# --- the judge: training, cache, outputs -------------------------------------------------------

def test_judge_is_trained_once_then_loaded(cache, tiny_judge, monkeypatch):
    path = video_judge_path(TINY)
    assert path.parent == cache and path.exists()
    # saved atomically: no temporary file left; the lock that made it is an empty hidden file
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, lock_path(path).name])
    assert set(torch.load(path, weights_only=True)) >= {"state_dict", "config", "test_accuracy", "train_seconds"}
    monkeypatch.setattr(video_module, "_LOADED", {})
    monkeypatch.setattr(video_module, "train_video_judge", lambda *a, **k: pytest.fail("retrained a cached judge"))
    again = get_video_judge(frames=6, config=TINY)
    assert again is not tiny_judge
    for (name, a), b in zip(tiny_judge.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert again.test_accuracy == tiny_judge.test_accuracy and again.train_seconds > 0
    assert not again.training and not any(p.requires_grad for p in again.parameters())


def test_cache_key_follows_config_and_data(cache, monkeypatch):
    path = video_judge_path(TINY)
    assert video_judge_path(dataclasses.replace(TINY, steps=101)) != path
    assert video_judge_path(dataclasses.replace(TINY, channels=3)) != path
    real_clips = video_module.judge_clips
    monkeypatch.setattr(video_module, "judge_clips",
                        lambda *a, **k: (-real_clips(*a, **k)[0], *real_clips(*a, **k)[1:]))
    assert video_judge_path(TINY) != path  # new data makers are a new data version


def test_same_seed_same_judge_and_global_rng_untouched():
    config = VideoJudgeConfig(frames=3, size=16, train_clips=16, steps=3, batch_size=4, test_clips=4)
    state = torch.get_rng_state()
    a, b = train_video_judge(config), train_video_judge(config)
    assert torch.equal(torch.get_rng_state(), state)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, msg=name)


def test_tiny_judge_beats_chance_on_held_out_clips(tiny_judge):
    """100 steps already beat chance (10% digits, 12.5% directions): measured 36% and 49%."""
    assert tiny_judge.test_accuracy["class"] > 0.2
    assert tiny_judge.test_accuracy["direction"] > 0.3


def test_features_and_logits_shapes(tiny_judge):
    video = clips(7).video
    assert tiny_judge.features(video).shape == (7, VideoJudge.feature_dim)
    assert tiny_judge.logits(video).shape == (7, 10)
    assert tiny_judge.direction_logits(video).shape == (7, len(DIRECTIONS))
    torch.testing.assert_close(tiny_judge.logits(video), tiny_judge.class_head(tiny_judge.features(video)))
    assert not torch.allclose(tiny_judge.features(video), tiny_judge.features(video.flip(1)))  # frame order matters


def test_fvd_is_small_for_real_clips_and_large_for_broken_ones(tiny_judge):
    """Two seeds of real clips are close; shuffled frames, frozen frames and noise are far (measured
    FVD 1.1 vs 10, 16 and 10^4 with 200 clips)."""
    n = 200
    real_a, real_b = clips(n, seed=1).video, clips(n, seed=2).video
    g = torch.Generator().manual_seed(0)
    reference = tiny_judge.features(real_b)

    def fvd(video):
        return frechet_video_distance(tiny_judge.features(video), reference)

    same = fvd(real_a)
    shuffled = fvd(shuffle_frames(real_a, g))
    frozen = fvd(real_a[:, :1].expand_as(real_a))
    noise = fvd(torch.rand(real_a.shape, generator=g) * 2 - 1)
    assert 0 < same < shuffled / 3
    assert same < frozen / 3
    assert max(shuffled, frozen) < noise


def test_frechet_video_distance_is_the_frechet_distance_of_features():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 4, generator=g), torch.randn(60, 4, generator=g) + 1
    assert frechet_video_distance(a, b) == pytest.approx(frechet_distance_from_features(a, b), rel=1e-12)
    with pytest.raises(ValueError, match="features1: expected at least 2 samples"):
        frechet_video_distance(a[:1], b)


class StubJudge:
    """Reads the class from each clip's mean value; features are the first pixels."""

    num_classes = 10

    def logits(self, video):
        return 100 * torch.nn.functional.one_hot(video.mean((1, 2, 3, 4)).round().long(), 10).float()

    def features(self, video):
        return video.flatten(1)[:, :3]


def test_video_scores_on_a_known_case():
    g = torch.Generator().manual_seed(0)
    samples = torch.arange(4.0).view(4, 1, 1, 1, 1) + 0.01 * torch.randn(4, 3, 1, 8, 8, generator=g)
    scores = video_scores(samples, samples.flip(0), labels=torch.tensor([0, 1, 2, 0]), judge=StubJudge())
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["IS"] == pytest.approx(4.0, rel=1e-3)  # 4 confident, distinct classes
    assert scores["FVD"] == pytest.approx(0.0, abs=1e-6)  # same set, other order
    assert video_scores(samples, samples, judge=StubJudge())["accuracy"] is None


def test_bad_inputs_name_the_argument(tiny_judge):
    real = clips(4).video
    with pytest.raises(ValueError, match=r"samples: expected a tensor of rank 5 \(B, T, C, H, W\)"):
        video_scores(real[0], real, judge=tiny_judge)
    with pytest.raises(ValueError, match="samples: expected at least 2 clips"):
        video_scores(real[:1], real, judge=tiny_judge)
    with pytest.raises(ValueError, match=r"real: expected clips shaped like the samples \(T, C, H, W\) = \(6, 1, 32"):
        video_scores(real, real[:, :5], judge=tiny_judge)
    with pytest.raises(ValueError, match="samples: expected only finite values"):
        video_scores(real * float("nan"), real, judge=tiny_judge)
    with pytest.raises(ValueError, match="labels: expected 4 integer labels, one per sample"):
        video_scores(real, real, labels=torch.zeros(3, dtype=torch.long), judge=tiny_judge)
    with pytest.raises(ValueError, match=r"labels: expected classes in \[0, 9\]"):
        video_scores(real, real, labels=torch.tensor([0, 1, 2, 10]), judge=tiny_judge)
    with pytest.raises(ValueError, match="video: expected clips of 6 frames and 1 channel"):
        tiny_judge.features(clips(2, frames=8).video)
    with pytest.raises(ValueError, match="video: expected at least one clip"):
        tiny_judge.logits(real[:0])
    with pytest.raises(ValueError, match="video: expected frames whose height and width are multiples of 8"):
        tiny_judge.direction_logits(torch.zeros(2, 6, 1, 20, 20))
    with pytest.raises(ValueError, match=r"frames: expected an int in \[2, 64\], got 1"):
        get_video_judge(frames=1)
    with pytest.raises(ValueError, match="size: expected a multiple of 8 in"):
        get_video_judge(size=30)
    with pytest.raises(ValueError, match="channels: expected 1 \\(moving digits\\) or 3"):
        get_video_judge(channels=2)
    with pytest.raises(ValueError, match="config: expected a VideoJudgeConfig with frames=8, size=32, channels=1"):
        get_video_judge(config=TINY)
    with pytest.raises(ValueError, match="config: expected a VideoJudgeConfig or None, got 'dict'"):
        get_video_judge(config={})


@pytest.mark.slow
def test_full_judge_is_accurate_and_fvd_orders_real_shuffled_frozen(monkeypatch):
    """The default judge (8 frames of 32x32): measured 92% of digits and 80% of directions on held-out
    clips (direction errors sit at the 45° bin edges); trains in ~30 s of one CPU core unless cached."""
    if USER_CACHE is None:
        monkeypatch.delenv("COURSE_CACHE", raising=False)
    else:
        monkeypatch.setenv("COURSE_CACHE", USER_CACHE)
    judge = get_video_judge()
    assert judge.test_accuracy["class"] > 0.88 and judge.test_accuracy["direction"] > 0.72
    real_a, real_b = clips(FVD_SAMPLES, frames=8, seed=1), clips(FVD_SAMPLES, frames=8, seed=2)
    scores = video_scores(real_a.video, real_b.video, labels=real_a.labels[:, 0], judge=judge)
    assert scores["accuracy"] > 0.88 and scores["IS"] > 6
    shuffled = video_scores(shuffle_frames(real_a.video, torch.Generator().manual_seed(0)), real_b.video, judge=judge)
    frozen = video_scores(real_a.video[:, :1].expand_as(real_a.video), real_b.video, judge=judge)
    assert 5 * scores["FVD"] < shuffled["FVD"] < frozen["FVD"]


def test_a_damaged_cache_is_trained_again_and_an_unwritable_folder_reported_first(tiny_judge, tmp_path, monkeypatch):
    good = video_judge_path(TINY).read_bytes()
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(video_module, "_LOADED", {})
    path = video_judge_path(TINY)
    path.write_bytes(good[: len(good) // 3])
    trained = []
    monkeypatch.setattr(video_module, "train_video_judge", lambda *a, **k: trained.append(1) or tiny_judge)
    with pytest.warns(UserWarning, match=r"cached video judge .* cannot be read"):
        get_video_judge(frames=6, config=TINY)
    assert trained == [1] and video_module._load(path, TINY, torch.device("cpu")).test_accuracy == tiny_judge.test_accuracy

    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "a_file"))
    monkeypatch.setattr(video_module, "train_video_judge", lambda *a, **k: pytest.fail("trained before the check"))
    with pytest.raises(OSError, match=r"judge cache folder .*a_file: cannot write there"):
        get_video_judge(frames=6, config=TINY)
