"""The conv + LSTM video denoiser the seed's §5 was after, working: a ConvLSTM between a conv encoder and decoder.

The seed's model (see :mod:`course_lib.models.seed_video_model`) fed feature *maps* to a vector
LSTM and never used the timestep. Here the recurrence itself is convolutional (Shi et al. 2015,
"Convolutional LSTM Network"): states are maps, and the gates are convolutions over
``concat[x_t, h_{t-1}]``, so every pixel's memory looks at its neighbourhood. The timestep enters
every ResBlock of the encoder and decoder.

Layout (``downsample=4``, 32x32 frames, base 32, hidden 64); "per frame" layers fold time into
the batch, (B·T, C, H, W)::

    per frame   conv_in, ResBlock                32x32, 32 ch   -> skip 0
                stride-2 conv, ResBlock          16x16, 64 ch   -> skip 1
                stride-2 conv                    8x8,   64 ch
    over time   ConvLSTM forward (+ backward)    8x8,   64 ch hidden, merged by a 1x1 conv
    per frame   up, concat skip 1, ResBlock      16x16, 64 ch
                up, concat skip 0, ResBlock      32x32, 32 ch   -> GroupNorm, SiLU, conv_out

``bidirectional=True`` runs a second ConvLSTM from the last frame back to the first and merges
both: every output frame sees the whole clip (denoising a clip). ``causal=True`` keeps only the
forward direction: output frame k depends on input frames 0..k only (prediction, notebook 08).
Everything else works frame by frame, so causality holds for the whole network.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_int_range, check_positive_int, check_rank, check_tensor, fail
from course_lib.models.blocks import ResBlock, group_norm
from course_lib.models.embeddings import ClassEmbedding, TimestepEmbedding, check_unconditional_labels


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step (Shi et al. 2015, eq. 3, without the peephole terms).

    [i, f, g, o] = Conv([x_t, h_{t-1}]);  c_t = σ(f)⊙c_{t-1} + σ(i)⊙tanh(g);  h_t = σ(o)⊙tanh(c_t)

    forward(x (N, in_channels, H, W), state (h, c) each (N, hidden_channels, H, W) or None for
    zeros) -> (h_t, c_t). The forget-gate bias starts at 1 (Jozefowicz et al. 2015) so the cell
    remembers by default.
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("hidden_channels", hidden_channels)
        check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            fail("kernel_size", "an odd int (same-size padding)", kernel_size)
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                               padding=kernel_size // 2)
        with torch.no_grad():
            self.gates.bias[hidden_channels:2 * hidden_channels].fill_(1.0)  # the f gate

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_rank("x", x, 4, "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            fail("x", f"{self.in_channels} channel(s), shape (N, {self.in_channels}, H, W)", f"shape {tuple(x.shape)}")
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[-2:])
            state = (zeros, zeros)
        h, c = state
        if h.shape != (x.shape[0], self.hidden_channels, *x.shape[-2:]) or c.shape != h.shape:
            fail("state", f"(h, c) each of shape {(x.shape[0], self.hidden_channels, *x.shape[-2:])}",
                 f"shapes {tuple(h.shape)}, {tuple(c.shape)}")
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def run_conv_lstm(cell: ConvLSTMCell, frames: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Run ``cell`` along time from zero state: frames (B, T, C, H, W) -> hidden states (B, T, hidden, H, W).

    ``reverse=True`` goes from the last frame to the first; output k is still aligned with frame k.
    """
    order = range(frames.shape[1] - 1, -1, -1) if reverse else range(frames.shape[1])
    state, outputs = None, {}
    for k in order:
        state = cell(frames[:, k], state)
        outputs[k] = state[0]
    return torch.stack([outputs[k] for k in range(frames.shape[1])], dim=1)


class ConvLSTMDenoiser(nn.Module):
    """Video denoiser: forward(x (B, T, C, H, W), t (B,), y=None) -> (B, T, C, H, W), a prediction of ε, x0 or v.

    in_channels: C of the frames. base_channels: width at full resolution (2x below).
    hidden_channels: ConvLSTM state channels. bidirectional: add a backward-in-time ConvLSTM.
    causal: forward direction only (output k sees frames ≤ k); overrides ``bidirectional``.
    time_dim: timestep embedding size (default 4 * base_channels). downsample: 2 or 4, how much
    smaller than the frames the ConvLSTM's maps are (H and W must be divisible by it).
    num_classes: None (unconditional) or K: one label per clip, added to the timestep embedding,
    with the null label K for classifier-free guidance.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 32,
        hidden_channels: int = 64,
        bidirectional: bool = True,
        causal: bool = False,
        time_dim: int | None = None,
        downsample: int = 4,
        num_classes: int | None = None,
    ):
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("base_channels", base_channels)
        check_positive_int("hidden_channels", hidden_channels)
        for name, flag in (("bidirectional", bidirectional), ("causal", causal)):
            if not isinstance(flag, bool):
                fail(name, "True or False", flag)
        if downsample not in (2, 4) or isinstance(downsample, bool):
            fail("downsample", "2 or 4", downsample)
        time_dim = 4 * base_channels if time_dim is None else check_positive_int("time_dim", time_dim)
        self.in_channels, self.downsample, self.causal = in_channels, downsample, causal
        self.bidirectional = bidirectional and not causal
        wide = 2 * base_channels

        self.num_classes = num_classes
        self.time_embedding = TimestepEmbedding(base_channels, time_dim)
        self.label_embedding = ClassEmbedding(num_classes, time_dim) if num_classes is not None else None
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.enc_full = ResBlock(base_channels, base_channels, time_dim)  # H x W
        self.down_half = nn.Conv2d(base_channels, wide, 3, stride=2, padding=1)
        self.enc_half = ResBlock(wide, wide, time_dim)  # H/2
        self.down_quarter = nn.Conv2d(wide, wide, 3, stride=2, padding=1) if downsample == 4 else None

        self.forward_cell = ConvLSTMCell(wide, hidden_channels)
        self.backward_cell = ConvLSTMCell(wide, hidden_channels) if self.bidirectional else None
        directions = 2 if self.bidirectional else 1
        self.merge = nn.Conv2d(directions * hidden_channels, wide, 1)  # both directions -> features

        self.up_quarter = nn.ConvTranspose2d(wide, wide, 4, stride=2, padding=1) if downsample == 4 else None
        self.dec_half = ResBlock(2 * wide, wide, time_dim)  # eats skip 1
        self.up_half = nn.ConvTranspose2d(wide, base_channels, 4, stride=2, padding=1)
        self.dec_full = ResBlock(2 * base_channels, base_channels, time_dim)  # eats skip 0
        self.norm_out = group_norm(base_channels)
        self.conv_out = nn.Conv2d(base_channels, in_channels, 3, padding=1)

    @property
    def null_label(self) -> int | None:
        """The label index that means "no class" (= num_classes), or None for an unconditional model."""
        return self.num_classes

    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> None:
        check_tensor("x", x)
        check_rank("x", x, 5, "(B, T, C, H, W)")
        B, T, C, H, W = x.shape
        if C != self.in_channels:
            fail("x", f"{self.in_channels} channel(s), shape (B, T, {self.in_channels}, H, W)",
                 f"shape {tuple(x.shape)}")
        if T < 1:
            fail("x", "at least 1 frame (axis 1 of (B, T, C, H, W))", f"shape {tuple(x.shape)}")
        if H % self.downsample or W % self.downsample:
            fail("x", f"height and width divisible by downsample={self.downsample}", f"shape {tuple(x.shape)}")
        check_rank("t", t, 1, "(B,)")
        if t.shape[0] != B:
            fail("t", f"one timestep per clip, shape ({B},)", f"shape {tuple(t.shape)}")
        if self.label_embedding is None:
            check_unconditional_labels(y)
        else:
            self.label_embedding.check_labels(y, B, "clip")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, C, H, W), t: (B,) timesteps, y: (B,) labels in [0, K] (K = null) or None -> (B, T, C, H, W)."""
        self._check_inputs(x, t, y)
        B, T, C, H, W = x.shape
        emb = self.time_embedding(t)  # (B, time_dim)
        if self.label_embedding is not None:
            emb = emb + self.label_embedding(y, B)
        emb = emb.repeat_interleave(T, dim=0)  # (B·T, time_dim)

        skip0 = self.enc_full(self.conv_in(x.reshape(B * T, C, H, W)), emb)  # (B·T, base, H, W)
        skip1 = self.enc_half(self.down_half(skip0), emb)  # (B·T, 2·base, H/2, W/2)
        h = skip1 if self.down_quarter is None else self.down_quarter(skip1)  # (B·T, 2·base, h, w)

        frames = h.reshape(B, T, *h.shape[1:])
        states = [run_conv_lstm(self.forward_cell, frames)]  # (B, T, hidden, h, w)
        if self.backward_cell is not None:
            states.append(run_conv_lstm(self.backward_cell, frames, reverse=True))
        h = self.merge(torch.cat(states, dim=2).flatten(0, 1))  # (B·T, 2·base, h, w)

        if self.up_quarter is not None:
            h = self.up_quarter(h)
        h = self.dec_half(torch.cat([h, skip1], dim=1), emb)
        h = self.dec_full(torch.cat([self.up_half(h), skip0], dim=1), emb)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out.reshape(B, T, C, H, W)


def conv_lstm_for_preset(preset, causal: bool = False, num_classes: int | None = None) -> ConvLSTMDenoiser:
    """A :class:`ConvLSTMDenoiser` sized by ``preset``: video_channels, base = video_base_channels,
    hidden = 2 * base, downsample 4. ``causal=True`` for prediction (forward direction only);
    num_classes: None, or K for a class-conditional model."""
    if not hasattr(preset, "video_base_channels"):
        fail("preset", "a course_lib.config.Preset (see get_preset())", type(preset).__name__)
    base = preset.video_base_channels
    return ConvLSTMDenoiser(in_channels=preset.video_channels, base_channels=base, hidden_channels=2 * base,
                            bidirectional=not causal, causal=causal, num_classes=num_classes)


# --- looking inside a video denoiser ---------------------------------------------------------------

@torch.no_grad()
def frame_influence(model: nn.Module, x: torch.Tensor, t: torch.Tensor, changed_from: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """How much each output frame moves when input frames ``changed_from``, ..., T-1 are replaced by noise.

    x: (B, T, C, H, W), t: (B,) -> (T,): max |model(x, t) − model(x', t)| over clips, channels and
    pixels of each frame, where x' is x with frames ≥ ``changed_from`` redrawn from N(0, I) with
    ``generator``. A causal model gives exact zeros for frames < ``changed_from``.
    """
    check_rank("x", x, 5, "(B, T, C, H, W)")
    check_int_range("changed_from", changed_from, 0, x.shape[1] - 1)
    changed = x.clone()
    noise = torch.randn(changed[:, changed_from:].shape, generator=generator).to(x)
    changed[:, changed_from:] = noise
    return (model(x, t) - model(changed, t)).abs().amax(dim=(0, 2, 3, 4))


@dataclass
class LayerShape:
    """One child module of a network as a forward pass used it: output shape of its first call."""

    name: str
    calls: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int


@torch.no_grad()
def layer_shapes(model: nn.Module, *inputs: torch.Tensor) -> list[LayerShape]:
    """Run ``model(*inputs)`` once and list its direct children in the order they were first called.

    For a child that returns a tuple (a ConvLSTM cell's (h, c)) the first element's shape is listed;
    ``calls`` counts how often it ran (a cell runs once per frame).
    """
    seen: dict[str, LayerShape] = {}

    def first_shape(value) -> tuple[int, ...]:
        value = value[0] if isinstance(value, (tuple, list)) else value
        return tuple(value.shape) if isinstance(value, torch.Tensor) else ()

    def recorder(name: str, module: nn.Module):
        def hook(_, args, output):
            if name in seen:
                seen[name].calls += 1
            else:
                seen[name] = LayerShape(name, 1, first_shape(args), first_shape(output),
                                        sum(p.numel() for p in module.parameters()))
        return hook

    handles = [child.register_forward_hook(recorder(name, child)) for name, child in model.named_children()]
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return list(seen.values())
