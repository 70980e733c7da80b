"""Checkpoints: exact resume, atomic writes, clear refusals of foreign or broken files."""
import math
import os

import pytest
import torch
from torch import nn

from course_lib.models.mlp import MLPDenoiser
from course_lib.diffusion.schedules import make_schedule
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.training import TrainConfig, Trainer, load_weights, random_rows
from course_lib.training.checkpoint import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


SCHEDULE = make_schedule("linear", 100)


def two_moons(n: int, seed: int = 0) -> torch.Tensor:
    """A tiny local two-moons sampler, (n, 2)."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=g) * math.pi
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    return torch.stack([x - 0.5, y - 0.25], dim=1) * 0.8 + 0.03 * torch.randn(n, 2, generator=g)


class DropoutMLP(MLPDenoiser):
    """An MLP with dropout: its masks come from the *global* torch RNG, which a resume must restore too."""

    def __init__(self, hidden=32):
        super().__init__(2, hidden=hidden, depth=2, time_dim=16)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, t):
        return self.dropout(super().forward(x, t))


CONFIG = dict(lr=3e-3, warmup_steps=3, grad_clip=0.5, ema_decay=0.9, weight_decay=0.01, progress=False, seed=7)


def new_trainer(steps=10, model_seed=0, hidden=32, **changes) -> Trainer:
    torch.manual_seed(model_seed)
    config = TrainConfig(steps=steps, **{**CONFIG, **changes})
    data = random_rows(two_moons(256), 32)
    return Trainer(DropoutMLP(hidden), DiffusionObjective(SCHEDULE, "v"), data, config, "cpu")


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    for (name, pa), pb in zip(a.ema_model.state_dict().items(), b.ema_model.state_dict().values()):
        assert torch.equal(pa, pb), "ema " + name
    assert a.step == b.step and a.history == b.history


def test_resume_is_bit_exact(tmp_path):
    torch.manual_seed(123)
    straight = new_trainer().fit()
    torch.manual_seed(123)
    first = new_trainer().fit(steps=5)
    first.save(tmp_path / "half.pt")
    torch.manual_seed(999)  # scramble the global RNG: the checkpoint must bring it back
    resumed = new_trainer(model_seed=1).resume(tmp_path / "half.pt")  # other initial weights, overwritten
    assert resumed.step == 5
    resumed.fit()
    assert_same_state(straight, resumed)
    for sa, sb in zip(straight.optimizer.state.values(), resumed.optimizer.state.values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_trainer_load_restores_the_saved_config(tmp_path):
    straight = new_trainer(steps=8).fit()
    new_trainer(steps=8).fit(steps=4).save(tmp_path / "ck.pt")
    torch.manual_seed(5)
    loaded = Trainer.load(tmp_path / "ck.pt", DropoutMLP(), DiffusionObjective(SCHEDULE, "v"),
                          random_rows(two_moons(256), 32), device="cpu")
    assert loaded.config == straight.config
    loaded.fit()
    # the global RNG was restored from the checkpoint, so the dropout masks repeat too
    assert_same_state(straight, loaded)
    with pytest.raises(ValueError, match=r"^changes: expected field names"):
        Trainer.load(tmp_path / "ck.pt", DropoutMLP(), DiffusionObjective(SCHEDULE), random_rows(two_moons(8), 4),
                     stepz=3)


def test_checkpoint_holds_only_plain_types_and_loads_with_weights_only(tmp_path):
    trainer = new_trainer(steps=2).fit()
    trainer.save(tmp_path / "ck.pt")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert state["step"] == 2 and state["config"]["seed"] == 7
    assert state["signature"]["class"] == "DropoutMLP"
    assert state["generators"]["data"].dtype == torch.uint8
    assert {"torch", "numpy", "python"} <= set(state["global_rng"])


def test_periodic_checkpoints_and_a_final_one(tmp_path):
    path = tmp_path / "run" / "ck.pt"
    trainer = new_trainer(steps=7, checkpoint_every=3, checkpoint_path=str(path))
    saved_at = []
    original_save = trainer.save
    trainer.save = lambda p: (saved_at.append(trainer.step), original_save(p))
    trainer.fit()
    assert saved_at == [3, 6, 7]
    assert read_checkpoint(path)["step"] == 7
    assert os.listdir(path.parent) == ["ck.pt"]


def test_atomic_save_leaves_no_temp_file_and_a_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    trainer = new_trainer(steps=4).fit(steps=2)
    trainer.save(path)
    assert os.listdir(tmp_path) == ["ck.pt"]
    before = path.read_bytes()
    trainer.fit()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.pt"]
    monkeypatch.undo()
    assert read_checkpoint(path)["step"] == 2


def test_a_checkpoint_of_another_model_is_refused_and_nothing_changes(tmp_path):
    path = tmp_path / "wide.pt"
    new_trainer(steps=2, hidden=32).fit().save(path)
    narrow = new_trainer(steps=2, hidden=16)
    weights = [p.clone() for p in narrow.model.parameters()]
    with pytest.raises(ValueError, match=r"wide\.pt: saved from a different model; shape differs") as info:
        narrow.resume(path)
    assert "(32,) vs (16,)" in str(info.value) and "more." in str(info.value)
    assert narrow.step == 0 and all(torch.equal(w, p) for w, p in zip(weights, narrow.model.parameters()))
    with pytest.raises(ValueError, match=r"class DropoutMLP in the checkpoint, MLPDenoiser here"):
        load_weights(MLPDenoiser(2, hidden=32, depth=2, time_dim=16), path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_corrupted_or_truncated_file_is_a_clear_error_naming_the_path(tmp_path, damage):
    path = tmp_path / "ck.pt"
    new_trainer(steps=1).fit().save(path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(2000), "empty": b""}[damage])
    trainer = new_trainer(steps=1)
    with pytest.raises(ValueError, match=r"ck\.pt: cannot be read, the file is truncated or corrupted"):
        trainer.resume(path)
    assert trainer.step == 0


def test_a_file_that_is_no_training_checkpoint_or_is_missing(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: expected a course_lib training checkpoint"):
        new_trainer().resume(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: no such file"):
        load_weights(DropoutMLP(), tmp_path / "missing.pt")


def test_load_weights_picks_ema_or_raw_weights(tmp_path):
    trainer = new_trainer(steps=3).fit()
    trainer.save(tmp_path / "ck.pt")
    for ema, source in ((True, trainer.ema_model), (False, trainer.model)):
        torch.manual_seed(42)
        model = load_weights(DropoutMLP(), tmp_path / "ck.pt", ema=ema)
        assert not model.training
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), source.parameters()))
    assert not torch.equal(trainer.model.input.weight, trainer.ema_model.input.weight)


# --- integrity: a checksum of the file, finite weights ------------------------------------------------

def flip_one_bit_in_largest_tensor(path) -> None:
    """Flip a bit in the middle of the largest tensor record of a torch.save zip file, in place."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_checkpoint_ends_with_the_checksum_of_the_file_and_one_flipped_bit_is_refused(tmp_path):
    from course_lib._files import DIGEST_CHARS, file_digest, stored_digest

    path = tmp_path / "ck.pt"
    trainer = new_trainer(steps=2).fit()
    trainer.save(path)
    with open(path, "rb") as file:
        digest, length = stored_digest(file)
        assert length == path.stat().st_size - DIGEST_CHARS and file_digest(file, length) == digest
    flip_one_bit_in_largest_tensor(path)
    fresh = new_trainer(steps=2)
    with pytest.raises(ValueError, match=r"ck\.pt: its contents do not match the checksum stored with it"):
        fresh.resume(path)
    assert fresh.step == 0
    with pytest.raises(ValueError, match="checksum"):
        load_weights(DropoutMLP(), path)


def test_no_damaged_byte_anywhere_in_the_file_loads_as_something_else(tmp_path):
    """A bit flipped in any byte -- a tensor, the pickle with names, shapes and step, zip headers, the
    checksum itself -- is refused; a flip in the checksum's label is refused too, or leaves a plain
    torch file whose contents are intact (and loads them)."""
    from course_lib._files import DIGEST_CHARS, FILE_CHECKSUM_MAGIC, CheckpointError, atomic_save, read_saved

    state = {"w": torch.randn(3000), "b": torch.arange(7), "step": 12, "history": [0.5, 0.25]}
    path = atomic_save(state, tmp_path / "s.pt")
    original = path.read_bytes()
    label_start = len(original) - DIGEST_CHARS - len(FILE_CHECKSUM_MAGIC)
    for position in range(0, len(original), 7):
        damaged = bytearray(original)
        damaged[position] ^= 1 << (position % 8)
        path.write_bytes(bytes(damaged))
        if label_start <= position < len(original) - DIGEST_CHARS:
            try:
                loaded = read_saved(path)
            except CheckpointError as error:  # the label still names course_lib's checksums
                assert "another version" in str(error)
                continue
            assert torch.equal(loaded["w"], state["w"]) and loaded["step"] == 12
            continue
        with pytest.raises(CheckpointError, match="do not match the checksum"):
            read_saved(path)


def test_a_lost_or_moved_block_and_a_cut_file_are_refused(tmp_path):
    from course_lib._files import BLOCK_BYTES, CheckpointError, atomic_save, read_saved

    path = atomic_save({"w": torch.randn(10 * BLOCK_BYTES)}, tmp_path / "s.pt")
    original = path.read_bytes()
    first, second = original[BLOCK_BYTES: 2 * BLOCK_BYTES], original[4 * BLOCK_BYTES: 5 * BLOCK_BYTES]
    swapped = original[:BLOCK_BYTES] + second + original[2 * BLOCK_BYTES: 4 * BLOCK_BYTES] + first + original[5 * BLOCK_BYTES:]
    for damaged, message in ((swapped, "do not match the checksum"),
                             (original[:BLOCK_BYTES] + original[2 * BLOCK_BYTES:], "do not match the checksum"),
                             (original[: len(original) // 2], "truncated or corrupted")):
        path.write_bytes(damaged)
        with pytest.raises(CheckpointError, match=message):
            read_saved(path)


def test_the_file_checksum_of_fixed_bytes_never_changes():
    """Files already written carry this digest: reading in other chunks, or on another machine, must keep it."""
    import io

    import numpy as np

    from course_lib._files import CHUNK_BYTES, file_digest

    size = 2**20 + 3 * 4096 + 123  # more than one chunk, then whole blocks, then a partial one
    assert size > CHUNK_BYTES
    data = np.random.default_rng(0).integers(0, 256, size=size, dtype=np.uint8).tobytes()
    expected = "8136d2c76eee0f134b2219e86cb570102fd1e49b97e45da1813bcab11c0fad83"
    assert file_digest(io.BytesIO(data), len(data)) == expected

    class ShortReads(io.BytesIO):  # a file system that hands out a few bytes per read
        def readinto(self, buffer):
            return super().readinto(memoryview(buffer)[:1000])

    assert file_digest(ShortReads(data), len(data)) == expected
    assert file_digest(io.BytesIO(data[:-1]), len(data)) != expected  # a file cut short


def test_a_damaged_file_is_refused_before_torch_reads_it(tmp_path, monkeypatch):
    from course_lib._files import CheckpointError, atomic_save, read_saved

    path = atomic_save({"w": torch.randn(5000)}, tmp_path / "s.pt")
    flip_one_bit_in_largest_tensor(path)
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: pytest.fail("torch.load read a damaged file"))
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        read_saved(path)


def test_any_object_is_saved_with_the_checksum(tmp_path):
    from course_lib._files import atomic_save, read_saved, stored_digest

    for value in (torch.arange(5.0), [1, 2.5, "three"]):
        path = atomic_save(value, tmp_path / "v.pt")
        with open(path, "rb") as file:
            assert stored_digest(file) is not None
        loaded = read_saved(path)
        assert torch.equal(loaded, value) if isinstance(value, torch.Tensor) else loaded == value


def test_a_checksum_of_another_kind_or_a_failing_disk_is_one_clear_error(tmp_path, monkeypatch):
    from course_lib import _files

    path = _files.atomic_save({"w": torch.randn(50)}, tmp_path / "s.pt")
    data = path.read_bytes()
    label = len(data) - _files.DIGEST_CHARS - len(_files.FILE_CHECKSUM_MAGIC)
    later = _files.CHECKSUM_LABEL + b" 3:" + b"x" * (len(_files.FILE_CHECKSUM_MAGIC) - len(_files.CHECKSUM_LABEL) - 3)
    path.write_bytes(data[:label] + later + data[label + len(later):])
    with pytest.raises(_files.CheckpointError, match="written by another version of course_lib"):
        _files.read_saved(path)
    path.write_bytes(data)

    def failing_disk(file, length):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_files, "file_digest", failing_disk)
    with pytest.raises(_files.CheckpointError, match=r"s\.pt: cannot be read \(Input/output error\)"):
        _files.read_saved(path)


def test_an_intact_file_this_torch_cannot_read_is_not_called_damaged(tmp_path, monkeypatch):
    from course_lib._files import CheckpointError, atomic_save, read_saved

    path = atomic_save({"w": torch.randn(50)}, tmp_path / "s.pt")

    def newer_format(*args, **kwargs):
        raise RuntimeError("unsupported storage type")

    monkeypatch.setattr(torch, "load", newer_format)
    with pytest.raises(CheckpointError, match="intact .*checksum matches.* cannot read it") as error:
        read_saved(path)
    assert "Delete it" not in str(error.value)


def test_a_file_that_is_no_zip_archive_gets_no_checksum(tmp_path):
    from course_lib._files import append_checksum

    with open(tmp_path / "x", "w+b") as file:
        file.write(b"not a zip archive, but long enough to hold an end record")
        with pytest.raises(RuntimeError, match="no zip archive"):
            append_checksum(file)


def test_an_older_file_is_still_checked_against_the_checksum_of_its_tensors(tmp_path):
    """Files written before the file checksum (the shipped ones among them) carry their tensors' checksum."""
    from course_lib._files import CHECKSUM_ALGORITHM, CHECKSUM_KEY, CheckpointError, read_saved, tensor_checksum

    state = {"w": torch.randn(5000), "b": torch.ones(3)}
    path = tmp_path / "old.pt"
    torch.save({**state, CHECKSUM_KEY: {"algorithm": CHECKSUM_ALGORITHM, "digest": tensor_checksum(state)}}, path)
    assert torch.equal(read_saved(path)["w"], state["w"])
    flip_one_bit_in_largest_tensor(path)
    with pytest.raises(CheckpointError, match=r"old\.pt: its contents do not match the checksum"):
        read_saved(path)
    torch.save({**state, CHECKSUM_KEY: {"algorithm": "another", "digest": "0"}}, path)
    with pytest.raises(CheckpointError, match="written by another version of course_lib"):
        read_saved(path)


def test_the_checksum_of_older_files_sees_every_byte_and_every_name():
    from course_lib._files import SMALL_TENSOR_BYTES, tensor_checksum

    small, large = torch.arange(10, dtype=torch.float32), torch.randn(SMALL_TENSOR_BYTES // 4 + 3)
    state = {"a": {"w": small, "v": large}, "history": [1.0, 2.0], "step": 3, "odd": torch.ones(3, dtype=torch.bool)}
    reference = tensor_checksum(state)
    assert tensor_checksum(state) == reference
    for name, tensor in (("small", small), ("large", large)):
        for index in (0, tensor.numel() // 2, tensor.numel() - 1):  # first, middle and last word
            for bit in (0, 31):
                changed = tensor.clone()
                changed.view(torch.int32)[index] ^= 1 << bit
                other = {**state, "a": {**state["a"], "w" if name == "small" else "v": changed}}
                assert tensor_checksum(other) != reference, (name, index, bit)
    assert tensor_checksum({**state, "a": {"v": large, "w": small}}) != reference  # swapped
    assert tensor_checksum({**state, "a": {"w2": small, "v": large}}) != reference  # renamed
    assert tensor_checksum({**state, "a": {"w": small.view(2, 5), "v": large}}) != reference  # reshaped


def test_the_checksum_of_older_files_never_changes():
    """Files written by earlier versions carry this algorithm's digests: an implementation change must
    keep every digest, for any dtype, an odd size, a storage offset, a transposed view."""
    from course_lib._files import tensor_checksum

    g = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(10, generator=g), "large": torch.randn(5000, generator=g),
             "half_offset": torch.randn(4097, generator=g).half()[1:],
             "bytes": [torch.randint(0, 255, (20001,), dtype=torch.uint8, generator=g)],
             "bf16": torch.randn(9000, generator=g).bfloat16(), "transposed": torch.randn(100, 70, generator=g).t(),
             "step": 3}
    assert tensor_checksum(state) == "2f7a661590d39930af6cc64b8871daf23a661c57bec6fde7ae07c217154a94f1"


def test_saving_with_a_checksum_leaves_torchs_zip_crc_setting_as_it_was(tmp_path):
    """atomic_save skips the zip CRC-32 (never verified by torch.load) for its own call only, even on an error."""
    from course_lib._files import atomic_save

    serialization = torch.serialization
    if not hasattr(serialization, "set_crc32_options"):
        pytest.skip("this torch always writes the zip CRC-32")
    assert serialization.get_crc32_options() is True
    atomic_save({"w": torch.ones(3)}, tmp_path / "a.pt")
    assert serialization.get_crc32_options() is True
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], torch.ones(3))  # plain torch reads it
    with pytest.raises(Exception):
        atomic_save({"f": lambda: None}, tmp_path / "b.pt")  # a lambda cannot be pickled
    assert serialization.get_crc32_options() is True and not (tmp_path / "b.pt").exists()


def test_a_checkpoint_without_a_checksum_still_loads(tmp_path):
    from course_lib._files import CHECKSUM_KEY, stored_digest

    path = tmp_path / "old.pt"
    trainer = new_trainer(steps=2).fit()
    torch.save(trainer.state_dict(), path)  # as files were written before checksums
    with open(path, "rb") as file:
        assert stored_digest(file) is None
    assert CHECKSUM_KEY not in read_checkpoint(path)
    assert new_trainer(steps=2).resume(path).step == 2


def test_weights_holding_nan_are_refused_on_load(tmp_path):
    from course_lib._files import atomic_save

    trainer = new_trainer(steps=2).fit()
    state = trainer.state_dict()
    state["ema_model"]["input.weight"][0, 0] = float("nan")
    state["model"]["input.bias"][1] = float("inf")
    atomic_save(state, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=r"nan\.pt: weights hold NaN or inf values \(model\.input\.bias, "
                                         r"ema_model\.input\.weight\)"):
        read_checkpoint(tmp_path / "nan.pt")


def test_a_checkpoint_that_cannot_be_read_is_a_permission_error_not_corruption(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    new_trainer(steps=1).fit().save(path)

    from course_lib import _files

    def no_permission(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(_files, "open", no_permission, raising=False)  # root reads any file: a chmod cannot show this
    with pytest.raises(PermissionError, match=r"Permission denied: '.*ck\.pt'"):
        read_checkpoint(path)
