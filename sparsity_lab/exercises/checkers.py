"""How an answer is checked: the blank, comparisons that say what differs, and the checkers an exercise uses
(`Value`, `Range`, `Record`, `Holds`, `AllOf`, `Function` with its `Case`s). Each checker is a callable
answer → None if right, else a message for the learner."""

from __future__ import annotations

import copy
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


# The last zero-argument answer called and what it returned: a check cell checks an experiment, then its hidden
# assertion checks the same function object again; the experiment runs once and both see the same measurement.
_LAST_RUN: list = [None, None]


def _resolve(answer: Any) -> Any:
    """The answer itself; a zero-argument function is called (the form a student copy's stub leaves), once per
    function object in a row."""
    if answer is BLANK:
        raise _NotAttempted
    if callable(answer) and not isinstance(answer, torch.Tensor):
        if _LAST_RUN[0] is answer:
            return _LAST_RUN[1]
        function = answer
        try:
            answer = function()
        except NotImplementedError:
            raise _NotAttempted from None
        except Exception as error:
            raise _Rejected(f"your function raised {type(error).__name__}: {error}") from None
        if answer is BLANK:
            raise _NotAttempted
        _LAST_RUN[:] = [function, answer]
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


def diagnosed(check: Function, mistakes: Sequence[tuple[Callable, str]]) -> Callable[[Any], str | None]:
    """`check`, with the explanation of the first known mistake — a (function, why) pair — whose results a wrong
    answer reproduces on `check`'s cases, appended to check's own message."""
    def diagnose(answer: Any) -> str | None:
        problem = check(answer)
        if problem is None:
            return None
        for mistake, why in mistakes:
            if Function(mistake, check.cases, check.atol, check.rtol)(answer) is None:
                return f"{problem}. {why}"
        return problem
    return diagnose
