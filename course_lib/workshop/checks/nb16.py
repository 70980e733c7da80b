"""Checks for notebook 16 (text-conditioned video). References: course_lib.models.transformer (the
cross-attention of SpaceTimeBlock), course_lib.diffusion.guidance (guide, caption_guided_denoiser).

Video tokens are (B, N, D): N tokens of a clip. Caption tokens are (B, L, D_c) with a mask (B, L)
bool, True on the real words (padding is False). One attention head, the projections given.
"""
from __future__ import annotations

import math

import torch

from course_lib.diffusion.guidance import guide
from course_lib.workshop.checks import compare

HINTS = {
    "16.1": ("cross-attention is attention whose queries come from the video tokens and whose keys and values "
             "come from the caption's tokens: each video token takes a weighted average of the words' values, "
             "and the padding must get no weight at all.",
             "q = x @ w_q (B, N, d), k = context @ w_k and v = context @ w_v (B, L, d); scores = q @ kᵀ / √d "
             "(B, N, L); set the scores of padded keys (mask False) to -inf, softmax over the last axis (the "
             "keys), then weights @ v.",
             "q, k, v = x @ w_q, context @ w_k, context @ w_v; scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]); "
             "scores = scores.masked_fill(~mask[:, None, :], float('-inf')); return scores.softmax(-1) @ v."),
    "16.2": ("classifier-free guidance asks one network twice, with the caption and with the null caption, and "
             "moves from the null answer towards the captioned one, w times as far (Ho & Salimans 2022).",
             "eps_c = model(x_t, t, context=context, context_mask=mask); eps_null = the same with null_context, "
             "null_mask; return eps_null + w·(eps_c − eps_null). w = 0 is the null answer, w = 1 the captioned one.",
             "eps_c = model(x_t, t, context=context, context_mask=mask); eps_null = model(x_t, t, "
             "context=null_context, context_mask=null_mask); return eps_null + w * (eps_c - eps_null)."),
}


# --- 16.1 cross-attention with a mask ------------------------------------------------------------------

def reference_cross_attention(x, context, mask, w_q, w_k, w_v):
    """softmax(q kᵀ / √d, padded keys masked) v with q = x w_q, k = context w_k, v = context w_v: (B, N, d)."""
    q, k, v = x @ w_q, context @ w_k, context @ w_v
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (B, N, L)
    return scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1) @ v


def _attention_with(x, context, mask, w_q, w_k, w_v, no_mask=False, zero_fill=False, no_scale=False,
                    query_axis=False, mask_after=False):
    """Cross-attention with one mistake: the mask ignored, padded scores set to 0 (not -inf), no 1/√d,
    softmax over the queries, or the weights masked after the softmax."""
    q, k, v = x @ w_q, context @ w_k, context @ w_v
    scores = q @ k.transpose(1, 2) / (1.0 if no_scale else math.sqrt(q.shape[-1]))
    if mask_after:
        return (scores.softmax(-1) * mask[:, None, :]) @ v
    if not no_mask:
        # -inf on a padded key would make its whole column NaN under a softmax over the queries: a large
        # negative number there keeps the mistake's answer finite, as a learner's -1e9 would
        fill = 0.0 if zero_fill else (-1e9 if query_axis else float("-inf"))
        scores = scores.masked_fill(~mask[:, None, :], fill)
    return scores.softmax(-2 if query_axis else -1) @ v


CROSS_ATTENTION_MISTAKES = {
    "the mask is ignored: the padding tokens get weight too; set their scores to -inf before the softmax":
        lambda *a: _attention_with(*a, no_mask=True),
    "the padded scores set to 0: a score of 0 still gets weight exp(0) in the softmax; use -inf":
        lambda *a: _attention_with(*a, zero_fill=True),
    "no 1/√d: divide the scores by the square root of the head width before the softmax":
        lambda *a: _attention_with(*a, no_scale=True),
    "the softmax over the queries (axis -2): each video token's weights over the words must sum to 1, so "
    "softmax over the keys (axis -1)": lambda *a: _attention_with(*a, query_axis=True),
    "the weights masked after the softmax: the words' weights no longer sum to 1; mask the scores (-inf) "
    "before the softmax": lambda *a: _attention_with(*a, mask_after=True),
}


def _attention_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for B, N, L, D, Dc, d, lengths in ((2, 6, 5, 8, 4, 4, (3, 5)), (1, 4, 7, 6, 6, 3, (2,)), (3, 5, 4, 4, 8, 8, (1, 4, 2))):
        mask = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]  # (B, L): words first, then padding
        context = torch.randn(B, L, Dc, generator=g)  # whatever sits at the padding must not matter
        cases.append(((torch.randn(B, N, D, generator=g), context, mask, torch.randn(D, d, generator=g),
                       torch.randn(Dc, d, generator=g), torch.randn(Dc, d, generator=g)), {}))
    return cases


def check_cross_attention(learner_fn) -> bool:
    return compare("16.1", learner_fn, reference_cross_attention, _attention_cases(161), "cross_attention",
                   variants=CROSS_ATTENTION_MISTAKES)


# --- 16.2 classifier-free guidance on the caption ------------------------------------------------------

class StandInTextModel(torch.nn.Module):
    """A fixed text-conditional 'denoiser': its answer depends on x_t, t and the mean of the real tokens of
    the context. forward(x_t (B, ...), t (B,), context (B, L, D), context_mask (B, L)) -> (B, ...)."""

    def forward(self, x_t, t, context=None, context_mask=None):
        pooled = (context * context_mask[..., None]).sum(1) / context_mask.sum(1, keepdim=True)  # (B, D)
        shift = pooled.sum(-1).reshape(-1, *([1] * (x_t.dim() - 1)))
        return torch.tanh(0.8 * x_t + shift) + 1e-3 * t.reshape(-1, *([1] * (x_t.dim() - 1)))


def reference_guided_prediction(model, x_t, t, context, mask, null_context, null_mask, w):
    """ε̂_∅ + w·(ε̂_c − ε̂_∅) (course_lib.diffusion.guidance.guide)."""
    eps_c = model(x_t, t, context=context, context_mask=mask)
    eps_null = model(x_t, t, context=null_context, context_mask=null_mask)
    return guide(eps_c, eps_null, w)


def _guided_with(model, x_t, t, context, mask, null_context, null_mask, w, swapped=False, their_w=False,
                 scaled=False, null_twice=False):
    """The guided prediction with one mistake: the two answers swapped, (1 + w) where w belongs, the
    captioned answer scaled by w, or the null caption asked twice."""
    eps_c = model(x_t, t, context=null_context if null_twice else context, context_mask=null_mask if null_twice else mask)
    eps_null = model(x_t, t, context=null_context, context_mask=null_mask)
    if swapped:
        eps_c, eps_null = eps_null, eps_c
    if scaled:
        return w * eps_c
    return eps_null + (1 + w if their_w else w) * (eps_c - eps_null)


GUIDANCE_MISTAKES = {
    "the two answers swapped: start from the null caption's answer and move towards the caption's, "
    "ε̂_∅ + w·(ε̂_c − ε̂_∅)": lambda *a: _guided_with(*a, swapped=True),
    "(1 + w) where w belongs: that is Ho & Salimans' own w; here w = 1 must give the captioned answer itself":
        lambda *a: _guided_with(*a, their_w=True),
    "w·ε̂_c: guidance is not a scaled prediction; it mixes the captioned and the null answers":
        lambda *a: _guided_with(*a, scaled=True),
    "the null caption asked twice: ε̂_c needs the caption's context and mask": lambda *a: _guided_with(*a, null_twice=True),
}


def _guidance_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    model = StandInTextModel()
    cases = []
    for B, shape, L, D, w in ((2, (3, 2, 4, 4), 5, 6, 4.0), (3, (2, 1, 2, 2), 4, 4, 0.0), (1, (2, 3, 2, 2), 6, 8, 2.5),
                              (2, (1, 1, 4, 4), 3, 4, 1.0)):
        mask = torch.rand(B, L, generator=g) < 0.7
        mask[:, 0] = True
        null_mask = torch.zeros(B, L, dtype=torch.bool)
        null_mask[:, 0] = True
        context, null_context = torch.randn(B, L, D, generator=g), torch.randn(1, L, D, generator=g).expand(B, L, D)
        cases.append(((model, torch.randn(B, *shape, generator=g), torch.randint(0, 1000, (B,), generator=g), context,
                       mask, null_context.clone(), null_mask, w), {}))
    return cases


def check_guided_prediction(learner_fn) -> bool:
    return compare("16.2", learner_fn, reference_guided_prediction, _guidance_cases(162), "guided_prediction",
                   variants=GUIDANCE_MISTAKES)
