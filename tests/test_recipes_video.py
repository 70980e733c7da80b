"""The video recipes' training choices: x0-prediction, the linear schedule, timesteps focused where clips take shape."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.data.video import moving_digits
from course_lib.workshop.recipes import FOCUS_SNR, Recipe, get_recipe
from course_lib.diffusion.objectives import DiffusionObjective, SNRFocusedTimesteps, uniform_timesteps
from course_lib.diffusion.schedules import make_schedule


def tiny_preset():
    return get_preset("smoke").replace(num_diffusion_steps=100, sample_steps=3, video_size=16, video_frames=3,
                                       video_base_channels=8, video_batch_size=2)


def snr(schedule, t):
    alpha_bar = schedule.alpha_bars[t]
    return alpha_bar / (1 - alpha_bar)


def test_video_defaults_predict_x0_on_the_linear_schedule_with_focused_timesteps():
    for task in ("video-shapes", "video-digits"):
        recipe = get_recipe(task, "cpu")
        assert (recipe.objective, recipe.schedule_name) == ("x0", "linear")
    shapes = get_recipe("video-shapes", "cpu")
    assert shapes.loss_fn.timesteps == SNRFocusedTimesteps(shapes.snr_focus, FOCUS_SNR) and shapes.snr_focus > 0
    assert get_recipe("video-digits", "cpu").lr < get_recipe("video-shapes", "cpu").lr  # 2e-3 kept digits a blur
    assert get_recipe("digits", "cpu").snr_focus == 0.0  # the image recipe keeps Ho et al.'s uniform timesteps
    assert get_recipe("video-shapes", "cpu", snr_focus=0.0).loss_fn.timesteps is uniform_timesteps


# --- moving digits are class-conditional: "a moving 7" --------------------------------------------------

@pytest.mark.parametrize("model", ["unet3d", "conv_lstm"])
def test_moving_digits_train_with_their_digit_and_label_dropout(model):
    recipe = get_recipe("video-digits", tiny_preset(), model=model)
    assert recipe.num_classes == 10 and recipe.label_dropout == 0.1 and recipe.snr_focus == 0.0
    assert isinstance(recipe.loss_fn, DiffusionObjective) and recipe.loss_fn.null_label == 10
    network = recipe.build_model()
    assert network.num_classes == 10
    clips, labels = recipe.make_batch(torch.Generator().manual_seed(4))
    truth = moving_digits(2, frames=3, size=16, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(clips, truth.video)  # the same clips as before, now with their digit
    torch.testing.assert_close(labels, truth.labels[:, 0])
    assert recipe.loss_fn(network, (clips, labels), torch.Generator().manual_seed(0)).ndim == 0
    assert get_recipe("video-shapes", tiny_preset(), model=model).build_model().num_classes is None


def test_moving_digits_sample_the_requested_digit_with_guidance():
    recipe = get_recipe("video-digits", tiny_preset())
    model = recipe.build_model()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    default = recipe.sample(model, 3, generator=g())
    torch.testing.assert_close(default, recipe.sample(model, 3, generator=g(), labels=torch.tensor([0, 1, 2])))
    assert not torch.allclose(default, recipe.sample(model, 3, generator=g(), labels=torch.tensor([5, 5, 5])))
    guided = recipe.sample(model, 3, generator=g(), guidance_scale=3.0)
    assert guided.shape == (3, 3, 1, 16, 16) and not torch.allclose(guided, default)
    torch.testing.assert_close(recipe.cycled_labels(12), torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]))
    assert get_recipe("video-shapes", tiny_preset()).cycled_labels(3) is None
    with pytest.raises(ValueError, match=r"labels: expected digits in \[0, 9\]"):
        recipe.sample(model, 2, labels=torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="guidance_scale: expected None: task 'video-shapes' is not class-conditional"):
        get_recipe("video-shapes", tiny_preset()).sample(model, 2, guidance_scale=2.0)


def test_moving_digits_refuse_focused_timesteps_and_keep_the_shapes_key():
    with pytest.raises(ValueError, match="snr_focus: expected 0.0 for the class-conditional task 'video-digits'"):
        get_recipe("video-digits", tiny_preset(), snr_focus=0.5)
    digits = get_recipe("video-digits", tiny_preset())
    assert digits.key() != digits.replace(label_dropout=0.2).key()  # label dropout changes the weights
    assert "num_classes" not in get_recipe("video-shapes", tiny_preset()).model_config["kwargs"]
    assert get_recipe("video-shapes", "cpu").key() == "a47be5cde12f"  # the shipped shapes U-Net still matches


def test_focused_timesteps_come_from_the_snr_range_as_often_as_asked():
    schedule = make_schedule("linear", 1000)
    g = torch.Generator().manual_seed(0)
    only_focus = SNRFocusedTimesteps(1.0, FOCUS_SNR)(4000, schedule, g)
    ratios = snr(schedule, only_focus)
    assert ratios.min() >= FOCUS_SNR[0] and ratios.max() <= FOCUS_SNR[1]
    uniform = SNRFocusedTimesteps(0.0, FOCUS_SNR)(20_000, schedule, g)
    inside = ((snr(schedule, uniform) >= FOCUS_SNR[0]) & (snr(schedule, uniform) <= FOCUS_SNR[1])).float().mean()
    assert uniform.min() == 0 and uniform.max() == 999
    half = SNRFocusedTimesteps(0.5, FOCUS_SNR)(20_000, schedule, g)
    inside_half = ((snr(schedule, half) >= FOCUS_SNR[0]) & (snr(schedule, half) <= FOCUS_SNR[1])).float().mean()
    assert inside_half == pytest.approx(0.5 + 0.5 * inside, abs=0.02)  # the mixture's share


def test_the_focused_loss_is_the_diffusion_loss_at_the_drawn_timesteps():
    recipe = get_recipe("video-shapes", tiny_preset(), snr_focus=1.0)
    model, x0 = recipe.build_model(), recipe.make_batch(torch.Generator().manual_seed(0))
    loss_fn = recipe.loss_fn
    first = loss_fn(model, x0, torch.Generator().manual_seed(3))
    assert torch.isfinite(first) and first.dim() == 0
    assert first == loss_fn(model, x0, torch.Generator().manual_seed(3))  # the generator decides t and ε
    # the same t and ε by hand: draws in the loss's order (t, then ε)
    g = torch.Generator().manual_seed(3)
    t = loss_fn.timesteps(len(x0), recipe.schedule, g)
    eps = torch.randn(x0.shape, generator=g)
    a, s = recipe.schedule.sqrt_alpha_bars[t].view(-1, 1, 1, 1, 1), recipe.schedule.sqrt_one_minus_alpha_bars[t].view(-1, 1, 1, 1, 1)
    by_hand = ((model(a * x0 + s * eps, t) - x0) ** 2).mean()
    assert first.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_snr_focus_changes_the_key_and_survives_info():
    recipe = get_recipe("video-shapes", tiny_preset(), snr_focus=0.25)
    assert recipe.key() != recipe.replace(snr_focus=0.5).key()
    assert Recipe.from_info(recipe.info()) == recipe


def test_snr_focus_bad_values_name_the_argument():
    with pytest.raises(ValueError, match="snr_focus: expected"):
        get_recipe("video-shapes", tiny_preset(), snr_focus=1.5)
    with pytest.raises(ValueError, match="snr_focus: expected 0.0 for the class-conditional task 'digits'"):
        get_recipe("digits", tiny_preset(), snr_focus=0.5)
    with pytest.raises(ValueError, match="snr_range: expected a pair"):
        SNRFocusedTimesteps(0.5, snr_range=(0.1, 1e-3))
    with pytest.raises(ValueError, match="focus: expected"):
        SNRFocusedTimesteps(-0.5, FOCUS_SNR)


def test_a_chain_too_short_to_hold_the_range_focuses_on_the_nearest_step():
    schedule = make_schedule("cosine", 5)  # its SNRs step over 1e-3..0.1
    focused = SNRFocusedTimesteps(1.0, FOCUS_SNR)
    steps = focused.focus_steps(schedule)
    assert len(steps) == 1
    ratios = snr(schedule, torch.arange(5))
    gap = (ratios.log() - torch.tensor(FOCUS_SNR).log().mean()).abs()
    assert steps.item() == gap.argmin().item()
    assert set(focused(50, schedule, torch.Generator().manual_seed(0)).tolist()) == {steps.item()}
