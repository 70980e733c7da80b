"""course_lib.workshop.data_scale: nested finite clip sets, fair losses, nearest-neighbour distances, training on a set."""
import pytest
import torch
from torch import nn

from course_lib.workshop import data_scale
from course_lib.config import get_preset
from course_lib.workshop.recipes import get_recipe

FRAMES, SIZE = 2, 16


def tiny_recipe(**overrides):
    preset = get_preset("smoke").replace(video_size=SIZE, video_frames=FRAMES, video_base_channels=8)
    return get_recipe("video-shapes", preset, **{"steps": 2, "batch_size": 2, **overrides})


class ZeroPredictor(nn.Module):
    """Predicts 0 for everything: with the x0 objective its loss is mean(x0²), whatever t and ε."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return torch.zeros_like(x) + 0 * self.unused


def test_clip_sets_are_nested_distinct_bytes():
    big = data_scale.render_clip_set("video-shapes", 250, FRAMES, SIZE, seed=3)
    small = data_scale.render_clip_set("video-shapes", 100, FRAMES, SIZE, seed=3)
    assert big.shape == (250, FRAMES, 3, SIZE, SIZE) and big.dtype == torch.uint8
    assert torch.equal(big[:100], small)  # the same seed: the small set is the start of the big one
    assert len(torch.unique(big.flatten(1), dim=0)) == 250  # no clip twice
    other = data_scale.render_clip_set("video-shapes", 100, FRAMES, SIZE, seed=4)
    assert not torch.equal(other, small)
    digits = data_scale.render_clip_set("video-digits", 5, FRAMES, SIZE)
    assert digits.shape == (5, FRAMES, 1, SIZE, SIZE)


def test_bytes_round_trip_within_one_level():
    video = torch.rand(3, 2, 3, 4, 4) * 2 - 1
    back = data_scale.from_bytes(data_scale.to_bytes(video))
    assert (back - video).abs().max() <= 1 / 255 + 1e-6
    assert data_scale.from_bytes(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]


def test_batches_come_from_the_set_and_follow_the_generator():
    clips = data_scale.render_clip_set("video-shapes", 7, FRAMES, SIZE)
    make_batch = data_scale.clip_set_batches(clips, 5)
    batch = make_batch(torch.Generator().manual_seed(0))
    assert batch.shape == (5, FRAMES, 3, SIZE, SIZE) and batch.dtype == torch.float32
    members = data_scale.from_bytes(clips).flatten(1)
    assert all((members == row).all(dim=1).any() for row in batch.flatten(1))
    assert torch.equal(batch, make_batch(torch.Generator().manual_seed(0)))


def test_fixed_noise_loss_is_exact_for_a_known_model_and_repeatable():
    recipe = tiny_recipe()  # x0 objective
    clips = data_scale.render_clip_set("video-shapes", 10, FRAMES, SIZE)
    zero = data_scale.fixed_noise_loss(ZeroPredictor(), recipe.loss_fn, clips, batch_size=4)
    assert zero == pytest.approx(data_scale.from_bytes(clips).square().mean().item(), rel=1e-5)
    model = recipe.build_model()
    first = data_scale.fixed_noise_loss(model, recipe.loss_fn, clips, seed=1)
    assert first == data_scale.fixed_noise_loss(model, recipe.loss_fn, clips, seed=1)
    assert first != data_scale.fixed_noise_loss(model, recipe.loss_fn, clips, seed=2)  # other t and ε
    assert model.training  # left as it was


def test_nearest_clip_distance_is_zero_for_members_and_the_rms_otherwise():
    clips = data_scale.render_clip_set("video-shapes", 30, FRAMES, SIZE)
    members = data_scale.from_bytes(clips[[2, 17]])
    assert torch.equal(data_scale.nearest_clip_distance(members, clips, chunk=7), torch.zeros(2))
    distance, index = data_scale.nearest_clip(members, clips, chunk=7)
    assert index.tolist() == [2, 17] and distance.tolist() == [0.0, 0.0]
    outsider = torch.zeros(1, FRAMES, 3, SIZE, SIZE)
    rms = (data_scale.from_bytes(clips) - outsider).square().flatten(1).mean(1).sqrt()
    distance, index = data_scale.nearest_clip(outsider, clips, chunk=4)  # across chunks
    assert distance.item() == pytest.approx(rms.min().item(), rel=1e-4) and index.item() == rms.argmin().item()


def test_training_on_a_set_saves_and_reloads(tmp_path):
    recipe = tiny_recipe()
    clips = data_scale.render_clip_set("video-shapes", 4, FRAMES, SIZE)
    path = tmp_path / "set4.pt"
    trainer = data_scale.train_on_clip_set(recipe, clips, steps=2, path=path)
    assert trainer.step == 2 and path.exists()
    again = data_scale.train_on_clip_set(recipe, clips, steps=2, path=path)  # loaded, not retrained
    assert again.history == trainer.history
    assert all(torch.equal(p, q) for p, q in zip(again.model.parameters(), trainer.model.parameters()))


@pytest.mark.parametrize("call, message", [
    (lambda: data_scale.render_clip_set("digits", 3, 2, 16), "task: expected one of"),
    (lambda: data_scale.render_clip_set("video-shapes", 0, 2, 16), "n: expected a positive int"),
    (lambda: data_scale.render_clip_set("video-shapes", 3, 2, 16, seed=-1), "seed: expected an int >= 0"),
    (lambda: data_scale.from_bytes(torch.zeros(2)), "clips: expected a uint8 tensor"),
    (lambda: data_scale.clip_set_batches(torch.zeros(2, 2, 1, 4, 4), 2), "clips: expected a non-empty uint8"),
    (lambda: data_scale.clip_set_batches(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), 2), "clips: expected a tensor of rank 5"),
    (lambda: data_scale.clip_set_batches(torch.zeros(2, 2, 1, 4, 4, dtype=torch.uint8), 0), "batch_size: expected"),
    (lambda: data_scale.train_on_clip_set("recipe", torch.zeros(2, 2, 3, 16, 16, dtype=torch.uint8), 2),
     "recipe: expected a Recipe"),
    (lambda: data_scale.train_on_clip_set(tiny_recipe(), torch.zeros(2, 3, 3, 16, 16, dtype=torch.uint8), 2),
     "clips: expected clips of the recipe's shape"),
    (lambda: data_scale.train_on_clip_set(get_recipe("video-digits", "smoke"), torch.zeros(2, 4, 1, 32, 32, dtype=torch.uint8), 2),
     "recipe: expected an unconditional video recipe .* got 'video-digits'"),
    (lambda: data_scale.nearest_clip_distance(torch.zeros(1, 2, 3, 4, 4), torch.zeros(2, 2, 1, 4, 4, dtype=torch.uint8)),
     "video: expected clips of the set's shape"),
    (lambda: data_scale.nearest_clip_distance(torch.zeros(2, 3, 4, 4), torch.zeros(2, 2, 1, 4, 4, dtype=torch.uint8)),
     "video: expected a tensor of rank 5"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
