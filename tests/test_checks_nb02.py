"""Each notebook-02 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch

from course_lib.workshop.checks import nb02
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong, assert_failure_block


def posterior(x0, x_t, a, ab_prev):
    ab = a * ab_prev
    mean = (1 - a) * ab_prev.sqrt() / (1 - ab) * x0 + (1 - ab_prev) * a.sqrt() / (1 - ab) * x_t
    return mean, (1 - a) * (1 - ab_prev) / (1 - ab)


def ddpm_step(x_t, eps, a, ab_prev, z):
    ab = a * ab_prev
    mean = (x_t - (1 - a) / (1 - ab).sqrt() * eps) / a.sqrt()
    return mean + ((1 - a) * (1 - ab_prev) / (1 - ab)).sqrt() * z


def sampler(model_fn, shape, schedule, generator, steps="all", same_z=False, noise_at_end=False, own_noise=False,
            int_t=False):
    """The DDPM loop with optional mistakes: skip t = 0, one z for all steps, σ = √β_t at the last step too,
    noise not from the generator, t passed as an int."""
    x = torch.randn(shape, generator=generator)
    T = schedule.num_steps
    z_once = torch.randn(shape, generator=generator) if same_z else None
    for t in range(T - 1, 0 if steps == "skip last" else -1, -1):
        eps = model_fn(x, t if int_t else torch.full((shape[0],), t, dtype=torch.long))
        if same_z:
            z = z_once
        elif own_noise:
            z = torch.randn(shape)
        else:
            z = torch.randn(shape, generator=generator) if t > 0 or noise_at_end else torch.zeros(shape)
        a, abp = schedule.alphas[t], schedule.alpha_bars_prev[t]
        if noise_at_end:  # σ_t² = β_t everywhere, so the last step adds noise too
            x = (x - (1 - a) / (1 - a * abp).sqrt() * eps) / a.sqrt() + (1 - a).sqrt() * z
        else:
            x = ddpm_step(x, eps, a, abp, z)
    return x


def sampler_paper_indices(model_fn, shape, schedule, generator):
    """Right too: the loop over paper steps T … 1, shifted to code indices where it matters."""
    x = torch.randn(shape, generator=generator)
    for step in range(schedule.num_steps, 0, -1):
        t = step - 1
        eps = model_fn(x, torch.full((shape[0],), t, dtype=torch.long))
        z = torch.randn(shape, generator=generator) if t > 0 else torch.zeros(shape)
        x = ddpm_step(x, eps, schedule.alphas[t], schedule.alpha_bars_prev[t], z)
    return x


def train(model, data, schedule, steps, batch_size, lr, generator, target="eps", sqrt=True, zero_grad=True,
          step=True, t_fixed=None):
    """Algorithm 1 with optional mistakes: the x0 target, no square roots, no zero_grad, no optimiser step, one t."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x0 = data[torch.randint(0, len(data), (batch_size,), generator=generator)]
        t = (torch.randint(0, schedule.num_steps, (batch_size,), generator=generator) if t_fixed is None
             else torch.full((batch_size,), t_fixed(schedule.num_steps)))
        eps = torch.randn(x0.shape, generator=generator)
        ab = schedule.alpha_bars[t][:, None]
        a, s = (ab.sqrt(), (1 - ab).sqrt()) if sqrt else (ab, 1 - ab)
        loss = (model(a * x0 + s * eps, t) - (eps if target == "eps" else x0)).square().mean()
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        if step:
            optimizer.step()
        losses.append(loss.item())
    return losses


RIGHT_AND_WRONG = [
    (nb02.check_q_posterior, posterior, [
        (lambda x0, x_t, a, abp: (posterior(x0, x_t, a, abp)[0], 1 - a), "the variance β_t where β̃_t"),
        (lambda x0, x_t, a, abp: ((1 - a) * abp / (1 - a * abp) * x0 + (1 - abp) * a / (1 - a * abp) * x_t,
                                  posterior(x0, x_t, a, abp)[1]), "square roots missing"),
        (lambda x0, x_t, a, abp: (posterior(x_t, x0, a, abp)[0], posterior(x0, x_t, a, abp)[1]),
         "`x0` and `x_t` swapped"),
        (lambda x0, x_t, a, abp: posterior(x0, x_t, a, abp)[::-1], "the right values returned in the wrong order"),
    ]),
    (nb02.check_predict_x0, lambda x_t, e, ab: (x_t - (1 - ab).sqrt() * e) / ab.sqrt(), [
        (lambda x_t, e, ab: (x_t - (1 - ab) * e) / ab, "square roots missing"),
        (lambda x_t, e, ab: x_t - (1 - ab).sqrt() * e, "not divided by √ᾱ_t"),
        (lambda x_t, e, ab: ab.sqrt() * x_t - (1 - ab).sqrt() * e, "multiplied by √ᾱ_t"),
        (lambda x_t, e, ab: (x_t + (1 - ab).sqrt() * e) / ab.sqrt(), "wrong sign of the `eps_pred` term"),
        (lambda x_t, e, ab: x_t, "returned its input `x_t` unchanged"),
    ]),
    (nb02.check_ddpm_step, ddpm_step, [
        (lambda x_t, e, a, abp, z: ddpm_step(x_t, e, a, abp, z) - ((1 - a) * (1 - abp) / (1 - a * abp)).sqrt() * z
         + (1 - a).sqrt() * z, "σ_t² = β_t"),
        (lambda x_t, e, a, abp, z: (x_t - (1 - a) / (1 - a * abp).sqrt() * e) / a
         + ((1 - a) * (1 - abp) / (1 - a * abp)).sqrt() * z, "a square root missing"),
        (lambda x_t, e, a, abp, z: (x_t - (1 - a) / (1 - a * abp).sqrt() * e) / a.sqrt(), "`z` has no effect"),
        (lambda x_t, e, a, abp, z: (x_t - (1 - a) / (1 - abp).sqrt() * e) / a.sqrt()
         + ((1 - a) * (1 - abp) / (1 - a * abp)).sqrt() * z, "off by one timestep"),
        (lambda x_t, e, a, abp, z: ddpm_step(x_t, e, a, abp, z)[:1], "shape"),
    ]),
    (nb02.check_ddpm_sample_loop, sampler, [
        (lambda *a: sampler(*a, steps="skip last"), "it must visit 5, 4, …, 0, once each"),
        (lambda *a: sampler(*a, same_z=True), "one z for every step"),
        (lambda *a: sampler(*a, noise_at_end=True), "noise added at the last step"),
        (lambda *a: sampler(*a, own_noise=True), "noise not from the generator"),
        (lambda *a: sampler(*a, int_t=True), "a Python number where a tensor belongs"),
    ]),
    (nb02.check_train_denoiser, train, [
        (lambda *a: train(*a, target="x0"), "compared with x0"),
        (lambda *a: train(*a, sqrt=False), "square roots missing"),
        (lambda *a: train(*a, zero_grad=False), "gradients never zeroed"),
        (lambda *a: train(*a, step=False), "optimizer.step() missing"),
        (lambda *a: train(*a, t_fixed=lambda T: T - 1), "every example at the last step"),
    ]),
]


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys)


def test_the_sampling_loop_is_the_courses_sampler_to_1e5_and_any_right_indexing_passes(capsys):
    """The right loop reproduces course_lib's ddpm_sample on the same generator (no clipping) to 1e-5."""
    import torch
    from course_lib.diffusion.schedules import make_schedule
    schedule = make_schedule("linear", 200)
    model_fn = nb02.gaussian_denoiser(schedule, 0.3, 0.5)
    mine = sampler(model_fn, (64, 2), schedule, torch.Generator().manual_seed(5))
    reference = nb02.reference_ddpm_sample_loop(model_fn, (64, 2), schedule, torch.Generator().manual_seed(5))
    assert (mine - reference).abs().max() < 1e-5
    assert nb02.check_ddpm_sample_loop(sampler_paper_indices) is True
    capsys.readouterr()
    assert nb02.check_ddpm_sample_loop(lambda *a: sampler(*a, steps="skip last")) is False
    assert "it must visit 5, 4, …, 0" in assert_failure_block(capsys.readouterr().out, "2.4")[0]


def test_a_loop_that_never_learns_is_told_so_by_its_behaviour(capsys):
    """Drawn in the right order but with the x0 target: the values differ, and without the value check the
    behaviour alone (loss falls, samples near the moons) rejects it too."""
    assert nb02._learns_two_moons(train) is None
    problem = nb02._learns_two_moons(lambda *a: train(*a, step=False))
    assert problem and "should fall" in problem


def test_the_references_agree_with_the_closed_forms_of_ho_et_al():
    """The course code (q_posterior + x0_from_eps) and the textbook μθ formula are the same step."""
    import torch
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(6, 2, generator=g) for _ in range(3))
    a, abp = torch.tensor(0.97), torch.tensor(0.4)
    torch.testing.assert_close(nb02.reference_ddpm_step(x_t, eps, a, abp, z), ddpm_step(x_t, eps, a, abp, z),
                               rtol=1e-4, atol=1e-5)
