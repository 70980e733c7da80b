"""MNIST-like digits rendered from the fonts matplotlib ships: no download, any number, from a seed.

How one digit is made:

1. **Glyph templates** (once per font, cached): FreeType (matplotlib's ``FT2Font``) draws '0'…'9';
   each glyph is cropped to its ink, scaled so its longer side fills 20/28 of the canvas and
   centred by its centre of mass — the MNIST recipe. Templates live at twice the output resolution.
2. **Random affine jitter** with one ``grid_sample`` call for a whole batch:
   rotation ±15°, horizontal shear ±0.25, scale 0.85–1.1, aspect 0.85–1.15, shift ±2 px.
   Stroke width varies too: each template comes in three widths, max-filtered (dilated) by 0, 1
   or 2 pixels at template resolution.
3. Average-pool 2×2 down to ``size`` (anti-aliasing) and map ink to +1, background to −1.

Train and test use **disjoint font sets** (:data:`TRAIN_FONTS`, :data:`TEST_FONTS`), so no test
image can equal a training image, and the test set measures generalisation to unseen type faces.
"""
from __future__ import annotations

import functools
import math
import os

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.ft2font import FT2Font, LoadFlags

from course_lib._validation import check_choice, check_positive_int, check_rank, check_tensor, fail
from course_lib.data.toy import make_generator

SIZES = (28, 32)
SPLITS = ("train", "test")
# Font files from matplotlib's mpl-data/fonts/ttf; every one of them has the ten digits.
TRAIN_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmtt10.ttf", "cmti10.ttf",
)
TEST_FONTS = (
    "DejaVuSans-Oblique.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneralItalic.ttf", "cmss10.ttf",
)
DIGIT_BOX = 20 / 28  # the longer side of a glyph fills this fraction of the canvas (MNIST: 20 of 28)
CHUNK = 2048  # digits jittered at once (bounds memory)


def font_path(name: str) -> str:
    """Full path of one of matplotlib's bundled fonts, e.g. ``font_path("DejaVuSans.ttf")``."""
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)


def _glyph_ink(font: FT2Font, digit: int) -> np.ndarray:
    """The anti-aliased bitmap of one digit, cropped to its ink: (h, w) float in [0, 1]."""
    font.set_text(str(digit), 0.0, flags=LoadFlags.NO_HINTING)
    font.draw_glyphs_to_bitmap(antialiased=True)
    ink = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.05)
    return ink[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]


def _place(ink: np.ndarray, resolution: int) -> torch.Tensor:
    """Scale ``ink`` so its longer side is DIGIT_BOX·resolution and centre its mass -> (R, R)."""
    box = DIGIT_BOX * resolution
    h, w = ink.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    glyph = F.interpolate(torch.from_numpy(ink)[None, None], size=(new_h, new_w), mode="bilinear",
                          antialias=True, align_corners=False)[0, 0].clamp(0, 1)
    ys, xs = torch.meshgrid(torch.arange(new_h), torch.arange(new_w), indexing="ij")
    mass = glyph.sum()
    cy, cx = (glyph * ys).sum() / mass, (glyph * xs).sum() / mass  # centre of mass (pixels)
    top, left = round(resolution / 2 - 0.5 - cy.item()), round(resolution / 2 - 0.5 - cx.item())
    canvas = torch.zeros(resolution + 2 * new_h, resolution + 2 * new_w)  # margins absorb overflow
    canvas[new_h + top: 2 * new_h + top, new_w + left: 2 * new_w + left] = glyph
    return canvas[new_h: new_h + resolution, new_w: new_w + resolution]


STROKE_WIDTHS = 3  # dilations of 0, 1 and 2 template pixels


@functools.lru_cache(maxsize=None)
def glyph_templates(fonts: tuple[str, ...], resolution: int) -> torch.Tensor:
    """Centred ink templates of the ten digits in each font, in three stroke widths.

    -> (len(fonts), 10, STROKE_WIDTHS, R, R) in [0, 1]; width w is a max filter of w pixels. Cached.
    """
    plain = torch.zeros(len(fonts), 10, resolution, resolution)
    for i, name in enumerate(fonts):
        font = FT2Font(font_path(name))
        font.set_size(4 * resolution, 72)  # render large, then scale down: smooth edges
        for digit in range(10):
            plain[i, digit] = _place(_glyph_ink(font, digit), resolution)
    flat = plain.flatten(0, 1)[:, None]  # (F·10, 1, R, R)
    widths = [flat] + [F.max_pool2d(flat, 2 * w + 1, 1, w) for w in range(1, STROKE_WIDTHS)]
    return torch.cat(widths, 1).reshape(len(fonts), 10, STROKE_WIDTHS, resolution, resolution)


def _affine_grids(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Random jitter as sampling grids (n, 2·size, 2·size, 2) for ``grid_sample``.

    Forward map A = Rot(φ) · Shear(k) · diag(s·a, s), then a shift b; each output pixel p reads the
    template at A⁻¹(p − b) (normalised coordinates, align_corners=False).
    """
    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=g)

    angle = uniform(-15, 15) * math.pi / 180
    shear = uniform(-0.25, 0.25)
    scale = uniform(0.85, 1.1)
    aspect = uniform(0.85, 1.15)
    shift = torch.stack([uniform(-2, 2), uniform(-2, 2)], -1) * 2 / size  # (n, 2): ±2 px, normalised (x, y)
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (n, 2, 2)
    shearing = torch.eye(2).repeat(n, 1, 1)
    shearing[:, 0, 1] = shear
    scaling = torch.diag_embed(torch.stack([scale * aspect, scale], -1))
    inverse = torch.linalg.inv(rotation @ shearing @ scaling)  # (n, 2, 2)
    offset = -(inverse @ shift[..., None])[..., 0]  # (n, 2)
    r = 2 * size
    coords = (torch.arange(r) * 2 + 1) / r - 1  # pixel centres in [-1, 1]
    x, y = coords.view(1, 1, r), coords.view(1, r, 1)
    a = inverse[:, :, :, None, None]
    grid_x = a[:, 0, 0] * x + a[:, 0, 1] * y + offset[:, 0, None, None]
    grid_y = a[:, 1, 0] * x + a[:, 1, 1] * y + offset[:, 1, None, None]
    return torch.stack([grid_x, grid_y], -1)


def _jitter(templates: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Randomly transform templates (n, 1, 2·size, 2·size) -> ink (n, 1, size, size) in [0, 1]."""
    grid = _affine_grids(len(templates), size, g)
    moved = F.grid_sample(templates, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(moved, 2).clamp(0, 1)


def render_digits(
    n: int,
    size: int = 28,
    split: str = "train",
    seed: int = 0,
    generator: torch.Generator | None = None,
    labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n random digits -> images (n, 1, size, size) float32 in [-1, 1] (ink +1), labels (n,) int64.

    size: 28 or 32. split: "train" or "test" (disjoint fonts). ``labels`` (n,) chooses the digits;
    by default they are uniform over 0-9. The same seed gives the same images.
    """
    check_positive_int("n", n)
    if size not in SIZES:
        fail("size", "28 or 32", size)
    check_choice("split", split, SPLITS)
    g = make_generator(seed, generator)
    fonts = TRAIN_FONTS if split == "train" else TEST_FONTS
    templates = glyph_templates(fonts, 2 * size)  # (F, 10, widths, 2s, 2s)
    if labels is None:
        labels = torch.randint(0, 10, (n,), generator=g)
    else:
        check_rank("labels", check_tensor("labels", labels), 1, "(n,)")
        if len(labels) != n or labels.dtype.is_floating_point or labels.min() < 0 or labels.max() > 9:
            fail("labels", f"{n} integer digits in [0, 9]",
                 f"{len(labels)} values of dtype {labels.dtype} in [{labels.min().item()}, {labels.max().item()}]")
    font = torch.randint(0, len(fonts), (n,), generator=g)
    width = torch.randint(0, STROKE_WIDTHS, (n,), generator=g)
    index = font * 10 * STROKE_WIDTHS + labels.long() * STROKE_WIDTHS + width  # into the flattened templates
    flat = templates.flatten(0, 2)[:, None]  # (F·10·widths, 1, 2s, 2s)
    ink = torch.cat([_jitter(flat[index[i: i + CHUNK]], size, g) for i in range(0, n, CHUNK)])
    return ink * 2 - 1, labels.long().clone()
