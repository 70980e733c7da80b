"""Each notebook-13 check accepts the right answer and rejects the stub and plausible wrong answers."""
import pytest
import torch

from course_lib.diffusion.flow import flow_matching_loss, randn_like, sample_time
from course_lib.workshop.checks import nb13
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def _s(s, x):
    """s (B,) or a number, as (B, 1, ..., 1)."""
    return torch.as_tensor(s, dtype=x.dtype).reshape(-1).expand(x.shape[0]).reshape(-1, *[1] * (x.dim() - 1))


def _full(s, x):
    return torch.full((x.shape[0],), float(s))


def path_and_target(x0, eps, s):
    return (1 - _s(s, x0)) * x0 + _s(s, x0) * eps, eps - x0


def loss(velocity, x0, eps, s):
    x_s, target = path_and_target(x0, eps, s)
    return ((velocity(x_s, s) - target) ** 2).mean()


def euler(velocity, x1, steps, grid=None):
    grid = torch.linspace(1.0, 0.0, steps + 1) if grid is None else grid
    x = x1
    for s, s_next in zip(grid[:-1].tolist(), grid[1:].tolist()):
        x = x + (s_next - s) * velocity(x, _full(s, x))
    return x


def heun(velocity, x, s, s_next):
    v = velocity(x, _full(s, x))
    x_euler = x + (s_next - s) * v
    if s_next == 0:
        return x_euler
    return x + (s_next - s) * 0.5 * (v + velocity(x_euler, _full(s_next, x)))


def euler_at_next_time(velocity, x1, steps):  # the velocity read at s_next instead of s
    grid = torch.linspace(1.0, 0.0, steps + 1).tolist()
    x = x1
    for s, s_next in zip(grid[:-1], grid[1:]):
        x = x + (s_next - s) * velocity(x, _full(s_next, x))
    return x


RIGHT_AND_WRONG = [
    (nb13.check_path_and_target, path_and_target, [
        (lambda x0, eps, s: (path_and_target(x0, eps, s)[0], x0 - eps), "wrong sign"),  # the velocity's sign flipped
        (lambda x0, eps, s: path_and_target(eps, x0, s), "`x0` and `eps` swapped"),  # endpoints swapped: s = 0 is noise
        (lambda x0, eps, s: ((1 - _s(s, x0)).sqrt() * x0 + _s(s, x0).sqrt() * eps, eps - x0), "a variance-preserving path"),
        (lambda x0, eps, s: (x0 + _s(s, x0) * eps, eps), "the data never shrinks"),
    ]),
    (nb13.check_flow_matching_loss, loss, [
        (lambda f, x0, eps, s: ((f(path_and_target(x0, eps, s)[0], s) - (x0 - eps)) ** 2).mean(), "the target x0 − ε"),
        (lambda f, x0, eps, s: loss(f, eps, x0, s), "`x0` and `eps` swapped"),  # endpoints swapped
        (lambda f, x0, eps, s: ((f(x0, s) - (eps - x0)) ** 2).mean(), "the velocity asked at the data x0"),
        (lambda f, x0, eps, s: ((f(path_and_target(x0, eps, s)[0], 1 - s) - (eps - x0)) ** 2).mean(), "time reversed"),
        (lambda f, x0, eps, s: ((f(*[path_and_target(x0, eps, s)[0], s]) - (eps - x0)) ** 2).sum(), "a sum where the mean belongs"),
    ]),
    (nb13.check_euler_sample, euler, [
        (lambda f, x1, steps: euler(f, x1, steps, torch.linspace(0.0, 1.0, steps + 1)), "from data towards noise"),
        (lambda f, x1, steps: euler(f, x1, steps, torch.linspace(1.0, 0.0, steps)), "off by one: steps − 1 steps"),
        (lambda f, x1, steps: euler(f, x1, steps, torch.linspace(1.0, 0.0, steps + 2)[:-1]), "stops short of s = 0"),
        (euler_at_next_time, "the velocity read at s_next"),
        (lambda f, x1, steps: euler(lambda x, s: -f(x, s), x1, steps), "stepped against the velocity"),
    ]),
    (nb13.check_heun_step, heun, [
        (lambda f, x, s, sn: x + (sn - s) * f(x + (sn - s) * f(x, _full(s, x)), _full(sn, x)), "the second slope only"),
        (lambda f, x, s, sn: x + (sn - s) * (f(x, _full(s, x)) + f(x + (sn - s) * f(x, _full(s, x)), _full(sn, x))),
         "the ½ missing"),
        (lambda f, x, s, sn: x + (sn - s) * 0.5 * (f(x, _full(s, x)) + f(x, _full(sn, x))), "read at the old point x"),
        (lambda f, x, s, sn: x + (sn - s) * 0.5 * (f(x, _full(s, x)) + f(x + (sn - s) * f(x, _full(s, x)), _full(s, x))),
         "read at the old time s"),
        (lambda f, x, s, sn: x + (sn - s) * 0.5 * (f(x, _full(s, x)) + f(x + (sn - s) * f(x, _full(s, x)), _full(sn, x))),
         "a Heun step to s = 0"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys, hint=True)


def test_the_loss_reference_is_the_library_loss_with_the_same_draws():
    """flow_matching_loss draws s, then ε; given those draws, the reference gives the same number."""
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(7)
    s = sample_time(16, "uniform", g)
    eps = randn_like(x0, g)
    library = flow_matching_loss(nb13.stand_in_velocity, x0, generator=torch.Generator().manual_seed(7), time_scale=1.0)
    torch.testing.assert_close(nb13.reference_flow_matching_loss(nb13.stand_in_velocity, x0, eps, s), library)


def test_the_gaussian_velocity_is_the_derivative_of_the_exact_flow():
    """x_s = (1 − s)·m + √((1 − s)²c² + s²)·ε solves dx/ds = v(x, s), from ε at s = 1 to m + c·ε at s = 0."""
    eps = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    m, c = nb13.DATA_MEAN.double(), nb13.DATA_STD.double()

    def flow(s):
        return (1 - s) * m + ((1 - s) ** 2 * c**2 + s**2).sqrt() * eps.double()

    for s in (0.1, 0.5, 0.9):
        h = 1e-6
        derivative = (flow(torch.tensor(s + h, dtype=torch.float64)) - flow(torch.tensor(s - h, dtype=torch.float64))) / (2 * h)
        torch.testing.assert_close(nb13.gaussian_velocity(flow(torch.tensor(s, dtype=torch.float64)), s), derivative,
                                   rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flow(torch.tensor(1.0, dtype=torch.float64)), eps.double())
    torch.testing.assert_close(flow(torch.tensor(0.0, dtype=torch.float64)).float(), nb13.exact_endpoint(eps))
