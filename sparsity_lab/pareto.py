"""The Pareto front: the points no other point beats on every cost at once.

With two costs to minimise — test error and FLOPs, or test error and measured latency — point a *dominates* point b
when a is no worse on both and strictly better on one. The front is every point nothing dominates: the only ones a
user with some trade-off in mind could prefer. Sorting by the first cost makes it one pass: walking from the
cheapest, a point is on the front exactly when it is better on the second cost than everything cheaper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether a is no worse than b on every cost and strictly better on at least one (lower is better)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices (ascending) of the points of `points` — (cost 1, cost 2) pairs, lower better — that no other point
    dominates. Equal points are all kept; a point with a NaN cost is never on the front."""
    finite = [i for i, p in enumerate(points) if len(p) != 2 or not any(math.isnan(v) for v in p)]
    if any(len(points[i]) != 2 for i in finite):
        raise ValueError("pareto_front takes (cost 1, cost 2) pairs")
    order = sorted(finite, key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    last = None
    for i in order:
        x, y = points[i]
        if y < best or (last is not None and (x, y) == tuple(points[last])):
            front.append(i)
            best, last = min(best, y), i
    return sorted(front)
