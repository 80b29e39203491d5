"""Exercises of lesson 12, beyond pruning: the bits of a CSR layer, a Huffman code for a histogram, and why
distillation softens its targets.

q1 (implement)   csr_layer_bits(mask, value_bits=32): the bits of a textbook CSR matrix of the True positions
q2 (compute)     huffman_lengths_for(counts): the code lengths of an optimal prefix code (any optimal one)
q3 (explain)     wrong_class_mass(teacher_logits, temperature): the mean probability off the top class at T; then,
                 in words, why T > 1 and why the factor T²

S. Han, H. Mao, W. J. Dally. Deep Compression. ICLR 2016. D. A. Huffman. A Method for the Construction of
Minimum-Redundancy Codes. Proc. IRE 1952. G. Hinton, O. Vinyals, J. Dean. Distilling the Knowledge in a Neural
Network. 2015.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch

from . import Case, Exercise, Function, diagnosed
from .checkers import BLANK, _NotAttempted, show


# q1: the reference counts the three arrays of CSR one by one.
def _width(n: int) -> int:
    """Bits to tell n things apart (at least 1)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def csr_layer_bits(mask, value_bits=32) -> int:
    """values: one per kept weight; column indices: ⌈log2 columns⌉ bits each; row pointers: rows + 1 of them, each
    ⌈log2(kept + 1)⌉ bits (a pointer can take any value 0 … kept)."""
    rows, cols = mask.shape
    kept = int(mask.sum())
    return kept * value_bits + kept * _width(cols) + (rows + 1) * _width(kept + 1)


def _csr_variant(pointers=1, pointer_width="kept+1", index_width="ceil", values=True, index_bits=None):
    def bits(mask, value_bits=32):
        rows, cols = mask.shape
        kept = int(mask.sum())
        index = index_bits or {"ceil": _width(cols), "floor": max(1, int(math.log2(cols)))}[index_width]
        pointer = {"kept+1": _width(kept + 1), "rows": _width(rows), "kept": _width(kept)}[pointer_width]
        return kept * value_bits * values + kept * index + (rows + pointers) * pointer
    return bits


Q1_MISTAKES = (
    (_csr_variant(index_width="floor"), "log2 of the columns is rounded down: ⌈log2 cols⌉ bits are needed to tell "
                                        "cols columns apart (5 columns need 3 bits, not 2)."),
    (_csr_variant(pointers=0), "There are rows + 1 row pointers: row r's entries run from pointer r to pointer r + 1, "
                               "so the last row needs an end pointer."),
    (_csr_variant(pointer_width="rows"), "A row pointer counts kept weights (0 … kept), not rows: it needs "
                                         "⌈log2(kept + 1)⌉ bits."),
    (_csr_variant(pointer_width="kept"), "A row pointer takes kept + 1 values (0 … kept): ⌈log2(kept + 1)⌉ bits."),
    (_csr_variant(index_bits=64), "That is what torch stores (int64 indices); count the bits a CSR layer needs: "
                                  "⌈log2 cols⌉ per column index."),
    (_csr_variant(values=False), "The values are stored too: value_bits for each kept weight."),
)

Q1_MASK = torch.tensor([[1, 0, 0, 1, 0, 0],
                        [0, 0, 0, 0, 0, 0],
                        [0, 1, 1, 0, 0, 1],
                        [1, 0, 0, 0, 0, 0]], dtype=torch.bool)


def _q1_cases() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    random = [(torch.rand(r, c, generator=g) < p) for r, c, p in ((5, 7, 0.3), (30, 100, 0.08), (9, 33, 0.5))]
    hand = [(Q1_MASK, "Q1_MASK"), (torch.zeros(3, 4, dtype=torch.bool), "an empty 3×4 mask"),
            (torch.ones(4, 5, dtype=torch.bool), "a full 4×5 mask"), (torch.ones(1, 1, dtype=torch.bool), "1×1"),
            (torch.tensor([[1, 0, 1, 1, 0, 1, 0, 0, 1]], dtype=torch.bool), "one row"),
            (torch.tensor([[1], [0], [1]], dtype=torch.bool), "one column")]
    cases = [Case((m,), label) for m, label in hand] + [Case((m,), f"a random {tuple(m.shape)} mask") for m in random]
    return cases + [Case((Q1_MASK,), "Q1_MASK with 8-bit values", {"value_bits": 8})]


# q2: any optimal code is right; optimal means Kraft holds and the cost equals Huffman's.
def _huffman_cost(counts: dict) -> int:
    from ..methods.huffman import huffman_lengths

    lengths = huffman_lengths(counts)
    return sum(counts[s] * lengths[s] for s in counts)


def huffman_lengths_for(counts: dict) -> dict:
    """Huffman's construction: merge the two rarest subtrees until one is left; a symbol's length is the number of
    merges above it."""
    import heapq

    if len(counts) == 1:
        return dict.fromkeys(counts, 1)
    heap = [(c, i, [s]) for i, (s, c) in enumerate(counts.items())]
    heapq.heapify(heap)
    depth, order = dict.fromkeys(counts, 0), len(heap)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1
        heapq.heappush(heap, (c1 + c2, order, a + b))
        order += 1
    return depth


def _shannon(counts):
    total = sum(counts.values())
    return {s: max(1, math.ceil(-math.log2(c / total))) for s, c in counts.items()}


def _fixed(counts):
    return dict.fromkeys(counts, _width(len(counts)))


def _reversed_lengths(counts):
    lengths = huffman_lengths_for(counts)
    by_count = sorted(counts, key=counts.get)
    sorted_lengths = sorted(lengths.values())
    return dict(zip(by_count, sorted_lengths, strict=True))


def _too_short(counts):
    return {s: max(1, n - 1) for s, n in huffman_lengths_for(counts).items()}


Q2_MISTAKES = (
    (_too_short, "The lengths break Kraft's inequality (Σ 2^-ℓ > 1): no prefix code has them."),
    (_shannon, "These are Shannon's lengths ⌈−log2 p⌉: a prefix code, but not always optimal; merge the two rarest "
               "subtrees, repeatedly (Huffman)."),
    (_fixed, "Every symbol gets the same length: that is a fixed-length code; common symbols should get shorter "
             "words."),
    (_reversed_lengths, "The longest words went to the most common symbols: turn it round."),
)

Q2_COUNTS = {"a": 40, "b": 20, "c": 20, "d": 10, "e": 6, "f": 4}
_Q2_HISTOGRAMS = (Q2_COUNTS, {"x": 1, "y": 1, "z": 1, "w": 1}, {"only": 7}, {0: 5, 1: 1}, {0: 1, 1: 1, 2: 2},
                  {k: c for k, c in enumerate((30, 1, 1, 2, 3, 5, 8, 13))}, {"p": 9, "q": 8, "r": 7, "s": 1})


@dataclass
class OptimalLengths:
    """The answer is a function counts → {symbol: length}; on every histogram its lengths must be positive
    integers for exactly the given symbols, satisfy Kraft (Σ 2^-ℓ ≤ 1) and cost Σ count·ℓ no more than Huffman's.
    A known mistake's explanation is appended when the answer reproduces it."""

    histograms: tuple
    mistakes: tuple

    def _problem(self, answer, counts) -> str | None:
        try:
            got = answer(dict(counts))
        except NotImplementedError:
            raise _NotAttempted from None
        except Exception as error:
            return f"on {counts}: your function raised {type(error).__name__}: {error}"
        if not isinstance(got, dict) or set(got) != set(counts):
            return f"on {counts}: expected a dict with one length per symbol, got {show(got)}"
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in got.values()):
            return f"on {counts}: every length must be an integer ≥ 1, got {got}"
        kraft = sum(2.0 ** -n for n in got.values())
        if kraft > 1 + 1e-12:
            return f"on {counts}: expected Σ 2^-length ≤ 1, got {kraft:g}: no prefix code has the lengths {got}"
        cost, best = sum(counts[s] * got[s] for s in counts), _huffman_cost(counts)
        if cost > best:
            return f"on {counts}: expected an optimal code, {best} bits; your lengths {got} cost {cost}"
        return None

    def __call__(self, answer) -> str | None:
        if answer is BLANK:
            raise _NotAttempted
        if not callable(answer):
            return f"expected a function, got {type(answer).__name__} {show(answer)}"
        for counts in self.histograms:
            problem = self._problem(answer, counts)
            if problem:
                for mistake, why in self.mistakes:
                    if all(mistake(dict(c)) == answer(dict(c)) for c in self.histograms):
                        return f"{problem}. {why}"
                return problem
        return None


# q3: the wrong classes' share of the soft targets, what distillation transfers.
def wrong_class_mass(teacher_logits, temperature) -> float:
    """1 − the top class's probability under softmax(z / T), averaged over the examples."""
    probs = torch.softmax(torch.as_tensor(teacher_logits, dtype=torch.float64) / temperature, dim=-1)
    return float((1 - probs.max(dim=-1).values).mean())


def _confident_logits(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(n, 10, generator=g, dtype=torch.float64)
    z[torch.arange(n), torch.randint(10, (n,), generator=g)] += 12
    return z


Q3_LOGITS = _confident_logits(8, 3)

Q3_MISTAKES = (
    (lambda z, t: float((1 - torch.softmax(torch.as_tensor(z, dtype=torch.float64) * t, -1).max(-1).values).mean()),
     "It multiplies the logits by T: soft targets divide them, softmax(z / T)."),
    (lambda z, t: float(torch.softmax(torch.as_tensor(z, dtype=torch.float64) / t, -1).max(-1).values.mean()),
     "It returns the top class's probability: the mass on the other classes is 1 minus it."),
    (lambda z, t: float((1 - torch.softmax(torch.as_tensor(z, dtype=torch.float64) / t, 0).max(-1).values).mean()),
     "The softmax runs over the examples (dim 0): run it over the classes, the last dim."),
    (lambda z, t: float((1 - torch.softmax(torch.as_tensor(z, dtype=torch.float64), -1).max(-1).values).mean()),
     "The temperature is ignored: divide the logits by T before the softmax."),
)


def _q3_cases() -> list[Case]:
    return [Case((Q3_LOGITS, 1.0), "Q3_LOGITS at T = 1"), Case((Q3_LOGITS, 4.0), "Q3_LOGITS at T = 4"),
            Case((_confident_logits(5, 9), 20.0), "other logits at T = 20"),
            Case((torch.zeros(2, 10), 2.0), "uniform logits: 0.9 at any T")]


Q3_EXPLANATION = """\
At T = 1 a confident teacher puts almost all of its mass on one class, so its targets say little more than the
label. Dividing the logits by T > 1 raises the other classes' probabilities, and their relative sizes — which wrong
digits this one resembles — are what the student can learn beyond the label (Hinton et al.'s "dark knowledge"). The
soft loss's gradient with respect to the student's logits is (q − p)/T (eq. 2), and for large T it approaches
(z − v)/(N·T²) (eq. 4): multiplying the soft loss by T² keeps its weight against the hard-label loss the same
whatever T is."""

EXERCISES = [
    Exercise(
        "q1",
        "Write csr_layer_bits(mask, value_bits=32): mask is a 2-D boolean tensor (rows × columns). Return the bits "
        "of a textbook CSR matrix of its True positions: value_bits per kept weight, ⌈log2 columns⌉ bits per "
        "column index, and rows + 1 row pointers of ⌈log2(kept + 1)⌉ bits each (every field at least 1 bit).",
        diagnosed(Function(csr_layer_bits, _q1_cases()), Q1_MISTAKES),
        hints=("CSR has three arrays: the values, the column of each value, and where each row starts. Count the "
               "entries of each, then the bits each entry needs.",
               "kept = int(mask.sum()); width(n) = max(1, ceil(log2 n)); kept·value_bits + kept·width(columns) + "
               "(rows + 1)·width(kept + 1)."),
        why="Each field is as wide as the number of values it must tell apart: a column index one of `columns`, a "
            "row pointer one of kept + 1 positions.",
        example=csr_layer_bits,
        wrong_answers=tuple(m for m, _ in Q1_MISTAKES),
    ),
    Exercise(
        "q2",
        "Write huffman_lengths_for(counts) -> {symbol: bits}: the code length of every symbol of an optimal prefix "
        "code for the histogram counts (symbol → count ≥ 1). Any optimal answer is accepted. The lesson's "
        "histogram is Q2_COUNTS.",
        OptimalLengths(_Q2_HISTOGRAMS, Q2_MISTAKES),
        hints=("Rare symbols can afford long words. Build the code tree bottom-up: which two symbols should be the "
               "deepest siblings?",
               "Keep a heap of (count, subtree); pop the two smallest, add 1 to the length of every symbol in both, "
               "push their union with the summed count; stop at one subtree. One symbol alone gets 1 bit."),
        why="The two rarest symbols can always be the deepest siblings of an optimal tree, so merging them never "
            "loses, and the argument repeats on the smaller histogram (Huffman 1952).",
        example=huffman_lengths_for,
        wrong_answers=tuple(m for m, _ in Q2_MISTAKES),
    ),
    Exercise(
        "q3",
        "Write wrong_class_mass(teacher_logits, temperature): teacher_logits is (N, C); return the mean over the N "
        "examples of 1 − max_c softmax(z / T)_c, the probability the soft targets put on classes other than the top "
        "one. Then explain in the markdown cell why distillation uses T > 1 and multiplies the soft loss by T².",
        diagnosed(Function(wrong_class_mass, _q3_cases(), atol=1e-9), Q3_MISTAKES),
        hints=("Soft targets are the softmax of the logits divided by T; the top class takes most of the mass.",
               "probs = torch.softmax(z / T, dim=-1); return float((1 - probs.max(dim=-1).values).mean())."),
        why="What the teacher knows beyond the label lives in the mass off the top class; T > 1 makes it large "
            "enough to learn from.",
        solution=inspect.getsource(wrong_class_mass) + "\nWhy (the markdown answer):\n" + Q3_EXPLANATION,
        example=wrong_class_mass,
        wrong_answers=tuple(m for m, _ in Q3_MISTAKES),
    ),
]
