"""The one training loop of the course: every model (MLP, U-Net, video model) trains through it.

The trainer owns data, optimiser and EMA; the model knows nothing of noise and the loss owns the
diffusion (:mod:`course_lib.diffusion.objectives`). All randomness goes through two CPU generators
the trainer owns, the *data stream* ``make_batch(generator) -> batch`` (which examples) and the
*noise stream* ``loss_fn(model, batch, generator) -> scalar`` (which t, which ε), and both are
saved in checkpoints, so N steps straight and N/2 + save + resume + N/2 give bit-identical weights
on CPU. Splitting a step into micro-batches, over processes (torchrun) or worker processes changes
who computes it, not what it is: :mod:`course_lib.training.parallel`.
"""
from __future__ import annotations

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
from course_lib._validation import check_choice, check_float_range, check_positive_int, check_tensor, fail, replace_fields
from course_lib.config import Preset, autocast_dtype, get_device
from course_lib.training.checkpoint import (
    FORMAT_VERSION,
    capture_global_rng,
    check_signature,
    model_signature,
    read_checkpoint,
    restore_global_rng,
)
from course_lib.training.distributed import is_communication_error
from course_lib.training.ema import ema_decay_at, make_ema_model, update_ema
from course_lib.training.parallel import MEMORY_FORMATS, MakeBatch, MicroBatches, check_checkpoint_layout

LossFn = Callable[[nn.Module, Any, torch.Generator], torch.Tensor]
SampleFn = Callable[["Trainer", int], None]


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained. Periodic actions count optimiser steps; ``0`` switches one off."""

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
    # how a step is split (course_lib.training.parallel): S shards over W processes, S/W micro-batches each
    shards: int = 0  # 0: see resolved_shards(); S > 0: S per-step shards per batch, S / W per process
    accumulate: int = 1  # micro-batches per optimiser step and process (gradient accumulation)
    workers: int = 0  # DataLoader worker processes drawing the batches (0: drawn in this process)
    memory_format: str = "contiguous"  # "channels_last": 4-D weights and inputs stored NHWC

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
        return replace_fields(self, **changes)

    @classmethod
    def from_preset(cls, preset: Preset, steps: int, **changes) -> "TrainConfig":
        """Precision and compile from the preset, no progress bar in the ``smoke`` preset; ``changes`` win."""
        fields = {"precision": preset.precision, "compile": preset.compile, "progress": preset.name != "smoke"}
        return cls(steps=steps, **{**fields, **changes})


class Trainer:
    """AdamW + linear warm-up + gradient clipping + EMA + autocast, with exact resume.

    model: the network (moved to ``device``); ``ema_model`` is its averaged copy (sample from it).
    loss_fn(model, batch, generator) -> scalar tensor; make_batch(generator) -> a tensor, or a
    tuple/list/dict of tensors (moved to ``device`` by the trainer), e.g. :func:`random_rows`.
    When a step has several micro-batches (``accumulate``, torchrun, ``workers``) make_batch
    returns one micro-batch: ``config.accumulate`` is then their number per process.
    sample_fn(trainer, step), if given, runs every ``config.sample_every`` steps (eval mode, no grad).
    ``history`` holds per step: "step" (1-based count after the step), "loss", "lr", "grad_norm".
    Under torchrun only rank 0 shows progress, runs sample_fn and writes checkpoints. Call
    :meth:`close` (or let the trainer be collected) to stop worker processes.
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
        config = config if config is not None else TrainConfig()
        if not isinstance(config, TrainConfig):
            fail("config", "a TrainConfig", type(config).__name__)
        self.device = get_device(None if device is None else str(device))
        self.batches = MicroBatches(config, self.device)  # which examples each micro-batch draws, on which process
        self.rank, self.world_size = self.batches.rank, self.batches.world_size
        self.config = config.replace(shards=self.batches.shards, accumulate=self.batches.count)
        self.model = model
        self.parallel_model = self.batches.place(model)  # on the device; in DDP under torchrun
        self.ema_model = make_ema_model(self.model)
        self.loss_fn, self.make_batch, self.sample_fn = loss_fn, make_batch, sample_fn
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.amp_dtype = autocast_dtype(config.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.train_model = torch.compile(self.parallel_model) if config.compile else self.parallel_model
        self.data_generator = torch.Generator().manual_seed(config.seed)
        self.noise_generator = torch.Generator().manual_seed(config.seed + 1)
        self.step = 0
        self.history: dict[str, list[float]] = {"step": [], "loss": [], "lr": [], "grad_norm": []}
        self.seconds = 0.0  # wall time spent inside fit()

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
                    bar.set_postfix(loss=f"{self.recent_loss(cfg.log_every):.4f}", lr=f"{self.history['lr'][-1]:.1e}")
                if cfg.sample_every and self.sample_fn is not None and self.step % cfg.sample_every == 0:
                    self._run_sample_fn()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save(cfg.checkpoint_path)
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every:
                self.save(cfg.checkpoint_path)
        finally:
            bar.close()
            self.seconds += time.perf_counter() - start
        return self

    def train_step(self) -> float:
        """One optimiser step: draw the batch, loss (autocast), backward, clip, AdamW, EMA, history.

        With several micro-batches each loss is divided by their number and DDP averages over the
        processes, so the gradient is that of the mean loss over the whole batch in any layout.
        Returns the loss, averaged the same way.
        """
        step, cfg = self.step, self.config
        lr = self._set_lr(step)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for batch, noise, sync in self.batches(step, self.make_batch, self.data_generator, self.noise_generator):
            with sync:  # DDP all-reduces the gradients in the backward pass of the last micro-batch only
                with self._autocast():
                    loss = self._loss(batch, step, noise)
                self.scaler.scale(loss / cfg.accumulate).backward()
            total += loss.item()
        loss = self.batches.mean(total / cfg.accumulate)  # the same on every process
        _check_finite("loss", loss, step, lr)
        self.scaler.unscale_(self.optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or math.inf))
        if not self.scaler.is_enabled():  # with fp16 the grad scaler skips such steps itself
            _check_finite("gradient norm", grad_norm, step, lr, f" (loss {loss:.4g})")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        update_ema(self.ema_model, self.model, ema_decay_at(step, cfg.ema_decay, cfg.ema_warmup))
        self.step += 1
        for key, value in (("step", self.step), ("loss", loss), ("lr", lr), ("grad_norm", grad_norm)):
            self.history[key].append(value)
        return loss

    def lr_at(self, step: int) -> float:
        """Linear warm-up: lr·(step + 1)/warmup_steps for step < warmup_steps, then lr."""
        warmup = self.config.warmup_steps
        return self.config.lr * min(1.0, (step + 1) / warmup) if warmup else self.config.lr

    def _set_lr(self, step: int) -> float:
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _loss(self, batch, step: int, generator: torch.Generator) -> torch.Tensor:
        """loss_fn on the batch; a batch the model cannot take is reported as make_batch's fault."""
        try:
            loss = self.loss_fn(self.train_model, batch, generator)
        except (ValueError, TypeError, RuntimeError) as error:
            if isinstance(error, torch.OutOfMemoryError) or (self.world_size > 1 and is_communication_error(error)):
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
        if self.rank != 0:
            return
        self.model.eval()
        try:
            with torch.no_grad():
                self.sample_fn(self, self.step)
        finally:
            self.model.train()

    def close(self) -> None:
        """Stop the DataLoader's worker processes, if any (they start again at the next step that needs them)."""
        self.batches.close()

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
        check_checkpoint_layout(path, state, self.world_size, self.config.shards)
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


def _check_finite(name: str, value: float, step: int, lr: float, note: str = "") -> None:
    if not math.isfinite(value):
        raise FloatingPointError(
            f"{name} is {value} at step {step}{note}; training stopped before updating the weights. "
            f"Lower the lr (now {lr:.3g}), set grad_clip, or check make_batch's data for NaN/inf."
        )


def _describe(batch) -> str:
    """'tensor of shape (256, 3)', or the same for each item of a tuple/list/dict."""
    if isinstance(batch, torch.Tensor):
        return f"a tensor of shape {tuple(batch.shape)}"
    if isinstance(batch, (tuple, list)):
        return f"a {type(batch).__name__} of (" + ", ".join(_describe(b) for b in batch) + ")"
    if isinstance(batch, dict):
        return "a dict of (" + ", ".join(f"{k}: {_describe(v)}" for k, v in batch.items()) + ")"
    return type(batch).__name__
