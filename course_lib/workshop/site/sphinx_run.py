"""Sphinx, configured for the course: myst-nb renders the executed lessons without running them,
sphinx-book-theme gives the book (sidebar, previous / next, search), MathJax is served from the
site itself (sphinx-mathjax-offline), and no widget script is loaded (the lessons ran without widgets)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TITLE = "Video diffusion models"
CSS = ".cell_output img { max-width: 100%; height: auto; }\n"
# the site's own icon: without one the browser asks the server for /favicon.ico and logs a 404
FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
           '<rect width="16" height="16" rx="3" fill="#1f5f8b"/><circle cx="8" cy="8" r="4" fill="#fff"/></svg>\n')


def conf_text(repository: str) -> str:
    """The ``conf.py`` of the site's source tree."""
    settings = {
        "project": TITLE,
        "html_title": TITLE,
        "extensions": ["myst_nb", "sphinx.ext.autodoc", "sphinx-mathjax-offline"],
        "nb_execution_mode": "off",  # the lessons arrive executed (the execution cache)
        "nb_ipywidgets_js": {},  # no widget manager from a CDN (the lessons ran without widgets)
        "myst_enable_extensions": ["dollarmath", "amsmath"],
        "myst_heading_anchors": 3,
        "exclude_patterns": ["_lesson_files", "_build"],
        "html_theme": "sphinx_book_theme",
        "html_theme_options": {"repository_url": repository, "use_download_button": False,
                               "show_navbar_depth": 1, "navigation_with_keys": False},
        "html_context": {"default_mode": "light"},  # the theme logs an error when no mode is set
        "html_favicon": "_static/favicon.svg",
        "html_static_path": ["_static"],
        "html_css_files": ["course.css"],
        "html_show_sourcelink": False,
        "html_copy_source": False,
        "autodoc_member_order": "bysource",
        "suppress_warnings": ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"],
    }
    return "".join(f"{name} = {value!r}\n" for name, value in settings.items()) + DOCSTRING_HOOK


# Docstrings write |x| for a norm and (B, C, *axes) for any number of axes, which reStructuredText
# reads as a substitution and an unclosed emphasis (errors, and links to nowhere): outside ``literals``
# every bar is escaped, and so is every single star of a line whose single stars do not pair up --
# except the star of a bullet ("* item" at the start of a line), which stays a list.
DOCSTRING_HOOK = r'''

import re as _re

_SINGLE_STAR = r"(?<!\*)\*(?!\*)"


def _escape(text):
    text = text.replace("|", "\\|")
    stars = _re.findall(_SINGLE_STAR, text)
    return _re.sub(_SINGLE_STAR, r"\\*", text) if len(stars) % 2 else text


def _escape_line(line):
    bullet = _re.match(r"\s*\* ", line)
    head, rest = (line[:bullet.end()], line[bullet.end():]) if bullet else ("", line)
    return head + "".join(part if part.startswith("``") else _escape(part) for part in _re.split(r"(``.*?``)", rest))


def _escape_markup(app, what, name, obj, options, lines):
    lines[:] = [_escape_line(line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _escape_markup)
'''


def write_conf(source: Path, repository: str) -> None:
    (source / "conf.py").write_text(conf_text(repository), encoding="utf-8")
    (source / "_static").mkdir(exist_ok=True)
    (source / "_static" / "course.css").write_text(CSS, encoding="utf-8")
    (source / "_static" / "favicon.svg").write_text(FAVICON, encoding="utf-8")


def run_sphinx(source: Path, out: Path, doctrees: Path, warnings: Path) -> str | None:
    """Build HTML from ``source`` into ``out``; None on success, else the last line Sphinx printed."""
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-d", str(doctrees),
               "-w", str(warnings), str(source), str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"sphinx exited with code {done.returncode}"
