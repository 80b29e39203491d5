"""Lessons are committed with outputs cleared (an executed FigureWidget stores megabytes of widget state) and
follow the lesson pattern: a `parameters` cell with SEED and SCALE, and the sections in order."""

import json
from pathlib import Path

import pytest

LESSONS = sorted((Path(__file__).resolve().parents[2] / "lessons").glob("*.ipynb"))
SECTIONS = ["Goals", "Idea", "Build it", "Play", "Measure", "Exercises", "Takeaways", "References"]


def test_there_are_lessons():
    assert LESSONS, "no lessons found"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_outputs_cleared(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [k for k, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
    assert "widgets" not in json.loads(path.read_text())["metadata"], f"{path.name} stores widget state"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_pattern(path):
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    first = code[0]
    assert "parameters" in first["metadata"].get("tags", []), f"{path.name}: first code cell must be tagged parameters"
    source = "".join(first["source"])
    assert "SEED" in source and "SCALE" in source, f"{path.name}: the parameters cell must set SEED and SCALE"
    headings = [line[3:].strip() for c in cells if c["cell_type"] == "markdown"
                for line in "".join(c["source"]).splitlines() if line.startswith("## ")]
    found = [s for s in SECTIONS if any(h.startswith(s) for h in headings)]
    assert found == SECTIONS, f"{path.name}: sections {found}, expected {SECTIONS} in this order"
    order = [next(i for i, h in enumerate(headings) if h.startswith(s)) for s in SECTIONS]
    assert order == sorted(order), f"{path.name}: sections out of order: {headings}"
