"""The one training loop of the course: every model (MLP, U-Net, video model) trains through it.

The trainer owns data, optimiser and EMA; the model knows nothing of noise and the loss owns the
diffusion. All randomness goes through two trainer-owned CPU generators,

* the *data stream* ``make_batch(data_generator) -> batch`` (which examples), and
* the *noise stream* ``loss_fn(model, batch, noise_generator) -> scalar`` (which t, which ε),

and both are saved in checkpoints, so that N steps straight and N/2 + save + resume + N/2 give
bit-identical weights on CPU.

With ``config.shards`` = S > 0 (automatic under torchrun with W > 1 processes) every step's batch
is instead S shards, shard s of step k drawn from generators seeded by (seed, k, s), spread over the
processes; the model is wrapped in DistributedDataParallel. The module docstring of
:mod:`course_lib.training.distributed` gives the details; without a process group nothing changes.

The switches of the GPU path (each one also runs on CPU; tests/test_training_gpu_path.py,
test_training_workers.py, test_training_accumulate_ddp.py, test_training_memory.py):

* ``accumulate`` A: gradient accumulation. Each optimiser step sums the gradients of A
  micro-batches, each loss scaled by 1/A, so the step follows ∇ of the mean loss over A
  micro-batches: the maths of one batch A times larger, with the activation memory of one
  micro-batch. The micro-batches are shards (per-step streams): S defaults to W·A, each process
  computes S/W = A of them, and DDP all-reduces only in the backward pass of the last one
  (``no_sync`` on the others). The shards do not depend on W, so W processes with accumulate A
  see the same examples and noise as one process with accumulate W·A (or W·A processes), and a
  checkpoint moves between these layouts; the gradients agree to rounding (the same terms, summed
  in another order: 1e-6 on the weights in the tests). Exact resume holds in every layout.
* ``memory_format`` "channels_last": the model's 4-D weights and the 4-D inputs are stored NHWC,
  which the convolutions of cuDNN and oneDNN prefer (on a CUDA GPU with bf16/fp16 they pick tensor
  core kernels). Video batches (B, T, C, H, W) are left as they are: the course's video models fold
  time into the batch and run 2-D convolutions per frame, which take the layout of their weights;
  ``channels_last_3d`` only concerns 3-D convolutions, which they do not have. Off by default:
  measured on CPU it does not help (python -m course_lib.workshop.bench.image training).
* ``workers`` N: batches drawn by N DataLoader worker processes (:mod:`course_lib.training.data`),
  in page-locked memory on CUDA; the data stream is the same tensors as with ``workers=0``. It needs
  per-step streams, so S defaults to W·A here too.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib._files import atomic_save
from course_lib._validation import check_choice, check_float_range, check_positive_int, check_tensor, fail
from course_lib.config import Preset, autocast_dtype, get_device
from course_lib.training import distributed
from course_lib.training.data import draw_shard, step_loader
from course_lib.training.checkpoint import (
    FORMAT_VERSION,
    capture_global_rng,
    check_signature,
    model_signature,
    read_checkpoint,
    restore_global_rng,
)
from course_lib.training.ema import ema_decay_at, make_ema_model, update_ema

MakeBatch = Callable[[torch.Generator], Any]
LossFn = Callable[[nn.Module, Any, torch.Generator], torch.Tensor]
SampleFn = Callable[["Trainer", int], None]
MEMORY_FORMATS = ("contiguous", "channels_last")


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained. ``0`` switches a periodic action off."""

    steps: int = 1000  # fit() trains until this many optimiser steps are done
    lr: float = 1e-3  # peak learning rate of AdamW
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    warmup_steps: int = 0  # lr rises linearly: lr·(k+1)/warmup_steps at step k < warmup_steps
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    ema_decay: float = 0.999  # d in θ_ema ← d·θ_ema + (1 − d)·θ
    ema_warmup: bool = True  # use min(d, (1 + k)/(10 + k)) at update k
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16" autocast (fp16 -> bf16 on CPU)
    compile: bool = False  # torch.compile the model for the training steps
    seed: int = 0  # data stream seeded with seed, noise stream with seed + 1
    log_every: int = 50  # update the progress bar's loss every this many steps
    sample_every: int = 0  # call sample_fn(trainer, step) every this many steps
    checkpoint_every: int = 0  # save to checkpoint_path every this many steps (and at the end of fit)
    checkpoint_path: str | None = None
    progress: bool = True  # tqdm progress bar (on rank 0 only)
    shards: int = 0  # 0: see resolved_shards(); S > 0: S per-step shards per batch, S / W per process
    accumulate: int = 1  # micro-batches per optimiser step and process (gradient accumulation)
    memory_format: str = "contiguous"  # "channels_last": 4-D weights and inputs stored NHWC
    workers: int = 0  # DataLoader worker processes drawing the batches (0: drawn in this process)

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_float_range("lr", self.lr, 0.0, 10.0)
        check_float_range("weight_decay", self.weight_decay, 0.0, 10.0)
        check_float_range("grad_clip", self.grad_clip, 0.0, math.inf)
        check_float_range("ema_decay", self.ema_decay, 0.0, 1.0)
        check_choice("precision", self.precision, ("fp32", "bf16", "fp16"))
        check_positive_int("accumulate", self.accumulate)
        check_choice("memory_format", self.memory_format, MEMORY_FORMATS)
        for name in ("warmup_steps", "log_every", "sample_every", "checkpoint_every", "shards", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                fail(name, "an int >= 0 (0 switches it off)", value)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            fail("seed", "an int", self.seed)
        if self.checkpoint_path is not None:
            self.checkpoint_path = os.fspath(self.checkpoint_path)
        if self.checkpoint_every and self.checkpoint_path is None:
            fail("checkpoint_path", "a file path when checkpoint_every > 0", None)

    def resolved_shards(self, world: int = 1) -> int:
        """The shards S a trainer in a group of ``world`` processes uses: ``shards`` if set, else
        W·accumulate when several micro-batches make a step (W > 1 or accumulate > 1) or workers draw
        the batches, else 0 (the two carried streams of a plain process)."""
        if self.shards:
            return self.shards
        if world > 1 or self.accumulate > 1 or self.workers > 0:
            return world * self.accumulate
        return 0

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed."""
        known = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in known:
                fail("changes", "field names of TrainConfig (" + ", ".join(sorted(known)) + ")", key)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_preset(cls, preset: Preset, steps: int, **changes) -> "TrainConfig":
        """Precision and compile from the preset, no progress bar in the ``smoke`` preset; ``changes`` win."""
        fields = {"precision": preset.precision, "compile": preset.compile, "progress": preset.name != "smoke"}
        return cls(steps=steps, **{**fields, **changes})


class Trainer:
    """AdamW + linear warm-up + gradient clipping + EMA + autocast, with exact resume.

    model: the network (moved to ``device``); ``ema_model`` is its averaged copy (sample from it).
    loss_fn(model, batch, generator) -> scalar tensor; make_batch(generator) -> a tensor, or a
    tuple/list/dict of tensors (moved to ``device`` by the trainer).
    sample_fn(trainer, step), if given, runs every ``config.sample_every`` steps (eval mode, no grad).
    ``history`` holds per step: "step" (1-based count after the step), "loss", "lr", "grad_norm".

    Inside a process group of W > 1 processes (torchrun) make_batch must return one shard (B/S
    examples), ``shards`` defaults to W·accumulate, the model is trained through DDP, and only
    rank 0 shows progress, runs sample_fn and writes checkpoints. With ``accumulate`` A or
    ``workers`` > 0, make_batch likewise returns one micro-batch (shard). Call :meth:`close` (or
    let the trainer be collected) to stop worker processes.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        make_batch: MakeBatch,
        config: TrainConfig | None = None,
        device: torch.device | str | None = None,
        sample_fn: SampleFn | None = None,
    ):
        if not isinstance(model, nn.Module):
            fail("model", "a torch.nn.Module", type(model).__name__)
        for name, fn in (("loss_fn", loss_fn), ("make_batch", make_batch)):
            if not callable(fn):
                fail(name, "a function", type(fn).__name__)
        if sample_fn is not None and not callable(sample_fn):
            fail("sample_fn", "a function sample_fn(trainer, step) or None", type(sample_fn).__name__)
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            fail("config", "a TrainConfig", type(self.config).__name__)
        self.device = get_device(None if device is None else str(device))
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.config = self.config.replace(shards=self.config.resolved_shards(self.world_size))
        if self.config.shards:
            distributed.check_shards(self.config.shards, self.world_size)
            per_process = self.config.shards // self.world_size
            if self.config.accumulate not in (1, per_process):
                fail("accumulate", f"shards / world size = {self.config.shards} / {self.world_size} = {per_process} "
                                   "(the micro-batches each process computes per step), or 1", self.config.accumulate)
        self.memory_format = (torch.channels_last if self.config.memory_format == "channels_last"
                              else torch.contiguous_format)
        self.model = model.to(self.device)
        if self.memory_format == torch.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # 4-D weights only; others stay
        self.parallel_model = distributed.wrap_model(self.model, self.device)  # DDP: rank 0's weights everywhere
        self.ema_model = make_ema_model(self.model)
        self.loss_fn, self.make_batch, self.sample_fn = loss_fn, make_batch, sample_fn
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay)
        self.amp_dtype = autocast_dtype(self.config.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.train_model = torch.compile(self.parallel_model) if self.config.compile else self.parallel_model
        self.data_generator = torch.Generator().manual_seed(self.config.seed)
        self.noise_generator = torch.Generator().manual_seed(self.config.seed + 1)
        self.step = 0
        self.history: dict[str, list[float]] = {"step": [], "loss": [], "lr": [], "grad_norm": []}
        self.seconds = 0.0  # wall time spent inside fit()
        self._loader, self._loader_step = None, None  # the workers' batches, and the step they serve next

    @property
    def micro_batches(self) -> int:
        """Micro-batches (shards) this process computes per optimiser step: S/W, or 1 with the carried streams."""
        return self.config.shards // self.world_size if self.config.shards else 1

    # --- the schedule of the learning rate and the EMA -----------------------------------------

    def lr_at(self, step: int) -> float:
        """Linear warm-up: lr·(step + 1)/warmup_steps for step < warmup_steps, then lr."""
        warmup = self.config.warmup_steps
        return self.config.lr * min(1.0, (step + 1) / warmup) if warmup else self.config.lr

    # --- training ------------------------------------------------------------------------------

    def fit(self, steps: int | None = None) -> "Trainer":
        """Train from the current step to ``config.steps`` (or for ``steps`` more steps); returns self."""
        target = self.config.steps if steps is None else self.step + check_positive_int("steps", steps)
        cfg = self.config
        bar = tqdm(total=max(target - self.step, 0), disable=not (cfg.progress and self.rank == 0), desc="training",
                   leave=False)
        start = time.perf_counter()
        self.model.train()
        try:
            while self.step < target:
                self.train_step()
                bar.update(1)
                if cfg.log_every and self.step % cfg.log_every == 0:
                    last_lr = self.history["lr"][-1]
                    bar.set_postfix(loss=f"{self.recent_loss(cfg.log_every):.4f}", lr=f"{last_lr:.1e}")
                if (cfg.sample_every and self.sample_fn is not None and self.step % cfg.sample_every == 0
                        and self.rank == 0):
                    self._run_sample_fn()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save(cfg.checkpoint_path)
            if cfg.checkpoint_path is not None and cfg.checkpoint_every and self.step % cfg.checkpoint_every:
                self.save(cfg.checkpoint_path)
        finally:
            bar.close()
            self.seconds += time.perf_counter() - start
        return self

    def train_step(self) -> float:
        """One optimiser step: its micro-batches (loss under autocast, backward each), clip, AdamW, EMA.

        Each micro-batch's loss is scaled by 1/(micro-batches per process) and DDP averages over
        the processes, so the gradient is that of the mean loss over the whole batch, in any world
        size and with any accumulation. Returns the loss averaged the same way.
        """
        step, count = self.step, self.micro_batches
        lr = self._set_lr(step)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for index, (raw, noise_generator, global_seed) in enumerate(self._micro_batches(step)):
            last = index == count - 1
            no_sync = self.parallel_model.no_sync() if self.world_size > 1 and not last else nullcontext()
            with no_sync:  # DDP all-reduces the gradients in the backward pass of the last micro-batch only
                if global_seed is not None:
                    torch.manual_seed(global_seed)  # dropout, if any: the same in every layout
                with self._autocast():
                    loss = self._loss(_to_device(raw, self.device, self.memory_format), step, noise_generator)
                self.scaler.scale(loss / count if count > 1 else loss).backward()
            total += loss.item()
        loss_value = distributed.mean_over_processes(total / count, self.device)  # the same on every rank
        _check_loss(loss_value, step, lr)
        return self._finish_step(step, lr, loss_value)

    def _micro_batches(self, step: int):
        """(batch, noise generator, global seed or None) of each micro-batch this process computes at ``step``.

        Carried streams: one batch from the trainer's two generators. Per-step streams: this
        process's shards, each from its (seed, step, shard) generators, drawn here or by the workers.
        """
        cfg = self.config
        if not cfg.shards:
            yield self.make_batch(self.data_generator), self.noise_generator, None
            return
        mine = distributed.shards_of_rank(cfg.shards, self.rank, self.world_size)
        batches = self._worker_batches(step, mine) if cfg.workers else None
        for index, shard in enumerate(mine):
            raw = batches[index] if batches is not None else draw_shard(self.make_batch, cfg.seed, step, shard)
            yield (raw, distributed.shard_generator("noise", cfg.seed, step, shard),
                   distributed.stream_seed("global", cfg.seed, step, shard))

    def _worker_batches(self, step: int, shards) -> list:
        """The batches of ``shards`` at ``step`` from the worker processes (started at ``step`` when needed)."""
        if self._loader is None or self._loader_step != step:  # first use, or the step moved (resume)
            self.close()
            pin = self.device.type == "cuda"
            self._loader = iter(step_loader(self.make_batch, self.config.seed, shards, step, self.config.workers, pin))
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

    def _set_lr(self, step: int) -> float:
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _finish_step(self, step: int, lr: float, loss_value: float) -> float:
        """After backward: unscale, clip, check, AdamW step, EMA, history. Returns the loss."""
        cfg = self.config
        self.scaler.unscale_(self.optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf))
        if not self.scaler.is_enabled() and not math.isfinite(grad_norm):
            raise FloatingPointError(
                f"gradient norm is {grad_norm} at step {step} (loss {loss_value:.4g}); training stopped "
                f"before updating the weights. Lower the lr (now {lr:.3g}) or set grad_clip."
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        update_ema(self.ema_model, self.model, ema_decay_at(step, cfg.ema_decay, cfg.ema_warmup))
        self.step += 1
        for key, value in (("step", self.step), ("loss", loss_value), ("lr", lr), ("grad_norm", grad_norm)):
            self.history[key].append(value)
        return loss_value

    def _loss(self, batch, step: int, generator: torch.Generator) -> torch.Tensor:
        """loss_fn on the batch; a batch the model cannot take is reported as make_batch's fault."""
        try:
            loss = self.loss_fn(self.train_model, batch, generator)
        except (ValueError, TypeError, RuntimeError) as error:
            if isinstance(error, torch.OutOfMemoryError) or (self.world_size > 1
                                                             and distributed.is_communication_error(error)):
                raise
            raise ValueError(
                f"make_batch: expected a batch that loss_fn and the model accept, got {_describe(batch)}; "
                f"at step {step} loss_fn raised {type(error).__name__}: {error}"
            ) from error
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            got = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
            fail("loss_fn", "to return a scalar tensor (0-dim)", got)
        if not loss.requires_grad:
            fail("loss_fn", "a loss that depends on the model's parameters (requires_grad)", "a constant tensor")
        return loss

    def _run_sample_fn(self) -> None:
        self.model.eval()
        try:
            with torch.no_grad():
                self.sample_fn(self, self.step)
        finally:
            self.model.train()

    def recent_loss(self, n: int = 100) -> float:
        """Mean training loss over the last ``n`` steps (nan before the first step)."""
        losses = self.history["loss"][-n:]
        return sum(losses) / len(losses) if losses else math.nan

    @property
    def steps_per_second(self) -> float:
        """Training speed over all fit() calls of this trainer."""
        return len(self.history["loss"]) / self.seconds if self.seconds else math.nan

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit; only tensors, dicts, lists, str, int, float."""
        return {
            "format_version": FORMAT_VERSION,
            "signature": model_signature(self.model),
            "model": self.model.state_dict(),
            "ema_model": self.ema_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "generators": {"data": self.data_generator.get_state(), "noise": self.noise_generator.get_state()},
            "global_rng": capture_global_rng(),
            "history": {key: list(values) for key, values in self.history.items()},
            "config": asdict(self.config),
            "world_size": self.world_size,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically (temp file in the same folder, fsync, os.replace); rank 0 only."""
        if path is None:
            fail("path", "a file path", None)
        if self.rank == 0:
            atomic_save(self.state_dict(), path)

    def resume(self, path: str | os.PathLike, state: dict | None = None) -> "Trainer":
        """Restore model, EMA, optimiser, step, generators, RNGs and history from ``path``; returns self.

        A checkpoint of another model, of another data-parallel layout (world size / shards), or a
        truncated/corrupted file, raises ``ValueError`` naming the path before anything is changed.
        state: the file as the caller already read it (``read_checkpoint(path)``): not read again.
        """
        state = read_checkpoint(path) if state is None else state
        check_signature(path, state["signature"], self.model)
        distributed.check_checkpoint_layout(path, state, self.world_size, self.config.shards)
        self.model.load_state_dict(state["model"])
        self.ema_model.load_state_dict(state["ema_model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.data_generator.set_state(state["generators"]["data"])
        self.noise_generator.set_state(state["generators"]["noise"])
        restore_global_rng(state["global_rng"])
        self.history = {key: list(values) for key, values in state["history"].items()}
        return self

    @classmethod
    def load(cls, path: str | os.PathLike, model: nn.Module, loss_fn: LossFn, make_batch: MakeBatch,
             device: torch.device | str | None = None, sample_fn: SampleFn | None = None,
             **config_changes) -> "Trainer":
        """A trainer with the checkpoint's config (changed by ``config_changes``), resumed from ``path``."""
        state = read_checkpoint(path)
        config = TrainConfig(**state["config"]).replace(**config_changes)
        return cls(model, loss_fn, make_batch, config, device, sample_fn).resume(path, state)


def _check_loss(loss_value: float, step: int, lr: float) -> None:
    if not math.isfinite(loss_value):
        raise FloatingPointError(
            f"loss is {loss_value} at step {step}; training stopped before updating the weights. "
            f"Lower the lr (now {lr:.3g}), set grad_clip, or check make_batch's data for NaN/inf."
        )


def _to_device(batch, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format):
    """Move a tensor, or a tuple/list/dict of them, to ``device``; 4-D floating tensors take ``memory_format``."""
    if isinstance(batch, torch.Tensor):
        if memory_format != torch.contiguous_format and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=True, memory_format=memory_format)
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(item, device, memory_format) for item in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, device, memory_format) for key, value in batch.items()}
    fail("make_batch", "a tensor, or a tuple/list/dict of tensors", type(batch).__name__)


def _describe(batch) -> str:
    """'tensor of shape (256, 3)', or the same for each item of a tuple/list/dict."""
    if isinstance(batch, torch.Tensor):
        return f"a tensor of shape {tuple(batch.shape)}"
    if isinstance(batch, (tuple, list)):
        return f"a {type(batch).__name__} of (" + ", ".join(_describe(b) for b in batch) + ")"
    if isinstance(batch, dict):
        return "a dict of (" + ", ".join(f"{k}: {_describe(v)}" for k, v in batch.items()) + ")"
    return type(batch).__name__


def random_rows(data: torch.Tensor, batch_size: int) -> MakeBatch:
    """``make_batch`` drawing ``batch_size`` rows of ``data`` (N, ...) with replacement: -> (batch_size, ...)."""
    check_tensor("data", data)
    if data.dim() < 1 or data.shape[0] == 0:
        fail("data", "a non-empty tensor (N, ...)", f"shape {tuple(data.shape)}")
    check_positive_int("batch_size", batch_size)

    def make_batch(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, data.shape[0], (batch_size,), generator=generator, device=generator.device)
        return data[index.to(data.device)]

    return make_batch
