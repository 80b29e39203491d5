"""Lessons in a real JupyterLab in headless Chromium: every cell runs clean, every slider and plotly figure
renders, a sparsity slider moved with the keyboard changes the figure's data (read from the page), and no
request leaves loopback. A screenshot per notebook lands in test-output/browser/, pass or fail.

What runs in the browser is each lesson's *student copy* (`sparsity-lab student`): the lesson with its solutions
replaced, so one run checks both the widgets and the copy — every exercise reads "not attempted yet" and its
solution is withheld (tests/lessons/test_student_copies.py checks the copies with nbclient where no browser runs).
nbval runs the full lessons, solutions included.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from sparsity_lab.exercises import for_lesson
from sparsity_lab.student import write_student_copies

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "browser"

LESSONS = sorted(p.name for p in (ROOT / "lessons").glob("[0-9][0-9]_*.ipynb"))
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"   # the notebook in front
PAGE_LOAD_MS = 60_000
KERNEL_IDLE_MS = 60_000
RUN_ALL_MS = 150_000        # lesson 00 runs in about a minute under nbval; the browser shares the CPU
FIGURE_UPDATE_MS = 60_000   # one slider step re-prunes, re-evaluates and re-measures the network

# Every code cell's prompt: "[*]:" while queued or running, "[12]:" when done, "[ ]:" when never run.
PROMPTS_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')]
    .map(cell => (cell.querySelector('.jp-InputPrompt') || {innerText: ''}).innerText.trim())"""

# Error outputs (tracebacks) and widgets that failed: "Error displaying widget", or a widget shown as its text
# repr because the frontend could not draw it.
PROBLEMS_JS = """() => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const problems = [];
    for (const out of panel.querySelectorAll('.jp-OutputArea-output')) {
        const text = out.innerText || '';
        const mime = out.getAttribute('data-mime-type') || '';
        if (mime === 'application/vnd.jupyter.stderr' && /Traceback|Error:|Exception/.test(text)
                && !/Warning/.test(text.split('\\n')[0]))
            problems.push('error output: ' + (text.length > 1200 ? text.slice(0, 400) + ' … ' + text.slice(-800)
                                                                  : text));
        if (/Error displaying widget|model not found|Failed to load model class/i.test(text))
            problems.push('widget failed: ' + text.slice(0, 300));
        if (mime === 'text/plain' && /^(\\w*Slider|FigureWidget|VBox|HBox)\\(/.test(text.trim()))
            problems.push('widget shown as text: ' + text.slice(0, 200));
    }
    return problems;
}"""

# A checksum of every plotly figure's x/y/z data as plotly.js holds it in the page (plain or typed arrays, or
# plotly's base64 {dtype, bdata} form); it changes when any value does.
FIGURES_JS = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .js-plotly-plot')]
    .map(gd => {
    let sum = 0, count = 0;
    const walk = (v, depth) => {
        if (v === null || v === undefined || depth > 6) return;
        const mix = x => { count++; sum = (sum * 31 + x) % 1e12; };
        if (typeof v === 'number') { if (isFinite(v)) mix(v * 1000); }
        else if (typeof v === 'string') { for (let i = 0; i < v.length; i++) mix(v.charCodeAt(i)); }
        else if (Array.isArray(v) || ArrayBuffer.isView(v)) { for (const x of v) walk(x, depth + 1); }
        else if (typeof v === 'object') { for (const k of Object.keys(v).sort()) walk(v[k], depth + 1); }
    };
    for (const trace of (gd.data || [])) for (const key of ['x', 'y', 'z']) walk(trace[key], 0);
    return sum + ':' + count;
})"""


# Everything the notebook in front printed to stdout.
STDOUT_JS = """() => [...document.querySelectorAll(
    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"]')]
    .map(out => out.innerText).join('\\n')"""
ASK_FOR_SOLUTIONS = "for e in ex:\n    e.solution()"      # in a student copy each says it is withheld


def student_copy(source: Path, notebook_dir: Path) -> str:
    """Write the student copy of lesson `source` into the served folder, with a last cell that asks every exercise
    for its solution; return its name there."""
    write_student_copies(source, notebook_dir)
    path = notebook_dir / source.name
    nb = nbformat.read(path, as_version=4)
    assert "reveal_solutions" not in "".join(c.source for c in nb.cells), f"{source.name}: the copy reveals solutions"
    nb.cells.append(nbformat.v4.new_code_cell(ASK_FOR_SOLUTIONS))
    nbformat.write(nb, path)
    return source.name


def check_student_output(page, lesson: str) -> int:
    """Every exercise of `lesson` printed "not attempted yet" and "withheld" once; returns how many exercises."""
    printed = page.evaluate(STDOUT_JS)
    names = [e.name for e in for_lesson(lesson[:2])]
    for name in names:
        assert f"{name}: not attempted yet" in printed, f"{lesson}: {name} did not read as not attempted"
    assert printed.count("withheld") == len(names), f"{lesson}: expected {len(names)} withheld solutions"
    return len(names)


def copy_notebook(source: Path, notebook_dir: Path) -> str:
    """Copy `source` into the served folder; return its name there."""
    shutil.copy(source, notebook_dir / source.name)
    return source.name


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as test-output/browser/NAME.png (on success and on failure)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    try:
        page.screenshot(path=str(path), full_page=True, timeout=15_000)
    except Exception as error:  # a screenshot must never hide the test's own failure
        print(f"screenshot {path} failed: {error}")
    return path


def open_notebook(page, server: dict, name: str) -> None:
    """Open `name` in JupyterLab and wait until its kernel is idle and no toast covers it."""
    # ?reset: start from an empty workspace, not with the tabs an earlier test left open on the same server.
    page.goto(f"{server['base']}/lab/tree/{name}?reset&token={server['token']}", wait_until="domcontentloaded",
              timeout=PAGE_LOAD_MS)
    page.wait_for_selector(f"{PANEL} .jp-Cell", timeout=PAGE_LOAD_MS)
    # Run All before the kernel is idle executes nothing. A notebook without kernel metadata first asks which
    # kernel to start (the lessons name python3): accept the default.
    idle = "(document.querySelector('#jp-main-statusbar') || {innerText: ''}).innerText.includes('Idle')"
    page.wait_for_function(f"() => {idle} || document.querySelector('.jp-Dialog')", timeout=KERNEL_IDLE_MS)
    if page.locator(".jp-Dialog").count():
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=10_000)
        page.wait_for_function(f"() => {idle}", timeout=KERNEL_IDLE_MS)
    dismiss_toasts(page)


def dismiss_toasts(page) -> None:
    """Close the "Jupyter news" question and any other toast that could swallow a click."""
    for button in page.locator(".Toastify__toast button").all():
        label = (button.inner_text(timeout=2_000) or "").strip().lower()
        if label in ("no", "dismiss", "") and button.is_visible():
            button.click(timeout=5_000)


def run_all(page) -> list[str]:
    """Click into the first cell, Run ▸ Run All Cells, and wait until no cell is queued or running.

    Returns the final prompts; a run stopped by an error leaves the later cells at "[ ]"."""
    page.locator(f"{PANEL} .jp-Cell").first.click(timeout=10_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=10_000)
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click(timeout=10_000)
    page.wait_for_function(f"() => ({PROMPTS_JS})().some(p => p.includes('*'))", timeout=30_000)
    page.wait_for_function(f"() => !({PROMPTS_JS})().some(p => p.includes('*'))", timeout=RUN_ALL_MS)
    return page.evaluate(PROMPTS_JS)


def sparsity_slider(page):
    """The first slider labelled "sparsity" (else the first slider), as a Playwright locator."""
    labelled = page.locator(f"{PANEL} .widget-slider", has=page.locator(".widget-label", has_text="sparsity"))
    return labelled.first if labelled.count() else page.locator(f"{PANEL} .widget-slider").first


def check_notebook_in_lab(page, server: dict, name: str) -> dict:
    """Run `name` in JupyterLab and check it; returns what was measured, for the test's message."""
    start = time.monotonic()
    open_notebook(page, server, name)
    prompts = run_all(page)
    ran = time.monotonic() - start
    problems = page.evaluate(PROBLEMS_JS)
    assert not problems, f"{name}: " + "\n".join(problems)
    assert all(p.startswith("[") and p[1:-2].strip().isdigit() for p in prompts), \
        f"{name}: not every code cell ran: prompts {prompts}"

    sliders, figures = page.locator(f"{PANEL} .widget-slider"), page.locator(f"{PANEL} .js-plotly-plot")
    assert sliders.count() >= 1, f"{name}: no .widget-slider rendered"
    assert figures.count() >= 1, f"{name}: no plotly figure (.js-plotly-plot) rendered"
    for kind, items in (("slider", sliders), ("plotly figure", figures)):
        for i in range(items.count()):
            box = items.nth(i).bounding_box()
            assert box and box["width"] > 0 and box["height"] > 0, f"{name}: {kind} {i} has no size: {box}"
    for i in range(figures.count()):
        assert figures.nth(i).locator(".main-svg").count() >= 1, f"{name}: plotly figure {i} drew no SVG"

    slider = sparsity_slider(page)
    readout = slider.locator(".widget-readout")
    before_value, before_data = readout.inner_text(), page.evaluate(FIGURES_JS)
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")   # a replay slider starts at its last frame
    page.wait_for_function(f"before => JSON.stringify(({FIGURES_JS})()) !== before",
                           arg=json.dumps(before_data), timeout=FIGURE_UPDATE_MS)
    after_value = readout.inner_text()
    assert after_value != before_value, f"{name}: the arrow key did not move the slider ({before_value})"
    assert not page.outside_requests, f"{name}: requests left loopback: {page.outside_requests[:10]}"
    return {"seconds to run": round(ran, 1), "sliders": sliders.count(), "figures": figures.count(),
            "slider": f"{before_value} → {after_value}"}


def write_demo_notebook(path: Path) -> Path:
    """A small notebook with the lessons' widget pattern: a sparsity slider that redraws a FigureWidget."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                          "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import ipywidgets as W\nimport numpy as np\nimport plotly.graph_objects as go\n\n"
            "weights = np.random.default_rng(0).normal(size=(28, 28))\n"
            "slider = W.FloatSlider(value=0.5, min=0.0, max=0.99, step=0.01, description='sparsity',\n"
            "                       continuous_update=False)\n"
            "figure = go.FigureWidget(go.Heatmap(z=(np.abs(weights) > 0.5).astype(float)))\n\n"
            "def redraw(change):\n"
            "    cut = np.quantile(np.abs(weights), slider.value)\n"
            "    figure.data[0].z = (np.abs(weights) > cut).astype(float)\n\n"
            "slider.observe(redraw, names='value')\n"
            "redraw(None)\n"
            "W.VBox([slider, figure])"),
        nbformat.v4.new_code_cell("print('kept', int(figure.data[0].z.sum()), 'of', weights.size)"),
    ]
    nbformat.write(nb, path)
    return path


def test_demo_widget_notebook_renders_and_reacts(browser_page, jupyter_server, notebook_dir, tmp_path):
    """The machinery itself, on a notebook that runs in a second: if this fails, the lessons cannot pass."""
    name = copy_notebook(write_demo_notebook(tmp_path / "widget_demo.ipynb"), notebook_dir)
    try:
        print(check_notebook_in_lab(browser_page, jupyter_server, name))
    finally:
        screenshot(browser_page, "widget_demo")
        shut_down_kernel(jupyter_server, name)


def shut_down_kernel(server: dict, name: str) -> None:
    """Shut down the kernel of notebook `name` through the server's REST API: a finished lesson's kernel would
    otherwise hold its memory (up to 1 GB) until the session ends, beside every later test. Never raises."""
    url, token = f"{server['base']}/api/sessions", f"token={server['token']}"
    try:
        with urllib.request.urlopen(f"{url}?{token}", timeout=10) as reply:
            sessions = [s for s in json.load(reply) if Path(s.get("path", "")).name == name]
        for session in sessions:
            urllib.request.urlopen(urllib.request.Request(f"{url}/{session['id']}?{token}", method="DELETE"),
                                   timeout=30).close()
    except OSError as error:  # the test's own outcome matters more than the clean-up
        print(f"could not shut down the kernel of {name}: {error}")


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_renders_and_reacts_in_jupyterlab(browser_page, jupyter_server, notebook_dir, lesson):
    source = ROOT / "lessons" / lesson
    assert source.exists(), f"{source} is missing"
    name = student_copy(source, notebook_dir)
    try:
        measured = check_notebook_in_lab(browser_page, jupyter_server, name)
        measured["exercises not attempted"] = check_student_output(browser_page, lesson)
        print(measured)
    finally:
        screenshot(browser_page, Path(lesson).stem)
        shut_down_kernel(jupyter_server, name)
