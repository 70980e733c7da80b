"""Flow matching and its ODE samplers, checked against analytic velocity fields.

For data x0 ~ N(μ, σ²) on the straight path x_s = (1 − s)·x0 + s·ε the pair (x_s, ε − x0) is jointly
Gaussian, so the optimal velocity is linear in x:

    v*(x, s) = (s − (1 − s)σ²)·(x − (1 − s)μ) / ((1 − s)²σ² + s²) − μ,

and its flow is affine: the ODE started at z (s = 1) passes through (1 − s)μ + √((1 − s)²σ² + s²)·z
and ends at μ + σ·z. A correct solver must land there; its error is measured sample by sample.
"""
import math

import pytest
import torch

from course_lib.data.toy import two_moons
from course_lib.diffusion.forward import q_sample, to_x0_eps
from course_lib.diffusion.flow import (
    TIME_SCALE,
    FlowMatchingObjective,
    ddim_step_as_euler,
    euler_sample,
    euler_step,
    euler_steps,
    flow_matching_loss,
    focus_times,
    heun_sample,
    heun_step,
    heun_steps,
    ode_sample,
    sample_time,
    shift_time,
    straight_path,
    straight_time_from_vp,
    straight_to_vp,
    time_grid,
    time_of_snr,
    velocity_fn,
    vp_to_straight,
    x0_eps_from_velocity,
)
from course_lib.metrics.toy import mmd_rbf
from course_lib.models.embeddings import sinusoidal_embedding
from course_lib.models.mlp import MLPDenoiser
from course_lib.diffusion.samplers import ddim_step
from course_lib.diffusion.schedules import make_schedule
from course_lib.training import TrainConfig, Trainer, random_rows

pytestmark = pytest.mark.usefixtures("one_thread")

MU, STD = 0.3, 0.5
S = make_schedule("linear", 1000)


def gaussian_velocity(x, s):
    """v*(x, s) = E[ε − x0 | x_s = x] for x0 ~ N(MU, STD²): x (B, D), s (B,) -> (B, D)."""
    s = s.double().reshape(-1, *([1] * (x.dim() - 1)))
    a = 1 - s
    variance = a**2 * STD**2 + s**2  # Var[x_s]
    return ((s - a * STD**2) * (x.double() - a * MU) / variance - MU).to(x.dtype)


def noise(n=20_000, seed=0):
    return torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the path and the loss ------------------------------------------------------------------------

def test_straight_path_ends_at_data_and_noise_and_moves_at_velocity_eps_minus_x0():
    x0, eps = torch.randn(4, 3, 2, generator=seeded(1)), torch.randn(4, 3, 2, generator=seeded(2))
    assert torch.equal(straight_path(x0, eps, 0.0), x0) and torch.equal(straight_path(x0, eps, 1.0), eps)
    s = torch.tensor([0.1, 0.4, 0.6, 0.9])
    h = 1e-3
    derivative = (straight_path(x0, eps, s + h) - straight_path(x0, eps, s - h)) / (2 * h)
    torch.testing.assert_close(derivative, eps - x0, rtol=0, atol=1e-3)
    back_x0, back_eps = x0_eps_from_velocity(eps - x0, straight_path(x0, eps, s), s)
    torch.testing.assert_close(back_x0, x0, rtol=0, atol=1e-6)
    torch.testing.assert_close(back_eps, eps, rtol=0, atol=1e-6)


def test_the_exact_velocity_of_a_point_mass_has_zero_loss_and_one_euler_step_lands_on_it():
    """Data at the single point c: every path through x_s comes from c, so v(x, s) = (x − c)/s exactly."""
    c = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
    x0 = c.expand(256, 2)

    def exact(x, time):  # a network called with the float timestep s · 999
        return (x - c) / (time / 999)[:, None]

    for sampler in ("uniform", "logit-normal"):
        loss = flow_matching_loss(exact, x0, sampler, seeded(0))
        assert loss.item() < 1e-12
        assert flow_matching_loss(lambda x, time: 0.9 * exact(x, time), x0, sampler, seeded(0)).item() > 1e-2
    x = euler_sample(velocity_fn(exact), (256, 2), steps=1, x_start=noise(256, 3).expand(256, 2).double())
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-12)


def test_the_analytic_velocity_minimises_the_loss_on_gaussian_data():
    """Same draws for every candidate: loss(v* + δ) = loss(v*) + δ² up to the sampling error of E[v* − v]."""
    x0 = MU + STD * noise(50_000, 7)
    model = velocity_fn(gaussian_velocity, time_scale=1.0)

    def loss(candidate):
        return flow_matching_loss(candidate, x0, "uniform", seeded(0), time_scale=1.0).item()

    best = loss(model)
    for delta in (0.05, 0.2):
        assert loss(lambda x, s: model(x, s) + delta) == pytest.approx(best + delta**2, abs=0.01 * delta)
    for scale in (0.9, 1.1):
        assert loss(lambda x, s: scale * model(x, s)) > best


# --- samplers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sample, steps", [(euler_sample, 100), (heun_sample, 20)])
def test_solvers_carry_noise_onto_gaussian_data(sample, steps):
    z = noise()
    x = sample(gaussian_velocity, z.shape, steps=steps, x_start=z)
    assert x.mean().item() == pytest.approx(MU + STD * z.mean().item(), abs=2e-3)
    assert x.std().item() == pytest.approx(STD, rel=0.02)
    assert (x - (MU + STD * z)).abs().max().item() < (0.04 if sample is euler_sample else 0.01)


def test_heun_is_more_accurate_than_euler_at_the_same_number_of_network_calls():
    z = noise(2000)
    exact = MU + STD * z
    for heun_steps_, calls in ((5, 9), (8, 15)):
        counted = {"euler": 0, "heun": 0}

        def counting(name):
            def model_fn(x, s):
                counted[name] += 1
                return gaussian_velocity(x, s)
            return model_fn

        euler = euler_sample(counting("euler"), z.shape, steps=calls, x_start=z)
        heun = heun_sample(counting("heun"), z.shape, steps=heun_steps_, x_start=z)
        assert counted == {"euler": calls, "heun": 2 * heun_steps_ - 1}
        assert (heun - exact).abs().max() < 0.6 * (euler - exact).abs().max()


def test_steps_yield_one_sampler_step_per_grid_interval():
    grid = time_grid(10, shift=3.0).tolist()
    for steps_fn in (euler_steps, heun_steps):
        steps = list(steps_fn(gaussian_velocity, (5, 1), 10, shift=3.0, generator=seeded(4)))
        assert [step.t for step in steps] == grid[:-1]
        assert all(step.x.shape == (5, 1) and step.x0_pred.shape == (5, 1) for step in steps)
    first = next(iter(euler_steps(gaussian_velocity, (5, 1), 10, generator=seeded(4))))
    z = torch.randn(5, 1, generator=seeded(4))
    torch.testing.assert_close(first.x0_pred, z - gaussian_velocity(z, torch.ones(5)))  # x̂0 = x_1 − 1·v


def test_same_seed_same_samples_and_ode_sample_picks_the_solver_by_name():
    run = lambda seed, solver="euler": ode_sample(gaussian_velocity, (4, 2), steps=6, solver=solver,
                                                  generator=seeded(seed))
    assert torch.equal(run(5), run(5)) and not torch.equal(run(5), run(6))
    assert torch.equal(run(5, "heun"), heun_sample(gaussian_velocity, (4, 2), steps=6, generator=seeded(5)))
    step = heun_step(gaussian_velocity, torch.ones(3, 1), 0.5, 0.0)  # a last step, to s = 0, is Euler
    assert torch.equal(step.x, euler_step(gaussian_velocity, torch.ones(3, 1), 0.5, 0.0).x)


def test_time_grid_and_its_shift():
    torch.testing.assert_close(time_grid(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    shifted = time_grid(10, shift=3.0)
    assert shifted[0] == 1 and shifted[-1] == 0 and (shifted[1:] < shifted[:-1]).all()
    assert (shifted[1:-1] > time_grid(10)[1:-1]).all()  # shift > 1: more of the steps near the noise
    assert shift_time(0.5, 3.0) == pytest.approx(0.75)
    s = torch.linspace(0, 1, 11, dtype=torch.float64)
    torch.testing.assert_close(shift_time(shift_time(s, 3.0), 1 / 3), s)  # shift k is undone by 1/k


def test_time_sampler_statistics():
    uniform = sample_time(100_000, "uniform", seeded(0))
    assert uniform.min() >= 0 and uniform.max() <= 1
    assert uniform.mean().item() == pytest.approx(0.5, abs=0.005)
    assert uniform.var().item() == pytest.approx(1 / 12, rel=0.02)
    logit = sample_time(100_000, "logit-normal", seeded(0))
    assert logit.median().item() == pytest.approx(0.5, abs=0.005)
    middle = ((logit > 0.25) & (logit < 0.75)).float().mean().item()  # P(|n| < logit(3/4)) = 2Φ(ln 3) − 1
    assert middle == pytest.approx(math.erf(math.log(3) / math.sqrt(2)), abs=0.005) and middle > 0.7
    assert sample_time(100_000, "logit-normal", seeded(0), logit_mean=1.0).median().item() == pytest.approx(
        1 / (1 + math.exp(-1)), abs=0.005)
    assert torch.equal(sample_time(8, "logit-normal", seeded(3)), sample_time(8, "logit-normal", seeded(3)))


def test_focused_times_land_where_the_snr_range_says_and_focus_zero_changes_nothing():
    assert time_of_snr(1.0) == 0.5 and time_of_snr(0.01) == pytest.approx(1 / 1.1)
    s = sample_time(100_000, "logit-normal", seeded(0))
    focused = focus_times(s, 0.5, (1e-3, 0.1), seeded(1))
    moved = focused != s
    assert moved.float().mean().item() == pytest.approx(0.5, abs=0.01)
    snr = ((1 - focused[moved]) / focused[moved]) ** 2  # SNR(s) = ((1 − s)/s)² on the straight path
    assert snr.min() >= 1e-3 * 0.999 and snr.max() <= 0.1 * 1.001
    assert torch.equal(focus_times(s, 0.0, (1e-3, 0.1), seeded(1)), s)
    objective = FlowMatchingObjective(focus=1.0, focus_snr=(0.25, 0.25))  # every time at s = 2/3
    seen = []
    objective(lambda x, t: seen.append(t) or x, torch.zeros(4, 2), seeded(0))
    torch.testing.assert_close(seen[0] / TIME_SCALE, torch.full((4,), 2 / 3))


# --- DDIM and the VP path are the same family ------------------------------------------------------

def linear_model(x, t):
    """A fixed linear stand-in for a diffusion network: 0.8·x + x·W + 1e-4·t."""
    W = torch.tensor([[0.1, -0.2, 0.05], [0.0, 0.1, 0.3], [-0.1, 0.2, 0.0]], dtype=x.dtype)
    return 0.8 * x + x @ W + 1e-4 * t[:, None].to(x.dtype)


@pytest.mark.parametrize("objective", ["eps", "v"])
@pytest.mark.parametrize("t, t_next", [(999, 979), (999, -1), (500, 250), (300, -1), (10, 0), (0, -1)])
def test_ddim_is_an_euler_step_in_scaled_variables(t, t_next, objective):
    x = torch.randn(6, 3, generator=seeded(t))
    ddim = ddim_step(linear_model, x, t, t_next, S, eta=0.0, objective=objective, clip_x0=False)
    euler = ddim_step_as_euler(linear_model, x, t, t_next, S, objective)
    torch.testing.assert_close(euler.x, ddim.x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(euler.x0_pred, ddim.x0_pred, rtol=1e-5, atol=1e-5)


def test_the_vp_path_is_the_straight_path_rescaled():
    x0, eps = torch.randn(5, 2, 4, 4, generator=seeded(1)), torch.randn(5, 2, 4, 4, generator=seeded(2))
    t = torch.tensor([0, 10, 300, 700, 999])
    x_s, s = vp_to_straight(q_sample(x0, t, S, noise=eps), t, S)
    torch.testing.assert_close(s, straight_time_from_vp(t, S))
    torch.testing.assert_close(x_s, straight_path(x0, eps, s.float()), rtol=0, atol=1e-5)
    x_t, alpha_bar = straight_to_vp(x_s, s)
    torch.testing.assert_close(x_t, q_sample(x0, t, S, noise=eps), rtol=0, atol=1e-5)
    torch.testing.assert_close(alpha_bar, S.alpha_bars[t].double(), rtol=0, atol=1e-6)
    assert straight_time_from_vp(999, S).item() == pytest.approx(1.0, abs=0.01)
    assert straight_time_from_vp(0, S).item() == pytest.approx(0.01 / 1.01, rel=1e-3)


@pytest.mark.parametrize("t, t_next", [(999, 800), (500, 250), (300, -1)])
def test_euler_on_the_straight_path_with_a_vp_model_is_ddim(t, t_next):
    """An Euler step on the straight path keeps x̂0 and ε̂: x_{s'} = (1 − s')x̂0 + s'ε̂, which is DDIM."""
    x_t = torch.randn(6, 3, generator=seeded(t), dtype=torch.float64)
    x_s, s = vp_to_straight(x_t, t, S)
    s_next = 0.0 if t_next < 0 else straight_time_from_vp(t_next, S).item()

    def velocity(x, s_batch):  # the VP model's prediction as a straight-path velocity v = ε̂ − x̂0
        x_vp = straight_to_vp(x, s_batch)[0]
        tt = torch.full((x.shape[0],), t)
        x0, eps = to_x0_eps(linear_model(x_vp, tt), x_vp, tt, S, "eps")
        return eps - x0

    step = euler_step(velocity, x_s, s[0].item(), s_next)
    ddim = ddim_step(linear_model, x_t, t, t_next, S, eta=0.0, clip_x0=False)
    torch.testing.assert_close(straight_to_vp(step.x, s_next)[0], ddim.x, rtol=1e-5, atol=1e-5)


# --- training ------------------------------------------------------------------------------------

def test_float_timesteps_reach_the_course_embedding():
    """s · 999 at s = k/999 is the integer timestep k; in between the features vary smoothly."""
    k = torch.tensor([0, 250, 999])
    torch.testing.assert_close(sinusoidal_embedding(k / 999 * 999, 64), sinusoidal_embedding(k, 64))
    model = MLPDenoiser(2, hidden=16, depth=1, time_dim=8)
    assert model(torch.zeros(3, 2), torch.tensor([0.5, 10.25, 998.9])).shape == (3, 2)


def test_objective_calls_the_model_with_float_time_and_handles_labels():
    calls = []

    def model(x, time, y=None):
        calls.append((time, y))
        return torch.zeros_like(x)

    x0, labels = torch.randn(64, 2, generator=seeded(0)), torch.arange(64) % 3
    FlowMatchingObjective()(model, (x0, labels), seeded(0))
    time, y = calls[-1]
    assert time.dtype == torch.float32 and time.shape == (64,) and 0 <= time.min() and time.max() <= 999
    assert y is None  # an unconditional objective ignores the rest of the batch
    FlowMatchingObjective(null_label=3)(model, (x0, labels), seeded(0))
    assert torch.equal(calls[-1][1], labels)
    FlowMatchingObjective(null_label=3, label_dropout=1.0)(model, (x0, labels), seeded(0))
    assert (calls[-1][1] == 3).all()
    FlowMatchingObjective(null_label=3, label_dropout=0.5)(model, (x0, labels), seeded(0))
    assert 0 < (calls[-1][1] == 3).sum() < 64


def test_training_a_small_mlp_on_two_moons_lowers_the_loss_and_samples_the_moons():
    data = two_moons(2048, seed=0)
    torch.manual_seed(0)
    model = MLPDenoiser(2, hidden=64, depth=2, time_dim=16)
    config = TrainConfig(steps=400, lr=3e-3, ema_decay=0.0, progress=False)
    trainer = Trainer(model, FlowMatchingObjective(), random_rows(data, 128), config, device="cpu").fit()
    losses = trainer.history["loss"]
    assert sum(losses[-50:]) / 50 < 0.8 * sum(losses[:20]) / 20
    samples = euler_sample(velocity_fn(trainer.model.eval()), (1000, 2), steps=20, generator=seeded(1))
    reference = two_moons(1000, seed=5)
    assert mmd_rbf(samples, reference) < 0.5 * mmd_rbf(torch.randn(1000, 2, generator=seeded(1)), reference)


# --- bad input ------------------------------------------------------------------------------------

X = torch.zeros(2, 1)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: straight_path(X, X, 1.5), ["s", "[0.0, 1.0]", "1.5"]),
        (lambda: straight_path(X, X, torch.tensor([0.5, -0.1])), ["s", "[0, 1]", "-0.1"]),
        (lambda: shift_time(-0.2, 2.0), ["s", "[0.0, 1.0]", "-0.2"]),
        (lambda: straight_to_vp(X, 2.0), ["s", "[0.0, 1.0]", "2.0"]),
        (lambda: euler_step(gaussian_velocity, X, 1.2, 0.5), ["s", "[0.0, 1.0]", "1.2"]),
        (lambda: euler_sample(gaussian_velocity, (2, 1), steps=0), ["steps", "positive int", "0"]),
        (lambda: heun_sample(gaussian_velocity, (2, 1), steps=-3), ["steps", "positive int", "-3"]),
        (lambda: time_grid(0), ["steps", "positive int", "0"]),
        (lambda: sample_time(4, "beta"), ["sampler", "'uniform'", "'beta'"]),
        (lambda: FlowMatchingObjective(time_sampler="cosine"), ["time_sampler", "'logit-normal'", "'cosine'"]),
        (lambda: flow_matching_loss(lambda x, t: x, X, "lognorm"), ["time_sampler", "'uniform'", "'lognorm'"]),
        (lambda: ode_sample(gaussian_velocity, (2, 1), solver="rk4"), ["solver", "'euler'", "'heun'", "'rk4'"]),
        (lambda: time_grid(10, shift=0.0), ["shift", "> 0", "0.0"]),
        (lambda: euler_sample(gaussian_velocity, (2, 1), steps=4, shift=-1), ["shift", "> 0", "-1"]),
        (lambda: sample_time(4, "logit-normal", logit_std=0), ["logit_std", "> 0", "0"]),
        (lambda: FlowMatchingObjective(label_dropout=0.1), ["null_label", "num_classes"]),
        (lambda: FlowMatchingObjective(focus=0.5), ["focus_snr", "focus > 0", "None"]),
        (lambda: FlowMatchingObjective(focus=1.5, focus_snr=(0.1, 1)), ["focus", "[0.0, 1.0]", "1.5"]),
        (lambda: focus_times(torch.rand(3), 0.5, (1.0, 0.1)), ["focus_snr", "low <= high", "(1.0, 0.1)"]),
        (lambda: FlowMatchingObjective(null_label=3)(lambda x, t, y: x, X, seeded()), ["batch", "(x0, labels)"]),
        (lambda: euler_sample(lambda x, s: x[:1], (2, 1), steps=2), ["model_fn output", "(2, 1)", "(1, 1)"]),
        (lambda: euler_sample(gaussian_velocity, (2, 1), x_start=torch.zeros(3, 1)), ["x_start", "(2, 1)", "(3, 1)"]),
        (lambda: ddim_step_as_euler(linear_model, torch.zeros(2, 3), 10, 10, S), ["t_next", "[-1, 9]", "10"]),
        (lambda: ddim_step_as_euler(linear_model, torch.zeros(2, 3), 1000, 0, S), ["t", "[0, 999]", "1000"]),
    ],
)
def test_bad_arguments(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))
