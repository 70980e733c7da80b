"""Each check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb00, nb01
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def trainable(m):
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


RIGHT_AND_WRONG = [
    (nb00.check_to_model_range, lambda im: im.float() / 127.5 - 1, [
        (lambda im: im.float() / 255, "scaled to [0, 1]"),
        (lambda im: im.float() / 128 - 1, "a scale and a shift off"),
        (lambda im: (im.float() - 128) / 127.5, "a constant offset"),
        (lambda im: im.double() / 127.5 - 1, "wrong dtype"),
        (lambda im: im, "returned its input `image` unchanged"),
        (lambda im: (im.float() / 127.5 - 1).flatten(), "shape"),
    ]),
    (nb00.check_count_parameters, trainable, [
        (lambda m: len(list(m.parameters())), "counted the tensors"),
        (lambda m: sum(p.numel() for p in m.parameters()), "frozen parameters counted too"),
        (lambda m: sum(p.numel() for n, p in m.named_parameters() if "weight" in n), "the biases left out"),
        (lambda m: trainable(m) + 0.5, "expected a whole number"),
    ]),
    (nb01.check_forward_step, lambda x, a, e: a.sqrt() * x + (1 - a).sqrt() * e, [
        (lambda x, a, e: a * x + (1 - a) * e, "square roots missing"),
        (lambda x, a, e: a.sqrt() * x + (1 - a) * e, "a square root missing on the noise scale"),
        (lambda x, a, e: (1 - a).sqrt() * x + a.sqrt() * e, "`x_prev` and `eps` swapped"),
        (lambda x, a, e: a.sqrt() * x - (1 - a).sqrt() * e, "wrong sign of the `eps` term"),
        (lambda x, a, e: a.sqrt() * x, "`eps` has no effect"),
    ]),
    (nb01.check_alpha_bar, lambda a: torch.cumprod(a, 0), [
        (lambda a: torch.cumsum(a, 0), "a running sum"),
        (lambda a: torch.prod(a).expand_as(a), "one product of all steps"),
        (lambda a: torch.cat([torch.ones(1), torch.cumprod(a, 0)[:-1]]), "off by one timestep"),
        (lambda a: a, "returned its input `alphas` unchanged"),
    ]),
    (nb01.check_q_sample, lambda x, ab, e: ab.sqrt() * x + (1 - ab).sqrt() * e, [
        (lambda x, ab, e: ab * x + (1 - ab) * e, "square roots missing"),
        (lambda x, ab, e: ab.sqrt() * x + (1 - ab) * e, "a square root missing on the noise scale"),
        (lambda x, ab, e: (1 - ab).sqrt() * x + ab.sqrt() * e, "swapped"),
        (lambda x, ab, e: -(ab.sqrt() * x + (1 - ab).sqrt() * e), "wrong sign"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)
