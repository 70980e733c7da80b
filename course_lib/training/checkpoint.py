"""Checkpoints: written atomically, read with ``weights_only=True``, refused when they do not fit.

A checkpoint is a plain dict of tensors, dicts, lists, str, int, float (nothing that needs
unpickling code), so ``torch.load(path, weights_only=True)`` can read it safely. It carries a
model *signature* (class name + every state-dict entry's shape) so that loading it into another
architecture fails with a message saying what differs, before anything is overwritten.

Every file written by :func:`course_lib._files.atomic_save` also ends with a *checksum* of its bytes, verified by
:func:`load_file`: a bit flipped on disk or in a copy is an error, not a silent NaN. Files written
before it carry a checksum of their tensors (checked too), or, the oldest, none (they load
unverified). Weights holding NaN or inf are refused on load.
"""
from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn

from course_lib._files import CheckpointError, read_saved

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "signature", "model", "ema_model", "optimizer", "step")
WEIGHT_KEYS = ("model", "ema_model", "state_dict")  # the entries holding a network's weights


# --- model signature -------------------------------------------------------------------------------

def model_signature(model: nn.Module) -> dict[str, Any]:
    """{"class": class name, "shapes": {state-dict name: [sizes]}}: what a checkpoint must match."""
    shapes = {name: list(value.shape) for name, value in model.state_dict().items()}
    return {"class": type(model).__name__, "shapes": shapes}


def signature_differences(saved: dict[str, Any], current: dict[str, Any], limit: int = 4) -> list[str]:
    """Human-readable differences between two signatures; an empty list means they match."""
    problems = []
    if saved["class"] != current["class"]:
        problems.append(f"class {saved['class']} in the checkpoint, {current['class']} here")
    old, new = saved["shapes"], current["shapes"]
    missing = [k for k in new if k not in old]
    unexpected = [k for k in old if k not in new]
    resized = [f"{k} {tuple(old[k])} vs {tuple(new[k])}" for k in new if k in old and list(old[k]) != list(new[k])]
    for label, names in (("missing from the checkpoint", missing), ("only in the checkpoint", unexpected),
                         ("shape differs (checkpoint vs here)", resized)):
        if names:
            more = f" and {len(names) - limit} more" if len(names) > limit else ""
            problems.append(f"{label}: {', '.join(names[:limit])}{more}")
    return problems


def check_signature(path: str | os.PathLike, saved: dict[str, Any], model: nn.Module) -> None:
    """Raise ``ValueError`` naming ``path`` and what differs if ``model`` does not fit the checkpoint."""
    problems = signature_differences(saved, model_signature(model))
    if problems:
        raise ValueError(
            f"checkpoint {os.fspath(path)}: saved from a different model; " + "; ".join(problems)
            + ". Build the model with the same arguments as when it was saved."
        )


# --- finite weights -------------------------------------------------------------------------------

def check_finite_weights(state: Any, path: str | os.PathLike) -> None:
    """Raise ``ValueError`` naming ``path`` if a network's weights in ``state`` hold NaN or inf."""
    if not isinstance(state, dict):
        return
    named = [(f"{key}.{name}", value) for key in WEIGHT_KEYS if isinstance(state.get(key), dict)
             for name, value in state[key].items() if isinstance(value, torch.Tensor) and value.is_floating_point()]
    if not named:
        return
    sums = torch.stack([value.float().sum() for _, value in named])  # NaN/inf anywhere -> not finite
    suspects = [named[i] for i in (~torch.isfinite(sums)).nonzero().flatten().tolist()]
    bad = [name for name, value in suspects if not torch.isfinite(value).all()]  # a finite sum can overflow
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(f"checkpoint {os.fspath(path)}: weights hold NaN or inf values ({', '.join(bad[:3])}{more}); "
                         "the run diverged before it was saved, or the file is damaged. Train again (a lower "
                         "learning rate helps) or use an earlier checkpoint.")


# --- safe read ------------------------------------------------------------------------------------

def load_file(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, checksum verified (:func:`course_lib._files.read_saved`);
    a missing, truncated or corrupted file is a clear error, and the weights (entries ``model``,
    ``ema_model``, ``state_dict``) must be finite."""
    state = read_saved(path)
    check_finite_weights(state, path)
    return state


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing, truncated or foreign file is a clear error."""
    return check_checkpoint_state(load_file(path), path)


def check_checkpoint_state(state: Any, path: str | os.PathLike) -> dict[str, Any]:
    """``state`` (loaded from ``path``) if it is a training checkpoint of this format, else a ValueError."""
    path = os.fspath(path)
    if not isinstance(state, dict) or any(key not in state for key in REQUIRED_KEYS):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path}: expected a course_lib training checkpoint with keys "
                         f"{list(REQUIRED_KEYS)}, got {got}")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: expected format_version {FORMAT_VERSION}, got {state['format_version']}")
    return state


def load_weights(model: nn.Module, path: str | os.PathLike, ema: bool = True) -> nn.Module:
    """Load the EMA weights (``ema=True``) or the raw weights of a training checkpoint into ``model``.

    For notebooks that only need a trained network. The model must have the signature it was saved
    with; it is put in eval mode and returned.
    """
    state = read_checkpoint(path)
    check_signature(path, state["signature"], model)
    model.load_state_dict(state["ema_model" if ema else "model"])
    return model.eval()


# --- global RNG states as tensors and plain numbers (weights_only-safe) --------------------------

def capture_global_rng() -> dict[str, Any]:
    """The torch (CPU and CUDA), NumPy and Python RNG states, stored as tensors, ints and floats."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_global_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_global_rng`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))
