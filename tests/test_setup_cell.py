"""The set-up cell that starts every notebook: a no-op where the course is installed, an installer on Colab."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.workshop.build.drift import setup_cell_drift
from course_lib.workshop.build.setup_cell import SETUP_CELL, first_code_cell, with_setup_cell

REPO = Path(__file__).resolve().parents[1]


def run_cell(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The cell in a fresh ``python -S`` (no site-packages: course_lib is not installed), in ``tmp_path``."""
    script = tmp_path / "cell.py"
    script.write_text(SETUP_CELL)
    return subprocess.run([sys.executable, "-S", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], **env}, timeout=60)


def fake_course(folder: Path) -> Path:
    """A clone-shaped folder whose course_lib.config prints where it runs from."""
    (folder / "course_lib").mkdir(parents=True)
    (folder / "notebooks").mkdir()
    (folder / "pyproject.toml").write_text("[project]\nname = 'course_lib'\n")
    (folder / "course_lib" / "__init__.py").write_text("")
    (folder / "course_lib" / "config.py").write_text(
        "import os\ndef describe_environment():\n    return 'fake course, cwd ' + os.getcwd()\n")
    return folder


def fake_pip(folder: Path, log: Path, wheel_contents: Path | None = None) -> Path:
    """A ``pip`` package whose ``python -m pip ...`` records its arguments instead of installing.

    Given ``wheel_contents`` (a folder holding a ``course_lib`` package), "installing" a ``.whl``
    copies that package next to the fake pip, i.e. onto ``sys.path``, as a real install would.
    """
    (folder / "pip").mkdir(parents=True)
    (folder / "pip" / "__init__.py").write_text("")
    install = "" if wheel_contents is None else (
        f"if sys.argv[-1].endswith('.whl'):\n"
        f"    import shutil\n    shutil.copytree({str(wheel_contents / 'course_lib')!r}, {str(folder / 'course_lib')!r})\n")
    (folder / "pip" / "__main__.py").write_text(
        f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]))\n{install}")
    return folder


def test_every_lesson_and_solution_starts_with_the_setup_cell():
    assert setup_cell_drift(REPO) == []
    for folder in ("notebooks", "solutions", "exercises"):
        for source in sorted((REPO / folder).glob("[0-9][0-9]_*.py")):
            assert first_code_cell(source.read_text()) == SETUP_CELL, source


def test_where_the_course_is_installed_the_cell_only_describes_the_machine():
    result = subprocess.run([sys.executable, "-c", SETUP_CELL], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COURSE_SOURCE": "/no/such/clone"})
    assert result.returncode == 0, result.stderr
    assert "device:" in result.stdout and "preset:" in result.stdout


def test_without_the_course_and_without_a_clone_it_says_what_to_do(tmp_path):
    result = run_cell(tmp_path, {"COURSE_SOURCE": str(tmp_path / "nowhere")})
    assert result.returncode != 0
    assert "course_lib is not installed, and COURSE_SOURCE=" in result.stderr
    assert "git clone" in result.stderr


def test_with_a_clone_it_installs_it_and_runs_from_its_notebooks_folder(tmp_path):
    clone, log = fake_course(tmp_path / "course"), tmp_path / "pip.log"
    result = run_cell(tmp_path, {"COURSE_SOURCE": str(clone), "PYTHONPATH": str(fake_pip(tmp_path / "fakes", log))})
    assert result.returncode == 0, result.stderr
    assert log.read_text() == f"install -q -e {clone}"
    assert result.stdout.strip() == f"fake course, cwd {clone / 'notebooks'}"


def test_with_a_wheel_it_installs_the_wheel(tmp_path):
    wheel, log = tmp_path / "course_lib-0.1.0-py3-none-any.whl", tmp_path / "pip.log"
    wheel.write_bytes(b"")
    fakes = fake_pip(tmp_path / "fakes", log, wheel_contents=fake_course(tmp_path / "built"))
    result = run_cell(tmp_path, {"COURSE_SOURCE": str(wheel), "PYTHONPATH": str(fakes)})
    assert result.returncode == 0, result.stderr
    assert log.read_text() == f"install -q {wheel}"  # a wheel is installed as it is, not editable
    assert result.stdout.strip() == f"fake course, cwd {tmp_path}"  # no clone: stays where it was


def test_with_setup_cell_inserts_once_and_replaces_an_old_copy():
    source = "# %% [markdown]\n# # Title\n\n# %%\nimport torch\n"
    once = with_setup_cell(source)
    assert first_code_cell(once) == SETUP_CELL and once.endswith("# %%\nimport torch\n")
    assert with_setup_cell(once) == once
    outdated = once.replace("print(describe_environment())", "print('old')")
    assert with_setup_cell(outdated) == once


@pytest.mark.parametrize("text, expected", [("# %% [markdown]\n# hi\n", None), ("x = 1\n# %%\ny = 2\n", "y = 2")])
def test_first_code_cell(text, expected):
    assert first_code_cell(text) == expected


def test_the_check_command_names_a_notebook_without_the_setup_cell(tmp_path, capsys):
    from course_lib.workshop.build.__main__ import main

    for folder in ("notebooks", "solutions", "exercises"):
        (tmp_path / folder).mkdir()
    lesson = tmp_path / "notebooks" / "01_x.py"
    lesson.write_text(with_setup_cell("# %% [markdown]\n# # X\n\n# %%\nx = 1\n"))
    (tmp_path / "pyproject.toml").write_text("")  # a course checkout
    assert setup_cell_drift(tmp_path) == []
    lesson.write_text("# %% [markdown]\n# # X\n\n# %%\nx = 1\n")
    assert setup_cell_drift(tmp_path) == [
        "notebooks/01_x.py: its first code cell is not the set-up cell of course_lib/workshop/build/setup_cell.py "
        "(write it with with_setup_cell, then build)"]
    main(["check", "--root", str(tmp_path)])
    assert "notebooks/01_x.py: its first code cell is not the set-up cell" in capsys.readouterr().err
