"""Conditional sampling checked on a correlated Gaussian whose exact denoiser and conditionals are known.

Data x0 ~ N(0, Σ), Σ = s²[[1, ρ], [ρ, 1]]: E[x0 | x_t] = √ᾱ Σ (ᾱΣ + (1−ᾱ)I)⁻¹ x_t, and given
x0[0] = a the other coordinate is N(ρa, s²(1 − ρ²)).
"""
import pytest
import torch

from course_lib.diffusion.conditioning import conditional_sample, frame_mask
from course_lib.diffusion.rollout import autoregressive_rollout, predict_future, predictor
from course_lib.diffusion.forward import eps_from_x0
from course_lib.diffusion.editing import inpaint, repair_frames, sdedit, sdedit_start
from course_lib.diffusion.schedules import make_schedule

S = make_schedule("linear", 1000)
RHO, SD, A = 0.9, 0.5, 0.8
SIGMA = SD**2 * torch.tensor([[1, RHO], [RHO, 1]])


def gaussian_model(x, t):
    ab = S.alpha_bars[t[0]]
    x0 = x @ (ab.sqrt() * SIGMA @ torch.linalg.inv(ab * SIGMA + (1 - ab) * torch.eye(2))).T
    return eps_from_x0(x, t, x0, S)


def conditional_mean(method, **kw):
    known = torch.tensor([[A, 0.0]]).expand(8000, 2).clone()
    x = conditional_sample(gaussian_model, known, torch.tensor([[1.0, 0.0]]), S, method=method, steps=50,
                           clip_x0=False, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(x[:, 0], known[:, 0]), "known part must come back exactly"
    return x[:, 1].mean().item()


def test_replacement_drifts_and_guidance_and_resampling_reduce_it():
    """Measured: true mean 0.72; replacement 0.47; RePaint resample=5 0.67; guidance w=3 0.74."""
    truth = RHO * A
    replacement = abs(conditional_mean("replacement") - truth)
    resampled = abs(conditional_mean("replacement", resample=5) - truth)
    guided = abs(conditional_mean("guidance", guidance_weight=3.0) - truth)
    assert replacement > 0.15, "the replacement method is known to under-use the condition"
    assert resampled < replacement / 2 and guided < replacement / 2


def test_repaint_redoes_every_step_but_the_last():
    """Lugmayr et al. 2022, Algorithm 1: r rounds per step; the last step, to clean data, is deterministic and
    is taken once (a second round would start from the already clean sample)."""
    from course_lib.diffusion.samplers import ddim_timesteps
    asked = []

    def model(x, t):
        asked.append(int(t[0]))
        return torch.zeros_like(x)

    conditional_sample(model, torch.zeros(3, 2), torch.tensor([[1.0, 0.0]]), S, steps=4, resample=3,
                       generator=torch.Generator().manual_seed(0))
    timesteps = ddim_timesteps(S.num_steps, 4)
    assert asked == [t for t in timesteps[:-1] for _ in range(3)] + [timesteps[-1]]


def video_model(x, t):  # a stand-in denoiser for shapes: predicts zero noise
    return torch.zeros_like(x)


def test_predict_future_keeps_the_past_and_fills_the_rest():
    past = torch.rand(2, 3, 1, 8, 8) * 2 - 1
    out = predict_future(video_model, past, 5, S, steps=5)
    assert out.shape == (2, 5, 1, 8, 8) and torch.equal(out[:, :3], past)


def test_rollout_makes_longer_videos():
    first = torch.rand(1, 4, 1, 8, 8) * 2 - 1
    long = autoregressive_rollout(predictor(video_model, S, steps=3), first, 10, keep=2)
    assert long.shape == (1, 10, 1, 8, 8) and torch.equal(long[:, :4], first)


def test_editing_helpers_keep_what_they_should():
    video = torch.rand(2, 4, 1, 8, 8) * 2 - 1
    region = torch.zeros(1, 1, 1, 8, 8)
    region[..., 2:5, 2:5] = 1
    out = inpaint(video_model, video, region, S, steps=4, resample=2)
    assert torch.equal(out * (1 - region), video * (1 - region))
    repaired = repair_frames(video_model, video, [1, 2], S, steps=4)
    assert torch.equal(repaired[:, [0, 3]], video[:, [0, 3]]) and not torch.equal(repaired[:, 1], video[:, 1])
    assert torch.equal(sdedit(video_model, video, 0.0, S), video)
    assert sdedit_start(1.0, 1000) == 999 and sdedit_start(0.5, 1000) == 500


def test_sdedit_strength_trades_faithfulness_for_change():
    x = torch.tensor([[A, -A]]).expand(2000, 2).clone()
    g = lambda: torch.Generator().manual_seed(0)
    dist = [(sdedit(gaussian_model, x, s, S, steps=20, clip_x0=False, generator=g()) - x).norm(dim=1).mean().item()
            for s in (0.1, 0.5, 0.9)]
    assert dist[0] < dist[1] < dist[2]


def test_frame_mask_forms():
    video = torch.zeros(2, 6, 1, 4, 4)
    assert frame_mask(video, 2)[:, :, 0, 0, 0].tolist() == [[1, 1, 0, 0, 0, 0]] * 2
    assert frame_mask(video, [0, 5])[0, :, 0, 0, 0].tolist() == [1, 0, 0, 0, 0, 1]
    per_clip = torch.zeros(2, 6, dtype=torch.bool)
    per_clip[1, 3] = True
    assert frame_mask(video, per_clip)[:, :, 0, 0, 0].sum(1).tolist() == [0, 1]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: predict_future(video_model, torch.zeros(1, 4, 1, 4, 4), 4, S), ["past", "between 1 and frames - 1 = 3", "4 frames"]),
        (lambda: frame_mask(torch.zeros(1, 4, 1, 4, 4), 4), ["known_frames", "[1, 3]", "4"]),
        (lambda: frame_mask(torch.zeros(1, 4, 1, 4, 4), [0, 1, 2, 3]), ["known_frames", "fewer known frames"]),
        (lambda: frame_mask(torch.zeros(1, 4, 1, 4), 2), ["video", "rank 5", "(1, 4, 1, 4)"]),
        (lambda: conditional_sample(video_model, torch.zeros(1, 4, 1, 4, 4), torch.ones(1, 3, 1, 1, 1), S), ["mask", "broadcastable", "(1, 3, 1, 1, 1)"]),
        (lambda: conditional_sample(video_model, torch.zeros(1, 2), torch.ones(1, 2), S, method="magic"), ["method", "'replacement'", "'magic'"]),
        (lambda: sdedit(video_model, torch.zeros(1, 2), 1.5, S), ["strength", "[0.0, 1.0]", "1.5"]),
        (lambda: sdedit(video_model, torch.zeros(1, 2), -0.1, S), ["strength", "-0.1"]),
        (lambda: inpaint(video_model, torch.zeros(1, 4, 1, 8, 8), torch.ones(1, 1, 1, 4, 4), S), ["region", "broadcastable", "(1, 1, 1, 4, 4)"]),
        (lambda: repair_frames(video_model, torch.zeros(1, 4, 1, 8, 8), [7], S), ["damaged", "[0, 3]"]),
        (lambda: autoregressive_rollout(predictor(video_model, S), torch.zeros(1, 4, 1, 4, 4), 8, keep=4), ["keep", "[1, 3]", "4"]),
        (lambda: predict_future(video_model, torch.zeros(1, 2, 1, 4, 4), 4, S, past_guidance=2.0), ["method", "'frame-conditional'", "'replacement'"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))
