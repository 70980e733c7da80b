"""Each notebook-07 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch
from einops import rearrange
from torch import nn

from course_lib.models.blocks import group_norm

from course_lib.workshop.checks import nb07
from course_lib.models.unet3d import TemporalAttention
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


# --- 7.1 ------------------------------------------------------------------------------------------

def to_time_sequences(h, frames):
    BT, C, H, W = h.shape
    return h.reshape(BT // frames, frames, C, H, W).permute(0, 3, 4, 1, 2).reshape(-1, frames, C)


def layout(pattern):
    return lambda h, frames: rearrange(h, pattern, t=frames)


# --- 7.2 ------------------------------------------------------------------------------------------

def attention_weights(q, k, bias_table, image_mode=False, sign=1, scale=True, axis=-1, shift=True, mask="inf"):
    """The right weights, with optional mistakes: b[i − j], no 1/√d, softmax over queries, no offset shift, mask."""
    T, M = q.shape[1], (bias_table.shape[0] + 1) // 2
    offset = sign * (torch.arange(T)[None, :] - torch.arange(T)[:, None])  # j − i
    bias = bias_table[offset + (M - 1 if shift else 0)]
    logits = q @ k.transpose(1, 2) / (q.shape[-1] ** 0.5 if scale else 1) + bias
    eye = torch.eye(T, dtype=torch.bool)
    if image_mode and mask == "inf":
        logits = logits.masked_fill(~eye, float("-inf"))
    weights = torch.softmax(logits, dim=axis)
    if image_mode and mask == "after":  # zero the off-diagonal after the softmax, rows no longer sum to 1
        weights = weights * eye
    return weights


# --- 7.3 ------------------------------------------------------------------------------------------

def conv_costs(c_in, c_out, k, k_t, frames, height, width, bias=True, temporal_in=None, square=True,
               per_frame=False, temporal_macs=True):
    """The right counts, with optional mistakes: no biases, temporal conv from c_in, k not k², one frame, no temporal MACs."""
    space = k * k if square else k
    positions = (1 if per_frame else frames) * height * width
    t_in = c_out if temporal_in is None else temporal_in
    full = c_out * c_in * k_t * space + (c_out if bias else 0)
    factorised = c_out * c_in * space + t_in * c_out * k_t + (2 * c_out if bias else 0)
    full_macs = c_out * c_in * k_t * space * positions
    factorised_macs = (c_out * c_in * space + (t_in * c_out * k_t if temporal_macs else 0)) * positions
    return full, factorised, full_macs, factorised_macs


# --- 7.4 ------------------------------------------------------------------------------------------

class SpaceTime(nn.Module):
    """The exercise's layer with optional mistakes in forward."""

    mistake = None

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.spatial = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = group_norm(out_channels)
        self.qkv = nn.Conv2d(out_channels, 3 * out_channels, 1)
        self.proj = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x):
        B, T, C, H, W = x.shape
        h = self.spatial(x.reshape(B * T, C, H, W))
        q, k, v = self.qkv(self.norm(h)).chunk(3, dim=1)
        if self.mistake == "reshape":  # the layout bug of 7.1: the right shape, the wrong contents
            q, k, v = (part.reshape(-1, T, part.shape[1]) for part in (q, k, v))
        else:
            q, k, v = (to_time_sequences(part, T) for part in (q, k, v))
        scale = 1.0 if self.mistake == "no scale" else q.shape[-1] ** 0.5
        weights = torch.softmax(q @ k.transpose(1, 2) / scale, dim=1 if self.mistake == "softmax over queries" else -1)
        if self.mistake == "reshape":
            out = (weights @ v).reshape(B * T, -1, H, W)
        else:
            out = rearrange(weights @ v, "(b h w) t c -> (b t) c h w", h=H, w=W)
        h = self.proj(out) if self.mistake == "no residual" else h + self.proj(out)
        return h.reshape(B, T, -1, H, W)


class SpaceTimeConv3d(SpaceTime):
    """A (3, 3, 3) convolution in place of the per-frame one: frames mix outside attention."""

    def forward(self, x):
        B, T, C, H, W = x.shape
        weight = self.spatial.weight[:, :, None].repeat(1, 1, 3, 1, 1) / 3  # (C_out, C_in, 3, 3, 3)
        h = torch.nn.functional.conv3d(x.transpose(1, 2), weight, self.spatial.bias, padding=1)
        h = h.transpose(1, 2).reshape(B * T, -1, H, W)
        q, k, v = (to_time_sequences(part, T) for part in self.qkv(self.norm(h)).chunk(3, dim=1))
        weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        h = h + self.proj(rearrange(weights @ v, "(b h w) t c -> (b t) c h w", h=H, w=W))
        return h.reshape(B, T, -1, H, W)


def space_time_with(mistake):
    return type(f"SpaceTime_{mistake}", (SpaceTime,), {"mistake": mistake})


WRONG_PLACES = "the right values in the wrong places"
RIGHT_AND_WRONG = [
    (nb07.check_to_time_sequences, to_time_sequences, [
        (lambda h, frames: h.reshape(-1, frames, h.shape[1]), WRONG_PLACES),  # a reshape alone: the classic layout bug
        (layout("(t b) c h w -> (b h w) t c"), WRONG_PLACES),  # frames folded time-major
        (layout("(b t) c h w -> (h w b) t c"), WRONG_PLACES),  # pixels before clips
        (layout("(b t) c h w -> (b w h) t c"), WRONG_PLACES),  # x before y
        (layout("(b t) c h w -> (b h w) c t"), "the axes in another order"),  # channels and time swapped
    ]),
    (nb07.check_temporal_attention_weights, attention_weights, [
        (lambda *a, **kw: attention_weights(*a, **kw, sign=-1), "i − j"),
        (lambda *a, **kw: attention_weights(*a, **kw, scale=False), "no 1/√d"),
        (lambda *a, **kw: attention_weights(*a, **kw, axis=1), "softmax over the queries"),
        (lambda *a, **kw: attention_weights(*a, **kw, shift=False), "not shifted by M − 1"),
        (lambda *a, **kw: attention_weights(*a, **kw, mask="after"), "after the softmax"),
        (lambda q, k, b, image_mode=False: attention_weights(q, k, b), "image_mode ignored"),
    ]),
    (nb07.check_conv_costs, conv_costs, [
        (lambda *a: conv_costs(*a, bias=False), "the biases left out"),
        (lambda *a: conv_costs(*a, temporal_in=a[0]), "from c_in"),
        (lambda *a: conv_costs(*a, square=False), "k where the kernel area k² belongs"),
        (lambda *a: conv_costs(*a, per_frame=True), "one frame"),
        (lambda *a: conv_costs(*a, temporal_macs=False), "multiply-adds left out"),
        (lambda *a: tuple(v + 0.5 for v in conv_costs(*a)), "expected a whole number"),
        (lambda *a: conv_costs(*a)[:2], "return all 4 values"),
    ]),
    (nb07.check_space_time_layer, SpaceTime,
     [(space_time_with("reshape"), "attention along time should carry it to every frame"),
      (space_time_with("no scale"), "no 1/√d"),
      (space_time_with("softmax over queries"), "the softmax over the queries"),
      (space_time_with("no residual"), "the temporal part is a residual"),
      (SpaceTimeConv3d, "nothing but attention may mix frames")]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_time_sequences_reference_puts_one_pixel_of_one_clip_in_each_sequence():
    B, T, C, H, W = 2, 3, 2, 2, 4
    video = torch.randn(B, T, C, H, W)
    sequences = nb07.reference_to_time_sequences(video.reshape(B * T, C, H, W), T)
    b, y, x = 1, 1, 2
    assert torch.equal(sequences[(b * H + y) * W + x], video[b, :, :, y, x])


def test_attention_reference_matches_the_unet3d_layer():
    """One head, one pixel: the reference weights are the ones TemporalAttention uses."""
    torch.manual_seed(0)
    T, d = 4, 4
    layer = TemporalAttention(d, num_heads=1, max_frames=5)
    with torch.no_grad():
        layer.position_bias.table.normal_()
    h = torch.randn(T, d, 1, 1)  # one clip, one pixel
    q, k, _ = layer.qkv(layer.norm(h)).reshape(1, T, 3, d).unbind(2)
    weights = nb07.reference_temporal_attention_weights(q.detach(), k.detach(), layer.position_bias.table[0].detach())
    from course_lib.models.inspect import temporal_attention_weights

    assert torch.allclose(weights, temporal_attention_weights(layer, h, T)[0, 0], atol=1e-6)


def test_conv_costs_reference_counts_torchs_modules():
    full, factorised, full_macs, factorised_macs = nb07.reference_conv_costs(32, 32, 3, 3, 8, 32, 32)
    assert (full, factorised) == (27 * 32 * 32 + 32, 9 * 32 * 32 + 3 * 32 * 32 + 64)
    assert full_macs == 27 * 32 * 32 * 8 * 32 * 32 and factorised_macs == 12 * 32 * 32 * 8 * 32 * 32


def test_space_time_check_says_where_frames_mix(capsys):
    assert nb07.check_space_time_layer(SpaceTimeConv3d) is False
    assert "nothing but attention may mix frames" in capsys.readouterr().out


def test_space_time_reference_is_the_unet3d_layer_with_one_head():
    """The reference (a Conv2d per frame, then TemporalAttention with a zero bias) equals the solution's layer."""
    torch.manual_seed(0)
    layer = SpaceTime(3, 8)
    x = torch.randn(2, 4, 3, 5, 5)
    with torch.no_grad():
        assert torch.allclose(nb07.reference_space_time(layer, x), layer(x), atol=1e-5)
