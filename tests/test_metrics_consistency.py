"""Video consistency: real clips pass, and each planted failure fails its own part (and only the parts it must)."""
import numpy as np
import pytest
import torch

from course_lib.data.video import PALETTE, SHAPE_KINDS, bouncing_shapes, moving_digits, shape_coverage
from course_lib.metrics.consistency import UNCLEAR, ConsistencyReport, squareness, video_consistency
from course_lib.metrics.judge import digits_at, get_digit_judge
from course_lib.metrics.motion import object_masks
from course_lib.workshop.recipes import get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES_SIZE = get_recipe("video-shapes", "cpu").object_size  # the mean width, as the course scores with
DIGIT_BOX = get_recipe("video-digits", "cpu").object_size  # 14 px in a 32-px frame
T, HALF = 8, 4  # planted failures change frames HALF..T-1 (or frame HALF)


@pytest.fixture(scope="module")
def shapes():
    return bouncing_shapes(12, frames=T, size=32, seed=21)


@pytest.fixture(scope="module")
def digits():
    return moving_digits(12, frames=T, size=32, seed=21)


def parts(report: ConsistencyReport) -> dict[str, list[bool]]:
    return {name: ok.tolist() for name, ok in report.parts.items()}


def redraw(batch, frames: slice, kinds=None, colours=None, positions=None) -> torch.Tensor:
    """The batch's clips with ``frames`` drawn again by the data's renderer with other kinds (B,),
    colours (B, 3) or positions (B, T, 2); everything else as it was."""
    video = batch.video.clone()
    kinds = batch.labels[:, :1] if kinds is None else kinds[:, None]
    colours = batch.colors[:, 0] if colours is None else colours
    positions = batch.positions if positions is None else positions[:, :, None]
    alpha = shape_coverage(positions, batch.sizes, kinds, video.shape[-1])[:, :, 0, None]  # (B, T, 1, H, W)
    drawn = torch.lerp(torch.full_like(video, -1.0), colours[:, None, :, None, None], alpha)
    video[:, frames] = drawn[:, frames]
    return video


# --- real clips -----------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, size", [(8, 32), (4, 32)])  # the cpu and smoke presets' clips
def test_real_shapes_pass(frames, size):
    batch = bouncing_shapes(128, frames=frames, size=size, seed=5)
    report = video_consistency(batch.video, (size / 5 + size / 3) / 2)
    assert report.pass_rate >= 0.98, (report.summary(), report.failures())
    kinds = batch.labels[:, 0].numpy()
    colours = (batch.colors[:, 0, None, :] == PALETTE).all(-1).float().argmax(-1).numpy()
    assert (report.readings["shape"] == kinds[:, None]).mean() >= 0.99  # and the readings are the truth
    assert (report.readings["colour"] == colours[:, None]).mean() >= 0.99
    assert set(report.rates) == {"present", "motion", "colour", "shape", "combined"} and report.digit is None


@pytest.mark.parametrize("split", ["train", "test"])
def test_real_moving_digits_pass_and_read_their_digit(split):
    batch = moving_digits(128, frames=8, size=32, seed=5, split=split)
    labels = batch.labels[:, 0]
    report = video_consistency(batch.video, DIGIT_BOX, labels=labels)
    assert report.pass_rate >= 0.98, (report.summary(), report.failures())
    assert (report.readings["digit"] == labels.numpy()[:, None]).mean() >= 0.98
    assert list(report.parts) == ["present", "motion", "digit"] and report.colour is None


def test_the_small_digit_judge_reads_digits_drawn_as_moving_digits_draws_them():
    batch = moving_digits(1, frames=2, size=32, seed=9)
    box = int(DIGIT_BOX)
    y, x = (batch.positions[0, 0, 0] - (box - 1) / 2).round().long().tolist()
    images, labels = digits_at(1, box, "train", seed=9)  # the same generator draws the same digit
    assert torch.equal(batch.video[0, 0, :, y:y + box, x:x + box], images[0]) and labels[0] == batch.labels[0, 0]
    judge = get_digit_judge(size=box)
    assert judge.test_accuracy >= 0.98  # on held-out fonts


# --- planted failures: each fails its own part ----------------------------------------------------------

def test_a_colour_switch_mid_clip_fails_colour_only(shapes):
    index = (shapes.colors[:, 0, None, :] == PALETTE).all(-1).float().argmax(-1)
    other = PALETTE[(index + 3) % len(PALETTE)]  # red <-> yellow, green <-> magenta, blue <-> cyan
    report = video_consistency(redraw(shapes, slice(HALF, T), colours=other), SHAPES_SIZE)
    assert parts(report) == {"present": [True] * 12, "motion": [True] * 12, "colour": [False] * 12,
                             "shape": [True] * 12}
    assert report.failures() == ["colour"] * 12 and report.rates["combined"] == 0.0
    assert (report.readings["colour"][:, HALF:] == ((index + 3) % 6).numpy()[:, None]).all()


def test_a_shape_switch_mid_clip_fails_shape_only(shapes):
    report = video_consistency(redraw(shapes, slice(HALF, T), kinds=1 - shapes.labels[:, 0]), SHAPES_SIZE)
    assert parts(report) == {"present": [True] * 12, "motion": [True] * 12, "colour": [True] * 12,
                             "shape": [False] * 12}
    assert report.failures() == ["shape"] * 12


def test_an_empty_frame_fails_present_and_with_it_motion_but_not_the_look(shapes):
    video = shapes.video.clone()
    video[:, HALF] = -1
    report = video_consistency(video, SHAPES_SIZE)
    assert parts(report) == {"present": [False] * 12, "motion": [False] * 12, "colour": [True] * 12,
                             "shape": [True] * 12}
    assert report.failures() == ["present"] * 12
    assert (report.readings["colour"][:, HALF] == UNCLEAR).all()


def test_a_jump_to_another_place_fails_motion_only(shapes):
    mirrored = 31 - shapes.positions[:, :, 0]  # (B, T, 2): through the frame's centre, always inside it
    far = (mirrored - shapes.positions[:, :, 0])[:, HALF].norm(dim=-1) > 6  # clips where the jump is a jump
    report = video_consistency(redraw(shapes, slice(HALF, T), positions=mirrored), SHAPES_SIZE)
    assert far.sum() >= 6
    assert report.present.all() and report.colour.all() and report.shape.all()
    assert not report.motion[far.numpy()].any()
    assert [kind for kind, jumped in zip(report.failures(), far) if jumped] == ["motion"] * int(far.sum())


def test_a_second_object_fails_present(shapes):
    video = shapes.video.clone()
    video[:, :, :, 0:3, 0:3] = 1  # a white speck-sized square in a corner, every frame
    video[:, :, :, 29:32, 29:32] = 1
    assert video_consistency(video, SHAPES_SIZE).failures() == ["present"] * 12


def test_a_colour_between_two_palette_entries_or_a_blurred_shape_is_no_change(shapes):
    orange = torch.tensor([1.0, 0.0, -1.0]).expand(12, 3)  # as near red as yellow: no clear colour
    report = video_consistency(redraw(shapes, slice(HALF, T), colours=orange), SHAPES_SIZE)
    assert report.colour.all() and (report.readings["colour"][:, HALF:] == UNCLEAR).all()
    from scipy import ndimage  # a blurred blob is neither a circle nor a square

    blurred = torch.from_numpy(ndimage.gaussian_filter(shapes.video.numpy(), sigma=(0, 0, 0, 1.2, 1.2)))
    q = squareness(blurred, object_masks(blurred, -0.5)[0])
    assert np.abs(q).max() < 0.5 and video_consistency(blurred, SHAPES_SIZE).shape.all()


def test_a_digit_switch_or_the_wrong_requested_digit_fails_digit_only(digits):
    box = int(DIGIT_BOX)
    labels = digits.labels[:, 0]
    others, other_labels = digits_at(12, box, "train", seed=99)
    differ = (other_labels != labels).numpy()
    video = digits.video.clone()
    corner = (digits.positions[:, :, 0] - (box - 1) / 2).round().long()  # (B, T, 2) top-left, as pasted
    for i in range(12):
        for t in range(HALF, T):
            y, x = corner[i, t].tolist()
            video[i, t] = -1
            video[i, t, :, y:y + box, x:x + box] = others[i]
    report = video_consistency(video, DIGIT_BOX)
    assert report.present.all() and report.motion.all()
    assert report.digit.tolist() == (~differ).tolist() and differ.sum() >= 8
    wrong = video_consistency(digits.video, DIGIT_BOX, labels=(labels + 1) % 10)
    assert wrong.present.all() and wrong.motion.all() and not wrong.digit.any()
    assert video_consistency(digits.video, DIGIT_BOX, labels=labels).passed.all()


def test_an_empty_frame_and_a_jump_fail_digits_as_they_fail_shapes(digits):
    empty = digits.video.clone()
    empty[:, HALF] = -1
    report = video_consistency(empty, DIGIT_BOX)
    assert report.failures() == ["present"] * 12 and report.digit.all()
    jumped = torch.cat([digits.video[:, :HALF], digits.video[:, HALF:].flip(-1, -2)], 1)  # mirrored in space
    moved = (digits.positions[:, HALF, 0] - (31 - digits.positions[:, HALF, 0])).norm(dim=-1) > 6
    report = video_consistency(jumped, DIGIT_BOX)
    assert report.present.all() and not report.motion[moved.numpy()].any()


def test_the_report_combines_its_parts():
    report = ConsistencyReport(present=np.array([True, True, False]), motion=np.array([True, False, False]),
                               colour=np.array([True, True, True]), shape=np.array([False, True, True]),
                               digit=None, readings={}, motion_report=None)
    assert report.passed.tolist() == [False, False, False] and report.failures() == ["shape", "motion", "present"]
    assert report.rates == pytest.approx({"present": 2 / 3, "motion": 1 / 3, "colour": 1.0, "shape": 2 / 3,
                                          "combined": 0.0})
    assert report.summary() == "present 67%, motion 33%, colour 100%, shape 67%: 0% of 3 clips pass all"


# --- bad input: one clear error each -------------------------------------------------------------------

@pytest.mark.parametrize("video, labels, words", [
    (torch.zeros(2, 8, 3, 32), None, ["video", "rank 5", "(B, T, C, H, W)"]),
    (torch.zeros(2, 8, 2, 32, 32) - 1, None, ["video", "1 channel (moving digits) or 3 (bouncing shapes)", "(2, 8, 2, 32, 32)"]),
    (torch.zeros(2, 8, 4, 32, 32) - 1, None, ["video", "1 channel", "(2, 8, 4, 32, 32)"]),
    (torch.full((2, 8, 3, 32, 32), 255.0), None, ["video", "values in [-1, 1]", "x / 127.5 - 1", "[255, 255]"]),
    (torch.zeros(2, 8, 3, 32, 32, dtype=torch.uint8), None, ["video", "float clips", "torch.uint8"]),
    (torch.rand(2, 8, 3, 32, 32), None, ["video", "background near -1", "2x - 1", "only"]),
    (torch.zeros(0, 8, 3, 32, 32), None, ["video", "at least one clip", "B = 0"]),
    (torch.zeros(2, 2, 3, 32, 32) - 1, None, ["video", "at least 3 frames", "2 frames"]),
    (torch.full((2, 8, 3, 32, 32), float("nan")), None, ["video", "finite"]),
    (torch.zeros(2, 8, 3, 32, 32) - 1, torch.tensor([1, 2]), ["labels", "None for bouncing shapes"]),
    (torch.zeros(2, 8, 1, 32, 32) - 1, torch.tensor([1, 2, 3]), ["labels", "2 integer digits in [0, 9]", "(3,)"]),
    (torch.zeros(2, 8, 1, 32, 32) - 1, torch.tensor([1, 12]), ["labels", "2 integer digits in [0, 9]"]),
])
def test_bad_input_names_the_argument(video, labels, words):
    with pytest.raises(ValueError) as err:
        video_consistency(video, 8.0, labels=labels)
    message = str(err.value)
    assert all(word in message for word in words), message
    assert "\n" not in message


def test_bad_object_size_is_refused():
    with pytest.raises(ValueError, match=r"object_size: expected a number in \[1.0, 32.0\]"):
        video_consistency(bouncing_shapes(1, frames=3).video, 40.0)
