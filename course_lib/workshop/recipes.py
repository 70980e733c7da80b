"""Recipes: one trainable task -- model, data, loss, schedule, sampler -- built from a name and a preset.

Notebooks, the command line and the benchmark never wire models, data and losses by hand::

    recipe = get_recipe("video-shapes")                  # the preset from get_preset()
    trainer = Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch, recipe.train_config())
    trainer.fit()
    clips = recipe.sample(trainer.ema_model, n=8)        # (8, T, 3, H, W) in [-1, 1]

Tasks and their models (the first is the default):

* ``toy-moons``    -- two moons (N, 2); ``mlp``;
* ``digits``       -- rendered digits (N, 1, H, W), class-conditional with label dropout for
  classifier-free guidance; ``unet2d``;
* ``video-shapes`` -- bouncing coloured shapes (B, T, 3, H, W); ``unet3d``, ``conv_lstm``, ``forcing``,
  ``autoencoder`` or ``dit``;
* ``video-digits`` -- moving digits (B, T, 1, H, W), class-conditional like ``digits`` (one label
  per clip: "a moving 7"); ``unet3d``, ``conv_lstm`` or ``forcing``;
* ``video-captions`` -- one bouncing shape per clip with its caption ("a red square moves left",
  :func:`~course_lib.data.captions.captioned_shapes`), caption-conditional with caption dropout for
  classifier-free guidance; ``dit``.

``forcing`` is the video U-Net of lesson 14 (with temporal convolutions and a frame embedding, like
lesson 08's predictor) trained by Diffusion Forcing: an independent noise level per frame
(:class:`~course_lib.diffusion.forcing.DiffusionForcingObjective`), for the preset's
``prediction_train_steps``; it samples whole clips, rolls out videos of any length and predicts
the future (:mod:`course_lib.diffusion.forcing`).

``autoencoder`` and ``dit`` are lesson 15's latent video diffusion (Rombach et al. 2022): the
``autoencoder`` recipe trains a per-frame VAE (:class:`~course_lib.models.autoencoder.VideoAutoencoder`,
loss MSE + β·KL); ``dit`` trains a space-time transformer on its scaled latents, the frozen
autoencoder inside the model (:class:`~course_lib.models.autoencoder.LatentDenoiser`), and its
samples are decoded to pixels. The zoo trains (or loads) the autoencoder before the transformer.
``video-captions`` (lesson 16) is the same latent transformer with a text encoder beside it
(:class:`~course_lib.models.text_encoder.CaptionConditioned`), on the latents of the ``video-shapes``
autoencoder: its clips are bouncing shapes too (one per clip), so it reuses that autoencoder.

:meth:`Recipe.key` hashes everything that changes the trained weights, so a checkpoint named by it
(``course_lib.workshop.zoo``) is never loaded for another recipe. :meth:`Recipe.info` is a plain dict
(stored in checkpoints) from which :meth:`Recipe.from_info` rebuilds the same recipe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib._validation import check_choice, check_float_range, check_positive_int, fail
from course_lib.config import Preset, get_preset
from course_lib.diffusion.forward import OBJECTIVES
from course_lib.diffusion.flow import FlowMatchingObjective
from course_lib.diffusion.forcing import DiffusionForcingObjective
from course_lib.diffusion.objectives import (
    CaptionObjective, DiffusionObjective, LatentObjective, SNRFocusedTimesteps, uniform_timesteps,
)
from course_lib.diffusion.schedules import SCHEDULES, NoiseSchedule, make_schedule
from course_lib.training import TrainConfig, model_signature

RECIPE_FORMAT = 1  # bump when the meaning of a stored recipe changes
TASK_MODELS: dict[str, tuple[str, ...]] = {  # task -> its models, default first
    "toy-moons": ("mlp",),
    "digits": ("unet2d",),
    "video-shapes": ("unet3d", "conv_lstm", "forcing", "autoencoder", "dit"),
    "video-digits": ("unet3d", "conv_lstm", "forcing"),
    "video-captions": ("dit",),
}
TASKS = tuple(TASK_MODELS)
# Tasks whose models take a label (the digit) and learn classifier-free guidance by label dropout.
# Moving digits are conditional too: an unconditional video model draws digits whose identity drifts
# from frame to frame (9 -> 8 -> 0); a label asks for one digit throughout.
CLASS_CONDITIONAL_TASKS = ("digits", "video-digits")
# The classifier-free guidance scale w the course samples its class-conditional tasks with (1: the
# plain conditional model; Ho & Salimans 2022): ``Recipe.guidance_scale``.
GUIDANCE_SCALE = 3.0
# Tasks whose clips come with captions: the model cross-attends to the caption's tokens and learns
# classifier-free guidance by caption dropout (probability ``label_dropout``). Guidance on the
# caption is sampled at w = CAPTION_GUIDANCE_SCALE (``Recipe.guidance_scale``).
CAPTION_TASKS = ("video-captions",)
CAPTION_GUIDANCE_SCALE = 4.0
SAMPLERS = ("ddim", "ddpm", "euler", "heun")  # euler, heun: the ODE solvers of the flow objective
# what a recipe's network learns: ε, x0 or v of the diffusion process, or the velocity of flow matching
RECIPE_OBJECTIVES = (*OBJECTIVES, "flow")
FLOW_TIME_SAMPLER = "logit-normal"  # flow matching draws its times from a logit-normal (Esser et al. 2024)
NUM_DIGIT_CLASSES = 10
# Lesson 15's latent space: c latent channels at k-times smaller frames, and the VAE's KL weight β
# (small, as in LDM: the KL only keeps the latents near the origin; the scale factor does the rest).
LATENT_CHANNELS = 4
COMPRESSION = 4
AUTOENCODER_BETA = 1e-4
AUTOENCODER_STEPS_DIVISOR = 4  # the autoencoder trains for video_train_steps / 4
# The latent transformer: AdamW peak lr (DiT trains at 1e-4 with batches of 256; a batch of 8 small
# clips learns faster at 1e-3), and 3 x video_train_steps: without a convolution's locality it needs
# longer than the U-Net (``python -m course_lib bench latent``, BENCHMARKS.md).
DIT_LR = 1e-3
DIT_WARMUP_STEPS = 100
DIT_STEPS_FACTOR = 3
# What ``get_recipe(..., **overrides)`` may change; everything else comes from the task and preset.
OVERRIDES = ("steps", "batch_size", "lr", "warmup_steps", "objective", "schedule", "seed", "label_dropout",
             "digit_images", "snr_focus")
# The noise levels where a video clip's object, colour and path are decided (see SNRFocusedTimesteps).
FOCUS_SNR = (1e-3, 0.1)
# TrainConfig fields that change the weights (the rest -- progress, logging, checkpoints -- do not).
TRAINING_FIELDS = ("lr", "weight_decay", "warmup_steps", "grad_clip", "ema_decay", "ema_warmup", "precision", "seed")


def is_video_task(task: str) -> bool:
    return task.startswith("video-")


# --- the recipe --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """One trainable task. Build it with :func:`get_recipe`; fields are the knobs that change the weights.

    steps: default number of training steps. batch_size: examples per step. lr / warmup_steps: AdamW
    peak learning rate and its linear warm-up. objective: what the network predicts ("eps", "x0",
    "v"), or "flow" (the velocity of flow matching, sampled by an ODE solver). schedule_name: the noise schedule ("linear", "cosine", "sigmoid") with
    ``preset.num_diffusion_steps`` steps. seed: model initialisation, data and noise streams.
    label_dropout: class-conditional tasks (``digits``, ``video-digits``): probability of the null
    label; captioned tasks (``video-captions``): of the null caption. digit_images: ``digits`` only, size of the rendered training set. snr_focus: share of
    training timesteps (or flow-matching times) drawn from the SNR range FOCUS_SNR
    (:class:`~course_lib.diffusion.objectives.SNRFocusedTimesteps`, :func:`~course_lib.diffusion.flow.focus_times`;
    0: all from the objective's own sampler; not for class-conditional tasks).
    """

    task: str
    model_name: str
    preset: Preset
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    objective: str = "eps"
    schedule_name: str = "linear"
    seed: int = 0
    label_dropout: float = 0.0
    digit_images: int = 0
    snr_focus: float = 0.0

    def __post_init__(self):
        check_choice("task", self.task, TASKS)
        check_choice("model", self.model_name, TASK_MODELS[self.task])
        if not isinstance(self.preset, Preset):
            fail("preset", "a preset name or a course_lib.config.Preset", type(self.preset).__name__)
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        check_float_range("lr", self.lr, 1e-8, 1.0)
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            fail("warmup_steps", "an int >= 0", self.warmup_steps)
        check_choice("objective", self.objective, RECIPE_OBJECTIVES)
        if self.task in CAPTION_TASKS and self.objective == "flow":
            fail("objective", f"'eps', 'x0' or 'v' for the task {self.task!r}", self.objective)
        if self.model_name == "forcing" and self.objective == "flow":
            fail("objective", "'eps', 'x0' or 'v' for the forcing model (its levels are diffusion timesteps)",
                 self.objective)
        check_choice("schedule", self.schedule_name, SCHEDULES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            fail("seed", "an int", self.seed)
        check_float_range("label_dropout", self.label_dropout, 0.0, 1.0)
        check_float_range("snr_focus", self.snr_focus, 0.0, 1.0)
        if self.task in CLASS_CONDITIONAL_TASKS and self.snr_focus:
            fail("snr_focus", f"0.0 for the class-conditional task {self.task!r}", self.snr_focus)
        if self.task == "digits":
            check_positive_int("digit_images", self.digit_images)

    # --- shapes and sizes -----------------------------------------------------------------------

    @property
    def num_classes(self) -> int | None:
        """10 for the class-conditional tasks (digits, moving digits), else None."""
        return NUM_DIGIT_CLASSES if self.task in CLASS_CONDITIONAL_TASKS else None

    @property
    def captioned(self) -> bool:
        """True for the caption-conditional tasks (:data:`CAPTION_TASKS`)."""
        return self.task in CAPTION_TASKS

    @property
    def guidance_scale(self) -> float | None:
        """w = :data:`GUIDANCE_SCALE` for the class-conditional tasks and :data:`CAPTION_GUIDANCE_SCALE`
        for the captioned ones (what the lessons and benchmarks sample with), else None. ``sample``'s
        default stays None: the plain conditional model."""
        if self.captioned:
            return CAPTION_GUIDANCE_SCALE
        return GUIDANCE_SCALE if self.num_classes is not None else None

    @property
    def channels(self) -> int:
        """Channels of one image or frame (3 for bouncing shapes, captioned or not; 1 for digits)."""
        return 3 if self.task in ("video-shapes", "video-captions") else 1

    @property
    def example_shape(self) -> tuple[int, ...]:
        """The shape of one example: (2,), (C, H, W) or (T, C, H, W)."""
        p = self.preset
        if self.task == "toy-moons":
            return (2,)
        if self.task == "digits":
            return (1, p.image_size, p.image_size)
        return (p.video_frames, self.channels, p.video_size, p.video_size)

    def cycled_labels(self, n: int) -> torch.Tensor | None:
        """The labels n samples of a class-conditional task are drawn with by default: 0, 1, ..., 9, 0, ...
        (n,) int64; None for an unconditional task."""
        check_positive_int("n", n)
        return None if self.num_classes is None else torch.arange(n) % self.num_classes

    @property
    def clip_x0(self) -> bool:
        """Whether the samplers clip each x̂0 to [-1, 1]: the range of pixels, not of latents. The ``dit``
        model's x̂0 is a latent, unbounded (about unit variance around each channel's own mean; Rombach
        et al. 2022 clip nothing): clipping it would flatten every value the objects live in."""
        return self.model_name != "dit"

    def sample_shape(self, n: int) -> tuple[int, ...]:
        """(n, *example_shape): what :meth:`sample` returns."""
        return (check_positive_int("n", n), *self.example_shape)

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """The ``autoencoder`` and ``dit`` models: one clip's latent (T, c, H/k, W/k)."""
        if self.model_name not in ("autoencoder", "dit"):
            fail("model", "'autoencoder' or 'dit' for latent_shape", self.model_name)
        frames, size = self.preset.video_frames, self.preset.video_size
        return (frames, LATENT_CHANNELS, size // COMPRESSION, size // COMPRESSION)

    def autoencoder_recipe(self) -> "Recipe":
        """The ``dit`` model: the recipe of the autoencoder whose latents it learns (trained first by the zoo)."""
        if self.model_name != "dit":
            fail("model", "'dit' for autoencoder_recipe", self.model_name)
        return get_recipe("video-shapes" if self.captioned else self.task, self.preset, "autoencoder")

    @property
    def object_size(self) -> float:
        """Typical object width in pixels of a video task (for ``motion_consistency``)."""
        if not is_video_task(self.task):
            fail("task", "a video task for object_size", self.task)
        size = self.preset.video_size
        if self.task == "video-digits":
            return float(max(8, round(28 * size / 64)))  # moving_digits' default digit box
        return (size / 5 + size / 3) / 2  # middle of bouncing_shapes' default widths

    # --- model ----------------------------------------------------------------------------------

    @property
    def model_config(self) -> dict[str, Any]:
        """How the network is built: {"factory": "module:function", "uses_preset": bool, "kwargs": {...}}.

        With "uses_preset" the factory is called as ``factory(preset, **kwargs)``, the preset first
        changed by "preset_changes" when present (e.g. 3 video channels for bouncing shapes).
        """
        if self.model_name == "mlp":
            return {"factory": "course_lib.models.mlp:MLPDenoiser", "uses_preset": False,
                    "kwargs": {"data_dim": 2, "hidden": 256, "depth": 3, "time_dim": 64}}
        if self.model_name == "unet2d":
            return {"factory": "course_lib.models.unet2d:unet2d_for_preset", "uses_preset": True,
                    "kwargs": {"num_classes": self.num_classes, "in_channels": self.channels}}
        if self.model_name in ("autoencoder", "dit"):
            name = "autoencoder_for_preset" if self.model_name == "autoencoder" else "latent_transformer_for_preset"
            kwargs = {"latent_channels": LATENT_CHANNELS, "compression": COMPRESSION}
            if self.num_classes is not None and self.model_name == "dit":
                kwargs["num_classes"] = self.num_classes
            if self.captioned:
                from course_lib.data.captions import VOCAB_SIZE

                kwargs["vocab_size"] = VOCAB_SIZE
            return {"factory": f"course_lib.models.autoencoder:{name}", "uses_preset": True, "kwargs": kwargs,
                    "preset_changes": {"video_channels": self.channels}}
        factory = {"unet3d": "course_lib.models.unet3d:unet3d_for_preset",
                   "forcing": "course_lib.models.unet3d:unet3d_for_preset",
                   "conv_lstm": "course_lib.models.conv_lstm:conv_lstm_for_preset"}[self.model_name]
        # the video builders read their channels from the preset: bouncing shapes are RGB in every preset
        kwargs = {} if self.num_classes is None else {"num_classes": self.num_classes}
        if self.model_name == "forcing":  # frame differences carry the velocity a rollout must keep
            kwargs.update(temporal_conv=True, frame_embedding=True)
        return {"factory": factory, "uses_preset": True, "kwargs": kwargs,
                "preset_changes": {"video_channels": self.channels}}

    def build_model(self) -> nn.Module:
        """A freshly initialised network; the initial weights depend only on ``seed`` (global RNG untouched)."""
        config = self.model_config
        module_name, function_name = config["factory"].split(":")
        try:
            factory = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"model: {self.model_name!r} needs {config['factory']}, which is not available "
                             f"in this version of course_lib ({error})") from error
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            preset = self.preset.replace(**config.get("preset_changes", {}))
            args = (preset,) if config["uses_preset"] else ()
            return factory(*args, **config["kwargs"])

    @cached_property
    def _signature(self) -> dict[str, Any]:
        return model_signature(self.build_model())

    # --- diffusion --------------------------------------------------------------------------------

    @cached_property
    def schedule(self) -> NoiseSchedule:
        """The noise schedule: ``schedule_name`` with ``preset.num_diffusion_steps`` steps."""
        return make_schedule(self.schedule_name, self.preset.num_diffusion_steps)

    @property
    def loss_fn(self):
        """``loss_fn(model, batch, generator)`` for the Trainer: the diffusion loss with the recipe's
        timesteps (focused by ``snr_focus``) or, with objective "flow", the flow-matching loss, or for
        the ``forcing`` model the same loss with a timestep per frame; for class-conditional tasks with
        label dropout. The ``dit`` model: the same losses on the latents of its autoencoder
        (:class:`~course_lib.diffusion.objectives.LatentObjective`), with the caption tokens for the
        captioned tasks (:class:`~course_lib.diffusion.objectives.CaptionObjective`); the
        ``autoencoder``: MSE + β·KL."""
        if self.model_name == "autoencoder":
            from course_lib.models.autoencoder import AutoencoderObjective

            return AutoencoderObjective(AUTOENCODER_BETA)
        if self.model_name == "dit":
            return LatentObjective(self._pixel_loss_fn)
        return self._pixel_loss_fn

    @property
    def _pixel_loss_fn(self) -> DiffusionObjective | FlowMatchingObjective | CaptionObjective:
        timesteps = SNRFocusedTimesteps(self.snr_focus, FOCUS_SNR) if self.snr_focus else uniform_timesteps
        conditional = {} if self.num_classes is None else dict(null_label=self.num_classes,
                                                                label_dropout=self.label_dropout)
        if self.captioned:
            return CaptionObjective(self.schedule, self.objective, timesteps)
        if self.model_name == "forcing":
            return DiffusionForcingObjective(self.schedule, self.objective, timesteps, **conditional)
        if self.objective == "flow":
            return FlowMatchingObjective(time_sampler=FLOW_TIME_SAMPLER, focus=self.snr_focus,
                                         focus_snr=FOCUS_SNR if self.snr_focus else None, **conditional)
        return DiffusionObjective(self.schedule, self.objective, timesteps, **conditional)

    # --- data -------------------------------------------------------------------------------------

    @cached_property
    def digit_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Digits task: the rendered training set, images (N, 1, H, W) in [-1, 1] and labels (N,)."""
        from course_lib.data.digits import render_digits

        if self.task != "digits":
            fail("task", "'digits' for digit_set", self.task)
        return render_digits(self.digit_images, size=self.preset.image_size, split="train", seed=self.seed)

    def make_batch(self, generator: torch.Generator):
        """A fresh training batch drawn with ``generator``: (B, 2) points, (images, labels), videos
        (B, T, C, H, W) of shapes, (videos, labels (B,)) of moving digits, or (videos, ids (B, L),
        mask (B, L)) of captioned shapes, each caption replaced by the null caption with probability
        ``label_dropout`` (:func:`~course_lib.data.captions.drop_captions`)."""
        p, b = self.preset, self.batch_size
        if self.captioned:
            from course_lib.data.captions import captioned_shapes, drop_captions, tokenize

            data = captioned_shapes(b, frames=p.video_frames, size=p.video_size, generator=generator)
            ids, mask = drop_captions(*tokenize(data.captions), self.label_dropout, generator)
            return data.clips.video, ids, mask
        if self.task == "toy-moons":
            from course_lib.data.toy import two_moons

            return two_moons(b, generator=generator)
        if self.task == "digits":
            images, labels = self.digit_set
            index = torch.randint(0, len(labels), (b,), generator=generator)
            return images[index], labels[index]
        from course_lib.data.video import bouncing_shapes, moving_digits

        if self.task == "video-shapes":
            return bouncing_shapes(b, frames=p.video_frames, size=p.video_size, generator=generator).video
        clips = moving_digits(b, frames=p.video_frames, size=p.video_size, generator=generator)
        return clips.video, clips.labels[:, 0]

    def real_examples(self, n: int, seed: int = 1) -> torch.Tensor:
        """n examples of the data (held-out fonts for digits), to compare samples against: (n, *example_shape)."""
        check_positive_int("n", n)
        g = torch.Generator().manual_seed(seed)
        if self.task == "toy-moons":
            from course_lib.data.toy import two_moons

            return two_moons(n, generator=g)
        if self.task == "digits":
            from course_lib.data.digits import render_digits

            return render_digits(n, size=self.preset.image_size, split="test", generator=g)[0]
        if self.captioned:
            return self.real_captioned(n, seed).clips.video
        from course_lib.data.video import bouncing_shapes, moving_digits

        maker = bouncing_shapes if self.task == "video-shapes" else moving_digits
        return maker(n, frames=self.preset.video_frames, size=self.preset.video_size, generator=g).video

    def real_captioned(self, n: int, seed: int = 1):
        """Captioned tasks: n held-out captioned clips (``CaptionedClips``: clips, captions, attributes);
        the captions are what :meth:`sample` asks for by default."""
        check_positive_int("n", n)
        if not self.captioned:
            fail("task", "a captioned task (" + ", ".join(CAPTION_TASKS) + ")", self.task)
        from course_lib.data.captions import captioned_shapes

        g = torch.Generator().manual_seed(seed)
        return captioned_shapes(n, frames=self.preset.video_frames, size=self.preset.video_size, generator=g)

    # --- training -------------------------------------------------------------------------------

    def train_config(self, steps: int | None = None, **changes) -> TrainConfig:
        """The TrainConfig of this recipe (precision, compile, progress from the preset), with ``changes``."""
        steps = self.steps if steps is None else check_positive_int("steps", steps)
        config = TrainConfig.from_preset(self.preset, steps, lr=self.lr, warmup_steps=self.warmup_steps,
                                         seed=self.seed)
        return config.replace(**changes)

    # --- sampling -------------------------------------------------------------------------------

    def sample(self, model: nn.Module, n: int, steps: int | None = None, sampler: str | None = None,
               generator: torch.Generator | None = None, guidance_scale: float | None = None,
               labels: torch.Tensor | None = None, progress: bool = False, eta: float = 0.0,
               captions: list[str] | str | None = None) -> torch.Tensor:
        """n samples (n, *example_shape) from ``model`` (e.g. ``trainer.ema_model``), on the model's device.

        The ``dit`` model samples latents (n, *latent_shape) and decodes them with its autoencoder.

        sampler: "ddim" (``steps`` steps, default ``preset.sample_steps``; deterministic with ``eta``
        = 0, fresh noise of scale η at each step otherwise, see :func:`~course_lib.diffusion.samplers.ddim_steps`)
        or "ddpm" (ancestral, always all T steps; ``eta`` must stay 0); for objective "flow", the ODE
        solvers "euler" (``steps`` network calls) or "heun" (2·steps − 1). Default: "ddim", or
        "euler" for flow. generator: the start noise and any later noise (default: seeded with ``seed``).
        Class-conditional tasks (digits, moving digits) only: labels (n,) the classes (default 0, 1,
        ..., 9, 0, ...); guidance_scale w for classifier-free guidance (None: the plain conditional
        model, same as w = 1; 0: the unconditional model, the null label). Captioned tasks: captions, n strings or one for all n (default: the
        captions of :meth:`real_captioned`); guidance_scale as for labels, on the caption (0: the null
        caption), see :func:`~course_lib.diffusion.guidance.caption_guided_denoiser`.
        """
        from course_lib.diffusion.flow import ode_steps, velocity_fn
        from course_lib.diffusion.samplers import ddim_steps, ddpm_steps

        if self.model_name == "autoencoder":
            fail("model", "a denoiser to sample from: the autoencoder only encodes and decodes "
                          "(model.reconstruct(clips)); sample from the 'dit' model trained on its latents",
                 self.model_name)
        shape = self.sample_shape(n) if self.model_name != "dit" else (n, *self.latent_shape)
        flow = self.objective == "flow"
        sampler = ("euler" if flow else "ddim") if sampler is None else sampler
        check_choice("sampler", sampler, SAMPLERS[2:] if flow else SAMPLERS[:2])
        T = self.preset.num_diffusion_steps
        if sampler == "ddpm" and steps not in (None, T):
            fail("steps", f"None or {T} for sampler='ddpm' (ancestral sampling visits every step)", steps)
        check_float_range("eta", eta, 0.0, 1.0)
        if sampler == "ddpm" and eta != 0:
            fail("eta", "0 for sampler='ddpm' (η belongs to DDIM; DDPM always adds its own noise)", eta)
        steps = self.preset.sample_steps if steps is None else steps
        if sampler == "ddim" and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T):
            fail("steps", f"an int in [1, {T}] (DDIM steps)", steps)
        if flow and eta != 0:
            fail("eta", "0 for the ODE solvers of flow matching (they add no noise)", eta)
        generator = torch.Generator().manual_seed(self.seed) if generator is None else generator
        device = next(model.parameters()).device
        model_fn = (self._caption_model_fn(model, n, captions, labels, guidance_scale) if self.captioned
                    else self._model_fn(model, n, labels, guidance_scale))
        if flow:
            trajectory = ode_steps(velocity_fn(model_fn), shape, steps=steps, solver=sampler, generator=generator,
                                   device=device)
        elif sampler == "ddim":
            trajectory = ddim_steps(model_fn, shape, self.schedule, steps=steps, eta=eta, objective=self.objective,
                                    generator=generator, device=device, clip_x0=self.clip_x0)
        else:
            trajectory = ddpm_steps(model_fn, shape, self.schedule, objective=self.objective,
                                    generator=generator, device=device, clip_x0=self.clip_x0)
        was_training = model.training
        model.eval()
        try:
            step = None
            for step in _maybe_progress(trajectory, progress, total=T if sampler == "ddpm" else steps):
                pass
        finally:
            model.train(was_training)
        return model.decode(step.x) if self.model_name == "dit" else step.x  # latents -> pixels

    def encoded_captions(self, model: nn.Module, captions: list[str] | str, n: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """A captioned model's context of n captions (or one string for all n): (context (n, L, D), mask (n, L))."""
        from course_lib.data.captions import tokenize

        if isinstance(captions, str):
            captions = [captions] * n
        if isinstance(captions, (list, tuple)) and len(captions) != n:
            fail("captions", f"{n} captions (one per sample) or one string for all", f"{len(captions)} captions")
        return _encode_tokens(model, *tokenize(captions))

    def _caption_model_fn(self, model: nn.Module, n: int, captions, labels, guidance_scale):
        """model(x_t, t, context) for the captions, or with classifier-free guidance on them."""
        from course_lib.data.captions import null_tokens
        from course_lib.diffusion.guidance import caption_guided_denoiser, check_guidance_scale

        if labels is not None:
            fail("labels", f"None: task {self.task!r} is conditioned on captions (captions=...)", "labels")
        captions = self.real_captioned(n).captions if captions is None else captions
        context, mask = self.encoded_captions(model, captions, n)
        if guidance_scale is None:
            return lambda x_t, t: model(x_t, t, context=context, context_mask=mask)
        check_guidance_scale(guidance_scale)
        null_context, null_mask = _encode_tokens(model, *null_tokens(n, mask.shape[1]))
        return caption_guided_denoiser(model, context, mask, null_context, null_mask, guidance_scale)

    def _model_fn(self, model: nn.Module, n: int, labels, guidance_scale):
        """model(x_t, t), or with labels / classifier-free guidance for the digits model."""
        if self.num_classes is None:
            if labels is not None:
                fail("labels", f"None: task {self.task!r} is not class-conditional", "labels")
            if guidance_scale is not None:
                fail("guidance_scale", f"None: task {self.task!r} is not class-conditional", guidance_scale)
            return model
        from course_lib.diffusion.guidance import guided_denoiser

        device = next(model.parameters()).device
        if labels is None:
            labels = self.cycled_labels(n)
        if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.dtype.is_floating_point:
            got = f"shape {tuple(labels.shape)}, dtype {labels.dtype}" if isinstance(labels, torch.Tensor) else labels
            fail("labels", f"an integer tensor of shape ({n},)", got)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            fail("labels", f"digits in [0, {self.num_classes - 1}]", f"values in [{int(labels.min())}, {int(labels.max())}]")
        labels = labels.to(device)
        if guidance_scale is not None:
            return guided_denoiser(model, labels, guidance_scale)
        return lambda x_t, t: model(x_t, t, labels)

    # --- identity -------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Every field as plain data (str, int, float, bool, None, dicts): stored in checkpoints."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["preset"] = dataclasses.asdict(self.preset)
        return {"format": RECIPE_FORMAT, **fields, "model_config": self.model_config}

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "Recipe":
        """The recipe :meth:`info` described (a bad or foreign dict is a clear error)."""
        if not isinstance(info, dict) or info.get("format") != RECIPE_FORMAT:
            got = info.get("format") if isinstance(info, dict) else type(info).__name__
            fail("info", f"a recipe description of format {RECIPE_FORMAT} (Recipe.info())", got)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in names if name not in info]
        if missing:
            fail("info", "a recipe description with the fields " + ", ".join(names), f"one without {missing}")
        values = {name: info[name] for name in names}
        values["preset"] = Preset(**info["preset"])
        return cls(**values)

    def key(self, steps: int | None = None) -> str:
        """A 12-hex-digit hash of everything that changes the weights trained for ``steps`` (default ``self.steps``).

        Covers task, model config and the network's signature (class + every parameter's shape),
        the preset fields used (through the resolved sizes), objective, schedule, data, the
        training hyperparameters, steps and seed. Same recipe and steps -> same key, in any process.
        """
        steps = self.steps if steps is None else check_positive_int("steps", steps)
        training = dataclasses.asdict(self.train_config(steps))
        described = {
            "format": RECIPE_FORMAT,
            "task": self.task,
            "model": self.model_name,
            "model_config": self.model_config,
            "signature": self._signature,
            "example_shape": list(self.example_shape),
            "num_diffusion_steps": self.preset.num_diffusion_steps,
            "schedule": self.schedule_name,
            "objective": self.objective,
            "batch_size": self.batch_size,
            "label_dropout": self.label_dropout if self.num_classes or self.captioned else None,  # conditional only
            "digit_images": self.digit_images if self.task == "digits" else None,
            "snr_focus": self.snr_focus,
            "steps": steps,
            "training": {name: training[name] for name in TRAINING_FIELDS},
        }
        if self.model_name == "dit":  # other autoencoder weights, other latents
            described["autoencoder"] = self.autoencoder_recipe().key()
        text = json.dumps(described, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def name(self, steps: int | None = None) -> str:
        """``<task>-<model>-<preset>-<key>``: the checkpoint's file name without ``.pt``."""
        return f"{self.task}-{self.model_name}-{self.preset.name}-{self.key(steps)}"

    def replace(self, **changes) -> "Recipe":
        """A copy with some fields changed (checked like :func:`get_recipe`'s overrides)."""
        return dataclasses.replace(self, **_rename_overrides(changes))


def _encode_tokens(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(model.encode_text(ids, mask), mask) on the model's device, without gradient."""
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    with torch.no_grad():
        return model.encode_text(ids, mask), mask


def _maybe_progress(iterator: Iterator, progress: bool, total: int) -> Iterator:
    return tqdm(iterator, total=total, desc="sampling", leave=False) if progress else iterator


def _rename_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Check override names; ``schedule`` is the field ``schedule_name``."""
    for key in overrides:
        if key not in OVERRIDES:
            fail("overrides", "names among " + ", ".join(OVERRIDES), key)
    renamed = dict(overrides)
    if "schedule" in renamed:
        renamed["schedule_name"] = renamed.pop("schedule")
    return renamed


def _defaults(task: str, preset: Preset) -> dict[str, Any]:
    """The recipe's fields for ``task`` at ``preset`` before overrides."""
    p = preset
    if task == "toy-moons":
        return dict(steps=p.toy_train_steps, batch_size=p.toy_batch_size, lr=1e-3, warmup_steps=0)
    if task == "digits":
        return dict(steps=p.image_train_steps, batch_size=p.image_batch_size, lr=5e-4, warmup_steps=100,
                    label_dropout=0.1, digit_images=50 * p.image_batch_size)
    # Video: x0-prediction and the linear schedule, a high lr and a short warm-up. x0 weights every
    # noise level alike, and the high-noise steps are where a clip's small object, its colour and its
    # path are decided; the linear schedule spends more of training at the low SNR where the object is
    # still visible than cosine does, and snr_focus draws half the timesteps from the SNR range
    # FOCUS_SNR where objects appear while sampling. A higher lr breaks long runs; moving digits need a
    # lower one to leave the constant (mean-frame) predictor. The runs behind these choices:
    # ``python -m course_lib bench quality`` (BENCHMARKS.md).
    if task == "video-captions":  # bouncing shapes' settings, and caption dropout for guidance
        return dict(steps=p.video_train_steps, batch_size=p.video_batch_size, lr=1e-3, warmup_steps=20,
                    objective="x0", schedule_name="linear", snr_focus=0.5, label_dropout=0.1)
    if task == "video-digits":  # class-conditional: label dropout and uniform timesteps
        return dict(steps=p.video_train_steps, batch_size=p.video_batch_size, lr=5e-4, warmup_steps=20,
                    objective="x0", schedule_name="linear", label_dropout=0.1)
    return dict(steps=p.video_train_steps, batch_size=p.video_batch_size, lr=1e-3, warmup_steps=20,
                objective="x0", schedule_name="linear", snr_focus=0.5)


def get_recipe(task: str, preset: str | Preset | None = None, model: str | None = None, **overrides) -> Recipe:
    """The recipe for ``task`` at ``preset`` (a name, a Preset, or None for ``get_preset()``).

    task: "toy-moons", "digits", "video-shapes", "video-digits" or "video-captions". model: the task's
    network ("mlp"; "unet2d"; "unet3d" (default), "conv_lstm" or "forcing" for video; "autoencoder" or
    "dit" for bouncing shapes; "dit" for captioned shapes). overrides: any of steps,
    batch_size, lr, warmup_steps, objective, schedule, seed, label_dropout, digit_images.
    """
    check_choice("task", task, TASKS)
    models = TASK_MODELS[task]
    model = models[0] if model is None else model
    if model not in models:
        fail("model", f"one of {', '.join(repr(m) for m in models)} for task {task!r}", model)
    if preset is None or isinstance(preset, str):
        preset = get_preset(preset)
    defaults = _defaults(task, preset)
    if model == "forcing":  # rollouts compound errors: it trains as long as lesson 08's predictor
        defaults["steps"] = preset.prediction_train_steps
    if model == "autoencoder":  # reconstruction only: MSE + β·KL converges in a fraction of the denoiser's steps
        defaults.update(steps=max(1, preset.video_train_steps // AUTOENCODER_STEPS_DIVISOR), lr=2e-3, snr_focus=0.0)
    if model == "dit":  # without a convolution's locality the transformer needs longer than the U-Net
        defaults.update(steps=DIT_STEPS_FACTOR * preset.video_train_steps, lr=DIT_LR, warmup_steps=DIT_WARMUP_STEPS)
    return Recipe(task=task, model_name=model, preset=preset, **{**defaults, **_rename_overrides(overrides)})
