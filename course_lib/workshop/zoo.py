"""Train or load: a notebook asks for a trained model and gets one at once if it was trained before.

    trainer = train_or_load(get_recipe("digits"))     # loads checkpoints/digits-unet2d-cpu-<key>.pt
    clips = recipe.sample(trainer.ema_model, 8)        # or trains it first, then saves it

The file name carries :meth:`Recipe.key` (a hash of everything that changes the weights), so a
checkpoint is only ever loaded for the recipe that made it. A checkpoint is the trainer's state
(see :mod:`course_lib.training.checkpoint`: written atomically, read with ``weights_only=True``,
model signature checked) plus the recipe (:meth:`Recipe.info`), so ``python -m course_lib sample
--checkpoint FILE`` rebuilds the model without being told what it is. Next to it, ``FILE.json``
records the command, wall-clock time, steps, torch version and machine.

A recipe trains its own model by default. :class:`Parts` trains another network and loss on the
recipe's data and training settings, in a file of its own (notebook 08's frame-conditional U-Net,
:func:`course_lib.workshop.predictor.frame_conditional_parts`; a finite clip set,
:func:`course_lib.workshop.data_scale.train_on_clip_set`): ``train_or_load(recipe, parts=...)``.

Training is resumable: :func:`train` saves every ``save_every`` seconds, when interrupted
(Ctrl-C) and at the end, and continues from the file it finds. A file that cannot be read or
belongs to another recipe is an error -- it is never silently trained over.

Under torchrun (several processes; see :mod:`course_lib.training.distributed`) :func:`train` keeps
the recipe's batch as the global batch, split into one shard per process, and the same lr; only
rank 0 draws the progress bar and writes the checkpoint and its record, every rank resumes from it.

The GPU path's switches (:mod:`course_lib.training.parallel`) keep the recipe's batch too:
``accumulate`` A splits it into W·A micro-batches (the same maths, 1/A of the activation memory),
``workers`` draws them in worker processes (the same tensors), ``memory_format`` stores 4-D tensors
channels-last. With progress on, :func:`train` prints the memory estimate of
:mod:`course_lib.training.memory` before the first step, and a warning when it exceeds free memory.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

import course_lib
from course_lib._validation import check_float_range, check_positive_int, fail
from course_lib.config import PRESETS
from course_lib._files import atomic_save, atomic_write_json, exclusive_lock
from course_lib.training import TrainConfig, Trainer, distributed, model_signature, parallel, read_checkpoint
from course_lib.training.memory import report_memory as print_memory_estimate
from course_lib.workshop import shipped
from course_lib.workshop.recipes import Recipe, get_recipe
from course_lib.workshop.shipped import sidecar_path

DEFAULT_FOLDER = "checkpoints"


@dataclass(frozen=True)
class Parts:
    """Another network and loss trained on a recipe's data, with the recipe's training settings.

    name: the network in the file name, ``<task>-<name>-<preset>-<key>.pt``. build_model() -> a
    fresh network, its initial weights drawn from a fixed seed (the global RNG left as it was).
    loss_fn(model, batch, generator): the Trainer's loss. steps: the default training steps (None:
    the recipe's). described: what else changes the weights, hashed into the key together with the
    recipe's key and the network's signature. make_batch: the data (None: the recipe's).
    command: the Python call that trains it, with ``{recipe}`` and ``{steps}`` to fill in (for the
    JSON record next to the checkpoint).
    """

    name: str
    build_model: Callable[[], nn.Module]
    loss_fn: Callable
    steps: int | None = None
    described: dict[str, Any] = field(default_factory=dict)
    make_batch: Callable | None = None
    command: str | None = None

    @cached_property
    def _signature(self) -> dict[str, Any]:
        return model_signature(self.build_model())

    def key(self, recipe: Recipe, steps: int) -> str:
        """12 hex digits: a hash of ``described``, the recipe's key at ``steps`` and the network's signature."""
        described = {**self.described, "recipe": recipe.key(steps), "signature": self._signature}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:12]


def _check_parts(parts: Parts | None) -> None:
    if parts is not None and not isinstance(parts, Parts):
        fail("parts", "None (the recipe's own model) or a course_lib.workshop.zoo.Parts", type(parts).__name__)


def default_steps(recipe: Recipe, parts: Parts | None = None, steps: int | None = None) -> int:
    """``steps`` if given (checked), else the parts' default steps, else the recipe's."""
    if steps is not None:
        return check_positive_int("steps", steps)
    return parts.steps if parts is not None and parts.steps is not None else recipe.steps


def file_key(recipe: Recipe, steps: int, parts: Parts | None = None) -> str:
    """The key in the file name: :meth:`Recipe.key`, or :meth:`Parts.key` for another network."""
    return recipe.key(steps) if parts is None else parts.key(recipe, steps)


def file_stem(recipe: Recipe, steps: int | None = None, parts: Parts | None = None) -> str:
    """``<task>-<model>-<preset>-<key>``: the checkpoint's file name without ``.pt``."""
    if parts is None:
        return recipe.name(steps)
    steps = default_steps(recipe, parts, steps)
    return f"{recipe.task}-{parts.name}-{recipe.preset.name}-{parts.key(recipe, steps)}"


def checkpoint_path(recipe: Recipe, steps: int | None = None, folder: str | os.PathLike = DEFAULT_FOLDER,
                    parts: Parts | None = None) -> Path:
    """``folder/<task>-<model>-<preset>-<key>.pt``: where :func:`train_or_load` keeps ``recipe`` (or
    ``parts`` trained on it) trained for ``steps``."""
    _check_parts(parts)
    return Path(folder) / f"{file_stem(recipe, steps, parts)}.pt"


def is_trained(recipe: Recipe, steps: int | None = None, folder: str | os.PathLike = DEFAULT_FOLDER,
               parts: Parts | None = None, shipped_folder: str | os.PathLike | None = shipped.SHIPPED_FOLDER) -> bool:
    """True when :func:`train_or_load` starts from a file: ``folder`` has the checkpoint (finished, or
    cut short and then resumed), or the course ships the model (``shipped_folder``)."""
    if checkpoint_path(recipe, steps, folder, parts).exists():
        return True
    return shipped_folder is not None and checkpoint_path(recipe, steps, shipped_folder, parts).is_file()


# --- reading checkpoints -------------------------------------------------------------------------

def read_recipe(path: str | os.PathLike) -> tuple[Recipe, dict[str, Any]]:
    """(the recipe stored in a checkpoint, the checkpoint's state dict).

    A missing, truncated or foreign file (one without a stored recipe) raises a clear error naming it.
    An exported checkpoint (:mod:`course_lib.workshop.shipped`) is read too.
    """
    state = shipped.read_any(path)
    if state.get("parts"):
        raise ValueError(f"checkpoint {os.fspath(path)}: expected a checkpoint of a recipe's own model, got one of the "
                         f"{state['parts']!r} network trained on a recipe's data: load it with the function that "
                         "trained it (e.g. train_or_load_frame_conditional)")
    return stored_recipe(path, state), state


def stored_recipe(path: str | os.PathLike, state: dict[str, Any]) -> Recipe:
    """The recipe stored in ``state``, read from ``path`` (named in the error when there is none or it is foreign)."""
    if "recipe" not in state:
        raise ValueError(f"checkpoint {os.fspath(path)}: expected a checkpoint written by course_lib.workshop.zoo "
                         "(python -m course_lib train, or train_or_load) with its recipe stored, "
                         "got a training checkpoint without one")
    try:
        return Recipe.from_info(state["recipe"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"checkpoint {os.fspath(path)}: its stored recipe cannot be rebuilt by this version "
                         f"of course_lib ({error})") from error


def _recipe_differences(stored: dict[str, Any], recipe: Recipe) -> list[str]:
    """Fields (steps aside) in which a stored recipe differs from ``recipe`` so that it trains other weights.

    None when both have the same key at the same steps: a preset field that this task never reads
    (say the image width, for a video checkpoint) may change between course versions.
    """
    try:
        if Recipe.from_info(stored).key(recipe.steps) == recipe.key(recipe.steps):
            return []
    except (ValueError, TypeError, KeyError):  # a recipe this version cannot rebuild differs somewhere below
        pass
    current, differences = recipe.info(), []
    for name, value in current.items():
        if name == "steps" or stored.get(name) == value:
            continue
        if isinstance(value, dict) and isinstance(stored.get(name), dict):  # the preset: name its fields
            differences += [f"{name}.{field}: {stored[name].get(field)!r} in the file, {item!r} here"
                            for field, item in value.items() if stored[name].get(field) != item]
        else:
            differences.append(f"{name}: {stored.get(name)!r} in the file, {value!r} here")
    return differences


def _check_same_model(path: Path, state: dict[str, Any], recipe: Recipe, parts: Parts | None = None) -> None:
    """A clear error unless ``state`` holds ``recipe``'s own model (``parts`` None) or ``parts`` trained on it.

    A checkpoint of parts written without its recipe (a plain Trainer checkpoint, as the course
    wrote them before) is accepted: its file name carries the key, and resuming checks the network.
    """
    what = f"recipe {recipe.name()}" if parts is None else f"the {parts.name!r} network on recipe {recipe.name()}"
    if "recipe" not in state:
        if parts is not None:
            return
        raise ValueError(f"checkpoint {path}: expected a checkpoint of {what} (with its recipe "
                         "stored), got a training checkpoint without one. Move it away or choose another path.")
    stored = state.get("parts")
    if stored != (None if parts is None else parts.name):
        got = f"the {stored!r} network" if stored else "the recipe's own model"
        raise ValueError(f"checkpoint {path}: expected a checkpoint of {what}, got one of {got}. "
                         "Move it away or choose another path.")
    if parts is not None and "recipe_key" in state:  # the same network trained otherwise (say, another context_noise)
        key = file_key(recipe, max(int(state.get("target_steps", state["step"])), 1), parts)
        if state["recipe_key"] != key:
            raise ValueError(f"checkpoint {path}: expected a checkpoint of {what} with key {key}, got key "
                             f"{state['recipe_key']!r} (trained with other settings). Move it away or choose "
                             "another path.")
    differences = _recipe_differences(state["recipe"], recipe)
    if differences:
        raise ValueError(f"checkpoint {path}: expected a checkpoint of {what}, got one trained "
                         f"for another recipe ({'; '.join(differences[:3])}). Move it away or choose another path.")


def load_checkpoint(path: str | os.PathLike, device: torch.device | str | None = None,
                    progress: bool | None = None) -> tuple[Recipe, Trainer]:
    """(recipe, trainer) restored from a checkpoint written by this module; sample from ``trainer.ema_model``."""
    recipe, state = read_recipe(path)
    return recipe, _trainer_from(recipe, path, state, device, progress)


def load(recipe: Recipe, path: str | os.PathLike, device: torch.device | str | None = None,
         progress: bool | None = None, parts: Parts | None = None) -> Trainer:
    """The trainer of ``recipe``'s model (or of ``parts`` trained on it) stored at ``path``.

    Unlike :func:`load_checkpoint` the caller names what the file must hold; another recipe,
    network or an unreadable file is a clear ``ValueError`` naming the path.
    """
    if not isinstance(recipe, Recipe):
        fail("recipe", "a Recipe (see get_recipe)", type(recipe).__name__)
    _check_parts(parts)
    path = Path(path)
    state = shipped.read_any(path)
    _check_same_model(path, state, recipe, parts)
    return _trainer_from(recipe, path, state, device, progress, parts=parts)


def _trainer_from(recipe: Recipe, path, state: dict[str, Any], device, progress: bool | None,
                  shards: int | None = None, parts: Parts | None = None, **switches) -> Trainer:
    """A trainer for ``recipe`` (or ``parts``) resumed from ``path`` (steps: the file's target, at least its step).

    shards: the data-parallel layout to resume with (default: the file's, so that loading to sample always works).
    switches: TrainConfig fields of the GPU path (accumulate, workers, memory_format).
    An export (:mod:`course_lib.workshop.shipped`) gives a trainer of its EMA weights, for sampling.
    """
    if shipped.is_export(state):
        return shipped.trainer_from_export(recipe, path, state, device, _progress(recipe, progress),
                                           network=None if parts is None else network(recipe, parts))
    target = max(int(state.get("target_steps", state["step"])), int(state["step"]), 1)
    if shards is None:
        shards = _saved_shards(state)
    trainer = _new_trainer(recipe, target, shards, device, _progress(recipe, progress), parts, **switches)
    trainer.resume(path, state)
    trainer.seconds = float(state.get("train_seconds", 0.0))
    return trainer


def _new_trainer(recipe: Recipe, steps: int, shards: int, device, progress: bool, parts: Parts | None = None,
                 **switches) -> Trainer:
    """A fresh trainer; with ``shards`` S > 0 its make_batch draws one shard (batch_size / S examples)."""
    model, loss_fn, make_batch = network(recipe, parts)
    if shards:
        if parts is not None and parts.make_batch is not None:
            fail("shards", f"0 for the {parts.name!r} network: it draws its own batches (parts.make_batch), "
                           "which cannot be split into shards", shards)
        per_shard = parallel.split_batch_size(recipe.batch_size, shards, distributed.world_size())
        make_batch = recipe.replace(batch_size=per_shard).make_batch
    return Trainer(model, loss_fn, make_batch, recipe.train_config(steps, progress=progress, shards=shards, **switches),
                   device)


def network(recipe: Recipe, parts: Parts | None = None) -> tuple[nn.Module, Callable, Callable]:
    """(a fresh model, its loss, its batches): the recipe's own, or ``parts`` trained on the recipe's data."""
    if parts is None:
        return recipe.build_model(), recipe.loss_fn, recipe.make_batch
    return parts.build_model(), parts.loss_fn, parts.make_batch or recipe.make_batch


def _saved_shards(state: dict[str, Any]) -> int:
    saved = state.get("config") if isinstance(state.get("config"), dict) else {}
    return int(saved.get("shards", 0))


def default_shards(shards: int | None = None, accumulate: int = 1, workers: int = 0, world: int | None = None) -> int:
    """``shards`` if given, else W·accumulate when a step has several micro-batches (W processes under
    torchrun, or accumulate > 1) or workers draw them, else 0 (one process's carried streams).

    world: the number of processes W (default: this process group's).
    """
    if shards is not None:
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 0:
            fail("shards", "an int >= 0 (0: one process's streams) or None (the world size)", shards)
        return shards
    world = distributed.world_size() if world is None else world
    return TrainConfig(steps=1, accumulate=accumulate, workers=workers).resolved_shards(world)


def resume_shards(path: str | os.PathLike, state: dict[str, Any], shards: int | None = None, accumulate: int = 1,
                  workers: int = 0, world: int | None = None) -> int:
    """The shards to continue the checkpoint ``state`` (read from ``path``) with.

    A launch of the file's world size that asks for no layout (``shards`` None, ``accumulate`` 1)
    continues the file's own streams, whatever accumulation it was trained with; otherwise
    :func:`default_shards`, which the trainer then checks against the file (another layout is
    refused with both named). The carried streams of one process (shards 0) can only be drawn in
    that process: ``workers`` > 0 is then refused, naming workers.
    """
    world = distributed.world_size() if world is None else world
    wanted = default_shards(shards, accumulate, workers, world)
    if shards is not None or accumulate > 1 or world != int(state.get("world_size", 1)):
        return wanted
    saved = _saved_shards(state)
    if saved == 0 and workers > 0:
        fail("workers", f"0 to resume {os.fspath(path)}: it was trained on the carried data stream of one process "
                        "(shards 0), which worker processes cannot draw; resume it with workers 0", workers)
    return saved


# --- training ---------------------------------------------------------------------------------------

def _progress(recipe: Recipe, progress: bool | None) -> bool:
    return recipe.preset.name != "smoke" if progress is None else bool(progress)


def _machine(device: torch.device) -> dict[str, Any]:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"platform": platform.platform(), "processor": platform.machine(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device), "gpu": gpu}


def save_checkpoint(trainer: Trainer, recipe: Recipe, path: str | os.PathLike, target_steps: int,
                    command: str | None = None, parts: Parts | None = None) -> Path:
    """Write the trainer's state + the recipe atomically to ``path``, and the JSON record next to it (rank 0 only).

    parts: the network the trainer holds when it is not the recipe's own (its name is stored too).
    """
    path = Path(path)
    if trainer.rank != 0:
        return path
    key = file_key(recipe, target_steps, parts)
    state = trainer.state_dict()
    state.update(recipe=recipe.info(), recipe_key=key, target_steps=int(target_steps),
                 train_seconds=float(trainer.seconds))
    if parts is not None:
        state["parts"] = parts.name
    atomic_save(state, path)
    record = {
        "command": command or training_call(recipe, target_steps, parts),
        "recipe": recipe.info(),
        **({} if parts is None else {"parts": {"name": parts.name, **parts.described}}),
        "key": key,
        "steps": trainer.step,
        "target_steps": int(target_steps),
        "finished": trainer.step >= target_steps,
        "final_loss": trainer.recent_loss(50),
        "wall_clock_seconds": round(trainer.seconds, 2),
        "world_size": trainer.world_size,
        "shards": trainer.config.shards,
        "accumulate": trainer.config.accumulate,
        "workers": trainer.config.workers,
        "memory_format": trainer.config.memory_format,
        "torch": torch.__version__,
        "course_lib": course_lib.__version__,
        "machine": _machine(trainer.device),
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if not math.isfinite(record["final_loss"]):
        record["final_loss"] = None
    atomic_write_json(record, sidecar_path(path))
    return path


def training_call(recipe: Recipe, steps: int, parts: Parts | None = None) -> str:
    """The Python call that trains this recipe (or ``parts`` on it) again."""
    if parts is not None and parts.command:
        return parts.command.format(recipe=_recipe_expression(recipe), steps=steps)
    extra = "" if parts is None else f", parts=<the {parts.name!r} network>"
    return f"train_or_load({_recipe_expression(recipe)}, steps={steps}{extra})"


def _recipe_expression(recipe: Recipe) -> str:
    """``get_recipe(...)`` giving ``recipe``: fields that differ from the defaults as overrides."""
    defaults = get_recipe(recipe.task, recipe.preset, recipe.model_name).info()
    changes = {name: value for name, value in recipe.info().items()
               if name not in ("format", "preset", "model_config", "task", "model_name", "steps")
               and value != defaults[name]}
    changes = {("schedule" if k == "schedule_name" else k): v for k, v in changes.items()}
    args = "".join(f", {k}={v!r}" for k, v in changes.items())
    return f"get_recipe({recipe.task!r}, {_preset_expression(recipe.preset)}, {recipe.model_name!r}{args})"


def _preset_expression(preset) -> str:
    """Python that gives ``preset``: its name, or ``get_preset(name).replace(...)`` with the fields changed
    from the named preset (e.g. a preset given ``precision='bf16'``)."""
    named = PRESETS.get(preset.name)
    if named is None:
        return repr(preset)
    changes = {f.name: getattr(preset, f.name) for f in dataclasses.fields(preset)
               if getattr(preset, f.name) != getattr(named, f.name)}
    if not changes:
        return repr(preset.name)
    return f"get_preset({preset.name!r}).replace(" + ", ".join(f"{k}={v!r}" for k, v in changes.items()) + ")"


def train(
    recipe: Recipe,
    path: str | os.PathLike | None,
    steps: int | None = None,
    resume: bool = True,
    minutes: float | None = None,
    progress: bool | None = None,
    device: torch.device | str | None = None,
    save_every: float = 60.0,
    command: str | None = None,
    shards: int | None = None,
    accumulate: int = 1,
    workers: int = 0,
    memory_format: str = "contiguous",
    report_memory: bool | None = None,
    state: dict[str, Any] | None = None,
    cpu_minutes: float | None = None,
    parts: Parts | None = None,
) -> Trainer:
    """Train ``recipe`` to ``steps`` (default :func:`default_steps`), checkpointing to ``path``; returns the trainer.

    resume: continue from ``path`` if it exists (it must hold the same recipe; another step count
    is fine), else start afresh and overwrite it. minutes: a wall-clock budget -- no step starts
    once it is spent (``trainer.step < steps`` then; call again to continue).
    The checkpoint is written every ``save_every`` seconds of wall-clock time (``save_every`` is always
    seconds; ``TrainConfig.checkpoint_every`` counts optimiser steps) and at the end. Ctrl-C or SIGTERM
    lets the running step finish, saves, and raises :class:`TrainingStopped`: resuming from that file
    is exactly the uninterrupted run.
    shards: split each batch into this many shards (default: see :func:`default_shards` and, on
    resume, :func:`resume_shards`); under torchrun call it in every process, inside ``distributed_session``.
    accumulate: micro-batches per step and process (gradient accumulation; the batch per step stays
    ``recipe.batch_size``). workers: DataLoader worker processes drawing the batches (0 in notebooks).
    memory_format: "contiguous" or "channels_last". report_memory: print the memory estimate (and a
    warning when it exceeds the free memory) before the first step; default: when progress is shown.
    state: the file at ``path`` as the caller already read it (e.g. to check it first): not read again.
    """
    if not isinstance(recipe, Recipe):
        fail("recipe", "a Recipe (see get_recipe)", type(recipe).__name__)
    _check_parts(parts)
    steps = default_steps(recipe, parts, steps)
    budgets = {name: check_float_range(name, value, 0.0, 1e6)
               for name, value in (("minutes", minutes), ("cpu_minutes", cpu_minutes)) if value is not None}
    check_float_range("save_every", save_every, 0.0, math.inf)
    path = None if path is None else Path(path)
    switches = {"accumulate": accumulate, "workers": workers, "memory_format": memory_format}
    world = distributed.world_size()
    asked, shards = shards, default_shards(shards, accumulate, workers)
    if accumulate > 1 and recipe.batch_size % (world * accumulate):
        fail("accumulate", f"a number that splits the batch of {recipe.batch_size} examples into {world} process(es) "
                           f"x accumulate equal micro-batches", accumulate)
    show = _progress(recipe, progress) and distributed.is_main_process()
    if resume and path is not None and path.exists():
        state = shipped.read_any(path) if state is None else state
        if shipped.is_export(state):
            raise ValueError(f"checkpoint {path}: expected a training checkpoint to resume, got an exported one "
                             "(EMA weights only, no optimiser state): train into another file, or pass resume=False")
        _check_same_model(path, state, recipe, parts)
        shards = resume_shards(path, state, asked, accumulate, workers)
        trainer = _trainer_from(recipe, path, state, device, False, shards, parts, **switches)
    else:
        trainer = _new_trainer(recipe, steps, shards, device, False, parts, **switches)
        if parts is None and recipe.model_name == "dit":
            _attach_autoencoder(trainer, recipe, DEFAULT_FOLDER if path is None else path.parent, show,
                                command or training_call(recipe, steps))
    trainer.config = trainer.config.replace(steps=steps, progress=False)  # our own bar, below
    starts = distributed.gather_ints(trainer.step, trainer.device)
    if len(set(starts)) > 1:
        raise ValueError(f"checkpoint {path}: expected every process to resume from the same file, got start steps "
                         f"{starts} (by rank); keep checkpoints on a disk that every machine shares")
    if (show if report_memory is None else report_memory) and trainer.rank == 0:
        print_memory_estimate(trainer, say=lambda line: print(line, flush=True))  # before the first step
    if show and trainer.step < steps and (line := expected_time(recipe, steps, parts, trainer.step)):
        print(line, flush=True)

    def save() -> None:
        if path is not None:
            save_checkpoint(trainer, recipe, path, steps, command, parts)

    def spent() -> bool:  # rank 0's clocks decide for every process
        used = {"minutes": (time.perf_counter() - start) / 60, "cpu_minutes": (time.process_time() - cpu_start) / 60}
        return distributed.agree(any(used[name] >= budget for name, budget in budgets.items()), trainer.device)

    start = last_save = time.perf_counter()
    cpu_start = time.process_time()
    bar = tqdm(total=steps, initial=min(trainer.step, steps), disable=not show,
               desc=f"training {file_stem(recipe, steps, parts)}", unit="step", dynamic_ncols=True)
    stop = StopRequest()
    try:
        with stop.on_signals():
            while trainer.step < steps:
                if (budgets and spent()) or distributed.agree(stop.signum is not None, trainer.device):
                    break
                trainer.fit(steps=1)
                bar.update(1)
                if trainer.step % 10 == 0 or trainer.step == steps:
                    bar.set_postfix(loss=f"{trainer.recent_loss(50):.4f}")
                if time.perf_counter() - last_save >= save_every:
                    save()
                    last_save = time.perf_counter()
    except RuntimeError as error:
        if trainer.world_size > 1 and distributed.is_communication_error(error):
            # a collective failed (a peer crashed): it fails before the optimiser step, so the
            # trainer still holds its last finished step, which rank 0 keeps for a resume
            save()
        raise
    finally:
        bar.close()
        trainer.close()  # stops the DataLoader's workers, if any
    save()
    distributed.barrier(trainer.device)  # every process returns once rank 0 has written the file
    if stop.signum is not None:
        raise TrainingStopped(stop.signum)
    return trainer


def expected_time(recipe: Recipe, steps: int, parts: Parts | None = None, start: int = 0) -> str | None:
    """How long training ``recipe`` (or ``parts``) from step ``start`` to ``steps`` took the course's own run,
    from the shipped file's training record: a line to print before training, or None without a record."""
    record_path = sidecar_path(checkpoint_path(recipe, steps, shipped.SHIPPED_FOLDER, parts))
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        seconds, trained = float(record["wall_clock_seconds"]), int(record["steps"])
        machine = record["machine"]
        where = machine.get("gpu") or f"{machine['torch_threads']} thread(s) of a {machine['cpu_count']}-core CPU"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if trained <= 0 or seconds <= 0:
        return None
    left = seconds / trained * (steps - start)
    took = f"{left / 60:.0f} min" if left >= 60 else f"{left:.0f} s"
    return (f"{steps - start} steps to train: the course's own run of this model took about {took} for them on "
            f"{where} ({record_path.name}); the bar shows your pace")


def _attach_autoencoder(trainer: Trainer, recipe: Recipe, folder: Path, progress: bool, command: str) -> None:
    """Put the trained autoencoder of a ``dit`` recipe into a fresh trainer's model and EMA model.

    The autoencoder is trained or loaded first, like any recipe (:func:`train_or_load`, same folder;
    when trained here, its record names ``command``, the transformer's, which asked for it); its EMA
    weights -- the running latent std, hence the scale factor, included -- are then frozen inside
    the :class:`~course_lib.models.autoencoder.LatentDenoiser`, and saved with it.
    """
    autoencoder_recipe = recipe.autoencoder_recipe()
    path = checkpoint_path(autoencoder_recipe, folder=folder)
    if not path.exists() and not checkpoint_path(autoencoder_recipe, folder=shipped.SHIPPED_FOLDER).is_file():
        with training_lock(path):  # lessons 15 and 16 share it
            if not path.exists():
                train(autoencoder_recipe, path, progress=progress, device=trainer.device,
                      command=f"{command} (its autoencoder, trained first)")
    autoencoder = train_or_load(autoencoder_recipe, folder=folder, progress=progress, device=trainer.device).ema_model
    for model in (trainer.model, trainer.ema_model):
        model.autoencoder.load_state_dict(autoencoder.state_dict())


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on a signal (``signum``: SIGINT for Ctrl-C, SIGTERM) after finishing its step and saving."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequest:
    """A stop asked for by SIGINT or SIGTERM while training: the signal only sets ``signum``, so the
    running step ends, the checkpoint is saved at that step boundary (exactly what a resume needs) and
    training stops. A second Ctrl-C stops at once, without saving: the file keeps its last save.
    Handlers are set only from the main thread, and the previous ones come back afterwards."""

    def __init__(self):
        self.signum: int | None = None

    def _request(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    @contextlib.contextmanager
    def on_signals(self):
        names = [name for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)]
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {name: signal.signal(getattr(signal, name), self._request) for name in names}
        try:
            yield self
        finally:
            for name, handler in previous.items():
                signal.signal(getattr(signal, name), handler)


def _load_shipped(recipe: Recipe, path: Path, steps: int, device, parts: Parts | None = None) -> Trainer:
    """The trainer of a shipped export of ``recipe`` (or ``parts`` on it; its key checked), with one line
    saying where it came from."""
    state = shipped.read_export(path)
    _check_same_model(path, state, recipe, parts)
    key = file_key(recipe, steps, parts)
    if state["recipe_key"] != key:
        raise ValueError(f"checkpoint {path}: expected recipe key {key}, got {state['recipe_key']!r}")
    trainer = shipped.trainer_from_export(recipe, path, state, device,
                                          network=None if parts is None else network(recipe, parts))
    print(f"loaded the course's trained {file_stem(recipe, steps, parts)} ({trainer.step} steps, "
          f"{trainer.seconds / 60:.0f} min "
          f"of training; the command is in {path.name}.json); retrain=True trains it here", flush=True)
    return trainer


def train_or_load(
    recipe: Recipe,
    steps: int | None = None,
    folder: str | os.PathLike = DEFAULT_FOLDER,
    retrain: bool = False,
    progress: bool | None = None,
    device: torch.device | str | None = None,
    shipped_folder: str | os.PathLike | None = shipped.SHIPPED_FOLDER,
    parts: Parts | None = None,
) -> Trainer:
    """The trainer of ``recipe`` trained for ``steps``: loaded from ``folder`` if there, else trained and saved.

    The file is ``folder/<task>-<model>-<preset>-<key>.pt`` (:func:`checkpoint_path`). A file cut
    short by an interruption is resumed; ``retrain=True`` trains from scratch and replaces it. A file
    that cannot be read or holds another recipe raises ``ValueError``; it is never overwritten.
    When ``folder`` has no file, the course's shipped export of the same recipe and steps
    (``shipped_folder``, :mod:`course_lib.workshop.shipped`; None: never) is loaded instead, with a line that
    says so. parts: another network and loss on the recipe's data (:class:`Parts`; its default
    steps, its own file, its own shipped export). When another process is training the same file
    (two lessons run side by side), this one waits for it, saying so, then loads its file (with
    ``retrain=True``: trains it again); the lock is the hidden ``.NAME.lock`` beside it
    (:func:`training_lock`). Sample from ``trainer.ema_model``.
    """
    if not isinstance(recipe, Recipe):
        fail("recipe", "a Recipe (see get_recipe)", type(recipe).__name__)
    _check_parts(parts)
    steps = default_steps(recipe, parts, steps)
    path = checkpoint_path(recipe, steps, folder, parts)
    shipped_path = None if shipped_folder is None else checkpoint_path(recipe, steps, shipped_folder, parts)
    trained = None if retrain else _trained(recipe, steps, path, shipped_path, device, progress, parts)
    if trained is not None:
        return trained
    with training_lock(path):
        trained = None if retrain else _trained(recipe, steps, path, shipped_path, device, progress, parts)
        if trained is not None:
            return trained
        return train(recipe, path, steps, resume=not retrain, progress=progress, device=device, parts=parts)


def training_lock(path: Path):
    """The lock to hold while training into ``path``: one process trains it; one that asks meanwhile (two
    lessons run side by side) waits, saying so, then finds the file. The processes of one distributed
    run train together: they never wait on each other's lock."""
    if distributed.world_size() > 1:
        return contextlib.nullcontext()
    return exclusive_lock(path, waiting=f"waiting: another process is training {path.name} ...")


def _trained(recipe: Recipe, steps: int, path: Path, shipped_path: Path | None, device, progress: bool | None,
             parts: Parts | None) -> Trainer | None:
    """The trainer of ``path`` when it holds all ``steps``, else of the shipped export; None: train (or resume)."""
    if path.exists():
        state = read_checkpoint(path)
        _check_same_model(path, state, recipe, parts)
        key = file_key(recipe, steps, parts)
        if state.get("recipe_key", key if parts is not None else None) != key:
            raise ValueError(f"checkpoint {path}: expected recipe key {key}, got "
                             f"{state.get('recipe_key')!r}: the file was renamed or made by another version. "
                             "Move it away, or pass retrain=True.")
        if int(state["step"]) >= steps:
            return _trainer_from(recipe, path, state, device, progress, parts=parts)
    elif shipped_path is not None and shipped_path.is_file():
        return _load_shipped(recipe, shipped_path, steps, device, parts)
    return None
