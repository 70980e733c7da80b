"""Checks for notebook 06 (conv + LSTM video diffusion): the three fixes of the seed's §5.1 model,
and the ConvLSTM run both ways along time.

References: course_lib.models.seed_video_model.encode_frames (bugs 1-2: in-place writes),
course_lib.models.conv_lstm.ConvLSTMCell (bugs 3-4: a recurrence over maps), the timestep shift
of course_lib.models.blocks.ResBlock, applied per frame as ConvLSTMDenoiser does (bug 5: t unused),
and course_lib.models.conv_lstm.run_conv_lstm (the two directions of ConvLSTMDenoiser).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.workshop.checks import _difference, compare, report
from course_lib.workshop.checks.behaviour import check_idea, seeded, with_seed
from course_lib.models.conv_lstm import ConvLSTMCell, run_conv_lstm
from course_lib.models.seed_video_model import encode_frames

# --- references ---------------------------------------------------------------------------------


def reference_encode_frames(conv_layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """x (B, T, C, H, W) -> (B, T, hid, H, W): h = relu(conv(h)) for each layer, every frame, x untouched."""
    return encode_frames(conv_layers, x)


def reference_conv_lstm_step(gates: nn.Conv2d, x: torch.Tensor, h: torch.Tensor,
                             c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One ConvLSTM step (Shi et al. 2015, eq. 3 without peepholes) with ``gates`` as the cell's convolution."""
    hidden = h.shape[1]
    cell = ConvLSTMCell(x.shape[1], hidden, kernel_size=gates.kernel_size[0])
    cell.gates = gates
    return cell(x, (h, c))


def reference_condition_on_time(h: torch.Tensor, emb: torch.Tensor, frames: int, proj: nn.Linear) -> torch.Tensor:
    """h (B·T, C, H, W) + Linear(SiLU(emb)) of the frame's own clip, the same for every pixel (ResBlock's shift).

    emb: (B, D), one timestep embedding per clip; frames of a clip are consecutive in h, as
    ``x.reshape(B * T, C, H, W)`` puts them (ConvLSTMDenoiser: ``emb.repeat_interleave(T, dim=0)``).
    """
    per_frame = emb.repeat_interleave(frames, dim=0)  # (B·T, D): clip 0's T frames, then clip 1's, ...
    return h + proj(F.silu(per_frame))[:, :, None, None]


# --- check 6.1: the encoder without in-place writes -------------------------------------------------

def _conv_stack(in_channels: int, hidden: int, layers: int, seed: int) -> nn.ModuleList:
    """The seed's conv_layers (3x3, padding 1) with seeded weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.ModuleList([nn.Conv2d(in_channels if i == 0 else hidden, hidden, 3, padding=1)
                              for i in range(layers)])


def _encoder_gradients(fn, convs: nn.ModuleList, x: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor | None]:
    """Gradients of sum(weights * fn(convs, x)) with respect to x and every convolution's weight (None: not reached)."""
    for conv in convs:
        conv.zero_grad(set_to_none=True)
    leaf = x.clone().requires_grad_(True)
    out = fn(convs, leaf)
    if not out.requires_grad:  # detached: nothing to backpropagate
        return [None]
    (out * weights).sum().backward()
    return [leaf.grad] + [conv.weight.grad for conv in convs]


def _first_line(error: Exception) -> str:
    """The error's message up to its first detail ("modified by an inplace operation: [torch...]" -> before ": [")."""
    line = (str(error).strip().splitlines() or [""])[0].split(": [")[0]
    return line if len(line) <= 160 else line[:157] + "..."


ENCODER_HINT = ("fold time into the batch, h = x.reshape(B * T, C, H, W); then h = relu(conv(h)) for every "
                "layer (a new tensor each time, never x[...] = ...); unfold with h.reshape(B, T, -1, H, W).")


def check_encode_frames(learner_fn) -> bool:
    """Same features as the reference, x left untouched, and gradients that flow and match."""
    g = torch.Generator().manual_seed(61)
    # in == hidden first: there the seed's in-place loop computes the right numbers and only the
    # untouched-input and gradient tests can tell; then the channel change that made the seed crash.
    shapes = [(3, 3, 2, (2, 3, 3, 8, 8)), (3, 8, 2, (2, 4, 3, 8, 8)), (1, 4, 3, (3, 2, 1, 6, 10))]
    for number, (cin, hidden, layers, shape) in enumerate(shapes, start=1):
        convs = _conv_stack(cin, hidden, layers, seed=number)
        x = torch.randn(shape, generator=g)
        given = x.clone()
        where = f"case {number} of {len(shapes)} ({cin} -> {hidden} channels)"
        try:
            got = learner_fn(convs, given)
        except NotImplementedError:
            return report("6.1", False, "not done yet: replace the `raise NotImplementedError` line with your code.")
        except Exception as error:  # noqa: BLE001 -- the learner's code failed: say how in one line
            return report("6.1", False, f"{where}: your function raised {type(error).__name__}: "
                                        f"{_first_line(error)}. Hint: {ENCODER_HINT}")
        if not torch.equal(given, x):
            return report("6.1", False, f"{where}: your function changed its input x (the seed's bug 2c). "
                                        f"Hint: {ENCODER_HINT}")
        with torch.no_grad():
            reason = _difference(got, reference_encode_frames(convs, x))
        if reason:
            return report("6.1", False, f"{where} differs: {reason}. Hint: {ENCODER_HINT}")
        weights = torch.randn(got.shape, generator=g)
        expected = _encoder_gradients(reference_encode_frames, convs, x, weights)
        try:
            grads = _encoder_gradients(learner_fn, convs, x, weights)
        except Exception as error:  # noqa: BLE001 -- e.g. "modified by an inplace operation" in backward
            return report("6.1", False, f"{where}: backward through your function raised {type(error).__name__}: "
                                        f"{_first_line(error)}. Hint: {ENCODER_HINT}")
        if any(grad is None for grad in grads):
            return report("6.1", False, f"{where}: no gradient reaches x or a convolution (detached?). "
                                        f"Hint: {ENCODER_HINT}")
        reason = _difference(grads, expected)
        if reason:
            return report("6.1", False, f"{where}: gradients differ ({reason}). Hint: {ENCODER_HINT}")
    return report("6.1", True, f"encode_frames matches the reference, leaves x alone and backpropagates "
                               f"on {len(shapes)} fresh cases.")


# --- check 6.2: one ConvLSTM step -----------------------------------------------------------------

def check_conv_lstm_step(learner_fn) -> bool:
    g = torch.Generator().manual_seed(62)
    cases = []
    for number, (n, cin, hidden, size) in enumerate([(2, 3, 4, (5, 5)), (1, 2, 6, (4, 7)), (3, 5, 2, (3, 3))]):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(100 + number)
            gates = nn.Conv2d(cin + hidden, 4 * hidden, 3, padding=1)
        x = torch.randn(n, cin, *size, generator=g)
        h = torch.randn(n, hidden, *size, generator=g)
        c = 2 * torch.randn(n, hidden, *size, generator=g)  # |c| > 1 often: forgetting tanh(c') shows
        cases.append(((gates, x, h, c), {}))
    with torch.no_grad():
        return compare("6.2", learner_fn, reference_conv_lstm_step, cases, "conv_lstm_step",
                       hint="i, f, g, o = gates(torch.cat([x, h], dim=1)).chunk(4, dim=1) in that order; "
                            "c' = σ(f)·c + σ(i)·tanh(g); h' = σ(o)·tanh(c'); return (h', c').")


# --- check 6.3: the timestep reaches every frame --------------------------------------------------

def check_condition_on_time(learner_fn) -> bool:
    g = torch.Generator().manual_seed(63)
    cases = []
    for number, (b, frames, channels, dim, size) in enumerate([(2, 3, 4, 6, (3, 3)), (3, 2, 2, 5, (2, 4)),
                                                               (1, 4, 3, 8, (2, 2))]):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(200 + number)
            proj = nn.Linear(dim, channels)
        h = torch.randn(b * frames, channels, *size, generator=g)
        emb = 2 * torch.randn(b, dim, generator=g)  # negative entries: SiLU is not the identity there
        cases.append(((h, emb, frames, proj), {}))
    with torch.no_grad():
        return compare("6.3", learner_fn, reference_condition_on_time, cases, "condition_on_time",
                       hint="shift = proj(F.silu(emb)) is (B, C); each clip's T frames are consecutive in h, so "
                            "repeat it with shift.repeat_interleave(frames, dim=0) and add it as "
                            "shift[:, :, None, None] (the same for every pixel).")


# --- check 6.4: a ConvLSTM both ways along time ----------------------------------------------------

def reference_bidirectional_conv_lstm(forward_cell: ConvLSTMCell, backward_cell: ConvLSTMCell,
                                      frames: torch.Tensor) -> torch.Tensor:
    """[forward state, backward state] of every frame (B, T, 2·hidden, H, W), via course_lib's run_conv_lstm,
    as ConvLSTMDenoiser combines its two directions."""
    return torch.cat([run_conv_lstm(forward_cell, frames), run_conv_lstm(backward_cell, frames, reverse=True)], dim=2)


def _cells(seed: int, channels: int, hidden: int) -> tuple[ConvLSTMCell, ConvLSTMCell]:
    return with_seed(seed, lambda: (ConvLSTMCell(channels, hidden), ConvLSTMCell(channels, hidden)))


def _each_direction_sees_its_side(learner_fn) -> str | None:
    """Change frame j: the forward half changes only at frames ≥ j, the backward half only at frames ≤ j."""
    forward_cell, backward_cell = _cells(64, 2, 3)
    clip = torch.randn(1, 5, 2, 4, 4, generator=seeded(6))
    changed = clip.clone()
    changed[:, 2] = torch.randn(1, 2, 4, 4, generator=seeded(7))
    a, b = learner_fn(forward_cell, backward_cell, clip), learner_fn(forward_cell, backward_cell, changed)
    if tuple(a.shape) != (1, 5, 6, 4, 4):
        return f"5 frames of 2 channels, hidden 3: your output has shape {tuple(a.shape)}, expected (1, 5, 6, 4, 4)"
    moved = (a - b).flatten(3).abs().amax(-1) > 1e-6  # (1, T, 2·hidden): which outputs changed
    forward, backward = moved[0, :, :3].any(-1).tolist(), moved[0, :, 3:].any(-1).tolist()
    if any(forward[:2]) or not all(forward[2:]):
        return (f"with frame 2 of 5 changed, the forward half changed at frames {[k for k, m in enumerate(forward) if m]}: "
                "it must see only the past (frames 2, 3, 4 change)")
    if any(backward[3:]) or not all(backward[:3]):
        return (f"with frame 2 of 5 changed, the backward half changed at frames {[k for k, m in enumerate(backward) if m]}: "
                "it runs from the last frame to the first and sees only the future (frames 0, 1, 2 change)")
    return None


def check_bidirectional_conv_lstm(learner_fn) -> bool:
    g = torch.Generator().manual_seed(64)
    cases = []
    for number, (b, t, channels, hidden, size) in enumerate([(2, 4, 3, 4, (4, 4)), (1, 6, 2, 2, (3, 5)),
                                                              (3, 3, 1, 5, (2, 2))]):
        forward_cell, backward_cell = _cells(640 + number, channels, hidden)
        cases.append(((forward_cell, backward_cell, torch.randn(b, t, channels, *size, generator=g)), {}))
    with torch.no_grad():
        return check_idea("6.4", learner_fn, reference_bidirectional_conv_lstm, cases, "bidirectional_conv_lstm",
                          before=[_each_direction_sees_its_side],
                          done="each direction sees only its own side of a frame",
                          hint="start each direction from state None; run the backward cell from the last frame to "
                               "the first, and put its output for frame k back at position k before concatenating.")
