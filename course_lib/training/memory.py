"""How much memory training will need, estimated before it starts, and how much the device has free.

    estimate = estimate_trainer_memory(trainer)     # a MemoryEstimate, in bytes
    report_memory(trainer)                          # prints it, and a warning if it does not fit

The estimate is the sum of what a training step holds at its peak, one process:

* **weights, gradients, AdamW moments, EMA** -- counted exactly from the parameters: bytes =
  numel x element size; gradients as large as the trainable parameters; AdamW two moments (exp_avg,
  exp_avg_sq) per trainable parameter, in the parameter's dtype; the EMA a full copy of parameters
  and buffers. Under DDP (W > 1) one more gradient-sized set for DDP's all-reduce buckets.
* **activations** -- *measured*, not modelled: the tensors autograd keeps from the forward pass for
  the backward pass (inputs of convolutions, normalisations, attention weights; under autocast also
  the low-precision copies of the weights) are counted with ``saved_tensors_hooks`` during one
  forward pass of a copy of the model on micro-batches of 2 and of 3 examples, on the trainer's
  device and under its autocast (:func:`course_lib.training.speed.saved_activation_bytes`, the
  probe notebook 12 measures with), and extrapolated linearly, a + b·n, to the micro-batch of n
  examples (a: what does not grow with the batch, e.g. those weight copies; b: per example).
  Each storage is counted once; the parameters are not counted again.

Left out, so the real peak is higher: temporaries of the backward pass (the gradient of the largest
activation lives next to the activations for a moment), convolution workspaces, the caching
allocator's slack, the CUDA context itself (some hundreds of MB per process), compile's buffers,
and on CPU the Python process and its libraries. Read it as "at least this much".

Free memory is ``torch.cuda.mem_get_info`` on CUDA (free bytes on the device now) and
``MemAvailable`` of ``/proc/meminfo`` on CPU (Linux); elsewhere it is unknown and nothing is
compared. When the estimate exceeds it, :func:`report_memory` prints a warning with both numbers
and the accumulation that would fit -- a warning only: the estimate is not exact, and the user decides.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from course_lib._validation import check_choice, check_positive_int, fail
from course_lib.training.speed import batch_size, parameter_memory, saved_activation_bytes

PROBE_SIZES = (2, 3)  # examples per probe forward pass: two points fix a + b·n (1 can be a special case)
MEMINFO = "/proc/meminfo"


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; 3 * 2**30 -> '3.00 GiB'."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}" if unit == "GiB" else f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process needs at its peak (see the module docstring for what is counted).

    activations = activations_fixed + activations_per_example x micro_batch.
    """

    weights: int
    gradients: int
    optimizer: int
    ema: int
    ddp_buckets: int
    activations_fixed: int
    activations_per_example: int
    micro_batch: int

    @property
    def activations(self) -> int:
        return self.activations_fixed + self.activations_per_example * self.micro_batch

    @property
    def resident(self) -> int:
        """What does not depend on the batch: weights, gradients, AdamW moments, EMA, DDP buckets."""
        return self.weights + self.gradients + self.optimizer + self.ema + self.ddp_buckets

    @property
    def total(self) -> int:
        return self.resident + self.activations

    def at_micro_batch(self, micro_batch: int) -> "MemoryEstimate":
        """The same model with micro-batches of ``micro_batch`` examples."""
        return dataclasses.replace(self, micro_batch=check_positive_int("micro_batch", micro_batch))

    def describe(self) -> str:
        """'about 1.20 GiB: weights 40.0 MiB + gradients ... + activations 1.02 GiB (micro-batch of 16)'."""
        parts = [("weights", self.weights), ("gradients", self.gradients), ("AdamW", self.optimizer),
                 ("EMA", self.ema), ("DDP buckets", self.ddp_buckets), ("activations", self.activations)]
        shown = " + ".join(f"{name} {format_bytes(size)}" for name, size in parts if size or name != "DDP buckets")
        return f"about {format_bytes(self.total)}: {shown} (micro-batch of {self.micro_batch})"


# --- the estimate ------------------------------------------------------------------------------------

def _slice_batch(batch, n: int):
    """The first ``n`` examples of a batch: a tensor, or a tuple/list/dict of tensors (B, ...)."""
    if isinstance(batch, torch.Tensor):
        return batch[:n]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice_batch(item, n) for item in batch)
    if isinstance(batch, dict):
        return {key: _slice_batch(value, n) for key, value in batch.items()}
    fail("make_batch", "a tensor, or a tuple/list/dict of tensors", type(batch).__name__)


def estimate_training_memory(model: nn.Module, loss_fn: Callable, make_batch: Callable[[torch.Generator], Any],
                             precision: str = "fp32", device: torch.device | str | None = None, world_size: int = 1,
                             memory_format: torch.memory_format = torch.contiguous_format,
                             seed: int = 0) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of training ``model`` with AdamW + EMA on micro-batches from ``make_batch``.

    make_batch(generator) -> one micro-batch (its size is read from the batch it returns; it is
    called once with a generator of its own, so no training stream moves). The activations are
    measured on a copy of the model on ``device`` (default: the model's) under ``precision``'s
    autocast, inputs in ``memory_format``, with the global RNG restored afterwards.
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__)
    if not callable(loss_fn) or not callable(make_batch):
        fail("loss_fn" if not callable(loss_fn) else "make_batch", "a function",
             type(loss_fn if not callable(loss_fn) else make_batch).__name__)
    check_choice("precision", precision, ("fp32", "bf16", "fp16"))
    check_positive_int("world_size", world_size)
    first = next(model.parameters(), None)
    device = torch.device(device) if device is not None else (first.device if first is not None else torch.device("cpu"))
    counted = parameter_memory(model)  # weights, gradients, AdamW's two moments
    ema = counted.weights + sum(b.numel() * b.element_size() for b in model.buffers())
    ddp_buckets = counted.gradients if world_size > 1 else 0

    rng_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        batch = make_batch(torch.Generator().manual_seed(seed))
        micro_batch = batch_size(batch, "make_batch")
        probe = copy.deepcopy(model).to(device).train()
        sizes = sorted({min(n, micro_batch) for n in PROBE_SIZES})
        counts = [saved_activation_bytes(probe, loss_fn, _slice_batch(batch, n), precision, seed, memory_format)
                  for n in sizes]
        del probe
    if len(sizes) == 1:  # a micro-batch of 1 or 2: nothing to separate, count it all as per-example
        fixed, per_example = 0, counts[0]
    else:
        per_example = max(counts[1] - counts[0], 0) // (sizes[1] - sizes[0])  # b = (c(3) - c(2)) / 1
        fixed = max(counts[0] - per_example * sizes[0], 0)
    return MemoryEstimate(counted.weights, counted.gradients, counted.optimizer, ema, ddp_buckets, fixed,
                          per_example, micro_batch)


def estimate_trainer_memory(trainer) -> MemoryEstimate:
    """:func:`estimate_training_memory` for a :class:`~course_lib.training.Trainer` (its model, loss, micro-batch, precision)."""
    return estimate_training_memory(trainer.model, trainer.loss_fn, trainer.make_batch, trainer.config.precision,
                                    trainer.device, trainer.world_size, trainer.batches.memory_format,
                                    trainer.config.seed)


# --- what the device has --------------------------------------------------------------------------

def available_memory(device: torch.device | str) -> tuple[int | None, str]:
    """(bytes free for training on ``device`` or None when unknown, where the number comes from)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free on {torch.cuda.get_device_name(device)} (torch.cuda.mem_get_info)"
    if device.type == "cpu":
        try:
            with open(MEMINFO) as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024, f"MemAvailable in {MEMINFO}"
        except (OSError, ValueError, IndexError):
            pass
    return None, f"unknown on {device.type}"


def memory_warning(estimate: MemoryEstimate, available: int | None, source: str, micro_batches: int = 1) -> str | None:
    """A warning when ``estimate.total`` exceeds ``available`` bytes (None: fits, or nothing to compare with).

    It names both numbers and the smallest accumulation (micro-batches per step, a multiple of
    the current ``micro_batches``) whose estimate fits, or says that none does.
    """
    if available is None or estimate.total <= available:
        return None
    text = (f"warning: training needs {estimate.describe()}, more than the {format_bytes(available)} available "
            f"({source}); it may stop with an out-of-memory error, or swap.")
    n = estimate.micro_batch
    for split in (d for d in range(2, n + 1) if n % d == 0):
        smaller = estimate.at_micro_batch(n // split)
        if smaller.total <= available:
            return text + (f" With accumulate {micro_batches * split} (micro-batches of {n // split}, the same "
                           f"batch per step) it needs about {format_bytes(smaller.total)}.")
    least = estimate.at_micro_batch(1)
    return text + (f" Even micro-batches of 1 example need about {format_bytes(least.total)}: use a smaller preset "
                   "or a device with more memory.")


def report_memory(trainer, say: Callable[[str], Any] = print) -> MemoryEstimate:
    """Estimate ``trainer``'s memory, ``say`` one line with it and the free memory, and a warning if it does not fit.

    Call it before training starts (``python -m course_lib train`` and ``zoo.train`` with progress do).
    """
    estimate = estimate_trainer_memory(trainer)
    available, source = available_memory(trainer.device)
    free = f"{format_bytes(available)} available ({source})" if available is not None else f"free memory {source}"
    say(f"memory: training needs {estimate.describe()} per process (at least; see course_lib.training.memory); "
        f"{free}")
    warning = memory_warning(estimate, available, source, trainer.config.accumulate)
    if warning:
        say(warning)
    return estimate
