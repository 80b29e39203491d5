"""Exercises of lesson 04, sparse variational dropout: Gaussian dropout's weight as a posterior by hand, the local
reparameterisation in code, and where to cut a histogram of log α.

q1 (by hand)     the mean and variance of θ·ξ, ξ ~ N(1, α), read as N(θ, σ²) with σ² = α·θ², and log α = log σ² − log θ²
                 (Molchanov et al. 2017, §3–4)
q2 (implement)   one draw of a Linear layer's pre-activations, b = x·θᵀ + bias + √(x²·σ²ᵀ)·ε, an independent ε per
                 example (§4, the local reparameterisation trick)
q3 (choose)      a threshold on log α in the valley of a trained-looking bimodal histogram, and the fraction it keeps
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping

import numpy as np
import torch

from ..methods.vdrop import LOG_ALPHA_LIMIT, THRESHOLD
from . import AllOf, Case, Exercise, Function, Holds, Range, Record, Value, diagnosed

# q1: one weight under Gaussian dropout; the references are written with math, not the package.
THETA_Q1, ALPHA_Q1 = -0.4, 0.25


def _q1_expected() -> dict[str, float]:
    variance = ALPHA_Q1 * THETA_Q1 ** 2                       # Var[θ·ξ] = θ²·Var[ξ]
    exact = {"mean": THETA_Q1, "variance": variance, "log_alpha": math.log(variance) - math.log(THETA_Q1 ** 2)}
    return {key: round(value, 6) for key, value in exact.items()}    # six decimals: what the messages show


_Q1 = _q1_expected()
Q1_MISTAKES = {
    "variance α": ALPHA_Q1,
    "variance α·θ": ALPHA_Q1 * THETA_Q1,
    "variance α·|θ|": ALPHA_Q1 * abs(THETA_Q1),
    "the std": math.sqrt(ALPHA_Q1) * abs(THETA_Q1),
    "mean 1": 1.0,
    "mean |θ|": abs(THETA_Q1),
    "log α sign": -_Q1["log_alpha"],
    "log σ²": math.log(_Q1["variance"]),
    "log |θ|": math.log(_Q1["variance"]) - math.log(abs(THETA_Q1)),
}


def _q1_example() -> dict[str, float]:
    return {"mean": -0.4, "variance": 0.04, "log_alpha": -1.386}     # three decimals, as from a calculator


Q1_SOLUTION = """\
E[w] = θ·E[ξ] = θ = −0.4;  Var[w] = θ²·Var[ξ] = α·θ² = 0.25 · 0.16 = 0.04, so σ² = 0.04 (σ = 0.2).
log α = log σ² − log θ² = log 0.04 − log 0.16 = −3.219 + 1.833 = −1.386 (= log 0.25: the same α, read back).
    return {"mean": -0.4, "variance": 0.04, "log_alpha": -1.386}
Check with vdrop.log_alpha(torch.tensor(THETA_Q1), torch.tensor(0.04).log()).
The sign of θ drops out of the variance and of log α: only θ² appears."""


# q2: the reference sums over the inputs explicitly, in float64, independently of F.linear and of the package's hook.
def _reference_local_reparameterisation(x: torch.Tensor, theta: torch.Tensor, log_sigma2: torch.Tensor,
                                        bias: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    xd, sigma2 = x.double()[:, None, :], log_sigma2.double().exp()[None]
    mean = (xd * theta.double()[None]).sum(-1) + bias.double()
    var = (xd * xd * sigma2).sum(-1)
    return (mean + var.sqrt() * eps.double()).to(x.dtype)


def local_reparameterisation(x: torch.Tensor, theta: torch.Tensor, log_sigma2: torch.Tensor, bias: torch.Tensor,
                             eps: torch.Tensor) -> torch.Tensor:
    """One draw of a Linear layer's pre-activations under weight noise N(θ, σ²), sampled per example: x (B, in),
    theta and log_sigma2 (out, in), bias (out,), eps (B, out) standard normal → (B, out)."""
    mean = x @ theta.T + bias
    var = (x * x) @ log_sigma2.exp().T
    return mean + torch.sqrt(var) * eps


def _std_not_variance(x, theta, log_sigma2, bias, eps):     # x·σ: a sum of standard deviations
    return x @ theta.T + bias + (x @ (log_sigma2 / 2).exp().T) * eps


def _x_not_squared(x, theta, log_sigma2, bias, eps):
    return x @ theta.T + bias + torch.sqrt(x @ log_sigma2.exp().T) * eps


def _sigma_as_variance(x, theta, log_sigma2, bias, eps):
    return x @ theta.T + bias + torch.sqrt((x * x) @ (log_sigma2 / 2).exp().T) * eps


def _no_bias(x, theta, log_sigma2, bias, eps):
    return x @ theta.T + torch.sqrt((x * x) @ log_sigma2.exp().T) * eps


def _one_noise_row_for_the_batch(x, theta, log_sigma2, bias, eps):   # as if the weights were drawn once per batch
    return x @ theta.T + bias + torch.sqrt((x * x) @ log_sigma2.exp().T) * eps[0]


Q2_MISTAKES = (
    (_std_not_variance, "It matches x·σᵀ·ε: the standard deviations of a sum do not add, its variances do. "
                        "Var b = Σ_i x_i²·σ_i², then take the square root."),
    (_x_not_squared, "It matches √(x·σ²ᵀ)·ε: Var(x_i·w_i) = x_i²·σ_i², so x is squared (and x·σ² can be negative)."),
    (_sigma_as_variance, "It matches a variance of x²·exp(log σ²/2)ᵀ: exp(log σ²/2) is σ, the variance is "
                         "σ² = exp(log σ²)."),
    (_no_bias, "It matches the draw without the bias: the mean is x·θᵀ + bias."),
    (_one_noise_row_for_the_batch, "It matches one noise row eps[0] for the whole batch: every example needs its own "
                                   "draw, eps[b] for row b; that independence is what lowers the gradient's "
                                   "variance."),
)


def _q2_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)

    def layer(batch: int, n_in: int, n_out: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch, n_in, generator=g, dtype=dtype),
                torch.randn(n_out, n_in, generator=g, dtype=dtype) * 0.5,
                torch.randn(n_out, n_in, generator=g, dtype=dtype) * 0.5 - 2,    # σ² around 0.14
                torch.randn(n_out, generator=g, dtype=dtype) * 0.1,
                torch.randn(batch, n_out, generator=g, dtype=dtype))

    x, theta, log_sigma2, bias, eps = layer(4, 6, 3)
    x[1] = 0.0                                           # an example whose inputs are all 0: b = bias, no noise
    x[2, ::2] = 0.0
    return [
        Case(layer(5, 8, 4), "x (5, 8), θ and log σ² (4, 8), bias (4,), ε (5, 4), float32"),
        Case(layer(3, 4, 2, torch.float64), "x (3, 4), θ and log σ² (2, 4), bias (2,), ε (3, 2), float64"),
        Case(layer(1, 5, 3), "a batch of one: x (1, 5), ε (1, 3)"),
        Case((x, theta, log_sigma2, bias, eps), "x (4, 6) whose row 1 is all 0 and row 2 half 0"),
    ]


Q2_CASES = _q2_cases()
Q2_ATOL = 1e-3       # room for √(var + 1e-8): at most 1e-4·|ε| apart, where x is 0


# q3: log α of a trained-looking layer, simulated (seeded, so everyone sees the same histogram): most weights are
# noise near the clip at +8, a smaller group carries signal around −4…0, and a few sit in between.
Q3_SEED, Q3_SIZE = 0, 20_000
Q3_BIN_WIDTH = 0.5        # the histogram's bins on [−8, 8]
Q3_VALLEY_LEVEL = 0.1     # a bin is in the valley when it holds under 10% of the smaller mode's peak


def _simulated_log_alphas(seed: int = Q3_SEED, size: int = Q3_SIZE) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    which = torch.rand(size, generator=g)
    noise = 7.5 + 0.8 * torch.randn(size, generator=g)            # 90%: swamped by their noise, many at the clip
    signal = -2.0 + 1.0 * torch.randn(size, generator=g)          # 9%: θ well above its noise
    between = -1.0 + 6.0 * torch.rand(size, generator=g)          # 1%: spread thinly over the valley
    mixed = torch.where(which < 0.90, noise, torch.where(which < 0.99, signal, between))
    return mixed.clamp(-LOG_ALPHA_LIMIT, LOG_ALPHA_LIMIT)


Q3_LOG_ALPHAS = _simulated_log_alphas()


def log_alpha_counts(log_alphas: torch.Tensor | np.ndarray,
                     bin_width: float = Q3_BIN_WIDTH) -> tuple[np.ndarray, np.ndarray]:
    """A histogram of log α on [−8, 8]: (counts (bins,) int, edges (bins + 1,)); values at the clip land in the end
    bins. For a bar chart: x = the bins' centres, width = bin_width."""
    bins = round(2 * LOG_ALPHA_LIMIT / bin_width)
    if bins < 1 or not math.isclose(bins * bin_width, 2 * LOG_ALPHA_LIMIT):
        raise ValueError(f"bin_width must divide the range [−8, 8] into whole bins, got {bin_width!r}")
    values = np.clip(np.asarray(log_alphas, dtype=float).reshape(-1), -LOG_ALPHA_LIMIT, LOG_ALPHA_LIMIT)
    return np.histogram(values, bins=np.linspace(-LOG_ALPHA_LIMIT, LOG_ALPHA_LIMIT, bins + 1))


def valley(counts: np.ndarray, edges: np.ndarray, level: float = Q3_VALLEY_LEVEL) -> tuple[float, float]:
    """The log α range (low, high) between a histogram's two modes where it is sparse: the span of the bins between
    the two highest local maxima whose counts are below `level` × the smaller of the two peaks."""
    c = np.asarray(counts)
    peaks = [i for i in range(len(c)) if (i == 0 or c[i] > c[i - 1]) and (i == len(c) - 1 or c[i] >= c[i + 1])]
    if len(peaks) < 2:
        raise ValueError(f"the histogram has {len(peaks)} mode(s); a valley needs two")
    first, second = sorted(sorted(peaks, key=lambda i: c[i])[-2:])
    sparse = [i for i in range(first + 1, second) if c[i] < level * min(c[first], c[second])]
    if not sparse:
        raise ValueError(f"no bin between the modes at {edges[first]:g} and {edges[second]:g} holds under "
                         f"{level:g} × the smaller peak")
    return float(edges[sparse[0]]), float(edges[sparse[-1] + 1])


Q3_HISTOGRAM = log_alpha_counts(Q3_LOG_ALPHAS)          # (counts, edges)
Q3_VALLEY = valley(*Q3_HISTOGRAM)


def kept_below(log_alphas: torch.Tensor, threshold: float) -> float:
    """The fraction of weights with log α < threshold (those the test-time network keeps)."""
    return (log_alphas < threshold).double().mean().item()


def _threshold(answer: Mapping) -> float:
    return float(answer["threshold"])


def _in_valley(answer: Mapping) -> bool:
    return Q3_VALLEY[0] <= _threshold(answer) <= Q3_VALLEY[1]


def _explain_outside_valley(answer: Mapping) -> str:
    t, (low, high) = _threshold(answer), Q3_VALLEY
    kept = kept_below(Q3_LOG_ALPHAS, t)
    if t > high:
        where = (f"{t:g} is inside the large mode on the right: it keeps {kept:.1%} of the weights, and the ones it "
                 f"adds have log α > {high:g}, a noise std over {math.exp(high / 2):.0f} times their mean")
    else:
        where = (f"{t:g} is inside the small mode on the left: it keeps {kept:.1%} of the weights where a cut in the "
                 f"valley keeps {kept_below(Q3_LOG_ALPHAS, low):.1%} to {kept_below(Q3_LOG_ALPHAS, high):.1%}, "
                 f"so it removes weights that carry signal")
    return f"expected a threshold in the sparse valley between the two modes, from {low:g} to {high:g}; {where}"


def _kept_matches(answer: Mapping) -> bool:
    return abs(float(answer["kept_fraction"]) - kept_below(Q3_LOG_ALPHAS, _threshold(answer))) <= 1e-6


def _explain_kept(answer: Mapping) -> str:
    t, got = _threshold(answer), float(answer["kept_fraction"])
    kept = kept_below(Q3_LOG_ALPHAS, t)
    message = f"expected the fraction of Q3_LOG_ALPHAS below your threshold {t:g}, {kept:.6f}, got {got:.6f}"
    if abs(got - (1 - kept)) <= 1e-6:
        message += ": that is the fraction with log α ≥ t, the weights removed. The network keeps log α < t"
    return message


def _example_threshold() -> dict[str, float]:
    threshold = 3.0
    return {"threshold": threshold, "kept_fraction": (Q3_LOG_ALPHAS < threshold).float().mean().item()}


_LOW, _HIGH = Q3_VALLEY
_WRONG_SIGN = math.erfc(math.exp(-THRESHOLD / 2) / math.sqrt(2)) / 2     # P(w·θ < 0) = Φ(−1/√α) at log α = 3
Q3_SOLUTION = """\
threshold = 3.0
return {"threshold": threshold, "kept_fraction": (Q3_LOG_ALPHAS < threshold).float().mean().item()}

""" + textwrap.fill(
    f"Any threshold from {_LOW:g} to {_HIGH:g} lies in the valley; the paper's 3 is one of them. The valley is a "
    f"natural cut because so few weights live there: moving the threshold across all of it changes the kept "
    f"fraction only from {kept_below(Q3_LOG_ALPHAS, _LOW):.1%} to {kept_below(Q3_LOG_ALPHAS, _HIGH):.1%}, so the "
    f"network hardly depends on the choice. Right of log α = 3 a weight's posterior is N(θ, α·θ²) with α ≥ e³ ≈ 20: "
    f"its noise std √α·|θ| ≈ 4.5·|θ| swamps its mean (a draw has the wrong sign {_WRONG_SIGN:.0%} of the time), so "
    f"the weight carries almost no signal and setting it to 0 costs almost nothing. A cut inside the noise mode "
    f"keeps thousands of such weights; a cut inside the signal mode removes weights the network uses.", 116)


EXERCISES = [
    Exercise(
        "q1",
        "Gaussian dropout multiplies a weight θ = THETA_Q1 = −0.4 by noise ξ ~ N(1, α) with α = ALPHA_Q1 = 0.25. By "
        "hand, give the mean and the variance of w = θ·ξ (the variance is σ² of the equivalent posterior "
        "N(θ, σ²)) and log α = log σ² − log θ²; answer {'mean': ..., 'variance': ..., 'log_alpha': ...} to three "
        "decimals.",
        Record({
            "mean": Value(_Q1["mean"], atol=1e-3, mistakes={
                Q1_MISTAKES["mean 1"]: "1 is the mean of the noise ξ; the weight is θ·ξ, with mean θ·E[ξ] = θ.",
                Q1_MISTAKES["mean |θ|"]: "The noise has mean 1, so it keeps θ's sign: E[θ·ξ] = θ = −0.4.",
            }),
            "variance": Value(_Q1["variance"], atol=1e-3, mistakes={
                Q1_MISTAKES["variance α"]: "α is the variance of ξ; scaling by θ multiplies a variance by θ²: "
                                           "Var[θ·ξ] = θ²·α.",
                Q1_MISTAKES["variance α·θ"]: "A variance scales with the square of the factor, and is never "
                                             "negative: Var[θ·ξ] = θ²·α.",
                Q1_MISTAKES["variance α·|θ|"]: "A variance scales with the square of the factor: Var[θ·ξ] = θ²·α.",
                Q1_MISTAKES["the std"]: "That is the standard deviation √α·|θ|; the variance is its square, α·θ².",
            }),
            "log_alpha": Value(_Q1["log_alpha"], atol=1e-3, mistakes={
                Q1_MISTAKES["log α sign"]: "The sign: log α = log σ² − log θ², and σ² = α·θ² is smaller than θ² "
                                           "when α < 1, so log α is negative.",
                Q1_MISTAKES["log σ²"]: "That is log σ², the parameter the additive reparameterisation learns; "
                                       "log α subtracts log θ².",
                Q1_MISTAKES["log |θ|"]: "log α subtracts log θ², not log |θ|: α = σ²/θ².",
            }),
        }),
        hints=("ξ has mean 1 and variance α; a constant factor θ scales the mean by θ and the variance by θ².",
               "mean = θ; variance = α·θ² = 0.25 · 0.16; log α = log σ² − log θ² = log 0.04 − log 0.16, which is "
               "log 0.25 again."),
        why="Multiplicative noise N(1, α) makes the weight N(θ, α·θ²): the noise grows with the weight, and α = σ²/θ² "
            "is the noise-to-signal ratio the lesson's threshold reads.",
        solution=Q1_SOLUTION,
        example=_q1_example,
        wrong_answers=(
            {**_Q1, "variance": Q1_MISTAKES["variance α"]},
            {**_Q1, "variance": Q1_MISTAKES["variance α·θ"]},
            {**_Q1, "variance": Q1_MISTAKES["the std"]},
            {**_Q1, "mean": Q1_MISTAKES["mean 1"]},
            {**_Q1, "mean": Q1_MISTAKES["mean |θ|"]},
            {**_Q1, "log_alpha": Q1_MISTAKES["log α sign"]},
            {**_Q1, "log_alpha": Q1_MISTAKES["log σ²"]},
            {**_Q1, "log_alpha": Q1_MISTAKES["log |θ|"]},
            {"mean": _Q1["mean"], "variance": _Q1["variance"]},
        ),
    ),
    Exercise(
        "q2",
        "Write local_reparameterisation(x, theta, log_sigma2, bias, eps) for a Linear layer: x (B, in), theta and "
        "log_sigma2 (out, in), bias (out,), eps (B, out) standard normal. Return one draw of the pre-activations, "
        "mean + √var·eps, with mean = x·θᵀ + bias and var = x²·exp(log σ²)ᵀ, a (B, out) tensor of x's dtype. "
        "(Adding 1e-8 inside the square root, as the package does to keep the gradient finite where x is 0, is "
        "fine.)",
        diagnosed(Function(_reference_local_reparameterisation, Q2_CASES, atol=Q2_ATOL, rtol=1e-5), Q2_MISTAKES),
        hints=("Each pre-activation b = Σ_i x_i·w_i is a sum of independent Gaussians: its mean is the sum of the "
               "means, its variance the sum of the variances. What is the variance of x_i·w_i?",
               "mean = x @ theta.T + bias; var = (x * x) @ log_sigma2.exp().T; return mean + torch.sqrt(var) * eps "
               "(eps row b belongs to example b)."),
        why="b is Gaussian given x, so one draw of b per example replaces a draw of every weight: the noise is "
            "independent across the batch, which cuts the gradient's variance, at the cost of one more matrix "
            "product.",
        example=local_reparameterisation,
        wrong_answers=tuple(mistake for mistake, _ in Q2_MISTAKES),
    ),
    Exercise(
        "q3",
        "Q3_LOG_ALPHAS holds the log α of 20,000 weights, shaped like a trained layer's (simulated, seeded): draw "
        "its histogram (Q3_HISTOGRAM = (counts, edges)). Choose a threshold t for the test-time network, which "
        "keeps the weights with log α < t, and report {'threshold': t, 'kept_fraction': the fraction of "
        "Q3_LOG_ALPHAS below t}.",
        AllOf([
            Record({"threshold": Range(-LOG_ALPHA_LIMIT, LOG_ALPHA_LIMIT, "the threshold",
                                       "log α is clipped to [−8, 8]"),
                    "kept_fraction": Range(0, 1, "the kept fraction",
                                           "a fraction of the weights, from 0 to 1, not a percentage")}),
            Holds(_in_valley, _explain_outside_valley),
            Holds(_kept_matches, _explain_kept),
        ]),
        hints=("The histogram has two modes: which one holds the weights whose noise swamps them? Cut where there "
               "are almost no weights to decide about.",
               "Place t in the sparse stretch between the small mode (around −2) and the large one (near +8), e.g. "
               "the paper's 3; then kept_fraction = (Q3_LOG_ALPHAS < t).float().mean().item()."),
        why=f"In the valley almost no weights sit near the cut, so any t from {Q3_VALLEY[0]:g} to {Q3_VALLEY[1]:g} "
            f"keeps nearly the same network; at log α = 3 a weight's noise std is already √20 ≈ 4.5 times its mean.",
        solution=Q3_SOLUTION,
        example=_example_threshold,
        wrong_answers=(
            {"threshold": 7.5, "kept_fraction": kept_below(Q3_LOG_ALPHAS, 7.5)},
            {"threshold": -3.0, "kept_fraction": kept_below(Q3_LOG_ALPHAS, -3.0)},
            {"threshold": THRESHOLD, "kept_fraction": 1 - kept_below(Q3_LOG_ALPHAS, THRESHOLD)},
            {"threshold": THRESHOLD, "kept_fraction": 100 * kept_below(Q3_LOG_ALPHAS, THRESHOLD)},
            {"threshold": THRESHOLD},
        ),
    ),
]
