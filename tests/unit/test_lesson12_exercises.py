"""Lesson 12's exercises against independent computations: the CSR bits from the arrays torch's own CSR holds, the
optimal code cost by brute force over every length assignment, the wrong-class mass in numpy; a learner's plausible
mistakes get their diagnosis, any optimal code passes, and the solutions stay hidden until revealed."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sparsity_lab.exercises import BLANK, for_lesson
from sparsity_lab.exercises import lesson12 as L
from sparsity_lab.methods.huffman import huffman_lengths


def _stub(*args, **kwargs):
    raise NotImplementedError()


def _bits_for(n: int) -> int:
    return max(1, (n - 1).bit_length())


# --- q1: the bits of a CSR layer --------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_q1_references_count_the_arrays_torch_csr_holds():
    for case in L._q1_cases():
        mask, value_bits = case.args[0], case.kwargs.get("value_bits", 32)
        csr = mask.to_sparse_csr()
        rows, cols = mask.shape
        nnz = csr.values().numel()
        expected = (nnz * value_bits + csr.col_indices().numel() * _bits_for(cols)
                    + csr.crow_indices().numel() * _bits_for(nnz + 1))
        assert csr.crow_indices().numel() == rows + 1
        assert L.csr_layer_bits(mask, value_bits) == L._reference_csr_bits(mask, value_bits) == expected, case.label


def test_q1_hand_counts():
    by_label = {c.label: L._reference_csr_bits(*c.args, **c.kwargs) for c in L._q1_cases()}
    assert by_label["Q1_MASK"] == 6 * 32 + 6 * 3 + 5 * 3 == 225         # 6 kept, 6 columns, 5 pointers of 0…6
    assert by_label["Q1_MASK with 8-bit values"] == 6 * 8 + 6 * 3 + 5 * 3
    assert by_label["an empty 3×4 mask"] == 4                            # four 1-bit pointers, all 0
    assert by_label["an empty 1×1 mask"] == 2
    assert by_label["a full 4×5 mask"] == 20 * 32 + 20 * 3 + 5 * 5
    assert by_label["1×1"] == 32 + 1 + 2 * 1
    assert by_label["one column"] == 2 * 32 + 2 * 1 + 4 * 2
    assert by_label["one row"] == 5 * 32 + 5 * 4 + 2 * 3
    assert by_label["an 8×16 diagonal (powers of 2)"] == 8 * 32 + 8 * 4 + 9 * 4
    assert tuple(L.Q1_MASK.shape) == (4, 6) and L.Q1_MASK.dtype == torch.bool


def test_q1_declared_mistakes_each_get_their_own_diagnosis():
    q1 = for_lesson("12").q1
    for mistake, why in L.Q1_MISTAKES:
        verdict = q1.verdict(mistake)
        assert not verdict.ok and verdict.attempted and why in verdict.message, (why, verdict.message)


def _q1_students():
    """Wrong answers a learner might write (not the module's variants), with the diagnosis each must get."""
    def floor_width(n):
        return max(1, int(math.log2(n))) if n > 0 else 1

    def rounded_down(mask, value_bits=32):
        rows, cols = mask.shape
        kept = int(mask.sum())
        return kept * value_bits + kept * floor_width(cols) + (rows + 1) * floor_width(kept + 1)

    def rows_pointers(mask, value_bits=32):
        rows, cols = mask.shape
        kept = int(mask.sum())
        return kept * value_bits + kept * _bits_for(cols) + rows * _bits_for(kept + 1)

    def torch_int64(mask, value_bits=32):
        csr = mask.to_sparse_csr()
        return csr.values().numel() * value_bits + 64 * (csr.col_indices().numel() + csr.crow_indices().numel())

    def no_values(mask, value_bits=32):
        rows, cols = mask.shape
        kept = int(mask.sum())
        return kept * _bits_for(cols) + (rows + 1) * _bits_for(kept + 1)

    def zero_bit_fields(mask, value_bits=32):
        rows, cols = mask.shape
        kept = int(mask.sum())
        return kept * value_bits + kept * math.ceil(math.log2(cols)) + (rows + 1) * math.ceil(math.log2(kept + 1))

    return [(rounded_down, "rounded down"), (rows_pointers, "rows + 1 row pointers"), (torch_int64, "int64"),
            (no_values, "values are stored too"), (zero_bit_fields, "still takes 1 bit")]


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_q1_a_learners_mistakes_are_diagnosed_and_other_right_answers_pass():
    q1 = for_lesson("12").q1
    for wrong, diagnosis in _q1_students():
        verdict = q1.verdict(wrong)
        assert not verdict.ok and verdict.attempted and diagnosis in verdict.message, (diagnosis, verdict.message)

    def with_numpy(mask, value_bits=32):                 # the notebook's solution: float log2 through numpy
        rows, cols = mask.shape
        kept = int(mask.sum())
        width = lambda n: max(1, int(np.ceil(np.log2(n))))  # noqa: E731
        return kept * value_bits + kept * width(cols) + (rows + 1) * width(kept + 1)

    assert q1.check(with_numpy, quiet=True)
    assert q1.check(lambda mask, value_bits=32: torch.tensor(L.csr_layer_bits(mask, value_bits)), quiet=True)


# --- q2: a Huffman code for a histogram -------------------------------------------------------------------------

def _brute_force_optimum(counts: dict) -> int:
    """The least Σ count·length over every assignment of lengths 1…n−1 that satisfies Kraft (a lone symbol: 1)."""
    n = len(counts)
    if n == 1:
        return next(iter(counts.values()))
    return min(sum(c * k for c, k in zip(counts.values(), lengths, strict=True))
               for lengths in itertools.product(range(1, n), repeat=n) if sum(2.0 ** -k for k in lengths) <= 1)


def _cost(counts: dict, lengths: dict) -> int:
    return sum(counts[s] * lengths[s] for s in counts)


def test_q2_the_optimum_is_the_brute_force_minimum_and_the_example_reaches_it():
    small = [h for h in L._Q2_HISTOGRAMS if len(h) <= 6]
    assert L.Q2_COUNTS in small and len(small) >= 6
    for counts in small:
        best = _brute_force_optimum(counts)
        assert _cost(counts, huffman_lengths(counts)) == _cost(counts, L.huffman_lengths_for(counts)) == best, counts
    assert _brute_force_optimum(L.Q2_COUNTS) == 230


def _other_tie_break(counts):
    """Huffman with ties broken the other way (the latest subtree first): a different optimal code on ties."""
    heap = [(c, -i, [s]) for i, (s, c) in enumerate(counts.items())]
    depth = dict.fromkeys(counts, 0 if len(counts) > 1 else 1)
    order = len(heap)
    while len(heap) > 1:
        heap.sort(reverse=True)
        (c1, _, a), (c2, _, b) = heap.pop(), heap.pop()
        for s in a + b:
            depth[s] += 1
        heap.append((c1 + c2, -order, a + b))
        order += 1
    return depth


def test_q2_accepts_any_optimal_code_on_a_tie():
    q2 = for_lesson("12").q2
    alternative = {"a": 1, "b": 3, "c": 3, "d": 3, "e": 4, "f": 4}         # b, c, {d, e, f} tie at 20
    assert alternative != huffman_lengths(L.Q2_COUNTS) and _cost(L.Q2_COUNTS, alternative) == 230
    assert L.OptimalLengths.problem(alternative, L.Q2_COUNTS) is None
    differs = [h for h in L._Q2_HISTOGRAMS if _other_tie_break(h) != huffman_lengths(h)]
    assert {"a": 1, "b": 1, "c": 2, "d": 2} in differs
    assert q2.check(_other_tie_break, quiet=True)
    assert q2.check(lambda counts: {s: np.int64(n) for s, n in huffman_lengths(counts).items()}, quiet=True)


def test_q2_rejects_a_prefix_code_that_is_not_optimal():
    worse = {"a": 2, "b": 2, "c": 3, "d": 3, "e": 3, "f": 3}               # Kraft: exactly 1, but 240 bits
    assert sum(2.0 ** -n for n in worse.values()) == 1
    assert "expected an optimal code, 230 bits" in L.OptimalLengths.problem(worse, L.Q2_COUNTS)
    verdict = for_lesson("12").q2.verdict(lambda counts: worse if counts == L.Q2_COUNTS else huffman_lengths(counts))
    assert not verdict.ok and "cost 240" in verdict.message


def test_q2_declared_mistakes_each_get_their_own_diagnosis():
    q2 = for_lesson("12").q2
    for mistake, why in L.Q2_MISTAKES:
        verdict = q2.verdict(mistake)
        assert not verdict.ok and verdict.attempted and why in verdict.message, (why, verdict.message)


def test_q2_a_learners_mistakes_are_diagnosed():
    def shannon_numpy(counts):
        p = np.array(list(counts.values())) / sum(counts.values())
        return dict(zip(counts, np.maximum(1, np.ceil(-np.log2(p))), strict=True))

    def fixed(counts):
        return {s: math.ceil(math.log2(len(counts))) for s in counts}

    def longest_to_commonest(counts):
        lengths = sorted(huffman_lengths(counts).values())
        return dict(zip(sorted(counts, key=counts.get, reverse=True), lengths[::-1], strict=True))

    students = [(shannon_numpy, "Shannon's lengths"), (fixed, "fixed-length code"),
                (lambda counts: dict.fromkeys(counts, 1), "Kraft's inequality"), (L._too_short, "Kraft's inequality"),
                (longest_to_commonest, "turn it round"), (L._reversed_lengths, "turn it round")]
    q2 = for_lesson("12").q2
    for wrong, diagnosis in students:
        verdict = q2.verdict(wrong)
        assert not verdict.ok and verdict.attempted and diagnosis in verdict.message, (diagnosis, verdict.message)


@pytest.mark.parametrize(("answer", "message"), [
    (lambda counts: {s: 2 for s in list(counts)[1:]}, "expected a dict with one length per symbol"),
    (lambda counts: dict.fromkeys(counts, 0), "expected every length to be an integer ≥ 1"),
    (lambda counts: dict.fromkeys(counts, 2.5), "expected every length to be an integer ≥ 1"),
    (lambda counts: [1] * len(counts), "expected a dict"),
    (lambda counts: counts["z"], "raised KeyError"),
    (huffman_lengths(L.Q2_COUNTS), "expected a function"),
])
def test_q2_malformed_answers_get_a_clear_message(answer, message):
    verdict = for_lesson("12").q2.verdict(answer)
    assert not verdict.ok and verdict.attempted and message in verdict.message, verdict.message


# --- q3: the mass off the top class -----------------------------------------------------------------------------

def _numpy_mass(z, t) -> float:
    z = np.asarray(z, dtype=np.float64) / t
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return float(np.mean(1 - p.max(-1)))


def test_q3_reference_agrees_with_numpy_and_the_logits_are_a_confident_teacher():
    for case in L._q3_cases():
        assert L.wrong_class_mass(*case.args) == pytest.approx(_numpy_mass(*case.args), abs=1e-12), case.label
    assert tuple(L.Q3_LOGITS.shape) == (8, 10) and torch.equal(L.Q3_LOGITS, L._confident_logits(8, 3))
    top2 = L.Q3_LOGITS.topk(2, dim=-1).values
    assert bool((top2[:, 0] - top2[:, 1] > 5).all())                      # one class far ahead in every row
    masses = [L.wrong_class_mass(L.Q3_LOGITS, t) for t in (1, 2, 4, 8, 16, 20)]
    assert masses[0] < 0.01 < 0.2 < masses[2] and masses == sorted(masses)
    assert L.wrong_class_mass(torch.zeros(2, 10), 2.0) == pytest.approx(0.9)


def test_q3_declared_and_a_learners_mistakes_are_diagnosed_and_float32_passes():
    q3 = for_lesson("12").q3
    for mistake, why in L.Q3_MISTAKES:
        verdict = q3.verdict(mistake)
        assert not verdict.ok and verdict.attempted and why in verdict.message, (why, verdict.message)

    def times_t(z, t):
        return (1 - torch.softmax(z * t, dim=1).max(dim=1).values).mean().item()

    def top_probability(z, t):
        return torch.softmax(z / t, dim=1).max(dim=1).values.mean().item()

    for wrong, diagnosis in ((times_t, "multiplies the logits by T"), (top_probability, "top class's probability")):
        verdict = q3.verdict(wrong)
        assert not verdict.ok and diagnosis in verdict.message, verdict.message
    assert q3.check(lambda z, t: (1 - torch.softmax(z.float() / t, dim=1).max(dim=1).values).mean().item(),
                    quiet=True)
    assert q3.check(lambda z, t: np.float64(_numpy_mass(z, t)), quiet=True)


# --- all three -------------------------------------------------------------------------------------------------

def test_blank_and_stub_read_as_not_attempted_and_the_examples_pass(capsys):
    for exercise in for_lesson("12"):
        for blank in (BLANK, _stub):
            verdict = exercise.verdict(blank)
            assert not verdict.ok and not verdict.attempted and "not attempted yet" in verdict.message
        assert exercise.check(exercise.example) and "✓" in capsys.readouterr().out
    assert [e.name for e in for_lesson(12)] == ["q1", "q2", "q3"]


def test_solutions_are_withheld_until_revealed(capsys):
    ex = for_lesson("12")
    before = [e.revealed for e in ex]
    try:
        for e in ex:
            e.revealed = False
        ex.q3.solution()
        assert "withheld" in capsys.readouterr().out
        ex.reveal_solutions().q3.solution()
        shown = capsys.readouterr().out
        assert "def wrong_class_mass" in shown and "T²" in shown and "T = 4" in shown
        ex.q2.solution()
        assert "def huffman_lengths_for" in capsys.readouterr().out
    finally:
        for e, revealed in zip(ex, before, strict=True):
            e.revealed = revealed
