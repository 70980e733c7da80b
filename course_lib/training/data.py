"""Training batches drawn by worker processes: a DataLoader over the per-step data stream.

With per-step streams (``TrainConfig.shards`` S >= 1, see :mod:`course_lib.training.distributed`)
the examples of shard s at step k are

    draw_shard(make_batch, seed, k, s) = make_batch(Generator seeded by stream_seed("data", seed, k, s))

(torch's global RNG reseeded with ``stream_seed("global", seed, k, s)`` first, in case make_batch
uses it). They depend on (seed, k, s) only, so any process can draw them and get the same tensors:
:class:`StepBatches` is that stream as an ``IterableDataset``, and :func:`step_loader` serves it
from ``workers`` processes, worker w drawing steps start + w, start + w + workers, ... The
DataLoader takes one item from each worker in turn, so the items arrive in step order, each
``(step, [the batch of each shard this process computes])``: exactly what the trainer draws in
its own process with ``workers=0`` (tests/test_training_gpu_path.py checks it tensor for tensor).

The carried streams of a plain trainer (``shards=0``: one generator advanced by every batch) cannot
be split like this -- the batch of step k depends on every batch before it -- so workers need
S >= 1; the trainer picks S for you (see :meth:`TrainConfig.resolved_shards`).

Workers start with the DataLoader's default method (fork on Linux; spawn on macOS and Windows,
where ``make_batch`` must be picklable -- a recipe's ``make_batch`` is, a function defined in a
notebook is not). Keep ``workers=0`` in notebooks.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from course_lib._validation import check_positive_int, fail
from course_lib.training.distributed import shard_generator, stream_seed

PREFETCH_PER_WORKER = 2  # steps each worker keeps ready ahead of the trainer


def draw_shard(make_batch: Callable[[torch.Generator], Any], seed: int, step: int, shard: int):
    """The batch of ``shard`` at ``step``: make_batch with the shard's data generator (global RNG reseeded first)."""
    torch.manual_seed(stream_seed("global", seed, step, shard))
    return make_batch(shard_generator("data", seed, step, shard))


class StepBatches(IterableDataset):
    """The per-step data stream from step ``start`` on, forever: items ``(step, [batch of each shard])``.

    make_batch(generator) -> one shard's batch (a tensor or a tuple/list/dict of tensors);
    shards: the shards this process computes (``distributed.shards_of_rank``). Inside a DataLoader
    worker w of n, only the steps start + w, start + w + n, ... are drawn.
    """

    def __init__(self, make_batch: Callable[[torch.Generator], Any], seed: int, shards: Sequence[int],
                 start: int = 0):
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


def step_loader(make_batch: Callable[[torch.Generator], Any], seed: int, shards: Sequence[int], start: int,
                workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader serving :class:`StepBatches` from ``workers`` (>= 1) processes, in step order.

    pin_memory: put the batches in page-locked memory (for ``non_blocking`` copies to a CUDA GPU).
    The loader draws its workers' base seeds from its own generator, never from torch's global RNG.
    """
    check_positive_int("workers", workers)
    return DataLoader(StepBatches(make_batch, seed, shards, start), batch_size=None, num_workers=workers,
                      pin_memory=pin_memory, prefetch_factor=PREFETCH_PER_WORKER,
                      generator=torch.Generator().manual_seed(seed))
