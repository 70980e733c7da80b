"""The video autoencoder: shapes, the KL term, the scale factor, the latent denoiser, and bad input."""
import pytest
import torch

from course_lib.diffusion.objectives import DiffusionObjective, LatentObjective
from course_lib.diffusion.schedules import make_schedule
from course_lib.models.autoencoder import (
    AutoencoderObjective, LatentDenoiser, VideoAutoencoder, kl_divergence,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def small(compression=4, channels=3):
    torch.manual_seed(0)
    return VideoAutoencoder(channels=channels, latent_channels=4, base_channels=8, compression=compression)


@pytest.mark.parametrize("compression", [4, 8])
def test_a_clip_encodes_to_a_k_times_smaller_latent_and_decodes_back_to_its_shape(compression):
    ae = small(compression)
    video = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    mean, logvar = ae.encode_distribution(video)
    assert mean.shape == logvar.shape == (2, 3, 4, 16 // compression, 16 // compression)
    assert ae.latent_shape(3, 16) == mean.shape[1:]
    assert ae.decode(ae.encode(video)).shape == video.shape
    reconstruction, m, lv = ae(video, torch.Generator().manual_seed(0))
    assert reconstruction.shape == video.shape and torch.equal(m, mean)


def test_frames_are_encoded_independently():
    ae = small().eval()
    video = torch.rand(1, 4, 3, 16, 16) * 2 - 1
    one_by_one = torch.cat([ae.encode(video[:, i:i + 1]) for i in range(4)], dim=1)
    torch.testing.assert_close(ae.encode(video), one_by_one)


def test_the_kl_of_the_prior_is_zero_and_grows_away_from_it():
    zero = torch.zeros(2, 3)
    assert kl_divergence(zero, zero).item() == 0.0
    # KL(N(1, e) || N(0, 1)) = ½ (1 + e − 1 − 1) per element
    value = kl_divergence(torch.ones(4), torch.ones(4)).item()
    assert value == pytest.approx(0.5 * (torch.e - 1))


def test_the_running_std_moves_toward_the_latents_std_in_training_only():
    ae = small()
    video = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    ae.eval()
    ae(video)
    assert ae.latent_std.item() == 1.0
    ae.train()
    for _ in range(3):
        ae(video, torch.Generator().manual_seed(0))
    assert ae.latent_std.item() != 1.0
    torch.testing.assert_close(ae.scale, 1 / ae.latent_std)
    mean, _ = ae.encode_distribution(video)
    torch.testing.assert_close(ae.encode(video), mean * ae.scale)  # encode scales, decode unscales
    torch.testing.assert_close(ae.decode(ae.encode(video)), ae._decode(mean))


def test_the_loss_is_mse_plus_beta_kl_and_trains():
    ae = small()
    video = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    loss = AutoencoderObjective(beta=0.0)(ae, video, torch.Generator().manual_seed(0))
    reconstruction, mean, logvar = ae(video, torch.Generator().manual_seed(0))
    torch.testing.assert_close(loss, torch.nn.functional.mse_loss(reconstruction, video))
    beta = AutoencoderObjective(beta=0.5)(ae, (video, None), torch.Generator().manual_seed(0))
    torch.testing.assert_close(beta, loss + 0.5 * kl_divergence(mean, logvar))
    loss.backward()
    assert all(p.grad is not None for p in ae.parameters())


class ZeroDenoiser(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y=None):
        return x * self.w


def test_the_latent_denoiser_trains_only_the_denoiser_on_latents():
    ae = small()
    model = LatentDenoiser(ZeroDenoiser(), ae)
    model.train()
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())
    video = torch.rand(2, 2, 3, 16, 16) * 2 - 1
    loss = LatentObjective(DiffusionObjective(make_schedule("linear", 10), "x0"))
    value = loss(model, video, torch.Generator().manual_seed(0))
    value.backward()
    assert model.denoiser.w.grad is not None
    # x0-prediction by a zero network: the loss is the mean square of the latents z0
    torch.testing.assert_close(value, model.encode(video).pow(2).mean())
    assert model.decode(model.encode(video)).shape == video.shape


@pytest.mark.parametrize("call,message", [
    (lambda ae: ae.decode(torch.zeros(1, 2, 3, 4, 4)),
     r"^latent: expected 4 latent channels \(B, F, 4, h, w\), got 'shape \(1, 2, 3, 4, 4\)'"),
    (lambda ae: ae.decode(torch.zeros(2, 4, 4, 4)), r"^latent: expected a tensor of rank 5 \(B, F, c, h, w\), got shape \(2, 4, 4, 4\)"),
    (lambda ae: ae.encode(torch.zeros(1, 2, 3, 18, 18)),
     r"^video: expected frames whose height and width are divisible by the compression 4, got '18x18'"),
    (lambda ae: ae.encode(torch.zeros(1, 2, 1, 16, 16)), r"^video: expected 3 channels"),
    (lambda ae: VideoAutoencoder(compression=2), r"^compression: expected one of \(4, 8\)"),
])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(small())
