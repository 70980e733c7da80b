"""Diffusion Forcing: a noise level per frame, the schedule matrix, and the three samplers of one model."""
import pytest
import torch

from course_lib.data.video import bouncing_shapes
from course_lib.diffusion.forcing import (
    DiffusionForcingObjective, check_schedule_matrix, chunked_rollout, forcing_loss, forcing_step, frame_timesteps,
    level_timesteps, pyramid_schedule, q_sample_frames, rolling_delay, rolling_rollout, schedule_sample,
    schedule_steps,
)
from course_lib.diffusion.forward import q_sample, training_target
from course_lib.diffusion.schedules import make_schedule
from course_lib.models.unet3d import UNet3D
from course_lib.training import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
S = make_schedule("linear", 100)


def tiny_unet(max_frames=8, seed=0):
    torch.manual_seed(seed)
    return UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, max_frames=max_frames,
                  temporal_conv=True, frame_embedding=True).eval()


# --- the forward process and the loss ----------------------------------------------------------------

def test_per_frame_noise_with_one_level_per_clip_is_the_ordinary_forward_process_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 5, 1, 8, 8, generator=g), torch.randn(3, 5, 1, 8, 8, generator=g)
    t = torch.tensor([0, 40, 99])
    same = q_sample_frames(x0, t[:, None].expand(3, 5), S, noise=noise)
    assert torch.equal(same, q_sample(x0, t, S, noise=noise))


def test_each_frame_is_noised_to_its_own_level():
    x0, noise = torch.ones(1, 3, 1, 2, 2), torch.zeros(1, 3, 1, 2, 2)
    t = torch.tensor([[0, 50, 99]])
    out = q_sample_frames(x0, t, S, noise=noise)
    for j in range(3):
        assert torch.allclose(out[0, j], S.sqrt_alpha_bars[t[0, j]].expand(1, 2, 2))


def test_the_forcing_loss_with_equal_levels_is_the_ordinary_loss():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 4, 1, 8, 8, generator=g), torch.randn(2, 4, 1, 8, 8, generator=g)
    t = torch.tensor([10, 70])
    model = lambda x, t: 0.5 * x  # noqa: E731  (any model that reads only x)
    for objective in ("eps", "x0", "v"):
        ordinary = ((0.5 * q_sample(x0, t, S, noise=eps) - training_target(x0, eps, t, S, objective)) ** 2).mean()
        per_frame = forcing_loss(model, x0, t[:, None].expand(2, 4), S, objective, noise=eps)
        assert torch.equal(per_frame, ordinary), objective


def test_the_unet_takes_a_level_per_frame_and_equal_levels_match_one_level_per_clip():
    model = tiny_unet()
    x = torch.randn(2, 4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([5, 60])
    with torch.no_grad():
        clip = model(x, t)
        frames = model(x, t[:, None].expand(2, 4).contiguous())
        assert torch.allclose(clip, frames, atol=1e-6)
        other = model(x, torch.tensor([[5, 5, 5, 99], [60, 60, 60, 60]]))
    assert not torch.allclose(other[0], clip[0], atol=1e-4)  # the level of frame 3 reaches the clip
    assert torch.allclose(other[1], clip[1], atol=1e-6)


def test_frame_timesteps_draws_an_independent_level_per_frame():
    t = frame_timesteps(64, 8, S, torch.Generator().manual_seed(0))
    assert t.shape == (64, 8) and t.dtype == torch.long and 0 <= t.min() and t.max() <= 99
    assert (t != t[:, :1]).any(dim=1).float().mean() > 0.9  # frames of a clip differ


# --- the schedule matrix ------------------------------------------------------------------------------

@pytest.mark.parametrize("frames,levels,known,delay", [(8, 10, 0, 1), (8, 10, 4, 1), (6, 5, 2, 0), (5, 3, 1, 3)])
def test_the_pyramid_schedule_starts_at_noise_falls_one_level_at_a_time_and_ends_at_zero(frames, levels, known, delay):
    m = pyramid_schedule(frames, levels, known, delay)
    assert m.shape == (levels + delay * (frames - known - 1) + 1, frames)
    assert (m[0, known:] == levels).all() and (m[:, :known] == 0).all() and (m[-1] == 0).all()
    drop = m[:-1] - m[1:]
    assert ((drop == 0) | (drop == 1)).all()  # never rises, one level per iteration at most
    assert (m[:, 1:] >= m[:, :-1]).all()  # noise rises along the frame axis
    if delay:
        assert (m[:, known + 1:] - m[:, known:-1]).max() <= delay
    check_schedule_matrix(m, levels)


def test_delay_zero_is_ordinary_sampling_and_a_delay_of_s_is_one_frame_at_a_time():
    together = pyramid_schedule(4, 5, delay=0)
    assert (together == together[:, :1]).all() and together.shape == (6, 4)
    one_by_one = pyramid_schedule(3, 5, delay=5)
    for row in one_by_one:
        assert ((row > 0) & (row < 5)).sum() <= 1  # at most one frame is part-way


def test_level_timesteps_maps_levels_to_the_ddim_timesteps_with_zero_clean():
    assert level_timesteps(5, 100).tolist() == [-1, 19, 39, 59, 79, 99]


# --- samplers -----------------------------------------------------------------------------------------

def test_a_perfect_x0_model_recovers_the_video_along_any_schedule():
    video = bouncing_shapes(2, frames=10, size=16, generator=torch.Generator().manual_seed(0)).video[:, :, :1]
    oracle = lambda x, t: video  # noqa: E731  (knows the clean video: DDIM must land on it)
    for known, delay in ((0, 0), (0, 1), (3, 2), (3, 6)):
        levels = pyramid_schedule(10, 6, known=known, delay=delay)
        out = schedule_sample(oracle, levels, S, 6, shape=video.shape, known=video[:, :known] if known else None,
                              objective="x0", generator=torch.Generator().manual_seed(0))
        assert torch.allclose(out, video, atol=1e-5), (known, delay)


def test_the_window_slides_with_the_frames_being_denoised():
    levels = pyramid_schedule(12, 6, known=2, delay=rolling_delay(6, 5, 2))
    windows = [step.window for step in schedule_steps(lambda x, t: torch.zeros_like(x), levels, S, 6,
                                                      known=torch.zeros(1, 2, 1, 4, 4), window=5)]
    assert all(end - start == 5 for start, end in windows)
    assert windows[0] == (0, 5) and windows[-1] == (7, 12)
    assert [end for _, end in windows] == sorted(end for _, end in windows)


def test_one_forcing_step_moves_only_the_frames_whose_level_falls():
    x = torch.randn(2, 4, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    seen = {}

    def model_fn(x_t, t):
        seen["t"] = t
        return torch.zeros_like(x_t)

    t, t_next = torch.tensor([-1, 19, 59, 99]), torch.tensor([-1, -1, 59, 79])
    out, x0 = forcing_step(model_fn, x, t, t_next, S, objective="x0")
    assert seen["t"].tolist() == [[0, 19, 59, 99]] * 2  # clean frames are shown at level 0
    assert torch.equal(out[:, 0], x[:, 0]) and torch.equal(out[:, 2], x[:, 2])
    assert torch.equal(out[:, 1], torch.zeros_like(x[:, 1]))  # to clean: x̂0, here 0
    eps = x[:, 3] / S.sqrt_one_minus_alpha_bars[99]
    assert torch.allclose(out[:, 3], S.sqrt_one_minus_alpha_bars[79] * eps, atol=1e-5)


def test_rollouts_keep_the_start_and_reach_the_requested_length():
    model = tiny_unet()
    first = torch.rand(2, 3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rolled = rolling_rollout(model, first, 13, 6, S, 4, generator=torch.Generator().manual_seed(0))
    chunked = chunked_rollout(model, first, 13, 6, 3, S, 4, seed=0)
    for video in (rolled, chunked):
        assert video.shape == (2, 13, 1, 8, 8) and torch.equal(video[:, :3], first)
        assert torch.isfinite(video).all() and video.abs().max() <= 1 + 1e-5
    assert rolling_delay(10, 8, 4) == 3


@pytest.mark.slow
def test_a_tiny_forcing_model_learns_bouncing_shapes():
    torch.manual_seed(0)
    model = UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=(0, 1), max_frames=4,
                   temporal_conv=True)
    loss_fn = DiffusionForcingObjective(S, "x0")
    make = lambda g: bouncing_shapes(4, frames=4, size=16, generator=g).video[:, :, :1]  # noqa: E731
    held_out = make(torch.Generator().manual_seed(99))

    def held_out_loss():
        with torch.no_grad():
            return loss_fn(model, held_out, torch.Generator().manual_seed(5)).item()

    before = held_out_loss()
    trainer = Trainer(model, loss_fn, make, TrainConfig(steps=200, lr=3e-3, warmup_steps=10, ema_decay=0.0,
                                                        progress=False, seed=0))
    trainer.fit()
    assert held_out_loss() < 0.6 * before


# --- bad input ----------------------------------------------------------------------------------------

BAD = [
    (lambda: q_sample_frames(torch.zeros(2, 3, 1, 4, 4), torch.zeros(2, dtype=torch.long), S),
     r"^t: expected one timestep per frame, shape \(B, F\) = \(2, 3\)"),
    (lambda: q_sample_frames(torch.zeros(2, 3, 1, 4, 4), torch.full((2, 3), 100), S),
     r"^t: expected timesteps in \[0, 99\]"),
    (lambda: forcing_loss(lambda x, t: x, torch.zeros(2, 3, 1, 4, 4), torch.zeros(3, 2, dtype=torch.long), S),
     r"^t: expected one timestep per frame"),
    (lambda: UNet3D(1, 8, (1, 2), max_frames=4)(torch.zeros(2, 3, 1, 8, 8), torch.zeros(2, 2, dtype=torch.long)),
     r"^t: expected one timestep per clip, shape \(2,\), or one per frame, shape \(2, 3\)"),
    (lambda: rolling_rollout(tiny_unet(max_frames=4), torch.zeros(1, 2, 1, 8, 8), 12, 6, S, 4),
     r"^window: expected at most the model's max_frames = 4 frames"),
    (lambda: rolling_rollout(tiny_unet(), torch.zeros(1, 4, 1, 8, 8), 4, 6, S, 4),
     r"^total_frames: expected an int > the 4 known frames"),
    (lambda: chunked_rollout(tiny_unet(), torch.zeros(1, 4, 1, 8, 8), 3, 6, 3, S, 4),
     r"^total_frames: expected an int > the 4 known frames"),
    (lambda: check_schedule_matrix(torch.tensor([[3, 3], [1, 2]]), 3), r"^levels: expected a schedule that ends at 0"),
    (lambda: check_schedule_matrix(torch.tensor([[3, 3], [1, 2], [2, 0], [0, 0]]), 3),
     r"^levels: expected levels that never rise"),
    (lambda: check_schedule_matrix(torch.tensor([[5, 5], [0, 0]]), 3), r"^levels: expected levels in \[0, 3\]"),
    (lambda: check_schedule_matrix(torch.tensor([[2, 3], [0, 0]]), 3), r"^levels: expected a first row of 0"),
    (lambda: schedule_sample(lambda x, t: x, pyramid_schedule(8, 6, delay=1), S, 6, shape=(1, 8, 1, 4, 4), window=3),
     r"^window: expected at least 6 frames: the schedule denoises"),
    (lambda: pyramid_schedule(4, 5, known=4), r"^known: expected an int in \[0, 3\]"),
]


@pytest.mark.parametrize("call,message", BAD)
def test_bad_input_is_one_clear_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_causal_unet_lets_no_frame_see_its_future():
    torch.manual_seed(0)
    model = UNet3D(1, 8, (1, 2), 1, max_frames=6, temporal_conv=True, frame_embedding=True, causal=True).eval()
    for p in model.parameters():  # the temporal convolutions start at zero: give them weights that mix frames
        if p.abs().sum() == 0:
            p.data.normal_(0, 0.1)
    x, t = torch.randn(2, 6, 1, 8, 8), torch.randint(0, 100, (2, 6))
    changed, t_changed = x.clone(), t.clone()
    changed[:, 4:], t_changed[:, 4:] = torch.randn(2, 2, 1, 8, 8), 0
    with torch.no_grad():
        a, b = model(x, t), model(changed, t_changed)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-5) and not torch.allclose(a[:, 4:], b[:, 4:], atol=1e-3)
    full = UNet3D(1, 8, (1, 2), 1, max_frames=6, temporal_conv=True, frame_embedding=True).eval()
    full.load_state_dict(model.state_dict())  # the same weights: causality is a mask, not a parameter
    with torch.no_grad():
        assert not torch.allclose(full(x, t)[:, :4], full(changed, t_changed)[:, :4], atol=1e-3)


def test_history_guidance_mixes_the_answers_with_and_without_the_past():
    from course_lib.diffusion.forcing import history_guided

    calls = []

    def model_fn(x, t):  # answers with the mean over frames of x·(1 + t): a masked past shows
        calls.append(t.clone())
        return (x * (1 + t.float().view(*t.shape, 1, 1, 1))).mean(1, keepdim=True).expand_as(x)

    x, t = torch.randn(2, 4, 1, 3, 3), torch.tensor([[0, 0, 50, 99]] * 2)
    assert torch.equal(history_guided(model_fn, 1.0, 100)(x, t), model_fn(x, t))
    calls.clear()
    out = history_guided(model_fn, 3.0, 100, torch.Generator().manual_seed(0))(x, t)
    assert len(calls) == 2 and calls[1].tolist() == [[99, 99, 50, 99]] * 2  # the past shown as pure noise
    masked = x.clone()
    masked[:, :2] = torch.randn(2, 4, 1, 3, 3, generator=torch.Generator().manual_seed(0))[:, :2]
    cond, uncond = model_fn(x, t), model_fn(masked, calls[1])
    assert torch.allclose(out, uncond + 3.0 * (cond - uncond), atol=1e-5)
    no_past = torch.tensor([[10, 20, 50, 99]] * 2)
    assert torch.equal(history_guided(model_fn, 3.0, 100)(x, no_past), model_fn(x, no_past))
    assert history_guided(tiny_unet(max_frames=4), 2.0, 100).max_frames == 4
    with pytest.raises(ValueError, match=r"^weight: expected a number in \[0.0, 100.0\]"):
        history_guided(model_fn, -1.0, 100)
