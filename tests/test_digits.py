import pytest
import torch

from course_lib.data.digits import DIGIT_BOX, TEST_FONTS, TRAIN_FONTS, glyph_templates, render_digits


@pytest.mark.parametrize("size", [28, 32])
def test_images_labels_shapes_and_range(size):
    images, labels = render_digits(200, size=size, seed=0)
    assert images.shape == (200, 1, size, size) and images.dtype == torch.float32
    assert labels.shape == (200,) and labels.dtype == torch.int64
    assert images.min() >= -1 and images.max() <= 1
    assert images.amax(dim=(1, 2, 3)).min() > 0.9  # every image has ink
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], -1)
    assert (border < -0.9).float().mean() > 0.95  # background -1, digits in the middle
    assert set(labels.tolist()) == set(range(10))


def test_same_seed_same_digits():
    a, la = render_digits(50, seed=4)
    b, lb = render_digits(50, seed=4)
    c, _ = render_digits(50, seed=5)
    assert torch.equal(a, b) and torch.equal(la, lb) and not torch.equal(a, c)


def test_chosen_labels_are_rendered():
    wanted = torch.arange(10).repeat(3)
    images, labels = render_digits(30, labels=wanted, seed=0)
    assert torch.equal(labels, wanted)
    # the same digit in different jitter is closer to its own class mean than to the others
    means = torch.stack([images[labels == k].mean(0) for k in range(10)])
    assert means.flatten(1).std(0).mean() > 0.1


def test_train_and_test_never_share_an_image():
    assert not set(TRAIN_FONTS) & set(TEST_FONTS)
    train, _ = render_digits(1000, split="train", seed=0)
    test, _ = render_digits(1000, split="test", seed=0)
    assert torch.cdist(train.flatten(1), test.flatten(1)).min() > 0


def test_digits_read_as_digits_across_fonts():
    # a nearest-class-mean classifier fitted on training fonts recognises unseen test fonts far above chance
    x, y = render_digits(3000, seed=0)
    xt, yt = render_digits(1000, split="test", seed=1)
    means = torch.stack([x[y == k].mean(0).flatten() for k in range(10)])
    accuracy = (torch.cdist(xt.flatten(1), means).argmin(1) == yt).float().mean()
    assert accuracy > 0.5  # chance is 0.1; measured about 0.68


def test_templates_are_centred_and_fill_the_digit_box():
    t = glyph_templates(TRAIN_FONTS[:3], 56)[:, :, 0]  # (F, 10, R, R), plain stroke width
    ys = torch.arange(56.0).view(1, 1, 56, 1)
    mass = t.sum((-2, -1))
    centre_y = (t * ys).sum((-2, -1)) / mass
    centre_x = (t * ys.transpose(-2, -1)).sum((-2, -1)) / mass
    assert (centre_y - 27.5).abs().max() < 1.0 and (centre_x - 27.5).abs().max() < 1.0
    ink = t > 0.5
    height = ink.any(-1).sum(-1).float()  # rows with ink
    assert ((height - DIGIT_BOX * 56).abs() < 3).float().mean() > 0.9  # digits are taller than wide


def test_stroke_widths_grow():
    t = glyph_templates(TEST_FONTS[:1], 56)  # (1, 10, widths, R, R)
    ink = t.sum((-2, -1))[0]  # (10, widths)
    assert (ink[:, 1:] > ink[:, :-1]).all()


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: render_digits(0), ["n", "positive int"]),
        (lambda: render_digits(4, size=30), ["size", "28 or 32", "30"]),
        (lambda: render_digits(4, split="val"), ["split", "'train'", "'val'"]),
        (lambda: render_digits(3, labels=torch.tensor([1, 2])), ["labels", "3 integer digits"]),
        (lambda: render_digits(2, labels=torch.tensor([1, 10])), ["labels", "[0, 9]"]),
        (lambda: render_digits(2, labels=torch.zeros(2, 1, dtype=torch.long)), ["labels", "rank 1", "(2, 1)"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value)
