"""Every lesson's student copy (`sparsity-lab student`) runs end to end in a fresh kernel: each exercise reads "not
attempted yet", nothing raises, and the solutions are withheld."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from sparsity_lab.exercises import for_lesson
from sparsity_lab.student import write_student_copies

LESSONS = sorted((Path(__file__).resolve().parents[2] / "lessons").glob("*.ipynb"))


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_lessons_student_copy_runs_and_every_exercise_reads_not_attempted(path, tmp_path):
    """The reveal of the solutions sits in a hidden-test region, which the copy has lost."""
    write_student_copies(path, tmp_path)
    copy = nbformat.read(tmp_path / path.name, as_version=4)
    copy.cells.append(new_code_cell("for e in ex:\n    e.solution()"))
    NotebookClient(copy, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()
    printed = "\n".join(_stdout(c) for c in copy.cells if c.cell_type == "code")
    names = [e.name for e in for_lesson(path.name[:2])]
    for name in names:
        assert f"{name}: not attempted yet" in printed, f"{path.name}: {name} did not read as not attempted"
    assert printed.count("withheld") == len(names)
    assert "reveal_solutions" not in "".join(c.source for c in copy.cells)
    assert not any(o.output_type == "error" for c in copy.cells if c.cell_type == "code" for o in c.outputs)
