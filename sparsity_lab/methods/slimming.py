"""Network slimming (Liu et al. 2017): an L1 penalty on BatchNorm scales γ, then cut the channels with the smallest
|γ| under one global threshold.

    result = network_slimming(models.build("lenet5-caffe-bn"), data, stages=((2, 0.05),), s=1e-4, sparsity=0.5)
    small = result.compact()                    # BatchNorm kept, sliced; compact.fold_batchnorm folds it away

A cut channel has γ = 0: BatchNorm outputs the constant β for it, so the filter that feeds it no longer matters.
The cut is that: γ = 0 in the result's model, and masks that remove the channel's filter; `compact` then folds
the constant relu(β) into the next layer's bias and removes the filter. The cheap cousin of the group lasso
(group_lasso.py): one scalar per channel instead of a norm over its weights. It needs BatchNorm; sparse structure
selection (sss.py) brings its own scalar instead.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..structure import NORMS, make_groups, rows, units
from ..train import History, sgd_stages
from .base import MethodResult
from .group_lasso import check_lambda


def bn_l1_penalty(s: float):
    """Network slimming's penalty s·Σ|γ| over every BatchNorm scale (Liu et al. 2017, eq. 1): model → scalar."""
    s = check_lambda(s, "s")

    def penalty(model: nn.Module) -> torch.Tensor:
        return s * sum(m.weight.abs().sum() for m in model.modules() if isinstance(m, NORMS))
    return penalty


def slimming_cut(model: nn.Module, sparsity: float, history: History | None = None) -> MethodResult:
    """Cut the `sparsity` fraction of all BatchNorm channels with the smallest |γ| (one global threshold). The
    paper's pitfall, a layer cut away entirely, is avoided by keeping each layer's largest γ. Returns the model
    with the cut γ set to 0 and masks removing the filters that feed them; details["keep"]: BatchNorm name →
    the channels kept."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1) (the share of channels to cut), got {sparsity}")
    pairs = [(u.between[0], u.producer) for u in units(model) if u.between]
    if not pairs:
        raise ValueError(f"{type(model).__name__} has no BatchNorm after a layer: network slimming cuts BatchNorm "
                         "channels (sparse structure selection needs none)")
    cut = copy.deepcopy(model).eval()
    gammas = {bn: cut.get_submodule(bn).weight.detach().abs() for bn, _ in pairs}
    everything = torch.cat(list(gammas.values()))
    n_cut = round(sparsity * everything.numel())
    threshold = everything.sort().values[n_cut - 1] if n_cut > 0 else -1.0
    keep = {bn: g > threshold for bn, g in gammas.items()}
    masks, groups = {}, []
    with torch.no_grad():
        for bn, producer in pairs:
            if not keep[bn].any():
                keep[bn][gammas[bn].argmax()] = True
            cut.get_submodule(bn).weight[~keep[bn]] = 0.0
            weight = f"{producer}.weight"
            feeding = make_groups(f"{producer}.channels", "channels", (weight, tuple(cut.get_parameter(weight).shape),
                                                                       rows))
            groups.append(feeding)
            masks.update(feeding.masks(keep[bn]))
    return MethodResult("network-slimming", cut, masks, groups=groups, history=history, details={"keep": keep})


def network_slimming(model: nn.Module, data, *, sparsity: float = 0.5, stages=((2, 0.05),), s: float = 1e-4,
                     seed: int = 0, **sgd) -> MethodResult:
    """Train a copy of `model` with s·Σ|γ| (SGD `stages` of (epochs, lr), see train.sgd_stages for the other
    keywords), then cut the `sparsity` fraction of channels by |γ| (`slimming_cut`)."""
    net = copy.deepcopy(model)
    history = sgd_stages(net, data, stages, penalty=bn_l1_penalty(s), seed=seed, **sgd)
    return slimming_cut(net, sparsity, history)
