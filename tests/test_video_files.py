import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from course_lib.data.files import VideoFolder, read_video, resize_center_crop


def ramp_frames(frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (T, H, W, 3): frame i is a flat grey of level 6·i, a red left third, a blue right third."""
    video = np.zeros((frames, height, width, 3), dtype=np.uint8)
    video[...] = (6 * np.arange(frames, dtype=np.uint8))[:, None, None, None]
    video[:, :, : width // 3] = (255, 0, 0)
    video[:, :, width - width // 3:] = (0, 0, 255)
    return video


def write_gif(path, video):
    iio.imwrite(path, video, extension=".gif", duration=40, loop=0)
    return path


def write_mp4(path, video, fps=25):
    iio.imwrite(path, video, plugin="FFMPEG", fps=fps, codec="libx264", macro_block_size=1)
    return path


def test_read_gif_exactly(tmp_path):
    video = ramp_frames(6, 16, 24)
    clip = read_video(write_gif(tmp_path / "a.gif", video))
    assert clip.shape == (6, 3, 16, 24) and clip.dtype == torch.float32
    expected = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert (clip - expected).abs().max() < 0.02


def test_read_mp4_close_to_the_source(tmp_path):
    video = ramp_frames(50, 64, 64)  # 2 s at 25 fps
    clip = read_video(write_mp4(tmp_path / "a.mp4", video))
    expected = torch.from_numpy(video).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert clip.shape == expected.shape and clip.min() >= -1 and clip.max() <= 1
    assert (clip - expected).abs().mean() < 0.06  # lossy H.264 (chroma subsampled at the colour edges), but close


def test_resize_shorter_side_then_crop_the_centre(tmp_path):
    clip = read_video(write_gif(tmp_path / "wide.gif", ramp_frames(3, 30, 60)), size=12)  # 30x60 -> 12x24 -> 12x12
    assert clip.shape == (3, 3, 12, 12)
    middle = clip[:, :, :, 4:8]
    assert (middle[:, 0] - middle[:, 2]).abs().max() < 0.05  # grey centre third survives the crop
    assert clip[0, 0, 6, 0] > 0.5  # the red third starts at the crop's left edge: 24/3 = 8 px, crop from 6
    assert resize_center_crop(torch.zeros(2, 1, 5, 9), 5).shape == (2, 1, 5, 5)


def test_first_frames_and_grey(tmp_path):
    path = write_gif(tmp_path / "a.gif", ramp_frames(8, 12, 12))
    assert read_video(path, frames=3).shape == (3, 3, 12, 12)
    grey = read_video(path, channels=1)
    red = grey[0, 0, 6, 0].item()
    assert grey.shape == (8, 1, 12, 12) and red == pytest.approx(0.299 * 2 - 1, abs=0.02)


def test_folder_gives_fixed_length_clips_with_stride(tmp_path):
    write_gif(tmp_path / "a.gif", ramp_frames(30, 16, 16))
    (tmp_path / "sub").mkdir()
    write_mp4(tmp_path / "sub" / "b.mp4", ramp_frames(30, 16, 16))
    data = VideoFolder(tmp_path, frames=4, size=8, stride=3, seed=0)
    assert len(data) == 2 and [p.name for p in data.paths] == ["a.gif", "b.mp4"]
    clip = data[0]
    assert clip.shape == (4, 3, 8, 8)
    levels = (clip[:, 1, 4, 4] + 1) * 127.5  # grey level 6·frame index in the centre
    assert np.allclose(np.diff(levels.numpy()), 18, atol=1.5)  # frames 3 apart


def test_folder_is_seeded_and_epochs_draw_new_clips(tmp_path):
    write_gif(tmp_path / "a.gif", ramp_frames(40, 8, 8))
    a, b = VideoFolder(tmp_path, frames=3, size=8, seed=1), VideoFolder(tmp_path, frames=3, size=8, seed=1)
    assert torch.equal(a[0], b[0])
    starts = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        starts.add(round(((a[0][0, 1, 4, 4] + 1) * 127.5 / 6).item()))
    assert len(starts) > 1


def test_unreadable_files_are_skipped_with_a_warning(tmp_path):
    write_gif(tmp_path / "good.gif", ramp_frames(5, 8, 8))
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.warns(UserWarning, match="broken.mp4"):
        data = VideoFolder(tmp_path, frames=2, size=8)
    assert [p.name for p in data.paths] == ["good.gif"]


@pytest.mark.parametrize(
    "setup, kwargs, words",
    [
        (lambda p: p / "missing", {}, ["root", "existing folder", "missing"]),
        (lambda p: p, {}, ["root", ".gif or .mp4", "none found"]),
        (lambda p: (p / "x.gif").write_bytes(b"junk") and p, {}, ["root", "readable", "1 unreadable"]),
        (lambda p: write_gif(p / "short.gif", ramp_frames(3, 8, 8)).parent, {}, ["frames", "short.gif", "has 3"]),
        (lambda p: write_gif(p / "a.gif", ramp_frames(6, 8, 8)).parent, {"channels": 2}, ["channels", "1 or 3", "2"]),
        (lambda p: write_gif(p / "a.gif", ramp_frames(6, 8, 8)).parent, {"stride": 0}, ["stride", "positive int"]),
    ],
)
def test_folder_bad_input(tmp_path, setup, kwargs, words):
    root = setup(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as err:
            VideoFolder(root, frames=kwargs.pop("frames", 4), size=8, **kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "name, kwargs, words",
    [
        ("nothing.gif", {}, ["path", "existing", "nothing.gif"]),
        ("a.avi", {}, ["path", ".gif or .mp4", "a.avi"]),
        ("a.gif", {"frames": 9}, ["frames", "at most the 6 frames", "9"]),
        ("a.gif", {"frames": 0}, ["frames", "positive int"]),
        ("a.gif", {"channels": 4}, ["channels", "1 or 3"]),
    ],
)
def test_read_video_bad_input(tmp_path, name, kwargs, words):
    write_gif(tmp_path / "a.gif", ramp_frames(6, 8, 8))
    (tmp_path / "a.avi").write_bytes(b"")
    with pytest.raises(ValueError) as err:
        read_video(tmp_path / name, **kwargs)
    for word in words:
        assert word in str(err.value)
