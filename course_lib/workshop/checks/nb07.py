"""Checks for notebook 07 (3D U-Net video diffusion).

References: einops for the layout of temporal attention, course_lib.models.unet3d.RelativePositionBias
for the bias, torch's own Conv3d modules and FLOP counter for the costs, and
course_lib.models.unet3d.TemporalAttention for the factorised space-time layer.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import build_or_report, check_idea, seeded, with_seed
from course_lib.models.inspect import count_parameters
from course_lib.models.unet3d import RelativePositionBias, TemporalAttention

HINTS = {
    "7.1": ("attention along time needs one sequence of T vectors per pixel: unfold the clips, bring the pixels next "
            "to the batch and time next to the channels, and only then reshape.",
            "(B·T, C, H, W) -> (B, T, C, H, W) -> permute(0, 3, 4, 1, 2) -> (B, H, W, T, C) -> reshape(B·H·W, T, C); "
            "a reshape alone keeps the memory order and mixes pixels, frames and channels."),
    "7.2": ("scores are q·k/√d plus a learned bias that depends only on the offset j − i between key and query; "
            "image mode lets each frame see only itself; softmax over the keys.",
            "logits[n, i, j] = q_i·k_j/√d + bias_table[(j − i) + M − 1] with M = (len(bias_table) + 1) // 2; in image "
            "mode set the logits off the diagonal to -inf; softmax over the last axis."),
    "7.3": ("count the weights per output channel (inputs × kernel volume) plus one bias; a layer does one multiply-add "
            "per weight at every output position.",
            "a Conv3d(c_in, c_out, (k_t, k, k)) has c_out·c_in·k_t·k² weights and c_out biases, and does c_out·c_in·k_t·k² "
            "multiply-adds per output position (T·H·W of them with 'same' padding); the temporal half of the "
            "factorised pair maps c_out channels to c_out."),
    "7.4": ("a factorised layer mixes pixels and frames in two separate moves: a 2D convolution within each frame, "
            "then attention along time at each pixel, added back to what the convolution gave.",
            "h = spatial(x.reshape(B·T, C, H, W)); q, k, v = qkv(norm(h)).chunk(3, dim=1), each turned into one "
            "sequence of T vectors per pixel (7.1); softmax(q·kᵀ/√d) over the key frames, times v; back to "
            "(B·T, C, H, W) and out = h + proj(…).",
            "normalise per frame (time folded into the batch), one head, no position bias; reshape back to "
            "(B, T, C_out, H, W)."),
}


# --- references ---------------------------------------------------------------------------------

def reference_to_time_sequences(h: torch.Tensor, frames: int) -> torch.Tensor:
    """(B·T, C, H, W) features, frames folded into the batch -> (B·H·W, T, C): one sequence of T vectors per pixel.

    Sequence n = (b·H + y)·W + x holds pixel (y, x) of clip b in frames 0..T-1.
    """
    return rearrange(h, "(b t) c h w -> (b h w) t c", t=frames)


def reference_temporal_attention_weights(q: torch.Tensor, k: torch.Tensor, bias_table: torch.Tensor,
                                         image_mode: bool = False) -> torch.Tensor:
    """softmax_j(q_i·k_j/√d + b[j − i]) (Vaswani et al. 2017, eq. 1, with a T5 relative position bias).

    q, k: (N, T, d); bias_table: (2M − 1,), entry m + M − 1 for offset m = j − i (key minus query);
    image_mode: -inf off the diagonal. Returns (N, T_query, T_key); every row sums to 1. The bias is
    course_lib's :class:`RelativePositionBias` holding ``bias_table`` (one head).
    """
    M = (bias_table.shape[0] + 1) // 2
    module = RelativePositionBias(num_heads=1, max_frames=M)
    with torch.no_grad():
        module.table.copy_(bias_table[None])
        bias = module(q.shape[1])[0]  # (T, T)
    if image_mode:
        bias = bias.masked_fill(~torch.eye(q.shape[1], dtype=torch.bool), float("-inf"))
    return torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5 + bias, dim=-1)


def _macs(module: nn.Module, channels: int, frames: int, height: int, width: int) -> int:
    """Multiply-adds of one forward pass on one clip (1, C, T, H, W), counted by torch on the meta device."""
    with FlopCounterMode(display=False) as counter:
        module.to("meta")(torch.empty(1, channels, frames, height, width, device="meta"))
    return counter.get_total_flops() // 2  # torch counts a multiply-add as 2 FLOPs


def reference_conv_costs(c_in: int, c_out: int, k: int, k_t: int, frames: int, height: int,
                         width: int) -> tuple[int, int, int, int]:
    """(params full, params factorised, multiply-adds full, multiply-adds factorised) of torch's own Conv3d layers.

    Full: Conv3d(c_in, c_out, (k_t, k, k)). Factorised "(2+1)D": Conv3d(c_in, c_out, (1, k, k)) then
    Conv3d(c_out, c_out, (k_t, 1, 1)). Both with biases and "same" padding, on one clip (T, H, W).
    """
    full = nn.Conv3d(c_in, c_out, (k_t, k, k), padding=(k_t // 2, k // 2, k // 2))
    factorised = nn.Sequential(nn.Conv3d(c_in, c_out, (1, k, k), padding=(0, k // 2, k // 2)),
                               nn.Conv3d(c_out, c_out, (k_t, 1, 1), padding=(k_t // 2, 0, 0)))
    params = count_parameters(full), count_parameters(factorised)
    return (*params, _macs(full, c_in, frames, height, width), _macs(factorised, c_in, frames, height, width))


# --- common mistakes, each named by its diagnosis ------------------------------------------------

def _weights_with(q, k, bias_table, image_mode=False, offset_sign=1, scale=True, axis=-1, shift=True,
                  mask="logits", use_image_mode=True):
    """Attention weights with one mistake: b[i − j], no 1/√d, softmax over queries, no shift, mask after softmax."""
    T, M = q.shape[1], (bias_table.shape[0] + 1) // 2
    offset = offset_sign * (torch.arange(T)[None, :] - torch.arange(T)[:, None])
    logits = q @ k.transpose(1, 2) / (q.shape[-1] ** 0.5 if scale else 1) + bias_table[offset + (M - 1 if shift else 0)]
    eye = torch.eye(T, dtype=torch.bool)
    image_mode = image_mode and use_image_mode
    if image_mode and mask == "logits":
        logits = logits.masked_fill(~eye, float("-inf"))
    weights = torch.softmax(logits, dim=axis)
    return weights * eye if image_mode and mask == "weights" else weights


ATTENTION_MISTAKES = {
    "the bias looked up at i − j: the offset is key minus query, j − i": lambda *a, **kw: _weights_with(*a, **kw, offset_sign=-1),
    "no 1/√d scaling of q·k": lambda *a, **kw: _weights_with(*a, **kw, scale=False),
    "softmax over the queries: it runs over the keys (the last axis)": lambda *a, **kw: _weights_with(*a, **kw, axis=1),
    "the bias index not shifted by M − 1 (offset 0 sits in the middle of the table)":
        lambda *a, **kw: _weights_with(*a, **kw, shift=False),
    "the image-mode mask applied after the softmax: mask the logits with -inf, so rows still sum to 1":
        lambda *a, **kw: _weights_with(*a, **kw, mask="weights"),
    "image_mode ignored": lambda *a, **kw: _weights_with(*a, **kw, use_image_mode=False),
}


def _costs_with(c_in, c_out, k, k_t, frames, height, width, bias=True, temporal_in=None, square=True, per_frame=False,
                temporal_macs=True):
    """The counts with one mistake: no biases, the temporal conv from c_in, k for k², one frame, no temporal MACs."""
    space = k * k if square else k
    positions = (1 if per_frame else frames) * height * width
    t_in = c_out if temporal_in is None else temporal_in
    full = c_out * c_in * k_t * space
    factorised = c_out * c_in * space + t_in * c_out * k_t
    return (full + (c_out if bias else 0), factorised + (2 * c_out if bias else 0), full * positions,
            (factorised if temporal_macs else c_out * c_in * space) * positions)


COST_MISTAKES = {
    "the biases left out": lambda *a: _costs_with(*a, bias=False),
    "the temporal convolution counted from c_in channels: it maps c_out to c_out":
        lambda *a: _costs_with(*a, temporal_in=a[0]),
    "k where the kernel area k² belongs": lambda *a: _costs_with(*a, square=False),
    "multiply-adds of one frame: the output has T·H·W positions": lambda *a: _costs_with(*a, per_frame=True),
    "the temporal convolution's multiply-adds left out": lambda *a: _costs_with(*a, temporal_macs=False),
}


# --- checks ---------------------------------------------------------------------------------------

def check_to_time_sequences(learner_fn) -> bool:
    g = torch.Generator().manual_seed(71)
    cases = []
    for b, t, c, h, w in [(2, 3, 4, 2, 5), (1, 4, 2, 3, 3), (3, 2, 1, 4, 2), (2, 5, 3, 1, 1)]:
        cases.append(((torch.randn(b * t, c, h, w, generator=g), t), {}))
    return compare("7.1", learner_fn, reference_to_time_sequences, cases, "to_time_sequences")


def check_temporal_attention_weights(learner_fn) -> bool:
    g = torch.Generator().manual_seed(72)
    cases = []
    for n, t, d, max_frames, image_mode in [(3, 4, 8, 6, False), (2, 5, 4, 5, False), (1, 3, 16, 8, False),
                                            (2, 4, 8, 6, True), (4, 6, 2, 6, False)]:
        q, k = torch.randn(n, t, d, generator=g), torch.randn(n, t, d, generator=g)
        bias_table = 2 * torch.randn(2 * max_frames - 1, generator=g)  # large: a wrong offset shows
        cases.append(((q, k, bias_table), {"image_mode": image_mode}))
    return compare("7.2", learner_fn, reference_temporal_attention_weights, cases, "temporal_attention_weights",
                   variants=ATTENTION_MISTAKES)


def check_conv_costs(learner_fn) -> bool:
    cases = [((c_in, c_out, k, k_t, t, h, w), {}) for c_in, c_out, k, k_t, t, h, w in
             [(32, 32, 3, 3, 8, 32, 32), (1, 16, 3, 3, 4, 8, 8), (64, 128, 3, 5, 16, 16, 16), (8, 4, 5, 3, 2, 6, 4)]]
    return compare("7.3", learner_fn, reference_conv_costs, cases, "conv_costs", variants=COST_MISTAKES)


# --- 7.4 the factorised space-time layer ------------------------------------------------------------

def reference_space_time(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer``'s weights in course_lib's pieces: its 3x3 convolution on every frame (time folded into the
    batch), then course_lib.models.unet3d.TemporalAttention (one head, a zero position bias) holding its
    norm, qkv and proj. x: (B, T, C_in, H, W) -> (B, T, C_out, H, W)."""
    B, T, C, H, W = x.shape
    h = layer.spatial(x.reshape(B * T, C, H, W))  # (B·T, C_out, H, W)
    attention = TemporalAttention(h.shape[1], num_heads=1, max_frames=T)
    for name in ("norm", "qkv", "proj"):
        getattr(attention, name).load_state_dict(getattr(layer, name).state_dict())
    return attention(h, T).reshape(B, T, -1, H, W)


SPACE_TIME_SHAPES = [(2, 4, 3, 8, 5, 6), (1, 3, 1, 4, 4, 4), (2, 5, 4, 4, 3, 5)]  # (B, T, C_in, C_out, H, W)


def _build_layer(layer_class, seed: int, cin: int, cout: int) -> nn.Module:
    return with_seed(seed, lambda: layer_class(cin, cout))


def _frames_meet_only_in_time(layer_class) -> str | None:
    """A change in frame 2 reaches other frames only through attention: with proj zeroed, none of them moves."""
    layer = _build_layer(layer_class, 7, 2, 4)
    x = torch.randn(1, 4, 2, 5, 5, generator=seeded(8))
    changed = x.clone()
    changed[:, 2] += torch.randn(1, 2, 5, 5, generator=seeded(9))
    moved = (layer(changed) - layer(x)).flatten(2).abs().amax(-1)[0] > 1e-6  # (T,)
    if moved.tolist() != [True] * 4:
        return (f"a change in frame 2 of 4 moved the output frames {[k for k, m in enumerate(moved.tolist()) if m]}: "
                "attention along time should carry it to every frame")
    nn.init.zeros_(layer.proj.weight)
    nn.init.zeros_(layer.proj.bias)
    moved = (layer(changed) - layer(x)).flatten(2).abs().amax(-1)[0] > 1e-6
    if not moved[2]:
        return ("with the temporal part switched off (proj = 0) your output no longer follows the input: add the "
                "projected attention to h, a residual connection")
    if moved.tolist() != [False, False, True, False]:
        return (f"with the temporal part switched off (proj = 0) a change in frame 2 still moved frames "
                f"{[k for k, m in enumerate(moved.tolist()) if m]}: the spatial part must see one frame at a time, "
                "and nothing but attention may mix frames (normalise per frame)")
    return None


def _pixels_stay_local(layer_class) -> str | None:
    """A change at one pixel reaches only its 3x3 neighbourhood, in every frame: attention runs per pixel.

    The normalisation (statistics over a whole frame) is switched off for this test: it is the one
    other place where pixels meet, and only through a frame's mean and spread.
    """
    layer = _build_layer(layer_class, 10, 2, 4)
    layer.norm = nn.Identity()
    x = torch.randn(1, 3, 2, 6, 6, generator=seeded(11))
    changed = x.clone()
    changed[0, 1, :, 2, 3] += 3.0
    moved = (layer(changed) - layer(x)).abs().amax(dim=(0, 1, 2)) > 1e-6  # (H, W): pixels that changed in any frame
    far = moved.clone()
    far[1:4, 2:5] = False
    if far.any():
        where = [tuple(p) for p in far.nonzero().tolist()][:4]
        return (f"a change at pixel (2, 3) of frame 1 moved pixels {where} outside its 3×3 neighbourhood: each "
                "pixel's sequence must hold that pixel's features only; pixels meet only in the 3×3 convolution")
    return None


def _no_residual(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The attention's projection alone, without h added back."""
    B, T, C, H, W = x.shape
    return reference_space_time(layer, x) - layer.spatial(x.reshape(B * T, C, H, W)).reshape(B, T, -1, H, W)


def _attention_mistake(layer: nn.Module, x: torch.Tensor, mistake: str) -> torch.Tensor:
    """The layer written out with ``layer``'s weights and one ``mistake`` in its attention: "no scale" (no 1/√d)
    or "queries" (the softmax over the queries, dim 1, instead of the keys)."""
    B, T, C, H, W = x.shape
    h = layer.spatial(x.reshape(B * T, C, H, W))  # (B·T, C_out, H, W)
    q, k, v = (part.reshape(B, T, -1, H, W).permute(0, 3, 4, 1, 2).reshape(B * H * W, T, -1)  # (B·H·W, T, C)
               for part in layer.qkv(layer.norm(h)).chunk(3, dim=1))
    scores = q @ k.transpose(1, 2) / (1.0 if mistake == "no scale" else q.shape[-1] ** 0.5)
    out = torch.softmax(scores, dim=1 if mistake == "queries" else -1) @ v
    out = out.reshape(B, H, W, T, -1).permute(0, 3, 4, 1, 2).reshape(B * T, -1, H, W)
    return (h + layer.proj(out)).reshape(B, T, -1, H, W)


SPACE_TIME_MISTAKES = {
    "h not added back: the temporal part is a residual, h + proj(attention)": _no_residual,
    "no 1/√d: divide the scores q·k by the square root of the channels": lambda *a: _attention_mistake(*a, "no scale"),
    "the softmax over the queries: each query's weights over the keys (the last axis) sum to 1":
        lambda *a: _attention_mistake(*a, "queries"),
}


def check_space_time_layer(layer_class) -> bool:
    layers, built = build_or_report("7.4", "FactorisedSpaceTime", lambda: [
        _build_layer(layer_class, 740 + number, cin, cout) for number, (_, _, cin, cout, _, _) in enumerate(SPACE_TIME_SHAPES)])
    if not built:
        return False
    g = torch.Generator().manual_seed(74)
    cases = [((layer, torch.randn(b, t, cin, h, w, generator=g)), {})
             for layer, (b, t, cin, _, h, w) in zip(layers, SPACE_TIME_SHAPES)]

    def run(fn):  # compare() runs the learner's layers; the reference copies each layer's weights
        return (lambda layer, x: layer(x)) if fn is layer_class else fn

    with torch.no_grad():
        return check_idea("7.4", layer_class, reference_space_time, cases, "FactorisedSpaceTime",
                          before=[_frames_meet_only_in_time, _pixels_stay_local], call=run,
                          done="frames meet only in its temporal part, pixels only in its spatial part",
                          variants=SPACE_TIME_MISTAKES)
