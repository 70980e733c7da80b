// Injected into the JupyterLab page by _lab_driver.py: reads the notebook the learner sees.
// Needs the server flag --LabApp.expose_app_in_browser=True (window.jupyterapp).
// Cells are found through the notebook widget (panel.content.widgets[i]: .model and .node), so
// DOM and model always refer to the same cell. Every function returns plain JSON.
window.__courseProbe = (() => {
  const WIDGET_MIME = "application/vnd.jupyter.widget-view+json";
  const state = { errors: [], runAll: null, executionCounts: {} };

  function panelFor(path) {
    for (const widget of window.jupyterapp.shell.widgets("main")) {
      if (widget.context && widget.context.path === path && widget.content && widget.sessionContext) {
        return widget;
      }
    }
    return null;
  }

  function kernelOf(path) {
    const panel = panelFor(path);
    const session = panel && panel.sessionContext.session;
    return session ? session.kernel : null;
  }

  function kernelStatus(path) {
    const kernel = kernelOf(path);
    return kernel ? kernel.status : "none";
  }

  // The end of an IPython traceback (last frames and the "Name: message" line), without colours.
  function lastFrames(traceback) {
    return (traceback || []).slice(-3).map((part) => String(part).replace(/\u001b\[[0-9;]*m/g, "")).join("\n");
  }

  // Record every "error" message the kernel publishes: cell errors, and errors raised in widget
  // callbacks (those never reach a cell; JupyterLab only shows them in its log console).
  function recordErrors(path) {
    const kernel = kernelOf(path);
    if (!kernel || kernel.__courseProbeAttached) return !!kernel;
    kernel.__courseProbeAttached = true;
    kernel.iopubMessage.connect((_, msg) => {
      const parent = msg.parent_header || {};
      if (msg.header.msg_type === "execute_input") {
        state.executionCounts[parent.msg_id] = msg.content.execution_count;
      }
      if (msg.header.msg_type !== "error") return;
      state.errors.push({
        ename: msg.content.ename,
        evalue: msg.content.evalue,
        parent: parent.msg_type || "",
        executionCount: state.executionCounts[parent.msg_id] ?? null,
        traceback: lastFrames(msg.content.traceback),
      });
    });
    return true;
  }

  function errorsSince(path, start) {
    return state.errors.slice(start);
  }

  function errorCount() {
    return state.errors.length;
  }

  function firstLine(source) {
    const lines = source.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
    return (lines[0] || source.split("\n")[0] || "").slice(0, 80);
  }

  function codeCells(path) {
    const panel = panelFor(path);
    const cells = [];
    panel.content.widgets.forEach((cell, index) => {
      if (cell.model.type === "code") cells.push({ cell, index });
    });
    return cells;
  }

  function startRunAll(path) {
    const panel = panelFor(path);
    window.jupyterapp.shell.activateById(panel.id);
    state.runAll = { done: false, result: null };
    const run = state.runAll;
    window.jupyterapp.commands
      .execute("notebook:run-all-cells")
      .then((result) => { run.done = true; run.result = result; })
      .catch((error) => { run.done = true; run.result = String(error); });
    return true;
  }

  // True when run-all has returned, the kernel is idle, no prompt shows [*], and either every
  // non-empty code cell has run or that quiet state has held for QUIET_MS. (Past a cell tagged
  // raises-exception, JupyterLab goes on cell by cell: between two cells the kernel is briefly idle
  // with no [*] shown, so "idle" alone would end the wait in the middle of the run.)
  const QUIET_MS = 3000;
  function runFinished(path) {
    const run = state.runAll;
    const quiet = run && run.done && kernelStatus(path) === "idle"
      && codeCells(path).every(({ cell }) => !cell.node.querySelector(".jp-InputPrompt").textContent.includes("*"));
    if (!quiet) {
      if (run) run.quietSince = null;
      return false;
    }
    run.quietSince = run.quietSince || Date.now();
    const allRan = codeCells(path).every(({ cell }) =>
      cell.model.executionCount !== null || !cell.model.sharedModel.getSource().trim());
    return allRan || Date.now() - run.quietSince >= QUIET_MS;
  }

  // One entry per code cell: what ran and which errors its outputs hold.
  function cellReport(path) {
    return codeCells(path).map(({ cell, index }) => {
      const outputs = cell.model.outputs.toJSON();
      return {
        index,
        executionCount: cell.model.executionCount,
        firstLine: firstLine(cell.model.sharedModel.getSource()),
        // A cell that shows an error on purpose (nbval and JupyterLab's Run All both honour these).
        expectsError: (cell.model.getMetadata("tags") || []).includes("raises-exception")
          || /^#\s*NBVAL_RAISES_EXCEPTION/.test(cell.model.sharedModel.getSource().trimStart()),
        errors: outputs.filter((o) => o.output_type === "error").map((o) => ({
          ename: o.ename, evalue: o.evalue, traceback: lastFrames(o.traceback),
        })),
      };
    });
  }

  // The page node of each output of a cell, next to its nbformat JSON (same order as the model).
  function outputsOf(cell) {
    const json = cell.model.outputs.toJSON();
    const children = cell.outputArea ? cell.outputArea.widgets : [];
    return json.map((output, i) => ({ output, node: children[i] ? children[i].node : null }));
  }

  function isWidgetView(output) {
    return !!(output.data && output.data[WIDGET_MIME]);
  }

  // Widget views the model holds against widget views rendered in the page.
  function widgetReport(path) {
    return codeCells(path).map(({ cell, index }) => {
      const views = outputsOf(cell).filter(({ output }) => isWidgetView(output));
      const problems = views.map(({ node }) => {
        if (!node) return "no output node";
        const text = node.textContent.trim();
        if (/Error displaying widget/.test(text) || node.querySelector(".jupyter-widgets-error-widget")) {
          return text.slice(0, 200);
        }
        if (!node.querySelector(".jupyter-widgets")) {
          return /Loading widget/.test(text) ? "still loading" : `not rendered: "${text.slice(0, 120)}"`;
        }
        return null;
      }).filter((p) => p !== null);
      return { index, expected: views.length, rendered: views.length - problems.length, problems };
    }).filter((r) => r.expected > 0);
  }

  // The controls a learner can move, tagged with data-probe-control="N" for Playwright.
  const CONTROL_SELECTORS = [
    ["slider", ".widget-slider .noUi-handle"],
    ["dropdown", ".widget-dropdown select"],
    ["select", ".widget-select select"],
    ["play", ".widget-play"],
    ["button", "button.widget-button, button.widget-toggle-button, .widget-toggle-buttons button"],
    ["checkbox", ".widget-checkbox input[type=checkbox]"],
    ["radio", ".widget-radio-box input[type=radio]"],
  ];

  function describeControl(element, kind) {
    const box = element.closest(".jupyter-widgets.widget-inline-hbox, .widget-play, .jupyter-widgets") || element;
    const label = box.querySelector(".widget-label");
    const text = (label && label.textContent.trim()) || element.getAttribute("title")
      || element.textContent.trim();
    return `${kind} "${text.slice(0, 40)}"`;
  }

  function markControls(path) {
    const controls = [];
    for (const { cell, index } of codeCells(path)) {
      const seen = new Set();
      for (const [kind, selector] of CONTROL_SELECTORS) {
        for (const element of cell.node.querySelectorAll(`.jp-Cell-outputArea ${selector}`)) {
          if (seen.has(element) || (kind === "button" && element.closest(".widget-play"))) continue;
          const slider = kind === "slider" ? element.closest(".widget-slider") : null;
          const firstHandle = !slider || slider.querySelector(".noUi-handle") === element;
          if (!firstHandle) continue; // a range slider: move its first handle only
          seen.add(element);
          const id = controls.length;
          element.setAttribute("data-probe-control", String(id));
          controls.push({ id, cell: index, kind, label: describeControl(element, kind) });
        }
      }
    }
    return controls;
  }

  function hash(text) {
    let h = 2166136261;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
    return `${text.length}:${(h >>> 0).toString(16)}`;
  }

  // What a cell shows besides its controls: images, Output and HTML widgets, every other output.
  function outputSignature(path, cellIndex) {
    const cell = panelFor(path).content.widgets[cellIndex];
    const parts = [];
    for (const { output, node } of outputsOf(cell)) {
      if (!node) continue;
      if (!isWidgetView(output)) parts.push(`out:${node.innerHTML}`);
      for (const img of node.querySelectorAll("img")) parts.push(`img:${img.getAttribute("src") || ""}`);
      for (const el of node.querySelectorAll(".widget-output, .widget-html-content")) parts.push(`el:${el.innerHTML}`);
    }
    return hash(parts.join("\n"));
  }

  // Animations in the page: matplotlib jshtml (<div class="animation">) and GIF images.
  function animationReport(path) {
    const found = [];
    for (const { cell, index } of codeCells(path)) {
      const outputs = cell.model.outputs.toJSON();
      const html = outputs.map((o) => [].concat((o.data && o.data["text/html"]) || "").join("")).join("\n");
      const count = (pattern) => (html.match(pattern) || []).length;
      const expectedJshtml = count(/class="animation"/g);
      const expectedGif = outputs.filter((o) => o.data && o.data["image/gif"]).length + count(/data:image\/gif/g);
      for (const div of cell.node.querySelectorAll(".jp-OutputArea-output .animation")) {
        const img = div.querySelector("img[id^=_anim_img]");
        const id = img ? img.id.replace("_anim_img", "") : "";
        const anim = window["anim" + id];
        const frames = anim && anim.frames ? anim.frames : [];
        found.push({
          cell: index, kind: "jshtml", id,
          frames: frames.length,
          frameHashes: frames.map((f) => hash(f.src)),
          framesLoaded: frames.filter((f) => f.complete && f.naturalWidth > 0).length,
          shown: !!(img && img.getAttribute("src") && img.naturalWidth > 0),
        });
      }
      for (const img of cell.node.querySelectorAll('.jp-OutputArea-output img[src^="data:image/gif"]')) {
        const shown = img.complete && img.naturalWidth > 0;
        found.push({ cell: index, kind: "gif", shown, data: img.getAttribute("src") });
      }
      if (found.some((r) => r.cell === index) || expectedJshtml || expectedGif) {
        found.push({ cell: index, kind: "expected", jshtml: expectedJshtml, gif: expectedGif });
      }
    }
    return found;
  }

  return {
    kernelStatus, recordErrors, errorsSince, errorCount, startRunAll, runFinished,
    cellReport, widgetReport, markControls, outputSignature, animationReport,
  };
})();
