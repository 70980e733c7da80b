"""Joint image + video training: image groups, the weighted loss, image_mode for the image part, bad input."""
import pytest
import torch
from torch import nn

from course_lib.diffusion.objectives import (
    JointImageVideoObjective,
    accepts_image_mode,
    diffusion_loss,
    image_groups,
    joint_losses,
    split_batch,
)
from course_lib.models.conv_lstm import ConvLSTMDenoiser
from course_lib.models.unet3d import UNet3D
from course_lib.diffusion.schedules import make_schedule
from course_lib.training import Trainer, TrainConfig

SCHEDULE = make_schedule("cosine", 50)


def tiny_unet3d() -> UNet3D:
    torch.manual_seed(0)
    return UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), max_frames=4)


def clips(b=4, t=3, seed=0) -> torch.Tensor:
    """Clips whose every pixel names its own (clip, frame): value 10·clip + frame."""
    index = torch.arange(b)[:, None] * 10 + torch.arange(t)[None, :]
    return index[:, :, None, None, None].float().expand(b, t, 1, 8, 8).clone()


class Spy(nn.Module):
    """Records how it was called; predicts zeros."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, x, t, image_mode=False):
        self.calls.append((tuple(x.shape), image_mode, x.detach().clone()))
        return torch.zeros_like(x) + self.weight


def test_image_groups_are_distinct_frames_of_the_batch_from_different_clips():
    video = clips(4, 3)
    groups = image_groups(video, 2, torch.Generator().manual_seed(0))
    assert groups.shape == (2, 3, 1, 8, 8)
    names = groups[:, :, 0, 0, 0].flatten().tolist()
    assert len(set(names)) == 6  # drawn without replacement
    assert set(names) <= set(video[:, :, 0, 0, 0].flatten().tolist())
    assert all(len({int(n) // 10 for n in group}) > 1 for group in groups[:, :, 0, 0, 0].tolist())
    again = image_groups(video, 2, torch.Generator().manual_seed(0))
    assert torch.equal(groups, again)
    more = image_groups(clips(1, 2), 3, torch.Generator().manual_seed(0))  # more than the batch has: with replacement
    assert more.shape == (3, 2, 1, 8, 8)


def test_split_batch_rounds_the_image_share():
    assert split_batch(8, 0.25) == (6, 2)
    assert split_batch(8, 0.0) == (8, 0)
    assert split_batch(3, 1.0) == (0, 3)


def test_without_images_the_joint_loss_is_the_plain_diffusion_loss():
    model, video = tiny_unet3d(), torch.rand(3, 4, 1, 8, 8) * 2 - 1
    parts = joint_losses(model, video, SCHEDULE, "x0", image_fraction=0.0, generator=torch.Generator().manual_seed(1))
    plain = diffusion_loss(model, video, SCHEDULE, "x0", generator=torch.Generator().manual_seed(1))
    assert torch.allclose(parts["total"], plain) and torch.allclose(parts["video"], plain)
    assert parts["image"].item() == 0.0


def test_the_image_part_is_denoised_in_image_mode_and_weighted_by_its_size():
    spy, video = Spy(), clips(4, 3)
    parts = joint_losses(spy, video, SCHEDULE, "x0", image_fraction=0.25, generator=torch.Generator().manual_seed(2))
    (video_shape, video_mode, _), (image_shape, image_mode, _) = spy.calls
    assert video_shape == (3, 3, 1, 8, 8) and video_mode is False
    assert image_shape == (1, 3, 1, 8, 8) and image_mode is True
    expected = (3 * parts["video"] + 1 * parts["image"]) / 4
    assert torch.allclose(parts["total"], expected)
    assert parts["video"] != parts["image"]  # x0 targets differ: the clips' values are not the same


def test_only_images_uses_image_mode_for_the_whole_batch():
    spy = Spy()
    parts = joint_losses(spy, clips(2, 3), SCHEDULE, "eps", image_fraction=1.0, generator=torch.Generator().manual_seed(3))
    assert [mode for _, mode, _ in spy.calls] == [True]
    assert torch.allclose(parts["total"], parts["image"])


def test_trainer_trains_a_unet3d_jointly_and_reproducibly():
    def run() -> list[float]:
        model = tiny_unet3d()
        make_batch = lambda g: torch.rand(4, 4, 1, 8, 8, generator=g) * 2 - 1  # noqa: E731
        trainer = Trainer(model, JointImageVideoObjective(SCHEDULE, "x0", 0.5), make_batch,
                          TrainConfig(steps=3, lr=1e-3, progress=False), "cpu")
        trainer.fit()
        return trainer.history["loss"]

    first, second = run(), run()
    assert len(first) == 3 and all(torch.isfinite(torch.tensor(first)))
    assert first == second


def test_accepts_image_mode_tells_the_models_apart():
    assert accepts_image_mode(tiny_unet3d())
    assert not accepts_image_mode(ConvLSTMDenoiser(1, 8, 8))


@pytest.mark.parametrize("call, message", [
    (lambda: joint_losses(tiny_unet3d(), torch.rand(4, 1, 8, 8), SCHEDULE), "batch: expected video clips of rank 5"),
    (lambda: joint_losses(tiny_unet3d(), clips(), SCHEDULE, image_fraction=1.5), "image_fraction: expected"),
    (lambda: joint_losses(ConvLSTMDenoiser(1, 8, 8), clips(), SCHEDULE, image_fraction=0.5),
     "model: expected a video model whose forward takes image_mode"),
    (lambda: joint_losses(tiny_unet3d(), clips(), SCHEDULE, objective="noise"), "objective: expected"),
    (lambda: image_groups(torch.rand(2, 1, 8, 8), 1), "video: expected video clips of rank 5"),
    (lambda: image_groups(clips(), -1), "groups: expected an int >= 0"),
    (lambda: JointImageVideoObjective(SCHEDULE, "x0", image_fraction=-0.1), "image_fraction: expected"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_conv_lstm_still_trains_on_videos_only():
    model = ConvLSTMDenoiser(1, 8, 8)
    parts = joint_losses(model, torch.rand(2, 3, 1, 8, 8), SCHEDULE, image_fraction=0.0,
                         generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(parts["total"])
