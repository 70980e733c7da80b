"""Each check accepts the right answer and rejects the stub and plausible wrong answers."""
import pytest
import torch

from course_lib.workshop.checks import nb00, nb01
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong, stub


RIGHT_AND_WRONG = [
    (nb00.check_to_model_range, lambda im: im.float() / 127.5 - 1,
     [lambda im: im.float() / 255, lambda im: im.float() / 128 - 1, lambda im: (im.float() - 128) / 127.5]),
    (nb00.check_count_parameters, lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad),
     [lambda m: len(list(m.parameters())), lambda m: sum(p.numel() for p in m.parameters())]),
    (nb01.check_forward_step, lambda x, a, e: a.sqrt() * x + (1 - a).sqrt() * e,
     [lambda x, a, e: a * x + (1 - a) * e, lambda x, a, e: a.sqrt() * x + (1 - a) * e,
      lambda x, a, e: (1 - a).sqrt() * x + a.sqrt() * e]),
    (nb01.check_alpha_bar, lambda a: torch.cumprod(a, 0),
     [lambda a: torch.cumsum(a, 0), lambda a: torch.prod(a).expand_as(a),
      lambda a: torch.cat([torch.ones(1), torch.cumprod(a, 0)[:-1]])]),
    (nb01.check_q_sample, lambda x, ab, e: ab.sqrt() * x + (1 - ab).sqrt() * e,
     [lambda x, ab, e: ab * x + (1 - ab) * e, lambda x, ab, e: ab.sqrt() * x + (1 - ab) * e]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)
