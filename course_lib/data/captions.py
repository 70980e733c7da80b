"""Captions for the synthetic clips, written from the parameters that drew them, and their tokens.

The generators know what each clip shows, so a caption is a sentence made from its ground truth:

    bouncing shapes:  "a red square moves left"      "a blue circle moves down and right and bounces off the wall"
    moving digits:    "the digit 7 drifts up"         "the digit 0 drifts down and left and bounces off the wall"

The direction is the compass bin of the object's velocity at frame 1 (8 bins of 45°, the bins
:data:`DIRECTION_WORDS` names in the order of the video judge's ``DIRECTIONS``: E, NE, N, …), the
velocity after the first step: an object that starts against a wall and leaves it at once moves the
way a viewer sees it go. "and bounces off the wall" is added when it hits a wall during the clip. :func:`captioned_shapes`
and :func:`captioned_digits` draw the heading from the 8 compass directions themselves, so every
caption is exactly true; :func:`write_captions` captions any one-object :class:`VideoBatch`.

**Tokens.** The vocabulary is fixed and small (:data:`VOCABULARY`, :data:`VOCAB_SIZE` words): a
caption is split into words (case and the punctuation ``. , ; : ! ?`` ignored) and each word becomes
its index. A word outside the vocabulary is an error that lists the unknown words: there is no
"unknown" token, because every caption of the course's data is in the vocabulary and a typo should
be seen, not silently encoded. :func:`tokenize` pads to a fixed length: ids (B, L) int64 with
PAD_ID after the words, and mask (B, L) bool, True on the real tokens (the keys cross-attention may
look at).

**The null caption** of classifier-free guidance (Ho & Salimans 2022) is one real token, NULL_ID,
then padding (:func:`null_tokens`): an empty row would leave attention nothing to attend to.
:func:`drop_captions` replaces captions by it with probability p during training.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from course_lib._validation import check_float_range, check_positive_int, check_rank, check_tensor, fail
from course_lib.data.video import PALETTE, PALETTE_NAMES, SHAPE_KINDS, VideoBatch, bouncing_shapes, moving_digits

# Bin k is the heading k·45° ± 22.5°, counter-clockwise from east (rows grow downwards: "up" is dy < 0).
DIRECTION_WORDS = ("right", "up and right", "up", "up and left", "left", "down and left", "down", "down and right")
BOUNCE_WORDS = "and bounces off the wall"
PAD, NULL = "<pad>", "<null>"
VOCABULARY = (PAD, NULL, "a", "the", *SHAPE_KINDS, *PALETTE_NAMES, "digit", *"0123456789", "moves", "drifts",
              "up", "down", "left", "right", "and", "bounces", "off", "wall")
VOCAB_SIZE = len(VOCABULARY)
PAD_ID, NULL_ID = VOCABULARY.index(PAD), VOCABULARY.index(NULL)
MAX_LEN = 16  # tokens per caption by default; the longest caption has 12 words
NONE = -1  # an attribute a caption does not state (the colour of a digit, the digit of a shape)
_WORD_ID = {word: i for i, word in enumerate(VOCABULARY)}
_PATTERN = re.compile(
    r"(?:a (?P<colour>\w+) (?P<shape>\w+) moves|the digit (?P<digit>\d) drifts) "
    r"(?P<direction>(?:up|down) and (?:left|right)|up|down|left|right)(?P<bounces> " + BOUNCE_WORDS + ")?")


@dataclass
class CaptionAttributes:
    """What a batch of captions states, one entry per clip, NONE where it does not say.

    shape (B,) int64 index into SHAPE_KINDS · colour (B,) int64 index into PALETTE · digit (B,)
    int64 0-9 · direction (B,) int64 compass bin 0-7 (DIRECTION_WORDS) · bounces (B,) bool.
    """

    shape: torch.Tensor
    colour: torch.Tensor
    digit: torch.Tensor
    direction: torch.Tensor
    bounces: torch.Tensor

    def __len__(self) -> int:
        return len(self.direction)


@dataclass
class CaptionedClips:
    """Clips, their captions and what the captions state: clips.video (B, T, C, H, W), captions B strings."""

    clips: VideoBatch
    captions: list[str]
    attributes: CaptionAttributes


# --- writing and reading captions -------------------------------------------------------------

def compass_direction(velocity: torch.Tensor) -> torch.Tensor:
    """Compass bin of a velocity (dy, dx): (..., 2) -> (...) int64 in 0..7, bin k = round(atan2(−dy, dx) / 45°) mod 8."""
    check_tensor("velocity", velocity)
    if velocity.dim() == 0 or velocity.shape[-1] != 2:
        fail("velocity", "a tensor (..., 2) of (dy, dx)", f"shape {tuple(velocity.shape)}")
    heading = torch.atan2(-velocity[..., 0], velocity[..., 1])
    return torch.remainder(torch.round(heading / (math.pi / 4)), len(DIRECTION_WORDS)).long()


def caption_text(attributes: CaptionAttributes) -> list[str]:
    """The sentence of each clip's attributes: "a red square moves left" or "the digit 7 drifts up"."""
    texts = []
    for i in range(len(attributes)):
        if attributes.digit[i] != NONE:
            subject = f"the digit {int(attributes.digit[i])} drifts"
        else:
            subject = f"a {PALETTE_NAMES[attributes.colour[i]]} {SHAPE_KINDS[attributes.shape[i]]} moves"
        bounce = f" {BOUNCE_WORDS}" if attributes.bounces[i] else ""
        texts.append(f"{subject} {DIRECTION_WORDS[attributes.direction[i]]}{bounce}")
    return texts


def clip_attributes(batch: VideoBatch) -> CaptionAttributes:
    """The attributes a caption states, read from a one-object batch's ground truth (B clips)."""
    if not isinstance(batch, VideoBatch):
        fail("batch", "a VideoBatch from bouncing_shapes or moving_digits", type(batch).__name__)
    if batch.labels.shape[1] != 1:
        fail("batch", "one object per clip (a caption describes one)", f"{batch.labels.shape[1]} objects")
    none = torch.full((len(batch),), NONE, dtype=torch.long)
    velocity = batch.velocities[:, :, 0]  # (B, T, 2)
    if velocity.shape[1] < 2:
        fail("batch", "clips of at least 2 frames (the direction is the velocity at frame 1)", f"{velocity.shape[1]} frame")
    bounces = (velocity != velocity[:, :1]).any(-1).any(-1)  # the velocity flips at a wall
    if batch.colors is None:  # moving digits
        return CaptionAttributes(shape=none, colour=none.clone(), digit=batch.labels[:, 0].long(),
                                 direction=compass_direction(velocity[:, 1]), bounces=bounces)
    colour = (batch.colors[:, 0, None, :] == PALETTE).all(-1).long().argmax(-1)  # (B,) index into PALETTE
    return CaptionAttributes(shape=batch.labels[:, 0].long(), colour=colour, digit=none,
                             direction=compass_direction(velocity[:, 1]), bounces=bounces)


def write_captions(batch: VideoBatch) -> list[str]:
    """One caption per clip of a one-object VideoBatch, from its ground truth."""
    return caption_text(clip_attributes(batch))


def _words(caption: str) -> list[str]:
    return re.sub(r"[.,;:!?]", " ", caption).lower().split()


def _check_captions(captions: object) -> list[str]:
    if isinstance(captions, str) or not isinstance(captions, Sequence) or not captions \
            or not all(isinstance(c, str) for c in captions):
        fail("captions", "a non-empty list of strings (one caption per clip)", captions)
    return list(captions)


def parse_captions(captions: Sequence[str]) -> CaptionAttributes:
    """What each caption states, the inverse of :func:`caption_text`: B strings -> CaptionAttributes."""
    captions = _check_captions(captions)
    rows = []
    for i, caption in enumerate(captions):
        m = _PATTERN.fullmatch(" ".join(_words(caption)))
        if m is None or (m["colour"] and (m["colour"] not in PALETTE_NAMES or m["shape"] not in SHAPE_KINDS)):
            fail(f"captions[{i}]", "'a <colour> <shape> moves <direction>' or 'the digit <d> drifts <direction>', "
                 "optionally followed by ' and bounces off the wall'", caption)
        rows.append((SHAPE_KINDS.index(m["shape"]) if m["shape"] else NONE,
                     PALETTE_NAMES.index(m["colour"]) if m["colour"] else NONE,
                     int(m["digit"]) if m["digit"] else NONE,
                     DIRECTION_WORDS.index(m["direction"]), m["bounces"] is not None))
    shape, colour, digit, direction, bounces = (torch.tensor(column) for column in zip(*rows))
    return CaptionAttributes(shape=shape, colour=colour, digit=digit, direction=direction, bounces=bounces)


# --- captioned data ---------------------------------------------------------------------------

def _check_speed(speed):
    if speed is not None and not (isinstance(speed, (tuple, list)) and len(speed) == 2 and 0 < speed[0] <= speed[1]):
        fail("speed", "a pair (low, high) of pixels per frame with 0 < low <= high (a caption names a direction)", speed)


def captioned_shapes(batch: int, frames: int = 16, size: int = 32, seed: int = 0,
                     generator: torch.Generator | None = None, **kwargs) -> CaptionedClips:
    """One bouncing shape per clip heading in one of the 8 compass directions, and its caption.

    -> CaptionedClips: clips.video (B, T, 3, size, size), B captions, their attributes.
    kwargs go to :func:`~course_lib.data.video.bouncing_shapes` (shape_size, speed).
    """
    _check_speed(kwargs.get("speed"))
    clips = bouncing_shapes(batch, frames, size, num_shapes=1, seed=seed, generator=generator,
                            headings=len(DIRECTION_WORDS), **kwargs)
    attributes = clip_attributes(clips)
    return CaptionedClips(clips=clips, captions=caption_text(attributes), attributes=attributes)


def captioned_digits(batch: int, frames: int = 16, size: int = 64, seed: int = 0,
                     generator: torch.Generator | None = None, **kwargs) -> CaptionedClips:
    """One moving digit per clip heading in one of the 8 compass directions, and its caption.

    -> CaptionedClips: clips.video (B, T, 1, size, size), B captions, their attributes.
    kwargs go to :func:`~course_lib.data.video.moving_digits` (digit_size, split, speed).
    """
    _check_speed(kwargs.get("speed"))
    clips = moving_digits(batch, frames, size, num_digits=1, seed=seed, generator=generator,
                          headings=len(DIRECTION_WORDS), **kwargs)
    attributes = clip_attributes(clips)
    return CaptionedClips(clips=clips, captions=caption_text(attributes), attributes=attributes)


# --- tokens -----------------------------------------------------------------------------------

def tokenize(captions: Sequence[str], max_len: int = MAX_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    """B captions -> ids (B, max_len) int64, mask (B, max_len) bool (True on real tokens, PAD_ID after).

    Every word must be in VOCABULARY (unknown words are an error that lists them); an empty caption
    or one of more than ``max_len`` words is an error too. The null caption is :func:`null_tokens`.
    """
    captions = _check_captions(captions)
    check_positive_int("max_len", max_len)
    ids = torch.full((len(captions), max_len), PAD_ID, dtype=torch.long)
    for i, caption in enumerate(captions):
        words = _words(caption)
        unknown = [w for w in words if w not in _WORD_ID or w in (PAD, NULL)]
        if unknown:
            fail(f"captions[{i}]", f"words of the course's vocabulary ({' '.join(VOCABULARY[2:])})",
                 f"{caption!r} with unknown words {unknown}")
        if not words:
            fail(f"captions[{i}]", "at least one word (for no caption use null_tokens or drop_captions)", caption)
        if len(words) > max_len:
            fail(f"captions[{i}]", f"at most max_len={max_len} words", f"{len(words)} words: {caption!r}")
        ids[i, : len(words)] = torch.tensor([_WORD_ID[w] for w in words])
    return ids, ids != PAD_ID


def null_tokens(batch: int, max_len: int = MAX_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    """The null caption ∅ for ``batch`` clips: ids (B, max_len) = NULL_ID then PAD_ID, mask True at position 0 only."""
    check_positive_int("batch", batch)
    check_positive_int("max_len", max_len)
    ids = torch.full((batch, max_len), PAD_ID, dtype=torch.long)
    ids[:, 0] = NULL_ID
    return ids, ids != PAD_ID


def check_tokens(ids: object, mask: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise a clear ValueError unless ids (B, L) are token ids and mask (B, L) bool has a real token per row."""
    check_rank("ids", check_tensor("ids", ids), 2, "(B, L)")
    check_rank("mask", check_tensor("mask", mask), 2, "(B, L)")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        fail("ids", "an integer tensor of token ids", f"dtype {ids.dtype}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= VOCAB_SIZE):
        fail("ids", f"token ids in [0, {VOCAB_SIZE - 1}] (VOCABULARY)", f"values in [{int(ids.min())}, {int(ids.max())}]")
    if mask.dtype != torch.bool:
        fail("mask", "a bool tensor (True on real tokens)", f"dtype {mask.dtype}")
    if mask.shape != ids.shape:
        fail("mask", f"the shape of ids {tuple(ids.shape)}", f"shape {tuple(mask.shape)}")
    if ids.numel() and not mask.any(1).all():
        fail("mask", "at least one real token per caption (the null caption is NULL_ID)",
             f"rows without one: {torch.nonzero(~mask.any(1)).flatten().tolist()}")
    return ids, mask


def drop_captions(ids: torch.Tensor, mask: torch.Tensor, p: float,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each caption by the null caption with probability ``p`` (caption dropout, Ho & Salimans 2022).

    ids, mask (B, L) -> new ids, mask (B, L). Training on both teaches one network ε(x_t, t, c) and
    ε(x_t, t, ∅), which classifier-free guidance mixes when sampling; typical p is 0.1-0.2. Draws one
    coin per caption, also when p is 0 or 1.
    """
    check_tokens(ids, mask)
    check_float_range("p", p, 0.0, 1.0)
    coin = torch.rand(ids.shape[0], generator=generator, device=generator.device if generator is not None else "cpu")
    drop = (coin < p).to(ids.device)[:, None]  # (B, 1)
    null_ids, null_mask = null_tokens(ids.shape[0], ids.shape[1])
    return torch.where(drop, null_ids.to(ids.device), ids), torch.where(drop, null_mask.to(mask.device), mask)


def detokenize(ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """The words of each row's real tokens: ids, mask (B, L) -> B strings ("" for the null caption)."""
    check_tokens(ids, mask)
    return [" ".join(VOCABULARY[i] for i in row[keep].tolist() if i != NULL_ID) for row, keep in zip(ids, mask)]
