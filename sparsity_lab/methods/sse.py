"""Sparse Structured Ensembles (Zhang & Ou 2018): sample an ensemble with SGLD under a group sparse prior, prune
every sample, retrain its survivors, and average the members' predictions.

    log p(θ) = −λ·Σ_g √dim(θ_g)·‖θ_g‖₂            the group sparse prior (GSP); for an MLP a group is all the
                                                    outgoing weights of one neuron, input pixels included
    ∇ log p(θ)_g = −λ·√dim(θ_g)·θ_g/‖θ_g‖₂          (0 for a group that is exactly 0: the subgradient)
    p(y | x, D) ≈ (1/M)·Σ_m p(y | x, θ_m)           average the members' softmax outputs, never their weights

Four composable steps and one call that chains them:

    chain = sample(model, data, prior=group_sparse_prior(lam, neuron_groups(model)), samples=M, ...)
    members = [retrain(prune(model_with(state), sparsity=0.9), data) for state in chain]
    probs = ensemble(members, x_test)
    result = run_sse("lenet-300-100", data, samples=M, sparsity=0.9, prior="gsp", lam=...)   # all of the above

The prior makes whole neurons' outgoing weights small together, so the global magnitude threshold of `prune`
empties whole columns, and `compact` deletes those neurons: an ensemble of M compacted members can cost about what
one dense network costs. `ensemble_cost` counts it in multiples of one dense model (parameters, and FLOPs as SSE
defines them: the smallest submatrix holding each weight matrix's nonzeros), and `BatchedEnsemble` runs M compacted
MLPs as one padded batched matrix product.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..ensemble import average_predictions
from ..masks import apply_masks, check_sparsity, effective_weights
from ..models import MLP, build
from ..structure import Groups, neuron_groups
from ..train import cross_entropy_loss, fit, predict_proba, sgd_stages
from .base import MethodResult
from .group_lasso import check_lambda
from .magnitude import magnitude
from .sgmcmc import SGLD, SampleCollector

PRIORS = ("gsp", "l1", None)
PUBLISHED = [  # Zhang & Ou 2018, MNIST 784-300-100-10 (full training set): error %, params and FLOPs × one dense model
    {"method": "SGD, 1 model", "error %": 1.66, "params ×": 1.0, "FLOPs ×": 1.0},
    {"method": "SGD, 18 models", "error %": 1.49, "params ×": 18.0, "FLOPs ×": 18.0},
    {"method": "SGLD, 18 models", "error %": 1.53, "params ×": 18.0, "FLOPs ×": 18.0},
    {"method": "SGLD+L1+PR, 90% sparse", "error %": 1.26, "params ×": 1.8, "FLOPs ×": 3.4},
    {"method": "SGLD+GSP+PR, 90% sparse", "error %": 1.26, "params ×": 1.8, "FLOPs ×": 2.5},
    {"method": "SGLD+GSP+PR, 96% sparse", "error %": 1.29, "params ×": 0.7, "FLOPs ×": 2.2},
]
PUBLISHED_STRUCTURE = {0.9: "380-128-24-10", 0.96: "364-82-22-10"}   # one SGLD+GSP+PR member


# ---------------------------------------------------------------------------------------------- priors
class GroupSparsePrior:
    """log p(θ) = −λ·Σ_g √dim(θ_g)·‖θ_g‖₂ over `groups` (a sampler's prior hook: call it on {name: tensor}), with
    its gradient in closed form, −λ·√dim(θ_g)·θ_g/‖θ_g‖₂, 0 for a group that is exactly 0."""

    def __init__(self, lam: float, groups: Sequence[Groups]):
        self.lam = check_lambda(lam, "lam")
        self.groups = list(groups)
        if not self.groups:
            raise ValueError("groups is empty: give the groups the prior acts on, e.g. structure.neuron_groups(model)")

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return -self.lam * sum(g.penalty(params) for g in self.groups)

    def gradient(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        grads = {name: torch.zeros_like(p) for name, p in params.items()}
        for g in self.groups:
            norms = g.norms(params)
            scale = torch.where(norms > 0, -self.lam * g.size ** 0.5 / norms.clamp_min(1e-30), 0.0)
            for name, _, idx in g.parts:
                flat = params[name].reshape(-1)
                grads[name].view(-1).index_add_(0, idx.reshape(-1), (flat[idx] * scale[:, None]).reshape(-1))
        return grads


class L1Prior:
    """log p(θ) = −λ·Σ|θ| over the named weights (the SGLD+L1+PR row); gradient −λ·sign(θ)."""

    def __init__(self, lam: float, names: Sequence[str]):
        self.lam = check_lambda(lam, "lam")
        self.names = list(names)
        if not self.names:
            raise ValueError("names is empty: give the weights the prior acts on")

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return -self.lam * sum(params[n].abs().sum() for n in self.names)

    def gradient(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: -self.lam * p.sign() if name in self.names else torch.zeros_like(p)
                for name, p in params.items()}


def group_sparse_prior(lam: float, groups: Sequence[Groups]) -> GroupSparsePrior:
    """The group sparse prior over `groups` (e.g. `structure.neuron_groups(model)`), for the samplers' prior hook."""
    return GroupSparsePrior(lam, groups)


def make_prior(model: nn.Module, prior: str | None, lam: float):
    """The prior named `prior` for `model`: "gsp" over its neurons' outgoing weights, "l1" over its weights, None."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if prior is None:
        return None
    if prior == "gsp":
        return GroupSparsePrior(lam, neuron_groups(model))
    return L1Prior(lam, list(effective_weights(model)))


# ---------------------------------------------------------------------------------------------- the four steps
def sample(model: nn.Module, data, *, samples: int, prior=None, lr: float = 0.5, epochs: int = 100,
           burn_in: int = 10, batch_size: int = 100, temperature: float = 1.0, seed: int = 0,
           callbacks=(), progress: bool = False, num_data: int | None = None,
           loss_fn=cross_entropy_loss) -> SampleCollector:
    """Run one SGLD chain from a copy of `model` for `epochs` at constant `lr` (mean-loss units) with `prior` (a
    log-prior hook, e.g. `group_sparse_prior`), and keep `samples` states after `burn_in` epochs, evenly thinned
    over the rest (the paper: 100 epochs, 10 burn-in, one every 5: 18 samples). num_data: the N of the mean
    loss (default: the number of training examples; a language model's loss is a mean over tokens, so N is the
    number of training tokens); loss_fn as `fit`'s."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if not 0 <= burn_in < epochs:
        raise ValueError(f"burn_in must be in [0, epochs), got burn_in={burn_in}, epochs={epochs}")
    thin = (epochs - burn_in) // samples
    if thin < 1:
        raise ValueError(f"{samples} samples do not fit in {epochs - burn_in} epochs after burn-in: one per epoch "
                         "at most")
    x, _ = (data.x_train, data.y_train) if hasattr(data, "x_train") else data
    chain = copy.deepcopy(model)
    collector = SampleCollector(burn_in=epochs - samples * thin, thin=thin, unit="epoch")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        optimizer = SGLD(chain.named_parameters(), lr=lr, num_data=len(x) if num_data is None else num_data,
                         prior=prior, temperature=temperature, batch_size=batch_size, seed=seed)
        fit(chain, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, callbacks=[collector, *callbacks],
            seed=seed, progress=progress, loss_fn=loss_fn)
    return collector


def model_with(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `model` holding the weights of `state` (a sample)."""
    member = copy.deepcopy(model)
    member.load_state_dict(state)
    return member


def prune(model: nn.Module, *, sparsity: float | None = None, group_threshold: float | None = None) -> MethodResult:
    """Masks for one sample: a global magnitude threshold removing the `sparsity` fraction of all weights (the
    paper's), or, with `group_threshold`, every neuron whose outgoing weights have an L2 norm below it."""
    if (sparsity is None) == (group_threshold is None):
        raise ValueError("give exactly one of sparsity (a global magnitude threshold) and group_threshold")
    if sparsity is not None:
        check_sparsity(sparsity)
        return magnitude(model, sparsity=sparsity, unit="weight", scope="global")
    threshold = check_lambda(group_threshold, "group_threshold", "a norm")
    groups = neuron_groups(model)
    weights = effective_weights(model)
    masks: dict[str, torch.Tensor] = {}
    for g in groups:
        with torch.no_grad():
            for name, m in g.masks(g.norms(weights) >= threshold).items():
                masks[name] = masks[name] & m if name in masks else m
    return MethodResult("sse-prune", model, masks, groups=groups)


def retrain_stages(epochs: int = 20, lr: float = 0.01, decay: float = 1.15) -> tuple[tuple[int, float], ...]:
    """The paper's retraining schedule as `sgd_stages` stages: lr divided by `decay` after every epoch."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not decay >= 1:
        raise ValueError(f"decay must be ≥ 1 (the lr is divided by it each epoch), got {decay!r}")
    return tuple((1, lr / decay ** k) for k in range(epochs))


def retrain(pruned: MethodResult, data, *, epochs: int = 20, lr: float = 0.01, decay: float = 1.15,
            batch_size: int = 100, seed: int = 0, loss_fn=cross_entropy_loss) -> MethodResult:
    """Fine-tune a pruned sample's surviving weights (masks applied as parametrizations; plain SGD, lr divided by
    `decay` each epoch: the paper's 20 epochs from 0.01 by 1.15). Returns a new MethodResult; `pruned` is kept."""
    net = apply_masks(copy.deepcopy(pruned.model), pruned.masks)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        history = sgd_stages(net, data, retrain_stages(epochs, lr, decay), momentum=0.0, batch_size=batch_size,
                             seed=seed, loss_fn=loss_fn)
    return MethodResult("sse", net, pruned.masks, groups=pruned.groups, history=history)


@torch.no_grad()
def member_predictions(members: Sequence[nn.Module | MethodResult], x: torch.Tensor) -> torch.Tensor:
    """Softmax outputs (M, N, C) of each member on x (a MethodResult counts as its masked model)."""
    if len(members) == 0:
        raise ValueError("members is empty: give at least one model")
    return torch.stack([predict_proba(m.model if isinstance(m, MethodResult) else m, x) for m in members])


def ensemble(members: Sequence[nn.Module | MethodResult], x: torch.Tensor) -> torch.Tensor:
    """The ensemble's predictive distribution on x: the mean of the members' softmax outputs (N, C)."""
    return average_predictions(member_predictions(members, x))


# ---------------------------------------------------------------------------------------------- the chain
@dataclass
class SSEResult:
    """What `run_sse` returns: the members (one MethodResult each, masks and retrained model), their softmax outputs
    on the test set (M, N, C) and the ensemble's (N, C), and the dense model they were sampled from."""

    members: list[MethodResult]
    member_probs: torch.Tensor | None
    probs: torch.Tensor | None
    dense: nn.Module
    details: dict = field(default_factory=dict)

    def compact(self) -> list[nn.Module]:
        """Every member as a physically smaller dense network."""
        return [m.compact() for m in self.members]


def members_from(chain: Sequence[dict[str, torch.Tensor]], model: nn.Module, data, *, sparsity: float | None,
                 retrain_epochs: int = 20, retrain_lr: float = 0.01, retrain_decay: float = 1.15,
                 batch_size: int = 100, seed: int = 0, loss_fn=cross_entropy_loss) -> list[MethodResult]:
    """One member per sample of `chain` (states of `model`): `prune` to `sparsity` and `retrain`; sparsity None (or
    0) keeps every weight and skips retraining (the plain SGLD ensemble). One chain can give members at several
    sparsities this way."""
    members = []
    for m, state in enumerate(chain):
        member = model_with(model, state)
        if sparsity is None or sparsity == 0:
            members.append(MethodResult("sse", member, {}))
            continue
        members.append(retrain(prune(member, sparsity=sparsity), data, epochs=retrain_epochs, lr=retrain_lr,
                               decay=retrain_decay, batch_size=batch_size, seed=seed + 1000 * (m + 1),
                               loss_fn=loss_fn))
    return members


def run_sse(model_name: str | nn.Module, data, *, samples: int = 4, sparsity: float | None = 0.9,
            prior: str | None = "gsp", lam: float = 1e-3, lr: float = 0.5, epochs: int = 100, burn_in: int = 10,
            retrain_epochs: int = 20, retrain_lr: float = 0.01, retrain_decay: float = 1.15, batch_size: int = 100,
            temperature: float = 1.0, seed: int = 0, callbacks=(), progress: bool = False) -> SSEResult:
    """Sparse Structured Ensembles end to end: `sample` (SGLD with `prior` "gsp", "l1" or None), then per sample
    `prune` (global magnitude to `sparsity`; None keeps every weight: the plain SGLD ensemble) and `retrain`
    (skipped when nothing is pruned), then `ensemble` on data's test set when it has one."""
    model = build(model_name, seed=seed) if isinstance(model_name, str) else model_name
    chain = sample(model, data, samples=samples, prior=make_prior(model, prior, lam), lr=lr, epochs=epochs,
                   burn_in=burn_in, batch_size=batch_size, temperature=temperature, seed=seed, callbacks=callbacks,
                   progress=progress)
    members = members_from(chain, model, data, sparsity=sparsity, retrain_epochs=retrain_epochs,
                           retrain_lr=retrain_lr, retrain_decay=retrain_decay, batch_size=batch_size, seed=seed)
    member_probs = member_predictions(members, data.x_test) if hasattr(data, "x_test") else None
    probs = None if member_probs is None else average_predictions(member_probs)
    return SSEResult(members, member_probs, probs, model, {"sampled_at": list(chain.at), "chain": chain})


def sse(model: nn.Module, data, *, sparsity: float, samples: int = 4, prior: str | None = "gsp", lam: float = 1e-3,
        seed: int = 0, **options) -> MethodResult:
    """The METHODS entry: `run_sse` from `model`; the result is its first member (masks, retrained model), with
    every member in details["members"] and the ensemble's test-set predictions in details["probs"]."""
    result = run_sse(model, data, samples=samples, sparsity=sparsity, prior=prior, lam=lam, seed=seed, **options)
    first = result.members[0]
    first.details.update(members=result.members, probs=result.probs, member_probs=result.member_probs)
    return first


# ---------------------------------------------------------------------------------------------- cost
def ensemble_cost_multiples(members: Sequence[nn.Module], dense: nn.Module, example: torch.Tensor) -> dict:
    """What the ensemble of (compacted) `members` costs in multiples of one `dense` model: parameters (nonzero) and
    FLOPs as SSE counts them (the smallest submatrix holding each matrix's nonzeros), summed over the members."""
    from ..ensemble import ensemble_cost

    total = ensemble_cost(members, example)
    one = ensemble_cost([dense], example)
    return {"params ×": total["nonzero_params"] / one["params"], "FLOPs ×": total["submatrix_flops"] / one["flops"]}


class BatchedEnsemble(nn.Module):
    """M compacted MLPs run as one computation: each layer's weights padded with zeros to the widest member and
    stacked, (M, out, in), so a layer is one `torch.baddbmm` for all members; a member's input pixels are gathered
    by one index_select. Padded units have zero weights and biases, so ReLU keeps them at 0 and the outputs equal
    the members'. forward(x) → the ensemble's mean softmax (B, C); `member_logits(x)` → (M, B, C)."""

    def __init__(self, members: Sequence[MLP]):
        super().__init__()
        members = list(members)
        if not members or not all(isinstance(m, MLP) for m in members):
            raise ValueError("BatchedEnsemble batches MLPs: give one or more (compacted) models.MLP")
        depth = {len(m.layers) for m in members}
        if len(depth) != 1:
            raise ValueError(f"the members must have the same number of layers, got {sorted(depth)}")
        n_inputs = max(int(m.input_index.max()) + 1 if m.input_index is not None else m.layers[0].in_features
                       for m in members)
        index = []
        widths = [max(m.layers[0].in_features for m in members)]
        widths += [max(m.layers[k].out_features for m in members) for k in range(len(members[0].layers))]
        for m in members:
            own = m.input_index if m.input_index is not None else torch.arange(m.layers[0].in_features)
            index.append(F.pad(own, (0, widths[0] - len(own))))             # padding reads pixel 0, times 0
        self.register_buffer("input_index", torch.stack(index).reshape(-1))
        self.n_inputs, self.members = n_inputs, len(members)
        for k in range(len(widths) - 1):
            w = torch.zeros(len(members), widths[k + 1], widths[k])
            b = torch.zeros(len(members), 1, widths[k + 1])
            for i, m in enumerate(members):
                layer = m.layers[k]
                w[i, :layer.out_features, :layer.in_features] = layer.weight.detach()
                b[i, 0, :layer.out_features] = layer.bias.detach()
            self.register_buffer(f"weight{k}", w.transpose(1, 2).contiguous())  # (M, in, out) for x @ W
            self.register_buffer(f"bias{k}", b)
        self.depth = len(widths) - 1
        self.classes = min(m.layers[-1].out_features for m in members)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        h = x.index_select(1, self.input_index).view(len(x), self.members, -1).transpose(0, 1)
        for k in range(self.depth):
            h = torch.baddbmm(getattr(self, f"bias{k}"), h, getattr(self, f"weight{k}"))
            if k < self.depth - 1:
                h = torch.relu(h)
        return h[..., :self.classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.member_logits(x), -1).mean(0)


class SequentialEnsemble(nn.Module):
    """The members run one after another: forward(x) → their mean softmax (B, C). The baseline for batching."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.softmax(m(x), -1) for m in self.members]).mean(0)

