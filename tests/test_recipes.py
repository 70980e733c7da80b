"""Recipes: every task builds, trains a step and samples; keys change exactly when the weights would."""
import dataclasses

import pytest
import torch

from course_lib.config import get_preset
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.workshop.recipes import TASK_MODELS, Recipe, get_recipe
from course_lib.diffusion.samplers import ddim_sample

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_preset():
    """The smoke preset, smaller still, so that every recipe builds and samples in well under a second."""
    return get_preset("smoke").replace(num_diffusion_steps=50, sample_steps=3, video_size=16, video_frames=3,
                                       video_base_channels=8, video_batch_size=2, image_base_channels=8,
                                       image_batch_size=4, toy_batch_size=32)


TASK_AND_MODEL = [(task, model) for task, models in TASK_MODELS.items() for model in models]


@pytest.mark.parametrize("task,model", TASK_AND_MODEL)
def test_every_recipe_builds_trains_a_step_and_samples(task, model):
    recipe = get_recipe(task, tiny_preset(), model, digit_images=16)  # digit_images is ignored unless digits
    net = recipe.build_model()
    batch = recipe.make_batch(torch.Generator().manual_seed(0))
    x0 = batch[0] if isinstance(batch, tuple) else batch
    assert tuple(x0.shape) == (recipe.batch_size, *recipe.example_shape)
    if task != "toy-moons":  # images and videos live in [-1, 1]; the moons are standardised instead
        assert x0.min() >= -1 - 1e-6 and x0.max() <= 1 + 1e-6
    loss = recipe.loss_fn(net, batch, torch.Generator().manual_seed(1))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    if model == "autoencoder":  # it encodes and decodes; the dit model samples in its latent space
        assert net.reconstruct(x0).shape == x0.shape
        return
    samples = recipe.sample(net, 2, steps=2)
    assert tuple(samples.shape) == recipe.sample_shape(2) and torch.isfinite(samples).all()


def test_video_shapes_are_rgb_and_video_digits_grey_in_every_preset():
    for name in ("smoke", "cpu", "gpu"):
        assert get_recipe("video-shapes", name).example_shape[1] == 3
        assert get_recipe("video-digits", name).example_shape[1] == 1
    preset = get_preset("cpu")
    assert get_recipe("video-shapes", "cpu").example_shape == (preset.video_frames, 3, preset.video_size, preset.video_size)


def test_defaults_come_from_the_preset_and_overrides_win():
    preset = get_preset("smoke")
    recipe = get_recipe("digits", "smoke")
    assert (recipe.steps, recipe.batch_size, recipe.model_name) == (preset.image_train_steps, preset.image_batch_size, "unet2d")
    assert recipe.num_classes == 10 and recipe.label_dropout > 0
    changed = get_recipe("digits", "smoke", steps=7, schedule="cosine", objective="v", seed=3)
    assert (changed.steps, changed.schedule_name, changed.objective, changed.seed) == (7, "cosine", "v", 3)
    assert changed.schedule.name == "cosine" and changed.schedule.num_steps == preset.num_diffusion_steps
    config = changed.train_config()
    assert (config.steps, config.seed, config.lr, config.precision) == (7, 3, changed.lr, preset.precision)
    assert changed.train_config(steps=11, progress=True).steps == 11


def test_unknown_names_are_rejected_with_the_valid_choices():
    with pytest.raises(ValueError, match=r"task: expected one of 'toy-moons', 'digits'.*got 'moons'"):
        get_recipe("moons", "smoke")
    with pytest.raises(ValueError, match=r"model: expected one of 'unet3d', 'conv_lstm', 'forcing', 'autoencoder', 'dit' for task 'video-shapes', got 'mlp'"):
        get_recipe("video-shapes", "smoke", "mlp")
    with pytest.raises(ValueError, match=r"overrides: expected names among steps.*got 'epochs'"):
        get_recipe("toy-moons", "smoke", epochs=3)
    with pytest.raises(ValueError, match=r"name: expected one of 'smoke', 'cpu', 'gpu'"):
        get_recipe("toy-moons", "laptop")
    with pytest.raises(ValueError, match=r"objective: expected one of"):
        get_recipe("toy-moons", "smoke", objective="score")
    with pytest.raises(ValueError, match=r"steps: expected a positive int, got -5"):
        get_recipe("toy-moons", "smoke", steps=-5)


def test_the_model_and_its_initial_weights_depend_only_on_the_seed():
    recipe = get_recipe("video-digits", tiny_preset())
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = recipe.build_model(), recipe.build_model()
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is untouched
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = recipe.replace(seed=1).build_model()
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_make_batch_is_a_fresh_batch_fixed_by_the_generator():
    recipe = get_recipe("video-shapes", tiny_preset())
    first = recipe.make_batch(torch.Generator().manual_seed(5))
    assert torch.equal(first, recipe.make_batch(torch.Generator().manual_seed(5)))
    g = torch.Generator().manual_seed(5)
    recipe.make_batch(g)
    assert not torch.equal(first, recipe.make_batch(g))  # the next step sees new clips


def test_digit_batches_are_rows_of_the_rendered_set_with_their_labels():
    recipe = get_recipe("digits", tiny_preset(), digit_images=40)
    images, labels = recipe.digit_set
    assert images.shape == (40, 1, 28, 28) and labels.shape == (40,)
    x, y = recipe.make_batch(torch.Generator().manual_seed(0))
    for image, label in zip(x, y):
        rows = (images == image).flatten(1).all(1).nonzero().flatten()
        assert len(rows) >= 1 and (labels[rows] == label).all()


class LabelSpy(torch.nn.Module):
    """A stand-in denoiser that records the labels it was called with."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append(y)
        return x * self.scale


def test_label_dropout_replaces_labels_by_the_null_label():
    recipe = get_recipe("digits", tiny_preset(), digit_images=20)
    batch = recipe.make_batch(torch.Generator().manual_seed(0))
    for p, expect_null in ((1.0, True), (0.0, False)):
        spy = LabelSpy()
        objective = DiffusionObjective(recipe.schedule, "eps", null_label=10, label_dropout=p)
        objective(spy, batch, torch.Generator().manual_seed(0))
        assert torch.equal(spy.seen[0], torch.full_like(batch[1], 10) if expect_null else batch[1])
    assert recipe.loss_fn.null_label == 10 and recipe.loss_fn.label_dropout == recipe.label_dropout


def test_guidance_zero_is_the_unconditional_model():
    recipe = get_recipe("digits", tiny_preset(), digit_images=20)
    net = recipe.build_model().eval()
    guided = recipe.sample(net, 3, steps=2, guidance_scale=0.0, generator=torch.Generator().manual_seed(1))
    plain = ddim_sample(lambda x, t: net(x, t, None), (3, 1, 28, 28), recipe.schedule, steps=2,
                        generator=torch.Generator().manual_seed(1))
    assert torch.allclose(guided, plain, atol=1e-3)  # a doubled batch: float rounding, amplified by 1/√ᾱ_t
    conditional = recipe.sample(net, 3, steps=2, labels=torch.tensor([1, 2, 3]), generator=torch.Generator().manual_seed(1))
    explicit = ddim_sample(lambda x, t: net(x, t, torch.tensor([1, 2, 3])), (3, 1, 28, 28), recipe.schedule, steps=2,
                           generator=torch.Generator().manual_seed(1))
    assert torch.allclose(conditional, explicit, atol=1e-5)
    assert not torch.allclose(conditional, guided, atol=1e-3)  # the labels matter


def test_sample_passes_eta_to_ddim():
    """η = 0 is deterministic given the start noise; η > 0 adds noise at each step, so samples differ."""
    toy = get_recipe("toy-moons", tiny_preset())
    net = toy.build_model()
    draw = lambda eta, seed=0: toy.sample(net, 4, steps=5, eta=eta, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(draw(0.0), draw(0.0)) and torch.equal(draw(1.0), draw(1.0))
    assert not torch.allclose(draw(0.0), draw(1.0), atol=1e-4)


def test_sample_rejects_arguments_that_do_not_fit():
    toy = get_recipe("toy-moons", tiny_preset())
    net = toy.build_model()
    with pytest.raises(ValueError, match=r"labels: expected None: task 'toy-moons' is not class-conditional"):
        toy.sample(net, 2, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"guidance_scale: expected None"):
        toy.sample(net, 2, guidance_scale=2.0)
    with pytest.raises(ValueError, match=r"steps: expected None or 50 for sampler='ddpm'"):
        toy.sample(net, 2, sampler="ddpm", steps=5)
    with pytest.raises(ValueError, match=r"sampler: expected one of 'ddim', 'ddpm', got 'euler'"):
        toy.sample(net, 2, sampler="euler")
    with pytest.raises(ValueError, match=r"steps: expected an int in \[1, 50\]"):
        toy.sample(net, 2, steps=0)
    with pytest.raises(ValueError, match=r"eta: expected 0 for sampler='ddpm'.*got 0.5"):
        toy.sample(net, 2, sampler="ddpm", eta=0.5)
    with pytest.raises(ValueError, match=r"eta: expected .*got 1.5"):
        toy.sample(net, 2, eta=1.5)
    digits = get_recipe("digits", tiny_preset(), digit_images=20)
    with pytest.raises(ValueError, match=r"labels: expected digits in \[0, 9\]"):
        digits.sample(digits.build_model(), 2, labels=torch.tensor([3, 10]))
    assert toy.sample(net, 2, sampler="ddpm").shape == (2, 2)


def test_the_key_is_stable_and_changes_with_everything_that_changes_the_weights():
    preset = tiny_preset()
    recipe = get_recipe("video-shapes", preset)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    key = recipe.key()
    assert torch.equal(torch.get_rng_state(), before)
    assert len(key) == 12 and key == get_recipe("video-shapes", preset).key()
    assert recipe.key(steps=recipe.steps) == key
    variants = [
        recipe.key(steps=recipe.steps + 1),
        get_recipe("video-shapes", preset, "conv_lstm").key(),
        get_recipe("video-digits", preset).key(),
        get_recipe("video-shapes", preset, seed=1).key(),
        get_recipe("video-shapes", preset, objective="v").key(),
        get_recipe("video-shapes", preset, schedule="cosine").key(),
        get_recipe("video-shapes", preset, snr_focus=0.0).key(),
        get_recipe("video-shapes", preset, lr=1e-4).key(),
        get_recipe("video-shapes", preset, batch_size=3).key(),
        get_recipe("video-shapes", preset.replace(video_base_channels=16)).key(),
        get_recipe("video-shapes", preset.replace(video_frames=4)).key(),
        get_recipe("video-shapes", preset.replace(num_diffusion_steps=30)).key(),
        get_recipe("video-shapes", preset.replace(precision="bf16")).key(),
    ]
    assert len(set(variants + [key])) == len(variants) + 1
    # fields the video recipe does not use leave its key alone
    assert get_recipe("video-shapes", preset.replace(image_base_channels=64, toy_points=5)).key() == key
    assert recipe.name().startswith("video-shapes-unet3d-smoke-") and recipe.name().endswith(key)


def test_info_rebuilds_the_same_recipe():
    recipe = get_recipe("digits", tiny_preset(), objective="x0", digit_images=24)
    again = Recipe.from_info(recipe.info())
    assert again == recipe and again.key() == recipe.key()
    with pytest.raises(ValueError, match=r"info: expected a recipe description of format 1"):
        Recipe.from_info({"format": 99})
    broken = recipe.info()
    del broken["objective"]
    with pytest.raises(ValueError, match=r"info: expected a recipe description with the fields.*objective"):
        Recipe.from_info(broken)


def test_recipe_fields_are_checked():
    recipe = get_recipe("toy-moons", tiny_preset())
    with pytest.raises(ValueError, match=r"batch_size: expected a positive int, got 0"):
        dataclasses.replace(recipe, batch_size=0)
    with pytest.raises(ValueError, match=r"label_dropout: expected a number in \[0.0, 1.0\], got 2"):
        recipe.replace(label_dropout=2)
    with pytest.raises(ValueError, match=r"task: expected a video task for object_size, got 'toy-moons'"):
        recipe.object_size
    with pytest.raises(ValueError, match=r"n: expected a positive int, got 0"):
        recipe.sample_shape(0)


