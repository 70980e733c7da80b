"""Joint image + video training (Ho et al. 2022, "Video Diffusion Models", Sec. 3.2 / 4.3).

One network learns from clips *and* from independent images. The video U-Net of notebook 07
(:class:`course_lib.models.unet3d.UNet3D`) takes a flag ``image_mode``: with it, temporal
attention lets every frame attend only to itself, so a (B, T, C, H, W) batch of T *unrelated*
frames per "clip" is denoised exactly like T images by an image model with the same weights. The
loss of a joint batch is then the plain diffusion loss of both parts, weighted by their sizes:

    L = (n_video · L_video + n_image · L_image) / B      (L_* = Ho et al. 2020, Eq. 14, on each part)

where the first n_video clips of the batch are used as clips (``image_mode=False``) and the last
n_image = round(image_fraction · B) are replaced by *image groups*: T frames drawn at random from
all the frames of the batch, so that frames in one group come from different clips and share
nothing but the timestep. Here the images are frames of the same data set (they teach the
spatial layers what a frame looks like); in the paper they come from a large image set.

:class:`JointImageVideoObjective` is a ``loss_fn`` for :class:`course_lib.training.Trainer`;
:func:`joint_losses` gives both parts separately, to look at.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn

from course_lib._validation import check_choice, check_float_range, check_tensor, fail
from course_lib.diffusion.forward import OBJECTIVES, diffusion_loss
from course_lib.diffusion.schedules import NoiseSchedule


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
                 image_fraction: float = 0.25, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The two parts of the joint loss -> {"video": L_video, "image": L_image, "total": L} (scalars).

    batch: clips (B, T, C, H, W), or a tuple/list whose first item is the clips. The first n_video
    clips are denoised as clips; n_image groups of independent frames (:func:`image_groups`) are
    denoised with ``model(x_t, t, image_mode=True)``. A part with no examples has loss 0 and
    weight 0. t and ε are drawn from ``generator`` (video part first, then image part).
    """
    video = _video_batch("batch", batch)
    check_choice("objective", objective, OBJECTIVES)
    n_video, n_image = split_batch(video.shape[0], image_fraction)
    zero = video.new_zeros(())
    loss_video = diffusion_loss(model, video[:n_video], schedule, objective, generator=generator) if n_video else zero
    loss_image = zero
    if n_image:
        if not accepts_image_mode(model):
            fail("model", "a video model whose forward takes image_mode (UNet3D) when image groups are used "
                          "(image_fraction > 0)", type(model).__name__)
        images = image_groups(video, n_image, generator)  # frames of the whole batch
        loss_image = diffusion_loss(model, images, schedule, objective, generator=generator,
                                    model_kwargs={"image_mode": True})
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

    def __post_init__(self):
        check_choice("objective", self.objective, OBJECTIVES)
        check_float_range("image_fraction", self.image_fraction, 0.0, 1.0)

    def __call__(self, model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        return joint_losses(model, batch, self.schedule, self.objective, self.image_fraction, generator)["total"]
