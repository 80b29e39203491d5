"""Huffman coding (Huffman 1952), the last stage of Deep Compression (Han, Mao & Dally 2016, sec. 4): the optimal
prefix code for a histogram, its canonical form (the code lengths alone determine it), and encoding / decoding.

    lengths = huffman_lengths({"a": 5, "b": 2, "c": 1, "d": 1})    # {'a': 1, 'b': 2, 'c': 3, 'd': 3}
    code = huffman_code(counts); bits = encode("abad", code); decode(bits, code) == list("abad")
"""

from __future__ import annotations

import heapq
import numbers
from collections.abc import Hashable, Iterable, Mapping


def _in_order(symbols: Iterable[Hashable]) -> list:
    """The symbols sorted when they compare (ints, strings), else in the order given: the tie-break everywhere."""
    symbols = list(symbols)
    try:
        return sorted(symbols)
    except TypeError:
        return symbols


def huffman_lengths(counts: Mapping[Hashable, int]) -> dict[Hashable, int]:
    """Optimal prefix-code lengths for a histogram (Huffman 1952; Han et al. 2016, sec. 4): symbol → bits.

    Symbols with count 0 get no code; a lone symbol gets 1 bit. Ties merge in symbol order (`_in_order`), so
    the lengths are deterministic."""
    for symbol, c in counts.items():
        if not isinstance(c, numbers.Integral) or isinstance(c, bool) or c < 0:
            raise ValueError(f"counts must be integers ≥ 0, got {c!r} for symbol {symbol!r}")
    live = [s for s in _in_order(counts) if counts[s] > 0]
    if len(live) <= 1:
        return dict.fromkeys(live, 1)
    depth = dict.fromkeys(live, 0)
    heap = [(int(counts[s]), i, [s]) for i, s in enumerate(live)]
    heapq.heapify(heap)
    order = len(heap)
    while len(heap) > 1:
        c1, _, a = heapq.heappop(heap)
        c2, _, b = heapq.heappop(heap)
        for s in a + b:
            depth[s] += 1
        heapq.heappush(heap, (c1 + c2, order, a + b))
        order += 1
    return depth


def huffman_code(counts: Mapping[Hashable, int]) -> dict[Hashable, str]:
    """The canonical prefix code for `huffman_lengths(counts)`: symbol → '0'/'1' word. Words are handed out in
    order of (length, symbol), each the previous one plus 1, shifted left when the length grows, so the lengths
    alone determine the code."""
    lengths = huffman_lengths(counts)
    rank = {s: i for i, s in enumerate(_in_order(lengths))}
    code, word, previous = {}, -1, 0
    for s in sorted(lengths, key=lambda s: (lengths[s], rank[s])):
        word = (word + 1) << (lengths[s] - previous)
        previous = lengths[s]
        code[s] = format(word, f"0{previous}b")
    return code


def encode(symbols: Iterable[Hashable], code: Mapping[Hashable, str]) -> str:
    """The concatenated code words of `symbols`."""
    out = []
    for s in symbols:
        if s not in code:
            raise ValueError(f"symbol {s!r} has no code word; the code covers {list(code)[:10]}")
        out.append(code[s])
    return "".join(out)


def decode(bits: str, code: Mapping[Hashable, str]) -> list:
    """The symbols that `bits` encodes under the prefix code `code` (symbol → word)."""
    if not isinstance(bits, str) or set(bits) - {"0", "1"}:
        raise ValueError(f"bits must be a string of '0' and '1', got {str(bits)[:40]!r}")
    words = {w: s for s, w in code.items()}
    ordered = sorted(words)
    if len(words) != len(code) or any(not w or set(w) - {"0", "1"} for w in ordered) or \
            any(b.startswith(a) for a, b in zip(ordered, ordered[1:], strict=False)):
        raise ValueError("code must map each symbol to a distinct non-empty '0'/'1' word, none a prefix of another")
    longest = max(map(len, ordered), default=0)
    out, start = [], 0
    for end in range(1, len(bits) + 1):
        if bits[start:end] in words:
            out.append(words[bits[start:end]])
            start = end
        elif end - start >= longest:
            raise ValueError(f"bits {bits[start:end]!r} at position {start} match no code word")
    if start != len(bits):
        raise ValueError(f"bits end inside a code word: {bits[start:]!r} is left over")
    return out
