"""Drive one notebook in JupyterLab like a learner: open it, run all cells, move every control.

Each check raises :class:`NotebookProblem` whose message names the notebook, the cell and the
error, e.g. ``notebooks/01_forward_chain.py, cell #14 (`noising_explorer(x0, image, T)`):
moving slider "t" raised ValueError: ...``. The page is read through ``lab_probe.js``.
"""
from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the fixtures skip (or fail, under CI=true) before any driver code runs
    PlaywrightTimeout = TimeoutError

PROBE_JS = Path(__file__).with_name("lab_probe.js")
IDLE_GRACE_S = 10.0  # a kernel still busy this long after the run has not finished: that fails


class NotebookProblem(AssertionError):
    """A notebook misbehaved in the browser; the message says where and how."""


@dataclass
class LabNotebook:
    """One notebook open in a JupyterLab page.

    ``path`` is the file's path in the server root (``01_forward_chain.ipynb``); ``label`` is
    how messages name it (``notebooks/01_forward_chain.py``).
    """

    page: Page
    path: str
    label: str
    cells: list[dict] = field(default_factory=list)  # cellReport() after run_all

    # --- opening and running -------------------------------------------------------------
    def open(self, timeout_s: float = 90.0) -> None:
        """Open the notebook in the JupyterLab of this page (command ``docmanager:open``) and wait for an
        idle kernel: the session already running for its path, or one JupyterLab starts."""
        # returns nothing: Playwright would serialise the widget that the command resolves to (~2 s)
        self.page.evaluate("async path => { await window.jupyterapp.commands.execute("
                           "'docmanager:open', {path, factory: 'Notebook'}); }", self.path)
        self.page.add_script_tag(content=PROBE_JS.read_text())
        if not self._wait_for_idle(timeout_s):
            status = self._probe("kernelStatus")
            raise NotebookProblem(
                f"{self.label}: the kernel is not idle {timeout_s:.0f} s after opening (status: {status})")
        self._probe("recordErrors")

    def run_all(self, timeout_s: float = 120.0) -> None:
        """Run all cells (command ``notebook:run-all-cells``) and wait until none shows ``[*]``."""
        self._probe("startRunAll")
        try:
            self.page.wait_for_function(
                "path => window.__courseProbe.runFinished(path)", arg=self.path,
                timeout=timeout_s * 1000, polling=200)
        except PlaywrightTimeout:
            status = self._probe("kernelStatus")
            raise NotebookProblem(
                f"{self.label}: cells still running {timeout_s:.0f} s after 'Run All' (kernel: {status})") from None
        self.cells = self._probe("cellReport")

    # --- checks ----------------------------------------------------------------------------
    def assert_cells_ran_without_errors(self) -> None:
        """Every code cell ran, and neither its outputs nor any widget output inside it holds an error."""
        problems = []
        for cell in self.cells:
            if cell["expectsError"]:  # shows an error on purpose (tag raises-exception / NBVAL_RAISES_EXCEPTION)
                if not cell["errors"] and cell["executionCount"] is not None:
                    problems.append(f"{self._where(cell)}: is marked to raise, but ran without an error")
                continue
            for error in cell["errors"]:
                problems.append(f"{self._where(cell)}: {error['ename']}: {error['evalue']}\n{error['traceback']}")
        reported = {(c["executionCount"], e["ename"], e["evalue"]) for c in self.cells for e in c["errors"]}
        by_count = {c["executionCount"]: c for c in self.cells if c["executionCount"] is not None}
        for error in self._probe("errorsSince", 0):
            key = (error["executionCount"], error["ename"], error["evalue"])
            cell = by_count.get(error["executionCount"])
            if cell is not None and cell["expectsError"]:
                continue
            if error["parent"] == "execute_request" and key not in reported and error["executionCount"] in by_count:
                cell = by_count[error["executionCount"]]
                problems.append(f"{self._where(cell)}: {error['ename']} inside a widget output: "
                                f"{error['evalue']}\n{error['traceback']}")
        if not problems:
            not_run = [c for c in self.cells if c["executionCount"] is None]
            if not_run:
                problems.append(f"{self._where(not_run[0])}: did not run ({len(not_run)} code cells have no "
                                f"execution count; kernel: {self._probe('kernelStatus')})")
        # after the last cell the page's own requests (widget comms, kernel info) may keep the kernel busy
        # for a moment (notebook 04: once in 4 suite runs): a kernel still busy after the grace fails
        if not self._wait_for_idle(IDLE_GRACE_S):
            problems.append(f"{self.label}: the kernel is {self._probe('kernelStatus')}, not idle, "
                            f"{IDLE_GRACE_S:.0f} s after the run")
        if problems:
            raise NotebookProblem("\n".join(problems))

    def assert_widgets_rendered(self, timeout_s: float = 10.0) -> int:
        """Every widget view in the outputs rendered in the page; returns how many there are."""
        deadline = time.monotonic() + timeout_s
        report = self._probe("widgetReport")
        while any(r["problems"] for r in report) and time.monotonic() < deadline:
            time.sleep(0.2)  # views render asynchronously after their output arrives
            report = self._probe("widgetReport")
        problems = [f"{self._where(self._cell(r['index']))}: {r['rendered']} of {r['expected']} widget views "
                    f"rendered: {r['problems'][0]}" for r in report if r["problems"]]
        if problems:
            raise NotebookProblem("\n".join(problems))
        return sum(r["expected"] for r in report)

    def exercise_controls(self, timeout_s: float = 30.0) -> list[str]:
        """Move every control (slider, dropdown, button, ...) once; each must change its cell's output.

        Returns one line per control, e.g. ``cell #14: slider "t" changed the output in 0.8 s``;
        raises one :class:`NotebookProblem` listing every control that raised or changed nothing.
        """
        done, problems = [], []
        for control in self._probe("markControls"):
            cell = self._cell(control["cell"])
            where = f"{self._where(cell)}: moving {control['label']}"
            before = self._probe("outputSignature", control["cell"])
            errors_before = self._probe("errorCount")
            element = self.page.locator(f'[data-probe-control="{control["id"]}"]')
            element.scroll_into_view_if_needed()
            start = time.monotonic()
            self._operate(control["kind"], element)
            changed = self._wait_for_output_change(control["cell"], before, errors_before, timeout_s)
            if control["kind"] == "play":
                element.locator("button").nth(1).click()  # pause again
            errors = self._probe("errorsSince", errors_before)
            if errors:
                first = errors[0]
                problems.append(f"{where} raised {first['ename']}: {first['evalue']}\n{first['traceback']}")
            elif not changed:
                problems.append(f"{where} did not change its output within {timeout_s:.0f} s")
            else:
                seconds = time.monotonic() - start
                done.append(f"cell #{cell['index'] + 1}: {control['label']} changed the output in {seconds:.1f} s")
        if problems:
            raise NotebookProblem("\n".join(problems))
        return done

    def assert_animations(self, timeout_s: float = 10.0) -> list[str]:
        """Every jshtml animation and GIF in the outputs is in the page with at least two distinct frames.

        Returns one line per animation, e.g. ``cell #9: jshtml animation, 16 frames``.
        """
        deadline = time.monotonic() + timeout_s
        report = self._probe("animationReport")
        while any(r.get("framesLoaded", 0) < r.get("frames", 0) for r in report) and time.monotonic() < deadline:
            time.sleep(0.2)  # frames are decoded after the animation's script ran
            report = self._probe("animationReport")
        problems, found = [], []
        for cell_index in sorted({r["cell"] for r in report}):
            cell = self._cell(cell_index)
            rows = [r for r in report if r["cell"] == cell_index]
            expected = next(r for r in rows if r["kind"] == "expected")
            jshtml = [r for r in rows if r["kind"] == "jshtml"]
            gifs = [r for r in rows if r["kind"] == "gif"]
            where = self._where(cell)
            if len(jshtml) < expected["jshtml"]:
                problems.append(f"{where}: {expected['jshtml']} jshtml animations in the outputs, "
                                f"{len(jshtml)} in the page")
            if len(gifs) < expected["gif"]:
                problems.append(f"{where}: {expected['gif']} GIFs in the outputs, {len(gifs)} in the page")
            for anim in jshtml:
                problem = self._check_jshtml(anim)
                if problem:
                    problems.append(f"{where}: {problem}")
                else:
                    found.append(f"cell #{cell_index + 1}: jshtml animation, {anim['frames']} frames")
            for gif in gifs:
                frames = _gif_frame_count(gif["data"])
                if not gif["shown"]:
                    problems.append(f"{where}: GIF not displayed")
                elif frames < 2:
                    problems.append(f"{where}: GIF has {frames} frame(s)")
                else:
                    found.append(f"cell #{cell_index + 1}: GIF, {frames} frames")
        if problems:
            raise NotebookProblem("\n".join(problems))
        return found

    # --- helpers ---------------------------------------------------------------------------
    def _wait_for_idle(self, timeout_s: float) -> bool:
        """True once the notebook's kernel reports "idle", False if it has not within ``timeout_s``."""
        try:
            self.page.wait_for_function("path => window.__courseProbe.kernelStatus(path) === 'idle'", arg=self.path,
                                        timeout=timeout_s * 1000, polling=100)
        except PlaywrightTimeout:
            return False
        return True

    def _probe(self, function: str, *args):
        return self.page.evaluate(
            "([fn, path, args]) => window.__courseProbe[fn](path, ...args)", [function, self.path, list(args)])

    def _cell(self, index: int) -> dict:
        return next((c for c in self.cells if c["index"] == index),
                    {"index": index, "firstLine": "?", "executionCount": None})

    def _where(self, cell: dict) -> str:
        return f"{self.label}, cell #{cell['index'] + 1} (`{cell['firstLine']}`)"

    def _operate(self, kind: str, element: Locator) -> None:
        """Move a control as a learner would: keyboard on a slider, a click or a choice otherwise."""
        if kind == "slider":
            at_max = element.get_attribute("aria-valuenow") == element.get_attribute("aria-valuemax")
            element.focus()
            element.press("ArrowLeft" if at_max else "ArrowRight")
        elif kind in ("dropdown", "select"):
            options = element.locator("option")
            current = element.evaluate("select => select.selectedIndex")
            element.select_option(index=(current + 1) % options.count())
        elif kind == "play":
            element.locator("button").first.click()
        elif kind == "radio":
            element.check()
        else:
            element.click()

    def _wait_for_output_change(self, cell_index: int, before: str, errors_before: int, timeout_s: float) -> bool:
        """Wait until the kernel is idle and the cell's output changed (or an error arrived)."""
        try:
            self.page.wait_for_function(
                """([path, cell, before, errors]) => {
                    const probe = window.__courseProbe;
                    if (probe.kernelStatus(path) !== 'idle') return false;
                    return probe.outputSignature(path, cell) !== before || probe.errorCount() > errors;
                }""",
                arg=[self.path, cell_index, before, errors_before], timeout=timeout_s * 1000, polling=100)
        except PlaywrightTimeout:
            return False
        return self._probe("outputSignature", cell_index) != before

    def _check_jshtml(self, anim: dict) -> str | None:
        """None when the animation shows, has >= 2 distinct loaded frames and 'Next frame' steps it."""
        if anim["frames"] < 2:
            return f"jshtml animation has {anim['frames']} frame(s) (did its script run?)"
        if anim["framesLoaded"] < anim["frames"]:
            missing = anim["frames"] - anim["framesLoaded"]
            return f"jshtml animation: {missing} of {anim['frames']} frames failed to load"
        if not anim["shown"]:
            return "jshtml animation shows no image"
        if len(set(anim["frameHashes"])) < 2:
            return f"jshtml animation: all {anim['frames']} frames are the same image"
        box = self.page.locator(f'.animation:has(#_anim_img{anim["id"]})')
        box.locator('button[title="First frame"]').click()
        box.locator('button[title="Next frame"]').click()
        frame, image_is_frame = self.page.evaluate(
            """id => { const a = window['anim' + id], img = document.getElementById('_anim_img' + id);
                       return [a.current_frame, img.src === a.frames[a.current_frame].src]; }""", anim["id"])
        if frame != 1 or not image_is_frame:
            return f"jshtml animation: 'Next frame' from frame 0 went to frame {frame} (image shown: {image_is_frame})"
        return None


def _gif_frame_count(data_url: str) -> int:
    """How many frames the GIF in a ``data:image/gif;base64,...`` URL holds (0 if unreadable)."""
    try:
        raw = base64.b64decode(data_url.split(",", 1)[1])
        with Image.open(io.BytesIO(raw)) as image:
            return getattr(image, "n_frames", 1)
    except (IndexError, ValueError, OSError):
        return 0
