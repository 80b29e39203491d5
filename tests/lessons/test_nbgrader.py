"""nbgrader itself on a real lesson: `nbgrader generate_assignment` makes the student copy `sparsity-lab student`
makes, and `nbgrader autograde` scores a wrong submission below a right one (every autograded point for the right
one, none for the wrong one)."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from sparsity_lab.student import student_notebook

pytest.importorskip("nbgrader")
from nbgrader.api import Gradebook  # noqa: E402 (only once nbgrader is known to be installed)

LESSON = Path(__file__).resolve().parents[2] / "lessons" / "00_why_structured_sparsity.ipynb"
ASSIGNMENT = "lesson00"
WRONG = {  # one plausible mistake per exercise, in the lesson's own function names
    "q1": "def flops_by_hand():\n    return 30, 30",
    "q2": "def neuron_mask(weight, sparsity, axis):\n    return torch.ones_like(weight, dtype=torch.bool)",
    "q3": "def measure_batch_speedups():\n    return {'batch_1': 9.9, 'batch_1024': 9.9}",
}


def nbgrader(course: Path, *args: str) -> None:
    """Run an nbgrader command in the course folder; nbgrader calls `alembic` from PATH, so the interpreter's own
    bin folder goes first."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def grade_ids(nb) -> dict[str, int]:
    return {c.metadata["nbgrader"]["grade_id"]: k for k, c in enumerate(nb.cells) if "nbgrader" in c.metadata}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    (course / "source" / ASSIGNMENT / LESSON.name).write_bytes(LESSON.read_bytes())
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'sparsity-lab'\n"
        f"c.CourseDirectory.db_assignments = [dict(name={ASSIGNMENT!r})]\n"
        "c.CourseDirectory.db_students = [dict(id='wrong'), dict(id='right')]\n"
        "c.ExecutePreprocessor.timeout = 600\n")
    nbgrader(course, "generate_assignment", ASSIGNMENT)
    return course


def test_nbgrader_and_sparsity_lab_student_make_the_same_student_copy(course):
    released = nbformat.read(course / "release" / ASSIGNMENT / LESSON.name, as_version=4)
    ours = student_notebook(nbformat.read(LESSON, as_version=4), LESSON.name)[0]
    assert len(released.cells) == len(ours.cells)
    for k, (theirs, mine) in enumerate(zip(released.cells, ours.cells, strict=True)):
        assert theirs.source.strip() == mine.source.strip(), f"cell {k} differs"


def test_autograde_scores_a_wrong_submission_below_a_right_one(course):
    source = nbformat.read(LESSON, as_version=4)
    released = nbformat.read(course / "release" / ASSIGNMENT / LESSON.name, as_version=4)
    ids = grade_ids(released)
    for student in ("wrong", "right"):
        submission = nbformat.from_dict(released)
        for name in ("q1", "q2", "q3"):
            answer = source.cells[ids[name]].source if student == "right" else WRONG[name]
            submission.cells[ids[name]].source = answer
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(submission, folder / LESSON.name)
    nbgrader(course, "autograde", ASSIGNMENT)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: {g.name: g.score for nb in gradebook.find_submission(ASSIGNMENT, s).notebooks for g in nb.grades}
                  for s in ("wrong", "right")}
    checks = [f"{name}-check" for name in ("q1", "q2", "q3")]
    assert [scores["right"][c] for c in checks] == [1, 1, 1], scores["right"]
    assert [scores["wrong"][c] for c in checks] == [0, 0, 0], scores["wrong"]
    assert sum(scores["wrong"].values()) < sum(scores["right"].values())
