"""Bad input to the core gives one clear ValueError naming the argument, never a silent NaN or a
crash from deep inside: NaN/inf refused by the forward process, samplers, editing and metrics;
out-of-range arguments of schedules, samplers and editing refused before any work."""
import math

import pytest
import torch

from course_lib._validation import check_finite, check_output, check_positive_float, check_values_in
from course_lib.diffusion.conditioning import conditional_sample
from course_lib.diffusion.editing import inpaint, repair_frames, sdedit
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.objectives import diffusion_loss
from course_lib.diffusion.samplers import ddim_sample, ddim_steps, ddpm_sample
from course_lib.diffusion.schedules import cosine_betas, linear_betas, make_schedule, sigmoid_betas
from course_lib.metrics.image import psnr, ssim
from course_lib.metrics.motion import motion_consistency
from course_lib.metrics.toy import mmd_rbf, nearest_neighbour_distance
from course_lib.models.unet3d import UNet3D

S = make_schedule("linear", 20)
NAN = float("nan")


def zero_eps(x, t):
    return torch.zeros_like(x)


def with_nan(shape, where=0):
    x = torch.zeros(shape)
    x.view(-1)[where] = NAN
    return x


def raises(call, *words):
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    for word in words:
        assert word in message, (word, message)
    assert "\n" not in message
    return message


# --- the helpers ------------------------------------------------------------------------------------

def test_validation_helpers():
    raises(lambda: check_finite("x", torch.tensor([1.0, NAN, math.inf])), "x", "finite", "2 NaN/inf")
    raises(lambda: check_finite("x", [1.0]), "x", "torch.Tensor", "list")
    assert check_finite("x", torch.tensor([1, 2])).tolist() == [1, 2]  # integers are always finite
    raises(lambda: check_values_in("m", torch.tensor([0.0, 2.0]), 0.0, 1.0), "m", "[0.0, 1.0]", "[0, 2]")
    raises(lambda: check_output("out", [1.0], (1,)), "out", "torch.Tensor", "list")
    raises(lambda: check_output("out", torch.zeros(2), (1,)), "out", "(1,)", "(2,)")
    raises(lambda: check_output("out", torch.tensor([NAN]), (1,)), "out", "finite")
    for bad in (0, -1.0, math.inf, NAN, True, "1"):
        raises(lambda: check_positive_float("tau", bad), "tau", "> 0")
    assert check_positive_float("tau", 2) == 2.0


# --- item 15: argument checks -----------------------------------------------------------------------

@pytest.mark.parametrize("call, words", [
    (lambda: cosine_betas(10, offset=-1), ["offset", "[0.0, 1.0]", "-1"]),
    (lambda: cosine_betas(10, offset=NAN), ["offset", "nan"]),
    (lambda: cosine_betas(0), ["num_steps", "positive int", "0"]),
    (lambda: linear_betas(0), ["num_steps", "positive int", "0"]),
    (lambda: linear_betas(-3), ["num_steps", "positive int", "-3"]),
    (lambda: sigmoid_betas(10, tau=0), ["tau", "> 0", "0"]),
    (lambda: sigmoid_betas(10, tau=-1.0), ["tau", "> 0", "-1.0"]),
    (lambda: sigmoid_betas(10, start=3, end=-3), ["end", "above start=3", "-3"]),
    (lambda: sigmoid_betas(10, start=5, end=10, tau=1e-3), ["tau", "differ", "0.001"]),
    (lambda: sigmoid_betas(0), ["num_steps", "positive int"]),
])
def test_bad_schedule_arguments(call, words):
    raises(call, *words)


def test_schedules_with_good_arguments_are_finite():
    for betas in (cosine_betas(1), cosine_betas(10, offset=0.0), linear_betas(1), sigmoid_betas(10, tau=0.1)):
        assert torch.isfinite(betas).all() and betas.numel() >= 1


@pytest.mark.parametrize("steps", [0, -3, 21, 2.5, True])
def test_sdedit_steps_must_be_in_one_to_T(steps):
    raises(lambda: sdedit(zero_eps, torch.zeros(2, 3), 0.5, S, steps=steps), "steps", "[1, 20]")


def test_ddim_steps_above_the_chain_are_refused_not_clamped():
    raises(lambda: ddim_sample(zero_eps, (2, 1), S, steps=25), "steps", "[1, 20]", "25")
    raises(lambda: ddim_sample(zero_eps, (2, 1), S, steps=0), "steps", "[1, 20]", "0")
    raises(lambda: ddim_sample(zero_eps, (2, 1), S, steps=6, x_start=torch.zeros(2, 1), t_start=4),
           "steps", "[1, 5]", "6")
    assert len(list(ddim_steps(zero_eps, (2, 1), S, steps=20))) == 20  # the full chain stays allowed


@pytest.mark.parametrize("region, words", [
    (torch.full((1, 1, 1, 4, 4), 2.0), ["region", "[0.0, 1.0]", "[2, 2]"]),
    (torch.full((1, 1, 1, 4, 4), -0.5), ["region", "[0.0, 1.0]"]),
    (2.0, ["region", "torch.Tensor", "float"]),
    (with_nan((1, 1, 1, 4, 4)), ["region", "finite"]),
])
def test_inpaint_region_is_a_mask_in_zero_one(region, words):
    raises(lambda: inpaint(zero_eps, torch.zeros(1, 3, 1, 4, 4), region, S, steps=2), *words)


@pytest.mark.parametrize("damaged, words", [
    ([0, 1, 2], ["damaged", "at least one intact frame", "every frame damaged"]),
    (torch.ones(2, 3, dtype=torch.bool), ["damaged", "at least one intact frame"]),
    (torch.tensor([[True, True, True], [False, True, False]]), ["damaged", "at least one intact frame"]),
    (3, ["damaged", "a list of frame indices in [0, 2]", "3"]),
    ("1", ["damaged", "a list of frame indices"]),
    (torch.ones(2, 3), ["damaged", "bool tensor of shape (2, 3)", "torch.float32"]),
    (torch.zeros(3, dtype=torch.bool), ["damaged", "(2, 3)", "(3,)"]),
])
def test_repair_frames_refuses_bad_damage_lists(damaged, words):
    raises(lambda: repair_frames(zero_eps, torch.zeros(2, 3, 1, 4, 4), damaged, S, steps=2), *words)


def test_a_model_fn_returning_a_non_tensor_is_named():
    raises(lambda: ddim_sample(lambda x, t: [x], (2, 1), S, steps=2), "model_fn output at t=19", "torch.Tensor", "list")
    raises(lambda: ddpm_sample(lambda x, t: x.tolist(), (2, 1), S), "model_fn output", "list")
    raises(lambda: diffusion_loss(lambda x, t: (x,), torch.zeros(2, 1), S), "model output", "torch.Tensor", "tuple")


def test_unet3d_given_float64_names_the_dtype():
    model = UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), attention_levels=())
    x, t = torch.randn(1, 2, 1, 8, 8), torch.zeros(1, dtype=torch.long)
    raises(lambda: model(x.double(), t), "x", "torch.float32", "torch.float64")
    assert model(x, t).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x, t).shape == x.shape  # mixed precision still takes float32 input


def test_motion_consistency_of_an_empty_batch_is_refused():
    raises(lambda: motion_consistency(torch.zeros(0, 4, 1, 16, 16), 4.0), "video", "at least one clip", "B = 0")


# --- item 14: NaN/inf in, a clear error out ----------------------------------------------------------

def test_q_sample_refuses_non_finite_data_and_noise():
    raises(lambda: q_sample(with_nan((2, 3)), 5, S), "x0", "finite", "1 NaN/inf")
    raises(lambda: q_sample(torch.zeros(2, 3), 5, S, noise=torch.full((2, 3), math.inf)), "noise", "finite", "6")


def test_diffusion_loss_refuses_non_finite_data():
    raises(lambda: diffusion_loss(zero_eps, with_nan((4, 2)), S), "x0", "finite")


def test_ddim_and_ddpm_refuse_a_model_that_returns_nan():
    def nan_model(x, t):
        return torch.full_like(x, NAN)
    raises(lambda: ddim_sample(nan_model, (2, 1), S, steps=4), "model_fn output at t=19", "finite", "2 NaN/inf")
    raises(lambda: ddpm_sample(nan_model, (2, 1), S), "model_fn output", "finite")
    raises(lambda: ddim_sample(zero_eps, (2, 1), S, steps=2, x_start=with_nan((2, 1)), t_start=5), "x_start", "finite")


def test_editing_refuses_nan_clips():
    raises(lambda: sdedit(zero_eps, with_nan((2, 3)), 0.5, S, steps=4), "x", "finite")
    raises(lambda: sdedit(zero_eps, with_nan((2, 3)), 0.0, S), "x", "finite")  # even when nothing is edited
    video = with_nan((1, 3, 1, 4, 4))
    raises(lambda: inpaint(zero_eps, video, torch.ones(1, 1, 1, 4, 4), S, steps=2), "video", "finite")
    raises(lambda: repair_frames(zero_eps, video, [1], S, steps=2), "video", "finite")


def test_conditional_sample_refuses_nan_known_and_bad_masks():
    known = torch.zeros(1, 3, 1, 4, 4)
    mask = torch.ones(1, 3, 1, 1, 1)
    raises(lambda: conditional_sample(zero_eps, with_nan(known.shape, where=-1), mask, S, steps=2), "known", "finite")
    raises(lambda: conditional_sample(zero_eps, known, mask * 3, S, steps=2), "mask", "[0.0, 1.0]")
    raises(lambda: conditional_sample(zero_eps, known, mask * NAN, S, steps=2), "mask", "finite")


def test_metrics_refuse_nan():
    good = torch.zeros(2, 1, 8, 8)
    raises(lambda: psnr(with_nan(good.shape), good), "x", "finite")
    raises(lambda: psnr(good, torch.full(good.shape, math.inf)), "y", "finite")
    big = torch.zeros(2, 1, 16, 16)
    raises(lambda: ssim(big, with_nan(big.shape)), "y", "finite")
    raises(lambda: mmd_rbf(with_nan((4, 2)), torch.zeros(4, 2)), "x", "finite")
    raises(lambda: mmd_rbf(torch.zeros(4, 2), with_nan((4, 2))), "y", "finite")
    raises(lambda: nearest_neighbour_distance(with_nan((4, 2)), torch.zeros(4, 2)), "samples", "finite")
    raises(lambda: motion_consistency(with_nan((1, 4, 1, 16, 16)), 4.0), "video", "finite")
