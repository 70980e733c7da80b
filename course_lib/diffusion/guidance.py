"""Classifier-free guidance (Ho & Salimans 2022): one network, asked with and without its condition.

    out = out(x_t, ∅) + w · (out(x_t, c) − out(x_t, ∅))        (their eq. 6, with w = 1 + their w)

w = 0 is the unconditional model, w = 1 the plain conditional one, w > 1 follows the condition more
strongly (sharper, less diverse). The condition may be a class label (:func:`guided_denoiser`,
lessons 04 and 07), a caption (:func:`caption_guided_denoiser`, lesson 16) or the known past
frames of a clip (:func:`~course_lib.diffusion.conditioning.conditioned_on`, lesson 08). The
network learns both answers from label (or caption) dropout in training
(:func:`~course_lib.diffusion.objectives.drop_labels`, :func:`~course_lib.data.captions.drop_captions`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_lib._validation import check_rank, fail


def guide(conditional: torch.Tensor, unconditional: torch.Tensor, weight: float) -> torch.Tensor:
    """out_∅ + w·(out_c − out_∅): the guided prediction from the two answers (any shape, the same for both)."""
    return unconditional + weight * (conditional - unconditional)


def check_guidance_scale(guidance_scale: float) -> float:
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) \
            or not 0 <= guidance_scale < float("inf"):
        fail("guidance_scale", "a finite number >= 0 (0: unconditional, 1: conditional)", guidance_scale)
    return guidance_scale


def guided_denoiser(model: nn.Module, y: torch.Tensor, guidance_scale: float
                    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``model_fn(x_t, t)`` for the samplers that guides a class-conditional ``model`` towards labels ``y``.

    model: called as model(x_t, t, labels), with ``model.num_classes`` = K its null label (any of the
    course's denoisers built with num_classes). y: (B,) labels in [0, K − 1] (the null label is
    allowed too). Both answers come from one forward pass on a doubled batch.
    """
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        fail("model", "a class-conditional model (built with num_classes=K)", type(model).__name__)
    check_rank("y", y, 1, "(B,)")
    check_guidance_scale(guidance_scale)

    def labels_then_null(device: torch.device) -> tuple[tuple, dict]:
        labels = y.to(device)
        return (torch.cat([labels, torch.full_like(labels, num_classes)]),), {}

    return _guided_in_one_pass(model, guidance_scale, y.shape[0], "one image per label in y", labels_then_null)


def caption_guided_denoiser(model: nn.Module, context: torch.Tensor, context_mask: torch.Tensor,
                            null_context: torch.Tensor, null_mask: torch.Tensor, guidance_scale: float
                            ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``model_fn(x_t, t)`` that guides a text-conditional ``model`` towards a caption (guidance on text).

    model: called as model(x_t, t, context=..., context_mask=...). context (B, L, D), context_mask
    (B, L) bool: the encoded captions (the text encoder's output on their tokens); null_context,
    null_mask: the encoded null caption ∅, the same shapes (the text encoder on ``null_tokens``,
    as caption dropout trained it). Both answers come from one forward pass on a doubled batch.
    Editing by caption is SDEdit with this model_fn and a new caption.
    """
    check_rank("context", context, 3, "(B, L, D)")
    for name, value, shape in (("context_mask", context_mask, context.shape[:2]), ("null_context", null_context, context.shape),
                               ("null_mask", null_mask, context.shape[:2])):
        check_rank(name, value, len(shape))
        if tuple(value.shape) != tuple(shape):
            fail(name, f"shape {tuple(shape)} (that of context)", f"shape {tuple(value.shape)}")
    if context_mask.dtype != torch.bool or null_mask.dtype != torch.bool:
        fail("context_mask", "bool masks (True = a real token) for the caption and the null caption",
             f"dtypes {context_mask.dtype}, {null_mask.dtype}")
    check_guidance_scale(guidance_scale)
    both_context, both_mask = torch.cat([context, null_context]), torch.cat([context_mask, null_mask])

    def caption_then_null(device: torch.device) -> tuple[tuple, dict]:
        return (), {"context": both_context.to(device), "context_mask": both_mask.to(device)}

    return _guided_in_one_pass(model, guidance_scale, context.shape[0], "one clip per caption", caption_then_null)


def _guided_in_one_pass(model: nn.Module, guidance_scale: float, batch: int, per_item: str,
                        conditioning: Callable[[torch.device], tuple[tuple, dict]]
                        ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The ``model_fn(x_t, t)`` both guided denoisers share: one forward pass on the doubled batch
    [x_t; x_t] with the extra arguments ``conditioning(device)`` -> (args, kwargs) for that batch,
    conditional half first, then :func:`guide`. x_t must hold ``batch`` items (``per_item`` says of what)."""

    def model_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.shape[0] != batch:
            fail("x_t", f"a batch of {batch} ({per_item})", f"shape {tuple(x_t.shape)}")
        args, kwargs = conditioning(x_t.device)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), *args, **kwargs)
        conditional, unconditional = both.chunk(2)
        return guide(conditional, unconditional, guidance_scale)

    return model_fn
