"""Your own videos: read .gif and .mp4 files into normalised clips (seed §3.1, data preprocessing).

Preprocessing, in order: decode to RGB (imageio v3; MP4 through imageio-ffmpeg's bundled ffmpeg,
GIF through Pillow) -> optional grey (ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B) -> resize so
the shorter side is ``size`` (bilinear, anti-aliased) -> centre-crop ``size × size`` -> map
[0, 255] to [-1, 1]. Clips come out as (T, C, H, W), the course's video layout without the batch.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from course_lib._validation import check_int_range, check_positive_int, fail

VIDEO_EXTENSIONS = (".gif", ".mp4")
LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601 weights of R, G, B


def _decode(path: Path, frames: int | None) -> np.ndarray:
    """The first ``frames`` frames (all when None) as uint8 (T, H, W, 3)."""
    if path.suffix.lower() == ".gif":
        frame_iter = iio.imiter(path, mode="RGB")
    else:
        frame_iter = iio.imiter(path, plugin="FFMPEG")
    out = []
    for frame in frame_iter:
        out.append(frame[..., :3] if frame.ndim == 3 else np.repeat(frame[..., None], 3, -1))
        if frames is not None and len(out) == frames:
            break
    if not out:
        raise ValueError("no frames decoded")
    return np.stack(out)


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


def _load(path: Path, frames: int | None, size: int | None, channels: int) -> torch.Tensor:
    """Decode, grey if asked, resize and crop -> float (T, C, H, W) in [0, 255]."""
    clip = torch.from_numpy(_decode(path, frames)).permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    if channels == 1:
        clip = (clip * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    return clip if size is None else resize_center_crop(clip, size).clamp(0, 255)


def read_video(path: str | Path, frames: int | None = None, size: int | None = None, channels: int = 3) -> torch.Tensor:
    """One .gif or .mp4 file -> (T, C, H, W) float32 in [-1, 1].

    frames: keep the first ``frames`` (error if the file has fewer); None keeps all.
    size: resize the shorter side to ``size`` and centre-crop a square; None keeps the frame size.
    channels: 3 (RGB) or 1 (grey).
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
                clip = _load(path, None, size, channels)
            except Exception as error:  # any decoder failure: skip this file, keep the others
                reason = (str(error).strip().splitlines() or [""])[0]
                warnings.warn(f"VideoFolder: skipping unreadable file {path} ({type(error).__name__}: {reason})", stacklevel=2)
                continue
            if len(clip) < self.span:
                fail("frames", f"clips that fit every video ({frames} frames with stride {stride} need "
                     f"{self.span} source frames; {path.name} has {len(clip)})", frames)
            self.paths.append(path)
            self.videos.append(clip.round().to(torch.uint8))
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
