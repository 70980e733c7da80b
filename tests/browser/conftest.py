"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session.

* ``lab_server``: JupyterLab on 127.0.0.1 (random port, token, all folders in a temp dir); its
  kernels get ``COURSE_PRESET=smoke``. The notebooks' ``../checkpoints`` there starts with copies of
  the repository's smoke checkpoints, which the lessons' run in tests/site (before these tests)
  trained: a lesson loads its models instead of training them a second time, and trains them
  itself when the browser tests run alone. Training in a kernel, top to bottom, is what tests/site
  proves; here what the learner sees in JupyterLab is checked.
* ``chromium``: the system Chromium, attached through Playwright (CDP); skipped with a message when
  missing, a failure when ``CI=true``.
* ``lab_page``: the browser tab of the session, with JupyterLab loaded once (~2 s, which every
  notebook paid when each test had a fresh tab). Each test starts with no document open and an empty
  console log; its documents are closed after it. On failure the tab's screenshot and console log
  are written to ``test-output/browser/<test>/`` (or ``$COURSE_BROWSER_ARTIFACTS``) and named in the
  report. A test may navigate the tab elsewhere: the next notebook opened loads JupyterLab again.
* ``open_notebook(source)``: copies/converts a notebook into the server root, starts its kernel
  through the server's API and opens it in that tab (``docmanager:open``).
  ``prepare_notebook(source)`` does the copy and the kernel start ahead, for a later test: that
  kernel boots while the current notebook runs, and the later opening finds it idle.

Server and browser are stopped through their process ids when the session ends, pass or fail.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from _chromium import WINDOW_SIZE, require_browser, start_chromium
from _lab_server import copy_checkpoints, start_lab_server, stop_process_group, write_notebook

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


# True when the page shows JupyterLab (a page whose content a test replaced may keep the app object)
LAB_SHOWN = "() => window.jupyterapp !== undefined && document.body.contains(window.jupyterapp.shell.node)"


class BrowserTab:
    """A page plus everything it logged (console messages, uncaught page errors) in the current test."""

    def __init__(self, page, server):
        self.page = page
        self.server = server
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("pageerror", lambda error: self.console.append(f"[pageerror] {error}"))

    def open_lab(self, timeout_s: float = 90.0) -> None:
        """Load JupyterLab (a reset workspace) unless this tab already shows it, restored."""
        if self.page.url.startswith(self.server.url("lab").split("?")[0]) and self.page.evaluate(LAB_SHOWN):
            return
        self.page.goto(self.server.url("lab", reset=""), wait_until="domcontentloaded", timeout=timeout_s * 1000)
        self.page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout_s * 1000)
        self.page.evaluate("async () => { await window.jupyterapp.restored; }")

    def close_documents(self) -> None:
        """Close every document of the main area, unsaved changes and all (a learner's tab closes with a
        dialog; the test's copy of a notebook is thrown away)."""
        try:
            self.page.evaluate("""() => {
                if (!(""" + LAB_SHOWN + """)()) return;
                for (const widget of Array.from(window.jupyterapp.shell.widgets('main'))) widget.dispose();
            }""")
        except Exception:  # a page left broken by a failed test: the next test loads JupyterLab afresh
            self.page.goto("about:blank")

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
        # the notebooks' ../checkpoints: copies of the models the lessons' run (tests/site) trained
        copy_checkpoints(REPO / "checkpoints", server.root_dir.parent / "checkpoints", KERNEL_ENV["COURSE_PRESET"])
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


@pytest.fixture(scope="session")
def lab_tab(browser_context, lab_server):
    """The one tab of the session (see ``lab_page``)."""
    page = browser_context.new_page()
    page.set_default_timeout(10_000)  # a control that cannot be found or clicked fails in 10 s, not 30
    yield BrowserTab(page, lab_server)
    page.close()


@pytest.fixture
def lab_page(lab_tab, lab_server):
    lab_tab.console.clear()
    try:
        yield lab_tab
    finally:
        lab_tab.close_documents()
        lab_server.shutdown_kernels(keep=frozenset(_prepared))


_prepared: set[str] = set()  # notebooks whose kernels were started for a later test


def _copy_and_start_kernel(source: Path, server) -> Path:
    target = write_notebook(Path(source), server.root_dir)
    server.start_kernel_for(target.name)
    return target


@pytest.fixture
def prepare_notebook(lab_server):
    """``prepare_notebook(source)``: copy ``source`` into the server root and start its kernel now,
    for a later test's ``open_notebook(source)`` (the kernel boots while this test runs)."""

    def _prepare(source: Path) -> None:
        _prepared.add(_copy_and_start_kernel(source, lab_server).name)

    return _prepare


@pytest.fixture
def open_notebook(lab_page, lab_server):
    """``open_notebook(source, label=None)``: a :class:`LabNotebook` for ``source`` (.py or .ipynb), open and idle."""
    from _lab_driver import LabNotebook

    def _open(source: Path, label: str | None = None):
        name = Path(source).with_suffix(".ipynb").name
        if name in _prepared:  # copied and its kernel started by an earlier test
            _prepared.discard(name)
            target = lab_server.root_dir / name
        else:
            target = _copy_and_start_kernel(source, lab_server)
        lab_page.open_lab()
        notebook = LabNotebook(lab_page.page, target.name, label or _label(Path(source)))
        notebook.open()
        return notebook

    return _open


def _label(source: Path) -> str:
    try:
        return str(source.resolve().relative_to(REPO))
    except ValueError:
        return source.name
