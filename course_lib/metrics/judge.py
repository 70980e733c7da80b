"""The digit judge: a small CNN that plays Inception's role for our rendered digits.

FID and IS need a network that "understands" the images. For ImageNet that is Inception-v3; for
the course's digits it is this judge, trained in seconds on rendered digits
(``course_lib.data.digits``) and cached, so every notebook scores samples with the same weights:

* ``judge.logits(x)``   -> (B, 10): the Inception Score and the accuracy of class-conditional samples;
* ``judge.features(x)`` -> (B, 128): the penultimate activations, whose Gaussian fits give FID.

Why FID depends on the sample count. FID is the Fréchet distance between Gaussians *fitted* to N
samples each. The fitted means and covariances are noisy, and noise only adds distance: even two
sets drawn from the same distribution score > 0, by roughly a constant / N. So the estimate is
biased upwards, more so for small N (Chong & Forsyth 2020). Compare FIDs only at the same N:
everywhere in this course that N is :data:`FID_SAMPLES`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._files import atomic_save, exclusive_lock, read_saved
from course_lib._validation import check_rank, check_tensor, fail
from course_lib.metrics.frechet import frechet_distance_from_features
from course_lib.metrics.inception_score import inception_score

FID_SAMPLES = 500  # samples (and real images) behind every FID / IS number in the course
CACHE_ENV = "COURSE_CACHE"  # folder for trained judges; default ~/.cache/course_lib
JUDGE_VERSION = 1  # bump when the architecture or the training recipe changes: old caches are ignored
NUM_CLASSES = 10


@dataclass(frozen=True)
class JudgeConfig:
    """How the judge is trained. Every field is part of the cache key."""

    size: int = 28
    train_images: int = 10_000  # rendered once, sampled with replacement
    steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    test_images: int = 2000  # held-out fonts (split="test"), accuracy stored with the weights


class DigitJudge(nn.Module):
    """x: (B, 1, H, W) in [-1, 1] -> features (B, 128) -> logits (B, 10).

    Three conv blocks (16, 32, 64 channels; H -> H/2 -> H/4 -> global average), then a 128-unit
    hidden layer whose ReLU activations are the features.
    """

    feature_dim = 128

    def __init__(self):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(
            block(1, 16), nn.MaxPool2d(2),
            block(16, 32), nn.MaxPool2d(2),
            block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, self.feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, NUM_CLASSES)
        self.test_accuracy: float | None = None  # accuracy on held-out fonts, set by training / loading
        self.train_seconds: float | None = None  # how long training took, set when loaded from the cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, H, W) -> logits (B, 10), with gradients (used for training)."""
        return self.head(self.body(x))

    def _inference(self, x: torch.Tensor, part: str, batch_size: int = 500) -> torch.Tensor:
        check_rank("x", x, 4, "(B, 1, H, W)")
        if x.shape[1] != 1 or min(x.shape[-2:]) < 8:
            fail("x", "grey images (B, 1, H, W), H and W at least 8", f"shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            fail("x", "at least one image", "an empty batch (B = 0)")
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        outputs = []
        with torch.no_grad():
            for chunk in x.split(batch_size):
                features = self.body(chunk.to(device, torch.float32))
                outputs.append((features if part == "features" else self.head(features)).cpu())
        self.train(was_training)
        return torch.cat(outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, H, W) in [-1, 1] -> (B, 128) penultimate activations (no grad, float32, on CPU)."""
        return self._inference(x, "features")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, H, W) in [-1, 1] -> (B, 10) class scores (no grad, float32, on CPU)."""
        return self._inference(x, "logits")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose largest logit is at the label: logits (N, K), labels (N,)."""
    check_rank("logits", logits, 2, "(N, K)")
    check_rank("labels", labels, 1, "(N,)")
    if len(labels) != len(logits) or len(labels) == 0:
        fail("labels", f"one label per row of logits ({len(logits)}), at least one", f"shape {tuple(labels.shape)}")
    return (logits.argmax(dim=1) == labels.to(logits.device)).float().mean().item()


SMALLEST = 8  # px: the smallest digits a judge is trained for (two halvings leave 2x2)


def digits_at(n: int, size: int, split: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n digits (n, 1, size, size) in [-1, 1] and their labels (n,), from ``split``'s fonts.

    Sizes 28 and 32 are rendered directly; a smaller size is rendered at 28 and scaled down with
    anti-aliasing, exactly as :func:`course_lib.data.video.moving_digits` draws the digits of a
    small frame (14 px in a 32-px frame): a judge of that size reads moving digits' frames.
    """
    from course_lib.data.digits import SIZES, render_digits

    if size in SIZES:
        return render_digits(n, size, split, seed=seed)
    images, labels = render_digits(n, 28, split, seed=seed)
    ink = F.interpolate((images + 1) / 2, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return ink.clamp(0, 1) * 2 - 1, labels


def train_judge(config: JudgeConfig = JudgeConfig(), device=None) -> DigitJudge:
    """Train a judge from scratch on rendered training fonts; its ``test_accuracy`` is set on held-out fonts.

    A plain classification loop: AdamW, cross-entropy, one-cycle learning rate, fixed seed.
    """
    device = torch.device(device or "cpu")
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the initial weights
    judge = DigitJudge().to(device)
    images, labels = digits_at(config.train_images, config.size, "train", seed=config.seed)
    optimiser = torch.optim.AdamW(judge.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    judge.train()
    for _ in range(config.steps):
        index = torch.randint(0, len(images), (config.batch_size,), generator=g)
        loss = F.cross_entropy(judge(images[index].to(device)), labels[index].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    judge.eval()
    test_images, test_labels = digits_at(config.test_images, config.size, "test", seed=config.seed + 1)
    judge.test_accuracy = accuracy(judge.logits(test_images), test_labels)
    return judge


# The smoke preset's judge: trained in about 6 s on 2 busy cores, ~94% on held-out fonts (the full
# judge: ~99%). Its FIDs are not comparable with the full judge's: features differ between judges.
SMOKE_JUDGE = JudgeConfig(train_images=2000, steps=120, test_images=500)


def judge_config_for_preset(preset) -> JudgeConfig:
    """The judge recipe for ``preset``: :data:`SMOKE_JUDGE` for ``smoke`` (CI), the full one otherwise."""
    if not hasattr(preset, "image_size") or not hasattr(preset, "name"):
        fail("preset", "a course_lib.config.Preset (see get_preset())", type(preset).__name__)
    config = SMOKE_JUDGE if preset.name == "smoke" else JudgeConfig()
    return dataclasses.replace(config, size=preset.image_size)


def cache_dir() -> Path:
    """``$COURSE_CACHE`` if set, else ``~/.cache/course_lib``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "course_lib")


def _data_fingerprint(size: int) -> str:
    """A hash of a few rendered digits: changes whenever the renderer changes (the data version)."""
    images, labels = digits_at(16, size, "train", seed=12345)
    return hashlib.sha256(images.numpy().round(4).tobytes() + labels.numpy().tobytes()).hexdigest()[:12]


def judge_path(config: JudgeConfig) -> Path:
    """Where the judge trained with ``config`` is cached: keyed by config, JUDGE_VERSION and data version."""
    key = json.dumps({"config": dataclasses.asdict(config), "version": JUDGE_VERSION,
                      "data": _data_fingerprint(config.size)}, sort_keys=True)
    return cache_dir() / f"digit_judge_{config.size}px_{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _save_atomically(judge: DigitJudge, config: JudgeConfig, path: Path, train_seconds: float) -> None:
    """Write the judge with the course's atomic writer (with a checksum): readers never see half a file."""
    atomic_save({"state_dict": judge.state_dict(), "config": dataclasses.asdict(config),
                 "test_accuracy": judge.test_accuracy, "train_seconds": train_seconds, "version": JUDGE_VERSION}, path)


def check_cache_folder(folder: Path) -> None:
    """Fail before a judge is trained if its cache ``folder`` cannot be created or written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise type(error)(f"judge cache folder {folder}: cannot write there ({error.strerror or error}); "
                          f"make it writable or set ${CACHE_ENV} to a writable folder") from None


def load_cached(path: Path, load, what: str, stacklevel: int = 3):
    """``load(path)``, or None (with a warning) when the cached file cannot be read: it is then trained again.

    stacklevel: the warning points at this many calls up (3: the caller of the caller)."""
    if not path.exists():
        return None
    try:
        return load(path)
    except (ValueError, KeyError, RuntimeError, OSError) as error:  # damaged, foreign or unreadable
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        warnings.warn(f"the cached {what} {path} cannot be read ({reason}); training it again", stacklevel=stacklevel)
        return None


def load_or_train(path: Path, load, train_and_save, what: str):
    """The judge cached at ``path`` (``load(path)``), else ``train_and_save()`` then ``load(path)``.

    One process trains it: another that asks meanwhile (two lessons run side by side) waits for
    ``path``'s lock, then loads what the first one saved.
    """
    judge = load_cached(path, load, what, stacklevel=4)
    if judge is not None:
        return judge
    damaged = path.exists()  # warned about once: it is trained again
    check_cache_folder(path.parent)
    with exclusive_lock(path, waiting=f"waiting: another process is training the {what} ..."):
        judge = None if damaged else load_cached(path, load, what, stacklevel=4)
        if judge is None:
            train_and_save()
            judge = load(path)
    return judge


def _load(path: Path, device) -> DigitJudge:
    state = read_saved(path, "judge cache")  # a damaged cache is an error, and is then trained again
    judge = DigitJudge()
    judge.load_state_dict(state["state_dict"])
    judge.test_accuracy = state["test_accuracy"]
    judge.train_seconds = state["train_seconds"]
    return judge.to(device).eval().requires_grad_(False)


_LOADED: dict[tuple[str, str], DigitJudge] = {}


def get_digit_judge(size: int = 28, device=None, config: JudgeConfig | None = None, verbose: bool = False) -> DigitJudge:
    """The trained digit judge for ``size`` x ``size`` digits: loaded from the cache, else trained (~30 s) and cached.

    size: 28 or 32, or a smaller size down to 8 for digits drawn small (:func:`digits_at`; the
    14-px judge reads the frames of moving digits in a 32-px frame). Returns the judge in eval
    mode with frozen weights; ``judge.test_accuracy`` is its accuracy on held-out fonts.
    ``config`` overrides the training recipe (tests use a tiny one).
    """
    if config is None:
        config = JudgeConfig(size=size)
    elif not isinstance(config, JudgeConfig):
        fail("config", "a JudgeConfig or None", type(config).__name__)
    elif config.size != size:
        fail("config", f"a JudgeConfig with size={size}", f"size={config.size}")
    from course_lib.data.digits import SIZES

    if size not in SIZES and not (isinstance(size, int) and SMALLEST <= size < min(SIZES)):
        fail("size", f"{' or '.join(map(str, SIZES))}, or a size in [{SMALLEST}, {min(SIZES) - 1}] (digits drawn "
             "small)", size)
    device = torch.device(device or "cpu")
    path = judge_path(config)
    if (str(path), str(device)) in _LOADED:
        return _LOADED[str(path), str(device)]

    def train_and_save() -> None:
        if verbose:
            print(f"Training the digit judge once (cached at {path}) ...")
        start = time.perf_counter()
        _save_atomically(train_judge(config), config, path, time.perf_counter() - start)

    judge = load_or_train(path, lambda p: _load(p, device), train_and_save, "digit judge")
    if verbose:
        print(f"Digit judge: {judge.test_accuracy:.1%} accuracy on held-out fonts.")
    _LOADED[str(path), str(device)] = judge
    return judge


def reference_digits(n: int = FID_SAMPLES, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Real digits to compare samples against: (n, 1, size, size) from the held-out test fonts."""
    from course_lib.data.digits import render_digits

    return render_digits(n, size, "test", seed=seed)[0]


def _check_images(name: str, x: torch.Tensor) -> None:
    check_tensor(name, x)
    check_rank(name, x, 4, "(N, 1, H, W)")
    if x.shape[0] < 2 or x.shape[1] != 1:
        fail(name, "at least 2 grey images (N, 1, H, W)", f"shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        fail(name, "only finite values", "NaN or inf entries")


def image_scores(
    samples: torch.Tensor, real: torch.Tensor, labels: torch.Tensor | None = None, judge: DigitJudge | None = None
) -> dict[str, float | None]:
    """Judge-based scores of generated digits -> ``{"IS": ..., "FID": ..., "accuracy": ...}``.

    samples: (N, 1, H, W) in [-1, 1]; real: (M, 1, H, W) real digits (e.g. :func:`reference_digits`);
    labels: (N,) the classes the samples were conditioned on, or None (then accuracy is None).
    IS (higher is better, at most 10) from the judge's logits; FID (lower is better) between judge
    features of samples and of real digits; accuracy: how often the judge reads the intended digit.
    Use N = M = FID_SAMPLES so that FIDs are comparable (the estimate is biased by 1/N).
    """
    _check_images("samples", samples)
    _check_images("real", real)
    if samples.shape[-2:] != real.shape[-2:]:
        fail("real", f"images of the samples' size {tuple(samples.shape[-2:])}", f"shape {tuple(real.shape)}")
    if labels is not None:
        check_rank("labels", check_tensor("labels", labels), 1, "(N,)")
        if len(labels) != len(samples) or labels.dtype.is_floating_point:
            fail("labels", f"{len(samples)} integer labels, one per sample", f"shape {tuple(labels.shape)}, dtype {labels.dtype}")
        if labels.min() < 0 or labels.max() >= NUM_CLASSES:
            fail("labels", f"digits in [0, {NUM_CLASSES - 1}]", f"values in [{int(labels.min())}, {int(labels.max())}]")
    judge = judge if judge is not None else get_digit_judge(size=samples.shape[-1])
    logits = judge.logits(samples)
    return {
        "IS": inception_score(logits),
        "FID": frechet_distance_from_features(judge.features(samples), judge.features(real)),
        "accuracy": accuracy(logits, labels) if labels is not None else None,
    }
