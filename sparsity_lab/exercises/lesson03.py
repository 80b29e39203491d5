"""Exercises of lesson 03, L0 regularisation with hard-concrete gates: one gate's numbers by hand, the test-time
gate in code, and what the temperature β does to the gradient's noise.

q1 (by hand)     P(z ≠ 0) = σ(log α − β·log(−γ/ζ)) and the test-time gate of one gate (Louizos et al. 2018,
                 §2.2)
q2 (implement)   the deterministic test-time gate ẑ = min(1, max(0, σ(log α)·(ζ − γ) + γ)) on a tensor
q3 (experiment)  the variance and the fraction of exact zeros of single-draw gradients dz/dlog α for three β
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from ..methods import l0
from ..methods.l0 import BETA, GAMMA, ZETA
from . import AllOf, Case, Exercise, Function, Holds, Range, Record, Value


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# q1: one gate with the paper's stretch and temperature; the references are written with math, not the package.
LOG_ALPHA_Q1 = 0.5


def _q1_numbers(log_alpha: float, beta: float, p_sign: float = -1.0) -> dict[str, float]:
    shift = beta * math.log(-GAMMA / ZETA)
    return {"p_nonzero": _sigmoid(log_alpha + p_sign * shift),
            "test_gate": min(1.0, max(0.0, _sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA))}


def _q1_expected() -> dict[str, float]:
    return _q1_numbers(LOG_ALPHA_Q1, BETA)


_Q1 = _q1_expected()
Q1_MISTAKES = {
    "sign flipped": _q1_numbers(LOG_ALPHA_Q1, BETA, p_sign=+1.0)["p_nonzero"],
    "no β": _q1_numbers(LOG_ALPHA_Q1, 1.0)["p_nonzero"],
    "unstretched": _sigmoid(LOG_ALPHA_Q1),
    "test gate with β": min(1.0, max(0.0, _sigmoid(LOG_ALPHA_Q1 / BETA) * (ZETA - GAMMA) + GAMMA)),
}


def _q1_example() -> dict[str, float]:
    return {"p_nonzero": 0.891, "test_gate": 0.647}     # three decimals, as from a calculator


Q1_SOLUTION = """\
log(−γ/ζ) = log(0.1/1.1) = −log 11 ≈ −2.398, so −β·log(−γ/ζ) = (2/3)·2.398 ≈ +1.599:
    P(z ≠ 0) = σ(0.5 + 1.599) = σ(2.099) ≈ 0.891
    σ(0.5) ≈ 0.6225;  ẑ = clamp(0.6225·1.2 − 0.1, 0, 1) ≈ 0.647
    return {"p_nonzero": 0.891, "test_gate": 0.647}
Check with l0.prob_nonzero(torch.tensor(LOG_ALPHA_Q1)) and l0.test_gates(torch.tensor(LOG_ALPHA_Q1))."""


# q2: the test-time gate; the reference goes entry by entry with math, independently of l0.test_gates.
def _reference_test_gate(log_alpha: torch.Tensor) -> torch.Tensor:
    values = [min(1.0, max(0.0, (ZETA - GAMMA) * _sigmoid(x) + GAMMA)) for x in log_alpha.double().flatten().tolist()]
    return torch.tensor(values, dtype=log_alpha.dtype).reshape(log_alpha.shape)


def deterministic_gate(log_alpha: torch.Tensor) -> torch.Tensor:
    """The test-time gate min(1, max(0, σ(log α)·(ζ − γ) + γ)), a tensor like log_alpha (§2.2)."""
    return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def _no_clamp(log_alpha):
    return torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA


def _clamp_at_zero_only(log_alpha):
    return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(min=0)


def _unstretched(log_alpha):
    return torch.sigmoid(log_alpha)


def _temperature_inside(log_alpha):
    return (torch.sigmoid(log_alpha / BETA) * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


def _training_sample(log_alpha):
    return l0.sample_gates(log_alpha, generator=torch.Generator().manual_seed(0))


SWITCH_OFF, SWITCH_ON = math.log(-GAMMA / ZETA), math.log((1 - GAMMA) / (ZETA - 1))  # ẑ = 0 below, ẑ = 1 above


def _q2_cases() -> list[Case]:
    edges = torch.tensor([SWITCH_OFF - 1e-3, SWITCH_OFF, SWITCH_OFF + 1e-3, SWITCH_ON - 1e-3, SWITCH_ON + 1e-3])
    sweep = torch.cat([torch.linspace(-6, 6, 13), edges])
    grid = torch.randn(3, 4, generator=torch.Generator().manual_seed(0)) * 3
    return [
        Case((sweep,), "log α from −6 to 6, plus log(1/11) ≈ −2.398 (ẑ reaches 0) and log 11 ≈ 2.398 "
                       "(ẑ reaches 1), ± 0.001"),
        Case((grid,), "a 3×4 tensor of log α (a layer's gates)"),
        Case((torch.tensor([-10.0, -2.0, 0.0, 2.0, 10.0], dtype=torch.float64),), "float64, from −10 to 10"),
        Case((torch.zeros(0),), "no gates (an empty tensor)"),
    ]


# q3: one gate at log α = 0; every draw is a single-sample estimate of dE[z]/dlog α.
Q3_BETAS = (0.1, BETA, 1.5)
Q3_LOG_ALPHA, Q3_DRAWS, Q3_SEED = 0.0, 20_000, 0

# Ranges from measurements (20,000 draws, seeds 0–4; 200 seeds at 1,000–20,000 draws) and the exact values by
# quadrature over u: variance 0.513, 0.0306, 0.00263; zero fraction 2·σ(−β·log 11) = 0.881, 0.336, 0.053.
Q3_VARIANCE_RANGES = {0.1: (0.38, 0.67), BETA: (0.023, 0.040), 1.5: (0.0019, 0.0035)}
Q3_ZERO_RANGES = {0.1: (0.85, 0.91), BETA: (0.30, 0.37), 1.5: (0.03, 0.08)}
Q3_Z_VARIANCE = {0.1: 0.233, BETA: 0.148, 1.5: 0.0734}  # the variance of z itself, by quadrature: the mistake


def _example_gradient_spread(draws: int = Q3_DRAWS, seed: int = Q3_SEED) -> dict[str, dict[float, float]]:
    generator = torch.Generator().manual_seed(seed)
    variance, zero_fraction = {}, {}
    for beta in Q3_BETAS:
        log_alpha = torch.full((draws,), Q3_LOG_ALPHA, requires_grad=True)  # one gate, `draws` independent draws
        l0.sample_gates(log_alpha, beta, generator).sum().backward()         # entry i: dz_i/dlog α_i, alone
        grads = log_alpha.grad
        variance[beta] = grads.var().item()
        zero_fraction[beta] = (grads == 0).float().mean().item()
    return {"variance": variance, "zero_fraction": zero_fraction}


def _show_by_beta(values: Mapping) -> str:
    return "{" + ", ".join(f"β={float(b):.3g}: {float(v):.3g}" for b, v in values.items()) + "}"


def _falls_with_beta(key: str):
    def falls(answer: Mapping) -> bool:
        values = [float(answer[key][b]) for b in Q3_BETAS]
        return all(a > b for a, b in zip(values, values[1:], strict=False))
    return falls


def _looks_like_z_variance(answer: Mapping) -> bool:
    return all(abs(float(answer["variance"][b]) / Q3_Z_VARIANCE[b] - 1) < 0.25 for b in Q3_BETAS)


def _per_beta(what: str) -> Record:
    return Record({b: Range(what=f"{what} at β = {b:.3g}") for b in Q3_BETAS})


def _ranges(what: str, ranges: dict[float, tuple[float, float]], why: str) -> Record:
    return Record({b: Range(low, high, f"{what} at β = {b:.3g}", why) for b, (low, high) in ranges.items()})


Q3_SOLUTION = """\
generator = torch.Generator().manual_seed(Q3_SEED)
variance, zero_fraction = {}, {}
for beta in Q3_BETAS:
    log_alpha = torch.full((Q3_DRAWS,), Q3_LOG_ALPHA, requires_grad=True)  # one gate, Q3_DRAWS independent draws
    l0.sample_gates(log_alpha, beta, generator).sum().backward()         # entry i: dz_i/dlog α_i, alone
    grads = log_alpha.grad
    variance[beta] = grads.var().item()
    zero_fraction[beta] = (grads == 0).float().mean().item()
return {"variance": variance, "zero_fraction": zero_fraction}

Small β is the noisy end. z = clip(s·(ζ − γ) + γ) has derivative (ζ − γ)·s(1 − s)/β where the stretched sample
is inside (0, 1) and exactly 0 where it was clipped. At β = 0.1 the concrete s is nearly binary, so 88% of the
draws land on the point masses at 0 or 1 (P = 2·σ(−β·log 11)) and contribute nothing, and the few on the ramp
carry gradients up to 0.3/β = 3: a variance of about 0.51 around a mean of 0.25. At β = 1.5 only 5% are clipped
and every gradient is at most 0.2: variance 0.0026 around a mean of 0.16. The spread relative to the mean,
std/mean, falls too: about 2.9, 0.8, 0.33. The price of a large β is a loose relaxation: z is rarely exactly 0
or 1, so training sees fractional gates, far from the binary gates the L0 norm counts. β = 2/3, the paper's
choice, sits between."""


EXERCISES = [
    Exercise(
        "q1",
        "A gate has log α = LOG_ALPHA_Q1 = 0.5, with β = 2/3, γ = −0.1, ζ = 1.1. By hand, give P(z ≠ 0) = "
        "σ(log α − β·log(−γ/ζ)) and the test-time gate ẑ = min(1, max(0, σ(log α)·(ζ − γ) + γ)); answer "
        "{'p_nonzero': ..., 'test_gate': ...} to three decimals.",
        Record({
            "p_nonzero": Value(_Q1["p_nonzero"], atol=1e-3, mistakes={
                Q1_MISTAKES["sign flipped"]:
                    "The sign: log(−γ/ζ) = log(1/11) is negative, so −β·log(−γ/ζ) adds β·log 11 ≈ 1.60 to log α; "
                    "the stretch makes a gate more likely to be nonzero, not less.",
                Q1_MISTAKES["no β"]:
                    "The shift is β·log(−γ/ζ), with the temperature β = 2/3: the sample is "
                    "σ((logit u + log α)/β), so the threshold the logistic noise must pass is scaled by β.",
                Q1_MISTAKES["unstretched"]:
                    "σ(log α) is the chance that the unstretched concrete s is above ½ (its β → 0 limit, a "
                    "Bernoulli gate); the hard concrete is nonzero whenever s·(ζ − γ) + γ > 0, i.e. s > 1/12.",
                _Q1["test_gate"]: "That is the test-time gate, not the probability that a training draw is "
                                  "nonzero.",
            }),
            "test_gate": Value(_Q1["test_gate"], atol=1e-3, mistakes={
                Q1_MISTAKES["unstretched"]:
                    "That is σ(log α) before the stretch: the test gate stretches it to (γ, ζ) and clips, "
                    "clamp(σ(log α)·(ζ − γ) + γ, 0, 1).",
                Q1_MISTAKES["test gate with β"]:
                    "β plays no part at test time: clamp(σ(log α)·(ζ − γ) + γ, 0, 1), no temperature.",
            }),
        }),
        hints=("P(z ≠ 0) is the chance that the stretched sample lands above 0; the test gate is σ(log α) stretched "
               "the same way and clipped.",
               "log(−γ/ζ) = log(0.1/1.1) = −log 11 ≈ −2.398. P(z ≠ 0) = σ(0.5 − (2/3)·(−2.398)) = σ(2.099); "
               "ẑ = clamp(σ(0.5)·1.2 − 0.1, 0, 1), with σ(0.5) ≈ 0.6225."),
        why="The stretch to (−0.1, 1.1) moves the threshold for a nonzero draw from s > ½ to s > 1/12, so P(z ≠ 0) "
            "exceeds σ(log α); the test gate drops the noise and the temperature.",
        solution=Q1_SOLUTION,
        example=_q1_example,
        wrong_answers=(
            {"p_nonzero": Q1_MISTAKES["sign flipped"], "test_gate": _Q1["test_gate"]},
            {"p_nonzero": Q1_MISTAKES["no β"], "test_gate": _Q1["test_gate"]},
            {"p_nonzero": Q1_MISTAKES["unstretched"], "test_gate": _Q1["test_gate"]},
            {"p_nonzero": _Q1["p_nonzero"], "test_gate": Q1_MISTAKES["unstretched"]},
            {"p_nonzero": _Q1["p_nonzero"], "test_gate": Q1_MISTAKES["test gate with β"]},
            {"p_nonzero": Q1_MISTAKES["unstretched"], "test_gate": Q1_MISTAKES["unstretched"]},  # no stretch at all
            {"p_nonzero": _Q1["p_nonzero"]},
        ),
    ),
    Exercise(
        "q2",
        "Write deterministic_gate(log_alpha): the test-time gate min(1, max(0, σ(log α)·(ζ − γ) + γ)) of every "
        "entry, a tensor of log_alpha's shape and dtype, with GAMMA and ZETA from sparsity_lab.methods.l0.",
        Function(_reference_test_gate, _q2_cases(), atol=1e-6, rtol=1e-6),
        hints=("Take σ(log α), then do to it what the sampler does to its noisy s: stretch it to (γ, ζ) and clip it "
               "to [0, 1]. The temperature has no part in it.",
               "(torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0, 1): the clip at 0 switches a gate "
               "off for log α < log(1/11), the clip at 1 opens it fully for log α > log 11."),
        why="Without noise the gate is σ(log α) stretched and clipped, so every log α below log(1/11) ≈ −2.40 gives "
            "exactly 0: that unit can be deleted.",
        example=deterministic_gate,
        wrong_answers=(_no_clamp, _clamp_at_zero_only, _unstretched, _temperature_inside, _training_sample),
    ),
    Exercise(
        "q3",
        "Predict first: at which β in Q3_BETAS is a single-draw gradient of E[z] noisiest? Then measure, for one "
        "gate at log α = Q3_LOG_ALPHA = 0: draw Q3_DRAWS reparameterised samples z with l0.sample_gates and a "
        "generator seeded with Q3_SEED, get each draw's dz/dlog α by autograd, and report for each β the "
        "variance of those gradients and the fraction that are exactly 0: answer {'variance': {β: ...}, "
        "'zero_fraction': {β: ...}} keyed by the values of Q3_BETAS. Then explain.",
        AllOf([
            Record({"variance": _per_beta("the variance"), "zero_fraction": _per_beta("the zero fraction")}),
            Holds(lambda a: not _looks_like_z_variance(a),
                  lambda a: f"expected the variance of the gradients dz/dlog α; {_show_by_beta(a['variance'])} "
                            f"is the variance of the draws z themselves. Call backward and read log_alpha.grad"),
            Holds(_falls_with_beta("variance"),
                  lambda a: f"expected the gradient's variance to fall as β grows, got "
                            f"{_show_by_beta(a['variance'])}. Small β makes z nearly binary: most draws are "
                            f"clipped (gradient 0), the rest have gradients up to 0.3/β"),
            Holds(_falls_with_beta("zero_fraction"),
                  lambda a: f"expected the fraction of zero gradients to fall as β grows, got "
                            f"{_show_by_beta(a['zero_fraction'])}: a clipped draw (z exactly 0 or exactly 1) has "
                            f"gradient 0, and small β clips more draws"),
            Record({
                "variance": _ranges("the variance", Q3_VARIANCE_RANGES,
                                    "the variance across single draws of dz/dlog α, with Q3_DRAWS draws: not the "
                                    "variance of their mean, nor of z"),
                "zero_fraction": _ranges("the zero fraction", Q3_ZERO_RANGES,
                                         "count the draws clipped at 0 and those clipped at 1: both have gradient "
                                         "0; P = 2·σ(−β·log 11) at log α = 0"),
            }),
        ]),
        hints=("Where the stretched sample is clipped to exactly 0 or 1, what is dz/dlog α? How often does that "
               "happen when β is small?",
               "log_alpha = torch.full((Q3_DRAWS,), 0.0, requires_grad=True): every entry is a separate draw of "
               "the same gate, so l0.sample_gates(log_alpha, beta, generator).sum().backward() leaves each draw's "
               "dz/dlog α in log_alpha.grad. Take .var() and (grad == 0).float().mean() for each β."),
        why="Small β makes z nearly binary: most draws are clipped and give exactly 0, a few give large gradients, so "
            "the variance grows as β shrinks; a large β lowers it at the price of fractional gates.",
        solution=Q3_SOLUTION,
        example=_example_gradient_spread,
        wrong_answers=(
            {"variance": Q3_Z_VARIANCE, "zero_fraction": {0.1: 0.881, BETA: 0.336, 1.5: 0.053}},   # var of z
            {"variance": {0.1: 0.00263, BETA: 0.0306, 1.5: 0.513},                                  # reversed
             "zero_fraction": {0.1: 0.053, BETA: 0.336, 1.5: 0.881}},
            {"variance": {0.1: 0.513, BETA: 0.0306}, "zero_fraction": {0.1: 0.881, BETA: 0.336}},  # a β missing
            {"variance": {0.1: 0.513, BETA: 0.0306, 1.5: 0.00263},                                  # z == 0 only
             "zero_fraction": {0.1: 0.440, BETA: 0.168, 1.5: 0.027}},
            {"variance": {0.1: 0.513 / Q3_DRAWS, BETA: 0.0306 / Q3_DRAWS, 1.5: 0.00263 / Q3_DRAWS},  # of the mean
             "zero_fraction": {0.1: 0.881, BETA: 0.336, 1.5: 0.053}},
            {"variance": {0.1: 0.513, BETA: 0.0306, 1.5: 0.00263}},                                 # a key missing
        ),
    ),
]
