"""Sensitivity-driven regularisation (Tartaglione, Lepsøy, Fiandrotti & Francini, NeurIPS 2018, sec. 3).

A weight's *sensitivity* is how much the network's outputs move when it moves:

    S(w) = Σ_k α_k·|∂y_k/∂w|            y_k: the network's output k; α_k ≥ 0 weighs it

"unspecific": α_k = 1 for every class; "specific": α_k = 1 for the example's own label only. y is the network's
linear output (the logits) by default: the paper's ReLU form of S (sec. 3.2) is a sum over active paths of products
of weights, the derivative of a linear output. `outputs="softmax"` takes the probabilities instead; on lesson 12's
trained LeNet-300-100 those give S < 0.01 in the hidden layers and < 0.07 in the last, so max(0, 1 − S) > 0.93
everywhere and the decay is plain weight decay. On the logits 86% of the last layer's weights and 5% of the middle
one's have S ≥ 1 and are not decayed at all, and the first layer's S spans 0 to 0.9.

The *bounded insensitivity* S̄(w) = max(0, 1 − S(w)) is 0 for a weight the outputs depend on strongly and 1 for one
they ignore. After every optimiser step each weight decays toward zero in
proportion to its insensitivity,

    w ← w − λ·w·S̄(w)                   (the paper's update: w_t = w_{t−1} − η·∂L/∂w − λ·w_{t−1}·S̄)

so weight decay acts fully on what the outputs ignore and not at all on what they rely on. A weight with S = 0
(a dead input pixel, a unit no one reads) shrinks by exactly (1 − λ) per step. At the end the small weights are
cut by one global |w| threshold, here the one that removes the target fraction (the paper raises it until the
validation error moves).

    result = sensitivity(model, data, sparsity=0.95, lam=3e-3)   # train with the decay, then threshold |w|
    S = output_sensitivity(model, x, y)                          # name → S, shaped like each weight

S is computed on the batch mean of the outputs, ȳ_k = mean_b y_k(x_b): one backward pass per class, batched
(`torch.autograd.grad(is_grads_batched=True)`), on a minibatch of its own drawn from the training data.
"""

from __future__ import annotations

import copy
import functools
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import check_sparsity, effective_weights, raw_weights
from ..structure import check_input
from ..train import TrainState, as_tensors, check_pair, fit
from .base import MethodResult, select_weights
from .group_lasso import check_lambda

KINDS = ("unspecific", "specific")
OUTPUTS = ("logits", "softmax")


def output_sensitivity(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                       kind: str = "unspecific", outputs: str = "logits") -> dict[str, torch.Tensor]:
    """S(w) = Σ_k α_k·|∂ȳ_k/∂w| for every prunable weight (masks applied: a removed weight has S = 0), ȳ the
    batch mean of the outputs on x ("logits", or "softmax" probabilities). kind "unspecific": α_k = 1 for all k;
    "specific": the derivative of the mean output of each example's label y. name → tensor shaped like that
    weight."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if outputs not in OUTPUTS:
        raise ValueError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
    if kind == "specific" and y is None:
        raise ValueError("the specific sensitivity needs the labels y (α_k = 1 on each example's own class)")
    if y is None:
        check_input(model, x, "x of the sensitivity batch")
    else:
        check_pair(model, x, y, "the sensitivity batch")
    weights = raw_weights(model)
    names, params = list(weights), list(weights.values())
    out = F.softmax(model(x), dim=-1) if outputs == "softmax" else model(x)
    if kind == "specific":
        grads = torch.autograd.grad(out.gather(1, y.view(-1, 1)).mean(), params)
        return {n: g.abs() for n, g in zip(names, grads, strict=True)}
    mean = out.mean(0)
    eye = torch.eye(len(mean), dtype=mean.dtype)
    grads = torch.autograd.grad(mean, params, grad_outputs=eye, is_grads_batched=True)
    return {n: g.abs().sum(0) for n, g in zip(names, grads, strict=True)}


def insensitivity(sensitivity: torch.Tensor) -> torch.Tensor:
    """The bounded insensitivity S̄ = max(0, 1 − S): 1 where the outputs ignore a weight, 0 where S ≥ 1."""
    return (1 - sensitivity).clamp_min(0)


class SensitivityDecay:
    """A training callback: after each optimiser step, w ← w − λ·w·S̄(w) on every prunable weight, with S measured
    on a fresh minibatch of `batch_size` training examples (drawn by `seed`)."""

    def __init__(self, data, lam: float, *, kind: str = "unspecific", outputs: str = "logits", batch_size: int = 60,
                 seed: int = 0):
        if kind not in KINDS or outputs not in OUTPUTS:
            raise ValueError(f"kind must be one of {KINDS} and outputs one of {OUTPUTS}, got {kind!r}, {outputs!r}")
        self.x, self.y = as_tensors(data)
        if not isinstance(batch_size, numbers.Integral) or not 1 <= batch_size <= len(self.x):
            raise ValueError(f"batch_size must be in [1, {len(self.x)}], got {batch_size!r}")
        self.lam, self.kind, self.outputs = check_lambda(lam, "lam", "the decay rate λ"), kind, outputs
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.decayed = []  # per step: the fraction of weights with S̄ = 1 (the outputs ignore them)

    def __call__(self, state: TrainState) -> None:
        idx = torch.randint(len(self.x), (self.batch_size,), generator=self.generator)
        was_training = state.model.training
        state.model.eval()
        s = output_sensitivity(state.model, self.x[idx], self.y[idx], self.kind, self.outputs)
        state.model.train(was_training)
        with torch.no_grad():
            ignored = total = 0
            for name, w in raw_weights(state.model).items():
                free = insensitivity(s[name])
                w.sub_(self.lam * w * free)
                ignored, total = ignored + int((free == 1).sum()), total + free.numel()
        self.decayed.append(ignored / total)


def sensitivity(model: nn.Module, data, *, sparsity: float, lam: float = 3e-3, kind: str = "unspecific",
                outputs: str = "logits", epochs: int = 10, lr: float = 1.2e-3, batch_size: int = 60, optimizer=None,
                seed: int = 0, progress: bool = False) -> MethodResult:
    """Train a copy of `model` `epochs` with the sensitivity decay after every step (Adam with `lr`, or
    `optimizer(params)`), then remove the `sparsity` fraction of weights with the smallest |w|, one threshold
    over all layers. details: "decayed" (per step, the fraction of weights the outputs ignored), "sensitivity"
    (S on the training batch's first examples at the end)."""
    check_sparsity(sparsity)        # before training, not after it
    check_lambda(lam, "lam", "the decay rate λ")
    net = copy.deepcopy(model)
    make = optimizer or functools.partial(torch.optim.Adam, lr=lr)
    decay = SensitivityDecay(data, lam, kind=kind, outputs=outputs, batch_size=batch_size, seed=seed + 1)
    history = fit(net, data, epochs=epochs, batch_size=batch_size, optimizer=make(net.parameters()),
                  callbacks=[decay], seed=seed, progress=progress)
    x, y = as_tensors(data)
    net.eval()
    final = output_sensitivity(net, x[:batch_size], y[:batch_size], kind, outputs)
    scores = {name: w.detach().abs() for name, w in effective_weights(net).items()}
    masks = select_weights(scores, sparsity, "global")
    return MethodResult("sensitivity", net, masks, scores=scores, history=history,
                        details={"decayed": decay.decayed, "sensitivity": final})
