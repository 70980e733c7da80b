"""Checks for notebook 11 (sampling speed and precision). References: course_lib.diffusion.samplers and torch itself."""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.workshop.checks import compare, not_a_function, report
from course_lib.diffusion.samplers import ddim_timesteps

HINTS = {
    "11.1": ("S whole timesteps spread evenly over the code timesteps 0 … T − 1, largest first, starting at the "
             "noisiest step T − 1.",
             "step down from T by T/S (a float) each time, round each value to a whole timestep, and subtract 1.",
             "round(T − i·T/S) − 1 for i = 0, ..., S − 1, as a list of ints."),
    "11.2": ("one optimiser step whose forward pass and loss run under torch.autocast with bf16; the backward "
             "pass and the step come after the with block, on float32 weights.",
             "optimizer.zero_grad(); with torch.autocast(device_type, dtype=torch.bfloat16): loss = "
             "mse(model(x_t, t).float(), target); then loss.backward(); optimizer.step(); return loss.item()."),
    "11.3": ("Amdahl's law: the parts you did not speed up still take all their time.",
             "new time = Σ over parts of t / f (f = 1 for a part not in factors); speed-up = old total time / new total time."),
}


# --- references ---------------------------------------------------------------------------------

def reference_ddim_timesteps(num_steps: int, steps: int) -> list[int]:
    """The "trailing" DDIM subsequence, via course_lib.diffusion.samplers.ddim_timesteps: round(T − i·T/S) − 1, i = 0..S−1."""
    return ddim_timesteps(num_steps, steps, spacing="trailing")


def reference_mixed_precision_step(model: nn.Module, optimizer: torch.optim.Optimizer, x_t: torch.Tensor,
                                   t: torch.Tensor, target: torch.Tensor) -> float:
    """One training step in bf16 autocast, as the course's ``Trainer`` takes it (without clipping and EMA).

    The forward pass and the loss run under autocast: matrix products in bf16, the mean squared error
    in fp32 (the prediction cast up first). backward() and the optimizer step run outside it, on the
    fp32 weights, whose gradients arrive in fp32 through autocast's casts. Returns the loss.
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x_t.device.type, dtype=torch.bfloat16):
        prediction = model(x_t, t)
        loss = F.mse_loss(prediction.float(), target)
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_speedup_from_profile(seconds: Mapping[str, float], factors: Mapping[str, float]) -> float:
    """Amdahl's law over the parts of a profile: Σ_k t_k / Σ_k (t_k / f_k), f_k = 1 for parts not sped up."""
    return sum(seconds.values()) / sum(t / factors.get(kind, 1.0) for kind, t in seconds.items())


# --- checks ---------------------------------------------------------------------------------------

def check_ddim_timesteps(learner_fn) -> bool:
    # (T, S) pairs where no i·T/S ends in .5, so that the rounding convention cannot matter
    cases = [((1000, 50), {}), ((1000, 10), {}), ((1000, 7), {}), ((1000, 3), {}), ((50, 6), {}),
             ((1000, 1), {}), ((20, 20), {})]
    mistakes = {
        "the leading spacing of Song et al. (never starts at the noisiest step T − 1)":
            lambda T, S: [i * (T // S) for i in range(S)][::-1],
        "evenly spaced from 0 to T − 1 (linspace): the spacing steps down by T/S from T − 1":
            lambda T, S: torch.linspace(0, T - 1, S).round().long().flip(0).tolist(),
        "a whole-number stride T // S: it drifts when S does not divide T; step by T/S and round":
            lambda T, S: [T - 1 - i * (T // S) for i in range(S)],
        "truncated: int() rounds down, round() to the nearest step": lambda T, S: [int(T - i * T / S) - 1 for i in range(S)],
    }
    return compare("11.1", learner_fn, reference_ddim_timesteps, cases, "ddim_timesteps", variants=mistakes)


# --- check 11.2: a mixed-precision training step ----------------------------------------------------

class _TinyDenoiser(nn.Module):
    """x_t (N, D) and t (N,) -> a prediction (N, D) through two linear layers.

    For the check it records, in ``seen``, the dtype of its first layer's output and whether autocast
    was on, in the forward pass ("forward") and when the gradient comes back through it ("backward").
    """

    def __init__(self, dim: int, hidden: int = 32):
        super().__init__()
        self.inp = nn.Linear(dim + 1, hidden)
        self.out = nn.Linear(hidden, dim)
        self.seen: list[tuple[str, torch.dtype, bool]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        h = self.inp(torch.cat([x, (t[:, None] / 1000).to(x.dtype)], dim=1))  # (N, hidden)
        self.seen.append(("forward", h.dtype, torch.is_autocast_enabled(device)))
        if h.requires_grad:
            h.register_hook(lambda grad: self.seen.append(("backward", grad.dtype, torch.is_autocast_enabled(device))))
        return self.out(F.silu(h))


MIXED_PRECISION_HINT = f'{HINTS["11.2"][0]} More: hint("11.2", 2).'  # the idea only: never the whole answer
MIXED_PRECISION_STEPS = 8  # steps per case: enough for the loss to fall, few enough to stay fast


def _as_number(value) -> float | None:
    """A float from a number or a one-element tensor; None for anything else."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().float())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _mixed_precision_problem(model: _TinyDenoiser, got, expected_loss: float, expected_weights: list[torch.Tensor]) -> str | None:
    """What is wrong with one step of the learner's function, or None: the checks run from the
    mistake that explains the most to the least."""
    forward = [(dtype, on) for kind, dtype, on in model.seen if kind == "forward"]
    backward = [on for kind, _, on in model.seen if kind == "backward"]
    weights = {p.dtype for p in model.parameters()}
    if got is None:
        return "your function returned None: return the step's loss (loss.item())"
    if not forward:
        return "your function never called model(x_t, t)"
    if weights != {torch.float32}:
        return (f"the weights are now {', '.join(sorted(str(w).removeprefix('torch.') for w in weights))}: keep them "
                "float32 (autocast makes bf16 copies for the products; the optimizer updates the fp32 weights)")
    dtype, on = forward[-1]
    if not on or dtype != torch.bfloat16:
        where = "without autocast" if not on else "under autocast"
        return (f"the model's matrix products ran in {str(dtype).removeprefix('torch.')} {where}: run model(x_t, t) "
                "inside torch.autocast(..., dtype=torch.bfloat16)")
    if not backward:
        return "no gradient reached the model: call loss.backward()"
    if any(backward):
        return "loss.backward() ran inside the autocast block: autocast wraps the forward pass and the loss only"
    loss = _as_number(got)
    if loss is not None and not math.isfinite(loss):
        return f"your function returned the loss {loss}: a NaN or inf means the step broke (check the inputs you used)"
    if loss is None:
        shape = f" of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor) else f" (a {type(got).__name__})"
        return f"return the loss as one number, shape () (loss.item()), got a value{shape}"
    if abs(loss - expected_loss) > 1e-4 * abs(expected_loss) + 1e-6:
        return (f"you returned the loss {loss:.6g} where the fp32 mean squared error of the bf16 prediction is "
                f"{expected_loss:.6g} (a loss computed in bf16? cast the prediction up: prediction.float())")
    moved = max((p.detach() - q.detach()).abs().max().item() for p, q in zip(model.parameters(), expected_weights))
    if moved > 1e-6:
        return (f"the weights after your step differ from one optimizer step on this batch's gradient (by up to "
                f"{moved:.2g}): zero the old gradients first, then backward() once and optimizer.step() once")
    return None


def check_mixed_precision_step(learner_fn) -> bool:
    """Behaviour, not the code: on a tiny model the forward pass runs in bf16 under autocast, backward
    outside it, the weights stay fp32, each step is the reference's step from the same weights, and
    the loss falls over the steps."""
    if not callable(learner_fn):
        return not_a_function("11.2", learner_fn)
    g = torch.Generator().manual_seed(112)
    cases = [(8, 6), (16, 4), (5, 10)]  # (batch N, features D)
    for number, (n, dim) in enumerate(cases, start=1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(300 + number)
            model = _TinyDenoiser(dim)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x_t, target = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
        t = torch.randint(0, 1000, (n,), generator=g)
        losses = []
        for step in range(1, MIXED_PRECISION_STEPS + 1):
            where = f"case {number} of {len(cases)}, step {step}"
            reference = copy.deepcopy(model)  # the same weights: the reference step from where the learner is
            expected_loss = reference_mixed_precision_step(reference, torch.optim.SGD(reference.parameters(), lr=0.1),
                                                           x_t, t, target)
            model.seen.clear()
            try:
                got = learner_fn(model, optimizer, x_t.clone(), t.clone(), target.clone())
            except NotImplementedError:
                return report("11.2", False, "not done yet: replace the `raise NotImplementedError` line with your code.")
            except Exception as error:  # noqa: BLE001 -- the learner's code failed: say how in one line
                first = (str(error).strip().splitlines() or [""])[0][:160]
                return report("11.2", False, f"{where}: your function raised {type(error).__name__}: {first}. "
                                             f"Hint: {MIXED_PRECISION_HINT}")
            problem = _mixed_precision_problem(model, got, expected_loss, list(reference.parameters()))
            if problem:
                return report("11.2", False, f"{where} — {problem}. Hint: {MIXED_PRECISION_HINT}")
            losses.append(_as_number(got))
        if not losses[-1] < losses[0]:
            return report("11.2", False, f"case {number} of {len(cases)}: the loss did not fall over "
                                         f"{MIXED_PRECISION_STEPS} steps ({losses[0]:.4g} -> {losses[-1]:.4g}). "
                                         f"Hint: {MIXED_PRECISION_HINT}")
    return report("11.2", True, f"mixed_precision_step runs the forward pass in bf16 autocast, keeps the weights "
                                f"fp32 and lowers the loss, on {len(cases)} fresh cases of {MIXED_PRECISION_STEPS} steps.")


def check_speedup_from_profile(learner_fn) -> bool:
    profile = {"convolution": 0.090, "matrix products": 0.050, "normalisation": 0.010, "optimizer": 0.015,
               "element-wise": 0.025}
    cases = [
        ((profile, {"convolution": 2.0}), {}),
        ((profile, {"matrix products": math.inf}), {}),  # attention for free: the rest still takes its time
        ((profile, {"convolution": 3.0, "matrix products": 3.0, "element-wise": 1.5}), {}),
        ((profile, {}), {}),  # nothing faster: speed-up 1
        (({"a": 1.0, "b": 3.0}, {"b": 4.0}), {}),
        (({"a": 2.0}, {"a": 0.5}), {}),  # twice as slow: speed-up 0.5
    ]
    def only_sped_up(seconds, factors):
        sped = {kind: t for kind, t in seconds.items() if kind in factors}
        return sum(sped.values()) / sum(t / factors[kind] for kind, t in sped.items()) if sped else 1.0

    mistakes = {
        "the factors averaged by time: times add up, speeds do not (divide each time by its factor)":
            lambda seconds, factors: sum(t * factors.get(kind, 1.0) for kind, t in seconds.items()) / sum(seconds.values()),
        "only the sped-up parts counted: the other parts still take their time": only_sped_up,
        "the mean of the factors: weigh each part by its time": lambda seconds, factors:
            sum(factors.values()) / len(factors) if factors else 1.0,
    }
    return compare("11.3", learner_fn, reference_speedup_from_profile, cases, "speedup_from_profile", variants=mistakes)
