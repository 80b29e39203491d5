"""Exercises of lesson 06, SGLD: the update by hand, the noise's role in the stationary distribution, and BMA.

q1 (implement)   one SGLD step for a given lr and N, checked against the `SGLD` optimiser itself
q2 (predict)     the sample variance relative to the posterior's when the noise is forgotten or its std doubled
q3 (by hand)     an ensemble's predictive distribution and NLL from M softmax outputs
"""

from __future__ import annotations

import math

import torch

from ..methods.sgmcmc import SGLD
from . import Case, Exercise, Function, Record, Value

# q3: three sampled networks' softmax outputs for one test image; the true class is 2.
PROBS_Q3 = torch.tensor([[0.70, 0.10, 0.15, 0.05],
                         [0.20, 0.05, 0.70, 0.05],
                         [0.30, 0.05, 0.60, 0.05]], dtype=torch.float64)
LABEL_Q3 = 2


def _reference_sgld_step(theta: torch.Tensor, grad: torch.Tensor, lr: float, num_data: int,
                         seed: int) -> torch.Tensor:
    """The reference is the package's optimiser, given the same gradient and the same noise seed."""
    p = theta.clone()
    p.grad = grad.clone()
    SGLD([p], lr=lr, num_data=num_data, seed=seed).step()
    return p


def sgld_step(theta: torch.Tensor, grad: torch.Tensor, lr: float, num_data: int, seed: int) -> torch.Tensor:
    """θ after one SGLD step: grad is the gradient of the minibatch mean loss (prior/N included)."""
    xi = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype)
    return theta - lr * grad + math.sqrt(2 * lr / num_data) * xi


def _noise_variance_not_divided_by_n(theta, grad, lr, num_data, seed):
    xi = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype)
    return theta - lr * grad + math.sqrt(2 * lr) * xi


def _noise_std_without_square_root(theta, grad, lr, num_data, seed):
    xi = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype)
    return theta - lr * grad + 2 * lr / num_data * xi


def _paper_epsilon_taken_as_lr(theta, grad, lr, num_data, seed):  # N(0, ε) with ε = lr: forgets ε = 2·lr/N
    xi = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype)
    return theta - lr * grad + math.sqrt(lr) * xi


def _gradient_ascent(theta, grad, lr, num_data, seed):
    xi = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype)
    return theta + lr * grad + math.sqrt(2 * lr / num_data) * xi


def _no_noise(theta, grad, lr, num_data, seed):
    return theta - lr * grad


def _q1_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    theta, grad = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    return [
        Case((theta, grad, 0.1, 1000, 0), "a 3×4 weight, lr 0.1, N = 1000"),
        Case((theta, grad, 0.5, 60000, 1), "lr 0.5, N = 60,000 (SSE's MNIST setting)"),
        Case((torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0.5, -0.5], dtype=torch.float64),
              0.01, 100, 3), "two float64 parameters, lr 0.01, N = 100 (the toy)"),
        Case((theta, torch.zeros(3, 4), 1.0, 4, 2), "zero gradient: pure noise, lr 1, N = 4"),
    ]


def _q3_expected() -> dict:
    predictive = PROBS_Q3.mean(0)
    return {"predictive": predictive, "nll": -math.log(predictive[LABEL_Q3].item())}


def _geometric_mean(probs: torch.Tensor) -> dict:
    mean_log = probs.log().mean(0)
    predictive = mean_log.exp() / mean_log.exp().sum()
    return {"predictive": predictive, "nll": -math.log(predictive[LABEL_Q3].item())}


def _mean_of_member_nlls() -> dict:
    return {"predictive": PROBS_Q3.mean(0), "nll": -PROBS_Q3[:, LABEL_Q3].log().mean().item()}


def _majority_vote() -> dict:
    votes = torch.bincount(PROBS_Q3.argmax(1), minlength=4).double() / len(PROBS_Q3)
    return {"predictive": votes, "nll": -math.log(votes[LABEL_Q3].item())}


EXERCISES = [
    Exercise(
        "q1",
        "Write sgld_step(theta, grad, lr, num_data, seed): θ after one SGLD step in the mean-loss form, with the "
        "standard normal draw xi = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), "
        "dtype=theta.dtype). It is checked against the SGLD optimiser given the same gradient and seed.",
        Function(_reference_sgld_step, _q1_cases(), atol=1e-6, rtol=1e-6),
        hints=('One gradient step, plus noise whose variance shrinks with the number of training examples.',
               "θ − lr·grad + √(2·lr/N)·xi. The paper's step is ε = 2·lr/N and its noise has variance ε."),
        why="With the mean loss, the noise variance 2·lr/N is what makes the chain sample the posterior and not a "
            "version N times wider.",
        example=sgld_step,
        wrong_answers=(_noise_variance_not_divided_by_n, _noise_std_without_square_root,
                       _paper_epsilon_taken_as_lr, _gradient_ascent, _no_noise),
    ),
    Exercise(
        "q2",
        "SGLD samples a Gaussian posterior N(μ, σ²) with a small step. Predict the variance of its samples "
        "divided by σ² when (a) the noise is forgotten and (b) the noise's standard deviation is doubled; "
        "answer {'forgotten': ..., 'std_doubled': ...}.",
        Record({
            "forgotten": Value(0.0, atol=0.05, mistakes={
                1.0: "Without its noise SGLD is SGD: it settles at the mode, only minibatch noise remains."}),
            "std_doubled": Value(4.0, atol=0.05, mistakes={
                2.0: "Doubling the standard deviation multiplies the noise variance by 4, not 2.",
                16.0: "The stationary variance grows like the noise variance (4×), not its square."}),
        }),
        hints=("The noise sets a temperature: what does temperature 0 do to a chain, and what does a doubled standard "
               "deviation do to the temperature?",
               "The stationary density of Langevin dynamics with noise variance T·2η/N is p(θ|D)^(1/T). For a "
             "Gaussian, raising the density to the power 1/T multiplies the variance by T."),
        why='The chain samples p(θ|D)^(1/T); for a Gaussian that multiplies the variance by T.',
        solution="Forgotten: T = 0, SGD, the chain stops at the mode: variance ratio 0 (up to minibatch noise).\n"
                 "Std doubled: noise variance ×4, T = 4, p(θ|D)^(1/4) is N(μ, 4σ²): ratio 4.\n"
                 "    return {'forgotten': 0.0, 'std_doubled': 4.0}",
        example={"forgotten": 0.0, "std_doubled": 4.0},
        wrong_answers=({"forgotten": 1.0, "std_doubled": 4.0}, {"forgotten": 0.0, "std_doubled": 2.0},
                       {"forgotten": 0.0, "std_doubled": 16.0}, {"forgotten": 0.0}),
    ),
    Exercise(
        "q3",
        "PROBS_Q3 holds three sampled networks' softmax outputs for one image whose true class is 2. By hand, "
        "give the ensemble's predictive distribution p(y|x,D) ≈ (1/M)·Σ_m p(y|x,θ_m) and its negative "
        "log-likelihood −log p(y=2|x,D); answer {'predictive': tensor of 4, 'nll': ...}.",
        Value(_q3_expected, atol=2e-3),
        hints=('Average the three distributions, entry by entry, before taking any logarithm.',
               "Average the three rows column by column, then take −log of the entry of class 2."),
        why="Bayesian model averaging mixes the members' predictive distributions, so it pays less than its most "
            "confident member when that member is wrong.",
        solution="predictive = (0.40, 0.0667, 0.4833, 0.05), nll = −log 0.4833 = 0.727.\n"
                 "    return {'predictive': PROBS_Q3.mean(0), 'nll': -math.log(PROBS_Q3.mean(0)[2])}\n"
                 "Averaging probabilities is not averaging the members' NLLs (0.92 here): the mixture is less "
                 "confident than its most confident member, and pays less when that member is wrong.",
        example=_q3_expected,
        wrong_answers=(_geometric_mean(PROBS_Q3), _mean_of_member_nlls(), _majority_vote(),
                       {"predictive": PROBS_Q3[1], "nll": -math.log(0.70)}),  # the most confident member
    ),
]
