"""Each notebook-04 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models.blocks import group_norm

from course_lib.workshop.checks import nb04
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def training_loss(model, x0, labels, t, noise, alpha_bars, target="eps", sqrt=True, shift=0, drop_labels=False,
                  reduce="mean"):
    """The ε loss with optional mistakes: wrong target, no square roots, ᾱ_{t−shift}, labels lost, sum."""
    ab = alpha_bars[(t - shift).clamp(min=0)].view(-1, *[1] * (x0.dim() - 1))
    a, s = (ab.sqrt(), (1 - ab).sqrt()) if sqrt else (ab, 1 - ab)
    x_t = a * x0 + s * noise
    prediction = model(x_t, t, torch.zeros_like(labels) if drop_labels else labels)
    return F.mse_loss(prediction, noise if target == "eps" else x0, reduction=reduce)


def guided_sampler(model, x, labels, w, timesteps, alpha_bars, guidance="ours", negative_index=False, clip=False,
                   every_step=False):
    """Guided DDIM with optional mistakes: Ho & Salimans' own w, no guidance, ᾱ[−1] at the end, clipped x̂0,
    every timestep instead of the listed ones."""
    if every_step:
        timesteps = list(range(timesteps[0], -1, -1))
    null = torch.full_like(labels, model.null_label)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        tt = torch.full((x.shape[0],), t, dtype=torch.long)
        cond, uncond = model(x, tt, labels), model(x, tt, null)
        eps = {"ours": uncond + w * (cond - uncond), "theirs": cond + w * (cond - uncond), "none": cond}[guidance]
        a = alpha_bars[t]
        a_next = alpha_bars[t_next] if t_next >= 0 or negative_index else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        if clip:
            x0 = x0.clamp(-1, 1)
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x


def guided_sampler_one_call(model, x, labels, w, timesteps, alpha_bars):
    """Right too: both predictions from one call on a doubled batch, as course_lib's guided_denoiser does."""
    null = torch.full_like(labels, model.null_label)
    for t, t_next in zip(timesteps, timesteps[1:] + [-1]):
        tt = torch.full((2 * x.shape[0],), t, dtype=torch.long)
        cond, uncond = model(torch.cat([x, x]), tt, torch.cat([labels, null])).chunk(2)
        eps = uncond + w * (cond - uncond)
        a, a_next = alpha_bars[t], alpha_bars[t_next] if t_next >= 0 else torch.tensor(1.0)
        x = a_next.sqrt() * (x - (1 - a).sqrt() * eps) / a.sqrt() + (1 - a_next).sqrt() * eps
    return x


class TimeResBlock(nn.Module):
    """The exercise's block with optional mistakes in forward."""

    mistake = None

    def __init__(self, in_channels, out_channels, time_dim=32, emb_dim=64):
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_channels)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x, t):
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(10_000) * torch.arange(half) / (half if self.mistake != "freqs" else 1))
        angles = t.float()[:, None] * freqs[None]
        parts = [angles.sin(), angles.cos()] if self.mistake == "sin first" else [angles.cos(), angles.sin()]
        emb = self.time_mlp(torch.cat(parts, dim=-1))
        shift = self.emb_proj(emb if self.mistake == "no silu" else F.silu(emb))[:, :, None, None]
        h = self.conv1(F.silu(self.norm1(x)))
        if self.mistake != "shift after":
            h = h + shift
        h = self.conv2(F.silu(self.norm2(h)))
        if self.mistake == "shift after":
            h = h + shift
        return h if self.mistake == "no skip" else self.skip(x) + h


def block_with(mistake):
    return type(f"TimeResBlock_{mistake}", (TimeResBlock,), {"mistake": mistake})


RIGHT_AND_WRONG = [
    (nb04.check_training_loss, training_loss, [
        (lambda *a: training_loss(*a, target="x0"), "compared with x0"),
        (lambda *a: training_loss(*a, sqrt=False), "square roots missing"),
        (lambda *a: training_loss(*a, shift=1), "off by one timestep"),
        (lambda *a: training_loss(*a, drop_labels=True), "the labels never reach the model"),
        (lambda *a: training_loss(*a, reduce="sum"), "a sum where the mean belongs"),
        (lambda *a: training_loss(*a, reduce="none"), "shape"),
    ]),
    (nb04.check_guided_ddim_sample, guided_sampler, [
        (lambda *a: guided_sampler(*a, guidance="theirs"), "the other convention"),
        (lambda *a: guided_sampler(*a, guidance="none"), "w = 0 must give the unconditional model"),
        (lambda *a: guided_sampler(*a, negative_index=True), "alpha_bars[-1] after the last step"),
        (lambda *a: guided_sampler(*a, clip=True), "x̂0 clipped"),
        (lambda *a: guided_sampler(*a, every_step=True), "visit each listed step once"),
    ]),
    (nb04.check_time_res_block, TimeResBlock, [
        (block_with("sin first"), "[sin, cos] where [cos, sin] belongs"),
        (block_with("freqs"), "other frequencies"),
        (block_with("no silu"), "no SiLU before emb_proj"),
        (block_with("shift after"), "added after conv2"),
        (block_with("no skip"), "no skip path"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_one_call_on_a_doubled_batch_is_right_too_and_w0_is_diagnosed(capsys):
    assert nb04.check_guided_ddim_sample(guided_sampler_one_call) is True
    capsys.readouterr()
    assert nb04.check_guided_ddim_sample(lambda *a: guided_sampler(*a, guidance="none")) is False
    assert "w = 0 must give the unconditional model" in capsys.readouterr().out


def test_a_stub_in_the_blocks_forward_is_not_done_yet(capsys):
    class Unwritten(TimeResBlock):
        def forward(self, x, t):
            raise NotImplementedError("Exercise 4.3")

    assert nb04.check_time_res_block(Unwritten) is False
    assert "not done yet" in capsys.readouterr().out


def test_the_guided_reference_is_ddim_with_the_guidance_formula():
    """course_lib's ddim_sample + guided_denoiser equals the loop written out (float64 ᾱ aside)."""
    model, x = nb04.GuidedStandIn(), torch.randn(2, 1, 3, 3)
    labels, alpha_bars = torch.tensor([1, 5]), nb04._linear_alpha_bars()
    timesteps = nb04.ddim_timesteps(1000, 8)
    expected = guided_sampler(model, x, labels, 2.5, timesteps, alpha_bars)
    got = nb04.reference_guided_ddim_sample(model, x, labels, 2.5, timesteps, alpha_bars)
    assert torch.allclose(got, expected, atol=1e-4)
