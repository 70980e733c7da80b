"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session.

* ``lab_server``: JupyterLab on 127.0.0.1 (random port, token, all folders in a temp dir); its
  kernels get ``COURSE_PRESET=smoke``.
* ``chromium``: the system Chromium, attached through Playwright (CDP); skipped with a message when
  missing, a failure when ``CI=true``.
* ``lab_page``: a fresh browser tab per test; on failure its screenshot and console log are written
  to ``test-output/browser/<test>/`` (or ``$COURSE_BROWSER_ARTIFACTS``) and named in the report.
* ``open_notebook(source)``: copies/converts a notebook into the server root and opens it.

Server and browser are stopped through their process ids when the session ends, pass or fail.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from _chromium import WINDOW_SIZE, require_browser, start_chromium
from _lab_server import start_lab_server, stop_process_group, write_notebook

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS_ENV = "COURSE_BROWSER_ARTIFACTS"
KERNEL_ENV = {"COURSE_PRESET": "smoke", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: runs notebooks in JupyterLab in headless Chromium (tests/browser)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """When a browser test fails, save what the page showed while it is still open."""
    outcome = yield
    report = outcome.get_result()
    tab = item.funcargs.get("lab_page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and tab is not None:
        folder = artifacts_dir() / re.sub(r"[^\w.-]+", "_", item.nodeid)
        report.sections.append(("browser artifacts", tab.save_artifacts(folder)))


def artifacts_dir() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or REPO / "test-output" / "browser")


class BrowserTab:
    """A page plus everything it logged (console messages, uncaught page errors)."""

    def __init__(self, page, server):
        self.page = page
        self.server = server
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda error: self.console.append(f"[pageerror] {error}"))

    def save_artifacts(self, folder: Path) -> str:
        """Write screenshot.png, console.log and jupyter-server.log to ``folder``; return a summary."""
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        try:
            self.page.screenshot(path=str(folder / "screenshot.png"), full_page=True, timeout=10_000)
            lines.append(f"screenshot: {folder / 'screenshot.png'}")
        except Exception as error:  # a crashed page still gets its console log written
            lines.append(f"screenshot failed: {error}")
        (folder / "console.log").write_text("\n".join(self.console) + "\n")
        (folder / "jupyter-server.log").write_text(self.server.log_tail(20_000))
        lines.append(f"console log ({len(self.console)} lines): {folder / 'console.log'}")
        lines.append(f"server log: {folder / 'jupyter-server.log'}")
        return "\n".join(lines)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_browser()


@pytest.fixture(scope="session")
def lab_server(chromium_path, tmp_path_factory):
    server = start_lab_server(tmp_path_factory.mktemp("jupyterlab"), KERNEL_ENV)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium_process(chromium_path, tmp_path_factory):
    """``(process, devtools_url)`` of the headless Chromium shared by the session."""
    process, cdp_url = start_chromium(chromium_path, tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield process, cdp_url
    finally:
        stop_process_group(process)


@pytest.fixture(scope="session")
def chromium(chromium_process):
    """Playwright's handle on that Chromium (attached over the DevTools protocol, never launched by it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright.chromium.connect_over_cdp(chromium_process[1], timeout=30_000)


@pytest.fixture(scope="session")
def browser_context(chromium):
    """One context (so one HTTP cache: JupyterLab's scripts load once) for every tab of the session."""
    context = chromium.new_context(viewport={"width": WINDOW_SIZE[0], "height": WINDOW_SIZE[1]})
    yield context
    context.close()


@pytest.fixture
def lab_page(browser_context, lab_server):
    page = browser_context.new_page()
    page.set_default_timeout(10_000)  # a control that cannot be found or clicked fails in 10 s, not 30
    tab = BrowserTab(page, lab_server)
    try:
        yield tab
    finally:
        tab.page.close()
        lab_server.shutdown_kernels()


@pytest.fixture
def open_notebook(lab_page, lab_server):
    """``open_notebook(source, label=None)``: a :class:`LabNotebook` for ``source`` (.py or .ipynb), open and idle."""
    from _lab_driver import LabNotebook

    def _open(source: Path, label: str | None = None):
        target = write_notebook(Path(source), lab_server.root_dir)
        notebook = LabNotebook(lab_page.page, target.name, label or _label(Path(source)))
        notebook.open(lab_server.url(f"lab/tree/{target.name}", reset=""))
        return notebook

    return _open


def _label(source: Path) -> str:
    try:
        return str(source.resolve().relative_to(REPO))
    except ValueError:
        return source.name
