"""`python -m course_lib site build`: the execution cache, the static widgets, the links, and bad input
(one clear line each, exit code 1, the previous site left as it was). The site itself, built and
opened in a browser, is tested in tests/site/."""
import os
import threading
import time

import nbformat
import pytest

from course_lib.workshop.build.execute import CellError, run_notebook
from course_lib.workshop.site import cache as site_cache
from course_lib.workshop.site.__main__ import main
from course_lib.workshop.site.links import colab_url, repository_url, rewrite_links
from course_lib.workshop.site.output import MARKER

REPOSITORY = "https://github.com/someone/course"


def write_lesson(folder, name, *sources, tags=()):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}")]
                                  + [nbformat.v4.new_code_cell(source) for source in sources])
    for cell in nb.cells[1:]:
        cell.metadata["tags"] = list(tags)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


@pytest.fixture
def course(tmp_path):
    (tmp_path / "notebooks").mkdir()
    write_lesson(tmp_path / "notebooks", "00_tour", "print('hello')")
    (tmp_path / "README.md").write_text(f"# Course\n\nRepository: {REPOSITORY} (the one place)\n")
    return tmp_path


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


# --- the execution cache ----------------------------------------------------------------------------

def fake_runs(monkeypatch):
    """Replace the kernel by a stub that records which lessons it ran."""
    ran = []

    def execute(lesson, preset, cache, threads):
        ran.append(lesson.stem)
        return nbformat.read(lesson, as_version=4)

    return ran, execute


def test_a_rebuild_runs_only_the_lessons_whose_key_changed(course, tmp_path, monkeypatch):
    lessons = [course / "notebooks" / "00_tour.ipynb", write_lesson(course / "notebooks", "01_more", "1 + 1")]
    ran, execute = fake_runs(monkeypatch)
    run = lambda preset="smoke": site_cache.executed_lessons(lessons, preset, tmp_path / "cache", execute, log=lambda _: None)
    assert [p.name for p in run()] == ["00_tour.ipynb", "01_more.ipynb"] and ran == ["00_tour", "01_more"]
    run()
    assert ran == ["00_tour", "01_more"], "nothing changed, nothing runs"
    write_lesson(course / "notebooks", "01_more", "2 + 2")
    run()
    assert ran[2:] == ["01_more"], "only the edited lesson runs again"
    run("cpu")
    assert ran[3:] == ["00_tour", "01_more"], "another preset is another key"
    monkeypatch.setattr(site_cache, "code_version", lambda: "edited library")
    run()
    assert ran[5:] == ["00_tour", "01_more"], "a change of course_lib's code runs every lesson again"


def test_two_lessons_run_at_a_time_each_with_half_the_cores_and_a_failure_starts_no_later_lesson(course, tmp_path):
    lessons = [write_lesson(course / "notebooks", f"0{i}_lesson", f"{i}") for i in range(5)]
    ran, threads, failed = [], set(), threading.Event()

    def execute(lesson, preset, cache, kernel_threads):
        ran.append(lesson.stem)
        threads.add(kernel_threads)
        if lesson.stem == "01_lesson":
            failed.set()
            raise CellError("notebooks/01_lesson.ipynb", "cell 1 (1)", "raised ZeroDivisionError")
        if lesson.stem == "00_lesson":
            failed.wait(10)
            time.sleep(1)  # the pool has cancelled the lessons not started by now
        return nbformat.read(lesson, as_version=4)

    with pytest.raises(CellError, match="01_lesson"):
        site_cache.executed_lessons(lessons, "smoke", tmp_path / "cache", execute, log=lambda _: None, jobs=2)
    assert sorted(ran) == ["00_lesson", "01_lesson"], "no lesson starts after one failed"
    assert threads == {max(1, (os.cpu_count() or 1) // 2)}
    assert [p.name for p in (tmp_path / "cache" / "smoke").glob("*.ipynb")] == ["00_lesson.ipynb"]
    ran.clear()
    done = site_cache.executed_lessons(lessons[2:], "smoke", tmp_path / "cache", execute, log=lambda _: None, jobs=2)
    assert sorted(ran) == ["02_lesson", "03_lesson", "04_lesson"]
    assert [p.name for p in done] == ["02_lesson.ipynb", "03_lesson.ipynb", "04_lesson.ipynb"], "in lesson order"


def test_the_key_covers_lesson_preset_and_code(course):
    lesson = course / "notebooks" / "00_tour.ipynb"
    keys = {site_cache.lesson_key(lesson, preset, code) for preset in ("smoke", "cpu") for code in ("a", "b")}
    assert len(keys) == 4 and site_cache.lesson_key(lesson, "smoke", "a") == site_cache.lesson_key(lesson, "smoke", "a")
    assert len(site_cache.code_version()) == 64


def test_a_cell_tagged_raises_exception_may_raise_and_must(tmp_path):
    allowed = write_lesson(tmp_path, "00_ok", "1 / 0", tags=["raises-exception"])
    nb = run_notebook(nbformat.read(allowed, as_version=4), tmp_path, "00_ok")
    assert nb.cells[1].outputs[0].ename == "ZeroDivisionError"
    silent = write_lesson(tmp_path, "01_silent", "1 + 1", tags=["raises-exception"])
    with pytest.raises(CellError, match=r"^01_silent: cell 1 \(1 \+ 1\) is tagged raises-exception but raised nothing"):
        run_notebook(nbformat.read(silent, as_version=4), tmp_path, "01_silent")


# --- bad input --------------------------------------------------------------------------------------

def test_an_unknown_preset_is_one_line_and_exit_1(course, capsys):
    assert main(["build", "--preset", "huge", "--root", str(course), "--out", str(course / "_site")]) == 1
    err = error_line(capsys)
    assert "preset" in err and "'huge'" in err and "'smoke', 'cpu', 'gpu'" in err
    assert not (course / "_site").exists() and not (course / ".site-cache").exists()


def test_jobs_below_one_is_one_line_and_exit_1(course, capsys):
    assert main(["build", "--jobs", "0", "--root", str(course), "--out", str(course / "_site")]) == 1
    err = error_line(capsys)
    assert "--jobs" in err and "got 0" in err, err
    assert sorted(p.name for p in course.iterdir()) == ["README.md", "notebooks"], "nothing is made"


def test_an_out_that_is_a_file_or_not_writable_is_one_line_and_exit_1(course, capsys):
    a_file = course / "notes.txt"
    a_file.write_text("mine")
    assert main(["build", "--root", str(course), "--out", str(a_file)]) == 1
    assert "--out" in error_line(capsys) and a_file.read_text() == "mine"
    assert main(["build", "--root", str(course), "--out", str(a_file / "site")]) == 1  # its folder cannot be made
    assert "--out: expected a folder this user can write" in error_line(capsys)
    (course / "mine").mkdir()
    (course / "mine" / "thesis.tex").write_text("years of work")
    assert main(["build", "--root", str(course), "--out", str(course / "mine")]) == 1
    assert "which holds other files" in error_line(capsys) and (course / "mine" / "thesis.tex").exists()


def test_a_failing_lesson_names_lesson_and_cell_and_leaves_the_previous_site(course, capsys):
    write_lesson(course / "notebooks", "01_broken", "x = 1", "1 / 0")
    site = course / "_site"
    site.mkdir()
    (site / MARKER).write_text("")
    (site / "index.html").write_text("the previous site")
    assert main(["build", "--root", str(course), "--out", str(site)]) == 1
    err = error_line(capsys)
    assert "notebooks/01_broken.ipynb: cell 2 (1 / 0) raised ZeroDivisionError" in err and "unchanged" in err
    assert (site / "index.html").read_text() == "the previous site"
    assert sorted(p.name for p in course.iterdir()) == [".site-cache", "README.md", "_site", "notebooks"], \
        "no half-built folder is left beside the site"


# --- static widgets and links ----------------------------------------------------------------------

def test_in_a_site_kernel_a_slider_draws_its_static_figure_and_nothing_goes_to_stderr(course, tmp_path):
    lesson = write_lesson(course / "notebooks", "01_slider",
                          "import tqdm.auto\nfrom course_lib.views.figures import slider_view\n"
                          "slider_view(lambda fig, t: fig.subplots().plot([0, t]), t=(0, 9))")
    nb = site_cache.execute_lesson(lesson, "smoke", tmp_path / "cache")
    outputs = nb.cells[1].outputs
    assert any("image/png" in o.get("data", {}) for o in outputs), outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert not any(o.get("name") == "stderr" for o in outputs), outputs


def test_links_point_at_pages_pictures_or_the_repository(course):
    (course / "docs").mkdir()
    (course / "docs" / "a.gif").write_bytes(b"GIF89a")
    text = ("[g](../GLOSSARY.md#t) [s](../solutions/04_x.ipynb) [w](https://x.org/a) ![p](../docs/a.gif) "
            "![badge](https://img.shields.io/b.svg) [r](../README.md)")
    source = course / "source"
    got = rewrite_links(text, "notebooks/04_x.ipynb", {"README.md", "GLOSSARY.md"}, course, source, REPOSITORY)
    assert got == (f"[g](../GLOSSARY.md#t) [s]({REPOSITORY}/blob/main/solutions/04_x.ipynb) [w](https://x.org/a) "
                   "![p](../docs/a.gif) badge [r](../index.md)")
    assert (source / "docs" / "a.gif").read_bytes() == b"GIF89a"


def test_colab_links_come_from_the_readme_s_repository_line():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    repository = repository_url(root)
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert colab_url(repository, "00_setup_and_tour") in readme, "the README's Colab link and the site's agree"


def test_an_animation_s_cdn_stylesheet_is_dropped_from_its_html():
    from course_lib.workshop.site.source_tree import offline_html

    jshtml = '<link rel="stylesheet"\nhref="https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css">\n<div class="animation">'
    assert offline_html(jshtml) == '\n<div class="animation">'


def test_a_figure_shown_twice_by_one_cell_appears_once():
    from course_lib.workshop.site.source_tree import without_repeated_pictures

    figure = {"image/png": "iVBOR", "text/plain": "<Figure>"}
    outputs = [nbformat.v4.new_output("execute_result", data=figure), nbformat.v4.new_output("display_data", data=figure),
               nbformat.v4.new_output("display_data", data={"image/png": "other"})]
    assert [o.data["image/png"] for o in without_repeated_pictures(outputs)] == ["iVBOR", "other"]
