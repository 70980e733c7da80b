"""The GPU path of the trainer, on CPU: gradient accumulation and channels-last (workers: test_training_workers.py).

Tolerances. Accumulating two half batches computes the same gradient as one whole batch in exact
arithmetic: mean over 2n = (mean over the first n + mean over the second n) / 2, and halving is
exact in binary. In float32 the convolutions' weight gradients sum over the batch in another order
(one blocked reduction over 2n examples vs. two over n, then added), so the gradients differ in
the last bits (~1e-7 relative) and AdamW carries that into the weights: 1e-5 on weights of size <= 1
after 5 steps of lr 1e-2 (measured: 4.5e-8). Half the batch without accumulation moves them by 0.07
(asserted > 1e-3), so the test can fail. Resumes are compared bit for bit (torch.equal): the same kernels run on the
same data. Channels-last picks other convolution kernels, so it is compared to the contiguous run
with a relative tolerance on the loss.
"""
import pytest
import torch
from torch import nn

from course_lib.config import get_preset
from course_lib.models.mlp import MLPDenoiser
from course_lib.workshop.recipes import get_recipe
from course_lib.diffusion.schedules import make_schedule
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.training import TrainConfig, Trainer, parallel, random_rows

pytestmark = pytest.mark.usefixtures("one_thread")


def max_difference(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a.values(), b.values()))


def same_state(a: Trainer, b: Trainer) -> bool:
    pairs = [(a.model.state_dict(), b.model.state_dict()), (a.ema_model.state_dict(), b.ema_model.state_dict())]
    return all(torch.equal(x, y) for one, two in pairs for x, y in zip(one.values(), two.values())) \
        and a.history == b.history


class ConvNet(nn.Module):
    """conv -> GroupNorm -> SiLU -> conv on (B, 2, 8, 8): batch reductions in the weight gradients."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.SiLU(), nn.Conv2d(8, 2, 3, padding=1))

    def forward(self, x):
        return self.net(x)


def conv_model(seed: int = 0) -> ConvNet:
    torch.manual_seed(seed)
    return ConvNet()


def pairs(n: int):
    """make_batch: (inputs, targets), each (n, 2, 8, 8), drawn from the generator."""
    def make_batch(generator):
        inputs = torch.randn(n, 2, 8, 8, generator=generator)
        return inputs, inputs.flip(-1) + 0.1 * torch.randn(n, 2, 8, 8, generator=generator)
    return make_batch


def pair_loss(model, batch, generator):  # no noise drawn: the batch alone decides the loss
    inputs, targets = batch
    return ((model(inputs) - targets) ** 2).mean()


def conv_trainer(make_batch, steps=5, **config) -> Trainer:
    return Trainer(conv_model(), pair_loss, make_batch, TrainConfig(steps=steps, lr=1e-2, progress=False, **config),
                   "cpu")


# --- gradient accumulation -------------------------------------------------------------------------

def test_accumulating_two_half_batches_follows_the_gradient_of_the_whole_batch():
    make_half = pairs(4)

    def make_whole(generator, step=[0]):  # what micro-batches 0 and 1 of this step draw, as one batch of 8
        halves = [make_half(parallel.shard_generator("data", 0, step[0], s)) for s in (0, 1)]
        step[0] += 1
        return tuple(torch.cat(parts) for parts in zip(*halves))

    accumulated = conv_trainer(make_half, accumulate=2).fit()
    whole = conv_trainer(make_whole).fit()
    assert accumulated.config.shards == 2 and accumulated.config.accumulate == 2 and whole.config.accumulate == 1
    assert max_difference(accumulated.model.state_dict(), whole.model.state_dict()) <= 1e-5
    assert accumulated.history["loss"] == pytest.approx(whole.history["loss"], rel=1e-5)
    assert accumulated.history["grad_norm"] == pytest.approx(whole.history["grad_norm"], rel=1e-4)
    half = conv_trainer(make_half, shards=1).fit()  # half the batch, not accumulated: another trajectory
    assert max_difference(half.model.state_dict(), whole.model.state_dict()) > 1e-3


class DropoutMLP(MLPDenoiser):
    """Dropout draws from the global RNG, which the trainer reseeds per micro-batch."""

    def __init__(self):
        torch.manual_seed(0)
        super().__init__(2, hidden=32, depth=2, time_dim=16)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, t):
        return self.dropout(super().forward(x, t))


def mlp_trainer(steps: int, **config) -> Trainer:
    data = torch.randn(256, 2, generator=torch.Generator().manual_seed(1))
    return Trainer(DropoutMLP(), DiffusionObjective(make_schedule("linear", 50)), random_rows(data, 8),
                   TrainConfig(steps=steps, lr=3e-3, ema_decay=0.9, progress=False, seed=5, **config), "cpu")


def test_an_accumulating_run_resumes_bit_for_bit(tmp_path):
    straight = mlp_trainer(6, accumulate=2).fit()
    first = mlp_trainer(6, accumulate=2).fit(steps=3)
    first.save(tmp_path / "half.pt")
    resumed = Trainer.load(tmp_path / "half.pt", DropoutMLP(), first.loss_fn, first.make_batch, "cpu").fit()
    assert resumed.config.accumulate == 2 and resumed.step == 6 and same_state(resumed, straight)
    assert not same_state(mlp_trainer(6, accumulate=3).fit(), straight)  # the test can fail


def test_which_streams_each_layout_uses():
    """shards 0 (the carried streams) only for one process, one micro-batch, no workers; else W·accumulate."""
    assert TrainConfig(steps=1).resolved_shards(1) == 0
    assert TrainConfig(steps=1, accumulate=3).resolved_shards(1) == 3
    assert TrainConfig(steps=1, accumulate=3).resolved_shards(2) == 6
    assert TrainConfig(steps=1).resolved_shards(4) == 4
    assert TrainConfig(steps=1, workers=2).resolved_shards(1) == 1
    assert TrainConfig(steps=1, shards=8, accumulate=4).resolved_shards(2) == 8


@pytest.mark.parametrize("changes,message", [
    ({"accumulate": 0}, "accumulate: expected a positive int, got 0"),
    ({"accumulate": 1.5}, "accumulate: expected a positive int, got 1.5"),
    ({"workers": -1}, "workers: expected an int >= 0 (0 switches it off), got -1"),
    ({"memory_format": "nhwc"}, "memory_format: expected one of 'contiguous', 'channels_last', got 'nhwc'"),
])
def test_bad_switches_are_named(changes, message):
    with pytest.raises(ValueError) as error:
        TrainConfig(**changes)
    assert str(error.value) == message


def test_accumulate_that_contradicts_the_shards_is_named():
    with pytest.raises(ValueError, match=r"^accumulate: expected shards / world size = 2 / 1 = 2 \(the micro-batches "
                                         r"each process computes per step\), or 1, got 3$"):
        conv_trainer(pairs(4), shards=2, accumulate=3)


# --- channels-last ---------------------------------------------------------------------------------

def layouts_seen(trainer: Trainer, module: nn.Module) -> list[bool]:
    """Run 2 steps; for each call of ``module``: was its input channels-last (and not plain contiguous)?"""
    seen = []
    handle = module.register_forward_pre_hook(lambda _, args: seen.append(
        args[0].is_contiguous(memory_format=torch.channels_last) and not args[0].is_contiguous()))
    try:
        trainer.fit(steps=2)
    finally:
        handle.remove()
    return seen


def test_channels_last_stores_weights_and_image_batches_nhwc_and_trains_like_contiguous():
    nhwc, plain = conv_trainer(pairs(4), memory_format="channels_last"), conv_trainer(pairs(4))
    convs = [p for p in nhwc.model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    assert all(p.is_contiguous() for p in nhwc.model.parameters() if p.dim() != 4)
    assert layouts_seen(nhwc, nhwc.model.net[0]) == [True, True]
    assert layouts_seen(plain, plain.model.net[0]) == [False, False]  # the check can fail
    assert nhwc.history["loss"] == pytest.approx(plain.history["loss"], rel=1e-4)


def test_channels_last_leaves_video_batches_5d_and_trains_the_3d_unet():
    preset = get_preset("smoke").replace(num_diffusion_steps=50, video_size=16, video_frames=3, video_base_channels=8,
                                         video_batch_size=2)
    recipe = get_recipe("video-digits", preset)

    def trainer(memory_format):
        return Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch,
                       recipe.train_config(4, progress=False, memory_format=memory_format), "cpu")

    nhwc, plain = trainer("channels_last"), trainer("contiguous")
    inputs = []
    handle = nhwc.model.register_forward_pre_hook(lambda _, args: inputs.append((args[0].dim(), args[0].is_contiguous())))
    nhwc.fit(steps=2)
    handle.remove()
    assert inputs == [(5, True), (5, True)]  # (B, T, C, H, W) as it came: the model folds time into the batch
    assert nhwc.model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    plain.fit(steps=2)
    assert nhwc.history["loss"] == pytest.approx(plain.history["loss"], rel=1e-3)


def test_a_channels_last_run_resumes_bit_for_bit(tmp_path):
    straight = conv_trainer(pairs(4), steps=4, memory_format="channels_last").fit()
    first = conv_trainer(pairs(4), steps=4, memory_format="channels_last").fit(steps=2)
    first.save(tmp_path / "nhwc.pt")
    resumed = Trainer.load(tmp_path / "nhwc.pt", conv_model(), pair_loss, pairs(4), "cpu").fit()
    assert resumed.config.memory_format == "channels_last" and same_state(resumed, straight)
