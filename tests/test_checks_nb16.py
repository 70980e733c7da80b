"""Each notebook-16 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.workshop.checks import nb16
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def cross_attention(x, context, mask, w_q, w_k, w_v, no_mask=False, zero_fill=False, no_scale=False, query_axis=False,
                    mask_after=False):
    """Written with torch's own attention where it can, and by hand for the mistakes, as a learner might."""
    q, k, v = x @ w_q, context @ w_k, context @ w_v
    if not (no_mask or zero_fill or no_scale or query_axis or mask_after):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, :])
    scores = torch.einsum("bnd,bld->bnl", q, k) / (1.0 if no_scale else math.sqrt(q.shape[-1]))
    if mask_after:
        return torch.where(mask[:, None, :], torch.softmax(scores, dim=-1), 0.0) @ v
    if zero_fill:
        scores = scores * mask[:, None, :]
    elif not no_mask:
        scores = scores.masked_fill(~mask[:, None, :], -1e9)
    return torch.softmax(scores, dim=1 if query_axis else 2) @ v


def guided_prediction(model, x_t, t, context, mask, null_context, null_mask, w, swapped=False, their_w=False,
                      scaled=False, null_twice=False):
    """One forward pass on a doubled batch, as caption_guided_denoiser does."""
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]),
                 context=torch.cat([null_context if null_twice else context, null_context]),
                 context_mask=torch.cat([null_mask if null_twice else mask, null_mask]))
    eps_c, eps_null = both.chunk(2)
    if swapped:
        eps_c, eps_null = eps_null, eps_c
    if scaled:
        return w * eps_c
    return (1 - (1 + w if their_w else w)) * eps_null + (1 + w if their_w else w) * eps_c


RIGHT_AND_WRONG = [
    (nb16.check_cross_attention, cross_attention,
     [(lambda *a: cross_attention(*a, no_mask=True), "the mask is ignored"),
      (lambda *a: cross_attention(*a, zero_fill=True), "the padded scores set to 0"),
      (lambda *a: cross_attention(*a, no_scale=True), "no 1/√d"),
      (lambda *a: cross_attention(*a, query_axis=True), "the softmax over the queries"),
      (lambda *a: cross_attention(*a, mask_after=True), "the weights masked after the softmax")]),
    (nb16.check_guided_prediction, guided_prediction,
     [(lambda *a: guided_prediction(*a, swapped=True), "the two answers swapped"),
      (lambda *a: guided_prediction(*a, their_w=True), "(1 + w) where w belongs"),
      (lambda *a: guided_prediction(*a, scaled=True), "w·ε̂_c"),
      (lambda *a: guided_prediction(*a, null_twice=True), "the null caption asked twice")]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_every_exercise_has_three_levels_of_hints():
    assert set(nb16.HINTS) == {"16.1", "16.2"} and all(len(h) == 3 for h in nb16.HINTS.values())


def test_the_reference_is_the_models_own_masked_attention_and_padding_changes_nothing():
    (x, context, mask, w_q, w_k, w_v), _ = nb16._attention_cases(1)[0]
    out = nb16.reference_cross_attention(x, context, mask, w_q, w_k, w_v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(x @ w_q, context @ w_k, context @ w_v,
                                                                   attn_mask=mask[:, None, :]))
    padded = context.clone()
    padded[~mask] = 5.0  # whatever sits at the padding
    torch.testing.assert_close(nb16.reference_cross_attention(x, padded, mask, w_q, w_k, w_v), out)


def test_guidance_at_zero_and_one_is_the_null_and_the_captioned_answer():
    (model, x_t, t, context, mask, null_context, null_mask, _), _ = nb16._guidance_cases(2)[0]
    eps_c = model(x_t, t, context=context, context_mask=mask)
    eps_null = model(x_t, t, context=null_context, context_mask=null_mask)
    for w, expected in ((0.0, eps_null), (1.0, eps_c)):
        torch.testing.assert_close(nb16.reference_guided_prediction(model, x_t, t, context, mask, null_context,
                                                                    null_mask, w), expected)
