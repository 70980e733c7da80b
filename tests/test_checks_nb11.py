"""Each notebook-11 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.workshop.checks import nb11
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


# --- 11.1 DDIM timesteps ----------------------------------------------------------------------------

def trailing(T, S):
    return [round(T - i * T / S) - 1 for i in range(S)]


def leading(T, S):  # Song et al.'s own spacing: never starts at the noisiest step
    return [i * (T // S) for i in range(S)][::-1]


def linspace(T, S):
    return torch.linspace(0, T - 1, S).round().long().flip(0)


def integer_stride(T, S):  # T // S between steps: drifts from the even spacing when S does not divide T
    return [T - 1 - i * (T // S) for i in range(S)]


def truncated(T, S):
    return [int(T - i * T / S) - 1 for i in range(S)]


# --- 11.2 a mixed-precision training step ------------------------------------------------------------

def mixed_precision_step(model, optimizer, x_t, t, target):
    optimizer.zero_grad()
    with torch.autocast(device_type=x_t.device.type, dtype=torch.bfloat16):
        prediction = model(x_t, t)
        loss = F.mse_loss(prediction.float(), target)
    loss.backward()
    optimizer.step()
    return loss.item()


def also_right(model, optimizer, x_t, t, target):  # mse_loss under autocast runs in fp32; zero_grad at the end
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.mse_loss(model(x_t, t), target)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=False)
    return loss.detach()


def no_autocast(model, optimizer, x_t, t, target):  # plain fp32: forgot the autocast block
    optimizer.zero_grad()
    loss = F.mse_loss(model(x_t, t), target)
    loss.backward()
    optimizer.step()
    return loss.item()


def bf16_weights(model, optimizer, x_t, t, target):  # "mixed" precision by casting the model itself to bf16
    model.to(torch.bfloat16)
    optimizer.zero_grad()
    loss = F.mse_loss(model(x_t.bfloat16(), t).float(), target)
    loss.backward()
    optimizer.step()
    return loss.item()


def backward_inside_autocast_on_a_bf16_loss(model, optimizer, x_t, t, target):
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = model(x_t, t)
        loss = ((prediction - target.to(prediction.dtype)) ** 2).mean()  # bf16: the target cast down, no .float()
        loss.backward()
        optimizer.step()
    return loss.item()


def fp16_autocast(model, optimizer, x_t, t, target):  # the other 16-bit format
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = F.mse_loss(model(x_t, t).float(), target)
    loss.backward()
    optimizer.step()
    return loss.item()


def bf16_loss_returned(model, optimizer, x_t, t, target):  # backward outside, but the loss itself in bf16
    optimizer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = model(x_t, t)
        loss = ((prediction - target.bfloat16()) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss.item()


def forgets_zero_grad(model, optimizer, x_t, t, target):  # gradients pile up from step to step
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.mse_loss(model(x_t, t).float(), target)
    loss.backward()
    optimizer.step()
    return loss.item()


# --- 11.3 Amdahl over a profile -----------------------------------------------------------------------

def speedup(seconds, factors):
    return sum(seconds.values()) / sum(t / factors.get(k, 1.0) for k, t in seconds.items())


def weighted_mean_factor(seconds, factors):  # averages the factors by time: ignores that time, not speed, adds
    return sum(t * factors.get(k, 1.0) for k, t in seconds.items()) / sum(seconds.values())


def only_the_sped_up_parts(seconds, factors):
    sped = {k: t for k, t in seconds.items() if k in factors}
    return sum(sped.values()) / sum(t / factors[k] for k, t in sped.items()) if sped else 1.0


def time_ratio(seconds, factors):  # new time / old time: the reciprocal of the speed-up
    return 1 / speedup(seconds, factors)


def mean_factor(seconds, factors):
    return sum(factors.values()) / len(factors) if factors else 1.0


RIGHT_AND_WRONG = [
    (nb11.check_ddim_timesteps, trailing, [
        (leading, "the leading spacing"),
        (linspace, "evenly spaced from 0 to T − 1"),
        (integer_stride, "a whole-number stride"),
        (truncated, "truncated"),
        (lambda T, S: trailing(T, S)[::-1], "the right values in reverse order"),
        (lambda T, S: [t + 1 for t in trailing(T, S)], "off by one: yours = expected + 1"),
        (lambda T, S: [T - i * T / S - 1 for i in range(S)], "expected a whole number"),  # not rounded
        (lambda T, S: trailing(T, S)[:-1], "off by one: one value too few"),
    ]),
    (nb11.check_mixed_precision_step, mixed_precision_step,
     [(no_autocast, "ran in float32 without autocast"),
      (bf16_weights, "the weights are now bfloat16"),
      (backward_inside_autocast_on_a_bf16_loss, "loss.backward() ran inside the autocast block"),
      (fp16_autocast, "ran in float16 under autocast"),
      (bf16_loss_returned, "a loss computed in bf16?"),
      (forgets_zero_grad, "zero the old gradients first")]),
    (nb11.check_speedup_from_profile, speedup, [
        (weighted_mean_factor, "averaged by time"),
        (only_the_sped_up_parts, "only the sped-up parts"),
        (time_ratio, "upside down"),
        (mean_factor, "the mean of the factors"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_timesteps_may_come_as_a_tensor_or_a_tuple(capsys):
    assert nb11.check_ddim_timesteps(lambda T, S: torch.tensor(trailing(T, S))) is True
    assert nb11.check_ddim_timesteps(lambda T, S: tuple(trailing(T, S))) is True
    assert nb11.check_ddim_timesteps(lambda T, S: None) is False
    assert "✗ Exercise 11.1" in capsys.readouterr().out


def test_speedup_reference_is_amdahls_law():
    """A fraction p sped up by s: 1 / ((1 − p) + p / s)."""
    p, s = 0.6, 4.0
    assert nb11.reference_speedup_from_profile({"fast": p, "rest": 1 - p}, {"fast": s}) == pytest.approx(1 / (1 - p + p / s))
    assert nb11.reference_speedup_from_profile({"fast": p, "rest": 1 - p}, {"fast": math.inf}) == pytest.approx(1 / (1 - p))


def test_mixed_precision_check_accepts_another_right_answer(capsys):
    assert nb11.check_mixed_precision_step(also_right) is True
    assert capsys.readouterr().out.startswith("✓ Exercise 11.2")


def test_the_reference_step_lowers_the_loss_of_the_tiny_model_in_bf16():
    torch.manual_seed(0)
    model = nb11._TinyDenoiser(6)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x_t, target, t = torch.randn(8, 6), torch.randn(8, 6), torch.randint(0, 1000, (8,))
    losses = [nb11.reference_mixed_precision_step(model, optimizer, x_t, t, target) for _ in range(8)]
    assert losses[-1] < 0.9 * losses[0]
    assert [dtype for kind, dtype, _ in model.seen if kind == "forward"][-1] == torch.bfloat16
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
