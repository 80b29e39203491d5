"""Ensembles: average the members' predictive distributions, score them (error, NLL, calibration), and cost them.

Bayesian model averaging with M posterior samples (Welling & Teh 2011; Zhang & Ou 2018 for SSE):

    p(y | x, D) ≈ (1/M) · Σ_m p(y | x, θ_m)          (average the softmax outputs, never the weights)

Calibration follows Guo et al. (2017): group test points by confidence (the top probability) into equal-width
bins; a calibrated model's accuracy in each bin equals its mean confidence there. ECE = Σ_b (n_b/N)·|acc_b − conf_b|.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .cost import count_parameters, flops
from .train import predict_proba


def average_predictions(member_probs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The ensemble's predictive distribution: member_probs (M, N, C) softmax outputs → their mean (N, C)."""
    if not torch.is_tensor(member_probs):
        member_probs = list(member_probs)
        if not member_probs:
            raise ValueError("member_probs is empty: give at least one member's (N, C) softmax outputs")
        member_probs = torch.stack(member_probs)
    probs = member_probs
    if probs.dim() != 3 or len(probs) == 0:
        raise ValueError(f"member_probs must be (M, N, C) with M ≥ 1, got shape {tuple(probs.shape)}")
    return probs.mean(0)


@torch.no_grad()
def sample_predictions(model: nn.Module, samples: Iterable[dict[str, torch.Tensor]], x: torch.Tensor,
                       batch_size: int = 1024, device: str | torch.device = "cpu") -> torch.Tensor:
    """Softmax outputs (M, N, C), on the CPU, of `model`'s architecture under each state dict in `samples` (e.g. a
    `SampleCollector`), on x, computed on `device`. `model` itself is left untouched."""
    member = copy.deepcopy(model).to(device)
    out = []
    for state in samples:
        member.load_state_dict(state)
        out.append(predict_proba(member, x, batch_size, device))
    if not out:
        raise ValueError("samples is empty: collect at least one sample (check burn_in and thin)")
    return torch.stack(out)


def _check(probs: torch.Tensor, y: torch.Tensor) -> None:
    if probs.dim() != 2 or y.shape != (len(probs),):
        raise ValueError(f"probs must be (N, C) and y (N,), got {tuple(probs.shape)} and {tuple(y.shape)}")


def negative_log_likelihood(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Mean −log p(y_i | x_i) over the N points (nats); probs (N, C), y (N,) class indices."""
    _check(probs, y)
    return float(-torch.log(probs[torch.arange(len(y)), y].clamp_min(1e-12)).mean())


def error(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Test error in percent: how often the most probable class is wrong."""
    _check(probs, y)
    return 100 * float((probs.argmax(1) != y).double().mean())


def reliability_bins(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> dict[str, torch.Tensor]:
    """Equal-width confidence bins on [0, 1]: edges (n_bins+1,), and per bin its point count, mean confidence and
    accuracy (NaN in empty bins). Bin b holds confidences in (edge_b, edge_b+1]."""
    _check(probs, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    confidence, predicted = probs.max(1)
    correct = (predicted == y).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = (torch.bucketize(confidence.double(), edges) - 1).clamp(0, n_bins - 1)
    count = torch.bincount(index, minlength=n_bins).double()
    conf_sum = torch.bincount(index, weights=confidence.double(), minlength=n_bins)
    correct_sum = torch.bincount(index, weights=correct, minlength=n_bins)
    return {"edges": edges, "count": count, "confidence": conf_sum / count, "accuracy": correct_sum / count}


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> float:
    """ECE = Σ_b (n_b/N)·|accuracy_b − confidence_b| over equal-width confidence bins (Guo et al. 2017, eq. 3)."""
    bins = reliability_bins(probs, y, n_bins)
    gap = (bins["accuracy"] - bins["confidence"]).abs().nan_to_num(0.0)
    return float((bins["count"] * gap).sum() / bins["count"].sum())


def scores(probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """{"error" (%), "nll" (nats), "ece"} of one predictive distribution probs (N, C) against labels y (N,)."""
    return {"error": error(probs, y), "nll": negative_log_likelihood(probs, y),
            "ece": expected_calibration_error(probs, y, n_bins)}


def scores_by_size(member_probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> list[dict[str, float]]:
    """`scores` of the ensembles of the first m members, m = 1 … M; member_probs (M, N, C)."""
    running = member_probs.double().cumsum(0) / torch.arange(1, len(member_probs) + 1)[:, None, None]
    return [dict(members=m + 1, **scores(running[m], y, n_bins)) for m in range(len(member_probs))]


def ensemble_cost(members: Sequence[nn.Module], example: torch.Tensor) -> dict[str, int]:
    """What predicting with every member costs, summed: parameters ("params", "nonzero_params") and multiply-adds
    per example ("flops" dense, "nonzero_flops", "submatrix_flops"; see `cost.flops`). example: a batch of one."""
    if len(members) == 0:
        raise ValueError("members is empty")
    total = {"params": 0, "nonzero_params": 0, "flops": 0, "nonzero_flops": 0, "submatrix_flops": 0}
    for model in members:
        p, f = count_parameters(model), flops(model, example)
        for key, value in (("params", p["total"]), ("nonzero_params", p["nonzero"]), ("flops", f["dense"]),
                           ("nonzero_flops", f["nonzero"]), ("submatrix_flops", f["submatrix"])):
            total[key] += value
    return total
