"""The site's source tree: the executed lessons and the course's pages, laid out as in the repository.

* ``index.md``: README.md, with the book's table of contents (lessons, then reference pages);
* ``notebooks/NN_name.ipynb``: the executed lesson (its figures static), links made to work,
  and under its title a line: download the notebook (the output-free lesson, as in git), open it
  in Colab, which preset made the outputs;
* ``GLOSSARY.md`` ... ``BENCHMARKS.md``, ``docs/training_at_scale.md`` where they exist;
* ``api/``: one page per package of the core a learner reads, from its docstrings.
"""
from __future__ import annotations

import pkgutil
import re
import shutil
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import nbformat

from course_lib.workshop.site.links import INDEX, README, colab_url

PAGES = ("GLOSSARY.md", "REFERENCES.md", "INSTRUCTORS.md", "BENCHMARKS.md", "docs/training_at_scale.md")
API_PACKAGES = ("config", "diffusion", "models", "training", "data", "metrics", "views")
LESSON_FILES = "_lesson_files"
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref=[\"'](?:https?:)?//[^>]*>", re.IGNORECASE)  # the output-free lessons offered for download (not pages)

Rewrite = Callable[[str, str], str]  # (Markdown text, its repository path) -> text for the site


def page_paths(root: Path, lessons: list[Path]) -> set[str]:
    """The repository paths that become pages: README, the reference pages found, the lessons."""
    found = {README, *(page for page in PAGES if (root / page).is_file())}
    return found | {f"notebooks/{lesson.name}" for lesson in lessons}


def lesson_header(lesson: Path, preset: str, repository: str) -> str:
    download = f"{{download}}`Download the notebook <../{LESSON_FILES}/{lesson.name}>`"
    return (f"{download} · [Open in Colab]({colab_url(repository, lesson.stem)}) · "
            f"the outputs below were made in the `{preset}` preset with the shipped weights")


def offline_html(html: str) -> str:
    """An HTML output without the stylesheets it loads from elsewhere (matplotlib's jshtml asks a CDN
    for Font Awesome; the theme serves its own copy, which draws the animation's buttons)."""
    return _REMOTE_LINK.sub("", html)


def without_repeated_pictures(outputs: list) -> list:
    """``outputs`` with each picture once: a cell that ends with a Figure (a slider's static view) shows
    it as its value and again when the inline backend draws the open figures."""
    seen, kept = set(), []
    for output in outputs:
        picture = output.get("data", {}).get("image/png")
        if picture is not None and picture in seen:
            continue
        seen.add(picture)
        kept.append(output)
    return kept


def write_lesson(executed: Path, lesson: Path, source: Path, preset: str, repository: str, rewrite: Rewrite) -> None:
    """The page of one lesson, and its output-free notebook for download."""
    nb = nbformat.read(executed, as_version=4)
    page = f"notebooks/{lesson.name}"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite(cell.source, page)
        if cell.cell_type == "code":
            cell.outputs = without_repeated_pictures(cell.outputs)
        for output in cell.get("outputs", []):
            if "text/html" in output.get("data", {}):
                output.data["text/html"] = offline_html(output.data["text/html"])
    at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0  # under the title
    nb.cells.insert(at, nbformat.v4.new_markdown_cell(lesson_header(lesson, preset, repository)))
    for cell in nb.cells:
        cell.pop("id", None)  # an inserted cell has none; ids are not needed on a page
    nb.nbformat_minor = min(nb.nbformat_minor, 4)
    (source / "notebooks").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, source / page)
    (source / LESSON_FILES).mkdir(exist_ok=True)
    shutil.copyfile(lesson, source / LESSON_FILES / lesson.name)


def toctree(caption: str, entries: list[str]) -> str:
    return "\n".join(["```{toctree}", ":hidden:", f":caption: {caption}", "", *entries, "```", ""])


def write_pages(root: Path, source: Path, lessons: list[Path], rewrite: Rewrite) -> None:
    """index.md (README and the table of contents) and every reference page found."""
    reference = [page for page in PAGES if (root / page).is_file()]
    for page in reference:
        (source / page).parent.mkdir(parents=True, exist_ok=True)
        (source / page).write_text(rewrite((root / page).read_text(encoding="utf-8"), page), encoding="utf-8")
    readme = rewrite((root / README).read_text(encoding="utf-8"), README) if (root / README).is_file() else "# Course\n"
    contents = [toctree("Lessons", [f"notebooks/{lesson.stem}" for lesson in lessons]),
                toctree("Reference", [page.removesuffix(".md") for page in reference] + ["api/index"])]
    (source / INDEX).write_text(readme.rstrip("\n") + "\n\n" + "\n".join(contents), encoding="utf-8")


def submodules(package: str) -> list[str]:
    """``course_lib.<package>``'s modules, sorted (the package itself when it is one module)."""
    module = import_module(f"course_lib.{package}")
    if not hasattr(module, "__path__"):
        return [module.__name__]
    return sorted(f"{module.__name__}.{info.name}" for info in pkgutil.iter_modules(module.__path__)
                  if not info.name.startswith("_"))


def write_api(source: Path) -> None:
    """``api/index.md`` and one page per core package: the package's docstring, then each module's."""
    folder = source / "api"
    folder.mkdir(parents=True, exist_ok=True)
    for package in API_PACKAGES:
        modules = submodules(package)
        blocks = [f".. automodule:: course_lib.{package}\n"] if len(modules) > 1 or modules[0] != f"course_lib.{package}" else []
        blocks += [f".. automodule:: {name}\n   :members:\n" for name in modules]
        text = f"# `course_lib.{package}`\n\n```{{eval-rst}}\n" + "\n".join(blocks) + "```\n"
        (folder / f"{package}.md").write_text(text, encoding="utf-8")
    intro = ("# API reference\n\nThe core a learner reads next to the lessons, generated from its docstrings: "
             "shapes, the papers' equations, what each argument means.\n\n")
    (folder / "index.md").write_text(intro + "```{toctree}\n:maxdepth: 1\n\n" + "\n".join(API_PACKAGES) + "\n```\n",
                                     encoding="utf-8")
