"""bench captions: caption match of the caption-conditioned transformer's clips at three guidance scales, one table."""
import json

import pytest
import torch

from course_lib.workshop.bench.captions import CEILING, COLUMNS, SCALES, sample_for_captions
from course_lib.workshop.bench.latent import reconstructed_clips
from course_lib.workshop.recipes import CAPTION_GUIDANCE_SCALE, get_recipe
from test_recipes_captions import TINY, awake

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_quick_run_writes_one_row_per_guidance_scale_and_its_verdicts(run_bench):
    result = run_bench("captions")
    assert result["code"] == 0
    record = json.loads((result["out"] / "captions-smoke-quick.json").read_text())
    assert tuple(record["columns"]) == COLUMNS and [row["w"] for row in record["rows"]] == [*SCALES, None]
    assert record["rows"][-1]["guidance"] == CEILING and record["rows"][-1]["trained"] == "the autoencoder"
    for row in record["rows"]:
        assert row["n"] == 4 and all(0 <= row[part] <= 1 for part in ("shape", "colour", "direction", "all"))
    assert SCALES[0] == CAPTION_GUIDANCE_SCALE and SCALES[-1] == 0.0
    assert len(record["verdicts"]) == 4 and "guidance off (w = 0)" in record["verdicts"][-1]
    assert "| on (the default) |" in result["text"]


def test_sampling_in_chunks_gives_each_caption_its_clip_and_the_same_noise_at_every_scale():
    recipe = get_recipe("video-captions", TINY)
    model = awake(recipe.build_model())
    captions = recipe.real_captioned(3).captions
    whole = sample_for_captions(recipe, model, captions, 0.0, batch=3)
    assert whole.shape == recipe.sample_shape(3)
    # w = 0 ignores the caption: the clips differ only by their noise, which the chunking fixes
    again = sample_for_captions(recipe, model, ["a red square moves left"] * 3, 0.0, batch=3)
    torch.testing.assert_close(whole, again, atol=1e-5, rtol=0)


def test_the_ceiling_row_is_the_held_out_clips_through_the_autoencoder():
    recipe = get_recipe("video-captions", TINY)
    model = awake(recipe.build_model())
    clips = recipe.real_captioned(5).clips.video
    decoded = reconstructed_clips(model.autoencoder, clips, batch=2)  # three chunks: 2, 2, 1
    assert decoded.shape == clips.shape
    torch.testing.assert_close(decoded, model.decode(model.encode(clips)), atol=1e-5, rtol=0)
