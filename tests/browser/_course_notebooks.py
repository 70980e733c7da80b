"""Which course notebooks the browser suite opens: the lessons that show a widget or an animation.

A lesson is *interactive* when its code calls a **display maker**: a function that builds an
ipywidget or an animation. The makers are not listed by hand (a new one would be missed, as
``particle_animation`` once was): they are found in ``course_lib``'s own source, by name, as every
function that uses ipywidgets, or that makes an animation (matplotlib's, or a GIF) and shows it
through IPython's display, or that calls another display maker, to any depth (:func:`display_makers`).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
COURSE_LIB = REPO / "course_lib"

# How animations are made: matplotlib's animations, or a GIF (an image encoder given ".gif").
ANIMATION_ROOTS = frozenset({"FuncAnimation", "ArtistAnimation", "to_jshtml"})
# How something reaches the page: IPython's rich display. Any use of ipywidgets is a widget.
DISPLAY_ROOTS = frozenset({"HTML", "display"})
WIDGET_MODULES = ("widgets", "ipywidgets")


@dataclass
class _Function:
    calls: set[str] = field(default_factory=set)
    encodes_gif: bool = False  # calls an image writer with a ".gif" string in the function
    uses_widgets: bool = False


def _describe(function: ast.AST) -> _Function:
    found = _Function()
    strings = [n.value for n in ast.walk(function) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                found.calls.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                found.calls.add(node.func.attr)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in WIDGET_MODULES:
            found.uses_widgets = True
    found.encodes_gif = bool(found.calls & {"imwrite", "save", "mimwrite", "mimsave"}) and any(
        ".gif" in text.lower() for text in strings)
    return found


@lru_cache(maxsize=None)
def display_makers(package: Path = COURSE_LIB) -> frozenset[str]:
    """Names of the functions in ``package`` that put a widget or an animation on the page.

    A function *animates* when it calls a matplotlib animation or encodes a GIF, or calls a
    function that animates; it is a *display maker* when it uses ipywidgets, or animates and
    hands the result to IPython's display (``HTML``), or calls a display maker.
    """
    functions: dict[str, _Function] = {}
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                described = _describe(node)
                known = functions.setdefault(node.name, _Function())
                known.calls |= described.calls
                known.encodes_gif |= described.encodes_gif
                known.uses_widgets |= described.uses_widgets
    animates = _closure(functions, {n for n, f in functions.items() if f.encodes_gif or f.calls & ANIMATION_ROOTS},
                        ANIMATION_ROOTS)
    makers = {n for n, f in functions.items()
              if f.uses_widgets or f.calls & {"interact", "interactive"} or (n in animates and f.calls & DISPLAY_ROOTS)}
    return frozenset(_closure(functions, makers, frozenset()))


def _closure(functions: dict[str, _Function], start: set[str], roots: frozenset[str]) -> set[str]:
    """``start`` plus every function that calls one of them (or a root), to any depth."""
    found = set(start)
    while True:
        more = {name for name, f in functions.items() if name not in found and f.calls & (found | roots)}
        if not more:
            return found
        found |= more


def _code_of(source: Path) -> str:
    """The code of a jupytext percent notebook, without comment lines (markdown cells, remarks)."""
    return "\n".join(line for line in source.read_text().splitlines() if not line.lstrip().startswith("#"))


def interactive_notebooks(folder: Path = NOTEBOOKS, package: Path = COURSE_LIB) -> list[Path]:
    """Lesson sources (``NN_name.py``) whose code, not their prose, shows a widget or an animation."""
    names = sorted(display_makers(package) | ANIMATION_ROOTS | {"interact", "interactive"})
    calls = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\s*\(|\bimport ipywidgets\b|\bwidgets\.\w+")
    return [source for source in sorted(folder.glob("[0-9][0-9]_*.py")) if calls.search(_code_of(source))]


def notebook_to_open(source: Path) -> Path:
    """The ``.ipynb`` a learner opens when the build has made it (``python -m course_lib notebooks build``), else the ``.py``."""
    paired = source.with_suffix(".ipynb")
    return paired if paired.exists() else source
