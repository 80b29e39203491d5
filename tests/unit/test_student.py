"""Student copies: solutions become `raise NotImplementedError()`, hidden tests vanish, no solution text survives,
the nbgrader metadata decides what may hold a region, and every lesson's copy runs, each exercise reading "not
attempted yet" and its solution withheld. (tests/lessons/test_nbgrader.py checks that nbgrader itself agrees.)"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from sparsity_lab import cli
from sparsity_lab.student import (
    CODE_STUB,
    solution_text,
    strip_regions,
    student_notebook,
    write_student_copies,
)

LESSONS = Path(__file__).resolve().parents[2] / "lessons"
LESSON_FILES = sorted(LESSONS.glob("*.ipynb"))
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
CELL_TIMEOUT_S = 300

SOLUTION_CELL = """def double(x):
    \"\"\"Twice x.\"\"\"
    ### BEGIN SOLUTION
    y = 2 * x  # the secret
    return y
    ### END SOLUTION


ex.q1.check(double)
### BEGIN HIDDEN TESTS
assert ex.q1.check(double, quiet=True)
### END HIDDEN TESTS"""


def test_solution_becomes_an_indented_stub_and_hidden_tests_vanish():
    out, solutions, hidden = strip_regions(SOLUTION_CELL)
    assert (solutions, hidden) == (1, 1)
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()\n" in out
    assert "secret" not in out and "assert" not in out and "BEGIN" not in out
    assert out.splitlines()[:2] == ['def double(x):', '    """Twice x."""']
    assert out.rstrip().endswith("ex.q1.check(double)")


def test_a_top_level_solution_and_a_markdown_answer():
    out, solutions, _ = strip_regions("x = 1\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION")
    assert out == "x = 1\n" + "\n".join(CODE_STUB) and solutions == 1
    text, solutions, _ = strip_regions("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", ("YOUR ANSWER HERE",))
    assert text == "Why?\n\nYOUR ANSWER HERE" and solutions == 1


@pytest.mark.parametrize(("source", "message"), [
    ("### BEGIN SOLUTION\nx = 1", "line 1 is never closed"),
    ("x = 1\n### END SOLUTION", "line 2: END SOLUTION without a matching BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n", "line 2: BEGIN HIDDEN TESTS inside the SOLUTION region"),
    ("### BEGIN HIDDEN TESTS\n### END SOLUTION\n", "END SOLUTION without a matching BEGIN"),
])
def test_unbalanced_markers_are_errors_naming_the_line(source, message):
    with pytest.raises(ValueError, match=message):
        strip_regions(source, where="lesson.ipynb, cell 3")


def nbgrader(grade_id: str, *, solution=False, grade=False, locked=False, points=None) -> dict:
    marks = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
             "task": False}
    return {"nbgrader": marks if points is None else {**marks, "points": points}}


SOLUTION_PART, _, CHECK_PART = SOLUTION_CELL.partition("\n\n\n")


def _demo_notebook() -> nbformat.NotebookNode:
    """A small lesson in the lessons' pattern: set-up, an exercise as nbgrader cells (answer, autograded check,
    a markdown question and its answer), a later cell."""
    setup = ("from sparsity_lab.exercises import Case, Exercise, Function, LessonExercises\n"
             "def _double(x):\n    return 2 * x\n"
             "ex = LessonExercises('99', [Exercise('q1', 'Double x.', Function(_double, [Case((1,)), Case((-3,))]),"
             " solution='return 2 * x')])")
    answer = new_code_cell(SOLUTION_PART, metadata=nbgrader("q1", solution=True))
    check = new_code_cell(CHECK_PART, metadata=nbgrader("q1-check", grade=True, locked=True, points=1))
    check.outputs = [new_output("stream", name="stdout", text="✓ q1: correct.\n")]
    check.execution_count = 3
    return new_notebook(cells=[new_markdown_cell("# Demo"), new_code_cell(setup), answer, check,
                               new_markdown_cell("Why?", metadata=nbgrader("q2-question", locked=True)),
                               new_markdown_cell("Because of the secret.",
                                                 metadata=nbgrader("q2-answer", solution=True, grade=True, points=1)),
                               new_code_cell("print('after the exercises')")],
                        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def test_regions_only_where_the_nbgrader_metadata_allows_them():
    nb = _demo_notebook()
    nb.cells[2].metadata = {}  # the solution region now sits in a plain cell
    with pytest.raises(ValueError, match="cell 2: a solution region in a cell that is not an nbgrader solution cell"):
        student_notebook(nb, "demo.ipynb")
    nb = _demo_notebook()
    nb.cells[3].metadata = {}
    with pytest.raises(ValueError, match="cell 3: a hidden-test region in a cell that is not an nbgrader grade"):
        student_notebook(nb, "demo.ipynb")
    copy = student_notebook(_demo_notebook())[0]
    assert copy.cells[5].source == "YOUR ANSWER HERE"  # a markdown solution cell is replaced whole
    assert copy.cells[4].source == "Why?"


def test_student_notebook_leaves_the_original_and_clears_outputs():
    nb = _demo_notebook()
    before = nbformat.writes(nb)
    copy, solutions, hidden = student_notebook(nb, "demo.ipynb")
    assert nbformat.writes(nb) == before
    assert (solutions, hidden) == (2, 1)
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == "code")
    assert "secret" not in nbformat.writes(copy)
    nbformat.validate(copy)


def _run(nb: nbformat.NotebookNode, cwd: Path, cells: int | None = None) -> nbformat.NotebookNode:
    """Execute the first `cells` cells of `nb` (all by default) in a fresh kernel; errors raise."""
    nb = nbformat.from_dict(nb)
    if cells is not None:
        nb.cells = nb.cells[:cells]
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
                   ).execute()
    return nb


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def test_student_copy_of_a_demo_runs_and_reads_not_attempted(tmp_path):
    (tmp_path / "lessons").mkdir()
    nbformat.write(_demo_notebook(), tmp_path / "lessons" / "99_demo.ipynb")
    written = write_student_copies(tmp_path / "lessons", tmp_path / "student")
    assert [(p.name, s, h) for p, s, h in written] == [("99_demo.ipynb", 2, 1)]
    ran = _run(nbformat.read(written[0][0], as_version=4), tmp_path)
    assert "q1: not attempted yet" in _stdout(ran.cells[3])
    assert "after the exercises" in _stdout(ran.cells[6])


def test_a_marker_error_writes_nothing(tmp_path):
    (tmp_path / "lessons").mkdir()
    bad = new_notebook(cells=[new_code_cell("### BEGIN SOLUTION\nx = 1", metadata=nbgrader("q1", solution=True))])
    nbformat.write(_demo_notebook(), tmp_path / "lessons" / "01_good.ipynb")
    nbformat.write(bad, tmp_path / "lessons" / "02_bad.ipynb")
    with pytest.raises(ValueError, match="02_bad.ipynb, cell 0: BEGIN SOLUTION on line 1 is never closed"):
        write_student_copies(tmp_path / "lessons", tmp_path / "student")
    assert not (tmp_path / "student").exists()
    with pytest.raises(ValueError, match="overwrite the lessons"):
        write_student_copies(tmp_path / "lessons", tmp_path / "lessons")


def test_command_line_writes_copies_and_reports(tmp_path, capsys):
    (tmp_path / "lessons").mkdir()
    nbformat.write(_demo_notebook(), tmp_path / "lessons" / "99_demo.ipynb")
    assert cli.main(["student", str(tmp_path / "lessons"), str(tmp_path / "out")]) == 0
    assert "99_demo.ipynb: 2 solution(s) replaced, 1 hidden test(s) removed" in capsys.readouterr().out
    assert (tmp_path / "out" / "99_demo.ipynb").exists()
    assert cli.main(["student", str(tmp_path / "missing"), str(tmp_path / "out2")]) == 1
    assert "no notebooks at" in capsys.readouterr().out


# --- the real lessons -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", LESSON_FILES, ids=[p.stem for p in LESSON_FILES])
def test_lesson_student_copy_keeps_no_solution_text(path):
    nb = nbformat.read(path, as_version=4)
    copy = student_notebook(nb, path.name)[0]
    for original, student in zip(nb.cells, copy.cells, strict=True):
        kept = set(strip_regions(original.source, ("",))[0].splitlines())
        leaked = [line for line in solution_text(original.source)
                  if line.strip() and line in student.source.splitlines() and line not in kept]
        assert not leaked, f"{path.name}: solution text survives in the student copy: {leaked}"
        assert not any(m in student.source for m in MARKERS), f"{path.name}: a marker survives"


def test_lesson00_has_its_exercises_marked():
    nb = nbformat.read(LESSONS / "00_why_structured_sparsity.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    for name in ("q1", "q2", "q3"):
        assert f"ex.{name}.check(" in text
        assert f"assert ex.{name}.check(" in text, f"lesson 00 {name}: no hidden assertion"
    assert student_notebook(nb)[1:] == (4, 4)  # 3 code answers and 1 markdown; 3 checks and the reveal
