"""SpaceTimeTransformer: patches, adaLN-Zero's identity start, what mixes frames, labels and captions,
training with the course's objectives and sampling with its samplers, sizes per preset, bad input."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.diffusion.flow import FlowMatchingObjective, euler_sample, velocity_fn
from course_lib.diffusion.guidance import guided_denoiser
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.diffusion.samplers import ddim_sample
from course_lib.diffusion.schedules import make_schedule
from course_lib.models.inspect import count_parameters
from course_lib.models.transformer import (
    SpaceTimeBlock, SpaceTimeTransformer, modulate, patchify, transformer_for_preset, unpatchify,
)
from course_lib.models.unet3d import unet3d_for_preset

pytestmark = pytest.mark.usefixtures("one_thread")

T_STEPS = torch.tensor([5, 600])


def tiny(**changes) -> SpaceTimeTransformer:
    """8x8 frames of 2 channels, up to 4 frames, patch 2 (16 tokens per frame), width 16, 2 blocks."""
    torch.manual_seed(0)
    kwargs = dict(in_channels=2, frames=4, size=8, patch_size=2, dim=16, depth=2, num_heads=2)
    kwargs.update(changes)
    return SpaceTimeTransformer(**kwargs)


def clip(batch=2, frames=4, channels=2, size=8, seed=0) -> torch.Tensor:
    return torch.randn(batch, frames, channels, size, size, generator=torch.Generator().manual_seed(seed))


def randomised(model: SpaceTimeTransformer, seed: int = 1) -> SpaceTimeTransformer:
    """Every weight drawn at random (no zero gates, no zero output layer): what a trained model is like."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator))
    return model


# --- patches ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("patch_size, channels, size", [(1, 1, 4), (2, 2, 8), (4, 3, 8), (8, 1, 8)])
def test_patchify_then_unpatchify_is_exact(patch_size, channels, size):
    x = clip(frames=3, channels=channels, size=size)
    tokens = patchify(x, patch_size)
    assert tokens.shape == (2, 3, (size // patch_size) ** 2, channels * patch_size**2)
    assert torch.equal(unpatchify(tokens, patch_size, channels, size), x)


def test_patchify_numbers_patches_row_by_row_and_values_channel_first():
    x = torch.arange(2 * 4 * 4).float().reshape(1, 1, 2, 4, 4)  # 2 channels of 4x4
    tokens = patchify(x, 2)[0, 0]  # (4 patches, 2·2·2 values)
    # patch 1 is row 0, column 1: pixels (0..1, 2..3); channel 0 first, then channel 1
    assert tokens[1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]
    assert tokens[2].tolist() == [8, 9, 12, 13, 24, 25, 28, 29]  # row 1, column 0


def test_modulate_is_shift_and_scale():
    x, shift, scale = torch.randn(3, 4), torch.randn(4), torch.randn(4)
    assert torch.allclose(modulate(x, shift, scale), x * (1 + scale) + shift)
    assert torch.equal(modulate(x, torch.zeros(4), torch.zeros(4)), x)


# --- shapes and the identity start -----------------------------------------------------------------

@pytest.mark.parametrize("changes", [
    {}, dict(attention="full"), dict(num_classes=3), dict(context_dim=6), dict(patch_size=4, in_channels=1),
])
def test_output_shape_matches_input(changes):
    model = tiny(**changes)
    x = clip(channels=model.in_channels)
    kwargs = {"context": torch.randn(2, 5, 6)} if "context_dim" in changes else {}
    assert model(x, T_STEPS, **kwargs).shape == x.shape
    assert model(x[:, :1], T_STEPS.float() / 3, **kwargs).shape == (2, 1, model.in_channels, 8, 8)
    assert model(x, torch.randint(0, 1000, (2, 4)), **kwargs).shape == x.shape  # a timestep per frame


@pytest.mark.parametrize("attention", ["factorised", "full"])
@pytest.mark.parametrize("context_dim", [None, 6])
def test_a_fresh_block_is_the_identity_and_a_fresh_model_predicts_zero(attention, context_dim):
    torch.manual_seed(0)
    block = SpaceTimeBlock(16, 2, attention, context_dim)
    h, c = torch.randn(2, 4, 16, 16), torch.randn(2, 1, 16)
    context = torch.randn(2, 5, 6) if context_dim else None
    assert torch.equal(block(h, c, context), h)
    model = tiny(attention=attention, context_dim=context_dim)
    assert torch.equal(model(clip(), T_STEPS, context=context), torch.zeros(2, 4, 2, 8, 8))


def test_gradient_reaches_every_parameter():
    model = randomised(tiny(num_classes=3, context_dim=6))
    mask = torch.tensor([[True, True, False], [False, False, False]])
    model(clip(), T_STEPS, torch.tensor([0, 3]), torch.randn(2, 3, 6), mask).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


# --- what mixes frames -----------------------------------------------------------------------------

def frame_influence(model: SpaceTimeTransformer) -> torch.Tensor:
    """How much each output frame changes when frame 0 of the input changes: (frames,)."""
    x = clip(batch=1)
    changed = x.clone()
    changed[:, 0] += 1.0
    with torch.no_grad():
        return (model(changed, T_STEPS[:1]) - model(x, T_STEPS[:1])).abs().amax(dim=(0, 2, 3, 4))


def test_factorised_frames_meet_only_in_temporal_attention():
    model = randomised(tiny(depth=1))
    assert (frame_influence(model)[1:] > 1e-3).all()  # frame 0 reaches every other frame
    with torch.no_grad():  # cut the temporal attention: spatial attention, MLP and modulation stay per frame
        model.blocks[0].temporal.proj.weight.zero_()
        model.blocks[0].temporal.proj.bias.zero_()
    influence = frame_influence(model)
    assert influence[0] > 1e-3 and torch.equal(influence[1:], torch.zeros(3))


def test_full_attention_mixes_frames_in_its_one_attention():
    model = randomised(tiny(depth=1, attention="full"))
    assert (frame_influence(model)[1:] > 1e-3).all()
    with torch.no_grad():
        model.blocks[0].full.proj.weight.zero_()
        model.blocks[0].full.proj.bias.zero_()
    assert torch.equal(frame_influence(model)[1:], torch.zeros(3))


# --- labels and captions ---------------------------------------------------------------------------

def test_labels_change_the_output_and_none_means_the_null_label():
    model = randomised(tiny(num_classes=3))
    x = clip()
    with torch.no_grad():
        assert (model(x, T_STEPS, torch.tensor([0, 0])) - model(x, T_STEPS, torch.tensor([1, 1]))).abs().max() > 1e-3
        assert torch.equal(model(x, T_STEPS), model(x, T_STEPS, torch.tensor([3, 3])))
    assert model.null_label == 3


def test_context_changes_the_output_and_masked_tokens_get_no_weight():
    model = randomised(tiny(context_dim=6))
    x, context = clip(), torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    other = context.clone()
    other[~mask] = torch.randn(int((~mask).sum()), 6)  # change only the padding
    with torch.no_grad():
        out = model(x, T_STEPS, context=context, context_mask=mask)
        assert torch.allclose(out, model(x, T_STEPS, context=other, context_mask=mask), atol=1e-5)
        assert (out - model(x, T_STEPS, context=torch.randn(2, 3, 6), context_mask=mask)).abs().max() > 1e-3
        # a caption of only padding is "no caption", the unconditional answer of classifier-free guidance
        nothing = model(x, T_STEPS, context=context, context_mask=torch.zeros(2, 3, dtype=torch.bool))
        assert torch.allclose(nothing, model(x, T_STEPS), atol=1e-5)
        assert torch.isfinite(nothing).all()


# --- with the course's objectives and samplers -----------------------------------------------------

@pytest.mark.parametrize("make_objective, ratio", [
    (lambda: DiffusionObjective(make_schedule("linear", 100), "eps"), 0.6),
    # a fresh model predicts 0, already near what v and velocity training reach in a few steps (so does the U-Net)
    (lambda: DiffusionObjective(make_schedule("linear", 100), "v", null_label=3, label_dropout=0.2), 0.97),
    (lambda: FlowMatchingObjective(null_label=3, label_dropout=0.2), 0.97),
], ids=["eps", "v-labels", "flow-labels"])
def test_training_lowers_the_loss_on_a_fixed_batch(make_objective, ratio):
    objective = make_objective()
    model = tiny(num_classes=3)
    one = clip(batch=1, seed=1).clamp(-1, 1)  # a single clip: the best prediction has a small loss
    batch = (one.expand(4, -1, -1, -1, -1), torch.tensor([0, 1, 2, 0]))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(seed: int) -> torch.Tensor:
        return objective(model, batch, torch.Generator().manual_seed(seed))

    with torch.no_grad():
        before = sum(loss(1000 + k).item() for k in range(4))
    for step in range(20):
        optimizer.zero_grad()
        loss(step).backward()
        optimizer.step()
    with torch.no_grad():
        after = sum(loss(1000 + k).item() for k in range(4))
    assert after < ratio * before


def test_samplers_give_clips_of_the_right_shape():
    model = randomised(tiny(num_classes=3), seed=2)
    for p in model.parameters():
        p.data.mul_(0.1)  # small weights: a tame random denoiser
    schedule = make_schedule("linear", 100)
    shape = (2, 3, 2, 8, 8)
    with torch.no_grad():
        x = ddim_sample(guided_denoiser(model, torch.tensor([0, 2]), 2.0), shape, schedule, steps=4,
                        generator=torch.Generator().manual_seed(0))
        assert x.shape == shape and torch.isfinite(x).all()
        x = euler_sample(velocity_fn(model, y=torch.tensor([1, 1])), shape, steps=3,
                         generator=torch.Generator().manual_seed(0))
        assert x.shape == shape and torch.isfinite(x).all()


def test_preset_sizes_and_the_cpu_parameter_count_near_the_video_unet():
    smoke = transformer_for_preset(get_preset("smoke"), 4, 8, 4)
    cpu = transformer_for_preset(get_preset("cpu"), 4, 8, 8, num_classes=4, context_dim=32)
    assert smoke(torch.randn(1, 4, 4, 8, 8), torch.tensor([3])).shape == (1, 4, 4, 8, 8)
    assert cpu.context_dim == 32 and cpu.num_classes == 4 and cpu.attention == "factorised"
    unet = count_parameters(unet3d_for_preset(get_preset("cpu")))
    assert 0.75 < count_parameters(transformer_for_preset(get_preset("cpu"), 4, 8, 8)) / unet < 1.25
    assert count_parameters(smoke) < count_parameters(cpu)


# --- bad input -------------------------------------------------------------------------------------

def raises(call, *words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_bad_construction_is_one_clear_error():
    raises(lambda: tiny(patch_size=3), "patch_size", "divisor of size=8")
    raises(lambda: tiny(attention="axial"), "attention", "'factorised'", "'full'")
    raises(lambda: tiny(dim=18, num_heads=4), "dim", "num_heads=4")
    raises(lambda: tiny(frames=0), "frames", "positive int")
    raises(lambda: tiny(context_dim=0), "context_dim", "positive int")
    raises(lambda: transformer_for_preset("cpu", 4, 8, 8), "preset", "Preset")
    raises(lambda: patchify(clip(), 3), "patch_size", "8x8")
    raises(lambda: unpatchify(torch.zeros(1, 2, 15, 8), 2, 2, 8), "tokens", "(B, F, 16, 8)")


def test_bad_forward_input_is_one_clear_error():
    model = tiny()
    raises(lambda: model(clip(frames=5), T_STEPS), "x", "frames=4", "(2, 5, 2, 8, 8)")
    raises(lambda: model(clip(channels=3), T_STEPS), "x", "in_channels=2")
    raises(lambda: model(clip(size=16), T_STEPS), "x", "size=8")
    raises(lambda: model(clip()[:, 0], T_STEPS), "x", "rank 5")
    raises(lambda: model(clip(), torch.tensor([1, 2, 3])), "t", "(2,)")
    raises(lambda: model(clip(), T_STEPS, torch.tensor([0, 1])), "y", "unconditional")
    raises(lambda: model(clip(), T_STEPS, context=torch.randn(2, 3, 6)), "context", "context_dim")
    texty = tiny(context_dim=6)
    raises(lambda: texty(clip(), T_STEPS, context=torch.randn(2, 3, 5)), "context", "(2, L, 6)")
    raises(lambda: texty(clip(), T_STEPS, context=torch.randn(2, 3, 6), context_mask=torch.ones(2, 3)),
           "context_mask", "bool")
    raises(lambda: texty(clip(), T_STEPS, context_mask=torch.ones(2, 3, dtype=torch.bool)), "context_mask", "None")
    raises(lambda: tiny(num_classes=3)(clip(), T_STEPS, torch.tensor([0, 4])), "y", "null label 3")
