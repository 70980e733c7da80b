"""Caption match: real clips match their own captions; a caption with one attribute changed fails that part only."""
import dataclasses

import numpy as np
import pytest
import torch

from course_lib.data.captions import caption_text, captioned_digits, captioned_shapes
from course_lib.metrics.caption_match import CaptionMatchReport, caption_match, most_frequent
from course_lib.metrics.consistency import UNCLEAR
from course_lib.workshop.recipes import get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES_SIZE = get_recipe("video-shapes", "cpu").object_size  # the mean width, as the course scores with
DIGIT_BOX = get_recipe("video-digits", "cpu").object_size


@pytest.fixture(scope="module")
def shapes():
    return captioned_shapes(32, frames=8, size=32, seed=7)


@pytest.fixture(scope="module")
def digits():
    return captioned_digits(24, frames=8, size=32, seed=7)


def changed(attributes, **fields):
    return caption_text(dataclasses.replace(attributes, **fields))


def test_real_clips_match_their_captions(shapes):
    report = caption_match(shapes.clips.video, shapes.captions, SHAPES_SIZE)
    assert report.rates == {"shape": 1.0, "colour": 1.0, "direction": 1.0, "all": 1.0}, report.summary()
    assert list(report.parts) == ["shape", "colour", "direction"] and report.digit is None
    assert torch.equal(torch.from_numpy(report.readings["direction"]), shapes.attributes.direction)
    assert report.summary() == "shape 100%, colour 100%, direction 100%: 100% of 32 clips match their caption"


def test_real_16_frame_clips_match_too():
    data = captioned_shapes(16, frames=16, size=32, seed=8)
    assert caption_match(data.clips.video, data.attributes, SHAPES_SIZE).rates["all"] == 1.0


@pytest.mark.parametrize("part, change", [
    ("colour", lambda a: {"colour": (a.colour + 3) % 6}),  # red <-> yellow, green <-> magenta, blue <-> cyan
    ("shape", lambda a: {"shape": 1 - a.shape}),
    ("direction", lambda a: {"direction": (a.direction + 4) % 8}),  # the opposite way
    ("direction", lambda a: {"direction": (a.direction + 1) % 8}),  # the next bin, 45° away
])
def test_a_changed_caption_fails_that_part_only(shapes, part, change):
    report = caption_match(shapes.clips.video, changed(shapes.attributes, **change(shapes.attributes)), SHAPES_SIZE)
    assert report.rates[part] == 0.0 and report.rates["all"] == 0.0
    assert all(rate == 1.0 for name, rate in report.rates.items() if name not in (part, "all")), report.summary()


def test_digits_match_their_captions_and_a_changed_digit_fails(digits):
    report = caption_match(digits.clips.video, digits.captions, DIGIT_BOX)
    assert list(report.parts) == ["digit", "direction"]
    assert report.rates["direction"] >= 0.9 and report.rates["digit"] >= 0.95, report.summary()
    wrong = caption_match(digits.clips.video, changed(digits.attributes, digit=(digits.attributes.digit + 1) % 10),
                          DIGIT_BOX)
    assert wrong.rates["digit"] <= 0.05 and np.array_equal(wrong.direction, report.direction)


def test_a_blank_clip_matches_nothing(shapes):
    video = torch.full_like(shapes.clips.video[:2], -1.0)
    video[..., 0, 0] = 0.0  # not only background
    report = caption_match(video, shapes.captions[:2], SHAPES_SIZE)
    assert not report.matched.any() and (report.readings["direction"] == UNCLEAR).all()
    assert np.isnan(report.velocity).all()


def test_most_frequent_ignores_unclear_frames():
    readings = np.array([[1, 1, UNCLEAR, 2], [UNCLEAR] * 4, [3, 2, 2, 3]])
    assert most_frequent(readings).tolist() == [1, UNCLEAR, 2]


@pytest.mark.parametrize("call, message", [
    (lambda d: caption_match(d.clips.video, d.captions[:3], SHAPES_SIZE), r"captions: expected one caption per clip \(32\), got '3 captions'"),
    (lambda d: caption_match(d.clips.video, ["the digit 7 drifts up"] * 32, SHAPES_SIZE), r"captions: expected captions of bouncing shapes"),
    (lambda d: caption_match(d.clips.video[:, :, :1], d.captions, SHAPES_SIZE), r"captions: expected captions of moving digits"),
    (lambda d: caption_match(d.clips.video, ["a red hexagon moves up"] * 32, SHAPES_SIZE), r"captions\[0\]: expected 'a <colour> <shape>"),
    (lambda d: caption_match(d.clips.video[0], d.captions, SHAPES_SIZE), r"video: expected a tensor of rank 5"),
    (lambda d: caption_match(d.clips.video, d.captions, 0.5), r"object_size: expected a number in \[1.0, 32.0\]"),
])
def test_bad_input_is_one_clear_error(shapes, call, message):
    with pytest.raises(ValueError, match=message):
        call(shapes)


def test_the_report_is_a_dataclass_of_per_clip_verdicts(shapes):
    report = caption_match(shapes.clips.video[:4], shapes.captions[:4], SHAPES_SIZE)
    assert isinstance(report, CaptionMatchReport) and report.matched.shape == (4,) and report.velocity.shape == (4, 2)
