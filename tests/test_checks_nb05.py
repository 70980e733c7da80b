"""Each notebook-05 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb05
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def correlation(video, lag, shift=0, normalise=True):
    """Frame correlation with optional mistakes: an off-by-one pairing, or covariance instead of correlation."""
    u = video[:, : video.shape[1] - lag - shift].flatten(2)
    v = video[:, lag + shift:].flatten(2)
    u, v = u - u.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)
    num = (u * v).sum(-1)
    return (num / ((u**2).sum(-1) * (v**2).sum(-1)).sqrt() if normalise else num / u.shape[-1]).mean()


def pooled_correlation(video, lag):
    """One correlation over all pairs pooled together instead of the mean of per-pair correlations."""
    u = video[:, : video.shape[1] - lag].flatten()
    v = video[:, lag:].flatten()
    return torch.corrcoef(torch.stack([u, v]))[0, 1]


RIGHT_AND_WRONG = [
    (nb05.check_to_course_layout, lambda x: x.permute(0, 2, 1, 3, 4), [
        (lambda x: x.reshape(x.shape[0], x.shape[2], x.shape[1], *x.shape[3:]), "the right values in the wrong places"),
        (lambda x: x.permute(0, 2, 1, 4, 3), "the axes in another order"),
        (lambda x: x, "returned its input `x` unchanged"),
        (lambda x: x.permute(0, 2, 1, 3, 4).flatten(1, 2), "shape"),
    ]),
    (nb05.check_frame_correlation, correlation, [
        (lambda v, k: correlation(v, k, shift=1) if k + 1 < v.shape[1] else correlation(v, k), "off by one"),
        (lambda v, k: correlation(v, k, normalise=False), "a covariance, not a correlation"),
        (pooled_correlation, "pooled"),
        (lambda v, k: correlation(v, k) * torch.ones(v.shape[0]), "shape"),  # one number per clip, not averaged
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)
