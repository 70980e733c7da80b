"""The digit judge: train-or-load caching, scores on known cases, and (slow) its real accuracy."""
import os

import pytest
import torch

from course_lib._files import lock_path
import course_lib.data.digits as digits
from course_lib.data.digits import render_digits
from course_lib.metrics import judge as judge_module
from course_lib.metrics.judge import (
    FID_SAMPLES,
    DigitJudge,
    JudgeConfig,
    accuracy,
    get_digit_judge,
    image_scores,
    judge_config_for_preset,
    judge_path,
    reference_digits,
)
from course_lib.config import get_preset

USER_CACHE = os.environ.get("COURSE_CACHE")  # the slow test uses (and fills) the real cache
TINY = JudgeConfig(train_images=1000, steps=40, batch_size=32, test_images=200)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("cache")
        mp.setenv("COURSE_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def tiny_judge(cache):
    return get_digit_judge(config=TINY)


def test_judge_is_trained_once_then_loaded(cache, tiny_judge, monkeypatch):
    path = judge_path(TINY)
    assert path.parent == cache and path.exists()
    # saved atomically: no temporary file left; the lock that made it is an empty hidden file
    assert sorted(p.name for p in cache.iterdir()) == sorted([path.name, lock_path(path).name])
    assert lock_path(path).stat().st_size == 0
    assert set(torch.load(path, weights_only=True)) >= {"state_dict", "config", "test_accuracy"}
    monkeypatch.setattr(judge_module, "_LOADED", {})
    monkeypatch.setattr(judge_module, "train_judge", lambda *a, **k: pytest.fail("retrained a cached judge"))
    again = get_digit_judge(config=TINY)
    assert again is not tiny_judge
    for (name, a), b in zip(tiny_judge.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert again.test_accuracy == tiny_judge.test_accuracy
    assert not again.training and not any(p.requires_grad for p in again.parameters())


def test_cache_key_follows_config_and_data(cache, monkeypatch):
    path = judge_path(TINY)
    assert judge_path(JudgeConfig(**{**TINY.__dict__, "steps": 41})) != path
    assert judge_path(JudgeConfig(size=32)) != judge_path(JudgeConfig(size=28))
    real_render = digits.render_digits
    monkeypatch.setattr(digits, "render_digits", lambda *a, **k: (-real_render(*a, **k)[0], real_render(*a, **k)[1]))
    assert judge_path(TINY) != path  # a new renderer is a new data version


def test_tiny_judge_learns_something(tiny_judge):
    """40 steps on held-out fonts already beat chance (10%): measured 27.5%."""
    assert tiny_judge.test_accuracy > 0.2


def test_features_and_logits_shapes(tiny_judge):
    x = reference_digits(7)
    assert tiny_judge.features(x).shape == (7, DigitJudge.feature_dim)
    assert tiny_judge.logits(x).shape == (7, 10)
    torch.testing.assert_close(tiny_judge.logits(x), tiny_judge.head(tiny_judge.features(x)))


def test_fid_real_vs_real_is_small_and_real_vs_noise_is_large(tiny_judge):
    real_a = reference_digits(200, seed=1)
    real_b = reference_digits(200, seed=2)
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    same = image_scores(real_a, real_b, judge=tiny_judge)["FID"]
    far = image_scores(noise, real_b, judge=tiny_judge)["FID"]
    assert 0 < same < 0.1 * far


def test_image_scores_accuracy_and_is_on_a_known_case():
    class StubJudge:
        """Reads the digit from the image's mean value: image i is classified as class i."""

        def logits(self, x):
            return 100 * torch.nn.functional.one_hot(x.mean((1, 2, 3)).round().long(), 10).float()

        def features(self, x):
            return x.flatten(1)[:, :3]

    samples = torch.arange(4.0)[:, None, None, None].expand(4, 1, 8, 8) + torch.zeros(4, 1, 8, 8)
    samples = samples + 0.01 * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    scores = image_scores(samples, samples.flip(0), labels=torch.tensor([0, 1, 2, 0]), judge=StubJudge())
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["IS"] == pytest.approx(4.0, rel=1e-3)  # 4 confident, distinct classes
    assert scores["FID"] == pytest.approx(0.0, abs=1e-6)  # same set, other order
    assert image_scores(samples, samples, judge=StubJudge())["accuracy"] is None
    assert accuracy(torch.tensor([[0.0, 1.0], [2.0, 1.0]]), torch.tensor([1, 1])) == 0.5


def test_bad_inputs_name_the_argument(tiny_judge):
    real = reference_digits(4)
    with pytest.raises(ValueError, match=r"samples: expected a tensor of rank 4 \(N, 1, H, W\)"):
        image_scores(real[0], real, judge=tiny_judge)
    with pytest.raises(ValueError, match=r"samples: expected at least 2 grey images"):
        image_scores(real[:0], real, judge=tiny_judge)
    with pytest.raises(ValueError, match=r"real: expected at least 2 grey images"):
        image_scores(real, real.repeat(1, 3, 1, 1), judge=tiny_judge)
    with pytest.raises(ValueError, match=r"real: expected images of the samples' size \(28, 28\)"):
        image_scores(real, torch.zeros(4, 1, 32, 32), judge=tiny_judge)
    with pytest.raises(ValueError, match="labels: expected 4 integer labels, one per sample"):
        image_scores(real, real, labels=torch.zeros(3, dtype=torch.long), judge=tiny_judge)
    with pytest.raises(ValueError, match=r"labels: expected digits in \[0, 9\]"):
        image_scores(real, real, labels=torch.tensor([0, 1, 2, 10]), judge=tiny_judge)
    with pytest.raises(ValueError, match="samples: expected only finite values"):
        image_scores(real * float("nan"), real, judge=tiny_judge)
    with pytest.raises(ValueError, match="x: expected grey images"):
        tiny_judge.features(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="x: expected at least one image"):
        tiny_judge.logits(torch.zeros(0, 1, 28, 28))
    with pytest.raises(ValueError, match=r"size: expected 28 or 32, or a size in \[8, 27\] \(digits drawn small\), got 30"):
        get_digit_judge(size=30)
    with pytest.raises(ValueError, match="config: expected a JudgeConfig with size=32, got 'size=28'"):
        get_digit_judge(size=32, config=TINY)
    with pytest.raises(ValueError, match=r"labels: expected one label per row of logits \(2\)"):
        accuracy(torch.zeros(2, 10), torch.zeros(3, dtype=torch.long))


def test_the_smoke_preset_gets_a_small_judge_and_the_others_the_full_one():
    smoke, cpu, gpu = (judge_config_for_preset(get_preset(name)) for name in ("smoke", "cpu", "gpu"))
    assert smoke.steps < cpu.steps and smoke.train_images < cpu.train_images
    assert cpu == JudgeConfig() and gpu == JudgeConfig(size=32)  # each sized by its preset's images
    assert judge_path(smoke) != judge_path(cpu)  # cached apart
    with pytest.raises(ValueError, match="preset: expected a course_lib.config.Preset"):
        judge_config_for_preset("smoke")


@pytest.mark.slow
def test_full_judge_is_accurate_and_separates_real_from_noise(monkeypatch):
    """The default judge: > 98% on held-out fonts (measured 99.5%); FID real-vs-real << real-vs-noise.

    Trains the judge (~35 s of 2-core CPU) unless it is in the user's cache already."""
    if USER_CACHE is None:
        monkeypatch.delenv("COURSE_CACHE", raising=False)
    else:
        monkeypatch.setenv("COURSE_CACHE", USER_CACHE)
    judge = get_digit_judge()
    assert judge.test_accuracy > 0.98
    images, labels = render_digits(1000, 28, "test", seed=7)
    assert accuracy(judge.logits(images), labels) > 0.98
    real_a, real_b = reference_digits(FID_SAMPLES, seed=1), reference_digits(FID_SAMPLES, seed=2)
    noise = torch.rand(FID_SAMPLES, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    scores = image_scores(real_a, real_b, labels=render_digits(FID_SAMPLES, 28, "test", seed=1)[1], judge=judge)
    assert scores["accuracy"] > 0.98 and scores["IS"] > 8.5
    assert scores["FID"] < 0.02 * image_scores(noise, real_b, judge=judge)["FID"]


# --- a damaged cache is trained again; an unwritable cache folder is reported before training ----------

@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_cache_that_cannot_be_read_is_trained_again(tiny_judge, tmp_path, monkeypatch, damage):
    good = judge_path(TINY).read_bytes()
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(judge_module, "_LOADED", {})
    path = judge_path(TINY)
    path.write_bytes({"empty": b"", "truncated": good[: len(good) // 2], "garbage": os.urandom(500)}[damage])
    trained = []
    monkeypatch.setattr(judge_module, "train_judge", lambda *a, **k: trained.append(1) or tiny_judge)
    with pytest.warns(UserWarning, match=r"cached digit judge .* cannot be read .*training it again"):
        judge = get_digit_judge(config=TINY)
    assert trained == [1] and judge.test_accuracy == tiny_judge.test_accuracy
    monkeypatch.setattr(judge_module, "_LOADED", {})
    assert get_digit_judge(config=TINY).test_accuracy == tiny_judge.test_accuracy and trained == [1]  # rebuilt


def test_an_unwritable_cache_folder_is_reported_before_training(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "a_file" / "cache"))  # fails even for root
    monkeypatch.setattr(judge_module, "_LOADED", {})
    monkeypatch.setattr(judge_module, "train_judge", lambda *a, **k: pytest.fail("trained before the folder was checked"))
    with pytest.raises(OSError, match=r"judge cache folder .*a_file/cache: cannot write there .*COURSE_CACHE"):
        get_digit_judge(config=TINY)
