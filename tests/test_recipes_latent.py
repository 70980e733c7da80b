"""models "autoencoder" and "dit": a VAE, then a space-time transformer on its latents, as recipes the zoo and CLI train."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.diffusion.objectives import LatentObjective
from course_lib.models.autoencoder import AutoencoderObjective, LatentDenoiser, VideoAutoencoder
from course_lib.workshop import zoo
from course_lib.workshop.cli import main
from course_lib.workshop.recipes import get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = get_preset("smoke").replace(num_diffusion_steps=50, sample_steps=2, video_size=16, video_frames=3,
                                   video_base_channels=8, video_batch_size=2, video_train_steps=8)


def test_the_autoencoder_recipe_trains_a_vae_and_does_not_sample():
    recipe = get_recipe("video-shapes", TINY, "autoencoder")
    assert isinstance(recipe.loss_fn, AutoencoderObjective) and recipe.steps == 2
    model = recipe.build_model()
    assert isinstance(model, VideoAutoencoder) and model.channels == 3
    assert recipe.latent_shape == (3, 4, 4, 4)
    with pytest.raises(ValueError, match=r"^model: expected a denoiser to sample from: the autoencoder only"):
        recipe.sample(model, 2)


def test_the_dit_recipe_learns_latents_and_its_key_follows_the_autoencoder():
    recipe = get_recipe("video-shapes", TINY, "dit")
    assert isinstance(recipe.loss_fn, LatentObjective)
    assert recipe.autoencoder_recipe() == get_recipe("video-shapes", TINY, "autoencoder")
    model = recipe.build_model()
    assert isinstance(model, LatentDenoiser)
    z = model.encode(recipe.make_batch(torch.Generator().manual_seed(0)))
    assert z.shape == (2, *recipe.latent_shape)
    changed_autoencoder = recipe.replace(lr=recipe.lr)  # same recipe, same key
    assert changed_autoencoder.key() == recipe.key()
    other = get_recipe("video-shapes", TINY.replace(video_base_channels=16), "dit")
    assert other.key() != recipe.key()


class _ConstantLatent(torch.nn.Module):
    """A denoiser whose every prediction is the latent VALUE everywhere (x0 = VALUE for objective x0)."""
    VALUE = 3.0

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))  # sample() asks the model for its device

    def forward(self, x, t, *args, **kwargs):
        return torch.full_like(x, self.VALUE)


@pytest.mark.parametrize("task", ["video-shapes", "video-captions"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_latents_are_sampled_unclipped_pixels_clipped(task, sampler):
    """x̂0 is clipped to [-1, 1] for pixels only: a latent lives outside that range (about unit variance
    around each channel's mean), and clipping it flattens the objects."""
    recipe = get_recipe(task, TINY, "dit", objective="x0")
    assert recipe.clip_x0 is False and get_recipe("video-shapes", TINY, "unet3d").clip_x0 is True
    model = recipe.build_model()
    if recipe.captioned:  # the transformer inside the caption-conditioned pair
        model.denoiser.denoiser = _ConstantLatent()
    else:
        model.denoiser = _ConstantLatent()
    clips = recipe.sample(model, 2, sampler=sampler, generator=torch.Generator().manual_seed(0),
                          captions="a red circle moves left" if recipe.captioned else None)
    latent = torch.full((2, *recipe.latent_shape), _ConstantLatent.VALUE)
    torch.testing.assert_close(clips, model.decode(latent), atol=1e-5, rtol=0)
    assert (clips - model.decode(latent.clamp(-1, 1))).abs().max() > 1e-3  # what clipping would have drawn
    pixels = get_recipe("video-shapes", TINY, "unet3d", objective="x0")
    clipped = pixels.sample(_ConstantLatent(), 2, sampler=sampler, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(clipped, torch.ones_like(clipped))  # a pixel model's x̂0 = 3 is clipped to 1


def test_train_or_load_trains_the_autoencoder_first_and_freezes_it_inside(tmp_path):
    recipe = get_recipe("video-shapes", TINY, "dit", steps=2)
    trainer = zoo.train_or_load(recipe, folder=tmp_path, progress=False, shipped_folder=None)
    autoencoder_path = zoo.checkpoint_path(recipe.autoencoder_recipe(), folder=tmp_path)
    assert autoencoder_path.exists()
    autoencoder = zoo.train_or_load(recipe.autoencoder_recipe(), folder=tmp_path, progress=False,
                                    shipped_folder=None).ema_model
    for name, value in autoencoder.state_dict().items():  # the trained autoencoder, untouched by training
        assert torch.equal(trainer.model.autoencoder.state_dict()[name], value)
        assert torch.equal(trainer.ema_model.autoencoder.state_dict()[name], value)
    clips = recipe.sample(trainer.ema_model, 2, generator=torch.Generator().manual_seed(0))
    assert clips.shape == recipe.sample_shape(2) and clips.abs().max() <= 1
    loaded_recipe, loaded = zoo.load_checkpoint(zoo.checkpoint_path(recipe, folder=tmp_path))
    again = loaded_recipe.sample(loaded.ema_model, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(clips, again)  # the checkpoint alone samples: the autoencoder travels inside


def test_the_command_line_trains_and_samples_the_dit_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--task", "video-shapes", "--model", "dit", "--preset", "smoke", "--steps", "2",
                 "--checkpoint", "dit.pt"]) == 0
    recipe, _ = zoo.load_checkpoint("dit.pt")
    assert recipe.model_name == "dit"
    assert main(["sample", "--checkpoint", "dit.pt", "--n", "2", "--steps", "2", "--out", "clips.gif"]) == 0
    assert (tmp_path / "clips.gif").stat().st_size > 0


def test_the_dit_model_trains_with_flow_matching_too():
    recipe = get_recipe("video-shapes", TINY, "dit", objective="flow")
    model = recipe.build_model()
    loss = recipe.loss_fn(model, recipe.make_batch(torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None for p in model.denoiser.parameters())
    assert all(p.grad is None for p in model.autoencoder.parameters())
    assert recipe.sample(model, 2, steps=2).shape == recipe.sample_shape(2)  # Euler on latents, then decoded


def test_the_autoencoder_trained_for_a_dit_records_the_command_that_asked_for_it(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--task", "video-shapes", "--model", "dit", "--preset", "smoke", "--steps", "1",
                 "--checkpoint", "dit.pt"]) == 0
    recipe, _ = zoo.load_checkpoint("dit.pt")
    record = json.loads(zoo.sidecar_path(zoo.checkpoint_path(recipe.autoencoder_recipe(), folder=".")).read_text())
    asked = json.loads(zoo.sidecar_path("dit.pt").read_text())["command"]  # python -m course_lib train ... from a shell
    assert record["command"] == f"{asked} (its autoencoder, trained first)"
