"""Your own videos: read .gif and .mp4 files into normalised clips (seed §3.1, data preprocessing).

Preprocessing, in order, one frame at a time: decode to RGB (MP4 through imageio-ffmpeg's bundled
ffmpeg, GIF through Pillow) -> optional grey (ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B) ->
resize so the shorter side is ``size`` (bilinear, anti-aliased) -> centre-crop ``size × size`` -> map
[0, 255] to [-1, 1]. Clips come out as (T, C, H, W), the course's video layout without the batch.

A file that cannot be read (empty, not a video, truncated, no permission, frames above
``MAX_FRAME_PIXELS``) gives one ValueError naming the file and the reason.
"""
from __future__ import annotations

import struct
import warnings
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageSequence
from torch.utils.data import Dataset

from course_lib._validation import check_int_range, check_positive_int, fail

VIDEO_EXTENSIONS = (".gif", ".mp4")
LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B
MAX_SIDE = 4096
MAX_FRAME_PIXELS = MAX_SIDE * MAX_SIDE  # larger frames are refused before decoding (a 4K frame has half as many)
CHUNK_FRAMES = 64


def _gif_frames(path: Path):
    """Yield the frames of a GIF as uint8 (H, W, 3), refusing any frame above MAX_FRAME_PIXELS.

    The size is checked from the header and again per frame before Pillow decodes it, so a tiny file
    that claims a huge canvas is refused without allocating it.
    """
    with open(path, "rb") as file:
        header = file.read(10)
    if header[:6] in (b"GIF87a", b"GIF89a"):
        _check_frame_size(path, *struct.unpack("<HH", header[6:10]))  # the logical screen (width, height)
    with Image.open(path) as image:
        for frame in ImageSequence.Iterator(image):
            _check_frame_size(path, *frame.size)
            yield np.asarray(frame.convert("RGB"))


def _mp4_frames(path: Path):
    """Yield the frames of a video as uint8 (H, W, 3) from ffmpeg's pipe, one at a time."""
    with open(path, "rb"):  # a missing read permission reads as one, not as an ffmpeg message
        pass
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", input_params=[], output_params=[])
    try:
        width, height = next(reader)["size"]  # ffmpeg's header information, before any frame is decoded
        _check_frame_size(path, width, height)
        for data in reader:
            yield np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
    finally:
        reader.close()  # stops ffmpeg when fewer frames than the file holds are needed


def _check_frame_size(path: Path, width: int, height: int) -> None:
    if width * height > MAX_FRAME_PIXELS:
        raise _TooLarge(f"frames of {width}x{height} = {width * height:,} pixels are above the limit of "
                        f"{MAX_FRAME_PIXELS:,} ({MAX_SIDE}x{MAX_SIDE}); scale the video down first")


class _TooLarge(Exception):
    pass


class UnreadableVideo(ValueError):
    """A file that could not be decoded; ``reason`` says why in one line."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"path: expected a readable .gif or .mp4 video, got {str(path)!r} ({reason})")
        self.path, self.reason = path, reason


def _frames(path: Path):
    """Yield uint8 (H, W, 3) frames; every decoder or file error becomes one ValueError naming the file."""
    try:
        if path.stat().st_size == 0:
            raise OSError("the file is empty")
        yield from (_gif_frames(path) if path.suffix.lower() == ".gif" else _mp4_frames(path))
    except Exception as error:  # Pillow, ffmpeg and the OS raise many kinds: OSError, TypeError, IndexError, ...
        reason = (str(error).strip().splitlines() or [""])[0]
        raise UnreadableVideo(path, reason if isinstance(error, _TooLarge) else f"{type(error).__name__}: {reason}") \
            from error


def resize_center_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (T, C, H, W) so the shorter side is ``size``, then crop the centre -> (T, C, size, size)."""
    check_positive_int("size", size)
    h, w = video.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        video = F.interpolate(video.float(), size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return video[..., top: top + size, left: left + size]


def _load(path: Path, frames: int | None, size: int | None, channels: int, dtype=torch.float32) -> torch.Tensor:
    """Decode, grey if asked, resize and crop each frame as it arrives -> (T, C, H, W) in [0, 255].

    Only one full-size frame is held at a time, so memory follows the output, not the file. Frames
    are stored in chunks of CHUNK_FRAMES: thousands of small tensors kept between the large per-frame
    temporaries would fragment the heap. ``dtype=torch.uint8`` rounds each processed frame to bytes.
    """
    chunks, count = [], 0
    for frame in _frames(path):
        x = torch.tensor(frame).permute(2, 0, 1)[None].float()  # (1, 3, H, W), a copy: decoders lend read-only buffers
        if channels == 1:
            x = (x * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
        if size is not None:
            x = resize_center_crop(x, size).clamp(0, 255)
        if count % CHUNK_FRAMES == 0:
            chunks.append(torch.empty((min(CHUNK_FRAMES, frames or CHUNK_FRAMES), *x.shape[1:]), dtype=dtype))
        chunks[-1][count % CHUNK_FRAMES] = x[0].round() if dtype == torch.uint8 else x[0]
        count += 1
        if count == frames:
            break
    if not chunks:
        raise UnreadableVideo(path, "no frames decoded")
    chunks[-1] = chunks[-1][: count - CHUNK_FRAMES * (len(chunks) - 1)]
    return torch.cat(chunks)


def read_video(path: str | Path, frames: int | None = None, size: int | None = None, channels: int = 3) -> torch.Tensor:
    """One .gif or .mp4 file -> (T, C, H, W) float32 in [-1, 1].

    frames: keep the first ``frames`` (error if the file has fewer; only those are decoded); None keeps all.
    size: resize the shorter side to ``size`` and centre-crop a square; None keeps the frame size.
    channels: 3 (RGB) or 1 (grey).
    A file that cannot be decoded raises :class:`UnreadableVideo` (a ValueError) naming it and why.
    """
    path = Path(path)
    if not path.is_file():
        fail("path", "an existing .gif or .mp4 file", str(path))
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        fail("path", "a file ending in " + " or ".join(VIDEO_EXTENSIONS), str(path))
    if frames is not None:
        check_positive_int("frames", frames)
    if channels not in (1, 3):
        fail("channels", "1 or 3", channels)
    if size is not None:
        check_int_range("size", size, 1, MAX_SIDE)
    clip = _load(path, frames, size, channels)
    if frames is not None and len(clip) < frames:
        fail("frames", f"at most the {len(clip)} frames in {path.name}", frames)
    return clip / 127.5 - 1


class VideoFolder(Dataset):
    """Fixed-length clips from every .gif/.mp4 under ``root`` (searched recursively).

    Item i is a clip of file i: ``frames`` frames taken every ``stride`` frames from a random start,
    -> (T, C, size, size) float32 in [-1, 1]. The start is drawn from (seed, epoch, i), so the same
    seed gives the same clips; call :meth:`set_epoch` to draw new starts each epoch.

    Every file is decoded once, here, and kept as uint8 (fine for the course's small folders).
    Unreadable files are skipped with a warning naming them; a readable file shorter than one clip,
    an empty or missing folder, or a folder with nothing readable is an error.
    """

    def __init__(self, root: str | Path, frames: int, size: int, channels: int = 3, stride: int = 1, seed: int = 0):
        self.root = Path(root)
        check_positive_int("frames", frames)
        check_int_range("size", size, 1, 4096)
        check_positive_int("stride", stride)
        if channels not in (1, 3):
            fail("channels", "1 or 3", channels)
        if isinstance(seed, bool) or not isinstance(seed, int):
            fail("seed", "an int", seed)
        if not self.root.is_dir():
            fail("root", "an existing folder of .gif/.mp4 files", str(self.root))
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not files:
            fail("root", "a folder containing .gif or .mp4 files", f"{self.root} (none found)")
        self.frames, self.size, self.channels, self.stride, self.seed = frames, size, channels, stride, seed
        self.span = (frames - 1) * stride + 1  # source frames one clip covers
        self.epoch = 0
        self.paths: list[Path] = []
        self.videos: list[torch.Tensor] = []  # uint8 (T_i, C, size, size)
        for path in files:
            try:
                clip = _load(path, None, size, channels, dtype=torch.uint8)
            except UnreadableVideo as error:  # skip it, keep the others
                warnings.warn(f"VideoFolder: skipping unreadable file {path} ({error.reason})", stacklevel=2)
                continue
            if len(clip) < self.span:
                fail("frames", f"clips that fit every video ({frames} frames with stride {stride} need "
                     f"{self.span} source frames; {path.name} has {len(clip)})", frames)
            self.paths.append(path)
            self.videos.append(clip)
        if not self.videos:
            fail("root", "at least one readable .gif or .mp4 file", f"{len(files)} unreadable file(s) in {self.root}")

    def set_epoch(self, epoch: int) -> None:
        """Choose a new set of clip starts (deterministic given seed and epoch)."""
        self.epoch = check_int_range("epoch", epoch, 0, 2**31 - 1)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> torch.Tensor:
        video = self.videos[i]
        state = np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0]
        g = torch.Generator().manual_seed(int(state))
        start = int(torch.randint(0, len(video) - self.span + 1, (1,), generator=g))
        return video[start: start + self.span: self.stride].float() / 127.5 - 1
