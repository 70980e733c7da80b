"""Each notebook-06 check accepts right answers and rejects the stub and plausible wrong answers, each with its diagnosis."""
from pathlib import Path

import jupytext
import pytest
import torch
import torch.nn.functional as F

from course_lib.workshop.checks import nb06
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong, assert_failure_block

LESSON = Path(__file__).resolve().parents[1] / "notebooks" / "06_conv_lstm_video_diffusion.py"


# --- 6.1 encode_frames: right answers and the seed's mistakes --------------------------------------

def encode(convs, x, relu=True, relu_last_only=False, mix_axes=False):
    """Fold time into the batch, conv + ReLU per layer, unfold; with optional mistakes."""
    B, T, C, H, W = x.shape
    h = x.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W) if mix_axes else x.reshape(B * T, C, H, W)
    for k, conv in enumerate(convs):
        h = conv(h)
        if relu and (not relu_last_only or k == len(convs) - 1):
            h = F.relu(h)
    return h.reshape(B, T, -1, H, W)


def encode_into_fresh_buffer(convs, x):
    """Right too: frame by frame, written into a new tensor (in-place writes into a *new* buffer are fine)."""
    out = x.new_zeros(*x.shape[:2], convs[-1].out_channels, *x.shape[-2:])
    for i in range(x.shape[1]):
        h = x[:, i]
        for conv in convs:
            h = F.relu(conv(h))
        out[:, i] = h
    return out


def seed_loop(convs, x):
    """The seed's lines: every layer written back into x's own frame slot."""
    for i in range(x.shape[1]):
        for conv in convs:
            x[:, i] = F.relu(conv(x[:, i]))
    return x


def seed_loop_on_a_copy(convs, x):
    """The seed's loop on a clone: x survives, but backward finds a saved input overwritten."""
    x = x.clone()
    return seed_loop(convs, x)


def encode_detached(convs, x):
    return encode(convs, x).detach()


WRONG_ENCODERS = [  # (answer, its diagnosis)
    (seed_loop, "an in-place write"),
    (seed_loop_on_a_copy, "a tensor autograd saved"),
    (encode_detached, "detached"),
    (lambda c, x: encode(c, x, relu=False), "no ReLU"),
    (lambda c, x: encode(c, x, relu_last_only=True), "ReLU only after the last layer"),
    (lambda c, x: encode(c, x, mix_axes=True), "frames and channels mixed up"),
    (lambda c, x: encode(c, x[:, :1]).expand(-1, x.shape[1], -1, -1, -1), "every frame got the first"),
    (lambda c, x: encode(c, x)[:, :, :1], "a shape or broadcast error"),
    (lambda c, x: x, "returned its input `x` unchanged"),
]


def test_encode_frames_accepts_a_fresh_buffer_and_shows_the_shapes(capsys):
    assert nb06.check_encode_frames(encode_into_fresh_buffer) is True
    assert capsys.readouterr().out.startswith("✓ Exercise 6.1")
    assert nb06.check_encode_frames(lambda c, x: encode(c, x)[:, :, :1]) is False
    assert "shape (2, 3, 1, 8, 8) where (2, 3, 3, 8, 8) was expected" in capsys.readouterr().out
    for wrong, says in [(seed_loop, "changed its input x"), (seed_loop_on_a_copy, "backward through your function raised"),
                        (encode_detached, "no gradient reaches x or a convolution")]:
        assert nb06.check_encode_frames(wrong) is False
        assert says in capsys.readouterr().out.splitlines()[0]


def test_seed_loop_fails_in_each_way_the_check_names(capsys):
    """The seed's loop with a channel change raises at once (bug 1), as the lesson shows."""
    convs = nb06._conv_stack(3, 8, 2, seed=0)
    with pytest.raises(RuntimeError, match="expanded size"):
        seed_loop(convs, torch.randn(1, 2, 3, 4, 4))


# --- 6.2 conv_lstm_step ---------------------------------------------------------------------------

def step(gates, x, h, c, order="ifgo", tanh_c=True, tanh_g=True, sigmoid=True, concat_hx=False, old_c=False,
         swap_output=False):
    """One ConvLSTM step with optional mistakes."""
    z = gates(torch.cat([h, x] if concat_hx else [x, h], dim=1)).chunk(4, dim=1)
    parts = dict(zip(order, z))
    act = torch.sigmoid if sigmoid else (lambda v: v)
    i, f, o = act(parts["i"]), act(parts["f"]), act(parts["o"])
    g = torch.tanh(parts["g"]) if tanh_g else parts["g"]
    c_new = f * c + i * g
    h_new = o * (torch.tanh(c if old_c else c_new) if tanh_c else c_new)
    return (c_new, h_new) if swap_output else (h_new, c_new)


WRONG_STEPS = [  # (mistake, its diagnosis)
    (dict(tanh_c=False), "tanh missing on the output"),  # h' = o·c' instead of o·tanh(c')
    (dict(order="fig" + "o"), "f and i swapped"),
    (dict(order="ifog"), "the gates in another order"),  # the other common gate order, not the one asked for
    (dict(tanh_g=False), "tanh missing on the candidate g"),
    (dict(sigmoid=False), "σ missing"),
    (dict(concat_hx=True), "[h, x] concatenated"),
    (dict(old_c=True), "h' from the old cell state"),
    (dict(swap_output=True), "the right values returned in the wrong order"),
]


def test_conv_lstm_reference_is_the_cell_equations():
    torch.manual_seed(0)
    gates = torch.nn.Conv2d(5, 12, 3, padding=1)
    x, h, c = torch.randn(2, 2, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    for mine, ref in zip(step(gates, x, h, c), nb06.reference_conv_lstm_step(gates, x, h, c)):
        torch.testing.assert_close(mine, ref)


# --- 6.3 condition_on_time ------------------------------------------------------------------------

def condition(h, emb, frames, proj, repeat="interleave", silu=True, multiply=False):
    """Add each clip's projected embedding to its frames, with optional mistakes."""
    shift = proj(F.silu(emb) if silu else emb)  # (B, C)
    shift = shift.repeat_interleave(frames, dim=0) if repeat == "interleave" else shift.repeat(frames, 1)
    shift = shift[:, :, None, None]
    return h * shift if multiply else h + shift


WRONG_CONDITIONS = [  # (answer, its diagnosis)
    (lambda h, emb, frames, proj: h, "returned its input `h` unchanged"),  # t ignored: the seed's bug 5
    (lambda h, emb, frames, proj: condition(h, emb, frames, proj, repeat="tile"), "repeated in the wrong order"),
    (lambda h, emb, frames, proj: condition(h, emb, frames, proj, silu=False), "SiLU missing"),
    (lambda h, emb, frames, proj: condition(h, emb, frames, proj, multiply=True), "multiplied where the shift is added"),
    (lambda h, emb, frames, proj: h + proj(F.silu(emb))[:, :, None, None], "a shape or broadcast error"),  # no repeat
    (lambda h, emb, frames, proj: h + proj(F.silu(emb)).mean(0)[None, :, None, None], "one shift for all clips"),
]


def test_time_reference_matches_the_denoisers_per_frame_embedding():
    """Frames of clip b get clip b's shift: the layout of x.reshape(B * T, ...) in ConvLSTMDenoiser."""
    proj = torch.nn.Linear(4, 2)
    emb = torch.randn(3, 4)
    out = nb06.reference_condition_on_time(torch.zeros(3 * 5, 2, 1, 1), emb, 5, proj)
    per_clip = out.reshape(3, 5, 2)
    torch.testing.assert_close(per_clip, proj(F.silu(emb))[:, None, :].expand(3, 5, 2))


# --- the lesson's cells that must raise -----------------------------------------------------------

# The seed's failures in the order the lesson shows them (messages of PyTorch 2.x).
LESSON_ERRORS = [
    (RuntimeError, "The expanded size of the tensor (3) must match the existing size (16)"),
    (RuntimeError, "modified by an inplace operation"),
    (ValueError, "LSTM: Expected input to be 2D or 3D, got 5D instead"),
    (RuntimeError, "is invalid for input of size"),
]


def test_lesson_cells_marked_to_raise_raise_the_seeds_errors_and_no_other_cell_does():
    """nbval accepts a marked cell that does not raise, so run the lesson up to its last marked cell here."""
    cells = [cell for cell in jupytext.read(LESSON).cells if cell.cell_type == "code"]
    marked = [i for i, cell in enumerate(cells) if cell.source.split("\n", 1)[0].strip() == "# NBVAL_RAISES_EXCEPTION"]
    assert len(marked) == len(LESSON_ERRORS)
    for i in marked:  # the tag lets "Run All" in Jupyter go on past the cell
        assert "raises-exception" in cells[i].metadata.get("tags", []), cells[i].source
    namespace, raised = {}, []
    for i, cell in enumerate(cells[: marked[-1] + 1]):
        code = compile(cell.source, f"<lesson 06, code cell {i}>", "exec")
        if i in marked:
            with pytest.raises(Exception) as error:
                exec(code, namespace)
            raised.append(error.value)
        else:
            exec(code, namespace)  # an unmarked cell must run clean
    for error, (kind, message) in zip(raised, LESSON_ERRORS):
        assert type(error) is kind and message in str(error), repr(error)


@pytest.mark.parametrize("check", [nb06.check_encode_frames, nb06.check_conv_lstm_step, nb06.check_condition_on_time])
@pytest.mark.parametrize("answer", [lambda *a: None, lambda *a: torch.zeros(2), lambda *a: (torch.zeros(1),) * 3],
                         ids=["None", "wrong shape", "three values"])
def test_checks_answer_odd_returns_with_one_block_and_never_raise(check, answer, capsys):
    assert check(answer) is False
    assert_failure_block(capsys.readouterr().out, "6.")


# --- 6.4 bidirectional_conv_lstm -----------------------------------------------------------------

def bidirectional(forward_cell, backward_cell, frames, reset=True, carry=False, same_cell=False, align=True,
                  order=("forward", "backward")):
    """Both directions with optional mistakes: a fresh state every frame, the forward state carried into the
    backward run, the forward cell used twice, backward outputs left in the order they were made, the halves swapped."""
    T = frames.shape[1]
    outputs = {"forward": [], "backward": [None] * T}
    state = None
    for k in range(T):
        state = forward_cell(frames[:, k], state if reset else None)
        outputs["forward"].append(state[0])
    state = state if carry else None
    made = []
    for k in reversed(range(T)):
        state = (forward_cell if same_cell else backward_cell)(frames[:, k], state)
        outputs["backward"][k] = state[0]
        made.append(state[0])
    if not align:
        outputs["backward"] = made
    return torch.cat([torch.stack(outputs[name], dim=1) for name in order], dim=2)


RIGHT_AND_WRONG = [
    (nb06.check_encode_frames, encode, WRONG_ENCODERS),
    (nb06.check_conv_lstm_step, step,
     [(lambda *a, m=mistake: step(*a, **m), diagnosis) for mistake, diagnosis in WRONG_STEPS]),
    (nb06.check_condition_on_time, condition, WRONG_CONDITIONS),
    (nb06.check_bidirectional_conv_lstm, bidirectional, [
        (lambda f, b, x: bidirectional(f, b, x, reset=False), "the forward state dropped at every frame"),
        (lambda f, b, x: bidirectional(f, b, x, carry=True), "started from the forward run's last state"),
        (lambda f, b, x: bidirectional(f, b, x, same_cell=True), "the forward cell used both ways"),
        (lambda f, b, x: bidirectional(f, b, x, align=False), "in the order they were computed"),
        (lambda f, b, x: bidirectional(f, b, x, order=("backward", "forward")), "the halves swapped"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_the_behaviour_behind_a_named_mistake_still_says_which_frames_each_half_sees():
    """The named mistake speaks first; the behaviour behind it still explains in frames."""
    assert "sees only the future" in nb06._each_direction_sees_its_side(lambda f, b, x: bidirectional(f, b, x, align=False))
