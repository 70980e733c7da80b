"""The frame-conditional denoiser (method (a) of notebook 08): inputs, masks, loss, sampling, train-or-load."""
import hashlib
import json

import pytest
import torch
from torch import nn

from course_lib.config import get_preset
from course_lib.diffusion.conditioning import frame_mask
from course_lib.diffusion.forward import q_sample
from course_lib.diffusion.conditioning import conditioned_on
from course_lib.diffusion.rollout import predict_future
from course_lib.diffusion.objectives import FrameConditionalObjective, random_prefix_mask
from course_lib.models.frame_conditional import FrameConditionalDenoiser, frame_conditional_unet3d
from course_lib.workshop.predictor import (
    checkpoint_path,
    frame_conditional_parts,
    known_frames,
    predictor_steps,
    train_or_load_frame_conditional,
)
from course_lib.workshop.recipes import get_recipe
from course_lib.diffusion.schedules import make_schedule
from course_lib.training import Trainer, model_signature

S = make_schedule("linear", 100)


class ChannelMixer(nn.Module):
    """A tiny backbone: a 1x1 convolution per frame over the 2C + 1 input channels, plus t."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.mix = nn.Conv3d(channels_in, channels_out, 1)

    def forward(self, z, t):
        out = self.mix(z.transpose(1, 2)).transpose(1, 2)  # (B, T, C_out, H, W)
        return out + t.float().view(-1, 1, 1, 1, 1) / 100


def tiny_model(channels=3, extra_out=0):
    torch.manual_seed(0)
    return FrameConditionalDenoiser(ChannelMixer(2 * channels + 1, channels + extra_out), channels)


def test_unet3d_builder_takes_2c_plus_1_channels_and_returns_c():
    model = frame_conditional_unet3d(get_preset("smoke"), channels=3)
    x = torch.randn(2, 4, 3, 16, 16)
    mask = frame_mask(x, 2)
    out = model(x, torch.tensor([0, 50]), x, mask)
    assert model.backbone.in_channels == 7 and out.shape == x.shape


def test_the_model_sees_known_frames_only_where_the_mask_is_one():
    model = tiny_model()
    x = torch.randn(2, 5, 3, 4, 4)
    known = torch.randn_like(x)
    mask = frame_mask(x, 2)
    t = torch.tensor([3, 7])
    base = model(x, t, known, mask)
    changed_unknown = known.clone()
    changed_unknown[:, 2:] += 5  # frames the mask hides
    assert torch.equal(model(x, t, changed_unknown, mask), base)
    changed_known = known.clone()
    changed_known[:, :2] += 5
    assert not torch.allclose(model(x, t, changed_known, mask), base)


def test_only_the_first_c_output_channels_are_the_prediction():
    model = tiny_model(extra_out=4)
    x = torch.randn(1, 3, 3, 4, 4)
    out = model(x, torch.tensor([1]), x, frame_mask(x, 1))
    full = model.backbone(torch.cat([x, x * frame_mask(x, 1), frame_mask(x, 1).expand(1, 3, 1, 4, 4)], 2), torch.tensor([1]))
    assert out.shape == x.shape and torch.equal(out, full[:, :, :3])


def test_random_prefix_masks_are_prefixes_of_every_length_but_never_the_whole_clip():
    g = torch.Generator().manual_seed(0)
    mask = random_prefix_mask(2000, 6, g)[:, :, 0, 0, 0]  # (B, T)
    assert (mask[:, 1:] <= mask[:, :-1]).all(), "known frames must come first"
    counts = mask.sum(1).long()
    assert set(counts.tolist()) == set(range(6))
    assert torch.equal(random_prefix_mask(50, 6, torch.Generator().manual_seed(3)),
                       random_prefix_mask(50, 6, torch.Generator().manual_seed(3)))
    assert random_prefix_mask(500, 6, g, max_known=2)[:, :, 0, 0, 0].sum(1).max() == 2


def test_a_focus_gives_half_the_clips_exactly_that_many_known_frames():
    g = torch.Generator().manual_seed(0)
    counts = random_prefix_mask(4000, 8, g, focus=4)[:, :, 0, 0, 0].sum(1).long()
    share = (counts == 4).float().mean().item()
    assert 0.5 + 0.5 / 8 - 0.03 < share < 0.5 + 0.5 / 8 + 0.03, "half focused, plus the uniform draws that hit 4"
    assert set(counts.tolist()) == set(range(8)), "the other half still covers every count"
    plain = random_prefix_mask(4000, 8, torch.Generator().manual_seed(0))[:, :, 0, 0, 0].sum(1).long()
    assert abs((plain == 4).float().mean().item() - 1 / 8) < 0.03
    objective = FrameConditionalObjective(S, "x0", focus_known=3)
    seen = []
    objective(lambda x_t, t, k, m: seen.append(m[:, :, 0, 0, 0].sum(1)) or x_t, torch.zeros(400, 6, 1, 2, 2),
              torch.Generator().manual_seed(1))
    assert (seen[0] == 3).float().mean() > 0.45


def test_the_unet3d_builder_mixes_frames_by_convolution_and_knows_their_index():
    backbone = frame_conditional_unet3d(get_preset("smoke"), channels=3).backbone
    assert backbone.frame_embedding is not None
    assert all(layer.temporal_conv is not None for level in backbone.down for layer in level)


def test_loss_counts_only_the_frames_to_generate():
    """A stand-in that is exact on unknown frames and absurd on known ones has zero loss (x0 objective)."""
    x0 = torch.rand(8, 5, 3, 4, 4) * 2 - 1

    class ExactOnUnknown(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x_t, t, known, mask):
            return self.w * (x0 * (1 - mask) + 100.0 * mask)

    loss = FrameConditionalObjective(S, "x0")(ExactOnUnknown(), x0, torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    wrong = FrameConditionalObjective(S, "x0")(lambda x_t, t, k, m: x0 + 1.0, x0, torch.Generator().manual_seed(0))
    assert wrong.item() == pytest.approx(1.0)


class Recorder(nn.Module):
    """Returns x0's guess 0 and remembers the known frames and the x_t it was given."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x_t, t, known, mask):
        self.seen.append((x_t.detach().clone(), known.detach().clone(), mask))
        return self.w * x_t


def test_conditioning_augmentation_noises_only_the_past_the_network_sees():
    x0 = torch.rand(64, 5, 3, 4, 4) * 2 - 1
    clean, noisy = Recorder(), Recorder()
    FrameConditionalObjective(S, "x0")(clean, x0, torch.Generator().manual_seed(0))
    FrameConditionalObjective(S, "x0", context_noise=60)(noisy, x0, torch.Generator().manual_seed(0))
    (_, known_clean, mask), (_, known_noisy, mask_noisy) = clean.seen[0], noisy.seen[0]
    assert torch.equal(mask, mask_noisy), "the same clips are known"
    assert torch.equal(known_clean, x0 * mask), "without augmentation the past enters clean"
    shown = mask.expand_as(x0).bool()
    assert not torch.allclose(known_noisy[shown], x0[shown]), "the known frames are noised"
    assert torch.equal(known_noisy[~shown], torch.zeros_like(x0[~shown])), "the hidden frames stay hidden"
    # the forward process to a step in {0..60} dims the past: regressing known on x0 gives a slope < 1
    slope = (known_noisy[shown] * x0[shown]).sum() / (x0[shown] ** 2).sum()
    assert float(S.sqrt_alpha_bars[60]) < slope < 0.99
    # the loss still asks for the clean frames: a model exact on them has zero loss either way
    exact = lambda x_t, t, known, m: x0 * (1 - m)
    assert FrameConditionalObjective(S, "x0", context_noise=60)(exact, x0, torch.Generator().manual_seed(0)).item() == 0.0


def test_prediction_with_context_noise_shows_a_noised_past_and_returns_the_true_one():
    model, past = Recorder(), torch.rand(2, 3, 3, 4, 4) * 2 - 1
    out = predict_future(model, past, 5, S, method="frame-conditional", context_noise=30, steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[:, :3], past), "the returned clip keeps the given past exactly"
    x_t, known, mask = model.seen[0]
    assert torch.equal(known[:, :3], q_sample(past, 30, S, generator=torch.Generator().manual_seed(1)))
    assert not torch.allclose(known[:, :3], past)
    plain = Recorder()
    predict_future(plain, past, 5, S, method="frame-conditional", steps=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain.seen[0][1][:, :3], past)


def test_context_noise_has_its_own_checkpoint_and_zero_keeps_the_old_one(tmp_path):
    recipe = get_recipe("video-shapes", "smoke")
    assert checkpoint_path(recipe, 5, tmp_path, context_noise=0) == checkpoint_path(recipe, 5, tmp_path)
    assert checkpoint_path(recipe, 5, tmp_path, context_noise=100) != checkpoint_path(recipe, 5, tmp_path)


def test_prediction_keeps_the_past_and_is_reproducible():
    model = tiny_model()
    past = torch.rand(2, 3, 3, 4, 4) * 2 - 1
    run = lambda: predict_future(model, past, 5, S, method="frame-conditional", steps=4, generator=torch.Generator().manual_seed(1))
    out = run()
    assert out.shape == (2, 5, 3, 4, 4) and torch.equal(out[:, :3], past) and torch.equal(out, run())
    assert model.training, "the model's train/eval mode is restored"


class TimeMixer(ChannelMixer):
    """ChannelMixer plus the clip's mean over frames: each frame's output depends on the other frames."""

    def forward(self, z, t):
        out = super().forward(z, t)
        return out + out.mean(dim=1, keepdim=True)


def test_past_guidance_extrapolates_from_the_unconditional_to_the_conditional_output():
    """conditioned_on(w): out_u + w (out_c - out_u), out_u the same network with no frame known; w = 1 is plain."""
    torch.manual_seed(0)
    model = FrameConditionalDenoiser(TimeMixer(7, 3), 3)
    known = torch.rand(2, 4, 3, 4, 4) * 2 - 1
    mask = frame_mask(known, 2)
    x, t = torch.randn(2, 4, 3, 4, 4), torch.tensor([5, 50])
    with torch.no_grad():
        c, u = model(x, t, known, mask), model(x, t, known, torch.zeros_like(mask))
        assert not torch.allclose(c, u)  # the known frames change the output
        assert torch.equal(conditioned_on(model, known, mask)(x, t), c)
        assert torch.allclose(conditioned_on(model, known, mask, 2.0)(x, t), 2 * c - u, atol=1e-6)
        assert torch.allclose(conditioned_on(model, known, mask, 0.0)(x, t), u, atol=1e-6)
    past = known[:, :2]
    run = lambda w: predict_future(model, past, 4, S, method="frame-conditional", steps=4, past_guidance=w,
                                               generator=torch.Generator().manual_seed(1))
    assert torch.equal(run(1.0), predict_future(model, past, 4, S, method="frame-conditional", steps=4,
                                                            generator=torch.Generator().manual_seed(1)))
    guided = run(3.0)
    assert torch.equal(guided[:, :2], past) and not torch.allclose(guided, run(1.0))


def test_train_or_load_trains_once_then_loads(tmp_path):
    recipe = get_recipe("video-shapes", "smoke").replace(batch_size=2)
    first = train_or_load_frame_conditional(recipe, steps=2, folder=tmp_path)
    assert first.step == 2 and checkpoint_path(recipe, 2, tmp_path).exists()
    again = train_or_load_frame_conditional(recipe, steps=2, folder=tmp_path)
    assert again.step == 2 and again.history["loss"] == first.history["loss"]
    for a, b in zip(first.ema_model.parameters(), again.ema_model.parameters()):
        assert torch.equal(a, b)
    assert checkpoint_path(recipe, 3, tmp_path) != checkpoint_path(recipe, 2, tmp_path)


def test_files_keep_the_names_older_versions_gave_them(tmp_path):
    """The key hashes the format, the recipe's key, the network's signature and a non-zero context_noise."""
    recipe = get_recipe("video-shapes", "smoke")
    described = {"format": 2, "recipe": recipe.key(5),
                 "signature": model_signature(frame_conditional_unet3d(recipe.preset, recipe.channels))}
    for context_noise in (0, 100):
        if context_noise:
            described["context_noise"] = context_noise
        key = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:12]
        assert checkpoint_path(recipe, 5, tmp_path, context_noise).name == f"video-shapes-unet3d-framecond-smoke-{key}.pt"


def test_a_plain_trainer_checkpoint_of_an_older_version_is_loaded_not_retrained(tmp_path, monkeypatch):
    """Older versions saved the Trainer's state alone (no recipe stored): train_or_load still loads it."""
    recipe = get_recipe("video-shapes", "smoke").replace(batch_size=2)
    parts = frame_conditional_parts(recipe)
    old = Trainer(parts.build_model(), parts.loss_fn, recipe.make_batch, recipe.train_config(2, progress=False))
    old.fit()
    old.save(checkpoint_path(recipe, 2, tmp_path))
    monkeypatch.setattr(Trainer, "fit", lambda *a, **k: pytest.fail("trained although the file was there"))
    loaded = train_or_load_frame_conditional(recipe, steps=2, folder=tmp_path)
    assert loaded.step == 2 and loaded.history["loss"] == old.history["loss"]
    assert all(torch.equal(a, b) for a, b in zip(old.ema_model.parameters(), loaded.ema_model.parameters()))


def test_the_predictor_trains_for_its_own_preset_length_not_the_video_unets():
    """cpu: 8000 steps against the video U-Net's 2000 (a rollout compounds the predictor's errors)."""
    cpu = get_recipe("video-shapes", "cpu")
    assert predictor_steps(cpu) == cpu.preset.prediction_train_steps == 8000 and cpu.steps == 2000
    assert predictor_steps(get_recipe("video-shapes", "cpu", steps=5)) == 8000  # the U-Net's steps do not move it
    assert predictor_steps(cpu, 7) == 7
    assert checkpoint_path(cpu) == checkpoint_path(cpu, 8000) != checkpoint_path(cpu, 2000)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: predict_future(tiny_model(), torch.zeros(1, 4, 3, 4, 4), 4, S, method="frame-conditional"),
         ["past", "between 1 and frames - 1 = 3", "4 frames"]),
        (lambda: predict_future(tiny_model(), torch.zeros(1, 5, 3, 4, 4), 4, S, method="frame-conditional"),
         ["past", "5 frames"]),
        (lambda: tiny_model()(torch.zeros(1, 4, 3, 4, 4), torch.zeros(1, dtype=torch.long), torch.zeros(1, 4, 3, 4, 4),
                              torch.ones(1, 3, 1, 1, 1)), ["mask", "(1, 4, 1, 1, 1)", "(1, 3, 1, 1, 1)"]),
        (lambda: tiny_model()(torch.zeros(1, 4, 3, 4, 4), torch.zeros(1, dtype=torch.long), torch.zeros(1, 4, 3, 4, 4),
                              torch.ones(1, 4, 3, 4, 4)), ["mask", "one value per frame"]),
        (lambda: tiny_model()(torch.zeros(1, 4, 1, 4, 4), torch.zeros(1, dtype=torch.long), torch.zeros(1, 4, 1, 4, 4),
                              torch.ones(1, 4, 1, 1, 1)), ["x_t", "3 channel(s)", "(1, 4, 1, 4, 4)"]),
        (lambda: tiny_model()(torch.zeros(1, 4, 3, 4, 4), torch.zeros(1, dtype=torch.long), torch.zeros(1, 3, 3, 4, 4),
                              torch.ones(1, 4, 1, 1, 1)), ["known", "(1, 4, 3, 4, 4)", "(1, 3, 3, 4, 4)"]),
        (lambda: random_prefix_mask(2, 4, max_known=4), ["max_known", "[0, 3]", "4"]),
        (lambda: random_prefix_mask(2, 4, max_known=2, focus=3), ["focus", "[0, 2]", "3"]),
        (lambda: random_prefix_mask(2, 4, focus=True), ["focus", "True"]),
        (lambda: FrameConditionalObjective(S, "x0", focus_known=-1), ["focus_known", "-1"]),
        (lambda: FrameConditionalObjective(S, "x0", focus_known=2.0), ["focus_known", "2.0"]),
        (lambda: FrameConditionalObjective(S, "noise"), ["objective", "'eps'", "'noise'"]),
        (lambda: FrameConditionalObjective(S, "x0", context_noise=100), ["context_noise", "[0, 99]", "100"]),
        (lambda: FrameConditionalObjective(S, "x0", context_noise=2.5), ["context_noise", "2.5"]),
        (lambda: predict_future(tiny_model(), torch.zeros(1, 2, 3, 4, 4), 4, S, method="frame-conditional", context_noise=-1),
         ["context_noise", "[0, 99]", "-1"]),
        (lambda: predict_future(tiny_model(), torch.zeros(1, 2, 3, 4, 4), 4, S, method="frame-conditional", past_guidance=-1.0),
         ["past_guidance", "-1.0"]),
        (lambda: FrameConditionalDenoiser("unet", 3), ["backbone", "nn.Module", "str"]),
        (lambda: train_or_load_frame_conditional(get_recipe("digits", "smoke")), ["recipe", "video", "digits"]),
        (lambda: predictor_steps(get_recipe("video-shapes", "smoke"), 0), ["steps", "0"]),
    ],
)
def test_bad_input(call, words):
    with pytest.raises(ValueError) as err:
        call()
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_the_prediction_task_gives_half_the_frames_and_the_predictor_trains_on_it():
    cpu = get_preset("cpu")
    assert known_frames(cpu) == 4  # issue 7: predict 4 frames from 4 at T = 8
    assert known_frames(cpu.replace(video_frames=12)) == 6
    assert known_frames(cpu.replace(video_frames=5)) == 2
    recipe = get_recipe("video-shapes", get_preset("smoke"))
    objective = frame_conditional_parts(recipe).loss_fn
    assert objective.focus_known == known_frames(recipe.preset) == recipe.preset.video_frames // 2
