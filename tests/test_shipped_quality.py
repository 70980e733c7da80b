"""Every shipped checkpoint samples what it was trained on, not noise: the course's own judges say so.

* digits: the digit judge reads the requested digit in ≥ 80% of 50 guided samples;
* bouncing shapes: ≥ 60% of 16 clips pass motion consistency (one object, moving like the data).
A shipped file with another task must add its check here (the last test fails until it does).
"""
from pathlib import Path

import pytest
import torch

from course_lib.config import get_preset
from course_lib.metrics.judge import get_digit_judge, judge_config_for_preset
from course_lib.metrics.motion import motion_consistency
from course_lib.workshop import zoo

SHIPPED = sorted((Path(zoo.__file__).resolve().parent / "pretrained").glob("*.pt"))
CHECKED_TASKS = ("digits", "video-shapes")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def shipped(task: str):
    (path,) = [path for path in SHIPPED if path.name.startswith(f"{task}-")]
    return zoo.load_checkpoint(path, progress=False)


def test_the_shipped_digits_model_draws_the_digit_it_is_asked_for():
    recipe, trainer = shipped("digits")
    labels = torch.arange(50) % 10
    samples = recipe.sample(trainer.ema_model, 50, labels=labels, guidance_scale=recipe.guidance_scale,
                            generator=torch.Generator().manual_seed(0))
    judge = get_digit_judge(recipe.preset.image_size,
                            config=judge_config_for_preset(get_preset("smoke").replace(image_size=recipe.preset.image_size)))
    with torch.no_grad():
        read = (judge(samples).argmax(1) == labels).float().mean().item()
    assert read >= 0.8, f"the judge reads the requested digit in {read:.0%} of 50 samples"


def test_the_shipped_shapes_model_draws_clips_that_move_like_the_data():
    recipe, trainer = shipped("video-shapes")
    clips = recipe.sample(trainer.ema_model, 16, generator=torch.Generator().manual_seed(0))
    rate = motion_consistency(clips, recipe.object_size).pass_rate
    assert rate >= 0.6, f"{rate:.0%} of 16 clips pass motion consistency"


def test_every_shipped_file_has_a_quality_check():
    tasks = {path.name.split("-unet")[0].split("-conv_lstm")[0] for path in SHIPPED}
    assert tasks <= set(CHECKED_TASKS), f"shipped without a quality check: {sorted(tasks - set(CHECKED_TASKS))}"
