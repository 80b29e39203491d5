"""Exercises of lesson 08, Sparse Structured Ensembles for LSTMs: the weights that go with one ISS unit, the index
lists of a mask, and the entropy rate of a Markov chain (the floor no language model can beat).

q1 (count)       one hidden unit's intrinsic sparse structure (Wen et al. 2018): its 4 gate rows in both matrices,
                 its column of the recurrent matrix, its column in every gate of the next layer
q2 (implement)   SSE's index lists (Zhang & Ou 2018): the rows and the columns of a matrix that hold a nonzero
q3 (implement)   H = −Σ_i π_i Σ_j P_ij·log P_ij, π the stationary distribution (Cover & Thomas 2006, thm 4.2.4)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import Case, Exercise, Function, Value, diagnosed

# q1: an LSTM language model with embedding 32 and hidden sizes 64 (layer 1) and 48 (layer 2).
EMBEDDING_Q1, HIDDEN_Q1 = 32, (64, 48)


def _q1(crossing_once: bool = True, recurrent_column: bool = True, next_gates: int = 4) -> int:
    e, (h1, h2) = EMBEDDING_Q1, HIDDEN_Q1
    rows = 4 * e + 4 * h1                                   # its row in each gate of weight_ih and weight_hh
    column = (h1 * 4 - (4 if crossing_once else 0)) if recurrent_column else 0   # its column of weight_hh
    return rows + column + next_gates * h2                  # its column in each gate of layer 2's weight_ih


_Q1 = _q1()
Q1_SOLUTION = f"""\
Layer 1's unit k computes 4 gates: its row in each gate of weight_ih (4 × 32 = 128 weights) and of weight_hh
(4 × 64 = 256). Its output h_k is read at the next time step by every gate of layer 1 — column k of weight_hh,
4 × 64 = 256 weights, of which the 4 where row and column cross are already counted: 252 more — and by every
gate of layer 2: column k of layer 2's weight_ih, 4 × 48 = 192.
    return 128 + 256 + 252 + 192 = {_Q1}
Check it with structure.layer_groups(build("lstm-lm", vocab=10, embedding=32, hidden=(64, 48)), "iss")[1].size.
(Its 4 biases go too; the groups count weights.)"""


# q2: the reference walks the matrix with loops.
def _reference_index_lists(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if mask.dim() != 2:
        raise ValueError("mask must be a 2-D matrix")
    rows = [i for i in range(mask.shape[0]) if any(bool(mask[i, j]) for j in range(mask.shape[1]))]
    cols = [j for j in range(mask.shape[1]) if any(bool(mask[i, j]) for i in range(mask.shape[0]))]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


def index_lists(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns): the indices, ascending, of the rows and of the columns of `mask` that hold a nonzero."""
    if mask.dim() != 2:
        raise ValueError("mask must be a 2-D matrix")
    nz = mask != 0
    return nz.any(1).nonzero().squeeze(1), nz.any(0).nonzero().squeeze(1)


def _all_instead_of_any(mask):
    nz = mask != 0
    return nz.all(1).nonzero().squeeze(1), nz.all(0).nonzero().squeeze(1)


def _swapped(mask):
    rows, cols = index_lists(mask)
    return cols, rows


def _boolean_lists(mask):
    nz = mask != 0
    return nz.any(1), nz.any(0)


Q2_MISTAKES = (
    (_all_instead_of_any, "It keeps only rows and columns that are nonzero everywhere: a row must be computed as "
                          "soon as it holds *one* nonzero."),
    (_swapped, "Rows and columns are swapped: return (rows, columns)."),
)


def _q2_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 5, generator=g) * (torch.rand(8, 5, generator=g) < 0.3)
    tied = torch.zeros(8, 6)
    tied[[1, 5], :] = 1.0
    tied[:, 3] = 2.0
    return [Case((torch.tensor([[0.0, 1.5, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),),
                 "a 4×3 matrix with two nonzeros"),
            Case((w,), "an 8×5 random sparse matrix"), Case((tied,), "two full rows and one full column"),
            Case((torch.zeros(3, 4),), "all zeros: two empty lists"),
            Case((torch.ones(2, 3, dtype=torch.bool),), "a boolean mask, all kept"),
            Case((torch.ones(4),), "a vector: a ValueError")]


# q3: a Markov chain over 3 tokens; the reference solves π·P = π with numpy's eigenvectors.
def _reference_entropy_rate(transition: torch.Tensor) -> float:
    p = np.asarray(transition, dtype=float)
    if p.ndim != 2 or p.shape[0] != p.shape[1] or not np.allclose(p.sum(1), 1):
        raise ValueError("transition must be a square row-stochastic matrix")
    values, vectors = np.linalg.eig(p.T)
    pi = np.real(vectors[:, np.argmin(abs(values - 1))])
    pi = pi / pi.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        rows = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return float(pi @ rows)


def markov_entropy_rate(transition: torch.Tensor) -> float:
    """Entropy rate (nats per token) of a stationary Markov chain with row-stochastic `transition` (S, S)."""
    p = transition.double()
    if p.dim() != 2 or p.shape[0] != p.shape[1] or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype)):
        raise ValueError("transition must be a square row-stochastic matrix")
    # π·P = π, Σπ = 1: the stationary distribution as one least-squares solve
    system = torch.cat([p.t() - torch.eye(len(p), dtype=p.dtype), torch.ones(1, len(p), dtype=p.dtype)])
    target = torch.zeros(len(p) + 1, dtype=p.dtype)
    target[-1] = 1
    pi = torch.linalg.lstsq(system, target.unsqueeze(1)).solution.squeeze(1)
    rows = -torch.where(p > 0, p * p.clamp_min(1e-300).log(), 0.0).sum(1)
    return float(pi @ rows)


def _uniform_weights(transition):
    p = transition.double()
    return float((-torch.where(p > 0, p * p.clamp_min(1e-300).log(), 0.0).sum(1)).mean())


def _in_bits(transition):
    return markov_entropy_rate(transition) / math.log(2)


def _entropy_of_pi(transition):
    p = transition.double().numpy()
    values, vectors = np.linalg.eig(p.T)
    pi = np.real(vectors[:, np.argmin(abs(values - 1))])
    pi = pi / pi.sum()
    return float(-(pi * np.log(pi)).sum())


Q3_MISTAKES = (
    (_uniform_weights, "It matches the plain average of the rows' entropies: weight row i by π_i, how often the "
                       "chain is in state i."),
    (_in_bits, "It matches the rate in bits: perplexity is exp(H) with H in nats (natural log)."),
    (_entropy_of_pi, "It matches the entropy of π, how uncertain the *state* is; the rate is how uncertain the "
                     "next token is *given* the current one: −Σ_i π_i Σ_j P_ij log P_ij."),
)

P_Q3 = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.0, 0.6, 0.4]], dtype=torch.float64)


def _q3_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    dense = torch.rand(5, 5, generator=g) + 0.05
    cycle = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    return [Case((P_Q3,), "P_Q3"), Case((dense / dense.sum(1, keepdim=True),), "a random 5-state chain"),
            Case((torch.full((4, 4), 0.25),), "i.i.d. uniform tokens: log 4"),
            Case((cycle,), "a deterministic cycle: 0"),
            Case((torch.tensor([[0.5, 0.6], [0.5, 0.5]]),), "rows that do not sum to 1: a ValueError")]


EXERCISES = [
    Exercise(
        "q1",
        "An LSTM language model has embedding size 32 and hidden sizes 64 (layer 1) and 48 (layer 2), with "
        "PyTorch's 4 gates stacked in each weight matrix. How many weights (not biases) does removing one hidden "
        "unit of layer 1 delete — its intrinsic sparse structure, everything that makes or reads it?",
        Value(_Q1, mistakes={
            _q1(crossing_once=False): "The 4 weights where the unit's rows cross its own column of weight_hh are "
                                      "counted twice: count each weight once.",
            _q1(recurrent_column=False): "Its column of weight_hh is missing: the unit's h is read by every gate "
                                         "of its own layer at the next time step.",
            _q1(next_gates=1): "Layer 2 reads h through each of its 4 gates: 4 × 48 weights, not 48.",
        }),
        hints=("List who *makes* unit k (its rows) and who *reads* it (columns), in both layers.",
               "4·32 + 4·64 (rows) + 4·64 − 4 (own recurrent column, crossings once) + 4·48 (layer 2's columns)."),
        why="A hidden unit is used in four gates and in the recurrence, so removing it must remove rows and columns "
            "in several matrices at once; ISS groups tie them so the group prior removes them together.",
        solution=Q1_SOLUTION,
        example=_Q1,
        wrong_answers=(_q1(crossing_once=False), _q1(recurrent_column=False), _q1(next_gates=1)),
    ),
    Exercise(
        "q2",
        "Write index_lists(mask) → (rows, columns): LongTensors, ascending, of the rows and of the columns of the "
        "2-D matrix `mask` that hold at least one nonzero (what SSE's index-list inference computes). Raise "
        "ValueError when mask is not 2-D.",
        diagnosed(Function(_reference_index_lists, _q2_cases()), Q2_MISTAKES),
        hints=("A row is needed if any of its entries is nonzero: (mask != 0).any(1).",
               "Turn the boolean vectors into indices with .nonzero().squeeze(1)."),
        why="Index lists let a layer compute only its surviving rows and columns without shrinking the model: "
            "they work for any grouping, but a gather per step costs what compaction does not.",
        example=index_lists,
        wrong_answers=(*(m for m, _ in Q2_MISTAKES), _boolean_lists),
    ),
    Exercise(
        "q3",
        "Write markov_entropy_rate(transition): the entropy rate in nats per token of a stationary Markov chain "
        "whose next token follows the row-stochastic matrix transition (S, S), H = −Σ_i π_i Σ_j P_ij·log P_ij, "
        "with π the stationary distribution (π·P = π). Raise ValueError when the rows do not sum to 1.",
        diagnosed(Function(_reference_entropy_rate, _q3_cases(), atol=1e-7), Q3_MISTAKES),
        hints=("First π: a left eigenvector of P for eigenvalue 1, or solve π·(P − I) = 0 with Σπ = 1.",
               "Then the entropy of each row, −Σ_j P_ij log P_ij, weighted by π_i."),
        why="exp(H) is the lowest perplexity any model can reach on long text from this chain: the lesson's "
            "synthetic language has such a floor (its states are hidden, but recoverable from the tokens).",
        example=markov_entropy_rate,
        wrong_answers=tuple(m for m, _ in Q3_MISTAKES),
    ),
]
