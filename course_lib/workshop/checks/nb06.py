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

from course_lib.workshop.checks import _hint_line, compare, not_a_function, not_done, report
from course_lib.workshop.checks.behaviour import check_idea, seeded, with_seed
from course_lib.workshop.checks.diagnose import (
    describe_inputs, diagnose_with_inputs, explain_error, find_mismatch, first_line,
)
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


HINTS = {
    "6.1": ("a 2D convolution sees one image at a time: fold time into the batch, and build new tensors instead of "
            "writing into x (autograd needs every saved input intact).",
            "h = x.reshape(B * T, C, H, W); then h = relu(conv(h)) for every layer; finally h.reshape(B, T, -1, H, W).",
            "never x[...] = ... or x[:, i] = ...: a new tensor each time, so x and the saved activations stay intact."),
    "6.2": ("one convolution of the input and the hidden state gives all four gates at once; the cell state forgets "
            "some of itself and adds some new content; the output reads the cell state through a gate.",
            "i, f, g, o = gates(torch.cat([x, h], dim=1)).chunk(4, dim=1), in that order; σ on i, f, o and tanh on g.",
            "c' = σ(f)·c + σ(i)·tanh(g); h' = σ(o)·tanh(c'); return (h', c')."),
    "6.3": ("each clip gets one shift from its own timestep embedding, the same for all its frames and all pixels.",
            "shift = proj(F.silu(emb)) is (B, C); each clip's T frames are consecutive in h, so repeat it with "
            "shift.repeat_interleave(frames, dim=0) and add it as shift[:, :, None, None]."),
    "6.4": ("one ConvLSTM reads the clip from the first frame to the last, a second from the last to the first; each "
            "frame then has a summary of its past and one of its future, side by side.",
            "forward = the states of forward_cell over frames 0 … T − 1; backward = the states of backward_cell over "
            "frames T − 1 … 0, put back so that position k holds frame k; torch.cat([forward, backward], dim=2).",
            "start each direction from state None; the output is (B, T, 2·hidden, H, W)."),
}


def _encoder_with(convs: nn.ModuleList, x: torch.Tensor, relu: str = "every", mix_axes: bool = False) -> torch.Tensor:
    """The encoder with one mistake: ReLU only after the last layer or never; frames and channels mixed up."""
    B, T, C, H, W = x.shape
    h = x.transpose(1, 2).reshape(B * T, C, H, W) if mix_axes else x.reshape(B * T, C, H, W)
    for k, conv in enumerate(convs):
        h = conv(h)
        h = F.relu(h) if relu == "every" or relu == "last" and k == len(convs) - 1 else h
    return h.reshape(B, T, -1, H, W)


ENCODER_MISTAKES = {
    "no ReLU after the convolutions": lambda convs, x: _encoder_with(convs, x, relu="never"),
    "ReLU only after the last layer: every layer needs one": lambda convs, x: _encoder_with(convs, x, relu="last"),
    "frames and channels mixed up while folding time into the batch (reshape where the layout is (B, T, C, H, W))":
        lambda convs, x: _encoder_with(convs, x, mix_axes=True),
    "every frame got the first frame's features":
        lambda convs, x: encode_frames(convs, x[:, :1]).expand(-1, x.shape[1], -1, -1, -1),
}


def check_encode_frames(learner_fn) -> bool:
    """Same features as the reference, x left untouched, and gradients that flow and match."""
    if not callable(learner_fn):
        return not_a_function("6.1", learner_fn)
    g = torch.Generator().manual_seed(61)
    # in == hidden first: there the seed's in-place loop computes the right numbers and only the
    # untouched-input and gradient tests can tell; then the channel change that made the seed crash.
    shapes = [(3, 3, 2, (2, 3, 3, 8, 8)), (3, 8, 2, (2, 4, 3, 8, 8)), (1, 4, 3, (3, 2, 1, 6, 10))]
    for number, (cin, hidden, layers, shape) in enumerate(shapes, start=1):
        convs = _conv_stack(cin, hidden, layers, seed=number)
        x = torch.randn(shape, generator=g)
        given = x.clone()
        where = f"case {number} of {len(shapes)} ({cin} -> {hidden} channels)"
        details = [f"inputs: {describe_inputs(reference_encode_frames, (convs, x), {})}", *_hint_line("6.1")]
        try:
            got = learner_fn(convs, given)
        except NotImplementedError:
            return not_done("6.1")
        except Exception as error:  # noqa: BLE001 -- the learner's code failed: say how, in one block
            diagnosis = explain_error(error) or "see the hint"
            return report("6.1", False, f"{where}: your function raised {type(error).__name__}: "
                                        f"{first_line(error)} — {diagnosis}", details)
        if not torch.equal(given, x):
            return report("6.1", False, f"{where}: your function changed its input x — an in-place write "
                                        f"(the seed's bug 2c): build new tensors instead", details)
        with torch.no_grad():
            expected = reference_encode_frames(convs, x)
            mismatch = find_mismatch(got, expected)
            if mismatch:
                diagnosis = (diagnose_with_inputs(got, expected, reference_encode_frames, (convs, x), {},
                                                  ENCODER_MISTAKES) if got is not None else "") or mismatch.diagnosis
                return report("6.1", False, f"{where}{mismatch.what}" + (f" — {diagnosis}" if diagnosis else ""),
                              details[:1] + ([mismatch.where] if mismatch.where else []) + details[1:])
        weights = torch.randn(got.shape, generator=g)
        expected_grads = _encoder_gradients(reference_encode_frames, convs, x, weights)
        try:
            grads = _encoder_gradients(learner_fn, convs, x, weights)
        except Exception as error:  # noqa: BLE001 -- e.g. "modified by an inplace operation" in backward
            return report("6.1", False, f"{where}: backward through your function raised {type(error).__name__}: "
                                        f"{first_line(error)} — an in-place write into a tensor autograd saved", details)
        if any(grad is None for grad in grads):
            return report("6.1", False, f"{where}: no gradient reaches x or a convolution — detached "
                                        f"(.detach(), torch.no_grad() or a tensor built from .data?)", details)
        mismatch = find_mismatch(grads, expected_grads)
        if mismatch:
            return report("6.1", False, f"{where}: gradients differ ({mismatch.what.strip(' ,:')})", details)
    return report("6.1", True, f"encode_frames matches the reference, leaves x alone and backpropagates "
                               f"on {len(shapes)} fresh cases.")


# --- check 6.2: one ConvLSTM step -----------------------------------------------------------------

def _lstm_with(gates: nn.Conv2d, x, h, c, order="ifgo", tanh_c=True, tanh_g=True, sigmoid=True, concat_hx=False,
               old_c=False):
    """One ConvLSTM step with one mistake: another gate order, an activation missing, [h, x], tanh of the old c."""
    parts = dict(zip(order, gates(torch.cat([h, x] if concat_hx else [x, h], dim=1)).chunk(4, dim=1)))
    act = torch.sigmoid if sigmoid else (lambda v: v)
    c_new = act(parts["f"]) * c + act(parts["i"]) * (torch.tanh(parts["g"]) if tanh_g else parts["g"])
    return act(parts["o"]) * (torch.tanh(c if old_c else c_new) if tanh_c else c_new), c_new


LSTM_MISTAKES = {
    "tanh missing on the output: h' = σ(o)·tanh(c')": lambda *a: _lstm_with(*a, tanh_c=False),
    "f and i swapped: the chunks come in the order i, f, g, o": lambda *a: _lstm_with(*a, order="figo"),
    "the gates in another order: the chunks come in the order i, f, g, o": lambda *a: _lstm_with(*a, order="ifog"),
    "tanh missing on the candidate g": lambda *a: _lstm_with(*a, tanh_g=False),
    "σ missing on the gates i, f, o": lambda *a: _lstm_with(*a, sigmoid=False),
    "[h, x] concatenated where [x, h] belongs": lambda *a: _lstm_with(*a, concat_hx=True),
    "h' from the old cell state: use the new c'": lambda *a: _lstm_with(*a, old_c=True),
}

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
        return compare("6.2", learner_fn, reference_conv_lstm_step, cases, "conv_lstm_step", variants=LSTM_MISTAKES)


# --- check 6.3: the timestep reaches every frame --------------------------------------------------

TIME_MISTAKES = {
    "clips' shifts repeated in the wrong order (repeat tiles clips; repeat_interleave keeps a clip's frames together)":
        lambda h, emb, frames, proj: h + proj(F.silu(emb)).repeat(frames, 1)[:, :, None, None],
    "SiLU missing before the projection": lambda h, emb, frames, proj:
        h + proj(emb).repeat_interleave(frames, dim=0)[:, :, None, None],
    "multiplied where the shift is added": lambda h, emb, frames, proj:
        h * proj(F.silu(emb)).repeat_interleave(frames, dim=0)[:, :, None, None],
    "one shift for all clips: each clip needs its own": lambda h, emb, frames, proj:
        h + proj(F.silu(emb)).mean(0)[None, :, None, None],
}

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
                       variants=TIME_MISTAKES)


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


def _backward_not_flipped_back(forward_cell, backward_cell, frames):
    """The backward states left in the order they were computed (last frame first)."""
    backward = run_conv_lstm(backward_cell, frames.flip(1))
    return torch.cat([run_conv_lstm(forward_cell, frames), backward], dim=2)


def _both_forward(forward_cell, backward_cell, frames):
    return torch.cat([run_conv_lstm(forward_cell, frames), run_conv_lstm(backward_cell, frames)], dim=2)


def _state_mistake(forward_cell, backward_cell, frames, fresh_forward=False, carried=False):
    """Both directions written out with one mistake: the forward state dropped at every frame, or the backward run
    started from the forward run's last state."""
    state, forward, backward = None, [], {}
    for k in range(frames.shape[1]):
        state = forward_cell(frames[:, k], None if fresh_forward else state)
        forward.append(state[0])
    state = state if carried else None
    for k in reversed(range(frames.shape[1])):
        state = backward_cell(frames[:, k], state)
        backward[k] = state[0]
    return torch.cat([torch.stack(forward, 1), torch.stack([backward[k] for k in sorted(backward)], 1)], dim=2)


BIDIRECTIONAL_MISTAKES = {
    "the backward states in the order they were computed: flip them back so that position k holds frame k":
        _backward_not_flipped_back,
    "the backward cell runs forward too: run it from the last frame to the first": _both_forward,
    "the forward cell used both ways: the backward run needs backward_cell":
        lambda f, b, frames: reference_bidirectional_conv_lstm(f, f, frames),
    "the halves swapped: [forward, backward] along the channels":
        lambda f, b, frames: reference_bidirectional_conv_lstm(f, b, frames).roll(-f.hidden_channels, dims=2),
    "the forward state dropped at every frame: pass (h, c) on to the next frame":
        lambda *a: _state_mistake(*a, fresh_forward=True),
    "the backward run started from the forward run's last state: each direction starts from zero":
        lambda *a: _state_mistake(*a, carried=True),
}


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
                          done="each direction sees only its own side of a frame", variants=BIDIRECTIONAL_MISTAKES)
