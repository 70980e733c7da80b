"""How long one training step takes: the number behind "this model trains on a laptop".

:func:`benchmark_train_step` times forward + MSE loss + backward + AdamW step on random data, the
same work a training loop does per batch, and reports the median over several steps after a
warm-up (the first steps allocate memory and pick kernels).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_choice, check_positive_int, fail


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def benchmark_train_step(
    model: nn.Module,
    shape: Sequence[int],
    steps: int = 10,
    *,
    warmup: int = 2,
    precision: str = "fp32",
    num_threads: int | None = None,
    num_timesteps: int = 1000,
    seed: int = 0,
) -> dict:
    """Time ``steps`` training steps of ``model`` on random input of ``shape`` (after ``warmup`` steps).

    model: a denoiser called as ``model(x, t)`` with x of ``shape`` (e.g. (B, T, C, H, W)) and
    t (B,) integer timesteps in [0, num_timesteps - 1]. One step = forward, MSE against a random
    target, backward, AdamW step. precision: "fp32" or "bf16" (CPU/CUDA autocast). num_threads:
    torch CPU threads during the run (restored afterwards); None keeps the current setting.
    The model's weights are updated (it is trained on noise): benchmark a throwaway copy.

    Returns ``dict(median_s, min_s, params, steps, precision, threads)``; times in seconds per step.
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__)
    shape = tuple(shape)
    if len(shape) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        fail("shape", "a sequence of at least 2 positive ints, e.g. (B, T, C, H, W)", shape)
    check_positive_int("steps", steps)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        fail("warmup", "an int >= 0", warmup)
    check_choice("precision", precision, ("fp32", "bf16"))
    if num_threads is not None:
        check_positive_int("num_threads", num_threads)
    check_positive_int("num_timesteps", num_timesteps)

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator).to(device)
    target = torch.randn(shape, generator=generator).to(device)
    t = torch.randint(0, num_timesteps, (shape[0],), generator=generator).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.mse_loss(model(x, t).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        for _ in range(warmup):
            step()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)
    threads = previous_threads if num_threads is None else num_threads
    return dict(median_s=statistics.median(times), min_s=min(times), params=count_parameters(model),
                steps=steps, precision=precision, threads=threads)
