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


# --- files that cannot be read: one ValueError naming the file, never a decoder's own exception --------

def full_gif(path):
    return write_gif(path, np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))


BAD_FILES = {
    "empty.mp4": (lambda p: p.write_bytes(b""), "the file is empty"),
    "empty.gif": (lambda p: p.write_bytes(b""), "the file is empty"),
    "text.mp4": (lambda p: p.write_text("not a video\n"), "OSError"),
    "text.gif": (lambda p: p.write_text("not a gif\n"), "cannot identify image file"),
    "truncated.gif": (lambda p: p.write_bytes(full_gif(p.with_name("full.gif")).read_bytes()[:600]), "truncated"),
    "huge.gif": (lambda p: p.write_bytes(b"GIF89a" + (10000).to_bytes(2, "little") * 2 + b"\x00" * 10),
                 "10000x10000"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_is_one_value_error_naming_it(tmp_path, name):
    make, reason = BAD_FILES[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(ValueError) as err:
        read_video(path, size=8)
    message = str(err.value)
    assert str(path) in message and reason in message and "\n" not in message, message


def test_a_file_without_read_permission_is_one_value_error(tmp_path, monkeypatch):
    import os

    import course_lib.data.files as files

    path = full_gif(tmp_path / "secret.gif")
    if os.geteuid() != 0:  # a real permission error; root reads anything, so there it is simulated
        path.chmod(0)
    else:
        def no_permission(name, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(name))
        monkeypatch.setattr(files, "open", no_permission, raising=False)
    try:
        with pytest.raises(ValueError, match="PermissionError: .*Permission denied") as err:
            read_video(path)
        assert str(path) in str(err.value)
    finally:
        path.chmod(0o644)


def test_a_huge_gif_is_refused_from_its_header_in_under_a_second(tmp_path):
    """A 75 KB GIF of 10000x10000 pixels (100 M pixels, 300 MB as RGB) is refused before decoding."""
    import time

    from PIL import Image

    path = tmp_path / "bomb.gif"
    Image.new("P", (10_000, 10_000), 0).save(path)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="10000x10000 = 100,000,000 pixels are above the limit"):
        read_video(path, size=32)
    assert time.perf_counter() - start < 1.0


def test_folder_skips_every_kind_of_bad_file_with_a_warning(tmp_path):
    write_gif(tmp_path / "good.gif", ramp_frames(5, 8, 8))
    for name, (make, _) in BAD_FILES.items():
        make(tmp_path / name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = VideoFolder(tmp_path, frames=2, size=8)
    assert sorted(p.name for p in data.paths) == ["full.gif", "good.gif"]
    skipped = " ".join(str(w.message) for w in caught if "skipping" in str(w.message))
    assert all(name in skipped for name in BAD_FILES), skipped


MEMORY_SCRIPT = """
import resource, sys
from course_lib.data.files import VideoFolder
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = VideoFolder(sys.argv[1], frames=8, size=32)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert len(data) == 1 and len(data.videos[0]) == 300 and data[0].shape == (8, 3, 32, 32)
print((after - before) / 1024)
"""


def test_folder_memory_follows_the_clips_not_the_file(tmp_path):
    """Peak memory that VideoFolder(frames=8, size=32) adds on one 640x480, 300-frame MP4: ≤ 300 MB.

    Measured in a fresh process as the growth of its peak resident set (ru_maxrss) over the peak
    after imports, so torch's own footprint is left out; ffmpeg runs as a child process and is
    not counted.
    """
    import os
    import subprocess
    import sys

    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    (tmp_path / "clips").mkdir()
    writer = imageio_ffmpeg.write_frames(str(tmp_path / "clips" / "big.mp4"), (640, 480), fps=25,
                                         macro_block_size=1, ffmpeg_log_level="error",
                                         output_params=["-preset", "ultrafast"])
    writer.send(None)
    for _ in range(300):  # 32x32 blocks of random colour, new every frame
        blocks = rng.integers(0, 255, (480 // 32, 640 // 32, 3), dtype=np.uint8)
        writer.send(np.ascontiguousarray(blocks.repeat(32, 0).repeat(32, 1)))
    writer.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "clips")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    added_mb = float(result.stdout.strip().splitlines()[-1])
    assert added_mb <= 300, f"VideoFolder added {added_mb:.0f} MB of peak memory"
