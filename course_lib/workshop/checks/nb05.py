"""Checks for notebook 05 (video data). References come from course_lib.data.video and course_lib.data.files."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.workshop.checks import compare
from course_lib.workshop.checks.behaviour import check_idea, seeded
from course_lib.data.files import resize_center_crop
from course_lib.data.video import bouncing_shapes, frame_correlation, from_channels_first_time, moving_digits


HINTS = {
    "5.1": ("a new order of the axes, not a new shape: the values have to move in memory.",
            "move the axes with permute (or einops.rearrange): (B, C, T, H, W) -> (B, T, C, H, W) is permute(0, 2, 1, 3, 4); "
            "reshape/view keeps the memory order and scrambles frames and channels."),
    "5.2": ("the Pearson correlation between each frame and the frame lag steps later, averaged over all such pairs.",
            "pair frame t with frame t + lag for t = 0 … T − 1 − lag, subtract each frame's own mean, divide by both "
            "frames' norms, then average over all pairs and clips."),
    "5.3": ("a training clip is a random window of the video: pick where it starts, take every stride-th frame, make "
            "each frame a square of the right size, and scale the bytes to the range the model expects.",
            "span = (frames − 1)·stride + 1 source frames; start = torch.randint(0, T − span + 1, (1,), generator=…); "
            "frames video[start : start + span : stride]; resize_center_crop to size; x / 127.5 − 1.",
            "convert to float before resizing; return (frames, C, size, size) float32 in [−1, 1], and leave the uint8 "
            "input as it was."),
}


def reference_to_course_layout(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, T, C, H, W), via course_lib.data.video.from_channels_first_time."""
    return from_channels_first_time(x)


def reference_frame_correlation(video: torch.Tensor, lag: int) -> torch.Tensor:
    """Mean Pearson correlation between frames ``lag`` apart, via course_lib.data.video.frame_correlation."""
    return frame_correlation(video, lag)


def check_to_course_layout(learner_fn) -> bool:
    g = torch.Generator().manual_seed(5)
    shapes = [(2, 3, 5, 4, 6), (1, 1, 7, 5, 5), (3, 3, 2, 8, 3)]  # (B, C, T, H, W), all sizes distinct where it matters
    cases = [((torch.randn(shape, generator=g),), {}) for shape in shapes]
    return compare("5.1", learner_fn, reference_to_course_layout, cases, "to_course_layout")


def check_frame_correlation(learner_fn) -> bool:
    g = torch.Generator().manual_seed(6)
    digits = moving_digits(2, frames=6, size=32, seed=11).video
    shapes = bouncing_shapes(3, frames=5, size=16, seed=12).video
    noise = torch.randn(2, 4, 1, 5, 5, generator=g)
    cases = [((digits, 0), {}), ((digits, 1), {}), ((digits, 5), {}), ((shapes, 2), {}), ((noise, 1), {})]
    mistakes = {
        "off by one: frames lag + 1 apart paired": lambda video, lag: frame_correlation(video, lag + 1),
        "a covariance, not a correlation (not divided by the frames' norms)": _covariance,
        "one correlation of all pairs pooled, not the mean of each pair's correlation": _pooled_correlation,
    }
    return compare("5.2", learner_fn, reference_frame_correlation, cases, "frame_correlation", variants=mistakes)


def _pairs(video: torch.Tensor, lag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames t and t + lag, each flattened and centred: (B, T − lag, N) twice."""
    u, v = video[:, : video.shape[1] - lag].flatten(2), video[:, lag:].flatten(2)
    return u - u.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)


def _covariance(video: torch.Tensor, lag: int) -> torch.Tensor:
    u, v = _pairs(video, lag)
    return (u * v).mean()


def _pooled_correlation(video: torch.Tensor, lag: int) -> torch.Tensor:
    u, v = video[:, : video.shape[1] - lag].flatten(), video[:, lag:].flatten()
    return torch.corrcoef(torch.stack([u, v]))[0, 1]


# --- 5.3 a clip transform: a random temporal crop, resize and centre crop, normalise ---------------

def reference_clip_transform(video: torch.Tensor, frames: int, size: int, stride: int,
                             generator: torch.Generator) -> torch.Tensor:
    """What course_lib.data.files.VideoFolder does to a decoded file (T, C, H, W) uint8: a start drawn
    with torch.randint(0, T − span + 1) (span = (frames − 1)·stride + 1), every ``stride``-th frame,
    resize_center_crop to size × size, then [0, 255] -> [−1, 1] -> (frames, C, size, size) float32.
    (VideoFolder resizes when it decodes and stores bytes; here nothing is rounded.)"""
    span = (frames - 1) * stride + 1
    start = int(torch.randint(0, video.shape[0] - span + 1, (1,), generator=generator))
    return resize_center_crop(video[start: start + span: stride].float(), size) / 127.5 - 1


def _call_transform(fn):
    return lambda video, frames, size, stride, seed: fn(video, frames, size, stride, seeded(seed))


def _numbered_video(frames: int, height: int, width: int) -> torch.Tensor:
    """A uint8 clip whose frame k is filled with the value 10·k: the frame a crop starts at can be read off."""
    return (torch.arange(frames, dtype=torch.uint8) * 10).view(frames, 1, 1, 1).expand(frames, 3, height, width).clone()


def _every_start_possible(learner_fn) -> str | None:
    """Over many draws every start 0 … T − span occurs, the last one too; frames are stride apart."""
    video, frames, stride = _numbered_video(9, 8, 8), 3, 2  # span 5: starts 0 … 4
    starts = set()
    for seed in range(120):
        clip = learner_fn(video.clone(), frames, 8, stride, seeded(seed))
        first = round((float(clip[0].mean()) + 1) * 127.5 / 10)
        steps = [round((float(b.mean()) - float(a.mean())) * 127.5 / 10) for a, b in zip(clip[:-1], clip[1:])]
        if steps != [stride] * (frames - 1):
            return (f"from a clip whose frames are numbered 0 … 8 your clip's frames are {steps} apart: take every "
                    f"stride-th frame (stride = {stride})")
        starts.add(first)
    if starts != set(range(5)):
        return (f"9 frames, 3 frames with stride 2 (a span of 5): starts 0 … 4 are all possible, your clips started "
                f"at {sorted(starts)} in 120 draws")
    return None


def _range_dtype_and_input(learner_fn) -> str | None:
    """float32, (frames, C, size, size), bytes 0 and 255 at −1 and 1, and the uint8 input left as it was."""
    video = (torch.arange(6) % 2 * 255).to(torch.uint8).view(6, 1, 1, 1).expand(6, 3, 12, 16).clone()  # black, white, …
    given = video.clone()
    clip = learner_fn(given, 4, 8, 1, seeded(2))
    if not torch.equal(given, video):
        return "your transform changed the video it was given"
    if clip.dtype != torch.float32:
        return f"your clip is {clip.dtype}: models take float32"
    if tuple(clip.shape) != (4, 3, 8, 8):
        return f"your clip has shape {tuple(clip.shape)}, expected (frames, C, size, size) = (4, 3, 8, 8)"
    low, high = clip.min().item(), clip.max().item()
    if abs(low + 1) > 1e-4 or abs(high - 1) > 1e-4:
        return f"black and white frames came out as {low:.2f} and {high:.2f}: bytes 0 … 255 map to −1 … 1"
    return None


def _scaled_to_unit(video, frames, size, stride, seed):
    return (reference_clip_transform(video, frames, size, stride, seeded(seed)) + 1) / 2


def _bytes_kept(video, frames, size, stride, seed):
    return (reference_clip_transform(video, frames, size, stride, seeded(seed)) + 1) * 127.5


def _resized_with(video, frames, size, stride, seed, square=False, antialias=True):
    """The reference's clip resized with one mistake: stretched to size × size (no crop), or without antialiasing."""
    span = (frames - 1) * stride + 1
    start = int(torch.randint(0, video.shape[0] - span + 1, (1,), generator=seeded(seed)))
    clip = video[start: start + span: stride].float()
    h, w = clip.shape[-2:]
    new_h, new_w = (size, size) if square else (max(size, round(h * size / min(h, w))), max(size, round(w * size / min(h, w))))
    clip = F.interpolate(clip, size=(new_h, new_w), mode="bilinear", antialias=antialias, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return clip[..., top: top + size, left: left + size] / 127.5 - 1


CLIP_MISTAKES = {"bytes scaled to [0, 1]: the model expects [−1, 1], x / 127.5 − 1": _scaled_to_unit,
                 "the bytes 0 … 255 kept: scale them to [−1, 1], x / 127.5 − 1": _bytes_kept,
                 "stretched to a square: resize the shorter side to size, then crop the centre (keep the aspect)":
                     lambda *a: _resized_with(*a, square=True),
                 "resized without antialiasing: F.interpolate(..., antialias=True) when shrinking":
                     lambda *a: _resized_with(*a, antialias=False)}


def check_clip_transform(learner_fn) -> bool:
    g = torch.Generator().manual_seed(53)
    cases = []
    for number, (t, h, w, frames, size, stride) in enumerate([(10, 16, 24, 4, 8, 2), (7, 20, 12, 3, 6, 1),
                                                               (12, 12, 12, 5, 6, 2), (6, 9, 15, 6, 9, 1)]):
        video = torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8, generator=g)
        cases.append(((video, frames, size, stride, 530 + number), {}))
    return check_idea("5.3", learner_fn, reference_clip_transform, cases, "clip_transform",
                      before=[_range_dtype_and_input, _every_start_possible], call=_call_transform,
                      done="reaches every start and returns float32 in [−1, 1]", variants=CLIP_MISTAKES)
