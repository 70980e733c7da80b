"""The seed's §5.1 model fails exactly where and how course_lib.models.seed_video_model says."""
import ast
import inspect
import textwrap
import traceback

import pytest
import torch

from course_lib.models import seed_video_model
from course_lib.models.seed_video_model import (
    PatchedVideoDiffusionModel,
    VideoDiffusionModel,
    describe_error,
    encode_frames,
    forward_with_pooled_lstm_input,
    lstm_input_of,
    seed_model_ignores_t,
)

T_STEPS = torch.tensor([3, 700])


def video(channels: int, size: int = 8, batch: int = 2, frames: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, frames, channels, size, size, generator=torch.Generator().manual_seed(seed))


def failing_line(error: BaseException) -> str:
    """The source line of seed_video_model.py where ``error`` was raised (innermost frame there)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == seed_video_model.__file__]
    return frames[-1].line if frames else ""


def seed_model(in_channels: int, hidden_dim: int, num_layers: int = 2) -> VideoDiffusionModel:
    torch.manual_seed(0)
    return VideoDiffusionModel(in_channels=in_channels, out_channels=in_channels, num_layers=num_layers,
                               hidden_dim=hidden_dim)


def test_seed_code_is_the_article_code():
    """The lines the bugs live in are there verbatim."""
    source = inspect.getsource(VideoDiffusionModel)
    for line in [
        "x[:, i] = F.relu(conv_layer(x[:, i]))",
        "self.lstm = nn.LSTM(hidden_dim, hidden_dim, num_layers=num_layers, batch_first=True)",
        "output, (hn, cn) = self.lstm(features, (h0, c0))",
        "output = output.view(batch_size * num_frames, self.hidden_dim, *x.size()[-2:])",
    ]:
        assert line in source


def test_bug5_forward_never_reads_t():
    """Static check: in the seed's forward, the name ``t`` is a parameter and is never loaded."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(VideoDiffusionModel.forward)))
    forward = tree.body[0]
    assert [a.arg for a in forward.args.args] == ["self", "x", "t"]
    loads = {n.id for n in ast.walk(forward) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert "x" in loads and "t" not in loads


@pytest.mark.parametrize("grad", [True, False])
def test_bug1_channel_change_fails_on_the_in_place_assignment(grad):
    model = seed_model(in_channels=3, hidden_dim=16)
    expected = r"expanded size of the tensor \(3\) must match the existing size \(16\)"
    with torch.set_grad_enabled(grad), pytest.raises(RuntimeError, match=expected) as info:
        model(video(3), T_STEPS)
    assert failing_line(info.value) == "x[:, i] = F.relu(conv_layer(x[:, i]))"


def test_bug2a_input_that_requires_grad_fails_on_the_in_place_assignment():
    model = seed_model(in_channels=16, hidden_dim=16)
    x = video(16).requires_grad_()
    expected = "a view of a leaf Variable that requires grad is being used in an in-place"
    with pytest.raises(RuntimeError, match=expected) as info:
        model(x, T_STEPS)
    assert failing_line(info.value) == "x[:, i] = F.relu(conv_layer(x[:, i]))"


@pytest.mark.parametrize("num_layers", [1, 2])
def test_bug2b_conv_stage_runs_forward_but_backward_fails(num_layers):
    model = seed_model(in_channels=16, hidden_dim=16, num_layers=num_layers)
    features = lstm_input_of(model, video(16), T_STEPS)
    assert features.shape == (2, 4, 16, 8, 8) and features.requires_grad
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        features.sum().backward()


def test_bug2c_seed_overwrites_the_callers_video():
    model = seed_model(in_channels=16, hidden_dim=16)
    x = video(16)
    original = x.clone()
    with torch.no_grad():
        describe_error(lambda: model(x, T_STEPS))
    assert not torch.equal(x, original)
    assert (x >= 0).all()  # every frame now holds ReLU outputs


@pytest.mark.parametrize("grad", [True, False])
def test_bug3_lstm_refuses_five_dimensional_feature_maps(grad):
    model = seed_model(in_channels=16, hidden_dim=16)
    expected = "LSTM: Expected input to be 2D or 3D, got 5D"
    with torch.set_grad_enabled(grad), pytest.raises(ValueError, match=expected) as info:
        model(video(16), T_STEPS)
    assert failing_line(info.value) == "output, (hn, cn) = self.lstm(features, (h0, c0))"


def test_bug4_lstm_vectors_cannot_be_viewed_as_maps():
    model = seed_model(in_channels=16, hidden_dim=16)
    expected = r"shape '\[8, 16, 8, 8\]' is invalid for input of size 128"
    with torch.no_grad(), pytest.raises(RuntimeError, match=expected) as info:
        forward_with_pooled_lstm_input(model, video(16), T_STEPS)
    assert failing_line(info.value) == "output = output.view(batch_size * num_frames, self.hidden_dim, *x.size()[-2:])"
    # 1x1 "videos": the sizes agree, but the batch_first LSTM output is not contiguous for B > 1
    expected = "view size is not compatible with input tensor's size and stride"
    with torch.no_grad(), pytest.raises(RuntimeError, match=expected):
        forward_with_pooled_lstm_input(model, video(16, size=1), T_STEPS)
    with torch.no_grad():  # B = H = W = 1 is the one shape that gets through
        assert forward_with_pooled_lstm_input(model, video(16, size=1, batch=1), T_STEPS[:1]).shape == (1, 4, 16, 1, 1)


def test_hooks_are_removed_after_use():
    model = seed_model(in_channels=16, hidden_dim=16)
    lstm_input_of(model, video(16), T_STEPS)
    describe_error(lambda: forward_with_pooled_lstm_input(model, video(16), T_STEPS))
    assert not model.lstm._forward_pre_hooks


def test_bug5_patched_model_trains_but_ignores_t():
    torch.manual_seed(0)
    model = PatchedVideoDiffusionModel(in_channels=1, out_channels=1, num_layers=2, hidden_dim=8)
    x = video(1)
    out = model(x, T_STEPS)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([0, 0])), model(x, torch.tensor([999, 999])))
    assert seed_model_ignores_t() is True


def test_patched_model_mixes_frames_through_the_lstm():
    torch.manual_seed(0)
    model = PatchedVideoDiffusionModel(in_channels=1, out_channels=1, num_layers=1, hidden_dim=8)
    x = video(1)
    changed = x.clone()
    changed[:, 0] += 1.0
    with torch.no_grad():
        difference = (model(changed, T_STEPS) - model(x, T_STEPS)).abs().amax(dim=(0, 2, 3, 4))
    assert (difference > 0).all()  # frame 0 reaches every later frame through the LSTM state


def test_patched_model_bad_input_names_x():
    model = PatchedVideoDiffusionModel(in_channels=1, out_channels=1, num_layers=1, hidden_dim=8)
    with pytest.raises(ValueError, match=r"^x: expected a tensor of rank 5"):
        model(torch.zeros(2, 1, 8, 8), T_STEPS)
    with pytest.raises(ValueError, match=r"^x: expected 1 channel"):
        model(torch.zeros(2, 3, 2, 8, 8), T_STEPS)


def test_describe_error():
    assert describe_error(lambda: 1) == "no error"
    assert describe_error(lambda: int("x")) == "ValueError: invalid literal for int() with base 10: 'x'"


def test_encode_frames_matches_the_seed_loop_without_touching_x():
    """Same numbers as the seed's per-frame loop (run on a copy), x untouched, gradients reach x and weights."""
    model = seed_model(in_channels=3, hidden_dim=3)
    x = video(3, frames=3)
    by_seed = lstm_input_of(model, x.clone(), T_STEPS)  # the seed's loop, in place on a copy
    leaf = x.clone().requires_grad_(True)
    features = encode_frames(model.conv_layers, leaf)
    torch.testing.assert_close(features, by_seed)
    assert torch.equal(leaf.detach(), x)
    features.square().sum().backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0
    assert all(layer.weight.grad is not None for layer in model.conv_layers)


def test_encode_frames_changes_channels_and_checks_them():
    model = seed_model(in_channels=3, hidden_dim=16)
    assert encode_frames(model.conv_layers, video(3)).shape == (2, 4, 16, 8, 8)
    with pytest.raises(ValueError, match=r"^x: expected 3 channel\(s\) for the first layer"):
        encode_frames(model.conv_layers, video(1))
    with pytest.raises(ValueError, match=r"^x: expected a tensor of rank 5"):
        encode_frames(model.conv_layers, video(3)[0])
