"""course_lib.training.speed measures what it says: exact activation bytes, exact FLOPs, fair timings, a complete profile."""
import sys

import pytest
import torch
from torch import nn

from course_lib.training import speed


def conv_net(seed: int = 0) -> nn.Module:
    """conv(1 -> 4, 3x3) -> SiLU -> conv(4 -> 1, 3x3): whose saved tensors we can count by hand."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 1, 3, padding=1))


def square_loss(model, x, generator):
    """A loss that uses the generator like the diffusion loss does (noise from it)."""
    noise = torch.randn(x.shape, generator=generator)
    return (model(x + noise) - x).square().mean()


class TimedConv(nn.Module):
    """A denoiser-shaped network model(x, t) -> conv(x): t is ignored."""

    def __init__(self, cin: int = 3, cout: int = 5, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)
        self.back = nn.Conv2d(cout, cin, 1)

    def forward(self, x, t):
        return self.back(self.conv(x))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


# --- timing ----------------------------------------------------------------------------------------

def test_settings_see_the_same_batch_and_noise_and_leave_the_model_alone():
    net, x = conv_net(), torch.randn(3, 1, 8, 8)
    before = conv_net()
    timings = speed.compare_settings(net, square_loss, x, {"a": {}, "b": {"precision": "fp32"},
                                                           "low": {"precision": "bf16"}}, steps=3, warmup=2)
    assert same_weights(net, before)  # each setting trains its own copy
    a, b, low = timings["a"], timings["b"], timings["low"]
    assert a.loss == b.loss  # same t, same noise, same weights: the same number
    assert low.loss != a.loss and abs(low.loss - a.loss) < 0.05 * a.loss  # bf16 rounds, a little
    for timing in timings.values():
        assert len(timing.wall_s) == len(timing.cpu_s) == 3 and min(timing.wall_s) > 0 and timing.first_s > 0
        assert timing.batch_size == 3 and timing.examples_per_s == pytest.approx(3 / timing.median_s)
        assert 0 < timing.cpu_share <= 1.5  # CPU seconds per wall second per thread (clock granularity aside)
    assert not a.compiled and a.precision == "fp32" and low.precision == "bf16" and a.device == "cpu"


def test_time_training_steps_trains_like_the_trainer():
    """Its copy follows the same steps as a hand-written AdamW loop with the same generators."""
    net, x = conv_net(1), torch.randn(2, 1, 6, 6)
    timing = speed.time_training_steps(net, square_loss, x, steps=2, warmup=1, seed=5)
    reference = conv_net(1)
    assert timing.loss == pytest.approx(square_loss(reference, x, torch.Generator().manual_seed(5)).item())
    assert timing.name == "fp32" and len(timing.wall_s) == 2


def test_time_steps_interleaves_the_step_functions_after_their_warm_up():
    calls = []

    def stepper(name):
        return lambda k: calls.append((name, k)) or 0.5

    timings = speed.time_steps({"a": stepper("a"), "b": stepper("b")}, steps=2, warmup=2)
    assert calls == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    for timing in timings.values():
        assert len(timing.wall_s) == len(timing.cpu_s) == 2 and timing.loss == 0.5 and timing.first_s >= 0
        assert timing.batch_size is None and timing.device == "cpu"


# --- memory ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 4])
def test_saved_activations_are_counted_exactly(batch):
    """conv1 keeps its input (1 ch), SiLU its input (4 ch), conv2 its input (4 ch), the square its input (1 ch)."""
    x, loss_fn = torch.randn(batch, 1, 6, 5), (lambda m, x, g: m(x).square().mean())
    assert speed.saved_activation_bytes(conv_net(), loss_fn, x) == 4 * batch * 6 * 5 * (1 + 4 + 4 + 1)
    assert speed.saved_activation_bytes(conv_net(), loss_fn, x, precision="bf16") < 4 * batch * 6 * 5 * 10


def test_training_memory_counts_adamw_state_and_a_real_step_needs_about_that():
    net, x = conv_net(), torch.randn(64, 1, 32, 32)
    memory = speed.training_memory(net, square_loss, x)
    params = sum(p.numel() for p in net.parameters())
    assert memory.weights == memory.gradients == 4 * params and memory.optimizer == 8 * params
    assert memory.step_bytes == memory.gradients + memory.optimizer + memory.activations
    assert memory.total == memory.weights + memory.step_bytes
    peak, method = speed.measured_step_memory(net, square_loss, x)
    assert isinstance(method, str) and method
    if peak is not None and method.startswith("peak RSS"):  # Linux: the step touches at least its activations
        assert peak >= 0.5 * memory.activations


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS through /proc is Linux-only")
def test_peak_memory_sees_a_large_allocation_and_not_a_small_one():
    _, big, method = speed.peak_memory(lambda: torch.ones(40_000_000).sum())  # 160 MB written
    _, small, _ = speed.peak_memory(lambda: torch.ones(1000).sum())
    assert method == "peak RSS growth (VmHWM)"
    assert big >= 120 * 2**20 and small < 40 * 2**20


def test_parameter_memory_counts_weights_gradients_and_two_adamw_moments():
    net = conv_net()
    net[0].weight.requires_grad_(False)  # frozen: a weight, but no gradient and no moments
    counted = speed.parameter_memory(net)
    params = sum(p.numel() for p in net.parameters())
    trainable = params - net[0].weight.numel()
    assert (counted.weights, counted.gradients, counted.optimizer, counted.activations) == (
        4 * params, 4 * trainable, 8 * trainable, 0)


# --- FLOPs ------------------------------------------------------------------------------------------

def test_step_flops_counts_the_convolution_formula_on_the_meta_device():
    net, shape = TimedConv(3, 5, 3), (2, 3, 7, 9)
    flops = speed.step_flops(net, shape)
    forward = 2 * 2 * 7 * 9 * (5 * 3 * 3 * 3 + 3 * 5 * 1)  # 2 FLOPs per multiply-add, both convolutions
    assert flops["convolution"] == forward
    assert flops["total"] == flops["convolution"] + flops["convolution_backward"]
    assert flops["convolution_backward"] > forward  # weight gradients, and input gradients for the second conv
    assert next(net.parameters()).device.type == "cpu"  # the caller's model stays where it was


# --- profile -----------------------------------------------------------------------------------------

def test_profile_splits_one_step_into_phases_and_operators():
    profile = speed.profile_step(conv_net(), square_loss, torch.randn(4, 1, 16, 16))
    assert set(profile.phases) == set(speed.PHASES) and all(s > 0 for s in profile.phases.values())
    self_total = sum(op.self_s for op in profile.ops)
    assert self_total <= profile.total_s * 1.05 and self_total >= 0.5 * sum(profile.phases.values())
    kinds = profile.by_kind()
    assert "convolution" in kinds and speed.OPTIMIZER in kinds
    assert list(kinds.values()) == sorted(kinds.values(), reverse=True)
    assert [op.self_s for op in profile.ops] == sorted((op.self_s for op in profile.ops), reverse=True)
    assert profile.table(3).count("\n") == 3 and "self ms" in profile.table(3)


@pytest.mark.parametrize("name, kind", [
    ("aten::mkldnn_convolution", "convolution"),
    ("aten::convolution_backward", "convolution"),
    ("aten::bmm", "matrix products (attention, linear)"),
    ("aten::addmm", "matrix products (attention, linear)"),
    ("aten::native_group_norm_backward", "normalisation"),
    ("aten::_softmax", "softmax"),
    ("aten::copy_", "copies and reshapes"),
    ("aten::add_", speed.ELEMENTWISE),
    ("aten::silu_backward", speed.ELEMENTWISE),
    ("ConvolutionBackward0", speed.OVERHEAD),
    ("autograd::engine::evaluate_function: AddBackward0", speed.OVERHEAD),
])
def test_op_kinds(name, kind):
    assert speed.op_kind(name) == kind


# --- bad input ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: speed.time_training_steps("net", square_loss, torch.randn(1, 1, 4, 4)), "model: expected a torch.nn.Module"),
    (lambda: speed.time_training_steps(nn.Identity(), square_loss, torch.randn(1, 1, 4, 4)), "model: expected a network"),
    (lambda: speed.time_training_steps(conv_net(), "loss", torch.randn(1, 1, 4, 4)), "loss_fn: expected a function"),
    (lambda: speed.time_training_steps(conv_net(), square_loss, [1, 2]), "batch: expected a tensor"),
    (lambda: speed.time_training_steps(conv_net(), square_loss, torch.randn(1, 1, 4, 4), precision="fp8"),
     "precision: expected one of"),
    (lambda: speed.time_training_steps(conv_net(), square_loss, torch.randn(1, 1, 4, 4), steps=0), "steps: expected"),
    (lambda: speed.time_training_steps(conv_net(), square_loss, torch.randn(1, 1, 4, 4), warmup=-1), "warmup: expected"),
    (lambda: speed.time_training_steps(conv_net(), square_loss, torch.randn(1, 1, 4, 4), compile="yes"),
     "compile: expected True or False"),
    (lambda: speed.compare_settings(conv_net(), square_loss, torch.randn(1, 1, 4, 4), {}), "settings: expected"),
    (lambda: speed.compare_settings(conv_net(), square_loss, torch.randn(1, 1, 4, 4), {"a": {"dtype": "bf16"}}),
     "settings: expected"),
    (lambda: speed.saved_activation_bytes(conv_net(), square_loss, torch.randn(1, 1, 4, 4), "half"), "precision: expected"),
    (lambda: speed.step_flops(TimedConv(), (2, 3.0, 4, 4)), "shape: expected"),
    (lambda: speed.step_flops(TimedConv(), (2, 0, 4, 4)), "shape: expected"),
    (lambda: speed.profile_step(conv_net(), square_loss, torch.randn(1, 1, 4, 4), warmup=-2), "warmup: expected"),
    (lambda: speed.profile_step(conv_net(), None, torch.randn(1, 1, 4, 4)), "loss_fn: expected a function"),
    (lambda: speed.training_memory(conv_net(), 3, torch.randn(1, 1, 4, 4)), "loss_fn: expected a function"),
    (lambda: speed.measured_step_memory(conv_net(), square_loss, torch.randn(1, 1, 4, 4), "int8"), "precision: expected"),
    (lambda: speed.time_training_steps(conv_net(), lambda m, b, g: m(b), torch.randn(1, 1, 4, 4)),
     "loss_fn: expected to return a scalar tensor"),
    (lambda: speed.StepProfile(0.0, {}, [], "cpu").table(0), "top: expected a positive int"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
