"""Shipped checkpoints: trained models that come with the course, so that a learner sees good samples at once.

    python -m course_lib train --task video-shapes --preset cpu --checkpoint runs/shapes.pt   # the project's own command
    python -m course_lib export --checkpoint runs/shapes.pt   # -> course_lib/workshop/pretrained/<name>.pt and .json

An export keeps what sampling needs and nothing else: the recipe and its key, the **EMA weights
stored as float16** (half the bytes of float32; float16 keeps 11 significant bits, so a weight above
6e-5 in size moves by at most 2⁻¹¹ of itself and a smaller one by less than 6e-8; the optimiser
state, raw weights and RNG streams are dropped), the loss history and the training record (command,
wall-clock time, machine, torch). Its file name is the recipe's name (:func:`export_stem`), which
carries :meth:`Recipe.key`, so :func:`course_lib.workshop.zoo.train_or_load` finds it for exactly
the recipe that made it and loads it when the learner's own folder has no checkpoint;
``retrain=True`` trains the model afresh instead. An export cannot be resumed: it has no optimiser.

A network trained on a recipe's data that is not the recipe's own model (:class:`course_lib.workshop.zoo.Parts`,
e.g. lesson 08's frame-conditional U-Net) is exported the same way, its name stored as ``parts``:
``train_or_load(recipe, parts=...)`` then finds it under ``<task>-<parts>-<preset>-<key>.pt``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from course_lib._validation import fail
from course_lib.training import Trainer, read_checkpoint
from course_lib._files import CheckpointError, atomic_save, atomic_write_json
from course_lib.training.checkpoint import check_checkpoint_state, check_signature, load_file

SHIPPED_FOLDER = Path(__file__).resolve().parent / "pretrained"
EXPORT_FORMAT = "course_lib-export-1"
EXPORT_KEYS = ("format", "recipe", "recipe_key", "signature", "ema_model", "step", "target_steps", "history",
               "train_seconds")
STORED_DTYPE = torch.float16


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON record next to a checkpoint or an export: ``model.pt`` -> ``model.pt.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _stored(tensor: torch.Tensor) -> torch.Tensor:
    """Floating-point tensors as float16 (integer buffers as they are)."""
    return tensor.to(STORED_DTYPE) if tensor.is_floating_point() else tensor


def export_state(state: dict[str, Any]) -> dict[str, Any]:
    """The export of a training checkpoint's state (:func:`course_lib.workshop.zoo.save_checkpoint`'s): EMA weights in float16."""
    if "recipe" not in state or "recipe_key" not in state:
        raise CheckpointError("checkpoint: expected a checkpoint written by python -m course_lib train (with its "
                              "recipe stored), got 'a training checkpoint without a recipe'")
    return {
        "format": EXPORT_FORMAT,
        "recipe": state["recipe"],
        "recipe_key": state["recipe_key"],
        "signature": state["signature"],
        "ema_model": {name: _stored(value) for name, value in state["ema_model"].items()},
        "step": int(state["step"]),
        "target_steps": int(state.get("target_steps", state["step"])),
        "history": {name: list(values) for name, values in state["history"].items()},
        "train_seconds": float(state.get("train_seconds", 0.0)),
        **({"parts": state["parts"]} if state.get("parts") else {}),
    }


def export_stem(state: dict[str, Any]) -> str:
    """``<task>-<model or parts>-<preset>-<key>``: the name train_or_load looks for (the stored key, so a
    network trained on a recipe's data is named as :func:`course_lib.workshop.zoo.file_stem` names it)."""
    recipe, network = state["recipe"], state.get("parts") or state["recipe"]["model_name"]
    return f"{recipe['task']}-{network}-{recipe['preset']['name']}-{state['recipe_key']}"


def export_checkpoint(path: str | os.PathLike, out: str | os.PathLike | None = None,
                      folder: str | os.PathLike = SHIPPED_FOLDER, command: str | None = None) -> Path:
    """Write the export of the finished training checkpoint ``path`` atomically; returns its path.

    out: the file (default ``folder/<export_stem>.pt``, the name :func:`course_lib.workshop.zoo.train_or_load`
    looks for); ``out.json`` gets the training record with ``command`` (the export's) added. A
    checkpoint stopped before its target steps is refused: shipped under the finished
    recipe's name, it would pass for a model it is not.
    """
    path = Path(path)
    state = read_checkpoint(path)
    export = export_state(state)
    if export["step"] < export["target_steps"]:
        fail("checkpoint", f"a finished training run ({path} has {export['step']} of {export['target_steps']} steps; "
                           "finish it with python -m course_lib train ... --resume)", os.fspath(path))
    out = Path(folder) / f"{export_stem(export)}.pt" if out is None else Path(out)
    atomic_save(export, out)
    _write_record(path, out, command)
    return out


def _write_record(path: Path, out: Path, command: str | None) -> None:
    """``out.json``: the training record next to ``path`` (command, wall-clock time, machine) and how it was exported."""
    source = sidecar_path(path)
    record = json.loads(source.read_text()) if source.is_file() else {}
    record["export"] = {"from": path.name, "command": command, "format": EXPORT_FORMAT,
                        "weights": f"EMA only, {str(STORED_DTYPE).replace('torch.', '')}", "bytes": out.stat().st_size}
    atomic_write_json(record, sidecar_path(out))


def is_export(state: Any) -> bool:
    return isinstance(state, dict) and state.get("format") == EXPORT_FORMAT


def read_export(path: str | os.PathLike) -> dict[str, Any]:
    """An export's state, read with ``weights_only=True``; a missing, damaged or other file is a clear error."""
    return check_export_state(load_file(path), path)


def check_export_state(state: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``state`` (loaded from ``path``) if it is an export, else a ValueError naming what it is."""
    missing = [key for key in EXPORT_KEYS if key not in state] if is_export(state) else None
    if missing is None or missing:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path}: expected an exported checkpoint (format {EXPORT_FORMAT!r} with keys "
                         f"{list(EXPORT_KEYS)}), got {got!r}" + (f" missing {missing}" if missing else ""))
    return state


def read_any(path: str | os.PathLike) -> dict[str, Any]:
    """A training checkpoint's or an export's state (an export has ``format`` = EXPORT_FORMAT)."""
    state = load_file(path)  # read once, then recognised
    try:
        return check_checkpoint_state(state, path)
    except ValueError as training_error:
        try:
            return check_export_state(state, path)
        except ValueError:
            raise training_error from None


def trainer_from_export(recipe, path: str | os.PathLike, state: dict[str, Any],
                        device: torch.device | str | None = None, progress: bool = False,
                        network: tuple | None = None) -> Trainer:
    """A Trainer holding the export's EMA weights (in float32) as both ``model`` and ``ema_model``.

    network: (model, loss_fn, make_batch) when the export holds another network than the recipe's own
    (:func:`course_lib.workshop.zoo.network`). step, history and seconds are the training run's; the
    optimiser is fresh, so training on from here is a new run (an export is for sampling).
    """
    target = max(int(state["target_steps"]), int(state["step"]), 1)
    model, loss_fn, make_batch = network or (recipe.build_model(), recipe.loss_fn, recipe.make_batch)
    trainer = Trainer(model, loss_fn, make_batch, recipe.train_config(target, progress=progress), device)
    check_signature(path, state["signature"], trainer.model)
    weights = {name: value.float() if value.is_floating_point() else value for name, value in state["ema_model"].items()}
    trainer.model.load_state_dict(weights)
    trainer.ema_model.load_state_dict(weights)
    trainer.step = int(state["step"])
    trainer.history = {name: list(values) for name, values in state["history"].items()}
    trainer.seconds = float(state["train_seconds"])
    return trainer
