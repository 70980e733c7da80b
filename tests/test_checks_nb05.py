"""Each notebook-05 check accepts the right answer and rejects the stub and plausible wrong answers, each with its diagnosis."""
import pytest
import torch
import torch.nn.functional as F

from course_lib.workshop.checks import nb05
from _exercise_checks import assert_accepts_right_rejects_stub_and_wrong


def correlation(video, lag, shift=0, normalise=True):
    """Frame correlation with optional mistakes: an off-by-one pairing, or covariance instead of correlation."""
    u = video[:, : video.shape[1] - lag - shift].flatten(2)
    v = video[:, lag + shift:].flatten(2)
    u, v = u - u.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)
    num = (u * v).sum(-1)
    return (num / ((u**2).sum(-1) * (v**2).sum(-1)).sqrt() if normalise else num / u.shape[-1]).mean()


def pooled_correlation(video, lag):
    """One correlation over all pairs pooled together instead of the mean of per-pair correlations."""
    u = video[:, : video.shape[1] - lag].flatten()
    v = video[:, lag:].flatten()
    return torch.corrcoef(torch.stack([u, v]))[0, 1]


def clip_transform(video, frames, size, stride, generator, starts=0, use_stride=True, stretch=False, antialias=True,
                   scale=127.5, shift=1.0, dtype=torch.float32):
    """The VideoFolder transform with optional mistakes: the last start never drawn, stride ignored, frames
    stretched to a square, no antialiasing, [0, 1] instead of [−1, 1], float64."""
    span = (frames - 1) * stride + 1
    start = int(torch.randint(0, video.shape[0] - span + 1 + starts, (1,), generator=generator))
    clip = (video[start: start + span: stride] if use_stride else video[start: start + frames]).float()
    h, w = clip.shape[-2:]
    new_h, new_w = (size, size) if stretch else (round(h * size / min(h, w)), round(w * size / min(h, w)))
    clip = F.interpolate(clip, size=(new_h, new_w), mode="bilinear", antialias=antialias, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return (clip[..., top: top + size, left: left + size] / scale - shift).to(dtype)


RIGHT_AND_WRONG = [
    (nb05.check_to_course_layout, lambda x: x.permute(0, 2, 1, 3, 4), [
        (lambda x: x.reshape(x.shape[0], x.shape[2], x.shape[1], *x.shape[3:]), "the right values in the wrong places"),
        (lambda x: x.permute(0, 2, 1, 4, 3), "the axes in another order"),
        (lambda x: x, "returned its input `x` unchanged"),
        (lambda x: x.permute(0, 2, 1, 3, 4).flatten(1, 2), "shape"),
    ]),
    (nb05.check_frame_correlation, correlation, [
        (lambda v, k: correlation(v, k, shift=1) if k + 1 < v.shape[1] else correlation(v, k), "off by one"),
        (lambda v, k: correlation(v, k, normalise=False), "a covariance, not a correlation"),
        (pooled_correlation, "pooled"),
        (lambda v, k: correlation(v, k) * torch.ones(v.shape[0]), "shape"),  # one number per clip, not averaged
    ]),
    (nb05.check_clip_transform, clip_transform,
     [(lambda *a: clip_transform(*a, starts=-1), "starts 0 … 4 are all possible"),
      (lambda *a: clip_transform(*a, use_stride=False), "take every stride-th frame"),
      (lambda *a: clip_transform(*a, stretch=True), "stretched to a square"),
      (lambda *a: clip_transform(*a, antialias=False), "without antialiasing"),
      (lambda *a: clip_transform(*a, scale=255.0, shift=0.0), "bytes scaled to [0, 1]"),
      (lambda *a: clip_transform(*a, dtype=torch.float64), "models take float32")]),
]


def test_clip_transform_diagnoses_the_last_start_and_the_range(capsys):
    assert nb05.check_clip_transform(lambda *a: clip_transform(*a, starts=-1)) is False
    assert "starts 0 … 4 are all possible" in capsys.readouterr().out
    assert nb05.check_clip_transform(lambda *a: clip_transform(*a, scale=255.0, shift=0.0)) is False
    assert "bytes scaled to [0, 1]: the model expects [−1, 1]" in capsys.readouterr().out


def test_clip_transform_reference_is_what_video_folder_serves(tmp_path):
    """On a real decoded file the reference gives VideoFolder's clip (up to VideoFolder's rounding to bytes)."""
    from course_lib.data.files import VideoFolder, _load
    from course_lib.data.video import bouncing_shapes
    from PIL import Image
    frames = ((bouncing_shapes(1, frames=12, size=32, seed=0).video[0] + 1) * 127.5).round().byte()  # (T, 3, 32, 32)
    images = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in frames]
    images[0].save(tmp_path / "clip.gif", save_all=True, append_images=images[1:], duration=50, loop=0)
    folder = VideoFolder(tmp_path, frames=4, size=16, stride=2, seed=0)
    decoded = _load(tmp_path / "clip.gif", None, None, 3, dtype=torch.uint8)
    served = folder[0]
    matches = [nb05.reference_clip_transform(decoded, 4, 16, 2, torch.Generator().manual_seed(s)) for s in range(50)]
    assert min((served - m).abs().max().item() for m in matches) <= 1 / 127.5 + 1e-6


@pytest.mark.parametrize("check, right, wrongs", RIGHT_AND_WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_check_accepts_right_and_rejects_stub_and_wrong(check, right, wrongs, capsys):
    assert_accepts_right_rejects_stub_and_wrong(check, right, wrongs, capsys, hint=True)
