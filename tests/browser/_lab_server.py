"""A throw-away JupyterLab server for the browser tests: its own folders, port and token.

Everything the server reads or writes (config, data, runtime, user settings, workspaces, the
notebooks themselves) lives under one temporary folder, so a test run never touches the learner's
Jupyter set-up or the repository's files. The server runs in its own process group and is stopped
through its process id (``os.killpg(pid, …)``), which also ends the kernels it started.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

# User settings written into the server's settings folder (JUPYTERLAB_SETTINGS_DIR).
LAB_SETTINGS = {
    # No news popup, no update check: both would reach for the internet.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Attach every cell to the page, so outputs below the fold exist in the DOM.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _live_processes() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, process group)}`` of every live (not zombie) process, read from /proc."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                state, ppid, group = stat.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue  # the process ended while we looked
        if state not in ("Z", "X"):
            found[int(entry)] = (int(ppid), int(group))
    return found


def processes_in_group(pgid: int) -> list[int]:
    """Process ids of the live processes in process group ``pgid``."""
    return sorted(pid for pid, (_, group) in _live_processes().items() if group == pgid)


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants, whatever their process group or session.

    Jupyter starts every kernel in a session of its own (so it can interrupt the kernel's whole
    group), so a kernel is found by following parent ids, not by the server's process group.
    """
    children: dict[int, list[int]] = {}
    live = _live_processes()
    for pid, (ppid, _) in live.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root] if root in live else []
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(tree)


def _signal(pids: set[int], pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_process_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End the process group led by ``process.pid`` (started with ``start_new_session=True``) and
    every descendant of the leader, kernels included (they run in sessions of their own).

    SIGTERM first (JupyterLab then shuts its kernels down), SIGKILL after ``grace_s``; returns once
    none of them is left, or after 5 more seconds. Descendants are listed before the first signal:
    once the leader is gone they are re-parented and can no longer be found from it.
    """
    pgid = process.pid
    family = set(process_tree(pgid)) | set(processes_in_group(pgid))

    def left() -> bool:
        process.poll()  # reap the leader
        live = _live_processes()
        return any(pid in live for pid in family) or any(group == pgid for _, group in live.values())

    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        if not left():
            return
        family |= set(process_tree(pgid))
        _signal(family, pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not left():
                return
            time.sleep(0.05)


def write_notebook(source: Path, folder: Path, name: str | None = None) -> Path:
    """Convert a jupytext percent ``.py`` (or copy an ``.ipynb``) into ``folder``; return the ``.ipynb``."""
    notebook = jupytext.read(source) if source.suffix == ".py" else nbformat.read(source, as_version=4)
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    target = folder / (name or source.with_suffix(".ipynb").name)
    nbformat.write(notebook, target)
    return target


def copy_checkpoints(source: Path, target: Path, preset: str) -> list[Path]:
    """Copy the ``preset``'s checkpoints (``<task>-<model>-<preset>-<key>.pt`` and their records) from
    ``source`` into ``target``; return the copies. A missing ``source`` copies nothing.

    The lessons train or load their models in ``../checkpoints`` (:mod:`course_lib.workshop.zoo`,
    keyed by everything that changes the weights): given copies of the models a run of the lessons
    already trained (tests/site, in ``notebooks/../checkpoints``), the server's kernels load them
    instead of training them again. Copies, not links: a kernel that trains writes only in ``target``.
    """
    target.mkdir(parents=True, exist_ok=True)
    marker = f"-{preset}-"
    files = sorted(path for path in source.glob("*") if path.is_file() and marker in path.name
                   and path.suffix in (".pt", ".json")) if source.is_dir() else []
    return [Path(shutil.copy2(path, target / path.name)) for path in files]


@dataclass
class LabServer:
    """A running JupyterLab server; ``url(path)`` adds the token."""

    process: subprocess.Popen
    base_url: str
    token: str
    root_dir: Path
    log_path: Path
    _deleting: list[threading.Thread] = field(default_factory=list)  # shutdown_kernels' background deletions

    def url(self, path: str, **query: str) -> str:
        params = "&".join([f"token={self.token}"] + [k if v == "" else f"{k}={v}" for k, v in query.items()])
        return f"{self.base_url}{path.lstrip('/')}?{params}"

    def api(self, method: str, path: str, body: dict | None = None) -> object:
        """Call the REST API (``/api/...``), with ``body`` as JSON; returns the decoded JSON or None."""
        request = urllib.request.Request(
            f"{self.base_url}{path.lstrip('/')}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def start_kernel_for(self, notebook: str) -> None:
        """Start the session (and kernel) that JupyterLab will attach to when it opens ``notebook``.

        ``notebook`` is a path in the server root. Opening a notebook, JupyterLab joins the session
        already running for its path, as when a learner reopens a tab; so a kernel started here
        boots while the page loads (or while the previous notebook runs) instead of after it.
        Returns at once; the kernel is idle a few seconds later.
        """
        if not any(s["path"] == notebook for s in self.api("GET", "api/sessions") or []):
            self.api("POST", "api/sessions", {"path": notebook, "name": notebook, "type": "notebook",
                                              "kernel": {"name": "python3"}})

    def shutdown_kernels(self, keep: frozenset[str] = frozenset()) -> None:
        """Delete every session (and so its kernel) but those of the notebooks in ``keep``, started
        ahead for the next test. Which ones is decided now; the deletions run in the background (each
        waits ~1.3 s for its kernel to exit, time the next test need not wait for: a kernel shutting
        down is not busy) and :meth:`stop` waits for them."""
        doomed = [session["id"] for session in self.api("GET", "api/sessions") or [] if session["path"] not in keep]
        if doomed:
            thread = threading.Thread(target=lambda: [self.api("DELETE", f"api/sessions/{sid}") for sid in doomed],
                                      name="delete-sessions", daemon=True)
            thread.start()
            self._deleting.append(thread)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        for thread in self._deleting:
            thread.join(timeout=30)
        stop_process_group(self.process)


def start_lab_server(tmp: Path, extra_env: dict[str, str] | None = None, timeout_s: float = 60.0) -> LabServer:
    """Start ``jupyter lab`` on 127.0.0.1 with a random port and token, all of its folders under ``tmp``.

    Kernels inherit ``extra_env`` (e.g. ``COURSE_PRESET=smoke``). Raises RuntimeError with the
    server's log when it does not answer within ``timeout_s``.
    """
    folders = {name: tmp / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython", "root")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for relative, settings in LAB_SETTINGS.items():
        path = folders["settings"] / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))

    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # pytest sets Agg; the kernel must use the inline backend to show figures
    env.pop("JUPYTER_TOKEN", None)
    env.update(
        JUPYTER_CONFIG_DIR=str(folders["config"]),
        JUPYTER_DATA_DIR=str(folders["data"]),
        JUPYTER_RUNTIME_DIR=str(folders["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(folders["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(folders["workspaces"]),
        IPYTHONDIR=str(folders["ipython"]),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    token = secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--ip=127.0.0.1", f"--port={free_port()}",
        f"--ServerApp.root_dir={folders['root']}",
        f"--IdentityProvider.token={token}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp / "jupyter-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        base_url = _wait_until_serving(process, folders["runtime"], token, timeout_s)
    except RuntimeError as error:
        stop_process_group(process)
        log_end = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{error}; its log ({log_path}) ends:\n{log_end}") from None
    except BaseException:
        stop_process_group(process)
        raise
    return LabServer(process, base_url, token, folders["root"], log_path)


def _wait_until_serving(process: subprocess.Popen, runtime_dir: Path, token: str, timeout_s: float) -> str:
    """The server's base URL, read from its runtime file (``jpserver-<pid>.json``) once /api/status answers."""
    info_file = runtime_dir / f"jpserver-{process.pid}.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}")
        if info_file.exists():
            try:
                base_url = json.loads(info_file.read_text())["url"]
                request = urllib.request.Request(f"{base_url}api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5):
                    return base_url
            except (OSError, ValueError, KeyError):
                pass  # file half-written or server not accepting yet
        time.sleep(0.2)
    raise RuntimeError(f"jupyter lab did not answer within {timeout_s:.0f} s")
