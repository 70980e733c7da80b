"""bench site: the website's build time from an empty execution cache, one row per lesson, then the pages."""
import json
from types import SimpleNamespace

import nbformat
import pytest

from course_lib.workshop.bench import site as bench_site
from course_lib.workshop.bench.__main__ import main
from course_lib.workshop.build.execute import CellError
from course_lib.workshop.site import cache as site_cache


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A course of two lessons whose kernel is a stub that 'runs' each in a known time, and a stub Sphinx."""
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "video-shapes-unet3d-cpu-0123.pt").write_bytes(b"")
    for name in ("00_tour", "01_chain"):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), root / "notebooks" / f"{name}.ipynb")
    seconds = {"00_tour": 3.0, "01_chain": 90.0}
    clock = {"now": 0.0}
    monkeypatch.setattr(site_cache, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))  # the lessons' clock

    def execute(lesson, preset, cache, threads):
        clock["now"] += seconds[lesson.stem]
        if lesson.stem in failing:
            raise CellError(f"notebooks/{lesson.name}", "cell 1", "ZeroDivisionError")
        return nbformat.read(lesson, as_version=4)

    real = site_cache.executed_lessons
    monkeypatch.setattr(bench_site, "executed_lessons", lambda *args, **kwargs: real(*args, execute=execute, **kwargs))
    built = []
    monkeypatch.setattr(bench_site, "build_site", lambda root, preset, out, cache, log, jobs: built.append(
        sorted(path.name for path in (cache / preset).glob("*.ipynb"))))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "judges"))
    failing = set()
    return root, built, failing


def test_every_lesson_gets_its_kernels_seconds_and_the_pages_are_built_from_that_cache(course, tmp_path, capsys):
    root, built, _ = course
    assert main(["site", "--preset", "cpu", "--root", str(root), "--jobs", "1", "--out", str(tmp_path / "out")]) == 0
    assert built == [["00_tour.ipynb", "01_chain.ipynb"]]  # the pages read the lessons just run
    record = json.loads((tmp_path / "out" / "site-cpu.json").read_text())
    rows = {row["part"]: row["seconds"] for row in record["rows"]}
    assert rows["00_tour"] == 3.0 and rows["01_chain"] == 90.0
    assert list(rows)[2:] == ["all lessons, 1 at a time", "pages (Sphinx)", "whole build"]
    assert rows["all lessons, 1 at a time"] < 60 and rows["whole build"] < 60  # the stub lessons take no real time
    assert record["preset"] == "cpu" and record["jobs"] == 1
    notes = " ".join(record["notes"])
    assert "checkpoints/ held 1 trained model(s) (video-shapes-unet3d-cpu-0123.pt)" in notes
    assert "judge cache 0 judge(s)" in notes
    assert (record["models_before"], record["judges_before"], record["kernel_threads"]) == (1, 0, None)  # 1 job: torch's threads
    assert "| 01_chain | 90 | 1.5 |" in capsys.readouterr().out


def test_a_failing_lesson_is_one_line_and_the_record_keeps_the_lessons_that_ran(course, tmp_path, capsys):
    root, built, failing = course
    failing.add("01_chain")
    assert main(["site", "--preset", "cpu", "--root", str(root), "--jobs", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "01_chain" in err and "site-cpu.json" in err, err
    record = json.loads((tmp_path / "out" / "site-cpu.json").read_text())
    assert [row["part"] for row in record["rows"]] == ["00_tour"] and "ZeroDivisionError" in record["failed"]
    assert built == []


def test_bad_arguments_are_one_line_each(course, tmp_path, capsys):
    root, _, _ = course
    for argv, expected in ((["--jobs", "0"], "--jobs"), (["--root", str(tmp_path / "nowhere")], "root")):
        assert main(["site", "--root", str(root), "--out", str(tmp_path / "out"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and expected in err and "Traceback" not in err, err
