import base64
import re
import warnings

import imageio.v3 as iio
import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.figure import Figure

from course_lib.views import figures as viz
from course_lib.data.files import read_video
from course_lib.views.figures import (
    animate,
    filmstrip,
    frame_scrubber,
    image_grid,
    plot_trajectory,
    save_gif,
    save_mp4,
    slider_view,
    step_scrubber,
    to_unit_range,
    video_to_uint8,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def shown(fig) -> torch.Tensor:
    return torch.as_tensor(fig.axes[0].images[0].get_array())


def test_unit_range_maps_and_reports_out_of_range():
    x = torch.tensor([-1.0, 0.0, 1.0])
    assert torch.equal(to_unit_range(x), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.warns(UserWarning, match=r"images: expected values in \[-1, 1\], got values in \[-3"):
        assert to_unit_range(torch.tensor([-3.0, 2.0])).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="video: expected values"):
        to_unit_range(torch.tensor([1.5]), name="video", out_of_range="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_unit_range(torch.tensor([1.5]), out_of_range="clip").item() == 1.0
        assert to_unit_range(torch.tensor([2.0, 4.0]), value_range=None).tolist() == [0.0, 1.0]


def test_image_grid_tiles_images_row_major():
    images = torch.linspace(-1, 1, 10).view(10, 1, 1, 1).expand(10, 1, 6, 5)
    fig = image_grid(images, nrow=4, title="ten")
    grid = shown(fig)
    assert isinstance(fig, Figure) and grid.shape == (3 * 7 - 1, 4 * 6 - 1)
    assert grid[7 + 2, 6 * 1 + 2] == pytest.approx((images[5, 0, 0, 0].item() + 1) / 2)  # row 1, column 1 = image 5
    _, ax = plt.subplots()
    assert image_grid(torch.zeros(2, 3, 4, 4), ax=ax) is ax.figure and shown(ax.figure).shape == (4, 9, 3)


def test_filmstrip_rows_are_clips_and_marks_positions():
    video = torch.rand(2, 20, 1, 8, 8) * 2 - 1
    positions = torch.rand(2, 20, 3, 2) * 7
    fig = filmstrip(video, positions=positions, max_frames=5)
    assert shown(fig).shape == (2 * 9 - 1, 5 * 9 - 1)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["t=0", "t=5", "t=10", "t=14", "t=19"]
    assert len(fig.axes[0].collections[0].get_offsets()) == 2 * 5 * 3
    rows = filmstrip(video, row_labels=["t=0", "t=99"]).axes[0].get_yticklabels()
    assert [r.get_text() for r in rows] == ["t=0", "t=99"]
    assert shown(filmstrip(video[0])).shape == (8, 16 * 9 - 1)  # one clip (T, C, H, W), 16 frames by default


def test_animate_is_an_inline_gif_of_every_frame():
    video = torch.linspace(-1, 1, 6).view(1, 6, 1, 1, 1).expand(3, 6, 3, 8, 8)  # frames differ (GIF merges repeats)
    html = animate(video, nrow=2).data
    data = re.search(r'src="data:image/gif;base64,([^"]+)"', html).group(1)
    frames = iio.imread(base64.b64decode(data), extension=".gif", index=None)
    assert frames.shape[:3] == (6, 2 * 9 - 1, 2 * 9 - 1)


def test_video_to_uint8_tiles_and_scales():
    frames = video_to_uint8(torch.ones(5, 4, 1, 3, 3), nrow=2, scale=2)
    assert frames.shape == (4, 2 * (3 * 4 - 1), 2 * (2 * 4 - 1), 3) and frames.dtype.name == "uint8"  # 3 rows of 2
    assert frames[0, 0, 0].tolist() == [255, 255, 255] and frames[0, 6, 6].tolist() == [128, 128, 128]  # a pad line


def test_saved_files_read_back(tmp_path):
    video = torch.zeros(6, 3, 9, 11)
    video[:, 0] = 1  # red
    video[:, :, :, :4] = -1
    video[torch.arange(6), 1, 0, torch.arange(6)] = 1  # a dot moving along the top row: no two frames alike
    gif = read_video(save_gif(video, tmp_path / "a.gif", fps=5))
    assert gif.shape == video.shape and (gif - video).abs().max() < 0.02
    mp4 = read_video(save_mp4(video, tmp_path / "a.mp4", fps=5))
    assert mp4.shape == (6, 3, 10, 12)  # odd sizes padded to even for H.264
    assert (mp4[:, :, :9, :11] - video).abs().mean() < 0.1


def test_plot_trajectory_for_points_and_images():
    one_d = plot_trajectory([torch.randn(100, 1) for _ in range(5)], max_paths=30)
    assert len(one_d.axes[0].get_lines()) == 30
    two_d = plot_trajectory(torch.randn(11, 50, 2), steps=list(range(10, -1, -1)), num_panels=4)
    assert [ax.get_title() for ax in two_d.axes] == ["step 10", "step 7", "step 3", "step 0"]
    images = plot_trajectory(torch.randn(9, 6, 1, 8, 8) * 3, num_panels=3)  # noisy x_t: clipped, no warning
    assert shown(images).shape == (4 * 9 - 1, 3 * 9 - 1)


def test_sliders_fall_back_to_static_panels():
    calls = []

    def render(fig, t, name):
        calls.append((t, name))
        fig.subplots().plot([0, t])

    fig = slider_view(render, t=(0, 30), name=["a", "b"])
    assert isinstance(fig, Figure) and calls == [(0, "a"), (10, "a"), (20, "a"), (30, "a")]
    assert isinstance(frame_scrubber(torch.zeros(2, 5, 1, 4, 4)), Figure)
    assert isinstance(step_scrubber(torch.randn(6, 40, 2)), Figure)


def test_sliders_redraw_with_widgets(monkeypatch):
    monkeypatch.setattr(viz, "_widgets", lambda: ipywidgets)
    seen = []
    box = slider_view(lambda fig, t, scale: seen.append((t, scale)), t=(0, 9), scale=(0.5, 2.0, 0.5, 1.0))
    assert isinstance(box, ipywidgets.VBox) and seen == [(0, 1.0)]
    t_slider, scale_slider = box.children[0].children
    assert isinstance(t_slider, ipywidgets.IntSlider) and isinstance(scale_slider, ipywidgets.FloatSlider)
    t_slider.value = 7
    assert seen[-1] == (7, 1.0)
    scrubber = frame_scrubber(torch.zeros(5, 1, 4, 4))
    assert scrubber.children[0].children[0].max == 4
    steps = step_scrubber([torch.randn(2, 1, 4, 4) for _ in range(3)])
    steps.children[0].children[0].value = 2


def test_interactive_without_a_kernel_is_an_error():
    with pytest.raises(ValueError, match="interactive: expected ipywidgets installed and a running notebook kernel"):
        slider_view(lambda fig, t: None, interactive=True, t=(0, 3))


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: image_grid(torch.zeros(2, 4, 1, 8, 8)), ["images", "rank 4", "(B, C, H, W)", "filmstrip"]),
        (lambda: image_grid(torch.zeros(1, 8, 8)), ["images", "x[None]"]),
        (lambda: image_grid(torch.zeros(2, 2, 8, 8)), ["images", "1 or 3 channels", "(2, 2, 8, 8)"]),
        (lambda: image_grid(torch.zeros(2, 1, 8, 8), nrow=0), ["nrow", "positive int"]),
        (lambda: filmstrip(torch.zeros(2, 8, 8)), ["video", "rank 4 or 5", "(T, C, H, W)"]),
        (lambda: filmstrip(torch.zeros(2, 3, 8, 16, 16)), ["video", "channels", "(B, C, T, H, W)", "from_channels_first_time"]),
        (lambda: filmstrip(torch.zeros(2, 4, 1, 8, 8), positions=torch.zeros(2, 3, 1, 2)), ["positions", "(2, 4, K, 2)"]),
        (lambda: filmstrip(torch.full((1, 2, 1, 4, 4), float("nan"))), ["video", "NaN"]),
        (lambda: filmstrip(torch.zeros(2, 3, 1, 4, 4), row_labels=["a"]), ["row_labels", "one label per clip (2)"]),
        (lambda: animate(torch.zeros(2, 1, 4, 4), fps=0), ["fps", "(0, 120]"]),
        (lambda: to_unit_range(torch.zeros(2), value_range=(1, -1)), ["value_range", "low < high"]),
        (lambda: to_unit_range(torch.zeros(2), out_of_range="ignore"), ["out_of_range", "'warn'"]),
        (lambda: plot_trajectory(torch.zeros(3, 4, 5)), ["trajectory", "(S, B, 2)", "(3, 4, 5)"]),
        (lambda: plot_trajectory([torch.zeros(4, 1), torch.zeros(5, 1)]), ["trajectory", "one shape"]),
        (lambda: plot_trajectory(torch.zeros(3, 4, 1), steps=[1, 2]), ["steps", "one label per snapshot (3)"]),
        (lambda: slider_view(lambda fig, t: None, t=(5, 1)), ["t", "slider spec"]),
        (lambda: slider_view(lambda fig: None), ["specs", "at least one slider"]),
        (lambda: slider_view("draw", t=(0, 1)), ["render_fn", "render_fn(fig, **values)"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)
