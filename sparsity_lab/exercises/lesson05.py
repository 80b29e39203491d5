"""Exercises of lesson 05, structured Bayesian pruning: E[θ] and the SNR of one unit's noise by hand, the KL's
dependence on the truncation, and E[θ] folded into the layer that reads the units.

q1 (by hand)     E[θ] and SNR = E[θ]/√Var[θ] for log θ ~ N(μ, σ²) truncated to [−20, 0], from Φ at three points
                 (Neklyudov et al. 2017, §4, the moments of the truncated log-normal)
q2 (by hand)     how much the KL of a fixed posterior grows when the truncation's lower end moves from −20 to −40:
                 log(b − a) is the only term that moves, so the KL to the untruncated (improper) prior is infinite
q3 (implement)   the compact reader: the columns of the units with SNR > threshold, each times its E[θ]
"""

from __future__ import annotations

import math

import torch

from ..methods.sbp import SNR_THRESHOLD
from . import Case, Exercise, Function, Record, Value, diagnosed

# q1: one unit's noise; the reference is written with math.erf, not the package.
MU_Q1, SIGMA_Q1 = -1.0, 0.5
A_Q1, B_Q1 = -20.0, 0.0


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _q1_moments(mu: float = MU_Q1, sigma: float = SIGMA_Q1, truncated: bool = True) -> dict[str, float]:
    alpha, beta = (A_Q1 - mu) / sigma, (B_Q1 - mu) / sigma
    if truncated:
        z = _phi(beta) - _phi(alpha)
        m1 = math.exp(mu + sigma ** 2 / 2) * (_phi(beta - sigma) - _phi(alpha - sigma)) / z
        m2 = math.exp(2 * mu + 2 * sigma ** 2) * (_phi(beta - 2 * sigma) - _phi(alpha - 2 * sigma)) / z
    else:
        m1, m2 = math.exp(mu + sigma ** 2 / 2), math.exp(2 * mu + 2 * sigma ** 2)
    return {"mean": m1, "snr": m1 / math.sqrt(m2 - m1 * m1)}


_Q1 = {k: round(v, 6) for k, v in _q1_moments().items()}
_UNTRUNCATED = _q1_moments(truncated=False)
_NO_Z = math.exp(MU_Q1 + SIGMA_Q1 ** 2 / 2) * _phi((B_Q1 - MU_Q1) / SIGMA_Q1 - SIGMA_Q1)   # forgot to divide by Z
_SIGMA_AS_VARIANCE = _q1_moments(MU_Q1, SIGMA_Q1 ** 0.5)                                 # σ² read as 0.5
_VARIANCE_RATIO = _Q1["mean"] ** 2 / (_Q1["mean"] / _Q1["snr"]) ** 2                     # E²/Var, not E/√Var

Q1_SOLUTION = f"""\
α = (a − μ)/σ = (−20 + 1)/0.5 = −38, β = (b − μ)/σ = 2: Φ(α) = 0, Z = Φ(2) = 0.97725.
E[θ]  = e^(μ + σ²/2) · Φ(β − σ)/Z   = e^(−0.875) · Φ(1.5)/Φ(2) = 0.41686 · 0.93319 / 0.97725 = {_Q1['mean']:.4f}
E[θ²] = e^(2μ + 2σ²) · Φ(β − 2σ)/Z = e^(−1.5) · Φ(1)/Φ(2)     = 0.22313 · 0.84134 / 0.97725 = 0.19210
Var[θ] = E[θ²] − E[θ]² = 0.19210 − 0.15846 = 0.03364;  SNR = E[θ]/√Var[θ] = {_Q1['snr']:.3f}
    return {{"mean": {_Q1['mean']:.3f}, "snr": {_Q1['snr']:.3f}}}
The truncation at b = 0 cuts off the log-normal's long right tail: the mean falls from {_UNTRUNCATED['mean']:.3f}
(untruncated) and the SNR rises from {_UNTRUNCATED['snr']:.3f}. Check with sbp.truncated_lognormal_mean and sbp.snr."""


def _q1_example() -> dict[str, float]:
    return {"mean": 0.398, "snr": 2.170}        # three decimals, from a table of Φ


# q2: the KL's only term that depends on where the prior's interval ends, when the posterior sits far inside it.
LOW_FROM, LOW_TO = -20.0, -40.0
_Q2 = math.log((B_Q1 - LOW_TO) / (B_Q1 - LOW_FROM))
Q2_SOLUTION = f"""\
KL = −log σ − log Z − (α·φ(α) − β·φ(β))/(2Z) + log(b − a) − ½·log(2πe). With μ = −1 and σ = 0.5 the posterior
sits 38 (and then 78) standard deviations above a: Φ(α) and α·φ(α) are 0 either way, so Z and the φ terms do not
move. Only log(b − a) does: log 40 − log 20 = log 2 = {_Q2:.3f} nats.
    return {_Q2:.3f}
Every doubling of the interval adds log 2, without limit: as a → −∞ the KL to the log-uniform prior grows to
infinity, because the improper prior spreads no finite mass over an infinite range of log θ. Truncating both to
the same [a, b] makes the prior proper and the KL finite."""


# q3: the reference loops over units, independently of the package's Gate and of compact.
def _reference_fold(reader_weight: torch.Tensor, expected: torch.Tensor, snr: torch.Tensor,
                    threshold: float = SNR_THRESHOLD) -> torch.Tensor:
    if reader_weight.shape[1] != len(expected) or len(expected) != len(snr):
        raise ValueError("one E[θ] and one SNR per column of the reader")
    columns = [reader_weight[:, j] * expected[j] for j in range(len(expected)) if snr[j] > threshold]
    if not columns:
        return reader_weight.new_zeros(reader_weight.shape[0], 0)
    return torch.stack(columns, 1)


def fold_noise(reader_weight: torch.Tensor, expected: torch.Tensor, snr: torch.Tensor,
               threshold: float = SNR_THRESHOLD) -> torch.Tensor:
    """The compact reader of units under SBP noise: keep the columns of the units with SNR > threshold, each
    multiplied by that unit's E[θ]. reader_weight (out, n), expected and snr (n,) → (out, kept)."""
    if reader_weight.shape[1] != len(expected) or len(expected) != len(snr):
        raise ValueError("one E[θ] and one SNR per column of the reader")
    keep = snr > threshold
    return reader_weight[:, keep] * expected[keep]


def _zeroed_not_removed(reader_weight, expected, snr, threshold=SNR_THRESHOLD):
    return reader_weight * (expected * (snr > threshold))


def _at_or_above(reader_weight, expected, snr, threshold=SNR_THRESHOLD):
    keep = snr >= threshold
    return reader_weight[:, keep] * expected[keep]


def _no_expectation(reader_weight, expected, snr, threshold=SNR_THRESHOLD):
    return reader_weight[:, snr > threshold]


def _times_snr(reader_weight, expected, snr, threshold=SNR_THRESHOLD):
    keep = snr > threshold
    return reader_weight[:, keep] * snr[keep]


def _q3_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 6, generator=g)
    e = torch.rand(6, generator=g) * 0.9 + 0.05
    snr = torch.tensor([0.3, 1.0, 2.5, 0.9, 7.0, 1.5])               # one unit exactly at the threshold
    wide = torch.randn(3, 10, generator=g, dtype=torch.float64)
    return [
        Case((w, e, snr), "reader (4, 6), SNR [0.3, 1.0, 2.5, 0.9, 7.0, 1.5]"),
        Case((w, e, snr), "the same, threshold 2", {"threshold": 2.0}),
        Case((wide, torch.rand(10, generator=g, dtype=torch.float64), torch.linspace(0.1, 3, 10, dtype=torch.float64)),
             "reader (3, 10), float64"),
        Case((w[:, :2], e[:2], torch.tensor([0.2, 0.5])), "every unit below the threshold: (4, 0)"),
        Case((w, e[:5], snr[:5]), "5 E[θ] for 6 columns: a ValueError"),
    ]


Q3_MISTAKES = (
    (_zeroed_not_removed, "Your result keeps every column, zeroed where SNR ≤ threshold: that is the masked reader. "
                          "The compact reader has only the kept columns."),
    (_at_or_above, "Your result keeps a unit whose SNR equals the threshold: the rule is SNR > threshold."),
    (_no_expectation, "Your result drops the removed columns but does not multiply the kept ones by E[θ]: at test "
                      "time each unit's output is scaled by E[θ], so its reading column must carry that factor."),
    (_times_snr, "Your result scales the columns by the SNR: the test-time factor is E[θ]; the SNR only decides "
                 "which units stay."),
)


EXERCISES = [
    Exercise(
        "q1",
        "A unit's noise has log θ ~ N(μ, σ²) with μ = MU_Q1 = −1 and σ = SIGMA_Q1 = 0.5, truncated to [−20, 0]. "
        "By hand (a table of Φ is enough), give E[θ] and the SNR E[θ]/√Var[θ]; answer {'mean': ..., 'snr': ...} "
        "to three decimals.",
        Record({
            "mean": Value(_Q1["mean"], atol=2e-3, mistakes={
                round(_UNTRUNCATED["mean"], 6): "That is the untruncated log-normal's mean e^(μ + σ²/2): the "
                                                "truncation at b = 0 removes the tail above θ = 1, so multiply by "
                                                "(Φ(β − σ) − Φ(α − σ))/Z.",
                round(_NO_Z, 6): "Divide by Z = Φ(β) − Φ(α): the truncated density is renormalised over [a, b].",
                round(_SIGMA_AS_VARIANCE["mean"], 6): "σ = 0.5 is the standard deviation; σ² = 0.25.",
            }),
            "snr": Value(_Q1["snr"], atol=5e-3, mistakes={
                round(_UNTRUNCATED["snr"], 6): "That is the untruncated log-normal's SNR 1/√(e^(σ²) − 1); the "
                                               "truncation changes both moments.",
                round(_VARIANCE_RATIO, 6): "That is E[θ]²/Var[θ]; the SNR divides by the standard deviation, "
                                           "√Var[θ].",
                round(_SIGMA_AS_VARIANCE["snr"], 6): "σ = 0.5 is the standard deviation; σ² = 0.25.",
            }),
        }),
        hints=("Standardise the bounds: α = (a − μ)/σ, β = (b − μ)/σ, Z = Φ(β) − Φ(α). E[θ^k] = e^(kμ + k²σ²/2)·"
               "(Φ(β − kσ) − Φ(α − kσ))/Z.",
               "α = −38, so Φ(α) = 0 and Z = Φ(2). E[θ] = e^(−0.875)·Φ(1.5)/Φ(2); E[θ²] = e^(−1.5)·Φ(1)/Φ(2); "
               "Var = E[θ²] − E[θ]²."),
        why="The SNR is what decides: above 1 the unit's mean output stands out from its noise and it is kept, "
            "scaled by E[θ]; at or below 1 it is removed.",
        solution=Q1_SOLUTION,
        example=_q1_example,
        wrong_answers=(
            {**_Q1, "mean": round(_UNTRUNCATED["mean"], 6)},
            {**_Q1, "mean": round(_NO_Z, 6)},
            {**_Q1, "snr": round(_UNTRUNCATED["snr"], 6)},
            {**_Q1, "snr": round(_VARIANCE_RATIO, 6)},
            {"mean": _Q1["mean"]},
        ),
    ),
    Exercise(
        "q2",
        "Keep the posterior of q1 (μ = −1, σ = 0.5) and move the lower end a of the truncation, for posterior and "
        "prior alike, from LOW_FROM = −20 to LOW_TO = −40. By hand: by how many nats does KL(q‖p) grow?",
        Value(round(_Q2, 6), atol=2e-3, mistakes={
            20.0: "The KL is in nats of log-probability: the interval's length enters through log(b − a).",
            round(math.log(40), 6): "That is log(b − a) at a = −40 itself; the question asks how much it grows.",
            0.0: "The posterior does not move, but the prior spreads its mass over twice the range: log(b − a) "
                 "grows.",
            round(-_Q2, 6): "The sign: a wider prior gives each value of log θ less density, so the KL grows.",
        }),
        hints=("Write out the KL: which terms depend on a when Φ(α) and α·φ(α) are 0 for both values?",
               "Only log(b − a): log 40 − log 20."),
        why="Each doubling of the interval adds log 2 to the KL, without limit: to the untruncated log-uniform "
            "prior, an improper density on an infinite range, the KL is infinite. The truncation makes it finite.",
        solution=Q2_SOLUTION,
        example=round(_Q2, 3),
        wrong_answers=(20.0, round(math.log(40), 6), 0.0, round(-_Q2, 6)),
    ),
    Exercise(
        "q3",
        "Write fold_noise(reader_weight, expected, snr, threshold=1.0): the compact weight of the layer that reads "
        "units under SBP noise. reader_weight (out, n) has one column per unit, expected and snr (n,) are each "
        "unit's E[θ] and SNR. Keep the columns of the units with SNR > threshold, each multiplied by its E[θ]; "
        "return an (out, kept) tensor. Raise ValueError when the sizes disagree.",
        diagnosed(Function(_reference_fold, _q3_cases(), atol=1e-6, rtol=1e-6), Q3_MISTAKES),
        hints=("A unit's output reaches the next layer through one column of its weight; at test time that "
               "output is multiplied by E[θ].",
               "keep = snr > threshold; return reader_weight[:, keep] * expected[keep] (check the sizes first)."),
        why="Multiplying a unit's output by E[θ] is the same as multiplying the column that reads it, so the noise "
            "disappears into the weights: the compact network has no noise layer at all.",
        example=fold_noise,
        wrong_answers=tuple(m for m, _ in Q3_MISTAKES),
    ),
]
