"""model="forcing": the video U-Net trained with a noise level per frame, as a recipe the zoo and the CLI train."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.diffusion.forcing import DiffusionForcingObjective, rolling_rollout
from course_lib.workshop import zoo
from course_lib.workshop.cli import main
from course_lib.workshop.recipes import get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = get_preset("smoke").replace(num_diffusion_steps=50, video_size=16, video_frames=3, video_base_channels=8,
                                   video_batch_size=2, prediction_train_steps=4)


def test_the_forcing_recipe_trains_with_a_level_per_frame_and_its_own_key():
    recipe = get_recipe("video-shapes", TINY, "forcing")
    assert isinstance(recipe.loss_fn, DiffusionForcingObjective) and recipe.loss_fn.objective == recipe.objective
    assert recipe.steps == TINY.prediction_train_steps
    model = recipe.build_model()
    assert model.frame_embedding is not None and model.middle_in.temporal_conv is not None
    plain = get_recipe("video-shapes", TINY)
    assert recipe.key() != plain.key() and recipe.name().startswith("video-shapes-forcing-smoke-")
    digits = get_recipe("video-digits", TINY, "forcing")
    assert digits.loss_fn.null_label == 10 and digits.loss_fn.label_dropout == digits.label_dropout
    loss = digits.loss_fn(digits.build_model(), digits.make_batch(torch.Generator().manual_seed(0)),
                          torch.Generator().manual_seed(1))
    assert torch.isfinite(loss)


def test_train_or_load_trains_once_then_loads_and_the_model_rolls_out(tmp_path):
    recipe = get_recipe("video-shapes", TINY, "forcing")
    trainer = zoo.train_or_load(recipe, folder=tmp_path, progress=False, shipped_folder=None)
    assert trainer.step == TINY.prediction_train_steps
    again = zoo.train_or_load(recipe, folder=tmp_path, progress=False, shipped_folder=None)
    for a, b in zip(trainer.ema_model.parameters(), again.ema_model.parameters()):
        assert torch.equal(a, b)
    first = recipe.real_examples(2)[:, :2]
    video = rolling_rollout(again.ema_model.eval(), first, 7, 3, recipe.schedule, 3, objective=recipe.objective)
    assert video.shape == (2, 7, *recipe.example_shape[1:]) and torch.equal(video[:, :2], first)
    assert recipe.sample(again.ema_model, 2, steps=2).shape == recipe.sample_shape(2)


def test_the_command_line_trains_the_forcing_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--task", "video-shapes", "--model", "forcing", "--preset", "smoke", "--steps", "2",
                 "--checkpoint", "f.pt"]) == 0
    recipe, _ = zoo.load_checkpoint("f.pt")
    assert recipe.model_name == "forcing"


def test_the_forcing_model_refuses_the_flow_objective():
    with pytest.raises(ValueError, match=r"^objective: expected 'eps', 'x0' or 'v' for the forcing model"):
        get_recipe("video-shapes", TINY, "forcing", objective="flow")
