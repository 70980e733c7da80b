"""The prediction harness: baselines, per-clip scores, rollouts and decay curves, on clips with known truth."""
import math

import matplotlib
import pytest
import torch

from course_lib.data.video import bouncing_shapes
from course_lib.metrics.motion import motion_consistency
from course_lib.diffusion.rollout import autoregressive_rollout
from course_lib.views.prediction import plot_decay
from course_lib.metrics.prediction import (
    comparison_table,
    decay_table,
    decay_with_length,
    future_psnr,
    frames_psnr,
    future_ssim,
    interpolate_frames,
    keeps_moving,
    motion_passes,
    palette_distance,
    region_psnr,
    repeat_last_frame,
    run_predictor,
    score_predictions,
)

matplotlib.use("Agg")
OBJECT = 8.5  # bouncing_shapes' mean object width at size 32


def ramp(b=2, t=8, c=1, h=4, w=4):
    """A video linear in time: frame j = a + j·d, so linear extrapolation and interpolation are exact."""
    g = torch.Generator().manual_seed(0)
    a, d = torch.randn(b, 1, c, h, w, generator=g), torch.randn(b, 1, c, h, w, generator=g) / 10
    return a + d * torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1)


def extrapolate(past, frames):
    """A predictor that continues the last step linearly: exact on ``ramp`` videos."""
    step = past[:, -1:] - past[:, -2:-1]
    future = past[:, -1:] + step * torch.arange(1, frames - past.shape[1] + 1, dtype=past.dtype).view(1, -1, 1, 1, 1)
    return torch.cat([past, future], 1)


def test_repeat_last_frame_holds_the_last_known_frame():
    past = torch.randn(3, 4, 2, 5, 5)
    out = repeat_last_frame(past, 7)
    assert out.shape == (3, 7, 2, 5, 5) and torch.equal(out[:, :4], past)
    assert all(torch.equal(out[:, j], past[:, 3]) for j in range(4, 7))


def test_interpolation_is_exact_on_linear_motion_and_copies_at_the_ends():
    video = ramp()
    damaged = video.clone()
    damaged[:, [2, 3, 5]] = 0
    repaired = interpolate_frames(damaged, [2, 3, 5])
    assert torch.allclose(repaired, video, atol=1e-6)
    ends = interpolate_frames(video, [0, 7])
    assert torch.equal(ends[:, 0], video[:, 1]) and torch.equal(ends[:, 7], video[:, 6])


def test_future_psnr_counts_only_future_frames_and_matches_the_formula():
    truth = torch.zeros(2, 6, 1, 4, 4)
    prediction = truth.clone()
    prediction[:, :2] = 0.7  # known frames: ignored
    prediction[:, 2:] += 0.1  # MSE 0.01 on the future
    assert torch.allclose(future_psnr(prediction, truth, 2), torch.full((2,), 10 * math.log10(4 / 0.01)))
    assert torch.isinf(future_psnr(truth, truth, 2)).all()


def test_frame_and_region_psnr_count_only_what_they_are_given():
    truth = torch.zeros(2, 5, 3, 6, 6)
    edited = truth.clone()
    edited[:, 1] += 0.2  # frame 1: MSE 0.04
    edited[:, 3, :, :2, :3] += 0.5  # a corner of frame 3
    assert torch.allclose(frames_psnr(edited, truth, [1]), torch.full((2,), 10 * math.log10(4 / 0.04)))
    assert torch.allclose(frames_psnr(edited, truth, [1, 0]), torch.full((2,), 10 * math.log10(4 / 0.02)))
    corner = torch.zeros(1, 1, 1, 6, 6)
    corner[..., :2, :3] = 1
    assert torch.isinf(region_psnr(edited[:, 2:], truth[:, 2:], 1 - corner)).all()
    in_corner = region_psnr(edited[:, 2:], truth[:, 2:], corner)  # 3 frames, one of them off by 0.5
    assert torch.allclose(in_corner, torch.full((2,), 10 * math.log10(4 / (0.25 / 3))))


def test_future_ssim_is_one_for_the_truth_and_lower_for_a_still_picture():
    truth = bouncing_shapes(4, frames=8, size=32, seed=0, speed=(2.0, 2.0)).video
    assert torch.allclose(future_ssim(truth, truth, 4), torch.ones(4))
    still = future_ssim(repeat_last_frame(truth[:, :4], 8), truth, 4)
    assert still.shape == (4,) and (still < 0.99).all()


def test_scores_of_the_truth_pass_motion_and_beat_a_still_picture():
    truth = bouncing_shapes(3, frames=8, size=32, seed=1, speed=(2.0, 2.0)).video
    exact = score_predictions(truth, truth, 4, OBJECT)
    still = score_predictions(repeat_last_frame(truth[:, :4], 8), truth, 4, OBJECT)
    assert exact.motion_pass_rate == 1.0 and exact.beats(still) == 1.0 and still.beats(exact) == 0.0
    assert still.motion_pass_rate == 0.0, "the object stops: not moving"
    table = comparison_table({"still": still, "truth": exact}, baseline="still")
    assert "truth" in table and "100 %" in table and len(table.splitlines()) == 3


def test_a_frozen_object_fits_a_line_but_is_not_moving():
    long = bouncing_shapes(3, frames=16, size=32, seed=1, speed=(2.0, 2.0)).video
    frozen = repeat_last_frame(long[:, :4], 16)
    report = motion_consistency(frozen, OBJECT)
    assert report.pass_rate == 1.0, "the bare metric accepts speed 0 (fit error < 1.5 px): why min_speed exists"
    assert not keeps_moving(report.track, 0.5).any() and keeps_moving(motion_consistency(long, OBJECT).track, 0.5).all()
    assert not motion_passes(frozen, OBJECT, 0.5).any() and motion_passes(long, OBJECT, 0.5).all()


def test_palette_distance_is_small_for_data_and_grows_with_blur_and_noise():
    clean = bouncing_shapes(3, frames=4, size=32, seed=4).video
    blurred = torch.nn.functional.avg_pool2d(clean.flatten(0, 1), 3, stride=1, padding=1).view(clean.shape)
    noisy = (clean + 0.3 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    d_clean, d_blur, d_noise = palette_distance(clean), palette_distance(blurred), palette_distance(noisy)
    assert (d_clean < 0.05).all() and (d_blur > 2 * d_clean).all() and (d_noise > 0.2).all()
    assert palette_distance(torch.full((1, 2, 3, 4, 4), -1.0)).item() == 0.0


def test_run_predictor_batches_without_changing_the_result():
    truth = ramp(b=5)
    assert torch.allclose(run_predictor(extrapolate, truth, 3, batch_size=2), extrapolate(truth[:, :3], 8))


def test_rollout_with_an_exact_predictor_reproduces_the_long_video():
    long = ramp(b=2, t=20)
    out = autoregressive_rollout(extrapolate, long[:, :6], total_frames=20, keep=3)
    assert out.shape == long.shape and torch.equal(out[:, :6], long[:, :6])
    assert torch.allclose(out, long, atol=1e-4)
    calls = []
    autoregressive_rollout(lambda p, f: calls.append(p.shape[1]) or extrapolate(p, f), long[:, :6], 20, keep=2)
    assert calls == [2] * 4, "each chunk adds frames - keep = 4 frames from the last 2"
    calls.clear()
    short_start = autoregressive_rollout(lambda p, f: calls.append(p.shape[1]) or extrapolate(p, f), long[:, :2], 20,
                                         keep=4, frames=6)
    assert calls == [2] + [4] * 7 and torch.allclose(short_start, long, atol=1e-4)



def test_rollout_can_commit_only_the_first_frames_of_each_chunk():
    long = ramp(b=2, t=20)
    calls, returned = [], []

    def spy(past, frames):
        calls.append(past.shape[1])
        chunk = extrapolate(past, frames)
        returned.append(chunk)
        return chunk

    out = autoregressive_rollout(spy, long[:, :4], total_frames=20, keep=4, frames=8, commit=3)
    assert torch.allclose(out, long, atol=1e-4) and calls == [4] * 6, "16 new frames, 3 per chunk: 6 chunks"
    lagging = autoregressive_rollout(lambda p, f: torch.cat([extrapolate(p, f)[:, :-1], p[:, -1:]], dim=1),
                                     long[:, :4], total_frames=20, keep=4, frames=8, commit=3)
    assert torch.allclose(lagging, long, atol=1e-4), "a predictor whose last frame is wrong never shows it"
    whole = autoregressive_rollout(lambda p, f: torch.cat([extrapolate(p, f)[:, :-1], p[:, -1:]], dim=1),
                                   long[:, :4], total_frames=20, keep=4, frames=8)
    assert not torch.allclose(whole, long, atol=1e-2), "without commit the wrong last frames go in"
    calls.clear()
    short_start = autoregressive_rollout(spy, long[:, :2], total_frames=12, keep=4, frames=8, commit=2)
    assert calls == [2, 4, 4] and torch.allclose(short_start, long[:, :12], atol=1e-4), \
        "a start shorter than keep commits its whole first chunk"

def test_decay_curve_sees_where_a_video_goes_wrong():
    truth = bouncing_shapes(4, frames=16, size=32, seed=2).video
    video = truth.clone()
    video[:, 10:] = repeat_last_frame(truth[:, :10], 16)[:, 10:]  # frozen from frame 10 on
    curve = decay_with_length(video, truth, OBJECT, lengths=[8, 16])
    assert curve.frame_psnr.shape == (16,) and torch.all(curve.frame_psnr[:10] == 60)
    assert curve.frame_psnr[15] < curve.frame_psnr[11] < 60
    assert curve.motion_pass_rate[0] == 1.0
    exact = decay_with_length(truth, truth, OBJECT, lengths=[16])
    fig = plot_decay({"frozen": curve, "exact": exact}, train_frames=8)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3  # two curves and the training-length marker
    frozen_16 = f"{100 * curve.motion_pass_rate[1]:.0f}"
    assert decay_table({"frozen": curve, "exact": exact}).splitlines() == [
        f"frozen   motion pass: 8 frames 100 %, 16 frames {frozen_16} %", "exact    motion pass: 16 frames 100 %"]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: repeat_last_frame(torch.zeros(1, 4, 1, 4, 4), 4), ["frames", "[5, 10000]", "4"]),
        (lambda: interpolate_frames(torch.zeros(1, 4, 1, 4, 4), [4]), ["damaged", "[0, 3]"]),
        (lambda: interpolate_frames(torch.zeros(1, 2, 1, 4, 4), [0, 1]), ["damaged", "at least one intact frame"]),
        (lambda: future_psnr(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 5, 1, 4, 4), 2), ["prediction", "(1, 5, 1, 4, 4)"]),
        (lambda: future_psnr(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 4, 1, 4, 4), 4), ["known", "[0, 3]", "4"]),
        (lambda: run_predictor(extrapolate, torch.zeros(2, 4, 1, 4, 4), 4), ["known", "[1, 3]", "4"]),
        (lambda: run_predictor("model", torch.zeros(2, 4, 1, 4, 4), 2), ["predict", "function"]),
        (lambda: autoregressive_rollout(extrapolate, torch.zeros(1, 4, 1, 4, 4), 8, keep=4), ["keep", "[1, 3]", "4"]),
        (lambda: autoregressive_rollout(extrapolate, torch.zeros(1, 4, 1, 4, 4), 3, keep=2), ["total_frames", "[4, 10000]"]),
        (lambda: autoregressive_rollout(extrapolate, torch.zeros(1, 4, 1, 4, 4), 8, keep=2, commit=3),
         ["commit", "[1, 2]", "3"]),
        (lambda: autoregressive_rollout(extrapolate, torch.zeros(1, 4, 1, 4, 4), 8, keep=2, commit=0),
         ["commit", "[1, 2]", "0"]),
        (lambda: autoregressive_rollout(extrapolate, torch.zeros(1, 6, 1, 4, 4), 9, keep=2, frames=4),
         ["first", "at most frames = 4", "6 frames"]),
        (lambda: decay_with_length(torch.zeros(1, 4, 3, 8, 8), torch.zeros(1, 4, 3, 8, 8), 3.0, [2]), ["lengths", "[3, 4]"]),
        (lambda: comparison_table({"a": None}, baseline="b"), ["baseline", "'b'"]),
        (lambda: frames_psnr(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 4, 1, 4, 4), [4]), ["frames", "[0, 3]"]),
        (lambda: region_psnr(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 4, 1, 4, 4), torch.ones(1, 1, 1, 3, 3)),
         ["region", "broadcastable", "(1, 1, 1, 3, 3)"]),
        (lambda: region_psnr(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, 1, 1, 4, 4)),
         ["region", "empty"]),
        (lambda: keeps_moving(torch.zeros(1, 4, 2).numpy(), -1.0), ["min_speed", "-1.0"]),
        (lambda: palette_distance(torch.zeros(1, 4, 1, 4, 4)), ["video", "RGB", "(1, 4, 1, 4, 4)"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))

