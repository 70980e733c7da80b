"""A video denoiser that *sees* the known frames: the network of frame-conditional prediction (lesson 08).

Replacement and reconstruction guidance (:mod:`course_lib.diffusion.conditioning`) steer an
unconditional model at sampling time. Here the condition is an *input* of the network, as in
masked conditional video diffusion (Voleti et al. 2022, MCVD) and RaMViD (Höppe et al. 2022):
every frame enters with 2C + 1 channels,

    [ x_t (C) | mask · known (C) | mask (1) ]      ->  the network  ->  ε̂ (C)

where ``mask`` is 1 on the known frames. It trains with
:class:`~course_lib.diffusion.objectives.FrameConditionalObjective` and samples with
:func:`~course_lib.diffusion.rollout.predict_future` (method "frame-conditional").
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib._validation import check_positive_int, check_rank, check_tensor, fail
from course_lib.models.unet3d import unet3d_for_preset


class FrameConditionalDenoiser(nn.Module):
    """ε̂(x_t, t | known, mask): a video backbone fed ``[x_t, mask·known, mask]`` along the channels.

    backbone: forward(z (B, T, 2C+1, H, W), t (B,)) -> (B, T, C', H, W) with C' ≥ C; the first C
    output channels are the prediction (``UNet3D`` has no ``out_channels`` and returns 2C+1: the
    other C+1 are ignored). channels: C, the channels of a frame.
    forward(x_t (B, T, C, H, W), t (B,), known (B, T, C, H, W), mask (B, T, 1, 1, 1)) -> (B, T, C, H, W).
    """

    def __init__(self, backbone: nn.Module, channels: int):
        super().__init__()
        if not isinstance(backbone, nn.Module):
            fail("backbone", "a torch.nn.Module (a video denoiser)", type(backbone).__name__)
        self.backbone = backbone
        self.channels = check_positive_int("channels", channels)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, known: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_rank("x_t", x_t, 5, "(B, T, C, H, W)")
        if x_t.shape[2] != self.channels:
            fail("x_t", f"{self.channels} channel(s) at dim 2 of (B, T, C, H, W)", f"shape {tuple(x_t.shape)}")
        check_tensor("known", known)
        if known.shape != x_t.shape:
            fail("known", f"the shape of x_t {tuple(x_t.shape)}", f"shape {tuple(known.shape)}")
        mask = _frame_mask_like(mask, x_t)
        z = torch.cat([x_t, known * mask, mask.expand(*x_t.shape[:2], 1, *x_t.shape[3:])], dim=2)  # (B, T, 2C+1, H, W)
        out = self.backbone(z, t)
        if out.dim() != 5 or out.shape[2] < self.channels:
            fail("backbone output", f"(B, T, >= {self.channels}, H, W)", f"shape {tuple(out.shape)}")
        return out[:, :, : self.channels]


def _frame_mask_like(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``mask`` as a (B, T, 1, 1, 1) float tensor of x's dtype: one 0/1 value per frame."""
    check_tensor("mask", mask)
    b, frames = x.shape[:2]
    if mask.dim() != 5 or mask.shape[0] not in (1, b) or mask.shape[1] != frames or mask.shape[2:] != (1, 1, 1):
        fail("mask", f"one value per frame, shape ({b}, {frames}, 1, 1, 1) (see frame_mask)",
             f"shape {tuple(mask.shape)}")
    return mask.to(x.dtype).expand(b, frames, 1, 1, 1)


def frame_conditional_unet3d(preset, channels: int) -> FrameConditionalDenoiser:
    """The preset's fast :class:`~course_lib.models.unet3d.UNet3D` taking 2C + 1 input channels, wrapped.

    Unlike the unconditional video U-Net it also has temporal convolutions and a frame-position
    embedding (``temporal_conv``, ``frame_embedding``): predicting means extrapolating the past's
    velocity, which differences of neighbouring frames carry directly.
    """
    check_positive_int("channels", channels)
    backbone = unet3d_for_preset(preset.replace(video_channels=2 * channels + 1), temporal_conv=True,
                                 frame_embedding=True)
    return FrameConditionalDenoiser(backbone, channels)
