"""The live session is set up as promised: Chromium's flags, and what a failure leaves behind."""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from _chromium import CHROMIUM_FLAGS

pytestmark = pytest.mark.browser

REQUIRED_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def test_chromium_runs_headless_with_the_required_flags(chromium_process):
    process, _ = chromium_process
    command = open(f"/proc/{process.pid}/cmdline", "rb").read().decode().split("\0")
    assert set(REQUIRED_FLAGS) <= set(command)
    assert set(CHROMIUM_FLAGS) <= set(command)


def test_a_failing_page_leaves_a_screenshot_and_its_console_log(lab_page, tmp_path):
    lab_page.page.set_content("<h1>broken page</h1>")
    lab_page.page.evaluate("console.error('deliberate console error')")
    summary = lab_page.save_artifacts(tmp_path / "artifacts")
    screenshot = tmp_path / "artifacts" / "screenshot.png"
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[error] deliberate console error" in (tmp_path / "artifacts" / "console.log").read_text()
    assert str(screenshot) in summary


def test_lab_reads_its_settings_from_the_temporary_folder(lab_page, lab_server):
    """No news popup or update check (they would reach for the internet); every cell in the DOM."""
    page = lab_page.page
    page.goto(lab_server.url("lab", reset=""))
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=30_000)
    settings = page.evaluate("""async () => {
        await window.jupyterapp.restored;
        const registry = window.jupyterapp.serviceManager.settings;
        const news = await registry.fetch('@jupyterlab/apputils-extension:notification');
        const tracker = await registry.fetch('@jupyterlab/notebook-extension:tracker');
        return [news.raw, tracker.raw];
    }""")
    assert '"fetchNews": "false"' in settings[0] and '"checkForUpdates": false' in settings[0]
    assert '"windowingMode": "none"' in settings[1]


def test_a_notebook_whose_kernel_was_started_ahead_joins_that_kernel(tmp_path, prepare_notebook, open_notebook,
                                                                     lab_server, lab_page):
    """The suite starts the next notebook's kernel while the current one runs; opening it must use
    that kernel, not start a second one (which would cost the start-up the suite meant to save)."""
    source = tmp_path / "ahead.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("import os; os.getpid()")]), source)
    prepare_notebook(source)
    started = [s["kernel"]["id"] for s in lab_server.api("GET", "api/sessions") if s["path"] == "ahead.ipynb"]
    assert len(started) == 1
    open_notebook(source)
    in_page = lab_page.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id")
    assert in_page == started[0]
    open_documents = lab_page.page.evaluate(
        "() => Array.from(window.jupyterapp.shell.widgets('main')).filter(w => w.context).map(w => w.context.path)")
    assert open_documents == ["ahead.ipynb"]  # the tab is shared: earlier tests' notebooks were closed
    assert [s["kernel"]["id"] for s in lab_server.api("GET", "api/sessions") if s["path"] == "ahead.ipynb"] == started
