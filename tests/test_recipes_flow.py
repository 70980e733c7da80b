"""objective="flow": every recipe can train with flow matching and sample with the Euler or Heun solver."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.diffusion.flow import FlowMatchingObjective
from course_lib.metrics.toy import mmd_rbf
from course_lib.workshop import zoo
from course_lib.workshop.cli import main
from course_lib.workshop.recipes import FOCUS_SNR, get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_VIDEO = get_preset("smoke").replace(video_size=16, video_frames=3, video_base_channels=8, video_batch_size=2)


def test_a_flow_recipe_trains_with_the_flow_loss_and_samples_two_moons_with_both_solvers(tmp_path):
    recipe = get_recipe("toy-moons", "smoke", objective="flow", steps=300)
    assert isinstance(recipe.loss_fn, FlowMatchingObjective) and recipe.loss_fn.time_sampler == "logit-normal"
    trainer = zoo.train(recipe, tmp_path / "flow.pt", progress=False)
    losses = torch.tensor(trainer.history["loss"])
    assert losses[-50:].mean() < losses[:50].mean()
    data = recipe.real_examples(512)
    noise = torch.randn(512, 2, generator=torch.Generator().manual_seed(1))
    for sampler in ("euler", "heun"):
        samples = recipe.sample(trainer.ema_model, 512, steps=10, sampler=sampler)
        assert mmd_rbf(samples, data) < 0.5 * mmd_rbf(noise, data), sampler
    assert torch.equal(recipe.sample(trainer.ema_model, 8, steps=4), recipe.sample(trainer.ema_model, 8, steps=4,
                                                                                   sampler="euler"))


def test_class_conditional_and_video_recipes_take_the_flow_objective():
    digits = get_recipe("digits", get_preset("smoke").replace(image_base_channels=8), objective="flow")
    loss_fn = digits.loss_fn
    assert loss_fn.null_label == 10 and loss_fn.label_dropout == digits.label_dropout
    model = digits.build_model()
    batch = digits.make_batch(torch.Generator().manual_seed(0))
    assert torch.isfinite(loss_fn(model, batch, torch.Generator().manual_seed(0)))
    images = digits.sample(model, 4, steps=2, guidance_scale=3.0)
    assert images.shape == (4, *digits.example_shape) and torch.isfinite(images).all()
    video = get_recipe("video-shapes", TINY_VIDEO, objective="flow")
    x0_twin = get_recipe("video-shapes", TINY_VIDEO)
    assert video.snr_focus == x0_twin.snr_focus > 0  # the same share of training on the same noise levels
    assert video.loss_fn.focus == video.snr_focus and video.loss_fn.focus_snr == FOCUS_SNR
    assert video.sample(video.build_model(), 2, steps=2, sampler="heun").shape == (2, 3, 3, 16, 16)


@pytest.mark.parametrize("call, words", [
    (lambda: get_recipe("toy-moons", "smoke", objective="flow").sample(
        get_recipe("toy-moons", "smoke").build_model(), 2, sampler="ddim"), ["sampler", "'euler'", "'ddim'"]),
    (lambda: get_recipe("toy-moons", "smoke").sample(get_recipe("toy-moons", "smoke").build_model(), 2,
                                                     sampler="heun"), ["sampler", "'ddim'", "'heun'"]),
    (lambda: get_recipe("video-shapes", TINY_VIDEO, objective="flow", snr_focus=1.5), ["snr_focus", "1.5"]),
    (lambda: get_recipe("toy-moons", "smoke", objective="velocity"), ["objective", "'flow'", "'velocity'"]),
])
def test_bad_flow_settings_are_one_clear_error(call, words):
    with pytest.raises(ValueError) as error:
        call()
    assert all(word in str(error.value) for word in words), str(error.value)


def test_the_command_line_trains_with_objective_flow_and_needs_a_task(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--task", "toy-moons", "--preset", "smoke", "--objective", "flow", "--steps", "5",
                 "--checkpoint", "f.pt"]) == 0
    assert main(["sample", "--checkpoint", "f.pt", "--sampler", "heun", "--steps", "3", "--out", "s.png"]) == 0
    assert "(heun," in capsys.readouterr().out
    assert main(["train", "--checkpoint", "f.pt", "--resume", "--objective", "flow"]) == 2
    assert "--objective: a new run needs --task" in capsys.readouterr().err
