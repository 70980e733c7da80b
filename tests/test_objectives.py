"""The training losses: timestep samplers as arguments, one label dropout, the order of the draws, and
training losses that stay what they were before the objectives moved (to float32 roundoff)."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib.config import get_preset
from course_lib.diffusion.flow import FlowMatchingObjective
from course_lib.diffusion.objectives import (
    CaptionObjective,
    DiffusionObjective,
    JointImageVideoObjective,
    SNRFocusedTimesteps,
    diffusion_loss,
    drop_labels,
    uniform_timesteps,
)
from course_lib.diffusion.schedules import make_schedule
from course_lib.training import Trainer
from course_lib.workshop.recipes import get_recipe

S = make_schedule("linear", 100)
GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "training_losses.json"


class LabelSpy(nn.Module):
    """Records the labels and timesteps it is called with; predicts x·scale."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append((t.clone(), None if y is None else y.clone()))
        return x * self.scale


# --- label dropout ----------------------------------------------------------------------------------

def test_drop_labels():
    y = torch.arange(10).repeat(100)
    torch.testing.assert_close(drop_labels(y, 0.0, null_label=10), y)
    assert (drop_labels(y, 1.0, null_label=10) == 10).all()
    dropped = drop_labels(y, 0.3, torch.Generator().manual_seed(0), null_label=10)
    kept = dropped != 10
    assert 0.25 < (~kept).float().mean() < 0.35
    torch.testing.assert_close(dropped[kept], y[kept])
    torch.testing.assert_close(dropped, drop_labels(y, 0.3, torch.Generator().manual_seed(0), null_label=10))


def test_drop_labels_bad_inputs():
    with pytest.raises(ValueError, match=r"p: expected a number in \[0.0, 1.0\], got 2"):
        drop_labels(torch.zeros(3, dtype=torch.long), 2, null_label=10)
    with pytest.raises(ValueError, match="null_label: expected a positive int"):
        drop_labels(torch.zeros(3, dtype=torch.long), 0.1, null_label=None)
    with pytest.raises(ValueError, match=r"y: expected a tensor of rank 1 \(B,\)"):
        drop_labels(torch.zeros(3, 1, dtype=torch.long), 0.1, null_label=10)


@pytest.mark.parametrize("objective", [
    DiffusionObjective(S, "eps", null_label=10, label_dropout=0.5),
    FlowMatchingObjective(null_label=10, label_dropout=0.5),
], ids=["diffusion", "flow"])
def test_diffusion_and_flow_drop_labels_alike_with_the_first_draws(objective):
    x0, labels = torch.randn(64, 2), torch.arange(64) % 10
    spy = LabelSpy()
    objective(spy, (x0, labels), torch.Generator().manual_seed(5))
    expected = drop_labels(labels, 0.5, torch.Generator().manual_seed(5), null_label=10)
    assert torch.equal(spy.seen[0][1], expected) and (expected == 10).any() and (expected != 10).any()


# --- timestep samplers --------------------------------------------------------------------------------

def test_the_timestep_sampler_is_an_argument_of_the_loss():
    def always_seven(batch, schedule, generator=None):
        return torch.full((batch,), 7)

    spy = LabelSpy()
    DiffusionObjective(S, "x0", timesteps=always_seven)(spy, torch.randn(5, 2), torch.Generator().manual_seed(0))
    assert spy.seen[0][0].tolist() == [7] * 5
    t = uniform_timesteps(20_000, S, torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and t.min() == 0 and t.max() == 99
    focused = SNRFocusedTimesteps(1.0, (1e-3, 0.1))
    assert set(focused(500, S, torch.Generator().manual_seed(0)).tolist()) <= set(focused.focus_steps(S).tolist())


def test_the_draws_come_in_the_documented_order_labels_then_t_then_eps():
    x0, labels = torch.randn(6, 2), torch.arange(6)
    spy = LabelSpy()
    loss = DiffusionObjective(S, "eps", null_label=10, label_dropout=0.3)(spy, (x0, labels), torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    y = torch.where(torch.rand(6, generator=g) < 0.3, torch.full_like(labels, 10), labels)
    t = torch.randint(0, 100, (6,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    x_t = S.sqrt_alpha_bars[t][:, None] * x0 + S.sqrt_one_minus_alpha_bars[t][:, None] * eps
    assert torch.equal(spy.seen[0][0], t) and torch.equal(spy.seen[0][1], y)
    assert loss.item() == pytest.approx(((x_t - eps) ** 2).mean().item(), rel=1e-6)
    assert diffusion_loss(spy, x0, S, "eps", torch.Generator().manual_seed(2), {"y": y}).item() != loss.item()


def test_bad_objectives_name_the_argument():
    with pytest.raises(ValueError, match="null_label: expected the model's num_classes when label_dropout > 0"):
        DiffusionObjective(S, label_dropout=0.1)
    for objective in (DiffusionObjective, JointImageVideoObjective, CaptionObjective):
        with pytest.raises(ValueError, match="timesteps: expected a timestep sampler"):
            objective(S, timesteps=3)
        with pytest.raises(ValueError, match="objective: expected one of"):
            objective(S, objective="epsilon")
    with pytest.raises(ValueError, match=r"batch: expected \(x0, labels\)"):
        DiffusionObjective(S, null_label=10)(LabelSpy(), torch.randn(3, 2), torch.Generator())
    with pytest.raises(ValueError, match=r"labels: expected one label per example, shape \(3,\)"):
        DiffusionObjective(S, null_label=10)(LabelSpy(), (torch.randn(3, 2), torch.zeros(4, dtype=torch.long)),
                                             torch.Generator())


# --- the recipes train exactly as before -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["digits", "video-shapes", "video-digits", "toy-moons", "video-shapes accumulate 2",
                                  "digits accumulate 2"])
def test_recipes_train_with_the_stored_losses(name):
    """The first steps of each recipe (smoke preset of the fixture, one thread) give the stored losses:
    the objectives draw labels, t and ε in the same order, and the micro-batches are the same. On the
    CPU that stored them they come back bit for bit; another CPU's kernels round differently (about
    1e-7 of the loss), while a changed draw moves a loss by far more than the 1e-5 allowed."""
    golden = json.loads(GOLDEN.read_text())
    task, _, accumulate = name.partition(" accumulate ")
    recipe = get_recipe(task, get_preset("smoke").replace(**{k: v for k, v in golden["preset"].items() if k != "name"}))
    expected = [float.fromhex(x) for x in golden[name]]
    make_batch = recipe.make_batch
    if accumulate:
        make_batch = recipe.replace(batch_size=recipe.batch_size // int(accumulate)).make_batch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(recipe.build_model(), recipe.loss_fn, make_batch,
                          recipe.train_config(len(expected), progress=False, accumulate=int(accumulate or 1)), "cpu")
        trainer.fit()
    finally:
        torch.set_num_threads(threads)
    assert trainer.history["loss"] == pytest.approx(expected, rel=1e-5, abs=0)
