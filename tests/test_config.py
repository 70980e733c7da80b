import random

import numpy as np
import pytest
import torch

from course_lib.config import PRESETS, autocast_dtype, cpu_has_native_bf16, get_device, get_preset, seed_everything


def test_preset_from_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PRESET", "smoke")
    assert get_preset().name == "smoke"
    assert get_preset("cpu").name == "cpu"


def test_preset_from_hardware(monkeypatch):
    monkeypatch.delenv("COURSE_PRESET", raising=False)
    assert get_preset().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_preset_is_named(monkeypatch):
    monkeypatch.setenv("COURSE_PRESET", "huge")
    with pytest.raises(ValueError, match=r"\$COURSE_PRESET: expected one of 'smoke', 'cpu', 'gpu', got 'huge'"):
        get_preset()
    with pytest.raises(ValueError, match="name: expected one of"):
        get_preset("tiny")


def test_presets_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = PRESETS["smoke"], PRESETS["cpu"], PRESETS["gpu"]
    assert smoke.image_train_steps < cpu.image_train_steps < gpu.image_train_steps
    assert (gpu.video_size, gpu.video_frames) == (64, 16)
    assert gpu.precision in ("bf16", "fp16")


def test_replace_rejects_unknown_fields():
    assert PRESETS["cpu"].replace(toy_train_steps=7).toy_train_steps == 7
    with pytest.raises(ValueError, match="changes: expected field names of Preset"):
        PRESETS["cpu"].replace(toy_steps=7)


def test_device_never_assumes_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert get_device().type in ("cuda", "mps", "cpu")
    assert get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device: expected one of 'cpu', 'cuda', 'mps', got 'tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")


def test_autocast_dtype_on_cpu():
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp16", cpu) is torch.bfloat16  # fp16 needs CUDA loss scaling
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("fp8", cpu)


def test_seed_everything_repeats_every_stream():
    def draw(seed):
        g = seed_everything(seed)
        return random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=g).item()

    assert draw(3) == draw(3) and draw(3) != draw(4)
    with pytest.raises(ValueError, match="seed: expected an int"):
        seed_everything("3")


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    epyc = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
    sapphire = "flags\t: fpu avx2 avx512f amx_tile amx_bf16\n"
    laptop = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: avx512_bf16_is_not_a_flag_here\n"
    assert cpu_has_native_bf16(epyc) and cpu_has_native_bf16(sapphire)
    assert not cpu_has_native_bf16(laptop) and not cpu_has_native_bf16("")
    assert isinstance(cpu_has_native_bf16(), bool)  # this machine's own answer, whatever it is


def test_only_smoke_shrinks_the_evaluation_test_bench():
    """Lesson 10 compares FVDs at the course's FVD_SAMPLES in every preset a learner uses; smoke only runs fast."""
    from course_lib.metrics.video import FVD_SAMPLES

    smoke, cpu, gpu = PRESETS["smoke"], PRESETS["cpu"], PRESETS["gpu"]
    assert cpu.fvd_clips == gpu.fvd_clips == FVD_SAMPLES
    assert cpu.per_clip_eval == gpu.per_clip_eval == 100
    assert smoke.per_clip_eval < smoke.fvd_clips < FVD_SAMPLES
