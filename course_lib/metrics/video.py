"""Video metrics: per-frame PSNR/SSIM, the video judge, an FVD-style distance and a video Inception Score.

* :func:`per_frame_psnr`, :func:`per_frame_ssim` -- compare a clip with its ground truth frame by
  frame (``course_lib.metrics.image`` on every frame): possible only when a reference exists
  (prediction, repair, reconstruction), and blind to anything a single frame cannot show.
* :func:`get_video_judge` -- our stand-in for the I3D network behind FVD (Unterthiner et al. 2018):
  a small space-time CNN trained here, in seconds, on the course's clips to read two things --
  *what* moves (the digit; for RGB clips the shape and colour) and *where to* (the compass
  direction of the motion, :func:`motion_direction`) -- cached like the digit judge.
* :func:`frechet_video_distance` -- the Fréchet distance between Gaussian fits of judge features
  of two sets of clips (a distance: 0 for equal fits, lower is better); :func:`video_scores` gives
  it with the video Inception Score (a score, not a distance: higher is better, at most the
  number of classes) and the judge's accuracy.
* :func:`score_samples` / :func:`real_clip_scores` -- the scores of a trained video model: n clips
  sampled from it (:func:`sample_in_batches`: time per batch), their FVD-style distance to real
  clips (judge :func:`video_judge_for` the recipe's clips), their motion-consistency pass rate
  (:mod:`course_lib.metrics.motion`) and their video consistency, part by part
  (:mod:`course_lib.metrics.consistency`: present, motion, look kept); and the floor, a second set
  of real clips scored alike.
* :func:`frame_digit_accuracy` -- for moving digits: the share of frames in which the judge reads
  the clip's digit (is one digit legible throughout?).

Why the sample count matters. A Gaussian fitted to N clips has a noisy mean and covariance, and
noise only adds distance: two sets of real clips from the *same* distribution score about
(constant / N) > 0. The estimate is biased upwards, more so for small N and for many features (the
judge has 128), so FVDs can be compared only at the same N: in this course that N is
:data:`FVD_SAMPLES`. And the judge was trained on the same domain it judges: its numbers say how
much generated clips look like *our* moving digits, and mean little for other videos.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from course_lib._files import atomic_save, read_saved
from course_lib._validation import check_int_range, check_positive_int, check_rank, check_tensor, fail
from course_lib.data.captions import compass_direction
from course_lib.data.video import PALETTE, SHAPE_KINDS, bouncing_shapes, check_video, moving_digits
from course_lib.metrics.frechet import frechet_distance_from_features
from course_lib.metrics.consistency import video_consistency
from course_lib.metrics.image import psnr, ssim
from course_lib.metrics.inception_score import inception_score
from course_lib.metrics.judge import accuracy, cache_dir, load_or_train
from course_lib.metrics.motion import MAX_AREA, MIN_AREA, motion_consistency, track_objects

FVD_SAMPLES = 500  # clips (generated and real) behind every FVD / video IS number in the course
VIDEO_JUDGE_VERSION = 1  # bump when the architecture or the training recipe changes: old caches are ignored
# Compass bins of the motion: bin k is the heading k·45° ± 22.5°, counter-clockwise from east.
DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
FEATURE_DIM = 128


# --- per-frame pixel metrics -------------------------------------------------------------------

def _check_video_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    check_video("pred", pred)
    check_video("target", target)
    if pred.shape != target.shape:
        fail("target", f"the shape of pred {tuple(pred.shape)}", f"shape {tuple(target.shape)}")


def per_frame_psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """PSNR = 10 · log10(R² / MSE) of every frame: pred, target (B, T, C, H, W) -> (B, T) in dB.

    Uses :func:`course_lib.metrics.image.psnr` per frame (R = ``data_range``, 2 for [-1, 1]); a frame
    equal to its target gives +inf.
    """
    _check_video_pair(pred, target)
    b, t = pred.shape[:2]
    values = psnr(pred.flatten(0, 1), target.flatten(0, 1), data_range=data_range, reduction="none")
    return values.view(b, t)


def per_frame_ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0,
                   window: str = "gaussian") -> torch.Tensor:
    """SSIM of every frame (:func:`course_lib.metrics.image.ssim`): (B, T, C, H, W) twice -> (B, T) in [-1, 1]."""
    _check_video_pair(pred, target)
    b, t = pred.shape[:2]
    values = ssim(pred.flatten(0, 1), target.flatten(0, 1), data_range=data_range, window=window, reduction="none")
    return values.view(b, t)


# --- what the judge learns to read ---------------------------------------------------------------

def motion_direction(velocity: torch.Tensor) -> torch.Tensor:
    """Compass bin of a velocity (dy, dx) in pixels per frame: (..., 2) -> (...) int64 in 0..7.

    Rows grow downwards, so "north" is dy < 0: heading θ = atan2(−dy, dx), bin k = round(θ / 45°)
    mod 8, named by :data:`DIRECTIONS` (0 = "E", 2 = "N", ...), the bins captions name
    (:func:`~course_lib.data.captions.compass_direction`). The judge reads the direction of the
    *first* frame's velocity (it flips at a bounce later in the clip).
    """
    return compass_direction(velocity)


@dataclass(frozen=True)
class VideoJudgeConfig:
    """How the video judge is trained. Every field is part of the cache key.

    channels=1: moving digits (one digit per clip), classes = the 10 digits, held-out clips use the
    test fonts. channels=3: bouncing shapes (one per clip), classes = shape kind × colour (12),
    held-out clips use another seed.
    """

    frames: int = 8
    size: int = 32
    channels: int = 1
    train_clips: int = 2000  # generated once (stored as uint8), sampled with replacement
    steps: int = 600
    batch_size: int = 32
    lr: float = 1e-2
    seed: int = 0
    test_clips: int = 500

    @property
    def num_classes(self) -> int:
        return 10 if self.channels == 1 else len(SHAPE_KINDS) * len(PALETTE)


def judge_clips(config: VideoJudgeConfig, n: int, split: str = "train", seed: int = 0):
    """n labelled clips for the judge -> (video (n, T, C, H, W), class (n,), direction (n,)).

    split="test" gives held-out clips: unseen fonts for digits, another seed stream for shapes.
    """
    if config.channels == 1:
        batch = moving_digits(n, frames=config.frames, size=config.size, seed=seed, split=split)
        classes = batch.labels[:, 0]
    else:
        stream = seed + (10_000 if split == "test" else 0)  # shapes have no fonts: held out = another stream
        batch = bouncing_shapes(n, frames=config.frames, size=config.size, seed=stream)
        colour = (batch.colors[:, 0, None, :] == PALETTE).all(-1).float().argmax(-1)  # (n,) index into PALETTE
        classes = batch.labels[:, 0] * len(PALETTE) + colour
    return batch.video, classes, motion_direction(batch.velocities[:, 0, 0])


# --- the network -------------------------------------------------------------------------------

class _PerFrame(nn.Module):
    """A 2D layer applied to every frame: (B, T, C, H, W) -> (B, T, C', H', W')."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(rearrange(x, "b t c h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b t c h w", b=x.shape[0])


class _AlongTime(nn.Module):
    """A (3, 1) convolution over frames at every pixel (the "(3,1,1)" half of a factorised 3D conv)."""

    def __init__(self, channels: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(channels, channels, (3, 1), padding=(1, 0)),
                                    nn.BatchNorm2d(channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(rearrange(x, "b t c h w -> b c t (h w)"))
        return rearrange(y, "b c t (h w) -> b t c h w", h=x.shape[-2])


def _space(cin: int, cout: int, downsample: str) -> _PerFrame:
    """3x3 conv per frame halving H and W: by max-pooling ("pool") or with stride 2 ("stride")."""
    if downsample == "pool":  # conv -> pool -> BN -> ReLU: the pool before BN saves 3/4 of its work
        return _PerFrame(nn.Conv2d(cin, cout, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.ReLU())
    return _PerFrame(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class VideoJudge(nn.Module):
    """video (B, T, C, H, W) in [-1, 1] -> features (B, 128) -> class logits (B, K), direction logits (B, 8).

    Factorised space-time CNN: per-frame 3x3 convs (8, 16, 64 channels; H -> H/2 -> H/4 -> H/8)
    with (3,1) convs along time after the second and third, global average over space, then the
    T per-frame vectors in order (so frame order matters) -> a 128-unit ReLU layer: the features.
    Built for one clip shape (frames, channels); any size that is a multiple of 8.
    """

    feature_dim = FEATURE_DIM

    def __init__(self, frames: int, channels: int, num_classes: int):
        super().__init__()
        self.frames, self.channels, self.num_classes = frames, channels, num_classes
        self.body = nn.Sequential(
            _space(channels, 8, "pool"),
            _space(8, 16, "pool"), _AlongTime(16),
            _space(16, 64, "stride"), _AlongTime(64),
        )
        self.project = nn.Sequential(nn.Linear(64 * frames, self.feature_dim), nn.ReLU())
        self.class_head = nn.Linear(self.feature_dim, num_classes)
        self.direction_head = nn.Linear(self.feature_dim, len(DIRECTIONS))
        self.test_accuracy: dict[str, float] | None = None  # {"class", "direction"} on held-out clips
        self.train_seconds: float | None = None

    def _features(self, video: torch.Tensor) -> torch.Tensor:
        per_frame = self.body(video).mean(dim=(-2, -1))  # (B, T, 64): global average over space
        return self.project(per_frame.flatten(1))  # (B, 128)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video (B, T, C, H, W) -> (class logits (B, K), direction logits (B, 8)), with gradients."""
        features = self._features(video)
        return self.class_head(features), self.direction_head(features)

    def _inference(self, video: torch.Tensor, part: str, batch_size: int = 256) -> torch.Tensor:
        check_video("video", video)
        if video.shape[0] == 0:
            fail("video", "at least one clip", "an empty batch (B = 0)")
        if video.shape[1] != self.frames or video.shape[2] != self.channels:
            fail("video", f"clips of {self.frames} frames and {self.channels} channel(s) (B, T, C, H, W), "
                 "like the judge's training clips", f"shape {tuple(video.shape)}")
        if video.shape[-1] % 8 or video.shape[-2] % 8:
            fail("video", "frames whose height and width are multiples of 8", f"shape {tuple(video.shape)}")
        device = next(self.parameters()).device
        head = {"features": nn.Identity(), "logits": self.class_head, "direction": self.direction_head}[part]
        was_training = self.training
        self.eval()
        outputs = []
        with torch.no_grad():
            for chunk in video.split(batch_size):
                outputs.append(head(self._features(chunk.to(device, torch.float32))).cpu())
        self.train(was_training)
        return torch.cat(outputs)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, C, H, W) in [-1, 1] -> (B, 128) features for the FVD (no grad, float32, on CPU)."""
        return self._inference(video, "features")

    def logits(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, C, H, W) -> (B, K) class scores (the digit): the video Inception Score's input."""
        return self._inference(video, "logits")

    def direction_logits(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, T, C, H, W) -> (B, 8) scores of the first frame's heading, bins :data:`DIRECTIONS`."""
        return self._inference(video, "direction")


# --- training and the cache ----------------------------------------------------------------------

def _as_bytes(video: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8 (a quarter of the memory): round((x + 1) · 127.5)."""
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _from_bytes(video: torch.Tensor) -> torch.Tensor:
    return video.float() / 127.5 - 1


def evaluate_judge(judge: VideoJudge, config: VideoJudgeConfig) -> dict[str, float]:
    """Accuracy of both heads on ``config.test_clips`` held-out clips -> {"class": ..., "direction": ...}."""
    video, classes, directions = judge_clips(config, config.test_clips, split="test", seed=config.seed + 1)
    return {"class": accuracy(judge.logits(video), classes),
            "direction": accuracy(judge.direction_logits(video), directions)}


def train_video_judge(config: VideoJudgeConfig = VideoJudgeConfig(), device=None) -> VideoJudge:
    """Train a judge from scratch; its ``test_accuracy`` is measured on held-out clips.

    Cross-entropy of both heads, summed; AdamW with a one-cycle learning rate; the initial weights
    and the batches come from ``config.seed`` (global RNG untouched).
    """
    device = torch.device(device or "cpu")
    g = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        judge = VideoJudge(config.frames, config.channels, config.num_classes)
    judge.to(device)
    video, classes, directions = judge_clips(config, config.train_clips, split="train", seed=config.seed)
    video = _as_bytes(video)
    optimiser = torch.optim.AdamW(judge.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    judge.train()
    for _ in range(config.steps):
        index = torch.randint(0, len(video), (config.batch_size,), generator=g)
        class_logits, direction_logits = judge(_from_bytes(video[index]).to(device))
        loss = (F.cross_entropy(class_logits, classes[index].to(device))
                + F.cross_entropy(direction_logits, directions[index].to(device)))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    judge.eval()
    judge.test_accuracy = evaluate_judge(judge, config)
    return judge


def _data_fingerprint(config: VideoJudgeConfig) -> str:
    """A hash of a few training clips and labels: changes whenever the data makers change."""
    small = dataclasses.replace(config, frames=min(config.frames, 4))
    video, classes, directions = judge_clips(small, 4, "train", seed=12345)
    payload = video.numpy().round(3).tobytes() + classes.numpy().tobytes() + directions.numpy().tobytes()
    return hashlib.sha256(payload).hexdigest()[:12]


def video_judge_path(config: VideoJudgeConfig) -> Path:
    """Cache file of the judge trained with ``config``: keyed by config, VIDEO_JUDGE_VERSION and data version."""
    key = json.dumps({"config": dataclasses.asdict(config), "version": VIDEO_JUDGE_VERSION,
                      "data": _data_fingerprint(config)}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"video_judge_{config.channels}c_{config.frames}f_{config.size}px_{digest}.pt"


def _save(judge: VideoJudge, config: VideoJudgeConfig, path: Path, train_seconds: float) -> None:
    atomic_save({"state_dict": judge.state_dict(), "config": dataclasses.asdict(config),
                 "test_accuracy": judge.test_accuracy, "train_seconds": train_seconds,
                 "version": VIDEO_JUDGE_VERSION}, path)


def _load(path: Path, config: VideoJudgeConfig, device: torch.device) -> VideoJudge:
    state = read_saved(path, "judge cache")  # a damaged cache is an error, and is then trained again
    judge = VideoJudge(config.frames, config.channels, config.num_classes)
    judge.load_state_dict(state["state_dict"])
    judge.test_accuracy = dict(state["test_accuracy"])
    judge.train_seconds = float(state["train_seconds"])
    return judge.to(device).eval().requires_grad_(False)


_LOADED: dict[tuple[str, str], VideoJudge] = {}


def get_video_judge(frames: int = 8, size: int = 32, channels: int = 1, device=None,
                    config: VideoJudgeConfig | None = None, verbose: bool = False) -> VideoJudge:
    """The trained video judge for clips (B, frames, channels, size, size): from the cache, else trained and cached.

    channels=1: moving digits; 3: bouncing shapes. Training takes about half a minute of one CPU
    core for 8 frames of 32x32 (``judge.train_seconds``) and happens once per cache folder
    (``$COURSE_CACHE``, default ~/.cache/course_lib). device: where it trains and runs (default CPU).
    Returns it in eval mode with frozen weights; ``judge.test_accuracy`` holds the accuracy of both
    heads on held-out clips. ``config`` overrides the training recipe (tests use a tiny one).
    """
    check_int_range("frames", frames, 2, 64)
    check_int_range("size", size, 16, 256)
    if size % 8:
        fail("size", "a multiple of 8 in [16, 256]", size)
    if channels not in (1, 3):
        fail("channels", "1 (moving digits) or 3 (bouncing shapes)", channels)
    wanted = {"frames": frames, "size": size, "channels": channels}
    if config is None:
        config = VideoJudgeConfig(**wanted)
    elif not isinstance(config, VideoJudgeConfig):
        fail("config", "a VideoJudgeConfig or None", type(config).__name__)
    elif any(getattr(config, name) != value for name, value in wanted.items()):
        fail("config", f"a VideoJudgeConfig with frames={frames}, size={size}, channels={channels}",
             f"frames={config.frames}, size={config.size}, channels={config.channels}")
    device = torch.device(device or "cpu")
    path = video_judge_path(config)
    if (str(path), str(device)) in _LOADED:
        return _LOADED[str(path), str(device)]

    def train_and_save() -> None:
        if verbose:
            print(f"Training the video judge once (cached at {path}) ...")
        start = time.perf_counter()
        _save(train_video_judge(config, device), config, path, time.perf_counter() - start)

    judge = load_or_train(path, lambda p: _load(p, config, device), train_and_save, "video judge")
    if verbose:
        print(f"Video judge: {judge.test_accuracy['class']:.1%} of held-out clips' classes and "
              f"{judge.test_accuracy['direction']:.1%} of their directions read right.")
    _LOADED[str(path), str(device)] = judge
    return judge


# --- distribution scores -------------------------------------------------------------------------

def frechet_video_distance(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """FVD-style distance: d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}) between Gaussian fits.

    features1 (N, F), features2 (M, F): judge features of two sets of clips (:meth:`VideoJudge.features`).
    The same function as FID (:func:`course_lib.metrics.frechet.frechet_distance_from_features`);
    biased upwards by about constant / N, so compare values at the same N (:data:`FVD_SAMPLES`).
    """
    return frechet_distance_from_features(features1, features2)


def _check_clips(name: str, video: torch.Tensor) -> None:
    check_video(name, video)
    if video.shape[0] < 2:
        fail(name, "at least 2 clips (B, T, C, H, W)", f"shape {tuple(video.shape)}")
    if not torch.isfinite(video).all():
        fail(name, "only finite values", "NaN or inf entries")


def video_scores(samples: torch.Tensor, real: torch.Tensor, labels: torch.Tensor | None = None,
                 judge: VideoJudge | None = None) -> dict[str, float | None]:
    """Judge-based scores of generated clips -> ``{"FVD": ..., "IS": ..., "accuracy": ...}``.

    samples (N, T, C, H, W), real (M, T, C, H, W) in [-1, 1]; labels (N,): the class each sample
    should show, or None (then accuracy is None). FVD (a distance, lower is better) between judge
    features of samples and real clips; IS (a score, higher is better, at most K) from the judge's
    class logits -- it never looks at the real clips, nor at the motion; accuracy: how often the
    judge reads the intended class. Use N = M = FVD_SAMPLES for numbers that can be compared.
    judge: default ``get_video_judge`` for the samples' frames, size and channels.
    """
    _check_clips("samples", samples)
    _check_clips("real", real)
    if samples.shape[1:] != real.shape[1:]:
        fail("real", f"clips shaped like the samples (T, C, H, W) = {tuple(samples.shape[1:])}",
             f"shape {tuple(real.shape)}")
    if judge is None:
        judge = get_video_judge(frames=samples.shape[1], size=samples.shape[-1], channels=samples.shape[2])
    if labels is not None:
        check_rank("labels", check_tensor("labels", labels), 1, "(N,)")
        if len(labels) != len(samples) or labels.dtype.is_floating_point:
            fail("labels", f"{len(samples)} integer labels, one per sample",
                 f"shape {tuple(labels.shape)}, dtype {labels.dtype}")
        k = judge.num_classes
        if labels.min() < 0 or labels.max() >= k:
            fail("labels", f"classes in [0, {k - 1}]", f"values in [{int(labels.min())}, {int(labels.max())}]")
    logits = judge.logits(samples)
    return {
        "FVD": frechet_video_distance(judge.features(samples), judge.features(real)),
        "IS": inception_score(logits),
        "accuracy": accuracy(logits, labels) if labels is not None else None,
    }


# --- a trained model's samples: time, FVD, motion ------------------------------------------------------

SMOKE_JUDGE_CHANGES = {"train_clips": 500, "steps": 100, "test_clips": 200}  # the smoke preset's lighter judge
REFERENCE_SEED = 2  # samples are compared with recipe.real_examples(n, seed=REFERENCE_SEED); the floor with seed + 1


def video_judge_for(recipe, changes: dict | None = None) -> VideoJudge:
    """The video judge for ``recipe``'s clips (frames, size, channels): the full one, or a lighter one in smoke.

    recipe: a video recipe (:func:`course_lib.workshop.recipes.get_recipe`). changes: fields of
    :class:`VideoJudgeConfig` to change (default: :data:`SMOKE_JUDGE_CHANGES` for the smoke preset,
    none otherwise). Trained once, then cached.
    """
    T, C, H, _ = recipe.example_shape
    if changes is None:
        changes = SMOKE_JUDGE_CHANGES if recipe.preset.name == "smoke" else {}
    config = VideoJudgeConfig(frames=T, size=H, channels=C, **changes)
    return get_video_judge(frames=T, size=H, channels=C, config=config)


@dataclass
class SampleScores:
    """n clips: seconds to sample a batch of ``batch`` clips, FVD-style distance to real clips, motion pass rate,
    and the video consistency: pass rate of each part and combined (``ConsistencyReport.rates``), and the
    share of clips that keep their look (``ConsistencyReport.look``)."""

    n: int
    batch: int
    seconds_per_batch: float
    fvd: float
    motion_pass: float
    consistency: dict[str, float] = dataclasses.field(default_factory=dict)
    look_kept: float = float("nan")

    @property
    def consistent(self) -> float:
        """Share of clips that pass every part of the video consistency."""
        return self.consistency["combined"]


def sample_in_batches(recipe, model: nn.Module, n: int, seed: int = 1, progress: bool = False,
                      batch_size: int | None = None, **sample_kwargs) -> tuple[torch.Tensor, float]:
    """(n clips (n, T, C, H, W) on the CPU, clamped to [-1, 1]; seconds spent in ``recipe.sample``).

    Drawn ``batch_size`` at a time (default ``recipe.batch_size``; the last batch smaller) from one
    generator seeded with ``seed``: the same seed and batch size give the same clips. sample_kwargs go
    to ``recipe.sample`` (steps, sampler, eta, guidance_scale). A class-conditional recipe (moving
    digits) draws clip i with label i mod 10 (``recipe.cycled_labels``).
    """
    check_positive_int("n", n)
    batch_size = recipe.batch_size if batch_size is None else check_positive_int("batch_size", batch_size)
    generator = torch.Generator().manual_seed(seed)
    labels = recipe.cycled_labels(n)
    chunks, seconds = [], 0.0
    for done in range(0, n, batch_size):
        size = min(batch_size, n - done)
        start = time.perf_counter()
        if labels is not None:
            sample_kwargs["labels"] = labels[done:done + size]
        chunks.append(recipe.sample(model, size, generator=generator, progress=progress, **sample_kwargs).cpu())
        seconds += time.perf_counter() - start
    return torch.cat(chunks).clamp(-1, 1), seconds


def score_clips(recipe, clips: torch.Tensor, judge: VideoJudge, seconds: float = 0.0,
                labels: torch.Tensor | None = None) -> SampleScores:
    """The scores of n clips of ``recipe``'s task that took ``seconds`` to sample.

    FVD-style distance to ``recipe.real_examples(n, REFERENCE_SEED)`` (judge features), the
    motion-consistency pass rate (:func:`course_lib.metrics.motion.motion_consistency`) and the video
    consistency (:func:`course_lib.metrics.consistency.video_consistency`; labels (n,): the digits
    class-conditional clips were asked for, or None); seconds per batch = seconds / n x ``recipe.batch_size``.
    """
    n = check_video("clips", clips).shape[0]
    reference = recipe.real_examples(n, seed=REFERENCE_SEED)
    fvd = frechet_video_distance(judge.features(clips), judge.features(reference))
    consistency = video_consistency(clips, recipe.object_size, labels=labels)
    return SampleScores(n, recipe.batch_size, seconds / n * recipe.batch_size, fvd,
                        float(motion_consistency(clips, recipe.object_size).pass_rate),
                        consistency=consistency.rates, look_kept=float(consistency.look.mean()))


def score_samples(recipe, model: nn.Module, n: int, judge: VideoJudge, steps: int | None = None, seed: int = 1,
                  progress: bool = False, **sample_kwargs) -> tuple[torch.Tensor, SampleScores]:
    """(n clips sampled from ``model``, their :func:`score_clips`).

    Clips are drawn ``recipe.batch_size`` at a time (:func:`sample_in_batches`) with ``steps``
    DDIM steps (default ``preset.sample_steps``) from noise seeded with ``seed``; sample_kwargs go
    to ``recipe.sample`` (e.g. ``sampler="ddpm"``).
    """
    check_positive_int("n", n)
    if n < 2:
        fail("n", "at least 2 clips (the FVD fits a covariance)", n)
    clips, seconds = sample_in_batches(recipe, model, n, seed, progress, steps=steps, **sample_kwargs)
    return clips, score_clips(recipe, clips, judge, seconds, labels=recipe.cycled_labels(n))


def real_clip_scores(recipe, n: int, judge: VideoJudge) -> SampleScores:
    """The floor: a second set of n real clips scored like samples (FVD against the same reference set,
    motion, video consistency)."""
    check_positive_int("n", n)
    return score_clips(recipe, recipe.real_examples(n, seed=REFERENCE_SEED + 1), judge)


# --- moving digits: is the clip's digit legible in every frame? -----------------------------------------

def _slide_toward_centre(frames: torch.Tensor, centres: np.ndarray, length: int) -> torch.Tensor:
    """Each frame made into a clip that slides it 1 px per frame diagonally toward the frame's centre.

    frames: (N, C, H, W), centres: (N, 2) the object's (y, x) (NaN: slide down-right) -> (N, length, C, H, W);
    clip frame k is the frame shifted by k pixels on each axis, the uncovered border at -1 (background).
    """
    n, c, h, w = frames.shape
    padded = F.pad(frames, (length,) * 4, value=-1.0)
    step_y = np.where(centres[:, 0] > (h - 1) / 2, -1, 1)  # toward the centre; NaN compares False -> +1
    step_x = np.where(centres[:, 1] > (w - 1) / 2, -1, 1)
    clips = torch.empty(n, length, c, h, w, dtype=frames.dtype)
    for sy in (-1, 1):
        for sx in (-1, 1):
            index = torch.from_numpy(np.flatnonzero((step_y == sy) & (step_x == sx)))
            for k in range(length):  # shifted by (sy·k, sx·k): read the window from (-sy·k, -sx·k)
                top, left = length - sy * k, length - sx * k
                clips[index, k] = padded[index, :, top:top + h, left:left + w]
    return clips


def frame_digit_readings(video: torch.Tensor, judge: nn.Module) -> tuple[torch.Tensor, np.ndarray]:
    """The video judge's digit in every frame, and where a frame shows one object of a digit's area.

    video: (B, T, 1, H, W) -> (digits (B, T), one_object (B, T) bool). The judge reads clips, not
    frames, so frame t is read as the clip that slides it 1 px per frame toward the centre: a digit
    held still is outside the clips the judge was trained on, which all move.
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    b, t = video.shape[:2]
    track, blobs, area = track_objects(video)
    object_size = max(8, round(28 * video.shape[-1] / 64))  # moving_digits' default digit box
    one_object = (blobs == 1) & (area >= MIN_AREA * object_size**2) & (area <= MAX_AREA * object_size**2)
    clips = _slide_toward_centre(video.flatten(0, 1).float(), track.reshape(b * t, 2), t)
    return judge.logits(clips).argmax(1).view(b, t), one_object


def frame_digit_accuracy(video: torch.Tensor, judge: nn.Module | None = None,
                         labels: torch.Tensor | None = None) -> float:
    """Share of frames in which the video judge recognises the clip's digit.

    video: (B, T, 1, H, W) moving digits in [-1, 1]. A frame counts when it shows one object of a
    digit's area (noise, empty or frame-filling frames never count) and the judge reads it
    (:func:`frame_digit_readings`) as the clip's digit: ``labels`` (B,) when known (real clips,
    or the digits samples were asked for), else the digit read most often in the clip's one-object
    frames (is one digit legible throughout?). judge: default the cached video judge for the clips' size.
    """
    check_rank("video", video, 5, "(B, T, C, H, W)")
    if video.shape[2] != 1:
        fail("video", "grey clips (B, T, 1, H, W) of moving digits", f"shape {tuple(video.shape)}")
    if labels is not None and tuple(labels.shape) != (video.shape[0],):
        fail("labels", f"one digit per clip, shape ({video.shape[0]},)", f"shape {tuple(labels.shape)}")
    judge = judge or get_video_judge(frames=video.shape[1], size=video.shape[-1], channels=1)
    digits, one_object = frame_digit_readings(video, judge)
    digits = digits.numpy()
    if labels is None:  # the clip's digit: the most frequent reading among its one-object frames
        counts = np.stack([((digits == d) & one_object).sum(1) for d in range(10)], 1)  # (B, 10)
        reference = counts.argmax(1)
    else:
        reference = labels.numpy()
    return float(((digits == reference[:, None]) & one_object).mean())
