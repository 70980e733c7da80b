"""The image U-Net, its building blocks and classifier-free guidance."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.models.blocks import Downsample, ResBlock, SelfAttention, Upsample, group_norm
from course_lib.diffusion.guidance import guided_denoiser
from course_lib.models.inspect import count_parameters
from course_lib.models.unet2d import UNet2D, unet2d_for_preset


def small_unet(**kwargs) -> UNet2D:
    torch.manual_seed(0)
    return UNet2D(base_channels=16, **kwargs)


def batch(b=4, c=1, size=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, size, size, generator=g), torch.randint(0, 1000, (b,), generator=g)


# --- blocks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels, groups", [(16, 4), (32, 8), (64, 16), (128, 32), (3, 1), (24, 6)])
def test_group_norm_uses_groups_of_at_least_four_channels(channels, groups):
    assert group_norm(channels).num_groups == groups


def test_res_block_shapes_and_embedding_changes_output():
    torch.manual_seed(0)
    block = ResBlock(8, 16, emb_dim=12)
    x, emb = torch.randn(2, 8, 6, 6), torch.randn(2, 12)
    out = block(x, emb)
    assert out.shape == (2, 16, 6, 6)
    assert not torch.allclose(out, block(x, emb + 1))


@pytest.mark.parametrize("shape", [(2, 8, 5, 5), (3, 8, 7), (1, 8, 2, 3, 3)])
def test_self_attention_is_permutation_equivariant_over_all_axes(shape):
    """No position information inside: shuffling the tokens shuffles the output the same way."""
    torch.manual_seed(0)
    attention = SelfAttention(8, num_heads=2)
    x = torch.randn(shape)
    tokens = x.reshape(shape[0], 8, -1)
    perm = torch.randperm(tokens.shape[-1])
    out = attention(x).reshape(shape[0], 8, -1)
    out_perm = attention(tokens[..., perm].reshape(shape)).reshape(shape[0], 8, -1)
    assert out.shape == tokens.shape
    torch.testing.assert_close(out_perm, out[..., perm], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, tokens)  # it does change the input


def test_self_attention_mixes_tokens():
    torch.manual_seed(0)
    attention = SelfAttention(8)
    x = torch.randn(1, 8, 10)
    y = x.clone()
    y[..., 0] += 1.0  # change one token: the others must move too
    assert not torch.allclose(attention(x)[..., 1:], attention(y)[..., 1:])


def test_down_and_up_sampling_shapes():
    x = torch.randn(2, 4, 14, 14)
    assert Downsample(4)(x).shape == (2, 4, 7, 7)
    assert Upsample(4)(x).shape == (2, 4, 28, 28)


def test_block_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="x: expected an even height and width"):
        Downsample(4)(torch.randn(1, 4, 7, 7))
    with pytest.raises(ValueError, match="num_heads: expected a divisor of channels=8, got 3"):
        SelfAttention(8, num_heads=3)
    with pytest.raises(ValueError, match=r"x: expected a tensor \(B, 8, ...\)"):
        SelfAttention(8)(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match="channels: expected a positive int"):
        group_norm(0)


# --- UNet2D ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_unet_keeps_the_image_shape(size, channels):
    model = small_unet(in_channels=channels)
    x, t = batch(c=channels, size=size)
    assert model(x, t).shape == x.shape


def test_unet_depends_on_timestep_and_label():
    model = small_unet(num_classes=10)
    x, t = batch()
    y = torch.tensor([0, 1, 2, 3])
    out = model(x, t, y)
    assert not torch.allclose(out, model(x, t + 1, y), atol=1e-6)
    assert not torch.allclose(out, model(x, t, (y + 1) % 10), atol=1e-6)
    # y=None means the null label
    torch.testing.assert_close(model(x, t), model(x, t, torch.full_like(y, 10)))


def test_unet_same_seed_same_numbers():
    x, t = batch()
    torch.testing.assert_close(small_unet()(x, t), small_unet()(x, t))


def test_unet_sends_gradient_to_every_parameter():
    model = small_unet(num_classes=3)
    x, t = batch()
    model(x, t, torch.tensor([0, 1, 2, 3])).pow(2).mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_unet_every_output_pixel_sees_the_whole_image():
    """Attention at the bottom gives a global receptive field: a corner pixel moves the far corner."""
    model = small_unet()
    x, t = batch(b=1)
    x.requires_grad_(True)
    model(x, t)[0, 0, -1, -1].backward()
    assert x.grad[0, 0, 0, 0].abs() > 0


def test_unet_learns_to_denoise_a_fixed_batch():
    """A few Adam steps on one batch must cut the ε-prediction loss well below its starting value."""
    torch.manual_seed(0)
    model = UNet2D(base_channels=8, channel_mults=(1, 2))
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.full((4,), 500)
    x_t = 0.5 * x0 + 0.75**0.5 * eps
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        loss = (model(x_t, t) - eps).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]  # measured: 1.18 -> 0.23


def test_unet_runs_under_bf16_autocast():
    model = small_unet()
    x, t = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t)
    assert out.shape == x.shape and torch.isfinite(out.float()).all()
    assert (out.float() - model(x, t)).abs().mean() < 0.05


def test_preset_sizes():
    cpu = unet2d_for_preset(get_preset("cpu"))
    assert 0.8e6 <= count_parameters(cpu) <= 1.5e6
    assert count_parameters(unet2d_for_preset(get_preset("smoke"))) < count_parameters(cpu)
    assert unet2d_for_preset(get_preset("cpu"), num_classes=10).null_label == 10
    assert cpu.null_label is None


def test_unet_attention_levels():
    assert sum(isinstance(m, SelfAttention) for m in small_unet(attention_levels=()).modules()) == 1  # middle only
    assert sum(isinstance(m, SelfAttention) for m in small_unet(attention_levels=(1, 2)).modules()) == 1 + 2 * 1 + 2 * 2


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda: (torch.randn(1, 28, 28), torch.zeros(1, dtype=torch.long), None), r"x: expected a tensor of rank 4 \(B, C, H, W\)"),
        (lambda: (torch.randn(2, 3, 28, 28), torch.zeros(2, dtype=torch.long), None), r"x: expected 1 channel\(s\)"),
        (lambda: (torch.randn(2, 1, 30, 30), torch.zeros(2, dtype=torch.long), None), "x: expected height and width divisible by 4"),
        (lambda: (torch.randn(2, 1, 28, 28), torch.zeros(3, dtype=torch.long), None), r"t: expected one timestep per image, shape \(2,\)"),
        (lambda: (torch.randn(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), torch.tensor([0, 11])), r"y: expected labels in \[0, 9\] or the null label 10, got 'values in \[0, 11\]'"),
        (lambda: (torch.randn(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), torch.tensor([-1, 0])), "y: expected labels in"),
        (lambda: (torch.randn(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), torch.tensor([0.0, 1.0])), "y: expected an integer tensor of labels"),
        (lambda: (torch.randn(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), torch.tensor([0])), r"y: expected one label per image"),
    ],
)
def test_unet_bad_inputs_name_the_argument(make_input, message):
    model = small_unet(num_classes=10)
    x, t, y = make_input()
    with pytest.raises(ValueError, match=message):
        model(x, t, y)


def test_unconditional_unet_refuses_labels():
    with pytest.raises(ValueError, match="y: expected None: this model is unconditional"):
        small_unet()(*batch(b=2), torch.tensor([0, 1]))


def test_unet_bad_constructor_arguments():
    with pytest.raises(ValueError, match="channel_mults: expected a non-empty sequence of positive ints"):
        UNet2D(channel_mults=())
    with pytest.raises(ValueError, match=r"attention_levels: expected an int in \[0, 2\], got 3"):
        UNet2D(attention_levels=(3,))
    with pytest.raises(ValueError, match="num_classes: expected a positive int, got 0"):
        UNet2D(num_classes=0)
    with pytest.raises(ValueError, match="dropout: expected a number in"):
        UNet2D(dropout=1.5)
    with pytest.raises(ValueError, match="preset: expected a course_lib.config.Preset"):
        unet2d_for_preset("cpu")


# --- classifier-free guidance ---------------------------------------------------------------


@pytest.mark.parametrize("w", [0.0, 1.0, 3.0])
def test_guided_denoiser_mixes_conditional_and_unconditional(w):
    model = small_unet(num_classes=10).eval()
    x, t = batch()
    y = torch.tensor([3, 1, 4, 1])
    with torch.no_grad():
        cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, 10))
        guided = guided_denoiser(model, y, w)(x, t)
    torch.testing.assert_close(guided, uncond + w * (cond - uncond), atol=1e-5, rtol=1e-5)


def test_guided_denoiser_uses_one_forward_pass():
    model = small_unet(num_classes=10)
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    x, t = batch()
    guided_denoiser(model, torch.zeros(4, dtype=torch.long), 2.0)(x, t)
    assert calls == [8]


def test_guided_denoiser_bad_inputs():
    with pytest.raises(ValueError, match="model: expected a class-conditional model"):
        guided_denoiser(small_unet(), torch.zeros(4, dtype=torch.long), 2.0)
    model = small_unet(num_classes=10)
    with pytest.raises(ValueError, match="guidance_scale: expected a finite number >= 0"):
        guided_denoiser(model, torch.zeros(4, dtype=torch.long), -1.0)
    with pytest.raises(ValueError, match="x_t: expected a batch of 3"):
        guided_denoiser(model, torch.zeros(3, dtype=torch.long), 2.0)(*batch())
