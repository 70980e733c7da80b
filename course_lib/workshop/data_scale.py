"""What the amount of data does: train the same model on 100 or on 10,000 distinct clips (notebook 12, seed §8.2).

The recipes draw a *fresh* clip for every example, an endless data set. Real video is finite, and a
diffusion model trained long on a few clips learns to reproduce them (memorisation; Somepalli et al.
2023, Carlini et al. 2023). This module makes a finite data set and measures the effect:

* :func:`render_clip_set` -- n distinct clips of a video task, rendered once in chunks of
  :data:`CHUNK` (chunk c from seed (seed, c), so the first 100 clips of a 10,000-clip set are the
  100-clip set) and stored as bytes: 10,000 clips of 4 x 3 x 16 x 16 take 31 MB;
* :func:`clip_set_batches` -- the trainer's ``make_batch`` drawing from that set;
* :func:`train_on_clip_set` -- a recipe's model and loss trained on it (saved and reloaded when a
  path is given);
* :func:`fixed_noise_loss` -- the diffusion loss on a set of clips with the same t and ε for any
  set of the same size, so training clips and unseen clips are compared fairly;
* :func:`nearest_clip` / :func:`nearest_clip_distance` -- how far each clip is from its nearest
  neighbour in a set, and which one it is (samples that copy training clips are much closer to
  them than unseen real clips are).
"""
from __future__ import annotations

import os

import torch

from course_lib._validation import check_choice, check_positive_int, check_rank, check_tensor, fail
from course_lib.training import Trainer

CHUNK = 100  # clips rendered per call, each chunk from its own seed
VIDEO_TASKS = ("video-shapes", "video-digits")


def render_clip_set(task: str, n: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    """n distinct clips of ``task`` as bytes: (n, T, C, size, size) uint8, 0..255 for -1..1.

    Chunk c (clips c·CHUNK ... c·CHUNK + CHUNK − 1) is rendered from a generator seeded with
    ``seed * 1_000_003 + c``: sets of the same seed are nested, different seeds give other clips.
    """
    from course_lib.data.video import bouncing_shapes, moving_digits

    check_choice("task", task, VIDEO_TASKS)
    check_positive_int("n", n)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        fail("seed", "an int >= 0", seed)
    maker = bouncing_shapes if task == "video-shapes" else moving_digits
    chunks = []
    for c in range((n + CHUNK - 1) // CHUNK):
        g = torch.Generator().manual_seed(seed * 1_000_003 + c)
        video = maker(CHUNK, frames=frames, size=size, generator=g).video  # (CHUNK, T, C, H, W) in [-1, 1]
        chunks.append(to_bytes(video))
    return torch.cat(chunks)[:n]


def to_bytes(video: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 0..255 (rounding error at most 1/255)."""
    check_tensor("video", video)
    return ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_bytes(clips: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 in [-1, 1]."""
    check_tensor("clips", clips)
    if clips.dtype != torch.uint8:
        fail("clips", "a uint8 tensor (from render_clip_set)", f"dtype {clips.dtype}")
    return clips.float() / 127.5 - 1


def _check_clip_bytes(name: str, clips: object) -> torch.Tensor:
    check_tensor(name, clips)
    check_rank(name, clips, 5, "(N, T, C, H, W)")
    if clips.dtype != torch.uint8 or clips.shape[0] == 0:
        fail(name, "a non-empty uint8 clip set (N, T, C, H, W) from render_clip_set",
             f"dtype {clips.dtype}, shape {tuple(clips.shape)}")
    return clips


def clip_set_batches(clips: torch.Tensor, batch_size: int):
    """``make_batch(generator)`` drawing ``batch_size`` clips of the set (with replacement) -> (B, T, C, H, W) floats."""
    _check_clip_bytes("clips", clips)
    check_positive_int("batch_size", batch_size)

    def make_batch(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(0, clips.shape[0], (batch_size,), generator=generator)
        return from_bytes(clips[index])

    return make_batch


def train_on_clip_set(recipe, clips: torch.Tensor, steps: int, path: str | os.PathLike | None = None) -> Trainer:
    """``recipe``'s model, loss and training settings, trained for ``steps`` steps on the clip set.

    The clips must have the recipe's example shape (T, C, H, W). With ``path`` the trainer is
    saved there and, if the file exists (same model, same steps), loaded instead of retrained
    (:func:`course_lib.workshop.zoo.train`, the recipe's model as :class:`~course_lib.workshop.zoo.Parts`
    drawing from the set); name the file after the set (its size and seed) -- the file does not
    record the clips.
    """
    from course_lib.workshop import zoo
    from course_lib.workshop.recipes import Recipe

    if not isinstance(recipe, Recipe):
        fail("recipe", "a Recipe (see get_recipe)", type(recipe).__name__)
    if recipe.num_classes is not None:  # its loss needs (clips, labels); a clip set holds no labels
        fail("recipe", "an unconditional video recipe such as get_recipe('video-shapes') (a clip set has no labels)",
             recipe.task)
    _check_clip_bytes("clips", clips)
    if tuple(clips.shape[1:]) != tuple(recipe.example_shape):
        fail("clips", f"clips of the recipe's shape (N, {', '.join(map(str, recipe.example_shape))})",
             f"shape {tuple(clips.shape)}")
    check_positive_int("steps", steps)
    parts = zoo.Parts(f"{recipe.model_name}-clipset", recipe.build_model, recipe.loss_fn,
                      described={"clip_set": list(clips.shape)}, make_batch=clip_set_batches(clips, recipe.batch_size))
    return zoo.train(recipe, path, steps, progress=False, report_memory=False, parts=parts)


@torch.no_grad()
def fixed_noise_loss(model, loss_fn, clips: torch.Tensor, seed: int = 0, batch_size: int = 32) -> float:
    """Mean of ``loss_fn(model, batch, generator)`` over the clip set, in batches of ``batch_size``.

    Batch i uses a generator seeded with ``seed + i``: two sets of the same size get the same
    timesteps and noise, so their losses differ only because of the clips (common random numbers).
    """
    _check_clip_bytes("clips", clips)
    check_positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        total = 0.0
        for i, start in enumerate(range(0, clips.shape[0], batch_size)):
            batch = from_bytes(clips[start:start + batch_size]).to(device)
            total += loss_fn(model, batch, torch.Generator().manual_seed(seed + i)).item() * batch.shape[0]
    finally:
        model.train(was_training)
    return total / clips.shape[0]


def nearest_clip(video: torch.Tensor, clips: torch.Tensor, chunk: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """For each clip of ``video`` (N, T, C, H, W) in [-1, 1]: its nearest clip of the set -> (distance, index).

    distance: the RMS pixel distance (N,); index: which clip of the set (N,).

    clips: the set as bytes (M, T, C, H, W) (:func:`render_clip_set`), compared ``chunk`` at a
    time. The distance is 0 for an exact copy of a clip of the set.
    """
    check_tensor("video", video)
    check_rank("video", video, 5, "(N, T, C, H, W)")
    _check_clip_bytes("clips", clips)
    if video.shape[1:] != clips.shape[1:]:
        fail("video", f"clips of the set's shape (N, {', '.join(map(str, clips.shape[1:]))})",
             f"shape {tuple(video.shape)}")
    check_positive_int("chunk", chunk)
    flat = video.detach().float().cpu().flatten(1)  # (N, D)
    best = torch.full((flat.shape[0],), float("inf"))
    index = torch.zeros(flat.shape[0], dtype=torch.long)
    for start in range(0, clips.shape[0], chunk):
        distances, nearest = torch.cdist(flat, from_bytes(clips[start:start + chunk]).flatten(1)).min(dim=1)
        closer = distances < best
        best, index = torch.where(closer, distances, best), torch.where(closer, nearest + start, index)
    return best / flat.shape[1] ** 0.5, index


def nearest_clip_distance(video: torch.Tensor, clips: torch.Tensor, chunk: int = 2000) -> torch.Tensor:
    """(N,) RMS pixel distance of each clip of ``video`` to its nearest clip of the set (see :func:`nearest_clip`)."""
    return nearest_clip(video, clips, chunk)[0]
