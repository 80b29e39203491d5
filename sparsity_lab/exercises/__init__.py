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
                 hint="Count the entries that are not 0.", solution="3: the 2, the 1 and the 3.", example=3,
                 wrong_answers=(9, 2)),                    # the dense count; a miscount
        Exercise("q2", "Write relu(x).",
                 Function(torch.relu, [Case((torch.tensor([-1., 0., 2.]),)), Case((torch.ones(0),), "[]")]),
                 hint="Negative entries become 0.", example=_example_relu,
                 wrong_answers=(torch.abs, lambda x: x)),
        Exercise("q3", "Measure the speed-up of ... and report it.",
                 Range(low=0.5, high=1.3, what="the speed-up", why="a masked matmul does the same work"),
                 hint="...", solution="...", example=1.0, wrong_answers=(4.0, 0.1)),
    ]

In the notebook the answer cell holds the solution between nbgrader's markers and keeps a hidden assertion, so
the lesson's test fails if the reference stops accepting the solution:

    def relu(x):
        ### BEGIN SOLUTION
        return x.clamp(min=0)
        ### END SOLUTION

    ex.q2.check(relu)
    ### BEGIN HIDDEN TESTS
    assert ex.q2.check(relu, quiet=True)
    ### END HIDDEN TESTS
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
    show,
)


class Exercise:
    """One exercise: a `name` (q1), the `prompt`, a `checker` (Value, Function, Range, Record, or any callable
    answer → None if right else a message), a `hint`, a `solution` (text; by default the source of `example`),
    a correct `example` answer and the plausible `wrong_answers` that the tests make sure are rejected."""

    def __init__(self, name: str, prompt: str, checker: Callable[[Any], str | None], *, hint: str = "",
                 solution: str | None = None, example: Any = None, wrong_answers: Sequence[Any] = ()):
        if solution is None and callable(example):
            solution = inspect.getsource(example)
        if not solution:
            raise ValueError(f"exercise {name!r}: give a solution text or an example function")
        self.name, self.prompt, self.checker = name, prompt, checker
        self.example, self.wrong_answers = example, tuple(wrong_answers)
        self.hint_text, self.solution_text = hint, solution

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
            return Verdict(True, f"✓ {self.name}: correct.")
        stop = "" if problem.endswith((".", "!", "?")) else "."
        return Verdict(False, f"✗ {self.name}: {problem}{stop} (ex.{self.name}.hint() gives a hint.)")

    def check(self, answer: Any, quiet: bool = False) -> bool:
        """Print ✓ or what is wrong (unless `quiet`); return whether `answer` is right. Never raises."""
        result = self.verdict(answer)
        if not quiet:
            print(result.message)
        return result.ok

    def hint(self) -> None:
        """Print a hint."""
        print(f"Hint ({self.name}): {self.hint_text or 'none for this one; look back at the Build it section.'}")

    def solution(self) -> None:
        """Print the solution."""
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
           "Range", "Record", "Value", "Verdict", "compare", "for_lesson", "lesson_modules", "show", "____"]
