"""The notebook pipeline: stubs from solutions, deterministic builds, drift checks, and nbval.

Kernel starts are slow, so notebooks run only three times here: one build of the fixture solution,
one nbval run over the fixture's solution, exercise and wrong answer, and one nbval run over the
repository's exercise notebooks.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.workshop.build import (
    BuildError, SolutionMarkerError, build, check, is_check_cell, notebook_number, strip_solutions,
)
from course_lib.workshop.build.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "notebook_pipeline"
NAME = "99_fixture_sqrt"
LESSON = "99_fixture_lesson"


# --- stubs: strip_solutions -------------------------------------------------------------------

SOLUTION = '''\
# %%
def f(x):
    y = 2 * x
    ### BEGIN SOLUTION double it again
    y = 2 * y
    ### END SOLUTION
    return y


class Model:
    def forward(self, x):
        if x is None:
            ### BEGIN SOLUTION
            return 0
            ### END SOLUTION
        ### BEGIN SOLUTION say "hi" \\ twice
        return x
        ### END SOLUTION

# %%
### BEGIN SOLUTION
z = 3
### END SOLUTION
'''


def test_stubs_keep_indentation_number_regions_and_use_the_hint():
    stub = strip_solutions(SOLUTION, 7)
    assert stub.splitlines() == [
        "# %%",
        "def f(x):",
        "    y = 2 * x",
        '    raise NotImplementedError("Exercise 7.1: double it again")',
        "    return y",
        "",
        "",
        "class Model:",
        "    def forward(self, x):",
        "        if x is None:",
        '            raise NotImplementedError("Exercise 7.2: write your code here")',
        '        raise NotImplementedError("Exercise 7.3: say \\"hi\\" \\\\ twice")',
        "",
        "# %%",
        'raise NotImplementedError("Exercise 7.4: write your code here")',
    ]


def test_stub_is_python_that_raises_the_numbered_message():
    namespace: dict = {}
    exec(strip_solutions(SOLUTION.split("# %%\n### BEGIN")[0], 12), namespace)
    with pytest.raises(NotImplementedError, match=r"^Exercise 12\.1: double it again$"):
        namespace["f"](1)
    with pytest.raises(NotImplementedError) as raised:
        namespace["Model"]().forward(1)
    assert str(raised.value) == 'Exercise 12.3: say "hi" \\ twice'


def test_text_without_regions_is_unchanged():
    text = "# %%\nx = 1  # ### BEGIN SOLUTION in a comment is not a marker\n"
    assert strip_solutions(text, 1) == text


@pytest.mark.parametrize("source, line, words", [
    ("a = 1\n### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n### END SOLUTION\n", 3, "nested"),
    ("a = 1\n\n### BEGIN SOLUTION\nb = 2\n", 3, "never closed"),
    ("a = 1\n### END SOLUTION\n", 2, "without a '### BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\nb = 2\n# %%\n### END SOLUTION\n", 3, "new cell starts inside"),
])
def test_misplaced_markers_are_refused_naming_file_and_line(source, line, words):
    with pytest.raises(SolutionMarkerError, match=re.escape(f"solutions/05_x.py, line {line}: ") + ".*" + re.escape(words)):
        strip_solutions(source, 5, path="solutions/05_x.py")


def test_bad_arguments_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"^notebook_number: expected an int in \[0, 99\], got 100"):
        strip_solutions("x = 1\n", 100)
    with pytest.raises(ValueError, match=r"^path: expected a file named NN_name.py.*got 'intro.py'"):
        notebook_number("intro.py")
    assert notebook_number("solutions/01_forward_chain.py") == 1
    with pytest.raises(ValueError, match=r"^root: expected a folder holding notebooks/ and solutions/"):
        build(tmp_path / "nowhere", execute=False)
    with pytest.raises(ValueError, match=r"^root: "):
        check(tmp_path)
    (tmp_path / "solutions").mkdir()
    with pytest.raises(ValueError, match=r"^only: expected an int in \[0, 99\], got 'one'"):
        build(tmp_path, only="one", execute=False)


def test_a_solution_without_regions_is_refused(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "03_empty.py").write_text("# %%\nx = 1\n")
    with pytest.raises(SolutionMarkerError, match=r"solutions/03_empty.py: no '### BEGIN SOLUTION' region"):
        build(tmp_path, execute=False)


# --- build: the fixture, built once (one notebook execution) --------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The fixture tree after ``build`` (solution executed in the smoke preset)."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True)
    build(root, log=lambda message: None)
    return root


@pytest.fixture
def tree(built, tmp_path) -> Path:
    """A fresh copy of the built tree, to edit."""
    return Path(shutil.copytree(built, tmp_path / "course"))


def read(path: Path):
    return nbformat.read(path, as_version=4)


def test_build_stores_outputs_only_for_check_cells(built):
    solution = read(built / "solutions" / f"{NAME}.ipynb")
    assert solution.metadata.kernelspec.name == "python3"
    assert solution.metadata.jupytext.formats == "ipynb,py:percent"
    code = [cell for cell in solution.cells if cell.cell_type == "code"]
    checks = [cell for cell in code if is_check_cell(cell)]
    assert len(checks) == 1 and checks[0].execution_count == len(code)
    assert [o.text for o in checks[0].outputs] == ["✓ Exercise 99.1: my_sqrt matches the reference on 1 fresh cases.\n"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code if not is_check_cell(cell))
    lesson = read(built / "notebooks" / f"{LESSON}.ipynb")
    assert all(cell.outputs == [] and cell.execution_count is None for cell in lesson.cells if cell.cell_type == "code")
    assert [cell.id for cell in lesson.cells] == ["cell-0", "cell-1"]


def test_build_writes_the_exercise_with_the_solutions_check_output(built):
    stub = (built / "exercises" / f"{NAME}.py").read_text()
    assert '    raise NotImplementedError("Exercise 99.1: the square root, element by element")\n' in stub
    assert "torch.sqrt(x)\n" not in stub and "BEGIN SOLUTION" not in stub
    exercise, solution = read(built / "exercises" / f"{NAME}.ipynb"), read(built / "solutions" / f"{NAME}.ipynb")
    assert "".join(c.source for c in exercise.cells) == "".join(c.source for c in solution.cells).replace(
        "### BEGIN SOLUTION the square root, element by element\n    return torch.sqrt(x)\n    ### END SOLUTION",
        'raise NotImplementedError("Exercise 99.1: the square root, element by element")')
    assert [(c.get("outputs"), c.get("execution_count")) for c in exercise.cells] == \
           [(c.get("outputs"), c.get("execution_count")) for c in solution.cells]
    assert check(built) == []


def test_building_again_gives_byte_identical_files(tree):
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    assert build(tree, execute=False, log=lambda m: None) == []
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before


def test_only_builds_the_named_notebook(tree):
    for path in [*tree.glob("notebooks/*.ipynb"), *tree.glob("exercises/*.ipynb")]:
        path.unlink()
    assert build(tree, only=1, execute=False, log=lambda m: None) == []
    changed = build(tree, only="99", execute=False, log=lambda m: None)
    assert sorted(p.relative_to(tree).as_posix() for p in changed) == [
        f"exercises/{NAME}.ipynb", f"notebooks/{LESSON}.ipynb"]
    assert check(tree) == []


def test_no_execute_drops_the_output_of_a_changed_check_cell(tree):
    source = tree / "solutions" / f"{NAME}.py"
    source.write_text(source.read_text().replace('"my_sqrt")', '"my_sqrt", hint="use torch.sqrt")'))
    messages = []
    build(tree, execute=False, log=messages.append)
    assert any("has no stored '✓' output" in m for m in messages)
    problems = check(tree)
    assert any(p.startswith(f"solutions/{NAME}.ipynb: cell 3") and "without a stored '✓' line" in p for p in problems)
    assert any(p.startswith(f"exercises/{NAME}.ipynb: cell 3") for p in problems)


# --- check: drift ---------------------------------------------------------------------------

def problems_about(root: Path, name: str) -> list[str]:
    return [p for p in check(root) if p.startswith(name)]


def test_check_catches_an_edited_exercise(tree):
    stub = tree / "exercises" / f"{NAME}.py"
    stub.write_text(stub.read_text().replace("raise NotImplementedError", "return x  #"))
    assert problems_about(tree, f"exercises/{NAME}.py: differs from what solutions/{NAME}.py generates")
    assert problems_about(tree, f"exercises/{NAME}.ipynb: cells differ from {NAME}.py from cell 2 on")


def test_check_catches_a_saved_exercise_output(tree):
    path = tree / "exercises" / f"{NAME}.ipynb"
    nb = read(path)
    nb.cells[3].outputs[0].text = "✗ Exercise 99.1: not done yet.\n"
    nb.cells[1].execution_count = 1
    nbformat.write(nb, path)
    problems = problems_about(tree, f"exercises/{NAME}.ipynb")
    assert any("cell 1 (import torch) has stored outputs" in p for p in problems)
    assert any("cell 3" in p and "without a stored '✓' line" in p for p in problems)


def test_check_catches_an_edited_solution_not_rebuilt(tree):
    source = tree / "solutions" / f"{NAME}.py"
    source.write_text(source.read_text().replace("return torch.sqrt(x)", "return x.sqrt()"))
    assert problems_about(tree, f"solutions/{NAME}.ipynb: cells differ from {NAME}.py from cell 2 on")
    assert not problems_about(tree, "exercises/"), "an edit inside the answer leaves the exercise as it is"
    source.write_text(source.read_text().replace("a square root", "the square root"))
    assert problems_about(tree, f"exercises/{NAME}.py: differs from what solutions/{NAME}.py generates")
    build(tree, execute=False, log=lambda m: None)
    assert check(tree) == []


def test_check_catches_an_ipynb_out_of_sync_with_its_py(tree):
    path = tree / "notebooks" / f"{LESSON}.ipynb"
    nb = read(path)
    nb.cells[1].source += "\nprint('edited in the notebook only')"
    nbformat.write(nb, path)
    assert problems_about(tree, f"notebooks/{LESSON}.ipynb: cells differ from {LESSON}.py from cell 1 on")


def test_check_catches_outputs_stored_in_a_lesson(tree):
    path = tree / "notebooks" / f"{LESSON}.ipynb"
    nb = read(path)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="lesson\n")]
    nb.cells[1].execution_count = 1
    nbformat.write(nb, path)
    assert problems_about(tree, f"notebooks/{LESSON}.ipynb: cell 1 (print(\"a lesson's output is never stored\")) has stored outputs")


def test_check_catches_unpaired_files(tree):
    (tree / "exercises" / f"{NAME}.py").rename(tree / "exercises" / "98_renamed.py")
    problems = check(tree)
    assert any(p.startswith(f"solutions/{NAME}.py: no exercises/{NAME}.py generated from it") for p in problems)
    assert any(p.startswith("exercises/98_renamed.py: no solutions/98_renamed.py") for p in problems)
    assert any(p.startswith(f"exercises/{NAME}.ipynb: no {NAME}.py source") for p in problems)
    (tree / "notebooks" / f"{LESSON}.ipynb").unlink()
    assert problems_about(tree, f"notebooks/{LESSON}.py: no {LESSON}.ipynb")


def test_command_line_check_exits_non_zero_naming_the_file(tree, capsys):
    assert main(["check", "--root", str(tree)]) == 0
    (tree / "solutions" / f"{NAME}.py").write_text((tree / "solutions" / f"{NAME}.py").read_text() + "\n# %%\nx = 1\n")
    assert main(["check", "--root", str(tree)]) == 1
    assert f"solutions/{NAME}.ipynb: cells differ" in capsys.readouterr().err


# --- nbval: solutions pass, exercises and wrong answers fail at their check cells -------------

def short_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def run_nbval(notebooks: list[Path], cwd: Path) -> tuple[int, dict[str, dict[int, bool]], str]:
    """Strict ``pytest --nbval`` in a subprocess.

    Returns (exit code, {"folder/name.ipynb": {code cell: passed}}, the end of the output).
    """
    command = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
               "-q", "-rA", "--color=no", *map(str, notebooks)]
    env = {**os.environ, "COURSE_PRESET": "smoke", "MPLBACKEND": "Agg"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    results: dict[str, dict[int, bool]] = {}
    for outcome, path, cell in re.findall(r"^(PASSED|FAILED) (\S+\.ipynb)::Cell (\d+)", done.stdout, re.M):
        results.setdefault(short_name(Path(path)), {})[int(cell)] = outcome == "PASSED"
    return done.returncode, results, done.stdout[-3000:]


def check_cell_numbers(path: Path) -> set[int]:
    """nbval numbers code cells only, from 0."""
    code = [cell for cell in read(path).cells if cell.cell_type == "code"]
    return {number for number, cell in enumerate(code) if is_check_cell(cell)}


@pytest.mark.parametrize("answer, check_call, shown", [
    ("return x", "_ = compare(", r"stdout: '✗ Exercise 99.1: case 1 of 1 differs"),
    # nbval runs cells with store_history=False: IPython then shows a last-line value despite ";"
    ("return torch.sqrt(x)", "compare(", r"execute_result: 'True' \(nbval shows a last-line value even after ';'"),
], ids=["wrong answer", "bare call"])
def test_build_refuses_a_check_cell_that_does_not_show_one_tick_line(tree, answer, check_call, shown):
    source = tree / "solutions" / f"{NAME}.py"
    text = source.read_text().replace("return torch.sqrt(x)", answer).replace("_ = compare(", check_call)
    source.write_text(text.replace('"my_sqrt")', '"my_sqrt");'))
    with pytest.raises(BuildError, match=rf"^solutions/{NAME}.py: check cell 3 \(cases = .*{shown}"):
        build(tree, log=lambda m: None)


@pytest.mark.slow
@pytest.mark.notebooks
def test_fixture_solution_passes_nbval_and_exercise_and_wrong_answer_fail_at_the_check(built, tmp_path):
    solution, exercise = built / "solutions" / f"{NAME}.ipynb", built / "exercises" / f"{NAME}.ipynb"
    wrong = read(solution)  # the solution notebook, stored "✓" line and all, with a wrong answer
    wrong.cells[2].source = wrong.cells[2].source.replace("return torch.sqrt(x)", "return x")
    assert "return x\n" in wrong.cells[2].source
    nbformat.write(wrong, tmp_path / "wrong.ipynb")
    code, results, output = run_nbval([solution, exercise, tmp_path / "wrong.ipynb"], cwd=built)
    assert code != 0, output
    checks = check_cell_numbers(solution)
    assert checks == {2}
    assert results[short_name(solution)] == {0: True, 1: True, 2: True}, output
    for failing in (short_name(exercise), short_name(tmp_path / "wrong.ipynb")):
        assert {cell for cell, ok in results[failing].items() if not ok} == checks, output


def repo_exercises() -> list[Path]:
    return sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))


@functools.cache
def nbval_on_repo_exercises() -> tuple[int, dict[str, dict[int, bool]], str]:
    return run_nbval([p.relative_to(ROOT) for p in repo_exercises()], cwd=ROOT)


def test_repo_notebooks_are_in_sync():
    """The exercises are what the solutions generate, every .ipynb matches its .py (see README)."""
    problems = check(ROOT)
    assert problems == [], "\n".join(problems + ["fix: python -m course_lib notebooks build"])


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("exercise", repo_exercises() or [pytest.param(None, marks=pytest.mark.skip(
    reason="no exercises/*.ipynb yet: run python -m course_lib notebooks build"))],
    ids=lambda p: p.name if p else "none")
def test_repo_exercise_fails_nbval_at_every_check_cell(exercise):
    code, results, output = nbval_on_repo_exercises()
    assert code != 0, output
    checks = check_cell_numbers(exercise)
    assert checks, f"{exercise.name} has no check cell"
    failed = {cell for cell, ok in results[short_name(exercise)].items() if not ok}
    assert checks <= failed, f"check cells {sorted(checks - failed)} pass with the stubs:\n{output}"
