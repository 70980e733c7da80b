import matplotlib

matplotlib.use("Agg")
import matplotlib.figure
import pytest
import torch

from course_lib.views.forward import noised_panels, noising_explorer, snr_plot


def test_explorer_falls_back_to_a_static_grid_outside_a_kernel():
    fig = noising_explorer(torch.randn(500, 1), torch.zeros(1, 8, 8), num_steps=100)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 4 * 2  # 4 timesteps x (histogram, image)


def test_panels_show_the_noised_image():
    axes = noised_panels(torch.randn(500, 1), torch.ones(1, 8, 8), 99, "cosine", num_steps=100)
    shown = axes[1].images[0].get_array()
    assert shown.shape == (8, 8) and shown.std() > 0.1  # at t = T-1 the constant image is noise


def test_snr_plot_draws_every_schedule():
    ax = snr_plot(100)
    assert [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")] == ["linear", "cosine", "sigmoid"]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: noised_panels(torch.randn(5), torch.zeros(1, 8, 8), 0, "linear"), ["points", "(N, 1)", "(5,)"]),
        (lambda: noised_panels(torch.randn(5, 1), torch.zeros(8, 8), 0, "linear"), ["image", "(C, H, W)", "(8, 8)"]),
        (lambda: noised_panels(torch.randn(5, 1), torch.zeros(1, 8, 8), 0, "fast"), ["name", "'fast'"]),
        (lambda: noised_panels(torch.randn(5, 1), torch.zeros(1, 8, 8), 100, "linear", 100), ["t", "[0, 99]", "100"]),
        (lambda: noising_explorer(torch.randn(5, 1), torch.zeros(1, 8, 8), interactive=True), ["interactive", "kernel"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)
