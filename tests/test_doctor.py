"""``python -m course_lib doctor``: one line per topic; a warning line (exit 0) for what degrades the course, one
error line (exit 1) for what would stop a lesson, each saying what to do; never a traceback; seconds to run.

Every probe's failure is simulated by monkeypatching what it looks at (the ffmpeg lookup, the imports, the
extension folders, the cores, the memory, the disk, the shipped folder, the lesson-time record).
"""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from course_lib.workshop import doctor, shipped, zoo
from course_lib.workshop.build import timing
from course_lib.workshop.cli import main
from course_lib.workshop.recipes import get_recipe

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ("python", "torch", "threads", "memory", "preset", "widgets", "ffmpeg", "weights", "disk", "lessons")


@pytest.fixture(autouse=True)
def healthy(monkeypatch, tmp_path):
    """A machine with nothing wrong: cpu preset, 2 idle cores on 2 threads, ample memory and disk, an empty course folder."""
    monkeypatch.setenv("COURSE_PRESET", "cpu")
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(doctor, "course_root", lambda: tmp_path)
    monkeypatch.setattr(doctor, "_cores", lambda: 2)
    monkeypatch.setattr(doctor, "_load", lambda: 0.5)
    monkeypatch.setattr(doctor, "_available_memory", lambda: (8 * 2**30, "test"))
    monkeypatch.setattr(doctor, "_disk_free", lambda folder: 50 * 2**30)
    monkeypatch.setattr(doctor, "_widget_extension", lambda: Path("/labextensions") / doctor.WIDGET_EXTENSION)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield tmp_path
    torch.set_num_threads(threads)


def run(capsys):
    """(exit code, stdout, the error lines of stderr, the warning lines of stdout)."""
    code = main(["doctor"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    errors = err.splitlines()
    assert all(line.startswith("python -m course_lib doctor: error: ") for line in errors), err
    return code, out, errors, [line for line in out.splitlines() if line.startswith("warning: ")]


def one_line(lines: list[str], *words: str) -> str:
    """The only line in ``lines``, holding every word."""
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_a_healthy_machine_gets_one_line_per_topic_and_exit_0(capsys):
    code, out, errors, warnings = run(capsys)
    assert code == 0 and not errors and not warnings, out
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:len(TOPICS)]] == list(TOPICS)
    assert lines[-1] == "ready: nothing here will stop a lesson"
    facts = dict(line.split(maxsplit=1) for line in lines[:len(TOPICS)])
    assert torch.__version__ in facts["torch"] and "cpu on cpu (COURSE_PRESET=cpu)" in facts["preset"]
    assert "torch uses 2 threads on 2 CPU cores" in facts["threads"] and "8.00 GiB available" in facts["memory"]
    assert "digits-unet2d-cpu-" in facts["weights"] and "video-shapes-unet3d-cpu-" in facts["weights"]
    assert "not measured yet" in facts["lessons"] and "notebooks time --preset cpu" in facts["lessons"]


def test_the_command_runs_within_seconds_in_a_real_process():
    """The target is 10 s (most of it importing torch); 30 s leaves room for a loaded test machine."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "course_lib", "doctor"], capture_output=True, text=True,
                            timeout=120, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    assert "Traceback" not in result.stdout + result.stderr and "weights" in result.stdout, result.stderr
    assert result.returncode in (0, 1) and seconds < 30, (seconds, result.stdout, result.stderr)


# --- ffmpeg ---------------------------------------------------------------------------------------

def test_without_imageio_ffmpeg_lesson_05_would_stop(capsys, monkeypatch):
    def missing():
        raise ModuleNotFoundError("No module named 'imageio_ffmpeg'")

    monkeypatch.setattr(doctor, "_ffmpeg_exe", missing)
    code, out, errors, warnings = run(capsys)
    assert code == 1 and not warnings
    one_line(errors, "ffmpeg:", "lesson 05", "python -m pip install imageio-ffmpeg")
    assert out.splitlines()[-1].startswith("not ready: 1 problem would stop a lesson")


def test_without_an_ffmpeg_binary_gifs_still_work(capsys, monkeypatch):
    def no_binary():
        raise RuntimeError("No ffmpeg exe could be found. Install ffmpeg on your system, or set IMAGEIO_FFMPEG_EXE.")

    monkeypatch.setattr(doctor, "_ffmpeg_exe", no_binary)
    code, out, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "ffmpeg:", "no ffmpeg binary", "GIFs", "IMAGEIO_FFMPEG_EXE")
    assert "ffmpeg" in out and "no ffmpeg binary" in out.split("ffmpeg", 1)[1].splitlines()[0]


# --- widgets --------------------------------------------------------------------------------------

def test_without_ipywidgets_the_lessons_fall_back_to_static_figures(capsys, monkeypatch):
    real = doctor._import_version
    monkeypatch.setattr(doctor, "_import_version", lambda module: (None, "ModuleNotFoundError: No module named "
                                                                    "'ipywidgets'") if module == "ipywidgets" else real(module))
    code, out, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "widgets:", "static figures", "quizzes print their answers", "pip install 'ipywidgets>=8'")
    assert "no ipywidgets" in out


def test_an_old_ipywidgets_is_named(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "_import_version", lambda module: ("7.7.1", None))
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "ipywidgets 7.7.1 is older than 8")


def test_the_widget_extension_is_looked_for_in_jupyterlabs_folders(monkeypatch, tmp_path):
    monkeypatch.undo()  # the real lookup
    monkeypatch.setattr(doctor, "_labextension_dirs", lambda: [tmp_path / "labextensions"])
    assert doctor._widget_extension() is None
    (tmp_path / "labextensions" / doctor.WIDGET_EXTENSION).mkdir(parents=True)
    (tmp_path / "labextensions" / doctor.WIDGET_EXTENSION / "package.json").write_text("{}")
    assert doctor._widget_extension() == tmp_path / "labextensions" / doctor.WIDGET_EXTENSION


def test_a_missing_widget_extension_or_jupyterlab_is_a_warning_with_the_fix(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "_widget_extension", lambda: None)
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "VBox(...)", "pip install jupyterlab_widgets", "restart")
    real = doctor._distribution_version
    monkeypatch.setattr(doctor, "_distribution_version", lambda name: None if name == "jupyterlab" else real(name))
    code, out, errors, warnings = run(capsys)
    assert code == 0 and not errors and "no JupyterLab" in out
    one_line(warnings, "JupyterLab is not installed", "VS Code", "Colab")


# --- preset, threads, memory ----------------------------------------------------------------------

def test_an_unknown_preset_is_an_error_naming_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PRESET", "laptop")
    code, out, errors, _ = run(capsys)
    assert code == 1
    one_line(errors, "preset:", "$COURSE_PRESET", "'laptop'", "smoke, cpu, gpu")
    assert "lessons" in out  # the other probes still ran (the lesson times fall back to the cpu preset)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_a_gpu_is_an_error(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    code, _, errors, _ = run(capsys)
    assert code == 1
    one_line(errors, "preset:", "CUDA is not available", "COURSE_DEVICE")


@pytest.mark.parametrize("preset, words", [("smoke", ["samples are noise", "COURSE_PRESET=cpu"]),
                                           ("gpu", ["gpu preset on a cpu", "COURSE_PRESET=cpu"])])
def test_a_preset_that_degrades_the_workshop_is_a_warning(preset, words, capsys, monkeypatch):
    if preset == "gpu" and torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    monkeypatch.setenv("COURSE_PRESET", preset)
    code, out, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "preset:", *words)
    assert f"for the cpu preset; {preset} trains its own models" in out


def test_few_threads_or_a_busy_machine_are_warnings(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "_cores", lambda: 1)
    torch.set_num_threads(1)
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "threads:", "one CPU core", "shipped weights")
    monkeypatch.setattr(doctor, "_cores", lambda: 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one_line(run(capsys)[3], "torch uses 1 thread of 4 cores", "OMP_NUM_THREADS=2")
    torch.set_num_threads(4)
    monkeypatch.setattr(doctor, "_load", lambda: 9.0)
    one_line(run(capsys)[3], "busy (load 9.0 on 4 cores)", "OMP_NUM_THREADS=1")


def test_low_memory_is_a_warning(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "_available_memory", lambda: (300 * 2**20, "test"))
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "memory:", "only 300.0 MiB", "COURSE_PRESET=smoke")


def test_memory_without_proc_meminfo_falls_back_to_sysconf(monkeypatch, tmp_path):
    from course_lib.training import memory

    monkeypatch.undo()
    monkeypatch.setattr(doctor, "MEMINFO", str(tmp_path / "no-meminfo"))
    monkeypatch.setattr(memory, "MEMINFO", str(tmp_path / "no-meminfo"))
    total, (available, source) = doctor._total_memory(), doctor._available_memory()
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        assert total > 0 and available > 0 and source == "free pages (sysconf)"
    finding = doctor.probe_memory(doctor.Context(tmp_path, None, None))
    assert "total" in finding.fact and not finding.errors


# --- shipped weights ------------------------------------------------------------------------------

@pytest.fixture
def shipped_copy(monkeypatch, tmp_path):
    """A copy of the shipped folder that a test may change."""
    folder = tmp_path / "pretrained"
    shutil.copytree(shipped.SHIPPED_FOLDER, folder)
    monkeypatch.setattr(shipped, "SHIPPED_FOLDER", folder)
    return folder


def shipped_name(task: str, model: str) -> str:
    return zoo.checkpoint_path(get_recipe(task, "cpu", model)).name


def test_a_missing_shipped_model_is_an_error_in_the_cpu_preset_with_the_command_that_trains_it(capsys, shipped_copy,
                                                                                               monkeypatch):
    (shipped_copy / shipped_name("digits", "unet2d")).unlink()
    code, out, errors, _ = run(capsys)
    assert code == 1
    one_line(errors, "weights:", "missing", "lesson 04's exercises, 11",
             "python -m course_lib train --task digits --model unet2d --preset cpu")
    monkeypatch.setenv("COURSE_PRESET", "smoke")  # the smoke preset never loads it: a warning
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors and any("missing" in line for line in warnings)


def test_a_model_trained_here_stands_in_for_a_missing_shipped_one(capsys, shipped_copy, healthy):
    name = shipped_name("video-shapes", "unet3d")
    (healthy / "checkpoints").mkdir()
    shutil.move(shipped_copy / name, healthy / "checkpoints" / name)
    code, out, errors, _ = run(capsys)
    assert code == 0 and not errors
    assert f"{name[:-3]} trained here" in out and "1 checkpoint there" in out


@pytest.mark.parametrize("damage, words", [
    ("junk", ["cannot be read"]),
    ("other recipe", ["another recipe"]),
])
def test_a_damaged_or_foreign_shipped_file_is_an_error(damage, words, capsys, shipped_copy):
    target = shipped_copy / shipped_name("video-shapes", "unet3d")
    if damage == "junk":
        target.write_bytes(b"not a checkpoint")
    else:
        shutil.copy(shipped_copy / shipped_name("digits", "unet2d"), target)
    code, _, errors, _ = run(capsys)
    assert code == 1
    one_line(errors, "weights:", target.name, *words)


def test_a_shipped_file_no_recipe_loads_is_a_warning(capsys, shipped_copy):
    shutil.copy(shipped_copy / shipped_name("digits", "unet2d"), shipped_copy / "digits-unet2d-cpu-000000000000.pt")
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "digits-unet2d-cpu-000000000000.pt", "loaded by no lesson")


# --- disk -----------------------------------------------------------------------------------------

def test_little_disk_is_a_warning_and_almost_none_an_error(capsys, monkeypatch):
    monkeypatch.setattr(doctor, "_disk_free", lambda folder: 500 * 2**20)
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "disk:", "only 500.0 MiB free")
    monkeypatch.setattr(doctor, "_disk_free", lambda folder: 20 * 2**20)
    code, _, errors, warnings = run(capsys)
    assert code == 1 and not warnings
    one_line(errors, "disk:", "only 20.0 MiB free", "may not be saved")


def test_a_folder_that_cannot_be_written_is_an_error(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(doctor.tempfile, "TemporaryFile", refuse)
    code, _, errors, _ = run(capsys)
    assert code == 1
    one_line(errors, "disk:", "cannot write", "Permission denied", "folder you can write to")


# --- time per lesson ------------------------------------------------------------------------------

def test_the_lesson_times_the_timing_command_records_are_shown(capsys, monkeypatch, healthy):
    (healthy / "notebooks").mkdir()
    for name in ("00_tour", "01_chain", "02_reverse"):
        (healthy / "notebooks" / f"{name}.ipynb").write_text("{}")
    seconds = {"00_tour": 14.6, "01_chain": 95.0, "02_reverse": 30.0}
    monkeypatch.setattr(timing, "time_lesson", lambda path, preset, threads=None: timing.LessonTime(
        path.stem, seconds[path.stem], "cell 3 raised ZeroDivisionError" if path.stem == "02_reverse" else None))
    timing.time_lessons(healthy, "cpu", threads=2, log=lambda line: None)
    code, out, errors, warnings = run(capsys)
    assert code == 0 and not errors
    line = next(line for line in out.splitlines() if line.startswith("lessons"))
    assert "cpu preset (" in line and "2 threads" in line
    assert "00 15 s · 01 1.6 min · 02 30 s (failed)" in line and "total 2.3 min" in line
    one_line(warnings, "lesson 02 failed when timed")


def test_an_unreadable_lesson_time_record_is_a_warning(capsys, healthy):
    (healthy / "benchmarks").mkdir()
    (healthy / "benchmarks" / "lesson-times-cpu.json").write_text("{not json")
    code, _, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "lessons:", "cannot be read", "notebooks time --preset cpu")


# --- a probe that fails unforeseen ----------------------------------------------------------------

def test_a_probe_that_crashes_becomes_one_warning_not_a_traceback(capsys, monkeypatch):
    def boom(folder):
        raise RuntimeError("statvfs exploded\nsecond line")

    monkeypatch.setattr(doctor, "_disk_free", boom)
    code, out, errors, warnings = run(capsys)
    assert code == 0 and not errors
    one_line(warnings, "disk:", "the check itself failed (RuntimeError: statvfs exploded)")
    assert "could not be checked" in next(line for line in out.splitlines() if line.startswith("disk"))


def test_several_problems_give_one_error_line_each(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_PRESET", "laptop")
    monkeypatch.setattr(doctor, "_disk_free", lambda folder: 1)
    monkeypatch.setattr(doctor, "_ffmpeg_exe", lambda: (_ for _ in ()).throw(ImportError("no imageio_ffmpeg")))
    code, out, errors, _ = run(capsys)
    assert code == 1 and len(errors) == 3
    assert [line.split(": error: ")[1].split(":")[0] for line in errors] == ["preset", "ffmpeg", "disk"]
    assert "not ready: 3 problems would stop a lesson" in out


def test_help_names_what_is_checked(capsys):
    assert main(["doctor", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "python -m course_lib doctor" in out and "Exit code 1" in out



def test_on_a_cuda_machine_the_gpu_memory_is_shown_and_the_cpu_preset_noted(monkeypatch, tmp_path):
    """No GPU here: the CUDA calls are stand-ins, the probes' own logic is real."""
    from types import SimpleNamespace

    from course_lib.config import PRESETS

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(name="Test GPU", total_memory=80 * 2**30))
    real = doctor.available_memory
    monkeypatch.setattr(doctor, "available_memory",
                        lambda device: (79 * 2**30, "test") if torch.device(device).type == "cuda" else real(device))
    context = doctor.Context(tmp_path, PRESETS["cpu"], torch.device("cuda"))
    assert "; GPU Test GPU: 80.00 GiB, 79.00 GiB free" in doctor.probe_memory(context).fact
    monkeypatch.delenv("COURSE_PRESET")
    gpu = doctor.probe_preset(doctor.Context(tmp_path, PRESETS["gpu"], torch.device("cuda")))
    assert gpu.fact == "gpu on cuda (COURSE_PRESET unset, CUDA found)" and not gpu.warnings and not gpu.errors
    monkeypatch.setenv("COURSE_PRESET", "cpu")
    (line,) = doctor.probe_preset(context).warnings
    assert "a CUDA GPU is here but COURSE_PRESET=cpu" in line
