"""Exercises of lesson 11, a fair benchmark of every method: the Pareto front by hand, the method to pick for a
latency budget, and a case where FLOPs mislead.

Blalock et al. (2020) found pruning papers hard to compare: different networks, data and budgets, FLOPs reported
where time was meant, single runs where the spread between seeds is as large as the gains claimed. The benchmark
runs every method on one footing and keeps one record per method × setting × seed
(`methods_bench.load_bench()["records"]`): test error, FLOPs three ways, measured latency.

q1 (implement)   front(points): the indices of the (error, cost) pairs that no other pair dominates
q2 (compute)     pick_for_budget(records, min_speedup): among the settings whose mean large-batch speed-up is at
                 least min_speedup, the (method, value) with the lowest mean test error
q3 (explain)     flops_mislead(records): the (method, value) whose nonzero-FLOP reduction exceeds its measured
                 large-batch speed-up by the largest factor; then, in words, why

D. Blalock, J. J. Gonzalez Ortiz, J. Frankle, J. Guttag. What is the State of Neural Network Pruning? MLSys 2020.
"""

from __future__ import annotations

import inspect
import math
import random

from . import Case, Exercise, Function, diagnosed


# q1: the reference is brute force, every pair against every other; the example sweeps once, sorted.
def _dominates(a, b) -> bool:
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def _reference_front(points) -> list[int]:
    return [i for i, p in enumerate(points) if not any(_dominates(q, p) for q in points)]


def front(points) -> list[int]:
    """The ascending indices of the (error, cost) pairs no other pair dominates (lower is better on both). Sorted
    by (error, cost), a point is on the front when it is cheaper than everything before it, or equal to the point
    just kept (equal points are all kept)."""
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    kept, cheapest = [], math.inf
    for i in order:
        if points[i][1] < cheapest or (kept and tuple(points[i]) == tuple(points[kept[-1]])):
            kept.append(i)
            cheapest = min(cheapest, points[i][1])
    return sorted(kept)


def _sweep_by_error(points) -> list[int]:
    """The one-pass sweep, sorted by error alone: a dearer point of equal error can come first and stay."""
    kept, cheapest = [], math.inf
    for i in sorted(range(len(points)), key=lambda i: points[i][0]):
        if points[i][1] < cheapest or (kept and tuple(points[i]) == tuple(points[kept[-1]])):
            kept.append(i)
            cheapest = min(cheapest, points[i][1])
    return sorted(kept)


Q1_MISTAKES = (
    (lambda points: [points[i] for i in _reference_front(points)],
     "It returns the points themselves: return their indices in `points`."),
    (lambda points: [i for i, p in enumerate(points) if not any(q[0] < p[0] and q[1] < p[1] for q in points)],
     "It counts a point as dominated only when another is strictly better on both: a point no worse on both and "
     "better on one dominates too, so (1, 5) loses to (1, 3)."),
    (lambda points: [i for i, p in enumerate(points)
                     if not any(j != i and q[0] <= p[0] and q[1] <= p[1] for j, q in enumerate(points))],
     "Equal points vanish: a point equal to another is not dominated by it (it is not better on either), so every "
     "copy of a front point stays."),
    (lambda points: sorted({tuple(points[i]): i for i in reversed(_reference_front(points))}.values()),
     "It keeps one copy of equal points: keep them all (two settings can tie)."),
    (lambda points: _reference_front([(-e, -c) for e, c in points]),
     "It keeps the largest values: lower error and lower cost are better."),
    (lambda points: sorted(_reference_front(points), key=lambda i: tuple(points[i])),
     "The indices are in sweep order: return them in ascending order."),
    (lambda points: [i + 1 for i in _reference_front(points)], "The indices count from 1: Python's count from 0."),
    (_sweep_by_error, "The sweep sorts by error alone: among equal errors the cheaper point must come first (sort by "
                      "(error, cost)), or a dearer twin is kept."),
)


def _q1_cases() -> list[Case]:
    hand = [([(1.0, 5.0)], "one point"), ([], "no points"),
            ([(1, 5), (2, 3), (3, 4), (4, 1), (5, 5)], "five points, three on the front"),
            ([(1, 5), (1, 3), (2, 2)], "equal errors: (1, 3) dominates (1, 5)"),
            ([(2, 2), (1, 3), (2, 2), (3, 1), (3, 3)], "a duplicate on the front"),
            ([(2, 5), (2, 1), (2, 3)], "a vertical line: one error"),
            ([(4, 2), (1, 2), (3, 2)], "a horizontal line: one cost"),
            ([(1.5, 1.5)] * 3, "three equal points")]
    rng = random.Random(11)
    for n in (12, 30, 60):                     # on or above the line error + cost = 4, on a half-grid: many ties
        errors = [rng.randint(0, 8) / 2 for _ in range(n)]
        hand.append(([(e, 4 - e + rng.randint(0, 4) / 2) for e in errors], f"{n} random points"))
    return [Case((points,), label) for points, label in hand]


# q2 and q3 read records; the references average them in plain Python, as methods_bench.averaged does.
DENSE_FLOPS = 266200          # LeNet-300-100's multiply-adds per image
MIN_SPEEDUP_Q2 = 3.0
_MEANS = ("test_error", "speedup_b1", "speedup_large", "flops_dense", "flops_compact", "flops_nonzero")


def _means(records) -> dict:
    """(method, value) → the mean of each measured field over that setting's successful seeds."""
    groups = {}
    for r in records:
        if r["status"] == "ok":
            groups.setdefault((r["method"], r["value"]), []).append(r)
    return {key: {f: sum(r[f] for r in rs) / len(rs) for f in _MEANS} for key, rs in groups.items()}


def _pick_variant(speed="speedup_large", budget=True, by="test_error", seeds="mean", strict=False):
    """pick_for_budget, right with the defaults; each other argument makes a known mistake."""
    def pick(records, min_speedup):
        if seeds == "mean":
            rows = list(_means(records).items())
        else:
            ok = [r for r in records if r["status"] == "ok"]
            first = min(r["seed"] for r in ok)
            rows = [((r["method"], r["value"]), r) for r in ok if seeds == "best run" or r["seed"] == first]
        fast = [(k, r) for k, r in rows
                if not budget or (r[speed] > min_speedup if strict else r[speed] >= min_speedup)]
        return min(fast, key=lambda kr: kr[1][by])[0]
    return pick


_reference_pick = _pick_variant()


def pick_for_budget(records, min_speedup):
    """The (method, value) with the lowest mean test error among the settings whose mean speed-up at the large
    batch is at least `min_speedup`: average over seeds first (a lucky seed is not a method), then filter, then
    choose by error."""
    from sparsity_lab.experiments.methods_bench import averaged

    rows = averaged(records)
    fast = rows[rows["speedup_large"] >= min_speedup]
    best = fast.loc[fast["error"].idxmin()]
    return best["method"], best["value"]


Q2_MISTAKES = (
    (_pick_variant(speed="speedup_b1"), "It uses the batch-1 speed-up: the budget is at the large batch "
                                        "(speedup_large), where the arithmetic, not the call overhead, sets the time."),
    (_pick_variant(budget=False), "It ignores the budget: first keep the settings whose mean speedup_large is at "
                                  "least min_speedup, then take the lowest error among them."),
    *((_pick_variant(by=flops), "It picks the fewest FLOPs: among the settings that meet the budget, pick the "
                                "lowest mean test error; FLOPs are what the budget already bounds.")
      for flops in ("flops_nonzero", "flops_compact")),
    (_pick_variant(seeds="best run"), "It picks the best single run: average each setting's seeds first (a lucky "
                                      "seed is not a better method), e.g. with methods_bench.averaged(records)."),
    (_pick_variant(seeds="seed 0"), "It reads one seed only: average each setting over all its seeds."),
    (_pick_variant(strict=True), "A speed-up exactly at the budget meets it: keep speedup_large >= min_speedup."),
)


def _record(method, value, seed, error, large, b1, nonzero, compact) -> dict:
    """One hand-made benchmark record, with the fields methods_bench writes."""
    fastest = "compact" if compact == nonzero else "csr"
    return {"model": "lenet-300-100", "method": method, "family": method.split("-")[0], "structured":
            compact == nonzero, "knob": "none" if value is None else "sparsity", "value": value, "seed": seed,
            "status": "ok", "message": "", "test_error": error, "sparsity": 1 - nonzero / DENSE_FLOPS,
            "units": [784, 300, 100, 10], "params_dense": 266610, "params_compact": compact + 410,
            "params_nonzero": nonzero + 410, "flops_dense": DENSE_FLOPS, "flops_compact": compact,
            "flops_nonzero": nonzero, "speedup_b1": b1, "speedup_large": large, "fastest_b1": fastest,
            "fastest_large": fastest, "large_batch": 1000, "epochs": 20}


def _records(rows) -> list[dict]:
    """Records for rows (method, value, errors per seed, large-batch speed-up, batch-1 speed-up, nonzero FLOPs,
    compact FLOPs): the large-batch speed-up varies ±5% across seeds unless given per seed; one failed run added."""
    out = [_record(m, v, seed, e, large[seed] if isinstance(large, tuple) else large * (0.95 + 0.05 * seed),
                   b1, nz, c) for m, v, errors, large, b1, nz, c in rows for seed, e in enumerate(errors)]
    return [*out, {"model": "lenet-300-100", "method": "obs", "family": "obs", "structured": False, "knob":
                   "sparsity", "value": 0.9, "seed": 0, "status": "error", "message": "RuntimeError: out of memory"}]


D = DENSE_FLOPS
Q2_TABLES = (
    (_records([("dense", None, (2.3, 2.4, 2.2), 1.0, 1.0, D, D),
               ("obd", 0.5, (2.1, 2.0, 2.2), 1.1, 1.0, 133100, 250000),
               ("magnitude-weight-global", 0.9, (2.2, 2.3, 2.1), 1.4, 3.5, 26620, 210000),
               ("l0-neurons", 0.9, (2.5, 2.6, 2.7), 4.0, 1.2, 24000, 24000),
               ("ssl-neurons", 0.8, (2.1, 3.1, 3.2), 5.0, 1.5, 40000, 40000),
               ("magnitude-neuron-layer", 0.95, (5.8, 6.0, 6.2), 12.0, 2.0, 8000, 8000)]), 3.0),
    (_records([("dense", None, (1.9, 2.0, 2.1), 1.0, 1.0, D, D),
               ("snip", 0.8, (2.2, 2.4, 2.3), (2.0, 2.0, 2.0), 0.9, 53240, 200000),
               ("snip", 0.95, (2.9, 3.0, 3.1), 2.6, 1.1, 13310, 150000),
               ("set", 0.9, (1.9, 2.0, 1.95), 1.5, 2.5, 26620, D),
               ("sbp-neurons", 0.97, (4.0, 2.0, 4.2), 9.0, 1.3, 5000, 5000)]), 2.0),
)


def _q2_cases() -> list[Case]:
    return [Case(Q2_TABLES[0], "six settings, three seeds each, a failed run, min_speedup 3.0"),
            Case(Q2_TABLES[1], "one setting exactly at min_speedup 2.0")]


# q3: the promise of an ideal sparse kernel, flops_dense / flops_nonzero, over what the clock measured.
def _mislead_variant(flops="flops_nonzero", speed="speedup_large", score="ratio", skip_empty=True):
    """flops_mislead, right with the defaults; each other argument makes a known mistake."""
    def worst(records):
        scores = {}
        for key, r in _means(records).items():
            if r["flops_nonzero"] == 0 and skip_empty:
                continue
            promise = r["flops_dense"] / r[flops] if r[flops] else math.inf
            scores[key] = {"ratio": promise / r[speed], "promise": promise, "inverse": r[speed] / promise}[score]
        return max(scores, key=scores.get)
    return worst


_reference_mislead = _mislead_variant()


def flops_mislead(records):
    """The (method, value) whose promised FLOP reduction, flops_dense / flops_nonzero, exceeds its measured
    large-batch speed-up by the largest factor (settings averaged over seeds; none without nonzero FLOPs)."""
    from sparsity_lab.experiments.methods_bench import averaged

    rows = averaged(records)
    rows = rows[rows["flops_nonzero"] > 0]
    factor = rows["flops_dense"] / rows["flops_nonzero"] / rows["speedup_large"]
    worst = rows.loc[factor.idxmax()]
    return worst["method"], worst["value"]


Q3_MISTAKES = (
    (_mislead_variant(flops="flops_compact"), "It uses flops_dense / flops_compact, what compaction promises: the "
                                              "promise that misleads is the nonzero count, what an ideal sparse "
                                              "kernel would compute."),
    (_mislead_variant(speed="speedup_b1"), "It divides by the batch-1 speed-up: use speedup_large, where the "
                                           "arithmetic dominates the time."),
    (_mislead_variant(score="promise"), "It picks the largest promise alone: divide it by the measured speed-up; "
                                        "the question is where the clock falls shortest of the promise."),
    (_mislead_variant(score="inverse"), "It picks where the measured speed-up beats the promise most: the ratio "
                                        "is upside down (promise / speed-up, the largest)."),
    (_mislead_variant(skip_empty=False), "It keeps a setting with no nonzero FLOPs left (an infinite promise): skip "
                                         "it; a network with no weights has no promise to measure."),
)

Q3_TABLES = (
    _records([("dense", None, (2.0, 2.1, 2.2), 1.05, 1.0, D, D),
              ("magnitude-weight-global", 0.9, (2.1, 2.2, 2.3), 1.3, 0.9, 26620, 210000),
              ("magnitude-weight-global", 0.98, (2.9, 3.0, 3.1), 2.0, 1.6, 5324, 160000),
              ("snip", 0.99, (4.9, 5.0, 5.1), 6.0, 2.0, 2662, 120000),
              ("l0-neurons", 0.9, (2.3, 2.4, 2.5), 15.0, 1.5, 20000, 20000),
              ("magnitude-neuron-global", 0.9, (90.0, 90.2, 90.1), 250.0, 2.8, 0, 12)]),
    _records([("dense", None, (2.0, 2.1, 2.2), 1.05, 1.0, D, D),
              ("set", 0.95, (2.5, 2.6, 2.7), 1.5, 4.0, 13310, D),
              ("snip", 0.98, (3.5, 3.6, 3.7), 5.0, 1.0, 5324, 200000),
              ("magnitude-weight-global", 0.99, (4.5, 4.6, 4.7), 12.0, 8.0, 2662, 150000),
              ("l0-neurons", 0.95, (3.0, 3.1, 3.2), 8.0, 2.0, 13310, 13310),
              ("ssl-neurons", 0.9, (2.4, 2.5, 2.6), 12.0, 2.0, 26620, 26620)]),
)


def _q3_cases() -> list[Case]:
    return [Case((Q3_TABLES[0],), "six settings, a network with every weight gone, a failed run"),
            Case((Q3_TABLES[1],), "six settings, SET among them")]


Q3_EXPLANATION = """\
Only a sparse kernel skips zeros, and CSR pays several times a dense multiply-add per nonzero (an index to load, a
scattered read, no vector blocks), so 50× fewer nonzero FLOPs buy a few times the speed at best. A dense (or
masked) kernel multiplies the zeros like any other weight: it skips nothing. Compaction helps only when whole units
go, and unstructured zeros leave almost every unit a nonzero: the compact network is nearly dense. Structured
methods remove units, so their compact FLOPs are their nonzero FLOPs, and a dense kernel on smaller matrices
delivers most of the promise. FLOPs are a budget; time is a measurement: report both (Blalock et al. 2020)."""

EXERCISES = [
    Exercise(
        "q1",
        "Write front(points): points is a list of (error, cost) pairs, lower better on both. Return the ascending "
        "list of the indices of the points that no other point dominates (a dominates b when a is no worse on both "
        "and strictly better on one). Equal points do not dominate each other: keep every copy.",
        diagnosed(Function(_reference_front, _q1_cases()), Q1_MISTAKES),
        hints=("A point is off the front when some other point is at least as good on both and better on one; "
               "equal points are neither. Start with a loop over every pair.",
               "keep i unless any(q[0] <= p[0] and q[1] <= p[1] and (q[0] < p[0] or q[1] < p[1]) for q in points), "
               "with p = points[i]; or sort by (error, cost) and sweep once, keeping each point cheaper than all "
               "before it."),
        why="Only a front point can be anyone's best choice: off the front, another point is no worse on both "
            "costs, whatever the trade-off between them.",
        example=front,
        wrong_answers=tuple(m for m, _ in Q1_MISTAKES),
    ),
    Exercise(
        "q2",
        "Write pick_for_budget(records, min_speedup) -> (method, value): records are benchmark records, one per "
        "method × setting × seed (some with status 'error': skip them). Average each (method, value) over its "
        "seeds; among the settings whose mean speedup_large is at least min_speedup, return the (method, value) "
        "of the one with the lowest mean test_error. (The lesson's budget is MIN_SPEEDUP_Q2 = 3.0.)",
        diagnosed(Function(_reference_pick, _q2_cases()), Q2_MISTAKES),
        hints=("Three steps, in order: average over seeds, keep what meets the budget at the large batch, choose by "
               "error.",
               "rows = methods_bench.averaged(records) (mean 'error', 'speedup_large' per setting); fast = "
               "rows[rows['speedup_large'] >= min_speedup]; best = fast.loc[fast['error'].idxmin()]."),
        why="A budget is a constraint and error the objective: filter by the budget, then minimise error over "
            "means, since one seed's luck is not a method's merit (Blalock et al. 2020).",
        example=pick_for_budget,
        wrong_answers=tuple(m for m, _ in Q2_MISTAKES),
    ),
    Exercise(
        "q3",
        "Write flops_mislead(records) -> (method, value): average each (method, value) over its successful seeds; "
        "for each setting with flops_nonzero > 0, divide the FLOP reduction an ideal sparse kernel promises, "
        "flops_dense / flops_nonzero, by the measured speedup_large; return the setting with the largest factor. "
        "Then explain in the markdown cell why the promise and the clock disagree there.",
        diagnosed(Function(_reference_mislead, _q3_cases()), Q3_MISTAKES),
        hints=("The promise counts only nonzeros; ask which kernel would have to skip the zeros, and what it pays "
               "per nonzero.",
               "rows = averaged(records); rows = rows[rows['flops_nonzero'] > 0]; factor = rows['flops_dense'] / "
               "rows['flops_nonzero'] / rows['speedup_large']; take the row of factor.idxmax()."),
        why="Unstructured zeros cut the nonzero FLOPs that no dense kernel skips; only units removed whole make the "
            "matrices a dense kernel multiplies smaller.",
        solution=inspect.getsource(flops_mislead) + "\nWhy (the markdown answer):\n" + Q3_EXPLANATION,
        example=flops_mislead,
        wrong_answers=tuple(m for m, _ in Q3_MISTAKES),
    ),
]
