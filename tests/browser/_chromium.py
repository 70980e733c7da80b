"""Find and start the system's headless Chromium (Debian's ``chromium`` package); never download one.

We start Chromium ourselves, with exactly the flags below, in its own process group, and let
Playwright attach to it over the DevTools protocol. So we hold its process id and stop it by that
id, whatever happened in the test.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from _lab_server import stop_process_group

CHROMIUM_ENV = "COURSE_CHROMIUM"  # path to a Chromium binary, overriding the search below

# Without the background-networking flags Chromium stalls here on refused connections.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WINDOW_SIZE = (1280, 1600)

# Debian's /usr/bin/chromium is a shell wrapper that adds flags of its own; start the real binary.
_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome-stable", "google-chrome")


def find_chromium(environ: dict[str, str] | None = None) -> str | None:
    """The path of a Chromium binary: ``$COURSE_CHROMIUM``, else the first of ``_CANDIDATES`` found."""
    environ = os.environ if environ is None else environ
    wanted = environ.get(CHROMIUM_ENV)
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    for candidate in _CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


def missing_browser_reason(environ: dict[str, str] | None = None) -> str | None:
    """Why the browser tests cannot run here (no Chromium, no Playwright), or None when they can."""
    if find_chromium(environ) is None:
        return (f"no Chromium found (looked at ${CHROMIUM_ENV}, " + ", ".join(_CANDIDATES)
                + "): install it with `apt-get install -y chromium`")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed: `pip install playwright` (never `playwright install`)"
    return None


def must_run(environ: dict[str, str] | None = None) -> bool:
    """True in CI (``CI=true``): a missing browser is then a failure, not a skip."""
    environ = os.environ if environ is None else environ
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_browser(environ: dict[str, str] | None = None) -> str:
    """The Chromium path; else skip the test, or fail it under ``CI=true`` (CI must not skip)."""
    import pytest

    reason = missing_browser_reason(environ)
    if reason is None:
        return find_chromium(environ)
    if must_run(environ):
        pytest.fail(f"CI=true, so the browser tests must run, but {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


def start_chromium(executable: str, profile_dir: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Start headless Chromium with a fresh profile; return the process and its DevTools URL."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    command = [executable, *CHROMIUM_FLAGS, f"--window-size={WINDOW_SIZE[0]},{WINDOW_SIZE[1]}",
               "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
               f"--user-data-dir={profile_dir}", "about:blank"]
    log_path = profile_dir.parent / "chromium.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    port_file = profile_dir / "DevToolsActivePort"  # Chromium writes its chosen port here
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        lines = port_file.read_text().splitlines() if port_file.exists() else []
        if lines and lines[0].strip().isdigit():
            return process, f"http://127.0.0.1:{lines[0].strip()}"
        time.sleep(0.1)
    stop_process_group(process)
    log_text = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"Chromium ({executable}) did not open its DevTools port within {timeout_s:.0f} s:\n{log_text}")
