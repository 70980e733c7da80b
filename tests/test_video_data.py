import numpy as np
import pytest
import torch

from course_lib.data.video import (
    PALETTE,
    SHAPE_KINDS,
    VideoBatch,
    _paste_max,
    batch_to_frames,
    bounce,
    bouncing_shapes,
    correlation_by_lag,
    frame_correlation,
    frames_to_batch,
    from_channels_first_time,
    infinite_batches,
    moving_digits,
    shuffle_frames,
    to_channels_first_time,
)
from course_lib.metrics.motion import motion_consistency


def test_layout_conversions_move_axes_not_memory():
    video = torch.randn(2, 5, 3, 4, 6)  # (B, T, C, H, W)
    x = to_channels_first_time(video)
    assert x.shape == (2, 3, 5, 4, 6) and torch.equal(x[1, 2, 4], video[1, 4, 2])
    assert torch.equal(from_channels_first_time(x), video)
    images = frames_to_batch(video)
    assert images.shape == (10, 3, 4, 6) and torch.equal(images[1 * 5 + 3], video[1, 3])
    assert torch.equal(batch_to_frames(images, 5), video)


def test_bounce_reflects_off_the_walls():
    # start 1, speed 3, walls at 0 and 5: 1 → 4 → (7 reflected) 3 → (10) 0 → 3
    positions, velocities = bounce(torch.tensor(1.0), torch.tensor(3.0), 5, torch.tensor(0.0), torch.tensor(5.0))
    assert torch.allclose(positions, torch.tensor([1.0, 4.0, 3.0, 0.0, 3.0]))
    assert torch.equal(velocities[:3], torch.tensor([3.0, 3.0, -3.0]))


@pytest.mark.parametrize("size, digit_size", [(64, 28), (32, None), (40, 32)])
def test_moving_digits_shapes_and_ground_truth(size, digit_size):
    batch = moving_digits(3, frames=7, size=size, num_digits=2, seed=0, digit_size=digit_size)
    s = batch.sizes[0, 0].item()
    assert batch.video.shape == (3, 7, 1, size, size) and batch.video.dtype == torch.float32
    assert batch.video.min() >= -1 and batch.video.max() <= 1
    assert batch.positions.shape == batch.velocities.shape == (3, 7, 2, 2)
    assert batch.labels.shape == (3, 2) and batch.labels.dtype == torch.int64 and batch.colors is None
    low, high = (s - 1) / 2, size - 1 - (s - 1) / 2
    assert batch.positions.min() >= low - 1e-4 and batch.positions.max() <= high + 1e-4
    speed = batch.velocities.norm(dim=-1)
    assert torch.allclose(speed, speed[:, :1].expand_as(speed))  # constant speed, only directions flip


def test_motion_is_constant_velocity_between_bounces():
    batch = moving_digits(8, frames=12, size=64, seed=1)
    step = batch.positions[:, 1:] - batch.positions[:, :-1]
    same_direction = (batch.velocities[:, 1:] == batch.velocities[:, :-1]).all(-1)  # no bounce in between
    assert same_direction.any()
    assert torch.allclose(step[same_direction], batch.velocities[:, :-1][same_direction], atol=1e-4)
    assert (~same_direction).any()  # and some bounces happen in 12 frames


def test_one_digit_is_pasted_whole_where_the_positions_say():
    batch = moving_digits(4, frames=10, size=48, seed=2, digit_size=20)
    ink = (batch.video + 1) / 2  # (B, T, 1, H, W)
    per_frame = ink.sum((2, 3, 4))
    assert torch.allclose(per_frame, per_frame[:, :1].expand_as(per_frame), rtol=1e-4)  # never clipped
    ys = torch.arange(48.0).view(1, 1, 48, 1)
    mass = ink[:, :, 0].sum((-2, -1))
    centre_y = (ink[:, :, 0] * ys).sum((-2, -1)) / mass
    assert (centre_y - batch.positions[:, :, 0, 0]).abs().max() < 6  # ink centroid near the box centre


def test_overlapping_digits_combine_by_max():
    ink = torch.zeros(1, 2, 3, 3)
    ink[0, 0] = 0.3
    ink[0, 1, 1, 1] = 0.8
    top_left = torch.tensor([[[[0, 0], [0, 0]]]])  # (B=1, T=1, K=2, 2)
    canvas = _paste_max(ink, top_left, 1, 4)
    assert canvas[0, 0, 1, 1] == pytest.approx(0.8) and canvas[0, 0, 0, 0] == pytest.approx(0.3)
    assert canvas[0, 0, 3].abs().sum() == 0


def test_shapes_colours_kinds_and_motion():
    batch = bouncing_shapes(16, frames=10, size=32, seed=0)
    assert batch.video.shape == (16, 10, 3, 32, 32) and batch.colors.shape == (16, 1, 3)
    assert all((PALETTE == c).all(-1).any() for c in batch.colors[:, 0])
    centre = batch.positions.round().long()  # (B, T, 1, 2)
    b, t = torch.meshgrid(torch.arange(16), torch.arange(10), indexing="ij")
    at_centre = batch.video[b, t, :, centre[..., 0, 0], centre[..., 0, 1]]  # (B, T, 3)
    assert torch.allclose(at_centre, batch.colors[:, None, 0].expand(-1, 10, -1), atol=1e-5)
    area = ((batch.video[:, 0] + 1) / 2).amax(1).sum((-2, -1))  # coverage of the first frame
    expected = torch.where(batch.labels[:, 0] == SHAPE_KINDS.index("circle"), torch.pi / 4, 1.0) * batch.sizes[:, 0] ** 2
    assert ((area - expected).abs() / expected).max() < 0.15
    assert set(batch.labels[:, 0].tolist()) == {0, 1}


def test_shapes_pass_the_motion_consistency_metric_and_shuffled_frames_do_not():
    batch = bouncing_shapes(8, frames=8, size=32, seed=3, shape_size=(8, 8))
    assert motion_consistency(batch.video, object_size=8).pass_rate == 1.0
    shuffled = shuffle_frames(batch.video, torch.Generator().manual_seed(0))
    assert motion_consistency(shuffled, object_size=8).pass_rate < 0.5


def test_same_seed_same_batch_and_streams_differ():
    a, b = moving_digits(2, frames=4, size=32, seed=7), moving_digits(2, frames=4, size=32, seed=7)
    assert torch.equal(a.video, b.video) and torch.equal(a.positions, b.positions)
    stream = infinite_batches(bouncing_shapes, 2, seed=7, frames=4, size=16)
    first, second = next(stream), next(stream)
    assert not torch.equal(first.video, second.video)
    again = infinite_batches(bouncing_shapes, 2, seed=7, frames=4, size=16)
    assert torch.equal(next(again).video, first.video)


def test_video_batch_to_and_len():
    batch = bouncing_shapes(3, frames=2, size=16).to("cpu")
    assert isinstance(batch, VideoBatch) and len(batch) == 3 and batch.colors is not None


def test_frame_correlation_matches_numpy():
    video = torch.randn(2, 6, 1, 5, 5).cumsum(1)  # a random walk over time: correlated frames
    for lag in (0, 2, 5):
        pairs = [np.corrcoef(video[b, t].flatten(), video[b, t + lag].flatten())[0, 1]
                 for b in range(2) for t in range(6 - lag)]
        assert frame_correlation(video, lag).item() == pytest.approx(np.mean(pairs), abs=1e-5)
    curve = correlation_by_lag(video)
    assert curve.shape == (6,) and curve[0] == pytest.approx(1.0) and curve[1] > curve[5]


def test_shuffle_frames_keeps_each_clips_frames():
    video = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1, 1, 1).expand(2, 5, 1, 2, 2)
    shuffled = shuffle_frames(video, torch.Generator().manual_seed(1))
    for b in range(2):
        assert sorted(shuffled[b, :, 0, 0, 0].tolist()) == video[b, :, 0, 0, 0].tolist()
    assert not torch.equal(shuffled, video)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: to_channels_first_time(torch.zeros(2, 3, 8, 8)), ["video", "rank 5", "(B, T, C, H, W)", "(2, 3, 8, 8)"]),
        (lambda: from_channels_first_time(torch.zeros(3, 8, 8)), ["x", "(B, C, T, H, W)"]),
        (lambda: batch_to_frames(torch.zeros(6, 1, 4, 4), 4), ["frames", "divisor", "6"]),
        (lambda: frame_correlation(torch.zeros(1, 3, 1, 4, 4), 3), ["lag", "[0, 2]", "3"]),
        (lambda: correlation_by_lag(torch.zeros(1, 3, 1, 4, 4), max_lag=-1), ["max_lag"]),
        (lambda: moving_digits(0), ["batch", "positive int"]),
        (lambda: moving_digits(1, size=32, digit_size=32), ["digit_size", "[4, 31]", "32"]),
        (lambda: moving_digits(1, num_digits=0), ["num_digits", "[1, 16]"]),
        (lambda: moving_digits(1, split="val"), ["split", "'val'"]),
        (lambda: moving_digits(1, speed=(3, 1)), ["speed", "(low, high)"]),
        (lambda: bouncing_shapes(1, size=4), ["size", "[8, 1024]", "4"]),
        (lambda: bouncing_shapes(1, shape_size=(1, 40)), ["shape_size", "size=32"]),
        (lambda: bouncing_shapes(1, generator="g"), ["generator", "torch.Generator"]),
        (lambda: next(infinite_batches("moving_digits", 2)), ["maker", "moving_digits"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)
