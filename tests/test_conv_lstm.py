"""ConvLSTM cell and denoiser: shapes, gradients, timestep dependence, causality, bad input."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.models.conv_lstm import (
    ConvLSTMCell, ConvLSTMDenoiser, conv_lstm_for_preset, frame_influence, layer_shapes, run_conv_lstm,
)
from course_lib.models.inspect import count_parameters

T_STEPS = torch.tensor([5, 600])


def tiny(**changes) -> ConvLSTMDenoiser:
    torch.manual_seed(0)
    kwargs = dict(in_channels=1, base_channels=8, hidden_channels=8)
    kwargs.update(changes)
    return ConvLSTMDenoiser(**kwargs)


def clip(batch=2, frames=5, channels=1, size=16, seed=0) -> torch.Tensor:
    return torch.randn(batch, frames, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_cell_equations():
    """One step by hand: gates from a convolution over [x, h], then c' and h' (Shi et al. 2015)."""
    torch.manual_seed(0)
    cell = ConvLSTMCell(in_channels=2, hidden_channels=3)
    x, h, c = torch.randn(4, 2, 5, 5), torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    gates = torch.nn.functional.conv2d(torch.cat([x, h], 1), cell.gates.weight, cell.gates.bias, padding=1)
    i, f, g, o = gates.sigmoid()[:, 0:3], gates.sigmoid()[:, 3:6], gates.tanh()[:, 6:9], gates.sigmoid()[:, 9:12]
    c_next = f * c + i * g
    h_new, c_new = cell(x, (h, c))
    torch.testing.assert_close(c_new, c_next)
    torch.testing.assert_close(h_new, o * c_next.tanh())
    assert torch.all(cell.gates.bias[3:6] == 1.0)  # forget gate starts open


def test_cell_zero_state_and_bad_input():
    cell = ConvLSTMCell(2, 3)
    h, c = cell(torch.randn(1, 2, 4, 4))
    assert h.shape == c.shape == (1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"^x: expected 2 channel\(s\)"):
        cell(torch.randn(1, 5, 4, 4))
    with pytest.raises(ValueError, match=r"^x: expected a tensor of rank 4"):
        cell(torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match=r"^state: expected \(h, c\) each of shape \(1, 3, 4, 4\)"):
        cell(torch.randn(1, 2, 4, 4), (torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)))
    with pytest.raises(ValueError, match=r"^kernel_size: expected an odd int"):
        ConvLSTMCell(2, 3, kernel_size=4)


def test_reverse_run_is_the_forward_run_of_the_reversed_clip():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3)
    frames = torch.randn(2, 4, 2, 5, 5)
    backward = run_conv_lstm(cell, frames, reverse=True)
    forward_of_flipped = run_conv_lstm(cell, frames.flip(1))
    torch.testing.assert_close(backward, forward_of_flipped.flip(1))


@pytest.mark.parametrize("changes", [{}, dict(causal=True), dict(bidirectional=False), dict(downsample=2),
                                     dict(in_channels=3, time_dim=16)])
def test_output_shape(changes):
    model = tiny(**changes)
    x = clip(channels=model.in_channels)
    assert model(x, T_STEPS).shape == x.shape
    assert model(clip(frames=1, channels=model.in_channels), T_STEPS).shape == (2, 1, model.in_channels, 16, 16)


@pytest.mark.parametrize("changes", [{}, dict(causal=True)])
def test_gradient_reaches_every_parameter(changes):
    model = tiny(**changes)
    model(clip(), T_STEPS).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_output_depends_on_t():
    model, x = tiny(), clip()
    with torch.no_grad():
        difference = (model(x, torch.tensor([0, 0])) - model(x, torch.tensor([900, 900]))).abs().max()
    assert difference > 1e-4


def change_per_frame(model: ConvLSTMDenoiser, frame: int) -> torch.Tensor:
    """Max |output change| per output frame when input frame ``frame`` changes: (T,)."""
    x = clip()
    changed = x.clone()
    changed[:, frame] += 1.0
    with torch.no_grad():
        return (model(changed, T_STEPS) - model(x, T_STEPS)).abs().amax(dim=(0, 2, 3, 4))


@pytest.mark.parametrize("frame", [1, 3])
def test_causal_outputs_before_k_ignore_frame_k(frame):
    change = change_per_frame(tiny(causal=True), frame)
    assert change[:frame].max() == 0  # exactly: nothing before frame k can see it
    assert (change[frame:] > 1e-6).all()  # frame k and every later frame do


@pytest.mark.parametrize("frame", [1, 3])
def test_bidirectional_outputs_before_k_see_frame_k(frame):
    model = tiny()
    assert model.bidirectional and model.backward_cell is not None
    assert (change_per_frame(model, frame) > 1e-6).all()


def test_causal_overrides_bidirectional():
    model = tiny(causal=True, bidirectional=True)
    assert model.backward_cell is None and not model.bidirectional
    assert count_parameters(model) < count_parameters(tiny())


@pytest.mark.parametrize("x, t, message", [
    (torch.zeros(2, 1, 16, 16), T_STEPS, r"^x: expected a tensor of rank 5 \(B, T, C, H, W\), got shape \(2,"),
    (torch.zeros(2, 5, 3, 16, 16), T_STEPS, r"^x: expected 1 channel\(s\)"),
    (torch.zeros(2, 0, 1, 16, 16), T_STEPS, r"^x: expected at least 1 frame"),
    (torch.zeros(2, 5, 1, 18, 16), T_STEPS, r"^x: expected height and width divisible by downsample=4"),
    (torch.zeros(2, 5, 1, 16, 16), torch.tensor([1]), r"^t: expected one timestep per clip, shape \(2,\)"),
    ("video", T_STEPS, r"^x: expected a torch.Tensor"),
])
def test_bad_input_names_the_argument(x, t, message):
    with pytest.raises(ValueError, match=message):
        tiny()(x, t)


@pytest.mark.parametrize("changes, message", [
    (dict(downsample=3), r"^downsample: expected 2 or 4"),
    (dict(causal="yes"), r"^causal: expected True or False"),
    (dict(bidirectional=1), r"^bidirectional: expected True or False"),
    (dict(hidden_channels=0), r"^hidden_channels: expected a positive int"),
])
def test_bad_constructor_arguments(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny(**changes)


def test_preset_factory():
    smoke = get_preset("smoke")
    model = conv_lstm_for_preset(smoke)
    x = clip(batch=1, frames=smoke.video_frames, size=smoke.video_size)
    with torch.no_grad():
        assert model(x, T_STEPS[:1]).shape == x.shape
    assert conv_lstm_for_preset(smoke, causal=True).causal
    assert count_parameters(conv_lstm_for_preset(get_preset("cpu"))) > count_parameters(model)
    with pytest.raises(ValueError, match="^preset: expected a course_lib.config.Preset"):
        conv_lstm_for_preset(None)


@pytest.mark.parametrize("changed_from", [1, 3])
def test_frame_influence_is_zero_before_the_change_only_for_a_causal_model(changed_from):
    x, g = clip(frames=5), torch.Generator().manual_seed(1)
    causal = frame_influence(tiny(causal=True), x, T_STEPS, changed_from, generator=g)
    both = frame_influence(tiny(), x, T_STEPS, changed_from, generator=torch.Generator().manual_seed(1))
    assert causal.shape == both.shape == (5,)
    assert torch.all(causal[:changed_from] == 0) and torch.all(causal[changed_from:] > 1e-3)
    assert torch.all(both > 0)  # the backward direction carries the change to earlier frames


def test_frame_influence_is_seeded_and_leaves_x_alone():
    x = clip(frames=4)
    before = x.clone()
    model = tiny()
    first = frame_influence(model, x, T_STEPS, 2, generator=torch.Generator().manual_seed(3))
    again = frame_influence(model, x, T_STEPS, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and torch.equal(x, before)


@pytest.mark.parametrize("x, changed_from, message", [
    (clip(frames=4), 4, r"^changed_from: expected an int in \[0, 3\], got 4"),
    (clip(frames=4), -1, r"^changed_from: expected an int in \[0, 3\]"),
    (torch.zeros(2, 1, 16, 16), 0, r"^x: expected a tensor of rank 5"),
])
def test_frame_influence_bad_input_names_the_argument(x, changed_from, message):
    with pytest.raises(ValueError, match=message):
        frame_influence(tiny(), x, T_STEPS, changed_from)


def test_layer_shapes_follow_the_forward_pass():
    model, x = tiny(), clip(batch=2, frames=3, size=16)
    rows = {row.name: row for row in layer_shapes(model, x, T_STEPS)}
    names = list(rows)
    assert names[:2] == ["time_embedding", "conv_in"] and names[-1] == "conv_out"
    assert rows["conv_in"].input_shape == (6, 1, 16, 16)  # frames folded into the batch
    assert rows["forward_cell"].calls == rows["backward_cell"].calls == 3  # once per frame
    assert rows["forward_cell"].output_shape == (2, 8, 4, 4)  # h of one step, at 1/4 size
    assert rows["conv_out"].output_shape == (6, 1, 16, 16)
    assert sum(row.parameters for row in rows.values()) == count_parameters(model)
    assert not any(m._forward_hooks for m in model.children())  # hooks removed


def test_class_conditional_model_reads_one_label_per_clip():
    torch.manual_seed(0)
    model = ConvLSTMDenoiser(in_channels=1, base_channels=8, hidden_channels=8, num_classes=10)
    x, t = torch.randn(2, 3, 1, 16, 16), torch.tensor([3, 400])
    with torch.no_grad():
        a, b = model(x, t, torch.tensor([1, 2])), model(x, t, torch.tensor([1, 6]))
        torch.testing.assert_close(model(x, t), model(x, t, torch.tensor([10, 10])))  # None = the null label
    torch.testing.assert_close(a[0], b[0])
    assert (a[1] - b[1]).abs().max() > 1e-5
    assert conv_lstm_for_preset(get_preset("smoke"), num_classes=10).null_label == 10
    with pytest.raises(ValueError, match=r"^y: expected one label per clip, shape \(2,\)"):
        model(x, t, torch.tensor([1]))
    with pytest.raises(ValueError, match=r"^y: expected None: this model is unconditional"):
        conv_lstm_for_preset(get_preset("smoke"))(x, t, torch.tensor([1, 2]))
