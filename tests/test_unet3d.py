"""UNet3D: shapes, gradients, timestep dependence, temporal mixing vs image_mode, bad input; the profiler."""
import pytest
import torch

from course_lib.config import get_preset
from course_lib.models.inspect import count_parameters
from course_lib.models.unet3d import RelativePositionBias, TemporalAttention, TemporalConv, UNet3D, unet3d_for_preset

T_STEPS = torch.tensor([5, 600])


def tiny(**changes) -> UNet3D:
    """A small, fast model: 16x16 frames, widths 8 and 16, 2 heads."""
    torch.manual_seed(0)
    kwargs = dict(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, num_heads=2, max_frames=8)
    kwargs.update(changes)
    return UNet3D(**kwargs)


def clip(batch=2, frames=4, channels=1, size=16, seed=0) -> torch.Tensor:
    return torch.randn(batch, frames, channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("changes", [
    {},
    dict(num_res_blocks=(0, 1)),
    dict(num_res_blocks=(1, 2), attention_levels=(0, 1)),
    dict(in_channels=3, channel_mults=(1, 1, 2), temporal_attention=False),
])
def test_output_shape_matches_input(changes):
    model = tiny(**changes)
    x = clip(channels=model.in_channels)
    assert model(x, T_STEPS).shape == x.shape


def test_one_frame_and_max_frames_work():
    model = tiny()
    assert model(clip(frames=1), T_STEPS).shape == (2, 1, 1, 16, 16)
    assert model(clip(frames=8), T_STEPS).shape == (2, 8, 1, 16, 16)


def test_gradient_reaches_every_parameter():
    model = tiny(num_res_blocks=(1, 1))
    with torch.no_grad():  # give the zero-initialised position bias something to say
        for module in model.modules():
            if isinstance(module, RelativePositionBias):
                module.table.normal_()
    model(clip(), T_STEPS).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_output_depends_on_t():
    model = tiny()
    x = clip()
    with torch.no_grad():
        difference = (model(x, torch.tensor([0, 0])) - model(x, torch.tensor([900, 900]))).abs().max()
    assert difference > 1e-4


def test_same_seed_same_numbers():
    x = clip()
    with torch.no_grad():
        assert torch.equal(tiny()(x, T_STEPS), tiny()(x, T_STEPS))


def changed_frames(model: UNet3D, image_mode: bool, frame: int = 2) -> torch.Tensor:
    """Max |output change| per frame when only input frame ``frame`` changes: (T,)."""
    x = clip()
    changed = x.clone()
    changed[:, frame] += torch.randn(changed[:, frame].shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x, T_STEPS, image_mode=image_mode)
        out_changed = model(changed, T_STEPS, image_mode=image_mode)
    return (out_changed - out).abs().amax(dim=(0, 2, 3, 4))


def test_video_mode_frames_influence_each_other():
    change = changed_frames(tiny(), image_mode=False)
    assert (change > 1e-5).all()  # every frame, before and after frame 2, sees the change


def test_image_mode_frames_are_independent():
    change = changed_frames(tiny(), image_mode=True)
    assert change[2] > 1e-3
    assert change[[0, 1, 3]].max() == 0  # masked weights are exactly 0: not even rounding leaks


def test_image_mode_is_the_model_applied_to_each_frame_alone():
    model, x = tiny(), clip()
    with torch.no_grad():
        together = model(x, T_STEPS, image_mode=True)
        alone = torch.cat([model(x[:, k:k + 1], T_STEPS) for k in range(x.shape[1])], dim=1)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_without_temporal_attention_frames_are_independent():
    change = changed_frames(tiny(temporal_attention=False), image_mode=False)
    assert change[[0, 1, 3]].max() == 0 and change[2] > 1e-3


def test_temporal_conv_starts_as_the_identity_and_then_sees_only_the_neighbouring_frames():
    torch.manual_seed(0)
    conv = TemporalConv(channels=8)
    h = torch.randn(2 * 5, 8, 3, 3)  # B = 2 clips of T = 5 frames, folded
    assert torch.equal(conv(h, frames=5), h)
    with torch.no_grad():
        conv.mix.weight.normal_()
        changed = h.clone()
        changed[2] += torch.randn(8, 3, 3)  # clip 0, frame 2 (not a constant: GroupNorm would remove it)
        delta = (conv(changed, frames=5) - conv(h, frames=5)).abs().amax(dim=(1, 2, 3))
    assert (delta[1:4] > 1e-3).all(), "frames 1, 2, 3 see frame 2"
    assert delta[[0, 4, 5, 6, 7, 8, 9]].max() == 0, "frames two away, and the other clip, do not"
    assert torch.equal(conv(changed, frames=5, image_mode=True), changed)


def test_temporal_conv_and_frame_embedding_keep_image_mode_frame_by_frame():
    model, x = tiny(temporal_conv=True, frame_embedding=True), clip()
    with torch.no_grad():
        for p in model.parameters():  # both start at zero: make them count
            if p.abs().max() == 0 and p.dim() > 1:
                p.normal_(std=0.1)
        together = model(x, T_STEPS, image_mode=True)
        alone = torch.cat([model(x[:, k:k + 1], T_STEPS, image_mode=True) for k in range(x.shape[1])], dim=1)
        video = model(x, T_STEPS)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(video, together, atol=1e-3)


def test_frame_embedding_tells_frames_apart_and_starts_at_zero():
    model = tiny(temporal_attention=False, frame_embedding=True)
    same = clip(frames=1).expand(2, 4, 1, 16, 16).contiguous()  # four identical frames per clip
    with torch.no_grad():
        out = model(same, T_STEPS)
        assert torch.allclose(out[:, 0], out[:, 3], atol=1e-6), "zero embedding: identical frames, identical output"
        model.frame_embedding.weight.normal_()
        out = model(same, T_STEPS)
    assert not torch.allclose(out[:, 0], out[:, 3], atol=1e-3)
    assert tiny(frame_embedding=True).frame_embedding.weight.shape == (8, 32)  # max_frames x time_dim


def test_relative_position_bias_depends_only_on_the_offset():
    torch.manual_seed(0)
    bias = RelativePositionBias(num_heads=3, max_frames=6)
    with torch.no_grad():
        bias.table.normal_()
    b = bias(5)  # (heads, 5, 5)
    assert b.shape == (3, 5, 5)
    for i in range(5):
        for j in range(5):
            torch.testing.assert_close(b[:, i, j], bias.table[:, j - i + 5])
    assert not torch.equal(b[:, 0, 1], b[:, 1, 0])  # j - i = +1 and -1 are different entries


def test_temporal_attention_bias_changes_the_output():
    torch.manual_seed(0)
    attention = TemporalAttention(channels=8, num_heads=2, max_frames=4)
    h = torch.randn(2 * 4, 8, 3, 3)
    with torch.no_grad():
        before = attention(h, frames=4)
        attention.position_bias.table[:, 3 + 1] = 5.0  # every frame now prefers the next frame
        after = attention(h, frames=4)
    assert (after - before).abs().max() > 1e-3


def test_rank4_images_get_a_hint():
    with pytest.raises(ValueError, match=r"^x: expected a video batch of rank 5 .*unsqueeze\(1\).*image_mode=True"):
        tiny()(torch.zeros(2, 1, 16, 16), T_STEPS)


@pytest.mark.parametrize("x, t, image_mode, message", [
    (torch.zeros(2, 1, 16), T_STEPS, False, r"^x: expected a tensor of rank 5 \(B, T, C, H, W\), got shape"),
    (torch.zeros(2, 9, 1, 16, 16), T_STEPS, False, r"^x: expected between 1 and max_frames=8 frames"),
    (torch.zeros(2, 0, 1, 16, 16), T_STEPS, False, r"^x: expected between 1 and max_frames=8 frames"),
    (torch.zeros(2, 4, 3, 16, 16), T_STEPS, False, r"^x: expected 1 channel\(s\)"),
    (torch.zeros(2, 4, 1, 15, 16), T_STEPS, False, r"^x: expected height and width divisible by 2"),
    (torch.zeros(2, 4, 1, 16, 16), torch.tensor([1, 2, 3]), False, r"^t: expected one timestep per clip, shape \(2,\)"),
    (torch.zeros(2, 4, 1, 16, 16), torch.tensor(1), False, r"^t: expected a tensor of rank 1"),
    (torch.zeros(2, 4, 1, 16, 16), T_STEPS, "yes", r"^image_mode: expected True or False"),
    ([[0.0]], T_STEPS, False, r"^x: expected a torch.Tensor"),
])
def test_bad_input_names_the_argument(x, t, image_mode, message):
    with pytest.raises(ValueError, match=message):
        tiny()(x, t, image_mode=image_mode)


def test_spatial_size_that_cannot_be_halved_enough():
    model = tiny(channel_mults=(1, 1, 2, 2))  # 3 halvings: needs multiples of 8
    with pytest.raises(ValueError, match=r"^x: expected height and width divisible by 8 \(halved 3 times"):
        model(torch.zeros(1, 2, 1, 20, 20), T_STEPS[:1])


@pytest.mark.parametrize("changes, message", [
    (dict(channel_mults=()), r"^channel_mults: expected a non-empty sequence of positive ints"),
    (dict(channel_mults=(1, 0)), r"^channel_mults: expected a non-empty sequence of positive ints"),
    (dict(num_res_blocks=(1, 1, 1)), r"^num_res_blocks: expected an int >= 0 or 2 of them"),
    (dict(num_res_blocks=-1), r"^num_res_blocks: expected an int >= 0 or 2 of them"),
    (dict(attention_levels=(2,)), r"^attention_levels: expected an int in \[0, 1\]"),
    (dict(num_heads=3), r"^num_heads: expected a divisor of every level's width"),
    (dict(temporal_attention="yes"), r"^temporal_attention: expected True or False"),
    (dict(temporal_conv=1), r"^temporal_conv: expected True or False"),
    (dict(frame_embedding="no"), r"^frame_embedding: expected True or False"),
    (dict(max_frames=0), r"^max_frames: expected a positive int"),
    (dict(base_channels=0), r"^base_channels: expected a positive int"),
])
def test_bad_constructor_arguments(changes, message):
    with pytest.raises(ValueError, match=message):
        tiny(**changes)


def test_preset_factory_sizes():
    cpu = unet3d_for_preset(get_preset("cpu"))
    assert count_parameters(cpu) >= 2_000_000  # the ≥ 2M-parameter model that trains in ≤ 0.5 s a step
    assert cpu.num_res_blocks == (0, 1, 1, 1) and cpu.max_frames >= get_preset("cpu").video_frames
    smoke = get_preset("smoke")
    model = unet3d_for_preset(smoke)
    assert count_parameters(model) < count_parameters(cpu)
    x = clip(batch=1, frames=smoke.video_frames, size=smoke.video_size)
    with torch.no_grad():
        assert model(x, T_STEPS[:1]).shape == x.shape
    assert unet3d_for_preset(get_preset("gpu")).in_channels == 3
    with pytest.raises(ValueError, match="^preset: expected a course_lib.config.Preset"):
        unet3d_for_preset("cpu")


# --- class conditioning (moving digits: "a moving 7") -----------------------------------------------


def test_a_label_changes_the_clip_and_none_is_the_null_label():
    model = tiny(num_classes=10)
    x = clip()
    with torch.no_grad():
        seven, three = model(x, T_STEPS, torch.tensor([7, 7])), model(x, T_STEPS, torch.tensor([3, 3]))
        null, none = model(x, T_STEPS, torch.tensor([10, 10])), model(x, T_STEPS)
    assert (seven - three).abs().max() > 1e-4
    torch.testing.assert_close(null, none)
    assert model.null_label == 10 and tiny().null_label is None


def test_one_label_per_clip_reaches_every_frame_of_that_clip_only():
    model = tiny(num_classes=10, temporal_attention=False)  # frames independent: each frame shows the label
    x = clip()
    with torch.no_grad():
        before = model(x, T_STEPS, torch.tensor([1, 2]))
        after = model(x, T_STEPS, torch.tensor([1, 5]))  # only clip 1's label changed
    torch.testing.assert_close(before[0], after[0])
    assert ((before[1] - after[1]).abs().amax((1, 2, 3)) > 1e-5).all()  # every frame of clip 1 moved


def test_unconditional_model_is_built_as_before_and_refuses_labels():
    torch.manual_seed(0)
    plain = UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), num_heads=2, max_frames=8)
    assert "label_embedding.weight" not in plain.state_dict()
    torch.manual_seed(0)
    conditional = UNet3D(in_channels=1, base_channels=8, channel_mults=(1, 2), num_heads=2, max_frames=8,
                         num_classes=10)
    assert conditional.state_dict()["label_embedding.weight"].shape == (11, 32)
    with pytest.raises(ValueError, match=r"^y: expected None: this model is unconditional"):
        plain(clip(), T_STEPS, torch.tensor([1, 2]))


@pytest.mark.parametrize("y, message", [
    (torch.tensor([1, 2, 3]), r"^y: expected one label per clip, shape \(2,\), got 'shape \(3,\)'"),
    (torch.tensor([1, 11]), r"^y: expected labels in \[0, 9\] or the null label 10, got 'values in \[1, 11\]'"),
    (torch.tensor([-1, 2]), r"^y: expected labels in \[0, 9\] or the null label 10"),
    (torch.tensor([1.0, 2.0]), r"^y: expected an integer tensor of labels, got 'dtype torch.float32'"),
    (torch.tensor([[1, 2]]), r"^y: expected a tensor of rank 1 \(B,\)"),
])
def test_bad_labels_name_the_argument(y, message):
    with pytest.raises(ValueError, match=message):
        tiny(num_classes=10)(clip(), T_STEPS, y)


def test_guidance_mixes_the_conditional_and_unconditional_clips():
    from course_lib.diffusion.guidance import guided_denoiser

    model = tiny(num_classes=10)
    x, y = clip(), torch.tensor([4, 9])
    with torch.no_grad():
        conditional, unconditional = model(x, T_STEPS, y), model(x, T_STEPS)
        guided = guided_denoiser(model, y, 3.0)(x, T_STEPS)
    torch.testing.assert_close(guided, unconditional + 3.0 * (conditional - unconditional), atol=1e-5, rtol=1e-4)


def test_preset_factory_passes_the_class_count():
    assert unet3d_for_preset(get_preset("smoke"), num_classes=10).num_classes == 10
    assert unet3d_for_preset(get_preset("smoke")).label_embedding is None


def test_runs_on_the_meta_device_for_counting_flops_and_shapes():
    """Shapes without memory (the FLOP count of training.speed, the gpu preset's sizes): no autocast question on meta."""
    from course_lib.training import speed

    with torch.device("meta"):
        out = tiny()(torch.empty(2, 4, 1, 16, 16), torch.zeros(2, dtype=torch.long))
    assert out.shape == (2, 4, 1, 16, 16) and out.device.type == "meta"
    assert speed.step_flops(tiny(), (2, 4, 1, 16, 16))["total"] > 0
