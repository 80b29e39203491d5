"""Exercises of lesson 01, pruning by saliency: OBD and OBS saliencies by hand, the OBS update in code, and
which weight magnitude pruning removes wrongly on a correlated quadratic.

q1 (by hand)     OBD's ½·H_qq·θ_q² and OBS's θ_q²/(2·[H⁻¹]_qq) for a 2×2 Hessian (LeCun et al. 1990; Hassibi &
                 Stork 1993)
q2 (implement)   OBS's compensating update δθ = −(θ_q/[H⁻¹]_qq)·H⁻¹·e_q
q3 (predict)     a three-weight quadratic with two nearly redundant weights: magnitude's choice vs the best
"""

from __future__ import annotations

import torch

from . import Case, Exercise, Function, Value

# q1: a correlated 2×2 Hessian and the trained weights; numbers chosen so that H⁻¹ is easy by hand.
H_Q1 = torch.tensor([[4.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
THETA_Q1 = torch.tensor([0.5, 1.0], dtype=torch.float64)


def _q1_expected() -> dict[str, tuple[float, float]]:
    """From the definitions, with H⁻¹ by torch (independent of the package's saliency functions)."""
    h_inv = torch.linalg.inv(H_Q1)
    obd = tuple(float(0.5 * H_Q1[q, q] * THETA_Q1[q] ** 2) for q in (0, 1))
    obs = tuple(float(THETA_Q1[q] ** 2 / (2 * h_inv[q, q])) for q in (0, 1))
    return {"OBD": obd, "OBS": obs}


def _reference_obs_update(theta: torch.Tensor, h_inv: torch.Tensor, q: int) -> torch.Tensor:
    """The reference, written as the constrained minimum: solve for the other weights with θ_q pinned at 0.

    With H = (H⁻¹)⁻¹, minimising ½·δᵀ·H·δ subject to δ_q = −θ_q gives δ_K = H_KK⁻¹·H_Kq·θ_q on the rest."""
    if not 0 <= q < len(theta):
        raise IndexError(f"q must be in [0, {len(theta)}), got {q}")
    h = torch.linalg.inv(h_inv)
    keep = torch.arange(len(theta)) != q
    new = theta.clone()
    new[keep] = theta[keep] + torch.linalg.solve(h[keep][:, keep], h[keep, q] * theta[q])
    new[q] = 0.0
    return new


def obs_update(theta: torch.Tensor, h_inv: torch.Tensor, q: int) -> torch.Tensor:
    """θ after removing weight q with OBS's compensating move: θ − (θ_q / [H⁻¹]_qq)·H⁻¹[:, q]."""
    if not 0 <= q < len(theta):            # Python would read q = −1 as the last weight
        raise IndexError(f"q must be in [0, {len(theta)}), got {q}")
    step = theta[q] / h_inv[q, q]          # how far along H⁻¹·e_q to move
    new = theta - step * h_inv[:, q]       # every weight moves; θ_q lands on 0
    new[q] = 0.0                           # exactly, not up to round-off
    return new


def _zeroes_only(theta, h_inv, q):  # OBD/magnitude: no compensation
    new = theta.clone()
    new[q] = 0.0
    return new


def _wrong_sign(theta, h_inv, q):
    return theta + theta[q] / h_inv[q, q] * h_inv[:, q]


def _uses_the_diagonal(theta, h_inv, q):  # divides by H_qq instead of [H⁻¹]_qq
    h = torch.linalg.inv(h_inv)
    return theta - theta[q] / h[q, q] * h_inv[:, q]


def _forgets_to_divide(theta, h_inv, q):
    return theta - theta[q] * h_inv[:, q]


def _lets_python_index_negatives(theta, h_inv, q):  # no range check: q = −1 silently removes the last weight
    new = theta - theta[q] / h_inv[q, q] * h_inv[:, q]
    new[q] = 0.0
    return new


def _q2_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, generator=g, dtype=torch.float64)
    h5 = a @ a.t() + 0.3 * torch.eye(5, dtype=torch.float64)
    theta5 = torch.randn(5, generator=g, dtype=torch.float64)
    return [
        Case((THETA_Q1.clone(), torch.linalg.inv(H_Q1), 0), "q1's 2×2 problem, remove w1"),
        Case((THETA_Q1.clone(), torch.linalg.inv(H_Q1), 1), "q1's 2×2 problem, remove w2"),
        Case((theta5, torch.linalg.inv(h5), 3), "a random 5×5 positive definite H, remove weight 3"),
        Case((theta5, torch.diag(1 / h5.diagonal()), 2), "a diagonal H: nothing to compensate with"),
    ]


# q3: weight 1 is small but sharply curved; weights 2 and 3 are nearly redundant (correlation 0.95).
H_Q3 = torch.tensor([[10.0, 0.0, 0.0], [0.0, 2.0, 1.9], [0.0, 1.9, 2.0]], dtype=torch.float64)
THETA_Q3 = torch.tensor([0.3, 1.0, -0.9], dtype=torch.float64)


def _q3_expected() -> tuple[int, int]:
    """Brute force: the loss left after removing each weight and re-optimising the others exactly."""
    magnitude = int(THETA_Q3.abs().argmin()) + 1
    costs = []
    for q in range(3):
        keep = torch.arange(3) != q
        delta = torch.zeros(3, dtype=torch.float64)
        delta[q] = -THETA_Q3[q]
        delta[keep] = torch.linalg.solve(H_Q3[keep][:, keep], H_Q3[keep, q] * THETA_Q3[q])
        costs.append(float(0.5 * delta @ H_Q3 @ delta))
    return magnitude, min(range(3), key=costs.__getitem__) + 1


EXERCISES = [
    Exercise(
        "q1",
        "H_Q1 = [[4, 2], [2, 2]] is the Hessian at the trained weights THETA_Q1 = (0.5, 1.0). By hand, "
        "compute each weight's OBD saliency ½·H_qq·θ_q² and OBS saliency θ_q²/(2·[H⁻¹]_qq); answer "
        "{'OBD': (s1, s2), 'OBS': (s1, s2)}.",
        Value(_q1_expected, atol=1e-6),
        hints=("OBD needs the diagonal of H; OBS needs the diagonal of H's inverse. Invert the 2 × 2 matrix first.",
               "det H = 4·2 − 2·2 = 4, so H⁻¹ = [[2, −2], [−2, 4]] / 4. OBS divides by the diagonal of H⁻¹, "
             "not of H."),
        why='OBD zeroes the weight and leaves the other; OBS lets the other weight move, so its cost is never larger.',
        solution="H⁻¹ = [[0.5, −0.5], [−0.5, 1.0]].\n"
                 "OBD: ½·4·0.5² = 0.5 and ½·2·1² = 1.0.\n"
                 "OBS: 0.5²/(2·0.5) = 0.25 and 1²/(2·1.0) = 0.5.\n"
                 "    {'OBD': (0.5, 1.0), 'OBS': (0.25, 0.5)}\n"
                 "Both pick w1 here (in two dimensions they always agree), but OBS's loss is lower: the "
                 "other weight moves to make up. Check with\n"
                 "    obs.obs_saliency(THETA_Q1, torch.linalg.inv(H_Q1))",
        example={"OBD": (0.5, 1.0), "OBS": (0.25, 0.5)},
        wrong_answers=(
            {"OBD": (0.25, 0.5), "OBS": (0.5, 1.0)},       # swapped
            {"OBD": (1.0, 2.0), "OBS": (0.5, 1.0)},        # forgot the ½
            {"OBD": (0.5, 1.0), "OBS": (0.03125, 0.25)},   # θ_q²/(2·H_qq): the diagonal of H, not of H⁻¹
            {"OBD": (0.5, 1.0)},                            # OBS missing
        ),
    ),
    Exercise(
        "q2",
        "Write obs_update(theta, h_inv, q): the weights after removing weight q with OBS's compensating "
        "update δθ = −(θ_q/[H⁻¹]_qq)·H⁻¹·e_q (theta (n,), h_inv (n, n) the inverse Hessian). Weight q must "
        "end exactly at 0; raise IndexError for a q outside [0, n).",
        Function(_reference_obs_update, [*_q2_cases(), Case((THETA_Q1.clone(), torch.linalg.inv(H_Q1), 2),
                                                            "q = 2 on two weights (must raise IndexError)"),
                                         Case((THETA_Q1.clone(), torch.linalg.inv(H_Q1), -1),
                                              "q = −1 (must raise IndexError, not remove the last weight)")],
                 atol=1e-9, rtol=1e-9),
        hints=("The move is along one column of the inverse Hessian, scaled so that weight q lands exactly on 0; an "
               "index the vector does not have must raise IndexError (−1 included).",
               "H⁻¹·e_q is the column h_inv[:, q]. Move θ by −(θ_q / h_inv[q, q]) times that column, then set "
             "new[q] = 0.0 to remove the round-off."),
        why="That move is the constrained minimum of the quadratic: no other move that zeroes weight q raises the "
            "loss less.",
        example=obs_update,
        wrong_answers=(_zeroes_only, _wrong_sign, _uses_the_diagonal, _forgets_to_divide,
                       _lets_python_index_negatives),
    ),
    Exercise(
        "q3",
        "The quadratic loss ½·(θ − θ*)ᵀ·H_Q3·(θ − θ*) has θ* = THETA_Q3 = (0.3, 1.0, −0.9) and "
        "H_Q3 = [[10, 0, 0], [0, 2, 1.9], [0, 1.9, 2]]. Without computing anything large: which weight (1, 2 "
        "or 3) does magnitude pruning remove, and which one costs least to remove once the others may move? "
        "Answer (magnitude's, best).",
        Value(_q3_expected, mistakes={
            (1, 1): "Weight 1 is the smallest, but its curvature is 10 and nothing can take over its job; "
                    "zeroing it costs ½·10·0.3² = 0.45. Look at weights 2 and 3.",
            (3, 3): "Magnitude looks at |θ| only: which value is smallest?",
            (1, 2): "Close: weights 2 and 3 can stand in for each other, but removing the smaller of the two "
                    "costs less.",
        }),
        hints=("Magnitude only sees |θ|. For the best choice, ask which weights could do each other's job (look at "
               "the off-diagonal entries of H).",
               "Weights 2 and 3 have correlation 1.9/2 = 0.95: either can do most of the other's job. With "
             "compensation, removing weight q costs θ_q²/(2·[H⁻¹]_qq) — small when [H⁻¹]_qq is large, as it "
             "is for nearly redundant weights."),
        why='OBS sees that nearly redundant weights can compensate for each other, which magnitude and OBD cannot.',
        solution="Magnitude removes weight 1 (|0.3| is the smallest). But weight 1 is sharply curved "
                 "(H₁₁ = 10) and uncorrelated, so removing it costs 0.45 whatever happens. Weights 2 and 3 "
                 "are nearly redundant: [H⁻¹]₂₂ = [H⁻¹]₃₃ = 2/0.39 ≈ 5.1, so OBS's cost is 1.0²/10.3 ≈ 0.097 "
                 "for weight 2 and 0.81/10.3 ≈ 0.079 for weight 3. The answer is (1, 3). OBD "
                 "(½·H_qq·θ_q² = 0.45, 1.0, 0.81) would also remove weight 1: only OBS sees that the others "
                 "can compensate.",
        example=(1, 3),
        wrong_answers=((1, 1), (3, 3), (1, 2), (2, 3)),
    ),
]
