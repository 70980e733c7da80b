"""The course as a website, built in the smoke preset and opened page by page in headless Chromium.

Every page loads without a console error and without a request leaving 127.0.0.1; every picture
loads; every animation has at least two frames; no raw TeX is left in the text; every internal
link resolves; each lesson page has a figure, its notebook to download, its Colab link and
previous / next links; the search finds DDIM in the image-DDPM lesson.
"""
from __future__ import annotations

import base64
import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.site, pytest.mark.notebooks]

VIDEO_LESSONS = ("05", "06", "07", "08", "09", "10", "14", "15", "16")  # lessons about clips: each shows an animation
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\begin\{|(?<![\w$])\$[^$\s][^$\n]*\$")

# In the page: every picture loaded, every animation's frame count, the text that is not code.
PAGE_PROBE = """async () => {
    for (const img of document.images) img.loading = 'eager';
    await Promise.all(Array.from(document.images, img => img.decode().catch(() => null)));
    if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
    const body = document.querySelector('main') || document.body;
    const text = body.cloneNode(true);
    text.querySelectorAll('pre, code, script, style, mjx-container, .MathJax').forEach(node => node.remove());
    return {
        broken: Array.from(document.images).filter(img => !(img.complete && img.naturalWidth > 0))
                     .map(img => img.src.slice(0, 80)),
        images: Array.from(body.querySelectorAll('.cell_output img')).filter(img => img.naturalWidth > 0).length,
        jshtml: Array.from(body.querySelectorAll('.animation input[type=range]'), input => Number(input.max) + 1),
        gifs: Array.from(body.querySelectorAll('img'), img => img.src).filter(src => src.startsWith('data:image/gif')),
        math: body.querySelectorAll('mjx-container').length,
        text: text.innerText,
    };
}"""


def html_pages(site) -> list[str]:
    return sorted(path.relative_to(site).as_posix() for path in site.rglob("*.html")
                  if not any(part.startswith("_") for part in path.relative_to(site).parts))  # not _static/


def gif_frames(data_url: str) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    return getattr(image, "n_frames", 1)


def test_every_lesson_runs_top_to_bottom(executed):
    """The lessons' run check: each lesson, executed in smoke in a fresh kernel, ran clean."""
    notebooks, error = executed
    assert error is None, error
    assert [path.stem for path in notebooks] == sorted(path.stem for path in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_docstring_of_the_api_pages_is_valid_restructuredtext(site):
    """The API reference is built from the core's docstrings: a list that does not end with a blank
    line or an indented continuation shows as a broken paragraph, and Sphinx says which docstring."""
    from course_lib.workshop.site.build import CACHE

    warnings = (REPO / CACHE / "sphinx-warnings-smoke.log").read_text(encoding="utf-8").splitlines()
    assert not [line for line in warnings if "docstring of course_lib" in line], "\n".join(warnings)


def test_the_html_loads_nothing_from_the_network(site):
    remote = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=\"(https?:)?//", re.IGNORECASE)
    hits = [f"{page}: {match.group(0)}" for page in html_pages(site)
            for match in remote.finditer((site / page).read_text(encoding="utf-8"))
            if not (match.group(1).lower() == "link" and 'rel="stylesheet"' not in match.group(0) and "preload" not in match.group(0))]
    assert not hits, "\n".join(hits[:20])
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax is served by the site itself"


def test_every_page_loads_clean_with_pictures_animations_and_rendered_math(site, site_url, site_page, artifacts):
    problems, animations = [], {}
    for page in html_pages(site):
        site_page.errors.clear()
        site_page.open(site_url + page)
        found = site_page.page.evaluate(PAGE_PROBE)
        page_problems = [f"{page}: {error}" for error in site_page.errors]
        page_problems += [f"{page}: picture not loaded: {src}" for src in found["broken"]]
        frames = found["jshtml"] + [gif_frames(src) for src in found["gifs"]]
        page_problems += [f"{page}: an animation of {count} frame(s)" for count in frames if count < 2]
        raw = RAW_TEX.search(found["text"])
        if raw:
            page_problems.append(f"{page}: raw TeX left in the text: ...{found['text'][max(raw.start() - 40, 0):raw.end() + 40]!r}...")
        if page.startswith("notebooks/"):
            animations[page[10:12]] = len(frames)
            if found["images"] == 0:
                page_problems.append(f"{page}: no figure")
        if page_problems:
            site_page.save_artifacts(artifacts / page.replace("/", "_"))
        problems += page_problems
    problems += [f"requests left 127.0.0.1: {url}" for url in site_page.remote]
    problems += [f"lesson {number} shows no animation" for number in VIDEO_LESSONS if not animations.get(number)]
    assert animations and not problems, "\n".join(problems)


def test_each_lesson_page_offers_its_notebook_colab_and_previous_next(site, site_url, site_page):
    from course_lib.workshop.site.links import colab_url, repository_url

    repository = repository_url(REPO)
    for lesson in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        site_page.open(f"{site_url}notebooks/{lesson.stem}.html")
        links = site_page.page.evaluate("() => Array.from(document.querySelectorAll('main a[href]'), a => "
                                        "({text: a.innerText.trim(), href: a.href}))")
        by_text = {link["text"]: link["href"] for link in links}
        assert by_text.get("Open in Colab") == colab_url(repository, lesson.stem), lesson.name
        download = by_text.get("Download the notebook", "")
        assert download.endswith(f"/{lesson.name}"), f"{lesson.name}: download link {download!r}"
        with urllib.request.urlopen(download, timeout=10) as response:
            notebook = json.load(response)
        assert not any(cell.get("outputs") for cell in notebook["cells"]), "the download is the lesson as in git"
        nav = site_page.page.evaluate("() => Array.from(document.querySelectorAll('a.left-prev, a.right-next'), a => a.className)")
        assert len(nav) == 2 or (lesson.name.startswith("00") and nav), f"{lesson.name}: previous/next links {nav}"


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id", "name"):
            if attrs.get(name):
                self.ids.add(attrs[name])
        for name in ("href", "src"):
            if attrs.get(name) and tag in ("a", "img", "script", "link"):
                self.links.append(attrs[name])


def test_every_internal_link_resolves(site, site_url):
    """Crawl from the front page: every same-site href and src answers 200, every #fragment exists."""
    seen, queue, broken, ids, fragments = set(), [site_url + "index.html"], [], {}, []
    while queue:
        page = queue.pop().split("#")[0]
        if page in seen:
            continue
        seen.add(page)
        try:
            with urllib.request.urlopen(page, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            broken.append(f"{page}: HTTP {error.code}")
            continue
        if not page.endswith(".html"):
            continue
        parser = _Anchors()
        parser.feed(body.decode("utf-8", errors="replace"))
        ids[page] = parser.ids
        for link in parser.links:
            target = urllib.parse.urljoin(page, link)
            if target.startswith(site_url):
                queue.append(target)
                if target.partition("#")[2]:
                    fragments.append((page, target))
    for source, target in fragments:
        page, _, fragment = target.partition("#")
        if page in ids and urllib.parse.unquote(fragment) not in ids[page]:
            broken.append(f"{source}: link to missing #{fragment} on {page}")
    assert len(seen) > 20 and not broken, "\n".join(sorted(set(broken))[:30])


def test_search_for_ddim_finds_the_image_ddpm_lesson(site_url, site_page):
    site_page.open(site_url + "search.html?q=DDIM")
    site_page.page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
    hits = site_page.page.evaluate("() => Array.from(document.querySelectorAll('#search-results ul.search li a'), a => a.href)")
    assert any("notebooks/04_image_ddpm.html" in hit for hit in hits), hits
    assert not site_page.errors, site_page.errors


def test_the_build_leaves_nothing_beside_the_site(site):
    """No staging folder, no jupyter_execute/: the build's scratch stays in its staging folder and cache."""
    assert [path.name for path in site.parent.iterdir()] == ["_site"]
