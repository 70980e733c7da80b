"""The memory estimate printed before training: exact parts, measured activations, the warning with a fake limit."""
import pytest
import torch

from course_lib import config
from course_lib.workshop import zoo
from course_lib.workshop.cli import main
from course_lib.workshop.recipes import get_recipe
from course_lib.training import Trainer, memory
from course_lib.training.memory import (
    MemoryEstimate,
    available_memory,
    estimate_trainer_memory,
    estimate_training_memory,
    format_bytes,
    memory_warning,
)
from course_lib.training.speed import saved_activation_bytes

TINY = dict(num_diffusion_steps=50, video_size=16, video_frames=3, video_base_channels=8, video_batch_size=8,
            toy_batch_size=16, toy_train_steps=3)


@pytest.fixture(autouse=True)
def tiny_smoke(monkeypatch, tmp_path):
    monkeypatch.setitem(config.PRESETS, "smoke", config.PRESETS["smoke"].replace(**TINY))
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def video_trainer(precision="fp32", **changes) -> Trainer:
    recipe = get_recipe("video-shapes", "smoke")
    return Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch,
                   recipe.train_config(5, progress=False, precision=precision, **changes), "cpu")


def test_resident_parts_are_counted_from_the_parameters():
    trainer = video_trainer()
    estimate = estimate_trainer_memory(trainer)
    params = sum(p.numel() for p in trainer.model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in trainer.model.buffers())
    assert estimate.weights == estimate.gradients == 4 * params
    assert estimate.optimizer == 2 * 4 * params and estimate.ema == 4 * params + buffers
    assert estimate.ddp_buckets == 0 and estimate.micro_batch == 8
    two = estimate_training_memory(trainer.model, trainer.loss_fn, trainer.make_batch, world_size=2)
    assert two.ddp_buckets == estimate.gradients and two.total == estimate.total + estimate.gradients


def test_activations_are_extrapolated_from_two_tiny_batches_to_the_micro_batch():
    trainer = video_trainer()
    estimate = estimate_trainer_memory(trainer)
    batch = trainer.make_batch(torch.Generator().manual_seed(0))
    counted = saved_activation_bytes(trainer.model, trainer.loss_fn, batch)
    assert estimate.activations_per_example > 0
    assert estimate.activations == pytest.approx(counted, rel=0.01)  # probes of 2 and 3 examples predict 8
    assert estimate.at_micro_batch(16).activations - estimate.activations == 8 * estimate.activations_per_example


def test_bf16_autocast_keeps_smaller_activations():
    fp32, bf16 = estimate_trainer_memory(video_trainer()), estimate_trainer_memory(video_trainer("bf16"))
    assert bf16.activations_per_example < 0.8 * fp32.activations_per_example
    assert bf16.weights == fp32.weights  # the master weights stay fp32


def test_estimating_moves_no_stream_and_no_weight():
    trainer = video_trainer()
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    rng, data, noise = torch.get_rng_state(), trainer.data_generator.get_state(), trainer.noise_generator.get_state()
    estimate_trainer_memory(trainer)
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(trainer.data_generator.get_state(), data)
    assert torch.equal(trainer.noise_generator.get_state(), noise)
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in weights.items())


def test_available_memory_reads_memavailable(monkeypatch, tmp_path):
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    2000000 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", str(fake))
    assert available_memory("cpu") == (2000000 * 1024, f"MemAvailable in {fake}")
    fake.write_text("MemTotal:       16000000 kB\n")
    assert available_memory("cpu")[0] is None


def estimate(**changes) -> MemoryEstimate:
    fields = dict(weights=100, gradients=100, optimizer=200, ema=100, ddp_buckets=0, activations_fixed=50,
                  activations_per_example=1000, micro_batch=16)
    return MemoryEstimate(**{**fields, **changes})


def test_the_warning_names_both_numbers_and_the_accumulation_that_fits():
    big = estimate()  # 500 + 50 + 16000 = 16550 bytes
    assert big.total == 16550 and memory_warning(big, 16550, "x") is None and memory_warning(big, None, "x") is None
    text = memory_warning(big, 9000, "a fake limit")
    assert text.startswith(f"warning: training needs about {format_bytes(16550)}: weights 100 B")
    assert "more than the 8.8 KiB available (a fake limit)" in text
    # micro-batches of 8 need 550 + 8000 = 8550 <= 9000; the test can fail: 16 would not fit
    assert "With accumulate 2 (micro-batches of 8, the same batch per step) it needs about 8.3 KiB." in text
    assert "With accumulate 4 (micro-batches of 8" in memory_warning(big, 9000, "x", micro_batches=2)
    assert "Even micro-batches of 1 example need about 1.5 KiB: use a smaller preset" in memory_warning(big, 1000, "x")


def fake_limit(monkeypatch, limit: int):
    monkeypatch.setattr(memory, "available_memory", lambda device: (limit, "a fake limit for the test"))


def test_zoo_train_warns_before_the_first_step(monkeypatch, capsys):
    fake_limit(monkeypatch, 2**20)
    original = Trainer.train_step
    monkeypatch.setattr(Trainer, "train_step", lambda self: print("STEP") or original(self))
    zoo.train(get_recipe("video-shapes", "smoke", steps=1), "v.pt", progress=True)
    out = capsys.readouterr().out
    assert "memory: training needs about" in out and "1.0 MiB available (a fake limit for the test)" in out
    assert out.index("warning: training needs about") < out.index("STEP")
    fake_limit(monkeypatch, 2**40)
    zoo.train(get_recipe("video-shapes", "smoke", steps=1), "w.pt", progress=True)
    out = capsys.readouterr().out
    assert "memory: training needs about" in out and "warning" not in out
    zoo.train(get_recipe("video-shapes", "smoke", steps=1), "quiet.pt", progress=False)
    assert "memory" not in capsys.readouterr().out  # notebooks' smoke runs print nothing


def test_cli_train_prints_the_estimate_and_the_warning(monkeypatch, capsys):
    fake_limit(monkeypatch, 1000)
    code = main(["train", "--task", "toy-moons", "--preset", "smoke", "--checkpoint", "t.pt"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "memory: training needs about" in out and "warning: training needs about" in out
    assert "more than the 1000 B available (a fake limit for the test)" in out
    assert out.index("warning") < out.index("finished: 3/3 steps")


def test_bad_arguments_are_named():
    trainer = video_trainer()
    with pytest.raises(ValueError, match=r"^world_size: expected a positive int, got 0$"):
        estimate_training_memory(trainer.model, trainer.loss_fn, trainer.make_batch, world_size=0)
    with pytest.raises(ValueError, match=r"^precision: expected one of 'fp32', 'bf16', 'fp16', got 'fp8'$"):
        estimate_training_memory(trainer.model, trainer.loss_fn, trainer.make_batch, precision="fp8")
    with pytest.raises(ValueError, match=r"^make_batch: expected a tensor, or a non-empty tuple/list/dict of tensors, "
                                         r"got 'int'$"):
        estimate_training_memory(trainer.model, trainer.loss_fn, lambda g: 3)
    with pytest.raises(ValueError, match=r"^model: expected a torch.nn.Module, got 'str'$"):
        estimate_training_memory("net", trainer.loss_fn, trainer.make_batch)
    with pytest.raises(ValueError, match=r"^micro_batch: expected a positive int, got 0$"):
        estimate().at_micro_batch(0)
