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

import copy
import importlib
import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


class _Blank:
    """The visible blank in a starter cell; checking it reads as "not attempted yet"."""

    def __repr__(self) -> str:
        return "____"


____ = BLANK = _Blank()
NOT_ATTEMPTED = "not attempted yet"


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one answer: `ok`, and the message shown to the learner."""

    ok: bool
    message: str
    attempted: bool = True

    def __bool__(self) -> bool:
        return self.ok


class _NotAttempted(Exception):
    """Raised inside a check when the answer is the blank or raises NotImplementedError."""


class _Rejected(Exception):
    """Raised inside a check when the learner's code fails; the message says how."""


def show(x: Any, limit: int = 120) -> str:
    """A short printable form of `x` for messages: small tensors in full, large ones as shape and dtype."""
    if isinstance(x, torch.Tensor):
        dtype = str(x.dtype).removeprefix("torch.")
        if x.numel() <= 24:
            text = f"tensor({x.tolist()}" + (f", dtype={dtype})" if x.dtype != torch.float32 else ")")
        else:
            text = f"tensor of shape {tuple(x.shape)}, dtype {dtype}"
    elif callable(x) and hasattr(x, "__name__"):
        text = f"function {x.__name__}"
    else:
        text = repr(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compare(expected: Any, got: Any, atol: float = 0.0, rtol: float = 0.0) -> str | None:
    """None when `got` matches `expected`, else a sentence saying how it differs.

    Tensors: same shape and kind (bool or numeric), values within atol + rtol·|expected|; numbers likewise;
    sequences and dicts item by item; strings ignoring case and surrounding blanks; anything else by ==."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__} {show(got)}"
        if got.shape != expected.shape:
            return f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
        if (expected.dtype == torch.bool) != (got.dtype == torch.bool):
            kind = "a bool tensor (True = kept)" if expected.dtype == torch.bool else "a numeric tensor"
            return f"expected {kind}, got dtype {got.dtype}"
        if expected.dtype == torch.bool:
            bad = got != expected
        else:
            e, g = expected.double(), got.double()
            bad = ~torch.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
        if bad.any():
            where = tuple(int(i) for i in bad.nonzero()[0])
            return (f"{int(bad.sum())} of {bad.numel()} entries differ; the first at index {where}: "
                    f"expected {show(expected[where].item())}, got {show(got[where].item())}")
        return None
    if isinstance(expected, bool) or expected is None:
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        return None if got is expected else f"expected {expected}, got {show(got)}"
    if isinstance(expected, int | float):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Real):  # numpy scalars are Real too
            return f"expected a number ({show(expected)}), got {type(got).__name__} {show(got)}"
        if math.isclose(got, expected, abs_tol=atol, rel_tol=rtol) or got == expected:
            return None
        return f"expected {show(expected)}, got {show(got)}"
    if isinstance(expected, str):
        if isinstance(got, str) and got.strip().casefold() == expected.strip().casefold():
            return None
        return f"expected {expected!r}, got {show(got)}"
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping):
            return f"expected a dict with keys {sorted(expected)}, got {type(got).__name__} {show(got)}"
        if set(got) != set(expected):
            return f"expected the keys {sorted(map(str, expected))}, got {sorted(map(str, got))}"
        for key in expected:
            problem = compare(expected[key], got[key], atol, rtol)
            if problem:
                return f"[{key!r}]: {problem}"
        return None
    if isinstance(expected, Sequence):
        if not isinstance(got, Sequence) or isinstance(got, str):
            return f"expected a sequence of {len(expected)}, got {type(got).__name__} {show(got)}"
        if len(got) != len(expected):
            return f"expected {len(expected)} items, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            problem = compare(e, g, atol, rtol)
            if problem:
                return f"item {i}: {problem}"
        return None
    return None if got == expected else f"expected {show(expected)}, got {show(got)}"


def _resolve(answer: Any) -> Any:
    """The answer itself; a zero-argument function is called (the form a student copy's stub leaves)."""
    if answer is BLANK:
        raise _NotAttempted
    if callable(answer) and not isinstance(answer, torch.Tensor):
        try:
            answer = answer()
        except NotImplementedError:
            raise _NotAttempted from None
        except Exception as error:
            raise _Rejected(f"your function raised {type(error).__name__}: {error}") from None
        if answer is BLANK:
            raise _NotAttempted
    return answer


@dataclass
class Value:
    """The answer is one value (a number, tensor, string, tuple, dict) equal to `expected` within atol/rtol.

    expected: the value, or a zero-argument function computing it (so it cannot drift from the lesson's data);
    mistakes: known wrong values → the explanation shown when the learner gives exactly that value."""

    expected: Any
    atol: float = 0.0
    rtol: float = 0.0
    mistakes: Mapping[Any, str] = field(default_factory=dict)

    def __call__(self, answer: Any) -> str | None:
        got = _resolve(answer)
        expected = self.expected() if callable(self.expected) else self.expected
        problem = compare(expected, got, self.atol, self.rtol)
        if problem is None:
            return None
        for value, why in self.mistakes.items():
            if compare(value, got, self.atol, self.rtol) is None:
                return f"{problem}. {why}"
        return problem


@dataclass
class Range:
    """The answer is a measured number between `low` and `high` (inclusive; None = unbounded).

    what: the quantity's name in messages ("the speed-up"); why: why the range is right, shown on failure."""

    low: float | None = None
    high: float | None = None
    what: str = "the answer"
    why: str = ""

    def __call__(self, answer: Any) -> str | None:
        got = _resolve(answer)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Real) or math.isnan(got):
            return f"expected {self.what} as a number, got {type(got).__name__} {show(got)}"
        if (self.low is None or got >= self.low) and (self.high is None or got <= self.high):
            return None
        bounds = (f"between {self.low:g} and {self.high:g}" if self.low is not None and self.high is not None
                  else f"at least {self.low:g}" if self.low is not None else f"at most {self.high:g}")
        return f"expected {self.what} {bounds}, got {got:g}" + (f" ({self.why})" if self.why else "")


@dataclass
class Record:
    """The answer is a dict whose named fields each pass their own check: Record({"dense": Range(0), ...})."""

    fields: Mapping[str, Callable[[Any], str | None]]

    def __call__(self, answer: Any) -> str | None:
        got = _resolve(answer)
        if not isinstance(got, Mapping):
            return f"expected a dict with keys {sorted(self.fields)}, got {type(got).__name__} {show(got)}"
        missing = [k for k in self.fields if k not in got]
        if missing:
            return f"the dict lacks the keys {missing} (it has {sorted(map(str, got))})"
        for key, check in self.fields.items():
            problem = check(got[key])
            if problem:
                return f"{key!r}: {problem}"
        return None


@dataclass
class Holds:
    """The answer satisfies `predicate(answer)`; otherwise `explain(answer)` says what is wrong, e.g.
    Holds(lambda a: a["large"] > a["small"], lambda a: f"expected large > small, got {a}")."""

    predicate: Callable[[Any], bool]
    explain: Callable[[Any], str]

    def __call__(self, answer: Any) -> str | None:
        got = _resolve(answer)
        return None if self.predicate(got) else self.explain(got)


@dataclass
class AllOf:
    """Every check in order, on one evaluation of the answer (an experiment runs once); the first problem wins."""

    checks: Sequence[Callable[[Any], str | None]]

    def __call__(self, answer: Any) -> str | None:
        got = _resolve(answer)
        return next((p for p in (check(got) for check in self.checks) if p), None)


@dataclass
class Case:
    """One input for a Function check: positional `args`, optional `kwargs`, and a label for messages."""

    args: tuple
    label: str | None = None
    kwargs: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.label:
            return self.label
        parts = [show(a, 60) for a in self.args] + [f"{k}={show(v, 60)}" for k, v in self.kwargs.items()]
        return "(" + ", ".join(parts) + ")"


@dataclass
class Function:
    """The answer is a function; on every case its result must match `reference`'s (see `compare`).

    Where the reference raises (e.g. ValueError for a sparsity of 1.5) the learner's function must raise the
    same exception type. A function that changes a tensor argument in place fails, naming the argument."""

    reference: Callable
    cases: Sequence[Case]
    atol: float = 0.0
    rtol: float = 0.0

    def __call__(self, answer: Any) -> str | None:
        if answer is BLANK:
            raise _NotAttempted
        if not callable(answer) or isinstance(answer, torch.Tensor):
            return f"expected a function, got {type(answer).__name__} {show(answer)}"
        for case in self.cases:
            on = f"on input {case.describe()}"
            try:
                expected = self.reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
            except Exception as error:  # the reference rejects this input: the answer must reject it too
                expected_error = error
            else:
                expected_error = None
            args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
            try:
                got = answer(*args, **kwargs)
            except NotImplementedError:
                raise _NotAttempted from None
            except Exception as error:
                if expected_error is not None and isinstance(error, type(expected_error)):
                    continue
                return f"{on}: your function raised {type(error).__name__}: {error}" + (
                    f" (expected a {type(expected_error).__name__})" if expected_error else "")
            if expected_error is not None:
                return (f"{on}: expected a {type(expected_error).__name__} ({expected_error}), "
                        f"got a result {show(got)}")
            for i, (before, after) in enumerate(zip(case.args, args, strict=True)):
                if isinstance(before, torch.Tensor) and compare(before, after) is not None:
                    return f"{on}: your function changed argument {i + 1} in place; work on a copy instead"
            problem = compare(expected, got, self.atol, self.rtol)
            if problem:
                return f"{on}: {problem}"
        return None


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
