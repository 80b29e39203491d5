"""Exercises of lesson 00, why structured sparsity: FLOPs by hand, a neuron mask, and a speed-up measurement.

q1 (by hand)     the nonzero and smallest-submatrix FLOPs of a small masked matrix (SSE, Zhang & Ou 2018)
q2 (implement)   a neuron mask: remove the rows or columns of smallest L2 norm
q3 (experiment)  the speed-up of a compacted neuron-pruned network at batch 1 vs batch 1024, and why
"""

from __future__ import annotations

import torch

from .. import cost, models
from ..methods.magnitude import magnitude_prune
from . import AllOf, Case, Exercise, Function, Holds, Range, Record, Value

# q1: 5 rows (this layer's neurons) × 6 columns (its inputs); three rows and three columns hold every nonzero.
W_Q1 = torch.tensor([[0.0, 0.5, 0.0, 0.0, -1.2, 0.0],
                     [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                     [0.0, 0.3, 0.0, 0.0, 0.0, 0.7],
                     [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                     [0.0, -0.8, 0.0, 0.0, 0.4, 0.0]])


def _q1_expected() -> tuple[int, int]:
    counts = cost.matrix_flops(W_Q1)
    return counts["nonzero"], counts["submatrix"]


def _reference_neuron_mask(weight: torch.Tensor, sparsity: float, axis: int) -> torch.Tensor:
    """The reference, written differently from the example: plain Python sort on (norm, index)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    groups = weight if axis == 0 else weight.t()
    norms = [float(sum(float(v) ** 2 for v in g) ** 0.5) for g in groups]
    removed = sorted(range(len(norms)), key=lambda i: (norms[i], i))[: round(sparsity * len(norms))]
    keep = torch.ones(len(norms), dtype=torch.bool)
    keep[removed] = False
    return (keep[:, None] if axis == 0 else keep[None, :]).expand(weight.shape).clone()


def neuron_mask(weight: torch.Tensor, sparsity: float, axis: int) -> torch.Tensor:
    """Bool mask of weight's shape (out, in), True = kept, removing the round(sparsity·n) rows (axis=0) or
    columns (axis=1) of smallest L2 norm."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    norms = weight.norm(dim=1 - axis)                  # one L2 norm per row (axis 0) or column (axis 1)
    k = round(sparsity * len(norms))                   # how many neurons to remove
    removed = torch.argsort(norms, stable=True)[:k]    # smallest first; ties: lower index first
    keep = torch.ones(len(norms), dtype=torch.bool)
    keep[removed] = False
    return keep[:, None].expand_as(weight) if axis == 0 else keep[None, :].expand_as(weight)


# Plausible wrong answers to q2, each one mistake away from neuron_mask.
def _mask_removing(weight: torch.Tensor, removed: torch.Tensor, axis: int) -> torch.Tensor:
    keep = torch.ones(weight.shape[axis], dtype=torch.bool)
    keep[removed] = False
    return keep[:, None].expand_as(weight) if axis == 0 else keep[None, :].expand_as(weight)


def _norms_along_the_wrong_axis(weight, sparsity, axis):
    norms = weight.norm(dim=axis)
    return _mask_removing(weight, torch.argsort(norms, stable=True)[: round(sparsity * len(norms))], axis)


def _keeps_the_smallest(weight, sparsity, axis):
    return ~neuron_mask(weight, sparsity, axis)


def _rounds_down(weight, sparsity, axis):
    norms = weight.norm(dim=1 - axis)
    return _mask_removing(weight, torch.argsort(norms, stable=True)[: int(sparsity * len(norms))], axis)


def _l1_norm(weight, sparsity, axis):
    norms = weight.abs().sum(dim=1 - axis)
    return _mask_removing(weight, torch.argsort(norms, stable=True)[: round(sparsity * len(norms))], axis)


def _checks_only_the_upper_bound(weight, sparsity, axis):
    if sparsity > 1:
        raise ValueError("sparsity must be at most 1")
    return neuron_mask(weight, max(sparsity, 0.0), axis)


def _ties_last_first(weight, sparsity, axis):
    norms = weight.norm(dim=1 - axis)
    order = torch.argsort(norms, descending=True, stable=True).flip(0)
    return _mask_removing(weight, order[: round(sparsity * len(norms))], axis)


def _q2_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=g)
    # Removing 4 of 6 rows keeps one of [3,0,0] and [2,2,0]: L2 (3 > 2.83) and L1 (3 < 4) disagree on which.
    l1_vs_l2 = torch.tensor([[0.1, 0.0, 0.0], [3.0, 0.0, 0.0], [0.2, 0.0, 0.0],
                             [2.0, 2.0, 0.0], [0.3, 0.0, 0.0], [5.0, 5.0, 5.0]])
    ties = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 0.0]])
    return [
        Case((a, 0.5, 0), "a random 6×4 matrix, sparsity 0.5, rows (axis=0)"),
        Case((a, 0.5, 1), "a random 6×4 matrix, sparsity 0.5, columns (axis=1)"),
        Case((l1_vs_l2, 0.6, 0), "6 rows, sparsity 0.6 (3.6 → remove 4), rows whose L1 and L2 orders differ"),
        Case((torch.randn(5, 5, generator=g), 0.4, 1), "a random 5×5 matrix, sparsity 0.4, columns"),
        Case((a, 0.0, 0), "sparsity 0 (remove nothing)"),
        Case((a, 1.0, 1), "sparsity 1 (remove every column)"),
        Case((ties, 0.5, 0), "rows with equal norms [1,0], [0,1], [-1,0]: remove the lower indices first"),
        Case((a, 1.5, 0), "sparsity 1.5 (must raise ValueError)"),
        Case((a, -0.1, 1), "sparsity −0.1 (must raise ValueError)"),
    ]


def _example_batch_speedups() -> dict[str, float]:
    """The q3 experiment on an untrained LeNet-300-100 (timing does not depend on the trained values)."""
    model = models.build("lenet-300-100", seed=0)
    small_neurons = magnitude_prune(model, 0.9, unit="neuron").compact()
    x_bench = torch.rand(1024, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    return {f"batch_{n}": cost.latency(model, x_bench[:n]) / cost.latency(small_neurons, x_bench[:n])
            for n in (1, 1024)}


Q3_SOLUTION = """\
def measure_batch_speedups():
    speedups = {}
    for n in (1, 1024):
        x = x_bench[:n]
        speedups[f"batch_{n}"] = cost.latency(model, x, THREADS) / cost.latency(small_neurons, x, THREADS)
    return speedups

At batch 1 every layer call pays a fixed overhead (Python, dispatch, memory allocation: microseconds) that does not
shrink with the layer, so a network with ~10x fewer multiply-adds is only ~1.5-2x faster; at batch 1024 the
multiply-adds dominate and the speed-up grows to a large share of the FLOP cut."""


def _larger_at_large_batch(speedups: dict) -> bool:
    return speedups["batch_1024"] > speedups["batch_1"]


EXERCISES = [
    Exercise(
        "q1",
        "W_Q1 (5 outputs × 6 inputs) is printed above. By hand, count the multiply-adds of one use of W_Q1 "
        "(one input vector) under the nonzero rule and under SSE's smallest-submatrix rule; answer "
        "(nonzero, submatrix).",
        Value(_q1_expected, mistakes={
            (9, 6): "The two counts are swapped: the nonzero count is the smaller one.",
            (6, 18): "Only the empty rows went; the empty columns go too (no kept output reads them).",
            (6, 6): "The submatrix has rows × columns entries, not rows + columns.",
            (30, 30): "That is the dense count: every entry of W_Q1, zeros included.",
        }),
        hints=("Two counts: how many entries are not 0, and how big is the smallest block of rows and columns that "
               "still holds them all?",
               "Nonzero: count the entries that are not 0. Submatrix: (rows holding a nonzero) × (columns "
             "holding a nonzero)."),
        why="The nonzero rule counts what an ideal sparse kernel multiplies; the submatrix rule what a dense kernel "
            "runs once the empty rows and columns are deleted.",
        solution="Nonzero: 6 entries are not 0. Rows 0, 2 and 4 and columns 1, 4 and 5 hold every nonzero, "
                 "so the smallest submatrix is 3 × 3 = 9 (the dense count is 5 × 6 = 30).\n"
                 "    return 6, 3 * 3\n"
                 "Check it with sparsity_lab.cost.matrix_flops(W_Q1).",
        example=(6, 9),
        wrong_answers=((9, 6), (6, 18), (6, 6), (30, 30), (6, 8)),
    ),
    Exercise(
        "q2",
        "Write neuron_mask(weight, sparsity, axis): a bool mask of weight's shape (True = kept) that removes "
        "round(sparsity × n) whole rows (axis=0) or columns (axis=1) of smallest L2 norm, lower index first "
        "on equal norms; raise ValueError for a sparsity outside [0, 1].",
        Function(_reference_neuron_mask, _q2_cases()),
        hints=("A neuron is a row (axis 0) or a column (axis 1): score each one by its L2 norm, then drop the "
               "smallest; do not forget to refuse a sparsity outside [0, 1].",
               "weight.norm(dim=1) gives one norm per row; torch.argsort(norms, stable=True)[:k] the k "
             "smallest, ties in index order. Build a (n,) keep vector, then broadcast it along the other "
             "axis."),
        why='Magnitude pruning by neuron removes whole rows or columns, which is exactly what compaction can delete.',
        example=neuron_mask,
        wrong_answers=(_norms_along_the_wrong_axis, _keeps_the_smallest, _rounds_down, _l1_norm,
                       _ties_last_first, _checks_only_the_upper_bound),
    ),
    Exercise(
        "q3",
        "Time the compacted neuron-pruned network against the dense one at batch 1 and at batch 1024 with "
        "cost.latency; answer the speed-ups (dense time / compact time) as {'batch_1': ..., 'batch_1024': ...}, "
        "then explain the difference.",
        AllOf([
            Record({
                "batch_1": Range(0.2, 6.0, "the speed-up at batch 1",
                                 "at batch 1 a fixed per-call overhead dominates both networks"),
                "batch_1024": Range(2.5, None, "the speed-up at batch 1024",
                                    "the compact network does about a tenth of the multiply-adds"),
            }),
            Holds(_larger_at_large_batch,
                  lambda a: f"expected a larger speed-up at batch 1024 than at batch 1 (a large batch spreads "
                            f"the fixed per-call cost), got {a['batch_1']:.2f}x and {a['batch_1024']:.2f}x"),
        ]),
        hints=("Time both networks on the same input, the dense one divided by the compact one, once with one image "
               "and once with 1,024.",
               "speed-up = cost.latency(model, x, THREADS) / cost.latency(small_neurons, x, THREADS) with "
             "x = x_bench[:1], then x = x_bench. A speed-up below 1 means the ratio is upside down."),
        why="At batch 1 a fixed cost per layer call dominates; at batch 1,024 the multiply-adds do, and the speed-up "
            "grows to a large share of the FLOP cut.",
        solution=Q3_SOLUTION,
        example=_example_batch_speedups,
        wrong_answers=(
            {"batch_1": 0.6, "batch_1024": 0.13},     # compact time / dense time: upside down
            {"batch_1": 7.5, "batch_1024": 1.5},      # the two keys swapped
            {"batch_1": 9.9, "batch_1024": 9.9},      # the FLOP cut, not a measured time
            {"batch_1": 3.0, "batch_1024": 3.0},      # no difference: the conclusion is missing
            {"batch_1024": 7.5},                      # a key missing
        ),
    ),
]
