import pytest
import torch

from course_lib.diffusion.samplers import SamplerStep
from course_lib.views.toy import particle_animation, trajectory_from_steps

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_steps(n_steps=100, batch=5, dim=2):
    for t in range(n_steps - 1, -1, -1):
        yield SamplerStep(t, torch.full((batch, dim), float(t)), torch.zeros(batch, dim))


def test_trajectory_keeps_evenly_spaced_snapshots_and_the_final_sample():
    traj, labels = trajectory_from_steps(fake_steps(), keep=5)
    assert traj.shape == (5, 5, 2)
    assert labels == [99, 74, 49, 25, 0] or labels == [99, 74, 50, 25, 0]
    assert torch.equal(traj[:, 0, 0], torch.tensor(labels, dtype=torch.float32))
    short, labels = trajectory_from_steps(fake_steps(n_steps=3), keep=40)
    assert labels == [2, 1, 0] and short.shape[0] == 3


@pytest.mark.parametrize("dim", [1, 2])
def test_particle_animation_has_one_frame_per_snapshot(dim):
    traj = torch.randn(4, 50, dim, generator=torch.Generator().manual_seed(0))
    html = particle_animation(traj, steps=[30, 20, 10, 0], data=torch.randn(100, dim)).data
    assert "<script" in html
    assert html.count("base64") == 4  # one embedded image per frame
    assert "frames[3]" in html and "frames[4]" not in html


@pytest.mark.parametrize("call, name", [
    (lambda: particle_animation(torch.zeros(4, 5, 3)), "trajectory"),
    (lambda: particle_animation(torch.full((2, 5, 2), float("nan"))), "trajectory"),
    (lambda: particle_animation(torch.zeros(2, 5, 2), steps=[1]), "steps"),
    (lambda: particle_animation(torch.zeros(2, 5, 2), data=torch.zeros(5, 1)), "data"),
    (lambda: particle_animation(torch.zeros(2, 5, 2), fps=0), "fps"),
    (lambda: trajectory_from_steps(iter([])), "steps"),
    (lambda: trajectory_from_steps(fake_steps(), keep=0), "keep"),
])
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        call()
