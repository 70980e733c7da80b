"""The library's shape, checked: the layers and contracts of pyproject.toml, no import cycles, lessons
that use only the learner-facing API, and a library that states what and why (no lab diary)."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "course_lib"
LESSON_FOLDERS = ("notebooks", "solutions", "exercises")


def module_imports(path: Path) -> set[str]:
    """Every ``course_lib`` module imported anywhere in ``path`` (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_lib"):
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("course_lib")}
    return found


def test_the_import_contracts_hold():
    """import-linter: the core never imports the workshop, the core's layers, benchmarks imported only by benchmarks."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_no_import_cycle_between_modules_counting_imports_inside_functions():
    tool = REPO.parent / "shared" / "tools" / "import_cycles.py"
    if not tool.is_file():
        pytest.skip("../shared/tools/import_cycles.py is not beside this checkout")
    result = subprocess.run([sys.executable, str(tool), str(PACKAGE)], capture_output=True, text=True)
    assert result.returncode == 0 and "cycle:" not in result.stdout, result.stdout


@pytest.mark.parametrize("folder", LESSON_FOLDERS)
def test_lessons_never_import_a_benchmark(folder):
    offenders = {path.name: sorted(m for m in module_imports(path) if m.startswith("course_lib.workshop.bench"))
                 for path in sorted((REPO / folder).glob("[0-9][0-9]_*.py"))}
    assert not {name: mods for name, mods in offenders.items() if mods}


def test_the_library_carries_no_lab_diary():
    """Docstrings and comments say what and why; dates and issue numbers go stale (BENCHMARKS.md holds numbers)."""
    diary = re.compile(r"issue [0-9]|20[0-9]{2}-[0-9]{2}-[0-9]{2}")
    hits = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
            for path in sorted(PACKAGE.rglob("*.py"))
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
            if diary.search(line)]
    assert not hits, "\n".join(hits[:20])
