"""The browser suite's plumbing, without a browser: finding Chromium, skip-or-fail, processes, notebooks.

These tests need neither Chromium nor Playwright, so they run (and are not marked ``browser``)
wherever pytest runs.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import jupytext
import nbformat
import pytest

from _chromium import CHROMIUM_ENV, find_chromium, must_run, require_browser
from _course_notebooks import NOTEBOOKS, display_makers, interactive_notebooks
from _lab_server import copy_checkpoints, processes_in_group, process_tree, start_lab_server, stop_process_group, write_notebook


def command_line(pid: int) -> bytes:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""  # ended while we looked


def executable(path):
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("value, expected",
                         [("true", True), ("TRUE", True), ("1", True), ("", False), ("false", False)])
def test_ci_variable_decides_whether_the_suite_must_run(value, expected):
    assert must_run({"CI": value}) is expected


def test_without_ci_a_missing_chromium_skips_with_a_clear_message(tmp_path):
    with pytest.raises(pytest.skip.Exception, match=r"no Chromium found .*apt-get install -y chromium"):
        require_browser({CHROMIUM_ENV: str(tmp_path / "no-such-chromium")})


def test_in_ci_a_missing_chromium_is_a_failure_not_a_skip(tmp_path):
    with pytest.raises(pytest.fail.Exception, match=r"CI=true, so the browser tests must run, but no Chromium found"):
        require_browser({CHROMIUM_ENV: str(tmp_path / "no-such-chromium"), "CI": "true"})


def test_chromium_path_can_be_given_and_must_be_executable(tmp_path):
    chosen = executable(tmp_path / "my-chromium")
    assert find_chromium({CHROMIUM_ENV: str(chosen)}) == str(chosen)
    plain = tmp_path / "not-executable"
    plain.write_text("")
    assert find_chromium({CHROMIUM_ENV: str(plain)}) is None


STUBBORN_CHILD = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "print('child ready', flush=True); time.sleep(60)")
LEADER = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', sys.argv[1]]); "
          "print('leader ready', flush=True); time.sleep(60)")


def test_stop_process_group_ends_the_leader_and_a_child_that_ignores_sigterm():
    leader = subprocess.Popen([sys.executable, "-c", LEADER, STUBBORN_CHILD], stdout=subprocess.PIPE,
                              start_new_session=True)
    assert {leader.stdout.readline().strip() for _ in range(2)} == {b"child ready", b"leader ready"}
    assert len(processes_in_group(leader.pid)) == 2
    start = time.monotonic()
    stop_process_group(leader, grace_s=1)
    assert leader.poll() is not None
    assert processes_in_group(leader.pid) == []
    assert time.monotonic() - start >= 1  # the child outlived SIGTERM: SIGKILL ended it


def test_stop_also_ends_a_descendant_in_a_session_of_its_own():
    """Jupyter starts each kernel with ``start_new_session=True``: it leaves the server's group."""
    leader_code = ("import subprocess, sys, time; "
                   "subprocess.Popen([sys.executable, '-c', sys.argv[1]], start_new_session=True); "
                   "print('leader ready', flush=True); time.sleep(60)")
    leader = subprocess.Popen([sys.executable, "-c", leader_code, STUBBORN_CHILD], stdout=subprocess.PIPE,
                              start_new_session=True)
    assert {leader.stdout.readline().strip() for _ in range(2)} == {b"child ready", b"leader ready"}
    tree = process_tree(leader.pid)
    assert len(tree) == 2 and processes_in_group(leader.pid) == [leader.pid]  # the child left the group
    stop_process_group(leader, grace_s=1)
    assert all(process_tree(pid) == [] for pid in tree)


def test_server_runs_in_its_own_folders_and_stops_with_its_kernels(tmp_path):
    server = start_lab_server(tmp_path, {"COURSE_PRESET": "smoke"})
    try:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.root_dir == tmp_path / "root"
        news = (tmp_path / "settings" / "@jupyterlab/apputils-extension/notification.jupyterlab-settings").read_text()
        assert '"fetchNews": "false"' in news
        command = open(f"/proc/{server.process.pid}/cmdline", "rb").read().split(b"\0")
        assert (b"--allow-root" in command) == (os.geteuid() == 0)
        kernel = server.api("POST", "api/kernels")  # a kernel is a child process of the server
        assert kernel["id"] in [k["id"] for k in server.api("GET", "api/kernels")]
        deadline = time.monotonic() + 30
        kernels = []
        while not kernels and time.monotonic() < deadline:
            kernels = [pid for pid in process_tree(server.process.pid) if b"ipykernel" in command_line(pid)]
            time.sleep(0.2)
        assert kernels, "no kernel process appeared under the server"
    finally:
        server.stop()
    assert processes_in_group(server.process.pid) == []
    assert all(process_tree(pid) == [] for pid in kernels)


def test_notebooks_are_converted_into_the_server_folder_and_the_source_is_untouched(tmp_path):
    source = NOTEBOOKS / "01_forward_chain.py"
    before = source.read_bytes()
    target = write_notebook(source, tmp_path)
    assert target == tmp_path / "01_forward_chain.ipynb"
    notebook = nbformat.read(target, as_version=4)
    assert notebook.metadata.kernelspec.name == "python3"
    assert [c.source for c in notebook.cells] == [c.source for c in jupytext.read(source).cells]
    assert source.read_bytes() == before


def test_the_lab_gets_copies_of_the_presets_checkpoints_only(tmp_path):
    source, target = tmp_path / "checkpoints", tmp_path / "lab" / "checkpoints"
    source.mkdir()
    names = ["digits-unet2d-smoke-24599dd5a338.pt", "digits-unet2d-smoke-24599dd5a338.pt.json",
             "digits-unet2d-smoke-24599dd5a338-snapshots.pt", "data-scale-8clips-video-shapes-unet3d-smoke-1a2b.pt",
             "digits-unet2d-cpu-24599dd5a338.pt", "digits-unet2d-smoke-24599dd5a338.pt.tmp123", "notes.txt"]
    for name in names:
        (source / name).write_bytes(name.encode())
    copies = copy_checkpoints(source, target, "smoke")
    assert sorted(path.name for path in copies) == sorted(names[:4])
    assert all(path.parent == target and not path.is_symlink() and path.read_bytes() == path.name.encode()
               for path in copies)  # copies: a kernel that trains writes beside them, never into the source
    assert sorted(path.name for path in source.iterdir()) == sorted(names)
    assert copy_checkpoints(tmp_path / "absent", tmp_path / "empty", "smoke") == []
    assert (tmp_path / "empty").is_dir()


def test_the_course_widget_notebooks_are_found():
    names = [path.stem for path in interactive_notebooks()]
    assert "01_forward_chain" in names  # noising_explorer(...)
    assert "02_reverse_process" in names  # particle_animation(...): once missed by a hand-kept list
    assert "05_video_data" in names  # animate(...) and frame_scrubber(...)
    assert "00_setup_and_tour" in names  # check_yourself(...): every lesson ends with its quiz
    assert {"animate", "particle_animation", "noising_explorer", "frame_scrubber", "slider_view",
            "check_yourself"} <= display_makers()
    assert not {"save_gif", "filmstrip", "image_grid"} & display_makers()  # files and still pictures


def test_interactive_notebooks_are_found_by_their_code_not_their_prose(tmp_path):
    (tmp_path / "07_widget.py").write_text("# %%\nfrom course_lib.views.figures import frame_scrubber\nframe_scrubber(video)\n")
    (tmp_path / "08_prose.py").write_text("# %% [markdown]\n# We could animate(video) here, but we don't.\nx = 1\n")
    (tmp_path / "09_gif.py").write_text("# %%\nanimate(video)\n")
    assert [p.name for p in interactive_notebooks(tmp_path)] == ["07_widget.py", "09_gif.py"]


FAKE_LIB = {
    "views.py": """
from IPython.display import HTML
import matplotlib.animation
import imageio.v3 as iio

def _encode(frames):
    return iio.imwrite("<bytes>", frames, extension=".gif")

def new_animation(frames):  # a GIF shown in the page
    return HTML(_encode(frames))

def wrapped_animation(frames):  # calls a display maker
    return new_animation(frames)

def spinning_plot(fig, update):  # matplotlib's animation, as JavaScript
    return HTML(matplotlib.animation.FuncAnimation(fig, update).to_jshtml())

def write_gif(frames, path):  # a file, not the page
    open(path, "wb").write(_encode(frames))

def knob(value):
    import ipywidgets as widgets
    return widgets.IntSlider(value=value)
""",
}


def test_a_new_display_maker_in_the_library_is_found_without_a_list(tmp_path):
    lib, lessons = tmp_path / "lib", tmp_path / "lessons"
    lib.mkdir(), lessons.mkdir()
    for name, code in FAKE_LIB.items():
        (lib / name).write_text(code)
    assert display_makers(lib) == {"new_animation", "wrapped_animation", "spinning_plot", "knob"}
    for name, call in [("01_a", "wrapped_animation(x)"), ("02_b", "spinning_plot(fig, f)"), ("03_c", "knob(3)"),
                       ("04_d", "write_gif(x, 'a.gif')"), ("05_e", "print(x)")]:
        (lessons / f"{name}.py").write_text(f"# %%\n{call}\n")
    assert [p.stem for p in interactive_notebooks(lessons, lib)] == ["01_a", "02_b", "03_c"]


def test_browser_tests_run_after_the_notebooks_they_open():
    """The plugin moves marked browser tests to the end (nbval has then warmed the caches), keeping each group's order."""
    from course_lib.workshop.pytest_plugin import pytest_collection_modifyitems

    class Item:
        def __init__(self, name, browser):
            self.name, self.browser = name, browser

        def get_closest_marker(self, name):
            return object() if name == "browser" and self.browser else None

    items = [Item("lab 01", True), Item("unit", False), Item("lab 04", True), Item("nbval 04", False)]
    pytest_collection_modifyitems(None, None, items)
    assert [item.name for item in items] == ["unit", "nbval 04", "lab 01", "lab 04"]
