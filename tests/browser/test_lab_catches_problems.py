"""The browser checks pass a healthy notebook and catch broken ones, naming notebook, cell and error.

The notebooks are written here with nbformat into a temporary folder.
"""
from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from _lab_driver import NotebookProblem

pytestmark = pytest.mark.browser

IMPORTS = """\
import base64, io
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, Image, display
from matplotlib.animation import FuncAnimation
from PIL import Image as PILImage

def gif_bytes(frames):
    images = [PILImage.fromarray(np.full((16, 16), 60 * k, dtype=np.uint8)) for k in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()"""

HEALTHY_WIDGETS = """\
slider = widgets.IntSlider(value=1, min=0, max=5, description="k")
menu = widgets.Dropdown(options=["sin", "cos"], description="f")
button = widgets.Button(description="flip")
out = widgets.Output()
sign = [1]

def redraw(_=None):
    with out:
        out.clear_output(wait=True)
        print(f"{sign[0]} * {menu.value}({slider.value} x)")

def flip(_):
    sign[0] *= -1
    redraw()

slider.observe(redraw, names="value")
menu.observe(redraw, names="value")
button.on_click(flip)
redraw()
widgets.VBox([widgets.HBox([slider, menu, button]), out])"""

JSHTML_ANIMATION = """\
fig, ax = plt.subplots(figsize=(2, 2))
(line,) = ax.plot([0, 1], [0, 0])
animation = FuncAnimation(fig, lambda k: line.set_ydata([0, k]), frames=4)
plt.close(fig)
HTML(animation.to_jshtml())"""

GIFS = """\
display(Image(data=gif_bytes(3), format="gif"))
display(HTML(f'<img src="data:image/gif;base64,{base64.b64encode(gif_bytes(5)).decode()}">'))"""


def write(tmp_path, name, *sources):
    cells = [new_markdown_cell(f"# {name}")] + [new_code_cell(source) for source in sources]
    path = tmp_path / name
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_healthy_notebook_passes_every_check(tmp_path, open_notebook):
    notebook = open_notebook(write(tmp_path, "healthy.ipynb", IMPORTS, HEALTHY_WIDGETS, JSHTML_ANIMATION, GIFS))
    notebook.run_all()
    notebook.assert_cells_ran_without_errors()
    assert notebook.assert_widgets_rendered() == 1
    moved = notebook.exercise_controls()
    assert [line.split(": ", 1)[1].split(" changed")[0] for line in moved] == [
        'slider "k"', 'dropdown "f"', 'button "flip"']
    found = notebook.assert_animations()
    assert found == ["cell #4: jshtml animation, 4 frames", "cell #5: GIF, 3 frames", "cell #5: GIF, 5 frames"]


MISSING_WIDGET = """\
from IPython.display import display
view = {"model_id": "no-such-model", "version_major": 2, "version_minor": 0}
display({"application/vnd.jupyter.widget-view+json": view, "text/plain": "a lost widget"}, raw=True)"""


def test_a_cell_that_raises_or_a_widget_that_cannot_render_is_named(tmp_path, open_notebook):
    notebook = open_notebook(write(tmp_path, "raises.ipynb", MISSING_WIDGET,
                                   "raise ValueError('deliberately broken cell')", "print('never runs')"))
    notebook.run_all()
    with pytest.raises(NotebookProblem) as problem:
        notebook.assert_cells_ran_without_errors()
    message = str(problem.value)
    assert "raises.ipynb, cell #3 (`raise ValueError('deliberately broken cell')`)" in message
    assert "ValueError: deliberately broken cell" in message

    with pytest.raises(NotebookProblem, match=r"raises.ipynb, cell #2 \(`from IPython.display import display`\): "
                                              r"0 of 1 widget views rendered"):
        notebook.assert_widgets_rendered(timeout_s=3)


BROKEN_CALLBACKS = """\
slider = widgets.IntSlider(value=0, min=0, max=3, description="broken t")
out = widgets.Output()

def explode(change):
    raise RuntimeError(f"deliberately broken callback at {change['new']}")

slider.observe(explode, names="value")
widgets.VBox([slider, out])"""

BROKEN_BUTTON = """\
button = widgets.Button(description="broken button")
button.on_click(lambda _: 1 / 0)
button"""

INERT_SLIDER = """\
inert = widgets.IntSlider(value=0, min=0, max=3, description="inert")
widgets.VBox([inert, widgets.Output()])"""

FAILING_OUTPUT = """\
failing = widgets.Output()
with failing:
    raise KeyError("deliberately broken first draw")
failing"""


def test_widget_callbacks_that_raise_or_do_nothing_are_named(tmp_path, open_notebook):
    notebook = open_notebook(write(tmp_path, "callbacks.ipynb", IMPORTS, BROKEN_CALLBACKS, BROKEN_BUTTON,
                                   INERT_SLIDER, FAILING_OUTPUT, "display(Image(data=gif_bytes(1), format='gif'))"))
    notebook.run_all()

    with pytest.raises(NotebookProblem) as problem:
        notebook.assert_cells_ran_without_errors()
    assert "callbacks.ipynb, cell #6 (`failing = widgets.Output()`)" in str(problem.value)
    assert "KeyError inside a widget output: 'deliberately broken first draw'" in str(problem.value)

    assert notebook.assert_widgets_rendered() == 4
    with pytest.raises(NotebookProblem) as problem:
        notebook.exercise_controls(timeout_s=3)
    lines = str(problem.value)
    assert 'callbacks.ipynb, cell #3 (`slider = widgets.IntSlider(value=0, min=0, max=3, description="broken t")`): ' \
           'moving slider "broken t" raised RuntimeError: deliberately broken callback at 1' in lines
    assert 'callbacks.ipynb, cell #4 (`button = widgets.Button(description="broken button")`): ' \
           'moving button "broken button" raised ZeroDivisionError: division by zero' in lines
    assert 'callbacks.ipynb, cell #5 (`inert = widgets.IntSlider(value=0, min=0, max=3, description="inert")`): ' \
           'moving slider "inert" did not change its output within 3 s' in lines

    with pytest.raises(NotebookProblem, match=r"callbacks.ipynb, cell #7 .*: GIF has 1 frame\(s\)"):
        notebook.assert_animations()


def test_cells_marked_to_raise_may_raise_and_must(tmp_path, open_notebook):
    """Notebook 06 shows the seed's bugs as they happen: those cells are tagged ``raises-exception``
    (or start with ``# NBVAL_RAISES_EXCEPTION``), Run All goes on past them, and the check accepts
    their error; a marked cell that does not raise, or any other error, is still a problem."""
    tagged = new_code_cell("raise ValueError('the seed fails here, on purpose')", metadata={"tags": ["raises-exception"]})
    path = tmp_path / "expected.ipynb"
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# expected"), tagged, new_code_cell("# NBVAL_RAISES_EXCEPTION\nx = 1"),
        new_code_cell("print('after the expected errors')"), new_code_cell("1 / 0")]), path)
    notebook = open_notebook(path)
    notebook.run_all()
    with pytest.raises(NotebookProblem) as problem:
        notebook.assert_cells_ran_without_errors()
    message = str(problem.value)
    assert "ValueError" not in message  # expected, so not a problem
    assert "expected.ipynb, cell #3 (`x = 1`): is marked to raise, but ran without an error" in message
    assert "expected.ipynb, cell #5 (`1 / 0`): ZeroDivisionError: division by zero" in message
