"""The training engine: warm-up, clipping, EMA, autocast, compile, NaN stop, bad batches, loss weighting."""
import math

import pytest
import torch
from torch import nn

from course_lib.diffusion.forward import q_sample, to_x0_eps, training_target
from course_lib.diffusion.objectives import DiffusionObjective, objective_weight
from course_lib.models.mlp import MLPDenoiser
from course_lib.diffusion.schedules import make_schedule
from course_lib.training import TrainConfig, Trainer, ema_decay_at, random_rows, update_ema

pytestmark = pytest.mark.usefixtures("one_thread")


SCHEDULE = make_schedule("linear", 100)


def two_moons(n: int, seed: int = 0) -> torch.Tensor:
    """A tiny local two-moons sampler, (n, 2) roughly in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 0.8
    return points + 0.03 * torch.randn(n, 2, generator=g)


def make_trainer(steps=20, model=None, **config) -> Trainer:
    torch.manual_seed(0)
    model = model if model is not None else MLPDenoiser(2, hidden=32, depth=2, time_dim=16)
    config = TrainConfig(steps=steps, progress=False, **config)
    return Trainer(model, DiffusionObjective(SCHEDULE), random_rows(two_moons(512), 64), config, device="cpu")


# --- learning rate, clipping, EMA -----------------------------------------------------------------

def test_linear_warmup_learning_rates_are_used_by_the_optimiser():
    trainer = make_trainer(steps=6, lr=0.1, warmup_steps=4, grad_clip=0.0, ema_decay=0.0)
    assert [trainer.lr_at(k) for k in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit(steps=1)
    # Adam's first step moves every parameter with a non-zero gradient by (almost exactly) the lr.
    moves = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(trainer.model.parameters(), before)])
    assert moves.max().item() == pytest.approx(0.025, rel=1e-3)
    trainer.fit()
    assert trainer.history["lr"] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_gradient_clipping_bounds_the_gradient_norm():
    def huge_loss(model, batch, generator):
        return 1e4 * DiffusionObjective(SCHEDULE)(model, batch, generator)

    for clip in (0.5, 0.0):
        trainer = make_trainer(steps=1, grad_clip=clip)
        trainer.loss_fn = huge_loss
        trainer.fit()
        norm_after = torch.cat([p.grad.flatten() for p in trainer.model.parameters()]).norm().item()
        assert trainer.history["grad_norm"][0] > 10  # the raw norm, before clipping
        if clip:
            assert norm_after == pytest.approx(clip, rel=1e-4)
        else:
            assert norm_after == pytest.approx(trainer.history["grad_norm"][0], rel=1e-4)


def test_ema_decay_warmup_values():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(10, 0.999) == pytest.approx(11 / 20)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(0, 0.9, warmup=False) == 0.9


def test_ema_update_on_a_known_sequence():
    model, ema = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ema.weight.fill_(0.0)
    for value in (1.0, 2.0, 4.0):
        with torch.no_grad():
            model.weight.fill_(value)
        update_ema(ema, model, 0.5)
    # e1 = 0.5, e2 = 0.5·0.5 + 0.5·2 = 1.25, e3 = 0.5·1.25 + 0.5·4 = 2.625
    assert ema.weight.item() == pytest.approx(2.625)


def test_trainer_ema_follows_the_recursion_over_the_weights_it_saw():
    snapshots = []

    def record(trainer, step):
        snapshots.append([p.detach().clone() for p in trainer.model.parameters()])

    trainer = make_trainer(steps=5, ema_decay=0.8, ema_warmup=True, sample_every=1)
    expected = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.sample_fn = record
    trainer.fit()
    assert len(snapshots) == 5
    for k, weights in enumerate(snapshots):
        d = min(0.8, (1 + k) / (10 + k))
        expected = [d * e + (1 - d) * w for e, w in zip(expected, weights)]
    for e, p in zip(expected, trainer.ema_model.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-5, atol=1e-6)
    assert all(not p.requires_grad for p in trainer.ema_model.parameters())


# --- fit, history, callbacks, progress ------------------------------------------------------------

def test_fit_continues_from_the_current_step_and_records_history(capsys):
    calls = []
    trainer = make_trainer(steps=7, sample_every=3)
    trainer.sample_fn = lambda tr, step: calls.append((step, tr.model.training, torch.is_grad_enabled()))
    trainer.fit(steps=2)
    assert trainer.step == 2
    trainer.fit()
    assert trainer.step == 7
    assert trainer.history["step"] == list(range(1, 8))
    assert all(len(v) == 7 for v in trainer.history.values())
    assert calls == [(3, False, False), (6, False, False)]
    assert trainer.model.training
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # progress=False is silent


def test_loss_decreases_on_two_moons_in_fp32():
    trainer = make_trainer(steps=150, lr=3e-3)
    trainer.fit()
    first, last = sum(trainer.history["loss"][:15]) / 15, trainer.recent_loss(15)
    assert last < 0.8 * first


def test_bf16_autocast_on_cpu_runs_and_the_loss_decreases():
    dtypes = []

    def loss_fn(model, batch, generator):
        def spy(x, t):
            out = model(x, t)
            dtypes.append(out.dtype)
            return out
        return DiffusionObjective(SCHEDULE)(spy, batch, generator)

    trainer = make_trainer(steps=150, lr=3e-3, precision="bf16")
    trainer.loss_fn = loss_fn
    trainer.fit()
    assert trainer.amp_dtype == torch.bfloat16 and set(dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay fp32
    assert trainer.recent_loss(15) < 0.8 * sum(trainer.history["loss"][:15]) / 15


def test_fp16_on_cpu_falls_back_to_bf16_without_a_grad_scaler():
    trainer = make_trainer(steps=2, precision="fp16")
    assert trainer.amp_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()
    trainer.fit()


@pytest.mark.slow
def test_compiled_training_runs_and_matches_eager_closely():
    eager = make_trainer(steps=3).fit()
    compiled = make_trainer(steps=3, compile=True).fit()
    assert compiled.train_model is not compiled.model
    assert compiled.history["loss"] == pytest.approx(eager.history["loss"], rel=1e-3)


# --- failures: NaN, bad batches, bad loss, bad config ---------------------------------------------

def test_nan_loss_stops_at_once_naming_the_step():
    trainer = make_trainer(steps=10)
    good = trainer.loss_fn
    calls = []

    def loss_fn(model, batch, generator):  # a diverging model: finite data, a NaN loss from step 3 on
        calls.append(1)
        loss = good(model, batch, generator)
        return loss * float("nan") if len(calls) > 3 else loss

    trainer.loss_fn = loss_fn
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3;.*lr"):
        trainer.fit()
    assert trainer.step == 3 and len(trainer.history["loss"]) == 3
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nan_data_stops_at_once_naming_make_batch_and_the_step():
    trainer = make_trainer(steps=10)
    good = trainer.make_batch
    calls = []

    def make_batch(generator):
        calls.append(1)
        batch = good(generator)
        return batch * float("nan") if len(calls) > 3 else batch

    trainer.make_batch = make_batch
    with pytest.raises(ValueError, match=r"make_batch: .*at step 3 .*x0: expected only finite values"):
        trainer.fit()
    assert trainer.step == 3 and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_a_batch_the_model_cannot_take_names_make_batch_and_the_shape():
    trainer = make_trainer(steps=2)
    trainer.make_batch = lambda g: torch.randn(8, 3, generator=g)
    with pytest.raises(ValueError, match=r"^make_batch: expected") as info:
        trainer.fit()
    message = str(info.value)
    assert "(8, 3)" in message and "step 0" in message and "x: expected" in message


def test_make_batch_returning_something_else_is_named():
    trainer = make_trainer(steps=2)
    trainer.make_batch = lambda g: [[1.0, 2.0]] * 4
    with pytest.raises(ValueError, match=r"^make_batch: expected a tensor"):
        trainer.fit()


@pytest.mark.parametrize("bad_loss, needle", [
    (lambda model, batch, g: model(batch, torch.zeros(len(batch), dtype=torch.long)).square(), "scalar"),
    (lambda model, batch, g: torch.tensor(1.0), "requires_grad"),
])
def test_a_loss_fn_that_returns_no_usable_loss_is_named(bad_loss, needle):
    trainer = make_trainer(steps=2)
    trainer.loss_fn = bad_loss
    with pytest.raises(ValueError, match=rf"^loss_fn: expected .*{needle}"):
        trainer.fit()


@pytest.mark.parametrize("changes, name", [
    ({"steps": 0}, "steps"), ({"lr": -1.0}, "lr"), ({"precision": "fp8"}, "precision"),
    ({"ema_decay": 1.5}, "ema_decay"), ({"warmup_steps": -1}, "warmup_steps"),
    ({"checkpoint_every": 5}, "checkpoint_path"), ({"grad_clip": math.inf}, "grad_clip"),
    ({"seed": "0"}, "seed"),
])
def test_bad_config_values_are_named(changes, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        TrainConfig(**changes)
    with pytest.raises(ValueError, match=r"^changes: expected field names"):
        TrainConfig().replace(stepz=3)


def test_bad_trainer_arguments_are_named():
    model = MLPDenoiser(2, hidden=16, depth=1)
    with pytest.raises(ValueError, match=r"^model: expected"):
        Trainer(lambda x, t: x, DiffusionObjective(SCHEDULE), random_rows(two_moons(8), 4))
    with pytest.raises(ValueError, match=r"^make_batch: expected a function"):
        Trainer(model, DiffusionObjective(SCHEDULE), two_moons(8))
    with pytest.raises(ValueError, match=r"^config: expected a TrainConfig"):
        Trainer(model, DiffusionObjective(SCHEDULE), random_rows(two_moons(8), 4), config={"steps": 3})
    with pytest.raises(ValueError, match=r"^objective: expected"):
        DiffusionObjective(SCHEDULE, "score")
    with pytest.raises(ValueError, match=r"^batch_size: expected"):
        random_rows(two_moons(8), 0)
    with pytest.raises(ValueError, match=r"^data: expected a non-empty"):
        random_rows(torch.zeros(0, 2), 4)


# --- data stream and loss weighting ---------------------------------------------------------------

def test_random_rows_is_a_seeded_stream_of_data_rows():
    data = two_moons(100)
    draw = random_rows(data, 16)
    a, b = draw(torch.Generator().manual_seed(1)), draw(torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (16, 2)
    assert all((data == row).all(dim=1).any() for row in a)
    assert not torch.equal(a, draw(torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("objective", ["eps", "x0", "v"])
def test_loss_weighting_of_each_objective_in_x0_units(objective):
    """MSE_objective = w_t · ‖x0 − x̂0‖² for the same x_t and prediction: w = SNR, 1 or 1 + SNR."""
    schedule = make_schedule("cosine", 1000)
    g = torch.Generator().manual_seed(0)
    t = torch.tensor([0, 10, 200, 500, 800, 990])
    x0, eps = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    x_t = q_sample(x0, t, schedule, noise=eps)
    eps_hat = eps + 0.1 * torch.randn(6, 3, generator=g)  # an imperfect ε prediction ...
    x0_hat = to_x0_eps(eps_hat, x_t, t, schedule, "eps")[0]  # ... and the x0 it implies
    predictions = {"eps": eps_hat, "x0": x0_hat, "v": training_target(x0_hat, eps_hat, t, schedule, "v")}
    target = training_target(x0, eps, t, schedule, objective)
    ratio = (predictions[objective] - target).square().sum(1).double() / (x0_hat - x0).square().sum(1).double()
    torch.testing.assert_close(ratio, objective_weight(schedule, objective)[t].double(), rtol=2e-3, atol=1e-6)


def test_config_from_preset_takes_precision_and_compile_and_lets_changes_win():
    from course_lib.config import get_preset
    gpu = TrainConfig.from_preset(get_preset("gpu"), steps=10)
    assert (gpu.precision, gpu.compile, gpu.progress, gpu.steps) == ("bf16", True, True, 10)
    smoke = TrainConfig.from_preset(get_preset("smoke"), steps=5, compile=True, lr=0.01)
    assert (smoke.precision, smoke.compile, smoke.progress, smoke.lr) == ("fp32", True, False, 0.01)
