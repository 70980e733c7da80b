"""bench identity: video consistency of each checkpoint's clips, and how many clips' frames part ways in colour at each noise level."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.config import get_preset
from course_lib.metrics.consistency import UNCLEAR
from course_lib.workshop.bench.identity import COLUMNS, SPLIT_AT, identity_scores, split_clips
from course_lib.workshop.recipes import get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


class Predicts(nn.Module):
    """An x0-model that predicts the same clean clips at every step: the sampler ends on them."""

    def __init__(self, clips):
        super().__init__()
        self.register_buffer("clips", clips)
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return self.clips[: len(x)]


def test_a_clip_splits_when_two_of_its_frames_clearly_read_two_colours():
    red, green = 0, 1
    readings = np.array([[red, red, UNCLEAR, red], [red, UNCLEAR, green, red], [UNCLEAR] * 4, [green] * 4])
    assert split_clips(readings).tolist() == [False, True, False, False]


def test_clips_whose_colour_changes_mid_clip_are_split_at_every_step_and_fail_colour():
    recipe = get_recipe("video-shapes", get_preset("smoke").replace(num_diffusion_steps=100, sample_steps=10),
                        objective="x0")
    clips = recipe.real_examples(4)
    recoloured = clips.clone()
    recoloured[:, 2:] = clips[:, 2:].roll(1, dims=2)  # red -> green, yellow -> cyan, ...: every colour changes
    kept = identity_scores(recipe, Predicts(clips), n=4, batch=2)
    changed = identity_scores(recipe, Predicts(recoloured), n=4, batch=2)
    assert kept["colour"] == 1.0 and kept["split end"] == 0.0
    assert all(kept[f"split t={t}"] == 0.0 for t in SPLIT_AT)
    assert changed["colour"] == 0.0 and changed["split end"] == 1.0 and changed["all"] == 0.0
    assert all(changed[f"split t={t}"] == 1.0 for t in SPLIT_AT)
    assert changed["motion"] == kept["motion"], "the positions did not change"


def test_the_quick_run_writes_one_row_with_every_column(run_bench):
    result = run_bench("identity")
    assert result["code"] == 0
    record = json.loads((result["out"] / "identity-smoke-quick.json").read_text())
    assert tuple(record["columns"]) == COLUMNS and len(record["rows"]) == 1
    row = record["rows"][0]
    assert row["n"] == 4 and all(0 <= row[c] <= 1 for c in COLUMNS[2:-2])


@pytest.mark.parametrize("quick", [False, True])
def test_a_missing_checkpoint_or_one_with_quick_is_one_line_naming_it(tmp_path, capsys, quick):
    from course_lib.workshop.bench.__main__ import main

    typo = tmp_path / "typo.pt"
    if quick:
        typo.write_bytes(b"")
    code = main(["identity", "--checkpoint", str(typo), "--out", str(tmp_path / "out")] + ["--quick"] * quick)
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "Traceback" not in err, err
    assert "--checkpoint" in err and "typo.pt" in err and (("--quick" in err) == quick)
    written = sorted((tmp_path / "out").glob("identity-*")) if (tmp_path / "out").exists() else []
    assert written == [], "no record of a run that did not happen"
