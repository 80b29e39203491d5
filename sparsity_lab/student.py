"""`sparsity-lab student SOURCE DEST`: write student copies of the lessons, solutions removed.

The lessons mark solutions the way nbgrader does, so its own tools work on them too:

    def neuron_mask(weight, sparsity, axis):
        ### BEGIN SOLUTION
        ...                                  → # YOUR CODE HERE
        ### END SOLUTION                        raise NotImplementedError()
    ex.q2.check(neuron_mask)
    ### BEGIN HIDDEN TESTS
    assert ex.q2.check(neuron_mask, quiet=True)    → removed, markers and all
    ### END HIDDEN TESTS

The lessons' exercise cells carry nbgrader metadata (solution cells, autograded test cells, read-only cells), and
this command makes the same student copy `nbgrader generate_assignment` makes (a test compares the two). The stub
keeps the marker's indentation, so a solution inside a function body leaves a function that raises
NotImplementedError when called, which `check` reads as "not attempted yet". A markdown solution cell becomes
"YOUR ANSWER HERE". Outputs are cleared. Unbalanced markers, and markers in a cell whose metadata does not allow
them, are errors naming the notebook and the cell.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TEXT_STUB = ("YOUR ANSWER HERE",)
_MARKER = re.compile(r"^\s*#{1,3}\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")


def strip_regions(source: str, stub: tuple[str, ...] = CODE_STUB, where: str = "cell") -> tuple[str, int, int]:
    """`source` with solution regions replaced by `stub` (indented like the marker) and hidden tests removed.

    Returns (new source, solution regions replaced, hidden-test regions removed); ValueError on bad nesting."""
    out: list[str] = []
    open_region: tuple[str, int] | None = None  # (kind, line number) of the region being skipped
    solutions = hidden = 0
    for number, line in enumerate(source.splitlines(), start=1):
        match = _MARKER.match(line)
        if match is None:
            if open_region is None:
                out.append(line)
            continue
        edge, kind = match.groups()
        if edge == "BEGIN":
            if open_region is not None:
                raise ValueError(f"{where}, line {number}: BEGIN {kind} inside the {open_region[0]} region "
                                 f"opened on line {open_region[1]}")
            open_region = (kind, number)
            if kind == "SOLUTION":
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + s for s in stub)
        else:
            if open_region is None or open_region[0] != kind:
                raise ValueError(f"{where}, line {number}: END {kind} without a matching BEGIN {kind}")
            open_region = None
            solutions += kind == "SOLUTION"
            hidden += kind == "HIDDEN TESTS"
    if open_region is not None:
        raise ValueError(f"{where}: BEGIN {open_region[0]} on line {open_region[1]} is never closed")
    return "\n".join(out), solutions, hidden


def solution_text(source: str) -> list[str]:
    """The lines inside the solution and hidden-test regions of `source` (what a student copy must not show)."""
    inside, lines = False, []
    for line in source.splitlines():
        match = _MARKER.match(line)
        if match:
            inside = match.group(1) == "BEGIN"
        elif inside:
            lines.append(line)
    return lines


def _role(cell) -> tuple[bool, bool]:
    """(solution cell, grade cell) from the cell's nbgrader metadata."""
    marks = cell.get("metadata", {}).get("nbgrader", {})
    return bool(marks.get("solution")), bool(marks.get("grade"))


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> tuple[nbformat.NotebookNode, int, int]:
    """A student copy of `nb` (a new notebook; `nb` is left as it was), made as `nbgrader generate_assignment`
    makes it: solution regions of solution cells stubbed, a markdown solution cell replaced whole by "YOUR ANSWER
    HERE", hidden-test regions of grade cells removed, outputs cleared. A region in a cell whose nbgrader metadata
    does not allow it is an error, as in nbgrader.

    Returns (copy, solutions replaced, hidden-test regions removed)."""
    copy = nbformat.from_dict(nb)
    solutions = hidden = 0
    for index, cell in enumerate(copy.cells):
        where = f"{name}, cell {index}"
        is_solution, is_grade = _role(cell)
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        source, s, h = strip_regions(cell.source, stub, where=where)
        if s and not is_solution:
            raise ValueError(f"{where}: a solution region in a cell that is not an nbgrader solution cell")
        if h and not is_grade:
            raise ValueError(f"{where}: a hidden-test region in a cell that is not an nbgrader grade cell")
        if is_solution and not s:  # a whole-cell solution: nbgrader replaces all of it
            source, s = "\n".join(stub), 1
        cell.source = source
        solutions, hidden = solutions + s, hidden + h
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return copy, solutions, hidden


def write_student_copies(source: str | Path, dest: str | Path) -> list[tuple[Path, int, int]]:
    """Write a student copy of every notebook in `source` (a folder or one .ipynb) into the folder `dest`.

    Returns one (written path, solutions replaced, hidden tests removed) per notebook, in name order."""
    source, dest = Path(source), Path(dest)
    notebooks = [source] if source.is_file() else sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no notebooks at {source}: give a lessons folder or an .ipynb file")
    if dest.resolve() in {nb.parent.resolve() for nb in notebooks}:
        raise ValueError(f"DEST {dest} would overwrite the lessons themselves; choose another folder")
    # Convert every notebook before writing any, so a marker error leaves DEST untouched.
    copies = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        copies.append((path.name, *student_notebook(nb, path.name)))
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, nb, solutions, hidden in copies:
        nbformat.write(nb, dest / name)
        written.append((dest / name, solutions, hidden))
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="the lessons folder (or one notebook) with solutions marked")
    parser.add_argument("dest", help="the folder the student copies are written to (created if missing)")


def run(args: argparse.Namespace) -> int:
    try:
        written = write_student_copies(args.source, args.dest)
    except ValueError as error:
        print(f"sparsity-lab student: {error}")
        return 1
    for path, solutions, hidden in written:
        print(f"{path}: {solutions} solution(s) replaced, {hidden} hidden test(s) removed")
    return 0
