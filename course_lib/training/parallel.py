"""How one optimiser step's batch is split: shards, micro-batches, processes and worker processes.

A plain trainer draws each step's batch and noise from its two carried generators. Splitting the
step changes *who* computes the batch, never *what* it is:

* **Shards.** With ``TrainConfig.shards`` S > 0 a step's batch of B examples is S shards of B/S
  (B must divide evenly: :func:`split_batch_size`). Shard s of step k draws its examples from a
  generator seeded by ``stream_seed("data", seed, k, s)``, its t and ε from ``stream_seed("noise",
  seed, k, s)``, and torch's global RNG (dropout) is reseeded with ``stream_seed("global", seed,
  k, s)``: SHA-256 of the four values, so the shards differ, every step has new ones, any process
  can draw any shard, and a resume needs no generator state.
* **Processes and micro-batches.** Under torchrun W processes share the S shards: process r
  computes the contiguous block r·S/W, …, (r+1)·S/W − 1 (:func:`shards_of_rank`), one micro-batch
  after the other (gradient accumulation: ``accumulate`` A gives S = W·A by default). Each
  micro-batch's loss is divided by S/W and DDP averages over the processes, so every process holds
  ∇ of the mean loss over all B examples: the maths of one process taking the whole batch, with
  the activation memory of one micro-batch, and the same learning rate. DDP all-reduces only in
  the backward pass of a process's last micro-batch (``no_sync`` on the others). The shards do not
  depend on W, so W processes with accumulate A see the same examples and noise as one process
  with accumulate W·A, and a checkpoint moves between these layouts (the gradients agree to
  rounding: the same terms summed in another order; powers of two are exact). A checkpoint
  remembers its S; a resume with another S is refused (:func:`check_checkpoint_layout`).
* **Workers.** With ``workers`` N the shards are drawn by N DataLoader worker processes
  (:func:`step_loader`), worker w drawing steps start + w, start + w + N, …; the items arrive in
  step order and are the same tensors as drawn in the training process. The carried streams
  cannot be split like this (step k's batch depends on every batch before it), so workers need
  S >= 1. Workers start with the DataLoader's default method (fork on Linux; spawn on macOS and
  Windows, where ``make_batch`` must be picklable: a recipe's is, a notebook's function is not).
  Keep ``workers=0`` in notebooks.
* **Memory format.** ``memory_format="channels_last"`` stores the model's 4-D weights and the
  batches' 4-D tensors NHWC, which cuDNN's and oneDNN's convolutions prefer on GPUs with bf16/fp16.
  Video batches (B, T, C, H, W) stay as they are: the course's video models fold time into the
  batch and run 2-D convolutions, which take the layout of their weights.

:class:`MicroBatches` is what the trainer asks for each step's micro-batches.
"""
from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from course_lib._validation import check_positive_int, fail
from course_lib.training import distributed

MakeBatch = Callable[[torch.Generator], Any]
STREAMS = ("data", "noise", "global")
MEMORY_FORMATS = ("contiguous", "channels_last")
PREFETCH_PER_WORKER = 2  # steps each worker keeps ready ahead of the trainer


# --- the per-step streams of the shards -------------------------------------------------------------

def stream_seed(stream: str, seed: int, step: int, shard: int) -> int:
    """A 63-bit seed for one shard of one step: SHA-256 of (stream, seed, step, shard).

    stream: "data" (which examples), "noise" (which t and ε) or "global" (torch's global RNG, dropout).
    The same four values give the same seed on every machine and in every process.
    """
    if stream not in STREAMS:
        fail("stream", "one of " + ", ".join(repr(s) for s in STREAMS), stream)
    digest = hashlib.sha256(f"{stream}/{seed}/{step}/{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def shard_generator(stream: str, seed: int, step: int, shard: int) -> torch.Generator:
    """A CPU generator seeded with :func:`stream_seed`."""
    return torch.Generator().manual_seed(stream_seed(stream, seed, step, shard))


def draw_shard(make_batch: MakeBatch, seed: int, step: int, shard: int):
    """The batch of ``shard`` at ``step``: make_batch with the shard's data generator (global RNG reseeded first)."""
    torch.manual_seed(stream_seed("global", seed, step, shard))
    return make_batch(shard_generator("data", seed, step, shard))


# --- how the shards are laid out ----------------------------------------------------------------------

def check_shards(shards: int, world: int) -> int:
    """``shards`` must be a positive multiple of the number of processes ``world``."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1 or shards % world:
        fail("shards", f"a positive multiple of the world size {world} (each process computes shards / {world} "
                       "shards of every batch)", shards)
    return shards


def shards_of_rank(shards: int, rank: int, world: int) -> range:
    """The shards process ``rank`` of ``world`` computes: a contiguous block of shards / world."""
    per_rank = check_shards(shards, world) // world
    return range(rank * per_rank, (rank + 1) * per_rank)


def split_batch_size(batch_size: int, shards: int, world: int | None = None) -> int:
    """Examples per shard, B / S; B not divisible by S is a ``ValueError`` naming batch_size."""
    world = shards if world is None else world
    if batch_size % shards:
        divisors = [d for d in range(1, batch_size + 1) if batch_size % d == 0]
        fail("batch_size", f"a multiple of {shards}: the global batch is split into {shards} equal shards over "
                           f"{world} process(es); launch a number of processes among {divisors}, or change the "
                           "batch size", batch_size)
    return batch_size // shards


def check_checkpoint_layout(path, state: Mapping, world: int, shards: int) -> None:
    """A checkpoint (its state dict) must have been trained with ``shards`` (another layout changes the streams).

    The message names both world sizes and how to resume the file.
    """
    config = state.get("config") if isinstance(state.get("config"), Mapping) else {}
    saved_shards, saved_world = int(config.get("shards", 0)), int(state.get("world_size", 1))
    if saved_shards == shards:
        return
    how = (f"torchrun --nproc_per_node {saved_world}" if saved_world > 1 else "no torchrun")
    alternative = f", or in one process with shards={saved_shards}" if saved_shards else ""
    raise ValueError(
        f"checkpoint {os.fspath(path)}: expected a run of world size {world} ({_layout(shards)}) like this one, "
        f"got one written by world size {saved_world} ({_layout(saved_shards)}); resuming it here would change "
        f"its data and noise streams. Resume it with {saved_world} process(es) ({how}){alternative}."
    )


def _layout(shards: int) -> str:
    return f"{shards} shards per step" if shards else "single-process streams"


# --- worker processes -----------------------------------------------------------------------------------

class StepBatches(IterableDataset):
    """The per-step data stream from step ``start`` on, forever: items ``(step, [batch of each shard])``.

    make_batch(generator) -> one shard's batch (a tensor or a tuple/list/dict of tensors);
    shards: the shards this process computes (:func:`shards_of_rank`). Inside a DataLoader
    worker w of n, only the steps start + w, start + w + n, ... are drawn.
    """

    def __init__(self, make_batch: MakeBatch, seed: int, shards: Sequence[int], start: int = 0):
        if not callable(make_batch):
            fail("make_batch", "a function make_batch(generator)", type(make_batch).__name__)
        if isinstance(seed, bool) or not isinstance(seed, int):
            fail("seed", "an int", seed)
        shards = list(shards)
        if not shards or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in shards):
            fail("shards", "a non-empty list of shard indices >= 0", shards)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            fail("start", "an int >= 0 (the first step)", start)
        self.make_batch, self.seed, self.shards, self.start = make_batch, seed, shards, start

    def batches_of(self, step: int) -> list:
        """The batch of each of this process's shards at ``step``."""
        return [draw_shard(self.make_batch, self.seed, step, shard) for shard in self.shards]

    def __iter__(self) -> Iterator[tuple[int, list]]:
        worker = get_worker_info()
        first, stride = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for step in itertools.count(self.start + first, stride):
            yield step, self.batches_of(step)


def step_loader(make_batch: MakeBatch, seed: int, shards: Sequence[int], start: int, workers: int,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader serving :class:`StepBatches` from ``workers`` (>= 1) processes, in step order.

    pin_memory: put the batches in page-locked memory (for ``non_blocking`` copies to a CUDA GPU).
    The loader draws its workers' base seeds from its own generator, never from torch's global RNG.
    """
    check_positive_int("workers", workers)
    return DataLoader(StepBatches(make_batch, seed, shards, start), batch_size=None, num_workers=workers,
                      pin_memory=pin_memory, prefetch_factor=PREFETCH_PER_WORKER,
                      generator=torch.Generator().manual_seed(seed))


# --- what the trainer asks for ----------------------------------------------------------------------------

def to_device(batch, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format):
    """Move a tensor, or a tuple/list/dict of them, to ``device``; 4-D floating tensors take ``memory_format``."""
    if isinstance(batch, torch.Tensor):
        if memory_format != torch.contiguous_format and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=memory_format)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device, memory_format) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device, memory_format) for key, value in batch.items()}
    fail("make_batch", "a tensor, or a tuple/list/dict of tensors", type(batch).__name__)


class MicroBatch(NamedTuple):
    """One micro-batch of a step: its batch on the device, the generator of its noise, and the
    context its backward pass runs in (DDP's ``no_sync`` on all but a process's last micro-batch)."""

    batch: Any
    noise: torch.Generator
    sync: Any


class MicroBatches:
    """The micro-batches this process computes at each optimiser step, and how their gradients add up.

    Built from a :class:`~course_lib.training.TrainConfig` (``shards``, ``accumulate``, ``workers``,
    ``seed``, ``memory_format``) inside the current process group (a plain process: world size 1).
    ``shards`` is the resolved S (:meth:`TrainConfig.resolved_shards`), ``count`` the micro-batches
    per step and process (S/W; 1 with the carried streams). Call :meth:`close` to stop the workers.
    """

    def __init__(self, config, device: torch.device):
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.shards = config.resolved_shards(self.world_size)
        self.count = 1
        if self.shards:
            self.count = check_shards(self.shards, self.world_size) // self.world_size
            if config.accumulate not in (1, self.count):
                fail("accumulate", f"shards / world size = {self.shards} / {self.world_size} = {self.count} "
                                   "(the micro-batches each process computes per step), or 1", config.accumulate)
        self.seed, self.workers, self.device = config.seed, config.workers, device
        self.memory_format = torch.channels_last if config.memory_format == "channels_last" else torch.contiguous_format
        self.ddp_model: nn.Module | None = None
        self._loader, self._loader_step = None, None  # the workers' batches, and the step they serve next

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` on the device (its 4-D weights channels-last if asked), and in DDP when W > 1.

        Returns the model to train through; ``model`` itself stays the plain module (DDP copies
        rank 0's weights to every process).
        """
        model.to(self.device)
        if self.memory_format == torch.channels_last:
            model.to(memory_format=torch.channels_last)  # 4-D weights only; others stay
        self.ddp_model = distributed.wrap_model(model, self.device) if self.world_size > 1 else None
        return self.ddp_model if self.ddp_model is not None else model

    def __call__(self, step: int, make_batch: MakeBatch, data_generator: torch.Generator,
                 noise_generator: torch.Generator) -> Iterator[MicroBatch]:
        """The micro-batches of ``step``: one batch from the carried generators, or this process's shards."""
        if not self.shards:
            yield MicroBatch(to_device(make_batch(data_generator), self.device, self.memory_format), noise_generator,
                             nullcontext())
            return
        mine = shards_of_rank(self.shards, self.rank, self.world_size)
        served = self._from_workers(step, make_batch, mine) if self.workers else None
        for index, shard in enumerate(mine):
            batch = served[index] if served is not None else draw_shard(make_batch, self.seed, step, shard)
            torch.manual_seed(stream_seed("global", self.seed, step, shard))  # dropout: the same in every layout
            last = index == len(mine) - 1
            sync = self.ddp_model.no_sync() if self.ddp_model is not None and not last else nullcontext()
            yield MicroBatch(to_device(batch, self.device, self.memory_format),
                             shard_generator("noise", self.seed, step, shard), sync)

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (``value`` itself in one process)."""
        return distributed.mean_over_processes(value, self.device)

    def _from_workers(self, step: int, make_batch: MakeBatch, shards) -> list:
        """The batches of ``shards`` at ``step`` from the worker processes (started at ``step`` when needed)."""
        if self._loader is None or self._loader_step != step:  # first use, or the step moved (resume)
            self.close()
            pin = self.device.type == "cuda"
            self._loader = iter(step_loader(make_batch, self.seed, shards, step, self.workers, pin))
        served, batches = next(self._loader)
        if served != step:  # cannot happen with in-order loading; a wrong batch must never train silently
            raise RuntimeError(f"workers: expected the batches of step {step}, got those of step {served}")
        self._loader_step = step + 1
        return batches

    def close(self) -> None:
        """Stop the DataLoader's worker processes, if any (they start again at the next step that needs them)."""
        loader, self._loader, self._loader_step = self._loader, None, None
        shutdown = getattr(loader, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
