"""The recomputed temporal attention weights are the ones the layer uses: they rebuild its output exactly."""
import pytest
import torch

from course_lib.models.inspect import capture_temporal_attention, temporal_attention_weights
from course_lib.models.conv_lstm import ConvLSTMDenoiser
from course_lib.models.unet3d import TemporalAttention, UNet3D


def layer_with_bias(seed: int = 0) -> TemporalAttention:
    torch.manual_seed(seed)
    layer = TemporalAttention(8, num_heads=2, max_frames=6)
    with torch.no_grad():
        layer.position_bias.table.normal_()  # a learned-looking bias (it starts at zero)
    return layer


def rebuilt_output(layer: TemporalAttention, h: torch.Tensor, frames: int, weights: torch.Tensor) -> torch.Tensor:
    """h + proj(Σ_j w_ij v_j): the layer's output from the weights (v from the layer's own projection)."""
    BT, C, H, W = h.shape
    B, heads = BT // frames, layer.num_heads
    _, _, v = layer.qkv(layer.norm(h)).reshape(B, frames, 3, heads, C // heads, H * W).unbind(2)
    out = torch.einsum("bhpij,bjhdp->bihdp", weights, v)
    return h + layer.proj(out.reshape(BT, C, H, W))


@pytest.mark.parametrize("image_mode", [False, True])
def test_weights_rebuild_the_layers_output(image_mode):
    layer, frames = layer_with_bias(), 5
    h = torch.randn(2 * frames, 8, 3, 4)
    weights = temporal_attention_weights(layer, h, frames, image_mode)
    assert weights.shape == (2, 2, 12, frames, frames)
    assert torch.allclose(weights.sum(-1), torch.ones(()), atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(rebuilt_output(layer, h, frames, weights), layer(h, frames, image_mode), atol=1e-5)


def test_image_mode_gives_the_identity_and_video_mode_does_not():
    layer, frames = layer_with_bias(1), 4
    h = torch.randn(frames, 8, 2, 2)
    assert torch.equal(temporal_attention_weights(layer, h, frames, True), torch.eye(frames).expand(1, 2, 4, 4, 4))
    video = temporal_attention_weights(layer, h, frames, False)
    assert (video.diagonal(dim1=-2, dim2=-1) < 0.99).all()


def test_capture_returns_every_temporal_attention_of_a_unet3d_in_order():
    torch.manual_seed(0)
    model = UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), max_frames=4).eval()
    x, t = torch.randn(2, 3, 1, 8, 8), torch.tensor([5, 50])
    maps = capture_temporal_attention(model, x, t)
    names = [name for name, m in model.named_modules() if isinstance(m, TemporalAttention)]
    assert sorted(maps) == sorted(names) and len(maps) == 5  # 2 levels down, the middle, 2 levels up
    assert maps["middle_in.temporal"].shape == (2, 4, 16, 3, 3)  # 4x4 pixels at the lowest level
    image = capture_temporal_attention(model, x, t, image_mode=True)
    assert all(torch.equal(w, torch.eye(3).expand_as(w)) for w in image.values())
    assert not any(hook for m in model.modules() for hook in m._forward_pre_hooks.values())  # hooks removed


@pytest.mark.parametrize("call, message", [
    (lambda: temporal_attention_weights(torch.nn.Identity(), torch.randn(4, 8, 2, 2), 4), "layer: expected"),
    (lambda: temporal_attention_weights(layer_with_bias(), torch.randn(4, 8, 2), 4), "h: expected a tensor of rank 4"),
    (lambda: temporal_attention_weights(layer_with_bias(), torch.randn(5, 8, 2, 2), 4), "h: expected"),
    (lambda: temporal_attention_weights(layer_with_bias(), torch.randn(4, 6, 2, 2), 4), "h: expected"),
    (lambda: capture_temporal_attention(ConvLSTMDenoiser(1, 8, 8), torch.randn(1, 2, 1, 8, 8), torch.tensor([1])),
     "model: expected a model with TemporalAttention"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
