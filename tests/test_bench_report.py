"""BENCHMARKS.md's tables are written from the records: `python -m course_lib bench report`."""
import json
import shutil
from pathlib import Path

import pytest

from course_lib.workshop.bench.__main__ import main
from course_lib.workshop.bench.report import BEGIN, END

REPO = Path(__file__).resolve().parents[1]

RECORD = {"title": "Training speed, preset cpu", "columns": ["model", "step s"], "formats": {"step s": ".3f"},
          "rows": [{"model": "unet3d", "step s": 0.2812}, {"model": "conv_lstm", "step s": None}],
          "notes": ["1 thread"], "verdicts": ["step ≤ 0.5 s: met"], "preset": "cpu", "date": "2026-12-06",
          "machine": "AMD EPYC, 2 cores; torch 2.13.0 on cpu with 1 thread(s)",
          "command": "python -m course_lib bench training --preset cpu --out benchmarks/results"}


def test_the_committed_page_is_what_its_records_give():
    assert main(["report", "--check", "--root", str(REPO)]) == 0


@pytest.fixture
def course(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "training-cpu.json").write_text(json.dumps(RECORD))
    shutil.copy(REPO / "benchmarks" / "lesson-times-smoke.json", tmp_path / "benchmarks") \
        if (REPO / "benchmarks" / "lesson-times-smoke.json").exists() else None
    (tmp_path / "BENCHMARKS.md").write_text(f"# Benchmarks\n\n{BEGIN}\nold\n{END}\n\nhand-written notes\n")
    return tmp_path


def test_a_record_becomes_its_table_with_command_day_and_machine(course, capsys):
    assert main(["report", "--root", str(course)]) == 0
    page = (course / "BENCHMARKS.md").read_text()
    generated = page.split(BEGIN)[1].split(END)[0]
    assert "old" not in generated and page.endswith("hand-written notes\n")
    assert "### Training speed, preset cpu" in generated and "| unet3d | 0.281 |" in generated
    assert "| conv_lstm | – |" in generated and "- step ≤ 0.5 s: met" in generated
    assert "`python -m course_lib bench training --preset cpu --out benchmarks/results`" in generated
    assert "2026-12-06" in generated and "AMD EPYC" in generated
    assert "### Shipped checkpoints" in generated  # from the shipped files' training records
    assert main(["report", "--check", "--root", str(course)]) == 0


def test_a_table_that_drifts_from_its_record_fails_the_check(course, capsys):
    assert main(["report", "--root", str(course)]) == 0
    drifted = dict(RECORD, rows=[{"model": "unet3d", "step s": 0.3}, {"model": "conv_lstm", "step s": None}])
    (course / "benchmarks" / "results" / "training-cpu.json").write_text(json.dumps(drifted))
    assert main(["report", "--check", "--root", str(course)]) == 1
    assert "out of date" in capsys.readouterr().err


def test_a_page_without_the_markers_is_one_line_and_exit_2(course, capsys):
    (course / "BENCHMARKS.md").write_text("# Benchmarks\n")
    assert main(["report", "--root", str(course)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "generated:begin" in err and "Traceback" not in err


def test_the_lesson_time_tables_of_readme_and_instructors_follow_their_record(course, capsys):
    from course_lib.workshop.build.timing import BEGIN as TIMES_BEGIN, END as TIMES_END

    times = {"preset": "cpu", "threads": 1, "torch": "2.13.0", "machine": {"cpu_count": 2, "platform": "Linux"},
             "lessons": [{"lesson": "00_tour", "seconds": 4.2, "error": None}]}
    (course / "benchmarks" / "lesson-times-cpu.json").write_text(json.dumps(times))
    for name in ("README.md", "INSTRUCTORS.md"):
        (course / name).write_text(f"# {name}\n\n{TIMES_BEGIN}\nold\n{TIMES_END}\n\nhand-written\n")
    assert main(["report", "--root", str(course)]) == 0
    for name in ("README.md", "INSTRUCTORS.md"):
        page = (course / name).read_text()
        assert "| `cpu` | 4 s |" in page and "old" not in page and page.endswith("hand-written\n"), page
    assert main(["report", "--check", "--root", str(course)]) == 0
    times["lessons"][0]["seconds"] = 400.0
    (course / "benchmarks" / "lesson-times-cpu.json").write_text(json.dumps(times))
    capsys.readouterr()
    assert main(["report", "--check", "--root", str(course)]) == 1
    err = capsys.readouterr().err
    assert "README.md is out of date" in err and "INSTRUCTORS.md is out of date" in err


def test_a_time_page_that_lost_its_markers_is_one_line_and_exit_2(course, capsys):
    times = {"preset": "cpu", "threads": 1, "torch": "2.13.0", "machine": {"cpu_count": 2, "platform": "Linux"},
             "lessons": [{"lesson": "00_tour", "seconds": 4.2, "error": None}]}
    (course / "benchmarks" / "lesson-times-cpu.json").write_text(json.dumps(times))
    (course / "README.md").write_text("# Course\n\nno table here\n")
    assert main(["report", "--check", "--root", str(course)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "README.md" in err and "lesson-times:begin" in err and "Traceback" not in err


def test_the_time_tables_show_each_lessons_first_run_from_the_site_benchmark(course, capsys):
    from course_lib.workshop.build.timing import BEGIN as TIMES_BEGIN, END as TIMES_END

    times = {"preset": "cpu", "threads": 1, "torch": "2.13.0", "machine": {"cpu_count": 2, "platform": "Linux"},
             "lessons": [{"lesson": "00_tour", "seconds": 4.2, "error": None}]}
    (course / "benchmarks" / "lesson-times-cpu.json").write_text(json.dumps(times))
    (course / "benchmarks" / "lesson-times-smoke.json").unlink(missing_ok=True)  # one preset row: cpu
    site = {**RECORD, "title": "The website", "columns": ["part", "seconds", "minutes"], "jobs": 2,
            "models_before": 0, "judges_before": 0, "kernel_threads": 1,
            "command": "python -m course_lib bench site --preset cpu",
            "rows": [{"part": "00_tour", "seconds": 9.0, "minutes": 0.15},
                     {"part": "16_text", "seconds": 1061.0, "minutes": 17.7},
                     {"part": "all lessons, 2 at a time", "seconds": 1070.0, "minutes": 17.8}]}
    (course / "benchmarks" / "results" / "site-cpu.json").write_text(json.dumps(site))
    smoke = {**site, "preset": "smoke", "rows": [{"part": "00_tour", "seconds": 1.0, "minutes": 0.02}]}
    (course / "benchmarks" / "results" / "site-smoke.json").write_text(json.dumps(smoke))
    (course / "README.md").write_text(f"# Course\n\n{TIMES_BEGIN}\nold\n{TIMES_END}\n")
    assert main(["report", "--root", str(course)]) == 0
    table = (course / "README.md").read_text().split(TIMES_BEGIN)[1].split(TIMES_END)[0]
    assert "| preset | 00 | 16 |" in table
    assert "| `cpu` | 4 s | — |" in table  # lesson 16 not timed with its models trained
    assert "| `cpu`, first run | 9 s | 17.7 min |" in table  # the build's totals are not lessons
    assert "smoke" not in table  # the smoke build trains everything in seconds: no row
    generated = (course / "BENCHMARKS.md").read_text().split(BEGIN)[1].split(END)[0]
    assert "| `cpu`, first run | 9 s | 17.7 min |" in generated
    assert "First run: `python -m course_lib bench site --preset cpu` from an empty `checkpoints/`" in generated
    assert "2 lessons at a time, 1 thread(s) each (AMD EPYC, 2 cores; torch 2.13.0)" in generated
    for not_a_first_run in ({"failed": "lesson 16 failed"}, {"models_before": 3}, {"judges_before": 1}, {"models_before": None}):
        (course / "benchmarks" / "results" / "site-cpu.json").write_text(json.dumps({**site, **not_a_first_run}))
        assert main(["report", "--root", str(course)]) == 0
        assert "first run" not in (course / "README.md").read_text(), not_a_first_run
    (course / "benchmarks" / "results" / "site-cpu.json").write_text(json.dumps(site))
    assert main(["report", "--root", str(course)]) == 0
    site["rows"][1]["seconds"] = 500.0
    (course / "benchmarks" / "results" / "site-cpu.json").write_text(json.dumps(site))
    capsys.readouterr()
    assert main(["report", "--check", "--root", str(course)]) == 1
    assert "README.md is out of date" in capsys.readouterr().err
