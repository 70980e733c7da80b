"""Widgets on a static page: each widget output replaced by what it showed when the cell ran.

A page without a kernel cannot move a slider, and loading the widgets' JavaScript would need a
CDN. So the executed notebook's widget state (``nb.metadata.widgets``, kept by the runner) is read
once: an Output widget becomes the outputs it held (the figure drawn for the slider's first
value), an HTML widget its HTML, a slider or drop-down one line naming its value and range, radio
buttons their choices. Then the widget state is removed, so the page loads no widget script.
"""
from __future__ import annotations

import html

import nbformat
from nbformat import NotebookNode

VIEW = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"
NOTE = "run the notebook to move it"


def _control_line(state: dict, model: str) -> str | None:
    """One line of HTML for a control (slider, drop-down, radio buttons, text box), None for others."""
    name = html.escape(state.get("description") or "")
    if model.endswith("SliderModel"):
        return f"<b>{name}</b> = {state.get('value')} (a slider from {state.get('min')} to {state.get('max')}: {NOTE})"
    labels = [html.escape(str(label)) for label in state.get("_options_labels", [])]
    if model == "DropdownModel":
        index = state.get("index")
        chosen = labels[index] if isinstance(index, int) and index < len(labels) else ""
        return f"<b>{name}</b> = {chosen} (a choice of {', '.join(labels)}: {NOTE})"
    if model in ("RadioButtonsModel", "ToggleButtonsModel", "SelectModel"):
        return "<ul>" + "".join(f"<li>{label}</li>" for label in labels) + "</ul>"
    return None


def _flatten(model_id: str, states: dict, outputs: list[NotebookNode], seen: set[str]) -> None:
    """Append to ``outputs`` what widget ``model_id`` (and its children, in order) showed."""
    if model_id in seen or model_id not in states:
        return
    seen.add(model_id)
    model, state = states[model_id]["model_name"], states[model_id]["state"]
    if model == "OutputModel":
        outputs.extend(nbformat.from_dict(output) for output in state.get("outputs", []))
    elif model in ("HTMLModel", "HTMLMathModel", "LabelModel"):
        value = state.get("value") or ""
        if value:
            outputs.append(_html(value if model != "LabelModel" else html.escape(value)))
    elif "children" in state:
        for child in state["children"]:
            _flatten(str(child).removeprefix("IPY_MODEL_"), states, outputs, seen)
    else:
        line = _control_line(state, model)
        if line:
            outputs.append(_html(line))


def _html(text: str) -> NotebookNode:
    return nbformat.v4.new_output("display_data", data={"text/html": f'<div class="static-widget">{text}</div>'})


def static_outputs(output: NotebookNode, states: dict) -> list[NotebookNode]:
    """The outputs that stand for one cell output: itself, or (a widget view) what the widget showed."""
    view = output.get("data", {}).get(VIEW)
    if view is None:
        return [output]
    shown: list[NotebookNode] = []
    _flatten(view.get("model_id", ""), states, shown, set())
    if not shown:  # no state kept: the widget's plain-text form, as a terminal shows it
        text = output.get("data", {}).get("text/plain", "")
        return [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []
    return shown


def render_widgets_static(nb: NotebookNode) -> NotebookNode:
    """``nb`` with every widget output replaced by :func:`static_outputs` and the widget state removed."""
    states = nb.metadata.get("widgets", {}).get(STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [shown for output in cell.outputs for shown in static_outputs(output, states)]
    nb.metadata.pop("widgets", None)
    return nb
