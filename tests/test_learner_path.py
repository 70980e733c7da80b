"""The learner's path: the README a learner starts from, and the frame every lesson shares.

* README: at most 250 lines; no dates, "issue N" or machine stories (in README, INSTRUCTORS.md and
  lessons); its install and test commands are the ones CI runs; every `python -m course_lib COMMAND`
  it shows exists; its picture is in the repository; every relative link resolves (in it and the
  pages beside it); the Colab link names the same repository as the one "Repository:" line;
* every lesson opens with Goals, Prerequisites and Time, and ends with a Summary and a "Check
  yourself" cell of 3–5 questions.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTRUCTORS = ROOT / "INSTRUCTORS.md"
PAGES = [README, ROOT / "CONTRIBUTING.md", ROOT / "BENCHMARKS.md", ROOT / "docs" / "training_at_scale.md", INSTRUCTORS]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
DIARY = re.compile(r"issue [0-9]|20[0-9]{2}-[0-9]{2}-[0-9]{2}|busy machine|idle EPYC", re.IGNORECASE)


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines (at most 250): move detail to another page"


@pytest.mark.parametrize("path", [README, INSTRUCTORS, *LESSONS], ids=lambda p: p.name)
def test_no_dates_issue_numbers_or_machine_stories(path):
    hits = [f"{path.name}:{i}: {line.strip()}" for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if DIARY.search(line)]
    assert not hits, "\n".join(hits)


def test_readme_installs_and_tests_exactly_as_ci_does():
    readme, ci = README.read_text(encoding="utf-8"), (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'python -m pip install torch==2.13.0 && python -m pip install -e ".[dev]"' in readme
    assert "python -m pip install torch==2.13.0\n" in ci and "python -m pip install -e '.[dev]'\n" in ci
    assert "\npython -m pytest\n" in readme and "\npython -m pytest\n" in ci
    assert '`python -m pip install -e ".[site]"`' in readme and "python -m pip install -e '.[site]'" in ci  # the website


def test_every_command_the_readme_shows_exists():
    shown = set(re.findall(r"python -m course_lib (\w+)", README.read_text(encoding="utf-8")))
    help_text = subprocess.run([sys.executable, "-m", "course_lib", "--help"], capture_output=True, text=True,
                               cwd=ROOT, timeout=120).stdout
    known = set(re.findall(r"^    (\w+)(?: |$)", help_text, flags=re.MULTILINE))
    assert shown and known >= {"demo", "train", "sample", "eval", "export"}
    assert shown <= known, f"README shows commands that do not exist: {sorted(shown - known)}"


def test_the_picture_is_in_the_repository_and_small():
    picture = ROOT / "docs" / "images" / "shapes_samples.gif"
    assert f"]({picture.relative_to(ROOT)})" in README.read_text(encoding="utf-8")
    assert picture.stat().st_size <= 2 * 1024 * 1024


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{page.name}: links to missing files {missing}"


def test_the_colab_link_names_the_repository_of_the_one_repository_line():
    text = README.read_text(encoding="utf-8")
    (repository,) = re.findall(r"^Repository: https://github\.com/([\w.-]+/[\w.-]+)", text, flags=re.MULTILINE)
    colab = re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/", text)
    clones = re.findall(r"git clone https://github\.com/([\w.-]+/[\w.-]+)", text)
    assert colab and set(colab + clones) == {repository}


# --- the lessons' frame --------------------------------------------------------------------------

def cells(source: str) -> list[tuple[str, str]]:
    """(kind, text) of each cell of a jupytext percent file; markdown without its '# ' prefixes."""
    found: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("# %%"):
            found.append(("markdown" if "[markdown]" in line else "code", []))
        elif found:
            kind, lines = found[-1]
            lines.append(re.sub(r"^# ?", "", line) if kind == "markdown" else line)
    return [(kind, "\n".join(lines).strip()) for kind, lines in found]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_opens_with_goals_prerequisites_and_time(lesson):
    kind, first = cells(lesson.read_text(encoding="utf-8"))[0]
    assert kind == "markdown"
    for lead in ("**Goals.**", "**Prerequisites.**", "**Time.**"):
        assert lead in first, f"{lesson.name}: the first cell has no {lead}"
    time_part = first[first.index("**Time.**"):].lower()
    for column in ("reading", "shipped weights", "from scratch"):
        assert column in time_part, f"{lesson.name}: the Time line does not say {column!r}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_every_lesson_ends_with_a_summary_and_3_to_5_questions(lesson):
    found = cells(lesson.read_text(encoding="utf-8"))
    assert any(kind == "markdown" and "## Summary" in text for kind, text in found), f"{lesson.name}: no summary"
    kind, last = found[-1]
    assert kind == "code", f"{lesson.name}: the last cell should be the Check yourself cell"
    calls = [node for node in ast.walk(ast.parse(last)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "check_yourself"]
    assert len(calls) == 1 and isinstance(calls[0].args[0], ast.List), f"{lesson.name}: no check_yourself([...])"
    assert 3 <= len(calls[0].args[0].elts) <= 5, f"{lesson.name}: {len(calls[0].args[0].elts)} questions"
    heading = found[-2]
    assert heading[0] == "markdown" and "## Check yourself" in heading[1]
