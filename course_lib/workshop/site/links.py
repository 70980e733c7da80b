"""Links of the course's Markdown, as the site needs them.

Pages keep their repository paths in the site's source tree (``GLOSSARY.md``,
``notebooks/04_image_ddpm.ipynb``, ...), so a link between two pages stays as written; README.md
is the site's ``index.md``. A link to a picture copies the picture beside the page. A link to
anything else in the repository (a solution, ``LICENSE``, a library file) points at the repository
on GitHub, and a picture loaded from elsewhere (a badge) becomes its text: the site loads nothing
from the network.
"""
from __future__ import annotations

import posixpath
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from course_lib._validation import fail

README = "README.md"
INDEX = "index.md"
PICTURES = (".png", ".gif", ".jpg", ".jpeg", ".svg")
_REPOSITORY = re.compile(r"^Repository: (https://github\.com/[\w.-]+/[\w.-]+)", re.MULTILINE)
_REMOTE_PICTURE = re.compile(r"!\[([^\]]*)\]\((?:https?:)?//[^)\s]+\)")
_LINK = re.compile(r"(\]\()([^)\s]+)(\))")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.IGNORECASE)


def repository_url(root: Path) -> str:
    """The course's repository address: the README's ``Repository: https://github.com/OWNER/NAME`` line,
    the one place that names it (the README's Colab links use it too)."""
    readme = Path(root) / README
    match = _REPOSITORY.search(readme.read_text(encoding="utf-8")) if readme.is_file() else None
    if match is None:
        fail("README.md", "a line 'Repository: https://github.com/OWNER/NAME'", "none")
    return match.group(1)


def colab_url(repository: str, lesson: str) -> str:
    """Open ``notebooks/<lesson>.ipynb`` of the repository's main branch in Colab."""
    return f"https://colab.research.google.com/github/{repository.removeprefix('https://github.com/')}" \
           f"/blob/main/notebooks/{lesson}.ipynb"


def site_path(repo_path: str) -> str:
    """Where a repository file lives in the site's source tree."""
    return INDEX if repo_path == README else repo_path


def rewrite_links(text: str, page: str, pages: set[str], root: Path, source: Path, repository: str) -> str:
    """``text`` of the page at repository path ``page`` with every relative link made to work in the site.

    ``pages``: the repository paths that are pages of the site. Pictures are copied from ``root``
    into ``source`` (the site's source tree).
    """
    text = _REMOTE_PICTURE.sub(lambda m: m.group(1), text)
    folder = posixpath.dirname(page)

    def relink(match: re.Match) -> str:
        target = match.group(2)
        if _EXTERNAL.match(target):
            return match.group(0)
        path, hash_, fragment = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(folder, path))
        return match.group(1) + _relinked(repo_path, hash_ + fragment, folder, pages, root, source, repository) + match.group(3)

    return _LINK.sub(relink, text)


def _relinked(repo_path: str, fragment: str, folder: str, pages: set[str], root: Path, source: Path,
              repository: str) -> str:
    if repo_path in pages:
        return posixpath.relpath(site_path(repo_path), folder or ".") + fragment
    if repo_path.lower().endswith(PICTURES) and (root / repo_path).is_file():
        (source / repo_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / repo_path, source / repo_path)
        return posixpath.relpath(repo_path, folder or ".")
    kind = "tree" if (root / repo_path).is_dir() else "blob"
    return f"{repository}/{kind}/main/{repo_path}{fragment}"


def markdown_rewriter(pages: set[str], root: Path, source: Path, repository: str) -> Callable[[str, str], str]:
    """``rewrite(text, page)``: :func:`rewrite_links` with the site's fixed arguments."""
    return lambda text, page: rewrite_links(text, page, pages, root, source, repository)
