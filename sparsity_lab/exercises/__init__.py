"""Classroom exercises that check themselves: `ex = for_lesson("00")`, then `ex.q1.check(answer)`,
`ex.q1.hint()`, `ex.q1.solution()`.

`check` compares the learner's answer with an independent reference (on several inputs, edge cases included,
when the answer is a function), prints ✓ or a specific message (what was expected, what was got, on which
input) and returns True or False. It never raises for a wrong answer. The blank `____`, and a function whose
body still reads `raise NotImplementedError()` (what `sparsity-lab student` leaves in place of a solution),
read as "not attempted yet".

A lesson's exercises live in `sparsity_lab/exercises/lessonNN.py` as a list named `EXERCISES`; each exercise
declares the plausible wrong answers it must reject, and tests/unit/test_exercises.py checks every lesson
module: the example answer passes and every listed wrong answer fails. A complete lesson module:

    import torch
    from sparsity_lab.exercises import Case, Exercise, Function, Range, Value

    W = torch.tensor([[0., 2., 0.], [0., 0., 0.], [1., 0., 3.]])

    def _example_relu(x: torch.Tensor) -> torch.Tensor:   # ex.q2.solution() prints this function's source
        return x.clamp(min=0)

    EXERCISES = [
        Exercise("q1", "How many nonzero weights does W have?",
                 Value(lambda: int((W != 0).sum())),       # computed, so it cannot drift from W
                 hints=("Zeros do not count.", "Count the entries that are not 0."),   # a nudge, then the method
                 why="Only nonzeros are multiplied by a sparse kernel.",               # printed with the ✓
                 solution="3: the 2, the 1 and the 3.", example=3,
                 wrong_answers=(9, 2)),                    # the dense count; a miscount
        Exercise("q2", "Write relu(x).",
                 Function(torch.relu, [Case((torch.tensor([-1., 0., 2.]),)), Case((torch.ones(0),), "[]")]),
                 hints=("Look at the sign of each entry.", "Negative entries become 0."),
                 why="relu keeps positive entries and zeroes the rest.", example=_example_relu,
                 wrong_answers=(torch.abs, lambda x: x)),
        Exercise("q3", "Measure the speed-up of ... and report it.",
                 Range(low=0.5, high=1.3, what="the speed-up", why="a masked matmul does the same work"),
                 hints=("...", "..."), why="...", solution="...", example=1.0, wrong_answers=(4.0, 0.1)),
    ]

In the notebook each exercise is nbgrader cells: the answer cell (an nbgrader solution cell) holds the solution
between nbgrader's markers, and the check cell after it (an autograded, read-only test cell) keeps a hidden
assertion, so the lesson's test fails if the reference stops accepting the solution, and `nbgrader autograde`
scores a submission by it:

    def relu(x):                                   # solution cell
        ### BEGIN SOLUTION
        return x.clamp(min=0)
        ### END SOLUTION

    ex.q2.check(relu)                              # test cell
    ### BEGIN HIDDEN TESTS
    assert ex.q2.check(relu, quiet=True)
    ### END HIDDEN TESTS

The cell that makes `ex` reveals the solutions in a hidden-test region (`ex.reveal_solutions()`), so the full
lessons show them and student copies, which lose hidden tests, say they are withheld.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .checkers import (
    BLANK,
    NOT_ATTEMPTED,
    AllOf,
    Case,
    Function,
    Holds,
    Range,
    Record,
    Value,
    Verdict,
    ____,
    _NotAttempted,
    _Rejected,
    compare,
    diagnosed,
    show,
)

WITHHELD = ("the solution is withheld in this copy (an instructor's student copy); ask your instructor, or open the "
            "full lesson in lessons/, which shows it")


class Exercise:
    """One exercise: a `name` (q1), the `prompt`, a `checker` (Value, Function, Range, Record, or any callable
    answer → None if right else a message), `hints` in two tiers (a nudge, then the method), `why` (one line on
    why the right answer is right, printed with the ✓), a `solution` (text; by default the source of `example`),
    a correct `example` answer and the plausible `wrong_answers` that the tests make sure are rejected.

    `solution()` is withheld until `revealed` (LessonExercises.reveal_solutions, which the full lessons call in a
    hidden-test region that student copies lose)."""

    def __init__(self, name: str, prompt: str, checker: Callable[[Any], str | None], *,
                 hints: tuple[str, str] = ("", ""), why: str = "", solution: str | None = None,
                 example: Any = None, wrong_answers: Sequence[Any] = ()):
        if solution is None and callable(example):
            solution = inspect.getsource(example)
        if not solution:
            raise ValueError(f"exercise {name!r}: give a solution text or an example function")
        if isinstance(hints, str) or len(hints) != 2:
            raise ValueError(f"exercise {name!r}: hints must be two texts (a nudge, then the method), got {hints!r}")
        self.name, self.prompt, self.checker = name, prompt, checker
        self.example, self.wrong_answers = example, tuple(wrong_answers)
        self.hints, self.why, self.solution_text = tuple(hints), why, solution
        self.hints_given, self.revealed = 0, False

    def verdict(self, answer: Any) -> Verdict:
        """Check `answer` without printing: Verdict(ok, message, attempted)."""
        try:
            problem = self.checker(answer)
        except _NotAttempted:
            message = (f"{self.name}: {NOT_ATTEMPTED}: replace the blank (____ or "
                       "`raise NotImplementedError()`) with your answer, then run the cell again.")
            return Verdict(False, message, attempted=False)
        except _Rejected as rejected:
            problem = str(rejected)
        except Exception as error:  # a malformed answer can trip a checker; say so rather than raise
            problem = f"your answer could not be checked ({type(error).__name__}: {error})"
        if problem is None:
            return Verdict(True, f"✓ {self.name}: correct." + (f" {self.why}" if self.why else ""))
        stop = "" if problem.endswith((".", "!", "?")) else "."
        return Verdict(False, f"✗ {self.name}: {problem}{stop} (ex.{self.name}.hint() gives a hint.)")

    def check(self, answer: Any, quiet: bool = False) -> bool:
        """Print ✓ or what is wrong (unless `quiet`); return whether `answer` is right. Never raises."""
        result = self.verdict(answer)
        if not quiet:
            print(result.message)
        return result.ok

    def hint(self, tier: int | None = None) -> None:
        """Print a hint: the nudge the first time, the method from then on (or the `tier` asked for, 1 or 2)."""
        if tier is None:
            self.hints_given = min(self.hints_given + 1, 2)
            tier = self.hints_given
        if tier not in (1, 2):
            raise ValueError(f"tier must be 1 (a nudge) or 2 (the method), got {tier!r}")
        text = self.hints[tier - 1] or "none for this one; look back at the Build it section."
        more = " (ask again for the method)" if tier == 1 else ""
        print(f"Hint {tier} of 2 ({self.name}): {text}{more}")

    def solution(self) -> None:
        """Print the solution, or say that it is withheld (a student copy)."""
        if not self.revealed:
            print(f"Solution ({self.name}): {WITHHELD}.")
            return
        print(f"Solution ({self.name}):\n{self.solution_text.strip()}")

    def __repr__(self) -> str:
        return f"Exercise {self.name}: {self.prompt}"


class LessonExercises:
    """A lesson's exercises, by name as attributes (`ex.q1`) and in order when iterated."""

    def __init__(self, lesson: str, exercises: Sequence[Exercise]):
        names = [e.name for e in exercises]
        if len(set(names)) != len(names) or not all(n.isidentifier() for n in names):
            raise ValueError(f"lesson {lesson}: exercise names must be unique identifiers, got {names}")
        self.lesson = lesson
        self._by_name = {e.name: e for e in exercises}

    def __getattr__(self, name: str) -> Exercise:
        by_name = self.__dict__.get("_by_name", {})
        if name in by_name:
            return by_name[name]
        raise AttributeError(f"lesson {self.__dict__.get('lesson')} has no exercise {name!r}; "
                             f"it has {sorted(by_name)}")

    def __iter__(self):
        return iter(self._by_name.values())

    def reveal_solutions(self) -> LessonExercises:
        """Let `solution()` print the solutions (the full lessons call this; student copies do not)."""
        for exercise in self:
            exercise.revealed = True
        return self

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"Lesson {self.lesson} exercises:\n" + "\n".join(f"  {e!r}" for e in self)


def lesson_modules() -> list[str]:
    """The lesson numbers that have an exercises module here ("00", "01", ...), in order."""
    import pkgutil

    return sorted(m.name.removeprefix("lesson") for m in pkgutil.iter_modules(__path__)
                  if m.name.startswith("lesson") and m.name.removeprefix("lesson").isdigit())


def for_lesson(lesson: str | int) -> LessonExercises:
    """The exercises of lesson `lesson` ("00" or 0), from sparsity_lab/exercises/lessonNN.py's EXERCISES."""
    number = f"{int(lesson):02d}" if str(lesson).isdigit() else str(lesson)
    if number not in lesson_modules():
        raise ValueError(f"no exercises for lesson {lesson!r}; lessons with exercises: {lesson_modules()}")
    module = importlib.import_module(f"{__name__}.lesson{number}")
    return LessonExercises(number, module.EXERCISES)


__all__ = ["AllOf", "BLANK", "Case", "Exercise", "Function", "Holds", "LessonExercises", "NOT_ATTEMPTED",
           "Range", "Record", "Value", "Verdict", "compare", "diagnosed", "for_lesson", "lesson_modules", "show",
           "____"]
