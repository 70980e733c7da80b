"""Fixtures for the site tests: the course built as a website in the smoke preset, served on
127.0.0.1 by a thread, and opened in headless Chromium started exactly as the JupyterLab tests
start it (tests/browser/_chromium.py).

* ``executed``: every lesson run top to bottom in smoke through the site's execution cache
  (``.site-cache/`` of the checkout, so a second ``pytest`` reruns only what changed). This is the
  lessons' run check in CI: a failing cell fails ``test_every_lesson_runs_top_to_bottom``, naming
  the lesson and the cell.
* ``site``: the site built from those notebooks (needs the ``.[site]`` extra) into a temp folder;
  ``site_url``: its address on a local HTTP server.
* ``site_page``: a browser tab logging console messages, page errors and requests that leave
  127.0.0.1; a failing test leaves its screenshot in ``test-output/site/<test>/`` (or
  ``$COURSE_BROWSER_ARTIFACTS``).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "browser"))  # the JupyterLab tests' Chromium launcher

from _chromium import WINDOW_SIZE, must_run, require_browser, start_chromium  # noqa: E402
from _lab_server import stop_process_group  # noqa: E402

ARTIFACTS_ENV = "COURSE_BROWSER_ARTIFACTS"
KERNEL_ENV = {"COURSE_PRESET": "smoke"}


def pytest_configure(config):
    config.addinivalue_line("markers", "site: builds the course as a website and opens it in headless Chromium (tests/site)")


def artifacts_dir(nodeid: str) -> Path:
    base = Path(os.environ.get(ARTIFACTS_ENV) or REPO / "test-output") / "site"
    return base / re.sub(r"[^\w.-]+", "_", nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a site test fails, save the tab's screenshot and console log while the page is open."""
    outcome = yield
    report = outcome.get_result()
    tab = item.funcargs.get("site_page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and tab is not None:
        report.sections.append(("browser artifacts", tab.save_artifacts(artifacts_dir(item.nodeid))))


@pytest.fixture(scope="session")
def executed():
    """``(notebooks, error)``: the executed lessons, or the failing lesson and cell (then no notebooks)."""
    from course_lib.workshop.build.execute import CellError
    from course_lib.workshop.build.timing import lesson_paths
    from course_lib.workshop.site.build import CACHE
    from course_lib.workshop.site.cache import default_jobs, executed_lessons

    for name, value in KERNEL_ENV.items():
        os.environ.setdefault(name, value)
    try:
        return executed_lessons(lesson_paths(REPO), "smoke", REPO / CACHE, log=print, jobs=default_jobs()), None
    except CellError as error:
        return None, str(error)


@pytest.fixture(scope="session")
def site(executed, tmp_path_factory):
    """The site's folder, built in smoke from the executed lessons."""
    missing = [name for name in ("sphinx", "myst_nb", "sphinx_book_theme") if _absent(name)]
    if missing:
        message = f"the site builder is not installed ({', '.join(missing)}): python -m pip install -e '.[site]'"
        pytest.fail(message, pytrace=False) if must_run() else pytest.skip(message)
    if executed[1] is not None:
        pytest.fail(f"no site: a lesson failed: {executed[1]}", pytrace=False)
    from course_lib.workshop.site.build import build_site

    return build_site(REPO, "smoke", tmp_path_factory.mktemp("site") / "_site", log=lambda line: None)


def _absent(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site_url(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site_browser(tmp_path_factory):
    """Playwright's handle on the system's headless Chromium (attached over CDP, never launched by it).

    Module-scoped: Playwright's sync API allows one running instance per thread, and the JupyterLab
    tests (tests/browser, run last) start their own; this one is closed when the site tests end."""
    process, cdp_url = start_chromium(require_browser(), tmp_path_factory.mktemp("chromium") / "profile")
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.connect_over_cdp(cdp_url, timeout=30_000)
            context = browser.new_context(viewport={"width": WINDOW_SIZE[0], "height": WINDOW_SIZE[1]})
            yield context
            context.close()
    finally:
        stop_process_group(process)


class SiteTab:
    """A page plus what it logged in the current test: console messages, page errors, requests off this machine."""

    def __init__(self, page):
        self.page = page
        self.console: list[str] = []
        self.errors: list[str] = []
        self.remote: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"[pageerror] {error}"))
        page.on("request", lambda request: None if request.url.startswith(("http://127.0.0.1", "data:", "about:"))
                else self.remote.append(request.url))

    def _console(self, message) -> None:
        self.console.append(f"[{message.type}] {message.text}")
        if message.type == "error":
            self.errors.append(f"[console error] {message.text}")

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="load", timeout=30_000)

    def save_artifacts(self, folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self.page.screenshot(path=str(folder / "screenshot.png"), full_page=True, timeout=10_000)
            shot = f"screenshot: {folder / 'screenshot.png'} (of {self.page.url})"
        except Exception as error:
            shot = f"screenshot failed: {error}"
        (folder / "console.log").write_text("\n".join(self.console) + "\n")
        return f"{shot}\nconsole log: {folder / 'console.log'}"


@pytest.fixture
def artifacts(request) -> Path:
    """This test's folder for screenshots (written only when something fails)."""
    return artifacts_dir(request.node.nodeid)


@pytest.fixture
def site_page(site_browser, site_url):
    page = site_browser.new_page()
    page.set_default_timeout(15_000)
    try:
        yield SiteTab(page)
    finally:
        page.close()
