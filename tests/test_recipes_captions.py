"""Task "video-captions": a latent space-time transformer that reads captions, trained, sampled and scored
through the recipe, the zoo and the command line."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.data.captions import NULL_ID, PAD_ID, tokenize
from course_lib.diffusion.objectives import CaptionObjective, LatentObjective
from course_lib.models.autoencoder import LatentDenoiser
from course_lib.models.text_encoder import CaptionConditioned
from course_lib.workshop import zoo
from course_lib.workshop.cli import main
from course_lib.workshop.recipes import CAPTION_GUIDANCE_SCALE, TASKS, get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = get_preset("smoke").replace(num_diffusion_steps=50, sample_steps=2, video_size=16, video_frames=3,
                                   video_base_channels=8, video_batch_size=4, video_train_steps=8)


def awake(model):
    """The model with its zero-initialised layers (adaLN-Zero gates, the final layer) made non-zero, so that
    its output and its gradients depend on every input, the caption included."""
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear) and layer.weight.abs().sum() == 0:
            torch.nn.init.normal_(layer.weight, std=0.02)
    return model


def test_the_recipe_reads_captions_on_the_latents_of_the_shapes_autoencoder():
    recipe = get_recipe("video-captions", TINY)
    assert "video-captions" in TASKS and recipe.model_name == "dit" and recipe.captioned
    assert recipe.autoencoder_recipe() == get_recipe("video-shapes", TINY, "autoencoder")  # the same clips' autoencoder
    assert isinstance(recipe.loss_fn, LatentObjective) and isinstance(recipe.loss_fn.objective, CaptionObjective)
    assert recipe.guidance_scale == CAPTION_GUIDANCE_SCALE and recipe.label_dropout == 0.1
    model = recipe.build_model()
    assert isinstance(model, LatentDenoiser) and isinstance(model.denoiser, CaptionConditioned)
    clips, ids, mask = recipe.make_batch(torch.Generator().manual_seed(0))
    assert clips.shape == (4, *recipe.example_shape) and ids.shape == mask.shape == (4, 16)
    with pytest.raises(ValueError, match=r"^objective: expected 'eps', 'x0' or 'v' for the task 'video-captions'"):
        get_recipe("video-captions", TINY, objective="flow")
    assert get_recipe("video-captions", TINY, label_dropout=0.2).key() != recipe.key()


@pytest.mark.parametrize("p,nulls", [(0.0, 0), (1.0, 64)])
def test_caption_dropout_happens_where_the_batch_is_drawn(p, nulls):
    recipe = get_recipe("video-captions", TINY, label_dropout=p, batch_size=64)
    _, ids, mask = recipe.make_batch(torch.Generator().manual_seed(0))
    assert int((ids[:, 0] == NULL_ID).sum()) == nulls
    assert ((ids == PAD_ID) == ~mask).all()


def test_some_captions_are_dropped_at_the_recipes_rate():
    recipe = get_recipe("video-captions", TINY, batch_size=2000)
    _, ids, _ = recipe.make_batch(torch.Generator().manual_seed(0))
    assert 0.07 < (ids[:, 0] == NULL_ID).float().mean() < 0.13


def test_the_loss_trains_the_text_encoder_with_the_transformer():
    recipe = get_recipe("video-captions", TINY)
    model = awake(recipe.build_model())
    g = torch.Generator().manual_seed(0)
    recipe.loss_fn(model, recipe.make_batch(g), g).backward()
    text = model.denoiser.text_encoder.tokens.weight.grad
    assert text is not None and text.abs().sum() > 0  # the caption reaches the loss
    assert all(p.grad is None for p in model.autoencoder.parameters())  # the autoencoder stays frozen


def test_sampling_follows_captions_and_guidance_one_is_the_plain_conditional_model():
    recipe = get_recipe("video-captions", TINY)
    model = awake(recipe.build_model())
    sample = lambda **kw: recipe.sample(model, 2, generator=torch.Generator().manual_seed(0), **kw)  # noqa: E731
    red = sample(captions="a red square moves left")
    assert red.shape == recipe.sample_shape(2) and red.abs().max() <= 1
    assert not torch.allclose(red, sample(captions="a blue circle moves up"))
    torch.testing.assert_close(sample(captions="a red square moves left", guidance_scale=1.0), red, atol=1e-5, rtol=0)
    assert not torch.allclose(sample(captions="a red square moves left", guidance_scale=4.0), red)
    default = sample()  # the captions of held-out clips
    assert torch.equal(default, sample(captions=recipe.real_captioned(2).captions))


@pytest.mark.parametrize("kwargs,message", [
    (dict(captions=["a red square moves left"] * 3), r"^captions: expected 2 captions \(one per sample\)"),
    (dict(captions="a red sqare moves left"), r"unknown words \['sqare'\]"),
    (dict(captions=""), r"^captions\[0\]: expected at least one word"),
    (dict(labels=torch.zeros(2, dtype=torch.long)), r"^labels: expected None: task 'video-captions' is conditioned"),
    (dict(captions="a red square moves left", guidance_scale=-1.0), r"^guidance_scale: expected a finite number >= 0"),
])
def test_bad_sampling_arguments_are_one_clear_error(kwargs, message):
    recipe = get_recipe("video-captions", TINY)
    with pytest.raises(ValueError, match=message):
        recipe.sample(recipe.build_model(), 2, **kwargs)


def test_the_command_line_trains_samples_with_a_caption_and_scores_caption_match(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(__import__("course_lib.config", fromlist=["PRESETS"]).PRESETS, "smoke", TINY)
    assert main(["train", "--task", "video-captions", "--model", "dit", "--preset", "smoke", "--steps", "2",
                 "--checkpoint", "captions.pt"]) == 0
    recipe, _ = zoo.load_checkpoint("captions.pt")
    assert recipe.task == "video-captions"
    capsys.readouterr()
    assert main(["sample", "--checkpoint", "captions.pt", "--n", "2", "--caption", "a red square moves left",
                 "--caption", "a blue circle moves up", "--out", "clips.gif"]) == 0
    assert f"caption guidance w = {CAPTION_GUIDANCE_SCALE:g}" in capsys.readouterr().out
    assert (tmp_path / "clips.gif").stat().st_size > 0
    assert main(["eval", "--checkpoint", "captions.pt", "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "caption match shape" in out and "direction" in out and "of 2 clips match their caption" in out


def test_tokens_of_the_default_captions_are_in_the_vocabulary():
    recipe = get_recipe("video-captions", TINY)
    ids, mask = tokenize(recipe.real_captioned(8).captions)
    assert mask.any(1).all()


def test_the_caption_conditioned_pair_refuses_labels_a_second_context_and_a_mismatched_width():
    from course_lib.models.text_encoder import TextEncoder
    from course_lib.models.transformer import SpaceTimeTransformer

    recipe = get_recipe("video-captions", TINY)
    pair = recipe.build_model().denoiser
    x, t = torch.zeros(1, *recipe.latent_shape), torch.tensor([3])
    ids, mask = tokenize(["a red square moves left"])
    with pytest.raises(ValueError, match=r"^y: expected None: a caption-conditioned model takes caption tokens"):
        pair(x, t, torch.tensor([1]))
    with pytest.raises(ValueError, match=r"^context: expected None when ids are given"):
        pair(x, t, ids=ids, mask=mask, context=pair.encode_text(ids, mask))
    with pytest.raises(ValueError, match=r"^denoiser: expected a denoiser built with context_dim=8"):
        CaptionConditioned(SpaceTimeTransformer(4, 3, 4, dim=16, depth=1, context_dim=16), TextEncoder(30, dim=8))
