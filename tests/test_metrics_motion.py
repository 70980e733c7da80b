import numpy as np
import pytest
import torch

from course_lib.metrics.motion import fit_reflected_line, motion_consistency, reflected_path, track_objects


def bouncing_square(frames=16, size=32, obj=6, start=(3.0, 10.0), velocity=(2.5, -1.7)):
    """A square of side ``obj`` bouncing in a (frames, 1, size, size) clip, drawn independently of the metric."""
    clip = -torch.ones(frames, 1, size, size)
    (y, x), (vy, vx), high = start, velocity, size - obj
    for t in range(frames):
        clip[t, :, round(y):round(y) + obj, round(x):round(x) + obj] = 1
        y, x = y + vy, x + vx
        if not 0 <= y <= high:
            y, vy = (-y if y < 0 else 2 * high - y), -vy
        if not 0 <= x <= high:
            x, vx = (-x if x < 0 else 2 * high - x), -vx
    return clip


def test_reflected_path_bounces_between_the_walls():
    path = reflected_path(np.array(1.0), np.array(3.0), 8, 0.0, 10.0)
    assert path.tolist() == [1, 4, 7, 10, 7, 4, 1, 2]
    assert fit_reflected_line(path, 0.0, 10.0, 5.0) < 0.05


def test_true_bounces_pass_and_broken_motion_fails():
    good = torch.stack([bouncing_square(), bouncing_square(start=(20, 5), velocity=(-3, 2.2))])
    report = motion_consistency(good, object_size=6)
    assert report.passed.all() and (report.fit_error < 1.0).all()
    shuffled = good[:, torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    assert not motion_consistency(shuffled, object_size=6).passed.any()
    two = good[:1].clone()
    two[0, :, :, 26:30, 0:4] = 1  # a second object
    assert not motion_consistency(two, object_size=6).passed[0]
    noise = torch.rand(2, 16, 1, 32, 32) * 2 - 1
    assert motion_consistency(noise, object_size=6).pass_rate == 0.0
    lit = torch.ones(2, 16, 3, 32, 32)  # one frame-filling blob standing still is not a bouncing object
    assert motion_consistency(lit, object_size=6).pass_rate == 0.0
    rgb_noise = torch.rand(8, 16, 3, 32, 32) * 2 - 1
    assert motion_consistency(rgb_noise, object_size=6).pass_rate == 0.0


def test_the_course_data_passes():
    from course_lib.data.video import bouncing_shapes, moving_digits

    shapes = bouncing_shapes(32, frames=8, size=32, seed=3)
    assert motion_consistency(shapes.video, object_size=float(shapes.sizes.max())).pass_rate >= 0.95
    digits = moving_digits(32, frames=8, size=32, seed=3)
    assert motion_consistency(digits.video, object_size=14.0).pass_rate >= 0.9


def test_real_clips_pass_at_the_object_size_the_course_scores_with():
    """The recipe's object_size is the mean width; the largest squares (1.25× it) must pass too."""
    from course_lib.data.video import SHAPE_KINDS, bouncing_shapes
    from course_lib.workshop.recipes import get_recipe

    object_size = get_recipe("video-shapes", "cpu").object_size
    shapes = bouncing_shapes(128, frames=32, size=32, seed=11)
    report = motion_consistency(shapes.video, object_size=object_size)
    assert report.pass_rate >= 0.98, np.flatnonzero(~report.passed)
    squares = shapes.labels[:, 0] == SHAPE_KINDS.index("square")
    big_squares = (squares & (shapes.sizes[:, 0] >= 10.0)).numpy()  # the ones the 1.5 bound failed
    assert big_squares.sum() >= 5 and report.passed[big_squares].all()


def test_tracker_finds_the_centre():
    clip = bouncing_square(frames=3, velocity=(0, 0))[None]
    track, blobs, area = track_objects(clip)
    assert np.allclose(track[0, 0], (3 + 2.5, 10 + 2.5)) and blobs.tolist() == [[1, 1, 1]] and area[0, 0] == 36


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: motion_consistency(torch.zeros(2, 8, 1, 16), 4), ["video", "rank 5"]),
        (lambda: motion_consistency(torch.zeros(1, 2, 1, 16, 16), 4), ["video", "at least 3 frames", "2 frames"]),
        (lambda: motion_consistency(torch.zeros(1, 8, 1, 16, 16), 40), ["object_size", "[1.0, 16.0]", "40"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)
