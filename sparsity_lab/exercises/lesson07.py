"""Exercises of lesson 07, Sparse Structured Ensembles: the group sparse prior's gradient by hand, an ensemble's
FLOPs counted from its members' masks as SSE counts them, and the ensemble's prediction from its members'.

q1 (by hand)     ∇ log p for one group: −λ·√dim(θ_g)·θ_g/‖θ_g‖₂ (Zhang & Ou 2018, the group sparse prior)
q2 (count)       the smallest submatrix holding each weight matrix's nonzeros, summed over layers and members
q3 (implement)   the ensemble's predictive error: average the members' softmax outputs, then take the argmax
"""

from __future__ import annotations

import math

import torch

from . import Case, Exercise, Function, Value, diagnosed

# q1: one group of two weights; the reference is written with math.
LAM_Q1 = 0.1
THETA_Q1 = (0.3, -0.4)                 # ‖θ_g‖ = 0.5, dim 2


def _q1_gradient(sqrt_dim: bool = True, normalise: bool = True, sign: float = -1.0) -> list[float]:
    norm = math.hypot(*THETA_Q1)
    scale = LAM_Q1 * (math.sqrt(len(THETA_Q1)) if sqrt_dim else 1.0) / (norm if normalise else 1.0)
    return [round(sign * scale * t, 6) for t in THETA_Q1]


_Q1 = _q1_gradient()
Q1_SOLUTION = f"""\
log p(θ) = −λ·√dim·‖θ_g‖ for this one group, dim = 2 and ‖θ_g‖ = √(0.3² + 0.4²) = 0.5.
∂‖θ_g‖/∂θ_g = θ_g/‖θ_g‖ = (0.6, −0.8), so ∇ log p = −0.1 · √2 · (0.6, −0.8) = ({_Q1[0]:.4f}, {_Q1[1]:.4f}).
    return [{_Q1[0]:.4f}, {_Q1[1]:.4f}]
The gradient has length λ·√dim whatever the group's size: it pulls a small group to 0 as hard as a large one, which
is why whole groups reach (nearly) zero together. Check with sse.group_sparse_prior(...).gradient(...)."""

# q2: two members of a 6-4-3 network, their masks (True = kept); counted here with loops.
Q2_MASKS = [
    {"layers.0.weight": torch.tensor([[1, 0, 1, 0, 0, 0],
                                      [0, 0, 1, 0, 0, 0],
                                      [0, 0, 0, 0, 0, 0],
                                      [1, 0, 0, 0, 0, 0]], dtype=torch.bool),
     "layers.1.weight": torch.tensor([[1, 0, 0, 1],
                                      [0, 0, 0, 0],
                                      [1, 1, 0, 0]], dtype=torch.bool)},
    {"layers.0.weight": torch.tensor([[0, 1, 1, 1, 0, 0],
                                      [0, 0, 0, 0, 0, 0],
                                      [0, 1, 0, 0, 0, 1],
                                      [0, 0, 0, 0, 0, 0]], dtype=torch.bool),
     "layers.1.weight": torch.tensor([[0, 0, 1, 0],
                                      [1, 0, 1, 0],
                                      [0, 0, 0, 0]], dtype=torch.bool)},
]


def _submatrix(mask: torch.Tensor) -> int:
    rows = sum(1 for i in range(mask.shape[0]) if any(bool(v) for v in mask[i]))
    cols = sum(1 for j in range(mask.shape[1]) if any(bool(mask[i, j]) for i in range(mask.shape[0])))
    return rows * cols


_Q2 = sum(_submatrix(m) for member in Q2_MASKS for m in member.values())
_Q2_NONZERO = sum(int(m.sum()) for member in Q2_MASKS for m in member.values())
_Q2_DENSE = sum(m.numel() for member in Q2_MASKS for m in member.values())
_Q2_ONE_MEMBER = sum(_submatrix(m) for m in Q2_MASKS[0].values())
_Q2_ROWS_PLUS_COLS = sum(int(m.any(1).sum()) + int(m.any(0).sum()) for member in Q2_MASKS for m in member.values())
Q2_SOLUTION = f"""\
For each weight matrix, count its rows with a nonzero and its columns with a nonzero; their product is the
smallest submatrix holding every nonzero (what a compacted dense layer computes). Member 1: layer 0 has 3 rows
(0, 1, 3) × 2 columns (0, 2) = 6, layer 1 has 2 rows × 3 columns = 6; member 2: 2 × 4 = 8 and 2 × 2 = 4.
    return {_Q2}
Against 2 × (24 + 12) = {_Q2_DENSE} dense multiply-adds, or {_Q2_NONZERO} nonzeros: compaction reaches the submatrix
count, not the nonzero count, which is why the group prior, which empties whole rows and columns, gets closer to the
nonzeros."""


# q3: the reference averages probabilities in float64, with an explicit loop over members.
def _reference_ensemble_error(member_logits: torch.Tensor, y: torch.Tensor) -> float:
    if member_logits.dim() != 3 or member_logits.shape[1] != len(y):
        raise ValueError("member_logits must be (M, N, C) with one label per example")
    mean = sum(torch.softmax(member_logits[m].double(), -1) for m in range(len(member_logits))) / len(member_logits)
    return 100 * float((mean.argmax(1) != y).double().mean())


def ensemble_error(member_logits: torch.Tensor, y: torch.Tensor) -> float:
    """Test error (%) of the ensemble: the mean of the members' softmax outputs, then its argmax.
    member_logits (M, N, C), y (N,)."""
    if member_logits.dim() != 3 or member_logits.shape[1] != len(y):
        raise ValueError("member_logits must be (M, N, C) with one label per example")
    probs = torch.softmax(member_logits, -1).mean(0)
    return 100 * float((probs.argmax(1) != y).double().mean())


def _averaged_logits(member_logits, y):
    return 100 * float((member_logits.mean(0).argmax(1) != y).double().mean())


def _majority_vote(member_logits, y):
    votes = member_logits.argmax(2)
    return 100 * float((votes.mode(0).values != y).double().mean())


def _mean_member_error(member_logits, y):
    return 100 * float((member_logits.argmax(2) != y).double().mean())


def _fraction_not_percent(member_logits, y):
    return float((torch.softmax(member_logits, -1).mean(0).argmax(1) != y).double().mean())


Q3_MISTAKES = (
    (_averaged_logits, "It matches the argmax of the averaged logits: average the probabilities, p = (1/M)·Σ "
                       "softmax(z_m); logits of different members are not on one scale."),
    (_majority_vote, "It matches a majority vote of the members' argmaxes: the ensemble averages the whole "
                     "distributions, so a confident member outweighs an unsure one."),
    (_mean_member_error, "It matches the members' average error: that is how good one member is on average, not "
                         "how good their average is."),
    (_fraction_not_percent, "It matches the error as a fraction: return a percentage, 100 × the fraction wrong."),
)


def _q3_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 40, 5, generator=g) * 2
    y = torch.randint(0, 5, (40,), generator=g)
    # one confident member against two unsure ones: averaging probabilities, logits and votes disagree here
    split = torch.tensor([[[9.0, 0.0, 0.0]], [[0.0, 0.4, 0.0]], [[0.0, 0.4, 0.0]]])
    scaled = torch.tensor([[[3.0, 0.0]], [[0.0, 0.9]]]).repeat(1, 4, 1) * torch.tensor([1.0, 4.0])[:, None, None]
    # one very confident member against two fairly sure ones: the mean of the probabilities says class 1, the mean
    # of the logits (a geometric mean of the probabilities) says class 0
    confident = torch.tensor([[[10.0, 0.0, 0.0]], [[0.0, 3.0, 0.0]], [[0.0, 3.0, 0.0]]])
    return [
        Case((logits, y), "3 members, 40 examples, 5 classes"),
        Case((split, torch.tensor([0])), "one confident member, two unsure ones"),
        Case((confident, torch.tensor([1])), "one member sure of class 0, two fairly sure of class 1"),
        Case((scaled, torch.tensor([1, 1, 0, 0])), "two members whose logits are on different scales"),
        Case((logits[:1], y), "an ensemble of one"),
        Case((logits, y[:10]), "40 examples but 10 labels: a ValueError"),
    ]


EXERCISES = [
    Exercise(
        "q1",
        "The group sparse prior log p(θ) = −λ·Σ_g √dim(θ_g)·‖θ_g‖₂ with λ = LAM_Q1 = 0.1. For the single group "
        "θ_g = THETA_Q1 = (0.3, −0.4), give ∇_{θ_g} log p by hand, as a list of two numbers to four decimals.",
        Value(_Q1, atol=2e-4, mistakes={
            tuple(_q1_gradient(sqrt_dim=False)): "The factor √dim(θ_g) = √2 is part of the prior: it scales each "
                                                 "group's pull with the square root of its size.",
            tuple(_q1_gradient(normalise=False)): "∂‖θ_g‖/∂θ_g is θ_g/‖θ_g‖, a unit vector: divide by ‖θ_g‖ = 0.5.",
            tuple(_q1_gradient(sign=1.0)): "The sign: log p falls as the group grows, so its gradient points "
                                           "toward 0, against θ_g.",
        }),
        hints=("Differentiate −λ·√2·‖θ_g‖: what is the gradient of a vector's length?",
               "∂‖θ‖/∂θ = θ/‖θ‖ = (0.6, −0.8); multiply by −λ·√2."),
        why="The prior's pull on a group has the same length, λ·√dim, however small the group is, so weak groups "
            "are driven to zero as a whole: that is what lets pruning remove whole neurons.",
        solution=Q1_SOLUTION,
        example=lambda: [round(v, 4) for v in _Q1],
        wrong_answers=(_q1_gradient(sqrt_dim=False), _q1_gradient(normalise=False), _q1_gradient(sign=1.0),
                       [THETA_Q1[0], THETA_Q1[1]]),
    ),
    Exercise(
        "q2",
        "Q2_MASKS holds the masks of two members of a 6-4-3 network (True = kept). Count the ensemble's FLOPs as "
        "SSE does: for each weight matrix the smallest submatrix holding all its nonzeros (rows with a nonzero × "
        "columns with a nonzero), summed over both layers and both members.",
        Value(_Q2, mistakes={
            _Q2_NONZERO: "That counts the nonzeros, what an ideal sparse kernel would compute; SSE counts the "
                         "smallest dense submatrix, what a compacted dense layer computes.",
            _Q2_DENSE: "That counts every entry, the dense cost of both members.",
            _Q2_ONE_MEMBER: "That is one member; the ensemble runs both.",
            _Q2_ROWS_PLUS_COLS: "Rows plus columns: the submatrix has rows × columns entries.",
        }),
        hints=("For one matrix: which rows have any True? Which columns? The submatrix is their product.",
               "Member 1: layer 0 is 3 rows × 2 columns, layer 1 2 × 3; member 2: 2 × 4 and 2 × 2."),
        why="A compacted layer is dense over its surviving rows and columns, so scattered nonzeros cost a whole "
            "row and column each; grouped zeros are what make the count fall.",
        solution=Q2_SOLUTION,
        example=_Q2,
        wrong_answers=(_Q2_NONZERO, _Q2_DENSE, _Q2_ONE_MEMBER, _Q2_ROWS_PLUS_COLS),
    ),
    Exercise(
        "q3",
        "Write ensemble_error(member_logits, y): member_logits (M, N, C) are the members' outputs on N examples, y "
        "(N,) the labels. Return the ensemble's test error in percent: average the members' softmax outputs, then "
        "take the most probable class. Raise ValueError when N and len(y) disagree.",
        diagnosed(Function(_reference_ensemble_error, _q3_cases(), atol=1e-9), Q3_MISTAKES),
        hints=("Bayesian model averaging averages predictive distributions: p(y|x) = (1/M)·Σ_m p(y|x, θ_m).",
               "probs = torch.softmax(member_logits, -1).mean(0); error = 100 × mean(probs.argmax(1) != y)."),
        why="Averaging distributions lets members that disagree cancel their mistakes; diverse members — different "
            "samples, different surviving units — are what makes M sparse models beat one dense one.",
        example=ensemble_error,
        wrong_answers=tuple(m for m, _ in Q3_MISTAKES),
    ),
]
