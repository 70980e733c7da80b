"""A video autoencoder with a KL bottleneck, and a denoiser that works in its latent space.

Latent diffusion (Rombach et al. 2022, "LDM") trains the diffusion model on the compact latents of
an autoencoder instead of pixels. The autoencoder here works frame by frame (a 2D convolutional
encoder and decoder, time folded into the batch), as the image autoencoders that video systems
start from do:

    video (B, F, C, H, W) --encoder--> mean, log σ² (B, F, c, H/k, W/k) --z = mean + σ·ε--> decoder --> (B, F, C, H, W)

k = ``compression`` (4 or 8: one stride-2 convolution per halving), c = ``latent_channels``. It
is a variational autoencoder (Kingma & Welling 2014) with a small KL weight β, as in LDM:

    loss = ‖x − D(z)‖² + β · KL(q(z|x) ‖ N(0, I)),   KL = ½ Σ (μ² + σ² − 1 − log σ²)    (Kingma & Welling, App. B)

The KL term only keeps the latent space smooth and near the origin; its scale is whatever
the encoder likes. Diffusion assumes data of about unit variance (its noise is N(0, I)), so LDM
multiplies latents by a *scale factor* 1/std of the training latents. :class:`VideoAutoencoder`
keeps a running estimate of that std as a buffer (like BatchNorm's running variance), so the
scale is stored with the weights: :meth:`~VideoAutoencoder.encode` gives unit-variance latents and
:meth:`~VideoAutoencoder.decode` takes them back.

:class:`LatentDenoiser` pairs a frozen autoencoder with any video denoiser that maps latents
(B, F, c, h, w) to latents: training encodes each batch, sampling draws latents and decodes them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_float_range, check_positive_int, check_rank, fail
from course_lib.models.blocks import group_norm

COMPRESSIONS = (4, 8)  # spatial downsampling factors k (two or three halvings)
STD_MOMENTUM = 0.01  # weight of each training batch in the running latent std


class ConvBlock(nn.Module):
    """x + Conv(SiLU(GN(Conv(SiLU(GN(x)))))): a residual block without timestep. (N, ch, H, W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = group_norm(channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


def _widths(base_channels: int, halvings: int) -> list[int]:
    """Channels at each resolution, full size first: base, 2·base, 2·base, ... (capped at 2·base)."""
    return [base_channels * min(2, 2 ** level) for level in range(halvings + 1)]


class VideoAutoencoder(nn.Module):
    """A per-frame convolutional VAE for clips; the latent std for LDM's scale factor kept as a buffer.

    channels: C of the frames. latent_channels: c. base_channels: width at full resolution.
    compression: k in {4, 8}. H and W must be divisible by k.
    Shapes: video (B, F, C, H, W) in [-1, 1] <-> latent (B, F, c, H/k, W/k).
    """

    def __init__(self, channels: int = 3, latent_channels: int = 4, base_channels: int = 32, compression: int = 4):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.latent_channels = check_positive_int("latent_channels", latent_channels)
        check_positive_int("base_channels", base_channels)
        if compression not in COMPRESSIONS:
            fail("compression", f"one of {COMPRESSIONS} (spatial downsampling factor)", compression)
        self.compression = compression
        widths = _widths(base_channels, int(math.log2(compression)))
        encoder = [nn.Conv2d(channels, widths[0], 3, padding=1)]
        for cin, cout in zip(widths[:-1], widths[1:]):  # halve the size at each step
            encoder += [ConvBlock(cin), nn.Conv2d(cin, cout, 3, stride=2, padding=1)]
        encoder += [ConvBlock(widths[-1]), group_norm(widths[-1]), nn.SiLU(),
                    nn.Conv2d(widths[-1], 2 * latent_channels, 3, padding=1)]  # mean and log σ²
        self.encoder = nn.Sequential(*encoder)
        decoder = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1), ConvBlock(widths[-1])]
        for cin, cout in zip(widths[:0:-1], widths[-2::-1]):  # double the size at each step
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1), ConvBlock(cout)]
        decoder += [group_norm(widths[0]), nn.SiLU(), nn.Conv2d(widths[0], channels, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)
        self.register_buffer("latent_std", torch.ones(()))  # running std of z; scale = 1 / latent_std

    @property
    def scale(self) -> torch.Tensor:
        """LDM's scale factor: 1 / std of the training latents (a 0-d tensor)."""
        return 1.0 / self.latent_std

    def latent_shape(self, frames: int, size: int) -> tuple[int, int, int, int]:
        """(F, c, H/k, W/k): the latent of one clip of ``frames`` frames of ``size`` x ``size``."""
        return (frames, self.latent_channels, size // self.compression, size // self.compression)

    def _check_video(self, video: torch.Tensor) -> None:
        check_rank("video", video, 5, "(B, F, C, H, W)")
        if video.shape[2] != self.channels:
            fail("video", f"{self.channels} channels (B, F, {self.channels}, H, W)", f"shape {tuple(video.shape)}")
        if video.shape[-1] % self.compression or video.shape[-2] % self.compression:
            fail("video", f"frames whose height and width are divisible by the compression {self.compression}",
                 f"{video.shape[-2]}x{video.shape[-1]}")

    def encode_distribution(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): (mean, log σ²), each (B, F, c, H/k, W/k), unscaled, of a video (B, F, C, H, W)."""
        self._check_video(video)
        B, frames = video.shape[:2]
        moments = self.encoder(video.flatten(0, 1))  # time folded into the batch: (B·F, 2c, h, w)
        mean, logvar = moments.unflatten(0, (B, frames)).chunk(2, dim=2)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """The latent diffusion works on: scale · mean of q(z|x), (B, F, c, H/k, W/k), about unit variance."""
        return self.encode_distribution(video)[0] * self.scale

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Frames (B, F, C, H, W) from a scaled latent (B, F, c, h, w) (what :meth:`encode` gives)."""
        return self._decode(latent / self.scale)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        check_rank("latent", z, 5, "(B, F, c, h, w)")
        if z.shape[2] != self.latent_channels:
            fail("latent", f"{self.latent_channels} latent channels (B, F, {self.latent_channels}, h, w)",
                 f"shape {tuple(z.shape)}")
        B, frames = z.shape[:2]
        return self.decoder(z.flatten(0, 1)).unflatten(0, (B, frames))

    def forward(self, video: torch.Tensor, generator: torch.Generator | None = None):
        """(reconstruction (B, F, C, H, W), mean, log σ²) with z = mean + σ·ε drawn with ``generator``.

        In training mode each call also moves the running latent std toward this batch's std of z.
        """
        mean, logvar = self.encode_distribution(video)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device if generator is None
                            else generator.device).to(mean.device)
        z = mean + torch.exp(0.5 * logvar) * noise  # the reparameterisation trick
        if self.training:
            with torch.no_grad():
                self.latent_std.lerp_(z.detach().float().std(), STD_MOMENTUM)
        return self._decode(z), mean, logvar

    @torch.no_grad()
    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        """D(mean of q(z|x)): the deterministic reconstruction (B, F, C, H, W)."""
        return self.decode(self.encode(video))


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, σ²) ‖ N(0, 1)) per latent element, averaged: ½ mean(μ² + σ² − 1 − log σ²)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class AutoencoderObjective:
    """``loss_fn(model, batch, generator)`` of the VAE: MSE(x, D(z)) + β·KL (both per-element means).

    batch: videos (B, F, C, H, W) or a tuple whose first item they are. Draws ε for z from ``generator``.
    """

    def __init__(self, beta: float = 1e-4):
        self.beta = check_float_range("beta", beta, 0.0, 1.0)

    def __call__(self, model: nn.Module, batch, generator: torch.Generator | None = None) -> torch.Tensor:
        video = batch[0] if isinstance(batch, (tuple, list)) else batch
        reconstruction, mean, logvar = model(video, generator)
        return F.mse_loss(reconstruction, video) + self.beta * kl_divergence(mean, logvar)


def autoencoder_for_preset(preset, latent_channels: int = 4, compression: int = 4) -> VideoAutoencoder:
    """A :class:`VideoAutoencoder` for ``preset``'s clips (video_channels; width video_base_channels)."""
    if not hasattr(preset, "video_base_channels"):
        fail("preset", "a course_lib.config.Preset (see get_preset())", type(preset).__name__)
    return VideoAutoencoder(preset.video_channels, latent_channels, preset.video_base_channels, compression)


class LatentDenoiser(nn.Module):
    """A video denoiser over the latents of a frozen :class:`VideoAutoencoder`.

    ``forward(z_t, t, y=None)`` is the denoiser's, on latents (B, F, c, h, w); :meth:`encode` and
    :meth:`decode` are the autoencoder's. The autoencoder's weights never train (requires_grad off,
    always in eval mode) and travel in the same checkpoint, so the pair samples anywhere.
    """

    def __init__(self, denoiser: nn.Module, autoencoder: VideoAutoencoder):
        super().__init__()
        if not isinstance(autoencoder, VideoAutoencoder):
            fail("autoencoder", "a VideoAutoencoder", type(autoencoder).__name__)
        self.denoiser, self.autoencoder = denoiser, autoencoder
        self.autoencoder.requires_grad_(False)
        self.autoencoder.eval()

    def train(self, mode: bool = True) -> "LatentDenoiser":
        super().train(mode)
        self.autoencoder.eval()  # frozen: its running std stays as trained
        return self

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        return self.denoiser(x, t) if y is None and not kwargs else self.denoiser(x, t, y, **kwargs)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """A caption-conditioned denoiser's context: ids, mask (B, L) -> (B, L, D) (its text encoder)."""
        if not hasattr(self.denoiser, "encode_text"):
            fail("model", "a caption-conditioned denoiser (built with vocab_size)", type(self.denoiser).__name__)
        return self.denoiser.encode_text(ids, mask)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(video)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(latent).clamp(-1.0, 1.0)


def latent_transformer_for_preset(preset, latent_channels: int = 4, compression: int = 4,
                                  num_classes: int | None = None, vocab_size: int | None = None) -> LatentDenoiser:
    """A :class:`LatentDenoiser`: a space-time transformer sized by ``preset`` on the latents of an
    (untrained) :func:`autoencoder_for_preset`; latents (B, video_frames, c, size/k, size/k).

    vocab_size: None, or the caption vocabulary's size: then the denoiser is a
    :class:`~course_lib.models.text_encoder.CaptionConditioned` pair of a text encoder (sized by
    ``preset``) and the transformer, which cross-attends to the encoded caption (lesson 16).
    """
    from course_lib.models.text_encoder import CaptionConditioned, text_encoder_for_preset
    from course_lib.models.transformer import transformer_for_preset

    autoencoder = autoencoder_for_preset(preset, latent_channels, compression)
    if preset.video_size % compression:
        fail("preset", f"a video_size divisible by the compression {compression}", preset.video_size)
    text_encoder = None if vocab_size is None else text_encoder_for_preset(preset, vocab_size)
    denoiser = transformer_for_preset(preset, in_channels=latent_channels, size=preset.video_size // compression,
                                      frames=preset.video_frames, num_classes=num_classes,
                                      context_dim=None if text_encoder is None else text_encoder.dim)
    if text_encoder is not None:
        denoiser = CaptionConditioned(denoiser, text_encoder)
    return LatentDenoiser(denoiser, autoencoder)
