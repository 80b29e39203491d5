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

import heapq
import inspect
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..methods.huffman import huffman_lengths
from ..methods.quantize import csr_bits
from . import Case, Exercise, Function, diagnosed
from .checkers import BLANK, _NotAttempted, show


# q1: the reference is the package's quantize.csr_bits; the example counts the three arrays of CSR one by one.
def _reference_csr_bits(mask, value_bits=32) -> int:
    return csr_bits(mask, value_bits=value_bits)["total"]


def csr_layer_bits(mask, value_bits=32) -> int:
    """values: one per kept weight; column indices: ⌈log2 columns⌉ bits each; row pointers: rows + 1 of them, each
    ⌈log2(kept + 1)⌉ bits (a pointer can take any value 0 … kept)."""
    rows, cols = mask.shape
    kept = int(mask.sum())

    def width(n):                                   # bits to tell n things apart, at least 1
        return math.ceil(math.log2(n)) if n > 1 else 1

    return kept * value_bits + kept * width(cols) + (rows + 1) * width(kept + 1)


def _csr_variant(rounding="ceil", floored=("index", "pointer"), minimum=1, pointers=1, index_of="cols",
                 pointer_of="kept+1", values=True, own_value_bits=True, stored_bits=None):
    """csr_layer_bits, right with the defaults; each other argument makes a known mistake."""
    def width(n, field):
        exact = math.log2(n) if n > 0 else 0.0
        return max(minimum, math.floor(exact) if rounding == "floor" and field in floored else math.ceil(exact))

    def bits(mask, value_bits=32):
        rows, cols = mask.shape
        kept = int(mask.sum())
        of = {"cols": cols, "rows": rows, "kept": kept, "kept+1": kept + 1}
        index = stored_bits or width(of[index_of], "index")
        pointer = stored_bits or width(of[pointer_of], "pointer")
        value = value_bits if own_value_bits else 32
        return kept * value * values + kept * index + (rows + pointers) * pointer
    return bits


def _rounded_down(where: str) -> str:
    return (f"log2 is rounded down{where}: ⌈log2 n⌉ bits are needed to tell n things apart (6 columns need 3 bits; "
            "2 bits tell only 4 apart).")


Q1_MISTAKES = (
    (_csr_variant(rounding="floor"), _rounded_down("")),
    (_csr_variant(rounding="floor", floored=("index",)), _rounded_down(" for the column indices")),
    (_csr_variant(rounding="floor", floored=("pointer",)), _rounded_down(" for the row pointers")),
    (_csr_variant(minimum=0), "A field with a single possible value still takes 1 bit here (at least 1 bit each): "
                              "the column index of a one-column mask, the row pointers of an empty one."),
    (_csr_variant(pointers=0), "There are rows + 1 row pointers: row r's entries run from pointer r to pointer r + 1, "
                               "so the last row needs an end pointer."),
    (_csr_variant(pointer_of="rows"), "A row pointer counts kept weights (0 … kept), not rows: it needs "
                                      "⌈log2(kept + 1)⌉ bits."),
    (_csr_variant(pointer_of="kept"), "A row pointer takes kept + 1 values (0 … kept): ⌈log2(kept + 1)⌉ bits."),
    (_csr_variant(index_of="rows"), "A column index tells the columns apart: ⌈log2 columns⌉ bits, not ⌈log2 rows⌉ "
                                    "(that is CSC's row index)."),
    (_csr_variant(stored_bits=64), "That is what torch stores (mask.to_sparse_csr(): int64 column indices and row "
                                   "pointers); count the bits a textbook CSR needs: ⌈log2 columns⌉ per column index, "
                                   "⌈log2(kept + 1)⌉ per row pointer."),
    (_csr_variant(values=False), "The values are stored too: value_bits for each kept weight."),
    (_csr_variant(own_value_bits=False), "The values take value_bits each, not always 32: use the argument."),
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
            (torch.zeros(1, 1, dtype=torch.bool), "an empty 1×1 mask"),
            (torch.tensor([[1, 0, 1, 1, 0, 1, 0, 0, 1]], dtype=torch.bool), "one row"),
            (torch.tensor([[1], [0], [1]], dtype=torch.bool), "one column"),
            (torch.eye(8, 16, dtype=torch.bool), "an 8×16 diagonal (powers of 2)")]
    cases = [Case((m,), label) for m, label in hand] + [Case((m,), f"a random {tuple(m.shape)} mask") for m in random]
    return cases + [Case((Q1_MASK,), "Q1_MASK with 8-bit values", {"value_bits": 8})]


# q2: any optimal code is right; optimal means Kraft holds and the cost equals Huffman's (methods.huffman).
def huffman_lengths_for(counts: dict) -> dict:
    """Huffman's construction: merge the two rarest subtrees until one is left; a symbol's length is the number of
    merges above it."""
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
    return dict.fromkeys(counts, max(1, math.ceil(math.log2(len(counts)))))


def _reversed_lengths(counts):
    lengths = huffman_lengths_for(counts)
    return dict(zip(sorted(counts, key=counts.get), sorted(lengths.values()), strict=True))


def _too_short(counts):
    return {s: max(1, n - 1) for s, n in huffman_lengths_for(counts).items()}


def _merge_commonest(counts):
    return huffman_lengths_for({s: -c for s, c in counts.items()})


Q2_MISTAKES = (
    (_shannon, "These are Shannon's lengths ⌈−log2 p⌉: a prefix code, but not always optimal; merge the two rarest "
               "subtrees, repeatedly (Huffman)."),
    (_fixed, "Every symbol gets the same length: that is a fixed-length code; common symbols should get shorter "
             "words."),
    (_merge_commonest, "It merges the two commonest subtrees: merge the two rarest, so that the rare symbols end up "
                       "deepest."),
)

Q2_COUNTS = {"a": 40, "b": 20, "c": 20, "d": 10, "e": 6, "f": 4}
_Q2_HISTOGRAMS = (Q2_COUNTS, {"x": 1, "y": 1, "z": 1, "w": 1}, {"only": 7}, {0: 5, 1: 1}, {0: 1, 1: 1, 2: 2},
                  {"a": 1, "b": 1, "c": 2, "d": 2}, dict(enumerate((30, 1, 1, 2, 3, 5, 8, 13))),
                  {"p": 9, "q": 8, "r": 7, "s": 1})


def _inversion(lengths: dict, counts: dict) -> str:
    """'' when commoner symbols never have longer words; else the worst such pair, which swapping would improve."""
    pairs = [((counts[s] - counts[t]) * (lengths[s] - lengths[t]), s, t) for s in counts for t in counts
             if counts[s] > counts[t] and lengths[s] > lengths[t]]
    if not pairs:
        return ""
    _, s, t = max(pairs, key=lambda p: p[0])
    return (f"; {s!r} (count {counts[s]}) has a {lengths[s]}-bit word but the rarer {t!r} (count {counts[t]}) a "
            f"{lengths[t]}-bit one: swapping them saves bits, so turn it round (the longest words go to the rarest "
            "symbols)")


def _as_lengths(got, counts) -> dict | str:
    """The answer as {symbol: int length}, or what is wrong with its form."""
    if not isinstance(got, Mapping) or set(got) != set(counts):
        return f"expected a dict with one length per symbol of {sorted(map(str, counts))}, got {show(got)}"
    lengths = {}
    for s, n in got.items():
        n = n.item() if isinstance(n, torch.Tensor) and n.numel() == 1 else n
        if isinstance(n, bool) or not isinstance(n, numbers.Real) or not float(n).is_integer() or n < 1:
            return f"expected every length to be an integer ≥ 1, got {show(n)} for symbol {s!r}"
        lengths[s] = int(n)
    return lengths


@dataclass
class OptimalLengths:
    """The answer is a function counts → {symbol: length}; on every histogram its lengths must be integers ≥ 1 for
    exactly the given symbols, satisfy Kraft (Σ 2^-ℓ ≤ 1) and cost Σ count·ℓ no more than Huffman's. A known
    mistake's explanation is appended when it gives the answer's lengths on the histogram the answer fails on."""

    histograms: tuple
    mistakes: tuple

    @staticmethod
    def problem(lengths: dict, counts: dict) -> str | None:
        """What is wrong with `lengths` as an optimal code for `counts`, or None."""
        kraft = sum(2.0 ** -n for n in lengths.values())
        if kraft > 1 + 1e-12:
            return (f"expected Σ 2^-length ≤ 1 (Kraft's inequality), got {kraft:g}: no prefix code has the lengths "
                    f"{lengths}; a word made shorter leaves fewer words free, so others must grow")
        best = huffman_lengths(counts)
        cost, optimum = sum(counts[s] * lengths[s] for s in counts), sum(counts[s] * best[s] for s in counts)
        if cost > optimum:
            return f"expected an optimal code, {optimum} bits; your lengths {lengths} cost {cost}" + _inversion(
                lengths, counts)
        return None

    def __call__(self, answer) -> str | None:
        if answer is BLANK:
            raise _NotAttempted
        if not callable(answer) or isinstance(answer, torch.Tensor):
            return f"expected a function, got {type(answer).__name__} {show(answer)}"
        for counts in self.histograms:
            try:
                got = answer(dict(counts))
            except NotImplementedError:
                raise _NotAttempted from None
            except Exception as error:
                return f"on {counts}: your function raised {type(error).__name__}: {error}"
            lengths = _as_lengths(got, counts)
            problem = lengths if isinstance(lengths, str) else self.problem(lengths, counts)
            if problem:
                why = next((why for mistake, why in self.mistakes if mistake(dict(counts)) == lengths), None)
                return f"on {counts}: {problem}" + (f". {why}" if why else "")
        return None


# q3: the wrong classes' share of the soft targets, what distillation transfers.
def wrong_class_mass(teacher_logits, temperature) -> float:
    """1 − the top class's probability under softmax(z / T), averaged over the examples."""
    probs = torch.softmax(torch.as_tensor(teacher_logits, dtype=torch.float64) / temperature, dim=-1)
    return float((1 - probs.max(dim=-1).values).mean())


def _confident_logits(n: int, seed: int) -> torch.Tensor:
    """(n, 10) logits: N(0, 2²) noise, and +12 on one random class per row (a confident teacher)."""
    g = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(n, 10, generator=g, dtype=torch.float64)
    z[torch.arange(n), torch.randint(10, (n,), generator=g)] += 12
    return z


Q3_LOGITS = _confident_logits(8, 3)
Q3_TEMPERATURES = (1.0, 4.0)     # the plain softmax and the lesson's distillation temperature


def _mass_variant(scale="divide", dim=-1, off_top=True, average_first=False):
    """wrong_class_mass, right with the defaults; each other argument makes a known mistake."""
    def mass(z, t):
        z = torch.as_tensor(z, dtype=torch.float64)
        probs = torch.softmax({"divide": z / t, "multiply": z * t, "ignore": z}[scale], dim=dim)
        top = probs.mean(0).max() if average_first else probs.max(-1).values.mean()
        return float(1 - top if off_top else top)
    return mass


Q3_MISTAKES = (
    (_mass_variant(scale="multiply"), "It multiplies the logits by T: soft targets divide them, softmax(z / T)."),
    (_mass_variant(off_top=False), "It returns the top class's probability: the mass on the other classes is 1 minus "
                                   "it."),
    (_mass_variant(dim=0), "The softmax runs over the examples (dim 0): run it over the classes, the last dim."),
    (_mass_variant(scale="ignore"), "The temperature is ignored: divide the logits by T before the softmax."),
    (_mass_variant(average_first=True), "It averages the distributions before taking the top class: take each "
                                        "example's mass off its own top class, then average over the examples."),
)


def _q3_cases() -> list[Case]:
    return [*(Case((Q3_LOGITS, t), f"Q3_LOGITS at T = {t:g}") for t in Q3_TEMPERATURES),
            Case((_confident_logits(5, 9), 20.0), "other logits at T = 20"),
            Case((_confident_logits(3, 4), 0.5), "other logits at T = 0.5"),
            Case((torch.zeros(2, 10), 2.0), "uniform logits: 0.9 at any T")]


_MASS = {t: wrong_class_mass(Q3_LOGITS, t) for t in Q3_TEMPERATURES}
Q3_EXPLANATION = f"""\
At T = 1 a confident teacher puts almost all of its mass on one class (on Q3_LOGITS, {_MASS[1.0]:.2%} is left
for the nine others), so its targets say little more than the label. Dividing the logits by T > 1 raises the
other classes' probabilities ({_MASS[4.0]:.0%} of the mass at T = 4), and their relative sizes — which wrong digits
this one resembles — are what the student can learn beyond the label (Hinton et al.'s "dark knowledge"). The soft
loss's gradient with respect to the student's logits is (q − p)/T (eq. 2; q the student's softened output, p the
teacher's), and for large T it approaches (z − v)/(N·T²) (eq. 4): multiplying the soft loss by T² keeps its weight
against the hard-label loss the same whatever T is."""

EXERCISES = [
    Exercise(
        "q1",
        "Write csr_layer_bits(mask, value_bits=32): mask is a 2-D boolean tensor (rows × columns). Return the bits "
        "of a textbook CSR matrix of its True positions: value_bits per kept weight, ⌈log2 columns⌉ bits per "
        "column index, and rows + 1 row pointers of ⌈log2(kept + 1)⌉ bits each (every field at least 1 bit).",
        diagnosed(Function(_reference_csr_bits, _q1_cases()), Q1_MISTAKES),
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
        "code for the histogram counts (symbol → count ≥ 1). Any optimal answer is accepted (ties allow several). "
        "The lesson's histogram is Q2_COUNTS; the check runs your function on others too.",
        OptimalLengths(_Q2_HISTOGRAMS, Q2_MISTAKES),
        hints=("Rare symbols can afford long words. Build the code tree bottom-up: which two symbols should be the "
               "deepest siblings?",
               "Keep a heap of (count, tie-break, symbols); pop the two smallest, add 1 to the length of every "
               "symbol in both, push their union with the summed count; stop at one subtree. One symbol alone gets "
               "1 bit."),
        why="The two rarest symbols can always be the deepest siblings of an optimal tree, so merging them never "
            "loses, and the argument repeats on the smaller histogram (Huffman 1952).",
        example=huffman_lengths_for,
        wrong_answers=(_too_short, _reversed_lengths, *(m for m, _ in Q2_MISTAKES)),
    ),
    Exercise(
        "q3",
        "Write wrong_class_mass(teacher_logits, temperature): teacher_logits is (N, C); return the mean over the N "
        "examples of 1 − max_c softmax(z / T)_c, the probability the soft targets put on classes other than the top "
        "one. Try it on Q3_LOGITS at T = 1 and T = 4. Then explain in the markdown cell why distillation uses T > 1 "
        "and multiplies the soft loss by T².",
        diagnosed(Function(wrong_class_mass, _q3_cases(), atol=1e-6), Q3_MISTAKES),
        hints=("Soft targets are the softmax of the logits divided by T; the top class takes most of the mass.",
               "probs = torch.softmax(z / T, dim=-1); return float((1 - probs.max(dim=-1).values).mean())."),
        why="What the teacher knows beyond the label lives in the mass off the top class; T > 1 makes it large "
            "enough to learn from.",
        solution=inspect.getsource(wrong_class_mass) + "\nWhy (the markdown answer):\n" + Q3_EXPLANATION,
        example=wrong_class_mass,
        wrong_answers=tuple(m for m, _ in Q3_MISTAKES),
    ),
]
