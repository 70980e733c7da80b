"""The Inception Score (Salimans et al. 2016) from a classifier's predictions.

    IS = exp( E_x [ KL( p(y|x) ‖ p(y) ) ] ),   p(y) = E_x p(y|x)

It is high when each sample is classified confidently (p(y|x) peaked) *and* the samples cover all
classes (p(y) flat): K classes, evenly covered with certainty, give IS = K; samples that all look
the same give IS = 1. The score never looks at real data. In this course the classifier is the
digit judge (``course_lib.metrics.judge``), not Inception.
"""
from __future__ import annotations

import torch

from course_lib._validation import check_positive_int, check_rank, fail


def _probabilities(logits: torch.Tensor | None, probs: torch.Tensor | None) -> torch.Tensor:
    """p(y|x): (N, K) float64, from exactly one of logits (softmax) or probs (checked)."""
    if (logits is None) == (probs is None):
        fail("logits", "exactly one of logits or probs", "both" if logits is not None else "neither")
    name, value = ("logits", logits) if logits is not None else ("probs", probs)
    check_rank(name, value, 2, "(N, K)")
    if value.shape[0] == 0:
        fail(name, "at least one sample", f"shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        fail(name, "only finite values", "NaN or inf entries")
    value = value.detach().double()
    if logits is not None:
        return value.softmax(dim=1)
    if (value < 0).any() or not torch.allclose(value.sum(dim=1), torch.ones(len(value), dtype=torch.float64), atol=1e-4):
        fail("probs", "non-negative rows that sum to 1 (pass logits= for raw scores)",
             f"row sums in [{value.sum(1).min():.4g}, {value.sum(1).max():.4g}], min {value.min():.4g}")
    return value


def inception_score(
    logits: torch.Tensor | None = None, *, probs: torch.Tensor | None = None, splits: int = 1
) -> float:
    """IS = exp(E_x KL(p(y|x) ‖ p(y))) from logits (N, K) or probs (N, K); between 1 and K.

    splits > 1 cuts the samples into that many equal chunks, scores each (with its own p(y)) and
    returns the mean, as in the original code; we use splits=1.
    """
    p_y_given_x = _probabilities(logits, probs)
    check_positive_int("splits", splits)
    if splits > len(p_y_given_x):
        fail("splits", f"at most the number of samples ({len(p_y_given_x)})", splits)
    scores = []
    for chunk in p_y_given_x.tensor_split(splits):
        p_y = chunk.mean(dim=0, keepdim=True)  # (1, K) the marginal over this chunk
        kl = (torch.xlogy(chunk, chunk) - torch.xlogy(chunk, p_y)).sum(dim=1)  # (N,), with 0·log 0 = 0
        scores.append(kl.mean().exp())
    return float(torch.stack(scores).mean())
