"""Captions: written from the generator's parameters, parsed back, tokenised; the null caption, dropout, the text encoder."""
import math

import pytest
import torch

from course_lib.data.captions import (
    DIRECTION_WORDS,
    MAX_LEN,
    NONE,
    NULL_ID,
    PAD_ID,
    VOCAB_SIZE,
    VOCABULARY,
    caption_text,
    captioned_digits,
    captioned_shapes,
    clip_attributes,
    compass_direction,
    detokenize,
    drop_captions,
    null_tokens,
    parse_captions,
    tokenize,
    write_captions,
)
from course_lib.data.video import PALETTE, PALETTE_NAMES, SHAPE_KINDS, bouncing_shapes, moving_digits
from course_lib.diffusion.editing import sdedit
from course_lib.diffusion.guidance import caption_guided_denoiser
from course_lib.diffusion.schedules import make_schedule
from course_lib.metrics.video import DIRECTIONS, motion_direction
from course_lib.models.text_encoder import TextEncoder

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shapes():
    return captioned_shapes(64, frames=8, size=32, seed=3)


@pytest.fixture(scope="module")
def digits():
    return captioned_digits(32, frames=8, size=32, seed=3)


# --- writing and reading ----------------------------------------------------------------------

def test_a_caption_says_what_the_generator_drew(shapes):
    clips, attributes = shapes.clips, shapes.attributes
    for i, caption in enumerate(shapes.captions):
        colour = PALETTE_NAMES[(clips.colors[i, 0] == PALETTE).all(-1).int().argmax()]
        kind = SHAPE_KINDS[clips.labels[i, 0]]
        assert caption.startswith(f"a {colour} {kind} moves {DIRECTION_WORDS[attributes.direction[i]]}")
        bounced = bool((clips.velocities[i, :, 0] != clips.velocities[i, 0, 0]).any())
        assert caption.endswith("and bounces off the wall") == bounced
    assert shapes.attributes.bounces.any() and not shapes.attributes.bounces.all()


def test_the_headings_are_the_8_compass_directions_and_every_one_occurs(shapes):
    velocity = shapes.clips.velocities[:, 1, 0]  # (B, 2): the direction a caption names
    heading = torch.atan2(-velocity[:, 0], velocity[:, 1])
    assert torch.allclose(heading, torch.round(heading / (math.pi / 4)) * (math.pi / 4), atol=1e-5)
    assert set(shapes.attributes.direction.tolist()) == set(range(8))


def test_captions_are_deterministic_from_the_seed():
    a, b = captioned_shapes(16, frames=8, seed=11), captioned_shapes(16, frames=8, seed=11)
    assert a.captions == b.captions and torch.equal(a.clips.video, b.clips.video)
    assert captioned_shapes(16, frames=8, seed=12).captions != a.captions
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert captioned_digits(4, 8, 32, generator=g1).captions == captioned_digits(4, 8, 32, generator=g2).captions


def test_headings_change_the_direction_only():
    plain, compass = bouncing_shapes(8, 8, seed=5), bouncing_shapes(8, 8, seed=5, headings=8)
    assert torch.equal(plain.labels, compass.labels) and torch.equal(plain.colors, compass.colors)
    assert torch.allclose(plain.velocities.norm(dim=-1)[:, 0], compass.velocities.norm(dim=-1)[:, 0])
    assert torch.equal(plain.positions[:, 0], compass.positions[:, 0])


@pytest.mark.parametrize("which", ["shapes", "digits"])
def test_every_caption_parses_back_to_the_attributes_that_made_it(which, request):
    data = request.getfixturevalue(which)
    parsed = parse_captions(data.captions)
    for name in ("shape", "colour", "digit", "direction", "bounces"):
        assert torch.equal(getattr(parsed, name), getattr(data.attributes, name)), name
    assert caption_text(parsed) == data.captions


def test_digit_captions_name_the_digit(digits):
    assert all(c.startswith(f"the digit {d} drifts ") for c, d in zip(digits.captions, digits.clips.labels[:, 0].tolist()))
    assert (digits.attributes.colour == NONE).all() and (digits.attributes.shape == NONE).all()


def test_the_compass_bins_are_the_video_judges():
    velocity = torch.randn(1000, 2)
    assert torch.equal(compass_direction(velocity), motion_direction(velocity))
    assert len(DIRECTIONS) == len(DIRECTION_WORDS)
    up = torch.tensor([-1.0, 0.0])  # rows grow downwards: dy < 0 is up
    assert DIRECTION_WORDS[compass_direction(up)] == "up" and DIRECTIONS[compass_direction(up)] == "N"


def test_write_captions_captions_a_plain_batch():
    batch = moving_digits(3, frames=4, size=32, seed=1)
    assert write_captions(batch) == caption_text(clip_attributes(batch))
    assert all(c.startswith("the digit ") for c in write_captions(batch))


# --- tokens -----------------------------------------------------------------------------------

def test_tokenize_pads_and_masks(shapes):
    ids, mask = tokenize(["a red square moves left", "The digit 7 drifts up."], max_len=8)
    assert ids.shape == mask.shape == (2, 8) and ids.dtype == torch.int64 and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [5, 5] and (ids[~mask] == PAD_ID).all()
    assert [VOCABULARY[i] for i in ids[0, :5]] == ["a", "red", "square", "moves", "left"]
    assert detokenize(ids, mask) == ["a red square moves left", "the digit 7 drifts up"]
    ids, mask = tokenize(shapes.captions)
    assert ids.shape == (64, MAX_LEN) and detokenize(ids, mask) == shapes.captions
    assert VOCAB_SIZE == len(set(VOCABULARY)) == 33


def test_the_null_caption_is_one_real_token():
    ids, mask = null_tokens(3, max_len=6)
    assert (ids[:, 0] == NULL_ID).all() and (ids[:, 1:] == PAD_ID).all()
    assert mask[:, 0].all() and not mask[:, 1:].any()
    assert detokenize(ids, mask) == ["", "", ""]


def test_caption_dropout_drops_at_its_rate_and_keeps_the_rest(shapes):
    ids, mask = tokenize(shapes.captions * 50)  # 3200 captions
    new_ids, new_mask = drop_captions(ids, mask, 0.2, torch.Generator().manual_seed(0))
    dropped = (new_ids[:, 0] == NULL_ID)
    assert abs(dropped.float().mean().item() - 0.2) < 0.03
    null_ids, null_mask = null_tokens(1)
    assert (new_ids[dropped] == null_ids).all() and (new_mask[dropped] == null_mask).all()
    assert torch.equal(new_ids[~dropped], ids[~dropped]) and torch.equal(new_mask[~dropped], mask[~dropped])
    assert torch.equal(drop_captions(ids, mask, 0.0)[0], ids)
    assert (drop_captions(ids, mask, 1.0)[0][:, 0] == NULL_ID).all()
    again = drop_captions(ids, mask, 0.2, torch.Generator().manual_seed(0))[0]
    assert torch.equal(again, new_ids)


# --- bad input: one clear error each ----------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: tokenize(["a purple hexagon moves left"]), r"captions\[0\]: expected words of the course's vocabulary .*unknown words \['purple', 'hexagon'\]"),
    (lambda: tokenize(["a red square", "  "]), r"captions\[1\]: expected at least one word .*null_tokens"),
    (lambda: tokenize(["a red square moves down and left"], max_len=4), r"captions\[0\]: expected at most max_len=4 words, got .7 words: 'a red square moves down and left'"),
    (lambda: tokenize("a red square moves left"), r"captions: expected a non-empty list of strings"),
    (lambda: tokenize([]), r"captions: expected a non-empty list of strings"),
    (lambda: tokenize(["<pad>"]), r"unknown words \['<pad>'\]"),
    (lambda: tokenize(["a red square"], max_len=0), r"max_len: expected a positive int"),
    (lambda: parse_captions(["a red square jumps left"]), r"captions\[0\]: expected 'a <colour> <shape> moves <direction>'"),
    (lambda: parse_captions(["a square red moves left"]), r"captions\[0\]: expected 'a <colour> <shape>"),
    (lambda: drop_captions(*tokenize(["a red square"]), p=1.5), r"p: expected a number in \[0.0, 1.0\]"),
    (lambda: drop_captions(torch.zeros(2, 4), torch.ones(2, 4, dtype=torch.bool), 0.1), r"ids: expected an integer tensor"),
    (lambda: drop_captions(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 4), 0.1), r"mask: expected a bool tensor"),
    (lambda: drop_captions(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.bool), 0.1),
     r"mask: expected at least one real token per caption .* got 'rows without one: \[0, 1\]'"),
    (lambda: detokenize(torch.full((1, 4), VOCAB_SIZE), torch.ones(1, 4, dtype=torch.bool)), r"ids: expected token ids in \[0, 32\]"),
    (lambda: captioned_shapes(2, speed=(0.0, 1.0)), r"speed: expected a pair .*0 < low <= high"),
    (lambda: clip_attributes(bouncing_shapes(2, 4, num_shapes=2)), r"batch: expected one object per clip"),
    (lambda: clip_attributes(bouncing_shapes(2, 1)), r"batch: expected clips of at least 2 frames"),
    (lambda: bouncing_shapes(2, 4, headings=0), r"headings: expected an int in \[1, 360\]"),
])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the text encoder -------------------------------------------------------------------------

def test_the_text_encoder_gives_one_vector_per_token_and_zero_at_the_padding(shapes):
    torch.manual_seed(0)
    encoder = TextEncoder(VOCAB_SIZE, dim=32, depth=2, num_heads=4, max_len=MAX_LEN)
    ids, mask = tokenize(shapes.captions[:4])
    out = encoder(ids, mask)
    assert out.shape == (4, MAX_LEN, 32) and torch.isfinite(out).all()
    assert (out[~mask] == 0).all() and (out[mask].abs().sum(-1) > 0).all()


def test_the_padding_never_changes_the_real_tokens(shapes):
    torch.manual_seed(0)
    encoder = TextEncoder(VOCAB_SIZE, dim=32, max_len=MAX_LEN)
    ids, mask = tokenize(shapes.captions[:8])
    other = ids.clone()
    other[~mask] = torch.randint(0, VOCAB_SIZE, (int((~mask).sum()),), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(encoder(ids, mask), encoder(other, mask), atol=1e-6)
    short_ids, short_mask = tokenize(shapes.captions[:8], max_len=12)  # the same words, less padding
    assert torch.allclose(encoder(short_ids, short_mask), encoder(ids, mask)[:, :12], atol=1e-5)


def test_the_text_encoder_learns_with_the_denoiser():
    encoder = TextEncoder(VOCAB_SIZE, dim=16, depth=1, num_heads=2)
    ids, mask = tokenize(["a red square moves left"])
    encoder(ids, mask).sum().backward()
    assert encoder.tokens.weight.grad[ids[0, :5]].abs().sum() > 0
    assert encoder.tokens.weight.grad[PAD_ID].abs().sum() == 0  # the padding is never read


@pytest.mark.parametrize("call, message", [
    (lambda e: e(torch.zeros(2, 4), torch.ones(2, 4, dtype=torch.bool)), r"ids: expected an integer tensor"),
    (lambda e: e(torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.bool)), r"ids: expected a tensor of rank 2 \(B, L\)"),
    (lambda e: e(torch.zeros(2, 17, dtype=torch.long), torch.ones(2, 17, dtype=torch.bool)), r"ids: expected at most max_len=16 tokens"),
    (lambda e: e(torch.full((2, 4), 99), torch.ones(2, 4, dtype=torch.bool)), r"ids: expected token ids in \[0, 32\]"),
    (lambda e: e(torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)), r"mask: expected a bool tensor of the shape of ids"),
    (lambda e: e(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.bool)), r"mask: expected at least one real token"),
    (lambda e: TextEncoder(VOCAB_SIZE, dim=30, num_heads=4), r"num_heads: expected a divisor of dim=30"),
    (lambda e: TextEncoder(0), r"vocab_size: expected a positive int"),
])
def test_text_encoder_bad_input(call, message):
    encoder = TextEncoder(VOCAB_SIZE, dim=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match=message):
        call(encoder)


# --- guidance on a caption, and editing by caption (SDEdit with a new caption) -----------------

class ContextModel(torch.nn.Module):
    """A stand-in text-conditional denoiser: out = x + mean of the real context vectors (per clip)."""

    def forward(self, x, t, context=None, context_mask=None):
        weights = context_mask[..., None].float()
        pooled = (context * weights).sum(1) / weights.sum(1)  # (B, D)
        return x + pooled.mean(-1).view(-1, *([1] * (x.dim() - 1)))


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_caption_guidance_mixes_the_caption_and_the_null_caption(w):
    torch.manual_seed(0)
    encoder = TextEncoder(VOCAB_SIZE, dim=16, depth=1, num_heads=2)
    ids, mask = tokenize(["a red square moves left", "the digit 3 drifts up"])
    null_ids, null_mask = null_tokens(2)
    with torch.no_grad():
        context, null = encoder(ids, mask), encoder(null_ids, null_mask)
    model, x, t = ContextModel(), torch.randn(2, 4, 3, 8, 8), torch.tensor([5, 5])
    guided = caption_guided_denoiser(model, context, mask, null, null_mask, w)(x, t)
    cond, uncond = model(x, t, context, mask), model(x, t, null, null_mask)
    assert torch.allclose(guided, uncond + w * (cond - uncond), atol=1e-6)


def test_editing_by_caption_is_sdedit_with_the_new_caption():
    torch.manual_seed(0)
    encoder, schedule = TextEncoder(VOCAB_SIZE, dim=16, depth=1, num_heads=2), make_schedule("linear", 50)
    clip = captioned_shapes(1, frames=4, size=16, seed=0)
    with torch.no_grad():
        new = encoder(*tokenize(["a blue circle moves up"]))
        null = encoder(*null_tokens(1))
    _, mask = tokenize(["a blue circle moves up"])
    model_fn = caption_guided_denoiser(ContextModel(), new, mask, null, null_tokens(1)[1], 2.0)
    edited = sdedit(model_fn, clip.clips.video, 0.5, schedule, steps=10, generator=torch.Generator().manual_seed(0))
    assert edited.shape == clip.clips.video.shape and torch.isfinite(edited).all()
    assert torch.equal(sdedit(model_fn, clip.clips.video, 0.0, schedule), clip.clips.video)


@pytest.mark.parametrize("change, message", [
    (lambda c, m, n, nm: (c[0], m, n, nm), r"context: expected a tensor of rank 3 \(B, L, D\)"),
    (lambda c, m, n, nm: (c, m[:, :4], n, nm), r"context_mask: expected shape \(2, 16\) \(that of context\)"),
    (lambda c, m, n, nm: (c, m, n[:1], nm), r"null_context: expected shape \(2, 16, 8\)"),
    (lambda c, m, n, nm: (c, m.float(), n, nm), r"context_mask: expected bool masks"),
])
def test_caption_guidance_bad_input(change, message):
    context, mask = torch.randn(2, 16, 8), torch.ones(2, 16, dtype=torch.bool)
    with pytest.raises(ValueError, match=message):
        caption_guided_denoiser(ContextModel(), *change(context, mask, context.clone(), mask.clone()), 2.0)
