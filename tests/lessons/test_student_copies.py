"""Every lesson's student copy (`sparsity-lab student`) runs end to end in a fresh kernel: each exercise reads "not
attempted yet", nothing raises, and the solutions are withheld.

Where the browser tests run (Chromium installed, and always in CI), they run each student copy in JupyterLab and
check exactly this, so these tests skip rather than run every lesson a third time. Elsewhere the copies run here,
two at a time (each kernel trains with one thread), once per session; each lesson's test reads its own copy."""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from sparsity_lab.exercises import for_lesson
from sparsity_lab.student import write_student_copies

LESSONS = sorted((Path(__file__).resolve().parents[2] / "lessons").glob("*.ipynb"))
WORKERS = 2
BROWSER = (Path(os.environ.get("SPARSITY_LAB_CHROMIUM", "/usr/bin/chromium")).exists()
           or os.environ.get("CI", "").lower() == "true")
pytestmark = pytest.mark.skipif(BROWSER, reason="the browser tests run every student copy in JupyterLab and check "
                                                "it (tests/browser); without Chromium this file runs them")


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def _run_copy(path: Path, folder: Path):
    """The student copy of `path`, executed, with a last cell that asks every exercise for its solution; or the
    exception its execution raised."""
    write_student_copies(path, folder)
    copy = nbformat.read(folder / path.name, as_version=4)
    copy.cells.append(new_code_cell("for e in ex:\n    e.solution()"))
    try:
        NotebookClient(copy, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
                       ).execute()
    except Exception as error:  # reported by the lesson's own test
        return error
    return copy


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folders = {p: tmp_path_factory.mktemp(p.stem) for p in LESSONS}
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {p: pool.submit(_run_copy, p, folder) for p, folder in folders.items()}
        return {p: f.result() for p, f in futures.items()}


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_lessons_student_copy_runs_and_every_exercise_reads_not_attempted(path, executed):
    """The reveal of the solutions sits in a hidden-test region, which the copy has lost."""
    copy = executed[path]
    if isinstance(copy, Exception):
        raise copy
    printed = "\n".join(_stdout(c) for c in copy.cells if c.cell_type == "code")
    names = [e.name for e in for_lesson(path.name[:2])]
    for name in names:
        assert f"{name}: not attempted yet" in printed, f"{path.name}: {name} did not read as not attempted"
    assert printed.count("withheld") == len(names)
    assert "reveal_solutions" not in "".join(c.source for c in copy.cells)
    assert not any(o.output_type == "error" for c in copy.cells if c.cell_type == "code" for o in c.outputs)
