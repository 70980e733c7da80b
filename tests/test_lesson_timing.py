"""`python -m course_lib notebooks time`: lessons run in a preset, timed, recorded, and README's table rewritten."""
import json
import re

import nbformat
import pytest

from course_lib.workshop.build.__main__ import main
from course_lib.workshop.build.timing import BEGIN, END


def write_lesson(folder, name, source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture
def course(tmp_path):
    (tmp_path / "notebooks").mkdir()
    write_lesson(tmp_path / "notebooks", "00_tour", "import os\nassert os.environ['COURSE_PRESET'] == 'smoke'")
    write_lesson(tmp_path / "notebooks", "01_broken", "1 / 0")
    (tmp_path / "README.md").write_text(f"# Course\n\n{BEGIN}\nold table\n{END}\n\nmore text\n")
    return tmp_path


def test_each_lesson_is_timed_in_the_preset_and_the_readme_table_rewritten(course, capsys):
    assert main(["time", "00", "--preset", "smoke", "--root", str(course)]) == 0
    record = json.loads((course / "benchmarks" / "lesson-times-smoke.json").read_text())
    assert [entry["lesson"] for entry in record["lessons"]] == ["00_tour"] and record["lessons"][0]["error"] is None
    assert 0 < record["lessons"][0]["seconds"] < 120 and record["torch"]
    readme = (course / "README.md").read_text()
    table = readme.split(BEGIN)[1].split(END)[0]
    assert "old table" not in readme and readme.endswith("more text\n")
    assert "| preset | 00 |\n" in table and re.search(r"\| `smoke` \| \d+ s \|\n", table), table


def test_a_failing_lesson_is_named_with_its_cell_and_the_run_exits_1(course, capsys):
    assert main(["time", "--preset", "smoke", "--root", str(course)]) == 1
    record = json.loads((course / "benchmarks" / "lesson-times-smoke.json").read_text())
    failed = {entry["lesson"]: entry["error"] for entry in record["lessons"]}
    assert failed["00_tour"] is None and "ZeroDivisionError" in failed["01_broken"]


@pytest.mark.parametrize("argv, words", [
    (["time", "--preset", "huge"], ["preset", "'smoke', 'cpu', 'gpu'", "'huge'"]),
    (["time", "42", "--preset", "smoke"], ["lesson", "00, 01", "'42'"]),
])
def test_bad_input_is_one_line_and_exit_code_2(course, capsys, argv, words):
    assert main([*argv, "--root", str(course)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and all(word in err for word in words), err
    assert not (course / "benchmarks").exists()


def test_a_cell_may_train_a_model_outside_smoke():
    """Lessons 15 and 16 train their transformers in one cell on a first cpu run (about 20 minutes)."""
    from course_lib.workshop.build.execute import cell_timeout

    assert cell_timeout("smoke") == 600 and cell_timeout("cpu") == cell_timeout("gpu") >= 2 * 3600


def test_a_cell_past_the_time_limit_is_recorded_as_a_failure_not_a_crash(course, monkeypatch, capsys):
    from course_lib.workshop.build import timing

    write_lesson(course / "notebooks", "02_slow", "import time\ntime.sleep(30)")
    monkeypatch.setattr(timing, "cell_timeout", lambda preset: 2)
    assert main(["time", "02", "--preset", "smoke", "--root", str(course)]) == 1
    record = json.loads((course / "benchmarks" / "lesson-times-smoke.json").read_text())
    assert "CellTimeoutError" in record["lessons"][0]["error"] and record["lessons"][0]["seconds"] < 25
