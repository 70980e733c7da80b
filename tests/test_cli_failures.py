"""``python -m course_lib`` when things go wrong: every expected failure is one line naming the file or
argument and what to do (exit 1; 2 for arguments and unwritable output paths, checked before any
work), never a traceback, and no existing file changes."""
import errno
import hashlib
import os
import signal
import stat
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch

from test_cli import run, tiny_smoke_preset, train_toy  # noqa: F401 (tiny_smoke_preset: a fixture)
from test_checkpoint import flip_one_bit_in_largest_tensor

from course_lib._files import atomic_save
from course_lib.training.checkpoint import read_checkpoint
from course_lib.workshop import zoo

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN_TOY = ["train", "--task", "toy-moons", "--preset", "smoke"]


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every file under ``folder`` (links not followed): its content hash, mtime and mode."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            info = path.stat()
            files[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mtime_ns,
                                                    stat.S_IMODE(info.st_mode))
    return files


def fails(result, code: int, *words: str) -> str:
    """Assert exit ``code``, one error line holding ``words``, no traceback; returns the line.

    (Progress bars also write to stderr, and argparse's own errors come after its usage block.)
    """
    exit_code, out, err = result
    lines = [line for line in err.splitlines() if ": error:" in line]
    assert exit_code == code, (exit_code, out, err)
    assert len(lines) == 1 and "Traceback" not in out + err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def no_training(monkeypatch):
    monkeypatch.setattr(zoo, "train", lambda *a, **k: pytest.fail("trained before the output was checked"))


def read_only_folder() -> Path:
    """A folder that even root cannot create files in (sysfs), or skip."""
    folder = Path("/sys")
    try:
        with open(folder / "course_lib_probe", "wb"):
            pass
    except OSError:
        return folder
    pytest.skip("no read-only folder here")


# --- item 1 and 2: output paths are checked before any work ----------------------------------------------

def test_an_unwritable_folder_is_refused_before_training_sampling_exporting(capsys, tmp_path, monkeypatch):
    ro = read_only_folder()
    train_toy(capsys, "toy.pt", "--steps", "1")
    before = snapshot(tmp_path)
    no_training(monkeypatch)
    fails(run([*TRAIN_TOY, "--checkpoint", str(ro / "x.pt")], capsys), 2,
          "--checkpoint: cannot write", "Permission denied", "choose a folder you can write to")
    fails(run(["sample", "--checkpoint", "toy.pt", "--out", str(ro / "x.png")], capsys), 2, "--out: cannot write")
    fails(run(["export", "--checkpoint", "toy.pt", "--out", str(ro / "x.pt")], capsys), 2, "--out: cannot write")
    fails(run(["demo", "--preset", "smoke", "--out", str(ro / "demo")], capsys), 2, "--out: cannot write")
    assert snapshot(tmp_path) == before


def test_a_write_refused_by_the_system_is_one_line_too(capsys, tmp_path, monkeypatch):
    """Where no real read-only folder exists, a PermissionError on the probe reads the same."""
    from course_lib.workshop import cli

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(cli.tempfile, "TemporaryFile", refused)
    no_training(monkeypatch)
    fails(run([*TRAIN_TOY, "--checkpoint", "ro/x.pt"], capsys), 2, "--checkpoint: cannot write ro/x.pt",
          "Permission denied in", str(tmp_path))
    assert not (tmp_path / "ro").exists()


def test_paths_through_a_file_or_onto_a_folder_are_refused(capsys, tmp_path, monkeypatch):
    train_toy(capsys, "toy.pt", "--steps", "1")
    (tmp_path / "some_file").write_text("x")
    (tmp_path / "a_directory.png").mkdir()
    (tmp_path / "a_directory.pt").mkdir()
    before = snapshot(tmp_path)
    no_training(monkeypatch)
    fails(run([*TRAIN_TOY, "--checkpoint", "some_file/x.pt"], capsys), 2, "--checkpoint: cannot create some_file/x.pt",
          "some_file is a file, not a folder")
    fails(run(["sample", "--checkpoint", "toy.pt", "--out", "a_directory.png"], capsys), 2,
          "--out: a_directory.png is a folder; expected a file name")
    fails(run(["export", "--checkpoint", "toy.pt", "--out", "a_directory.pt"], capsys), 2,
          "--out: a_directory.pt is a folder")
    fails(run(["demo", "--preset", "smoke", "--out", "some_file"], capsys), 2, "--out: cannot create some_file/model.pt")
    assert snapshot(tmp_path) == before


# --- item 3: .GIF / .MP4 in any case ------------------------------------------------------------------------

def test_upper_case_suffixes_write_the_right_format(capsys, tmp_path):
    code, _, err = run(["train", "--task", "video-shapes", "--preset", "smoke", "--checkpoint", "v.pt"], capsys)
    assert code == 0, err
    for name in ("clips.GIF", "clips.Mp4"):
        code, _, err = run(["sample", "--checkpoint", "v.pt", "--n", "2", "--out", name], capsys)
        assert code == 0, err
        assert iio.imread(tmp_path / name, index=None, extension=name.lower()[-4:]).shape[-1] == 3
    assert (tmp_path / "clips.GIF").read_bytes()[:6] == b"GIF89a"


# --- item 4 and 5: a NaN loss, a full disk ---------------------------------------------------------------

def test_a_nan_loss_is_one_line_and_exit_1(capsys, tmp_path, monkeypatch):
    from course_lib.models.mlp import MLPDenoiser

    forward = MLPDenoiser.forward
    monkeypatch.setattr(MLPDenoiser, "forward", lambda self, *a, **k: forward(self, *a, **k) * float("nan"))
    fails(run([*TRAIN_TOY, "--checkpoint", "nan.pt", "--steps", "3"], capsys), 1,
          "loss is nan at step 0", "nothing was saved to nan.pt")
    assert not (tmp_path / "nan.pt").exists()


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_old_checkpoint(capsys, tmp_path, monkeypatch):
    train_toy(capsys, "toy.pt", "--steps", "1")
    before = snapshot(tmp_path)

    def disk_full(obj, file, *args, **kwargs):
        file.write(b"part of a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    fails(run([*TRAIN_TOY, "--checkpoint", "toy.pt", "--steps", "2", "--resume"], capsys), 1,
          "No space left on device: toy.pt", "free some space", "unchanged")
    assert snapshot(tmp_path) == before  # the old checkpoint and its record, and no temporary file


# --- item 6: judge caches ---------------------------------------------------------------------------------

def test_an_unwritable_judge_cache_is_reported_before_the_judge_is_trained(capsys, tmp_path, monkeypatch):
    from course_lib.metrics import judge

    code, _, err = run(["train", "--task", "digits", "--preset", "smoke", "--checkpoint", "d.pt"], capsys)
    assert code == 0, err
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "a_file" / "cache"))
    monkeypatch.setattr(judge, "_LOADED", {})
    monkeypatch.setattr(judge, "train_judge", lambda *a, **k: pytest.fail("trained before the cache was checked"))
    fails(run(["eval", "--checkpoint", "d.pt"], capsys), 1, "judge cache folder", "a_file/cache",
          "set $COURSE_CACHE to a writable folder")


# --- item 7: export never overwrites ------------------------------------------------------------------------

def test_export_never_replaces_a_checkpoint_and_needs_force_for_an_existing_file(capsys, tmp_path):
    train_toy(capsys, "toy.pt", "--steps", "1")
    train_toy(capsys, "other.pt", "--steps", "1")
    before = snapshot(tmp_path)
    fails(run(["export", "--checkpoint", "toy.pt", "--out", "toy.pt"], capsys), 2,
          "--out: toy.pt is the --checkpoint itself", "choose another --out")
    fails(run(["export", "--checkpoint", "toy.pt", "--out", "./toy.pt", "--force"], capsys), 2, "is the --checkpoint itself")
    os.symlink("toy.pt", tmp_path / "link.pt")
    fails(run(["export", "--checkpoint", "toy.pt", "--out", "link.pt", "--force"], capsys), 2, "is the --checkpoint itself")
    fails(run(["export", "--checkpoint", "toy.pt", "--out", "other.pt"], capsys), 2,
          "--out: other.pt already exists; add --force")
    fails(run(["export", "--checkpoint", "toy.pt", "--out", "other.pt", "--force"], capsys), 2,
          "other.pt is a resumable training checkpoint, which an export never replaces (even with --force)")
    assert snapshot(tmp_path) == before
    code, out, err = run(["export", "--checkpoint", "toy.pt", "--out", "small.pt"], capsys)
    assert code == 0 and "wrote small.pt" in out, err
    first = (tmp_path / "small.pt").read_bytes()
    fails(run(["export", "--checkpoint", "other.pt", "--out", "small.pt"], capsys), 2, "add --force")
    assert (tmp_path / "small.pt").read_bytes() == first
    code, _, err = run(["export", "--checkpoint", "other.pt", "--out", "small.pt", "--force"], capsys)
    assert code == 0 and (tmp_path / "small.pt").read_bytes() != first, err


# --- items 9 and 10: stops say the truth; SIGTERM saves like Ctrl-C ------------------------------------------

def test_an_interrupt_before_anything_was_saved_does_not_claim_a_save(capsys, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zoo, "train", interrupted)
    code, _, err = run([*TRAIN_TOY, "--checkpoint", "new.pt"], capsys)
    assert code == 130 and "interrupted (nothing was saved to new.pt)" in err and "holds the last save" not in err
    assert not (tmp_path / "new.pt").exists()


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_sigint_and_sigterm_stop_training_with_a_saved_checkpoint(capsys, tmp_path, monkeypatch, signum, code, word):
    from course_lib.training import Trainer

    fit = Trainer.fit

    def fit_then_signal(self, *args, **kwargs):
        result = fit(self, *args, **kwargs)
        if self.step == 2:
            os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(Trainer, "fit", fit_then_signal)
    exit_code, _, err = run([*TRAIN_TOY, "--checkpoint", "stop.pt", "--steps", "50"], capsys)
    assert exit_code == code and word in err, err
    assert "stop.pt holds the last save of this run; continue with: python -m course_lib train --checkpoint stop.pt " \
           "--resume" in err and "Traceback" not in err
    assert 2 <= read_checkpoint(tmp_path / "stop.pt")["step"] < 50
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_in_the_middle_of_a_step_resumes_bit_for_bit_like_the_uninterrupted_run(capsys, tmp_path, monkeypatch,
                                                                                       signum):
    """The signal lands inside step 3 (after its batch was drawn): the step finishes, the file is saved at
    step 3, and resuming to 6 gives exactly the weights, optimiser and random streams of a run never stopped."""
    from course_lib.training import Trainer

    assert run([*TRAIN_TOY, "--checkpoint", "straight.pt", "--steps", "6"], capsys)[0] == 0
    train_step = Trainer.train_step

    def signal_inside_step_3(self):
        if self.step == 2:
            os.kill(os.getpid(), signum)  # arrives while the step runs
        return train_step(self)

    monkeypatch.setattr(Trainer, "train_step", signal_inside_step_3)
    exit_code, _, err = run([*TRAIN_TOY, "--checkpoint", "stopped.pt", "--steps", "6"], capsys)
    assert exit_code == (130 if signum == signal.SIGINT else 143) and "Traceback" not in err, err
    assert read_checkpoint(tmp_path / "stopped.pt")["step"] == 3
    monkeypatch.setattr(Trainer, "train_step", train_step)
    assert run([*TRAIN_TOY, "--checkpoint", "stopped.pt", "--steps", "6", "--resume"], capsys)[0] == 0
    straight, resumed = read_checkpoint(tmp_path / "straight.pt"), read_checkpoint(tmp_path / "stopped.pt")
    for key in ("model", "ema_model"):
        assert all(torch.equal(straight[key][name], resumed[key][name]) for name in straight[key]), key
    for a, b in zip(straight["optimizer"]["state"].values(), resumed["optimizer"]["state"].values()):
        assert all(torch.equal(a[name], b[name]) for name in a)
    for name in ("data", "noise"):
        assert torch.equal(straight["generators"][name], resumed["generators"][name]), name
    assert straight["history"]["loss"] == resumed["history"]["loss"]


# --- item 11 and 12: stale temp files, --resume of a missing file ------------------------------------------

def test_stale_temp_files_of_the_checkpoint_are_removed_when_training_starts(capsys, tmp_path):
    train_toy(capsys, "toy.pt", "--steps", "1")
    for name in (".toy.pt.k2j3h4.tmp", ".toy.pt.abcdef.tmp"):
        (tmp_path / name).write_bytes(b"x" * 100)
    (tmp_path / ".other.pt.abcdef.tmp").write_bytes(b"kept")
    out = train_toy(capsys, "toy.pt", "--steps", "2", "--resume")
    assert "note: removed 2 temporary file(s) left by a save of toy.pt" in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".other.pt.abcdef.tmp"]


def test_resume_of_a_missing_file_is_an_error_and_resume_if_exists_starts_a_run(capsys, tmp_path):
    fails(run([*TRAIN_TOY, "--checkpoint", "typo.pt", "--resume"], capsys), 2,
          "--resume: typo.pt does not exist, so there is nothing to resume", "--resume-if-exists")
    assert not (tmp_path / "typo.pt").exists()
    out = train_toy(capsys, "run.pt", "--steps", "2", "--resume-if-exists")
    assert "note: run.pt does not exist yet, so a new run starts there" in out and "finished: 2/2" in out
    out = train_toy(capsys, "run.pt", "--steps", "3", "--resume-if-exists")
    assert "Resuming run.pt at step 2 of 3" in out and "finished: 3/3" in out
    fails(run(["train", "--checkpoint", "run.pt", "--resume", "--resume-if-exists"], capsys), 2,
          "not allowed with argument")


# --- item 13: a damaged or NaN checkpoint -----------------------------------------------------------------

def test_a_flipped_bit_or_nan_weights_are_refused_by_sample_and_eval(capsys, tmp_path):
    train_toy(capsys, "toy.pt", "--steps", "2")
    state = read_checkpoint(tmp_path / "toy.pt")
    flip_one_bit_in_largest_tensor(tmp_path / "toy.pt")
    before = snapshot(tmp_path)
    for command in ("sample", "eval"):
        fails(run([command, "--checkpoint", "toy.pt"], capsys), 1,
              "checkpoint toy.pt: its contents do not match the checksum", "Copy it again, or train again")
    assert snapshot(tmp_path) == before
    for value in state["ema_model"].values():
        value.fill_(float("nan"))
    atomic_save(state, tmp_path / "nan.pt")
    fails(run(["eval", "--checkpoint", "nan.pt"], capsys), 1, "checkpoint nan.pt: weights hold NaN or inf values")


# --- the small items --------------------------------------------------------------------------------------

def test_a_symlinked_checkpoint_updates_its_target(capsys, tmp_path):
    (tmp_path / "runs").mkdir()
    train_toy(capsys, "runs/real.pt", "--steps", "1")
    os.symlink("runs/real.pt", tmp_path / "link.pt")
    train_toy(capsys, "link.pt", "--steps", "2", "--resume")
    assert (tmp_path / "link.pt").is_symlink() and read_checkpoint(tmp_path / "runs" / "real.pt")["step"] == 2


def test_files_are_created_with_the_users_umask(capsys, tmp_path):
    old = os.umask(0o027)
    try:
        train_toy(capsys, "toy.pt", "--steps", "1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "toy.pt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "toy.pt.json").stat().st_mode) == 0o640
    (tmp_path / "toy.pt").chmod(0o604)
    train_toy(capsys, "toy.pt", "--steps", "2", "--resume")
    assert stat.S_IMODE((tmp_path / "toy.pt").stat().st_mode) == 0o604  # a replaced file keeps its mode


def test_fp16_on_a_cpu_is_refused_so_the_recorded_precision_is_the_one_used(capsys, tmp_path, monkeypatch):
    no_training(monkeypatch)
    for command in (TRAIN_TOY, ["demo", "--preset", "smoke"]):
        fails(run([*command, "--precision", "fp16", "--device", "cpu"], capsys), 2,
              "--precision: fp16 needs a CUDA GPU", "use bf16")
    assert list(tmp_path.iterdir()) == []


def test_resuming_past_the_asked_steps_says_so_and_leaves_the_file(capsys, tmp_path):
    train_toy(capsys, "toy.pt", "--steps", "3")
    before = snapshot(tmp_path)
    code, out, err = run([*TRAIN_TOY, "--checkpoint", "toy.pt", "--resume", "--steps", "1"], capsys)
    assert code == 0, err
    assert "toy.pt is already at step 3, at or past the 1 steps asked for: nothing to train" in out
    assert "3/1" not in out and snapshot(tmp_path) == before


@pytest.mark.parametrize("seed", [str(2**70), str(2**63), "-1"])
def test_the_seed_range_is_checked(capsys, seed):
    fails(run([*TRAIN_TOY, "--seed", seed], capsys), 2, "argument --seed: expected a whole number in [0, 2**63)", seed)


def test_a_permission_error_on_a_checkpoint_is_reported_as_one(capsys, tmp_path, monkeypatch):
    train_toy(capsys, "toy.pt", "--steps", "1")

    from course_lib import _files

    def no_permission(file, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    monkeypatch.setattr(_files, "open", no_permission, raising=False)  # root reads any file: chmod cannot show this
    line = fails(run(["sample", "--checkpoint", "toy.pt"], capsys), 1, "Permission denied: toy.pt",
                 "check its permissions")
    assert "corrupted" not in line and "delete" not in line.lower()


# --- captions: --caption with unknown words, empty, or for a task without captions ------------------------

@pytest.fixture
def captions_checkpoint(capsys, tmp_path):
    code, _, err = run(["train", "--task", "video-captions", "--model", "dit", "--preset", "smoke", "--steps", "1",
                        "--checkpoint", "captions.pt"], capsys)
    assert code == 0, err
    return "captions.pt"


@pytest.mark.parametrize("caption,words", [
    ("a red sqare moves leftt", ["--caption: expected words of the course's vocabulary", "unknown words ['sqare', 'leftt']"]),
    ("", ["--caption: expected a caption of at least one word", "got ''"]),
    ("  ", ["--caption: expected a caption of at least one word"]),
])
def test_a_bad_caption_is_one_line_and_exit_2(capsys, tmp_path, captions_checkpoint, caption, words):
    before = snapshot(tmp_path)
    fails(run(["sample", "--checkpoint", captions_checkpoint, "--caption", caption, "--out", "c.gif"], capsys), 2,
          *words)
    assert snapshot(tmp_path) == before


def test_a_caption_for_a_task_without_captions_is_one_line_and_exit_2(capsys, tmp_path):
    train_toy(capsys, "toy.pt", "--steps", "1")
    fails(run(["sample", "--checkpoint", "toy.pt", "--caption", "a red square moves left"], capsys), 2,
          "--caption: expected no caption for this checkpoint: its task 'toy-moons' is not conditioned on captions",
          "video-captions")
