"""Every diffusion training loss of the course, each a ``loss_fn(model, batch, generator) -> scalar``.

The trainer calls ``loss_fn(model, batch, generator)``; everything random in a loss (which t,
which ε, which labels are dropped, which frames are known) is drawn from ``generator``, in the
order each docstring gives, so a resumed run replays it exactly. ``batch`` is x0 (B, ...) or a
tuple/list whose first item is x0 (and whose second, for class-conditional models, the labels (B,)).

* which timesteps a loss trains on is an argument, a *timestep sampler*
  ``timesteps(batch, schedule, generator) -> (batch,) int64``: :func:`uniform_timesteps` (Ho et
  al. 2020) or :class:`SNRFocusedTimesteps` (more of the training where samples take shape);
* :func:`diffusion_loss` and :class:`DiffusionObjective`: the simple loss for the targets ε, x0
  or v, with label dropout (:func:`drop_labels`) for classifier-free guidance;
* :func:`joint_losses` and :class:`JointImageVideoObjective`: clips and images in one batch;
* :class:`FrameConditionalObjective`: a video model that sees a random prefix of known frames.

Flow matching has its own loss beside its samplers (:mod:`course_lib.diffusion.flow`), and so has
Diffusion Forcing, a noise level per frame (:mod:`course_lib.diffusion.forcing`).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import (
    check_choice, check_float_range, check_int_range, check_positive_int, check_rank, check_tensor, fail,
)
from course_lib.diffusion.conditioning import check_context_noise
from course_lib.diffusion.forward import OBJECTIVES, q_sample, randn_like, training_target
from course_lib.diffusion.schedules import NoiseSchedule

TimestepSampler = Callable[[int, NoiseSchedule, "torch.Generator | None"], torch.Tensor]


# --- timestep samplers ----------------------------------------------------------------------------

def uniform_timesteps(batch: int, schedule: NoiseSchedule, generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch,) int64 t ~ Uniform{0, …, T−1} (Ho et al. 2020, Algorithm 1), on the generator's device."""
    device = generator.device if generator is not None else "cpu"
    return torch.randint(0, schedule.num_steps, (batch,), generator=generator, device=device)


@dataclass(frozen=True)
class SNRFocusedTimesteps:
    """A timestep sampler with more of the training on the noise levels where samples take their shape.

    With probability ``focus`` t is uniform over the steps whose SNR_t = ᾱ_t/(1 − ᾱ_t) lies in
    ``snr_range`` (the step nearest to the range if none does), else uniform over all T steps.
    Each t's best prediction is unchanged (the same conditional mean); only how much of the
    training each t gets changes. Draws, in order: the uniform t, the focused t, the coin.
    """

    focus: float
    snr_range: tuple[float, float]

    def __post_init__(self):
        check_float_range("focus", self.focus, 0.0, 1.0)
        low, high = self.snr_range
        if not 0 < low <= high:
            fail("snr_range", "a pair (low, high) with 0 < low <= high", self.snr_range)

    def focus_steps(self, schedule: NoiseSchedule) -> torch.Tensor:
        """The steps t (K,) whose SNR_t lies in ``snr_range``, or the one step nearest to it (log scale)."""
        low, high = self.snr_range
        snr = schedule.alpha_bars / (1 - schedule.alpha_bars)
        steps = torch.nonzero((snr >= low) & (snr <= high)).flatten()
        if len(steps) == 0:  # a short chain may step over the range
            distance = (snr.log() - torch.tensor([low, high], dtype=snr.dtype).log().mean()).abs()
            steps = distance.argmin().reshape(1)
        return steps

    def __call__(self, batch: int, schedule: NoiseSchedule, generator: torch.Generator | None = None) -> torch.Tensor:
        device = generator.device if generator is not None else "cpu"
        steps = self.focus_steps(schedule).to(device)
        everywhere = torch.randint(0, schedule.num_steps, (batch,), generator=generator, device=device)
        focused = steps[torch.randint(0, len(steps), (batch,), generator=generator, device=device)]
        return torch.where(torch.rand(batch, generator=generator, device=device) < self.focus, focused, everywhere)


# --- label dropout --------------------------------------------------------------------------------

def drop_labels(y: torch.Tensor, p: float, generator: torch.Generator | None = None, *,
                null_label: int) -> torch.Tensor:
    """Replace each label by ``null_label`` with probability ``p`` (label dropout, Ho & Salimans 2022).

    y: (B,) int labels -> (B,) a new tensor. Training on both conditional and "null" labels teaches
    one network ε(x_t, t, y) and ε(x_t, t, ∅), which classifier-free guidance mixes when sampling;
    typical p is 0.1-0.2. ``null_label`` is the model's ``null_label`` (= num_classes). Draws one
    coin per label, also when p is 0 or 1.
    """
    check_rank("y", y, 1, "(B,)")
    check_float_range("p", p, 0.0, 1.0)
    if isinstance(null_label, bool) or not isinstance(null_label, int) or null_label < 1:
        fail("null_label", "a positive int (the model's num_classes)", null_label)
    coin = torch.rand(y.shape, generator=generator, device=generator.device if generator is not None else "cpu")
    return torch.where(coin.to(y.device) < p, torch.full_like(y, null_label), y)


def batch_x0(batch) -> torch.Tensor:
    """x0 of a training batch: the batch itself, or the first item of a tuple/list."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def batch_labels(batch, x0: torch.Tensor) -> torch.Tensor:
    """The labels (B,) of a class-conditional batch (x0, labels)."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        fail("batch", "(x0, labels) for a class-conditional objective", type(batch).__name__)
    labels = check_tensor("labels", batch[1])
    if labels.shape != (x0.shape[0],):
        fail("labels", f"one label per example, shape ({x0.shape[0]},)", f"shape {tuple(labels.shape)}")
    return labels


def label_kwargs(batch, x0: torch.Tensor, null_label: int | None, label_dropout: float,
                 generator: torch.Generator | None = None) -> dict | None:
    """The model's keyword arguments for a batch: ``{"y": labels}`` with each label dropped to
    ``null_label`` with probability ``label_dropout`` (:func:`drop_labels`) for a class-conditional
    objective, or None without ``null_label`` (the rest of a tuple batch is then ignored)."""
    if null_label is None:
        return None
    return {"y": drop_labels(batch_labels(batch, x0), label_dropout, generator, null_label=null_label)}


# --- the simple diffusion loss --------------------------------------------------------------------

def diffusion_loss(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    objective: str = "eps",
    generator: torch.Generator | None = None,
    model_kwargs: dict | None = None,
    timesteps: TimestepSampler = uniform_timesteps,
) -> torch.Tensor:
    """The simple loss of Ho et al. 2020 (Eq. 14) for any objective: E_{t, ε} ‖target − model(x_t, t)‖².

    t ~ ``timesteps`` (default uniform over 0..T−1), then ε ~ N(0, I), both drawn from
    ``generator``; x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (Eq. 4). For the same x_t the errors are tied by
    ‖ε − ε̂‖² = SNR_t·‖x0 − x̂0‖² and ‖v − v̂‖² = (1 + SNR_t)·‖x0 − x̂0‖² (:func:`objective_weight`).
    x0: (B, ...) -> scalar.
    """
    check_tensor("x0", x0)
    check_choice("objective", objective, OBJECTIVES)
    t = timesteps(x0.shape[0], schedule, generator).to(x0.device)
    eps = randn_like(x0, generator)
    x_t = q_sample(x0, t, schedule, noise=eps)
    prediction = model(x_t, t, **(model_kwargs or {}))
    if not isinstance(prediction, torch.Tensor):
        fail("model output", f"a torch.Tensor of the shape of x0 {tuple(x0.shape)}", type(prediction).__name__)
    if prediction.shape != x0.shape:
        fail("model output", f"the shape of x0 {tuple(x0.shape)}", f"shape {tuple(prediction.shape)}")
    return F.mse_loss(prediction.float(), training_target(x0, eps, t, schedule, objective).float())


def check_objective_and_timesteps(objective: str, timesteps: object) -> None:
    """The two arguments every diffusion loss takes: the target's name and the timestep sampler."""
    check_choice("objective", objective, OBJECTIVES)
    if not callable(timesteps):
        fail("timesteps", "a timestep sampler timesteps(batch, schedule, generator)", type(timesteps).__name__)


@dataclass
class DiffusionObjective:
    """``loss_fn`` for the trainer: :func:`diffusion_loss` on the batch's x0.

    ``objective`` picks the target: "eps" (ε, Ho et al. 2020), "x0" (the clean data) or "v"
    (v = √ᾱ_t ε − √(1 − ᾱ_t) x0, Salimans & Ho 2022). For the same x_t, a prediction of any kind
    fixes the other two (x0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t), and the three squared errors are tied:

        ‖ε − ε̂‖² = SNR_t · ‖x0 − x̂0‖²          ‖v − v̂‖² = (1 + SNR_t) · ‖x0 − x̂0‖²,

    with SNR_t = ᾱ_t / (1 − ᾱ_t) (Salimans & Ho 2022, Sec. 4; Kingma et al. 2021). Relative to
    ε-MSE the x0-MSE is weighted by 1/SNR_t and the v-MSE by 1/ᾱ_t = 1 + 1/SNR_t. So the ε loss
    barely cares about x0 errors at high noise (SNR → 0) and stresses nearly clean steps, the x0
    loss weights all steps alike in data space, and v sits between: never below x0's weight and
    never below ε's. :func:`objective_weight` gives these weights.

    timesteps: the timestep sampler (:func:`uniform_timesteps`, :class:`SNRFocusedTimesteps`).
    null_label: for a class-conditional model (its num_classes), the batch is (x0, labels (B,)),
    each label is dropped to ``null_label`` with probability ``label_dropout`` (:func:`drop_labels`)
    and reaches the model as ``y``. Draws, in order: the label coins, t, ε.
    """

    schedule: NoiseSchedule
    objective: str = "eps"
    timesteps: TimestepSampler = uniform_timesteps
    null_label: int | None = None
    label_dropout: float = 0.0

    def __post_init__(self):
        check_objective_and_timesteps(self.objective, self.timesteps)
        check_float_range("label_dropout", self.label_dropout, 0.0, 1.0)
        if self.null_label is not None:
            check_positive_int("null_label", self.null_label)
        elif self.label_dropout > 0:
            fail("null_label", "the model's num_classes when label_dropout > 0", None)

    def __call__(self, model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        x0 = batch_x0(batch)
        model_kwargs = label_kwargs(batch, x0, self.null_label, self.label_dropout, generator)
        return diffusion_loss(model, x0, self.schedule, self.objective, generator, model_kwargs, self.timesteps)


@dataclass
class CaptionObjective:
    """``loss_fn`` of a caption-conditioned denoiser: :func:`diffusion_loss` with the batch's caption tokens.

    batch: (x0, ids (B, L), mask (B, L) bool); the model is called ``model(x_t, t, ids=ids, mask=mask)``
    (:class:`~course_lib.models.text_encoder.CaptionConditioned`), so the gradient reaches the text
    encoder too. Caption dropout -- the null caption ∅ that classifier-free guidance needs -- is
    done where the batch is drawn (:func:`~course_lib.data.captions.drop_captions`), as a dataset
    drops captions. Draws t, then ε.
    """

    schedule: NoiseSchedule
    objective: str = "eps"
    timesteps: TimestepSampler = uniform_timesteps

    def __post_init__(self):
        check_objective_and_timesteps(self.objective, self.timesteps)

    def __call__(self, model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        if not isinstance(batch, (tuple, list)) or len(batch) != 3:
            fail("batch", "(x0, ids, mask): clips and their caption tokens", type(batch).__name__)
        x0, ids, mask = batch
        return diffusion_loss(model, x0, self.schedule, self.objective, generator, {"ids": ids, "mask": mask},
                              self.timesteps)


def objective_weight(schedule: NoiseSchedule, objective: str) -> torch.Tensor:
    """(T,) w_t with MSE_objective = w_t · ‖x0 − x̂0‖² at each t: SNR_t for "eps", 1 for "x0", 1 + SNR_t for "v"."""
    check_choice("objective", objective, OBJECTIVES)
    if objective == "x0":
        return torch.ones_like(schedule.snr)
    return schedule.snr.clone() if objective == "eps" else 1 + schedule.snr


# --- joint image + video training (Ho et al. 2022a, "Video Diffusion Models", Sec. 3.2 / 4.3) ----------
#
# One network learns from clips *and* from independent images. The video U-Net of notebook 07 takes
# a flag ``image_mode``: with it, temporal attention lets every frame attend only to itself, so a
# (B, T, C, H, W) batch of T *unrelated* frames per "clip" is denoised exactly like T images by an
# image model with the same weights. The loss of a joint batch is the plain diffusion loss of both
# parts, weighted by their sizes:
#
#     L = (n_video · L_video + n_image · L_image) / B      (L_* = Ho et al. 2020, Eq. 14, on each part)
#
# where the first n_video clips of the batch are used as clips and the last n_image =
# round(image_fraction · B) are replaced by *image groups*: T frames drawn at random from all the
# frames of the batch, so that frames in one group come from different clips and share nothing but
# the timestep. Here the images are frames of the same data set; in the paper they come from a large
# image set.

def _video_batch(name: str, batch) -> torch.Tensor:
    """The clips of ``batch`` (a tensor, or a tuple/list whose first item is the clips): (B, T, C, H, W)."""
    video = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    check_tensor(name, video)
    if video.dim() != 5:
        fail(name, "video clips of rank 5 (B, T, C, H, W) (joint training makes its image groups from "
                   "frames of clips; for images (B, C, H, W) use x.unsqueeze(1))", f"shape {tuple(video.shape)}")
    return video


def image_groups(video: torch.Tensor, groups: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``groups`` groups of T independent frames drawn from the frames of ``video``: -> (groups, T, C, H, W).

    video: (B, T, C, H, W). The groups·T frames are drawn without replacement when the batch has
    enough frames (with replacement otherwise), so one group mixes frames of different clips and
    different times: a batch of images laid out like clips, for ``image_mode=True``.
    """
    video = _video_batch("video", video)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 0:
        fail("groups", "an int >= 0", groups)
    B, T = video.shape[:2]
    frames = video.reshape(B * T, *video.shape[2:])  # (B·T, C, H, W): every frame of the batch
    wanted = groups * T
    device = generator.device if generator is not None else "cpu"
    if wanted <= B * T:
        index = torch.randperm(B * T, generator=generator, device=device)[:wanted]
    else:
        index = torch.randint(0, B * T, (wanted,), generator=generator, device=device)
    return frames[index.to(video.device)].reshape(groups, T, *video.shape[2:])


def accepts_image_mode(model: nn.Module) -> bool:
    """Whether ``model``'s forward takes ``image_mode`` (looks through DDP's ``.module`` and compile's ``._orig_mod``)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    forward = getattr(inner, "forward", inner)
    try:
        return "image_mode" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False


def split_batch(batch_size: int, image_fraction: float) -> tuple[int, int]:
    """(n_video, n_image) for a batch of ``batch_size`` clips: n_image = round(image_fraction · batch_size)."""
    check_float_range("image_fraction", image_fraction, 0.0, 1.0)
    n_image = int(round(image_fraction * batch_size))
    return batch_size - n_image, n_image


def joint_losses(model: nn.Module, batch, schedule: NoiseSchedule, objective: str = "eps",
                 image_fraction: float = 0.25, generator: torch.Generator | None = None,
                 timesteps: TimestepSampler = uniform_timesteps) -> dict[str, torch.Tensor]:
    """The two parts of the joint loss -> {"video": L_video, "image": L_image, "total": L} (scalars).

    batch: clips (B, T, C, H, W), or a tuple/list whose first item is the clips. The first n_video
    clips are denoised as clips; n_image groups of independent frames (:func:`image_groups`) are
    denoised with ``model(x_t, t, image_mode=True)``. A part with no examples has loss 0 and
    weight 0. Draws, in order: the video part's t and ε, the image groups, the image part's t and ε.
    """
    video = _video_batch("batch", batch)
    check_choice("objective", objective, OBJECTIVES)
    n_video, n_image = split_batch(video.shape[0], image_fraction)
    zero = video.new_zeros(())
    loss_video = zero
    if n_video:
        loss_video = diffusion_loss(model, video[:n_video], schedule, objective, generator, timesteps=timesteps)
    loss_image = zero
    if n_image:
        if not accepts_image_mode(model):
            fail("model", "a video model whose forward takes image_mode (UNet3D) when image groups are used "
                          "(image_fraction > 0)", type(model).__name__)
        images = image_groups(video, n_image, generator)  # frames of the whole batch
        loss_image = diffusion_loss(model, images, schedule, objective, generator, {"image_mode": True}, timesteps)
    total = (n_video * loss_video + n_image * loss_image) / video.shape[0]
    return {"video": loss_video, "image": loss_image, "total": total}


@dataclass
class JointImageVideoObjective:
    """``loss_fn(model, batch, generator)`` for the Trainer: :func:`joint_losses`' total.

    Use it in place of a recipe's ``loss_fn``:
    ``Trainer(recipe.build_model(), JointImageVideoObjective(recipe.schedule, recipe.objective), recipe.make_batch, ...)``.
    """

    schedule: NoiseSchedule
    objective: str = "eps"
    image_fraction: float = 0.25
    timesteps: TimestepSampler = uniform_timesteps

    def __post_init__(self):
        check_objective_and_timesteps(self.objective, self.timesteps)
        check_float_range("image_fraction", self.image_fraction, 0.0, 1.0)

    def __call__(self, model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        return joint_losses(model, batch, self.schedule, self.objective, self.image_fraction, generator,
                            self.timesteps)["total"]


# --- frame-conditional training (MCVD, Voleti et al. 2022; RaMViD, Höppe et al. 2022) ---------------

def random_prefix_mask(batch: int, frames: int, generator: torch.Generator | None = None,
                       max_known: int | None = None, focus: int | None = None) -> torch.Tensor:
    """(B, T, 1, 1, 1): per clip the first k frames known, k uniform in {0, …, max_known} (default T − 1).

    focus: a count k* whose task matters most (the rollout's keep): half the clips, drawn at random,
    get exactly k* known frames instead, so training spends half its batch on the task that is used.
    """
    check_positive_int("batch", batch)
    check_positive_int("frames", frames)
    max_known = frames - 1 if max_known is None else max_known
    if isinstance(max_known, bool) or not isinstance(max_known, int) or not 0 <= max_known < frames:
        fail("max_known", f"an int in [0, {frames - 1}] (at least one frame left to generate)", max_known)
    k = torch.randint(0, max_known + 1, (batch,), generator=generator)
    if focus is not None:
        check_int_range("focus", focus, 0, max_known)
        k = torch.where(torch.rand(batch, generator=generator) < 0.5, torch.full_like(k, focus), k)
    return (torch.arange(frames)[None, :] < k[:, None]).float().view(batch, frames, 1, 1, 1)


class FrameConditionalObjective:
    """``loss_fn(model, x0, generator)`` for the Trainer: the diffusion loss on the frames to generate.

    x0: (B, T, C, H, W). A random prefix of each clip is known (:func:`random_prefix_mask`); with
    x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (Ho et al. 2020, Eq. 4) on *all* frames, the model is called as
    ``model(x_t, t, m·x0, m)`` and
    loss = Σ (1 − m)·(target − model(x_t, t, m·x0, m))² / Σ (1 − m), target ε, x0 or v.

    context_noise: conditioning augmentation (Ho et al. 2022c, "Cascaded Diffusion Models").
    With s > 0, each clip's known frames are first put through the forward process to a step drawn
    uniformly from {0, …, s}: the network learns to predict crisp frames from a dimmed, noisy past,
    which is what it is given in a long rollout, where the past is its own earlier output.

    focus_known: k* known frames for half the clips (:func:`random_prefix_mask`), e.g. T/2, the
    prediction task and the rollout's keep of notebook 08; None: k uniform for every clip.
    timesteps: the timestep sampler (default uniform). Draws, in order: the mask, t, ε, and with
    context noise each clip's s and the noise of its known frames.
    """

    def __init__(self, schedule: NoiseSchedule, objective: str = "eps", max_known: int | None = None,
                 context_noise: int = 0, focus_known: int | None = None,
                 timesteps: TimestepSampler = uniform_timesteps):
        check_choice("objective", objective, OBJECTIVES)
        self.schedule, self.objective, self.max_known, self.timesteps = schedule, objective, max_known, timesteps
        if focus_known is not None and (isinstance(focus_known, bool) or not isinstance(focus_known, int)
                                        or focus_known < 0):
            fail("focus_known", "None or an int >= 0 (known frames for half the clips)", focus_known)
        self.focus_known = focus_known
        self.context_noise = check_context_noise(context_noise, schedule)

    def __call__(self, model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        x0 = batch_x0(batch)
        check_rank("x0", x0, 5, "(B, T, C, H, W)")
        b, frames = x0.shape[:2]
        mask = random_prefix_mask(b, frames, generator, self.max_known, self.focus_known).to(x0.device)
        t = self.timesteps(b, self.schedule, generator).to(x0.device)
        eps = randn_like(x0, generator)
        clip = x0
        if self.context_noise:  # only the known frames change; the frames to generate stay the targets
            s = torch.randint(0, self.context_noise + 1, (b,), generator=generator).to(x0.device)
            clip = mask * q_sample(x0, s, self.schedule, noise=randn_like(x0, generator)) + (1 - mask) * x0
        x_t = q_sample(clip, t, self.schedule, noise=eps)
        prediction = model(x_t, t, clip * mask, mask).float()
        target = training_target(x0, eps, t, self.schedule, self.objective).float()
        generate = (1 - mask).expand_as(x0)
        return ((prediction - target) ** 2 * generate).sum() / generate.sum()


# --- latent diffusion (Rombach et al. 2022) ----------------------------------------------------------

class LatentObjective:
    """Any loss above, on latents: x0 is replaced by z0 = model.encode(x0) before ``objective`` sees it.

    Latent diffusion (Rombach et al. 2022, Eq. 2) trains L = E ‖ε − ε_θ(z_t, t)‖² with z0 = E(x0),
    the encoder frozen. ``model`` must have ``encode(x0) -> z0`` (e.g.
    :class:`~course_lib.models.autoencoder.LatentDenoiser`); ``batch`` is x0 (B, ...) or a tuple whose
    first item is x0 (the rest, e.g. labels, passed on). Draws nothing itself.
    """

    def __init__(self, objective: Callable):
        if not callable(objective):
            fail("objective", "a loss_fn(model, batch, generator)", type(objective).__name__)
        self.objective = objective

    def __call__(self, model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        inner = getattr(model, "module", model)  # DistributedDataParallel keeps the network in .module
        z0 = inner.encode(batch_x0(batch))  # the frozen encoder: no gradient
        latent_batch = (z0, *batch[1:]) if isinstance(batch, (tuple, list)) else z0
        return self.objective(model, latent_batch, generator)
