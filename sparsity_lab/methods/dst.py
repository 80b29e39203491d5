"""Dynamic sparse training: train a sparse network from scratch while its connectivity changes, never paying for a
dense one. Each method is a callback on the one training loop (`train.fit`) that owns the model's masks:

    SET     Mocanu et al. 2018. Start from Erdős–Rényi densities ε·(n_in + n_out)/(n_in·n_out) per layer (ε = 20);
            after every epoch (but the last) drop the fraction ζ = 0.3 of the smallest positive and of the largest
            negative weights of each layer, and regrow as many at random dormant positions. Per layer the count of
            connections is fixed.
    DeepR   Bellec et al. 2018. Each connection has a fixed sign s and a parameter θ ≥ 0, w = s·θ while active.
            After every SGD step, θ ← θ − lr·α + √(2·lr·T)·ν (an L1 pull and Langevin noise, ν ~ N(0, 1)); a
            connection whose θ crosses below 0 goes dormant and a random dormant one of the same layer wakes with
            θ = 0 and a random sign. The count per layer is fixed, and no sign ever flips.
    DSR     Mostafa & Wang 2019. Every `every` steps, prune every active |w| below one global threshold H, then
            adapt H (×2 if fewer than (1 − δ)·N_p went, ÷2 if more than (1 + δ)·N_p), N_p the target count; regrow
            as many at zero, allotted to the layers in proportion to their surviving weights. The total count is
            fixed; the layers' shares move.

    result = METHODS["set"](model, data, sparsity=0.9)          # trains; a MethodResult with the final masks
    rewiring = SET(model, masks, zeta=0.3); fit(model, data, callbacks=[rewiring]); rewiring.history

Every rewiring records a `Snapshot` (step, connections per layer, the first layer's mask), which `listeners` receive
as it happens (a live connectivity movie). The regrown weights' optimiser state (momentum, Adam moments) is reset.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..masks import (
    apply_masks,
    baked,
    check_sparsity,
    get_masks,
    live_masks,
    raw_weights,
)
from ..train import as_tensors, fit
from .base import MethodResult
from .sparse_start import (  # noqa: F401 (re-exported: the dynamic methods' starts, `dst.epsilon_for` in lesson 10)
    allot,
    epsilon_for,
    erdos_renyi_densities,
    initial_masks,
    shapes_of,
    starting_masks,
)


# --------------------------------------------------------------------------------------------- the callback
@dataclass
class Snapshot:
    """The connectivity after one rewiring: the training step, connections per layer, the first layer's mask,
    and what the method adds (DSR: its threshold and the count pruned)."""

    step: int
    counts: dict[str, int]
    first: torch.Tensor
    extra: dict = field(default_factory=dict)


class DynamicSparsity:
    """A `fit` callback that owns `model`'s masks and rewires them (subclasses say when and how).

    Masks are applied to `model` in place. history: one Snapshot per rewiring (the first at step 0); listeners:
    functions called with each new Snapshot (e.g. to redraw a figure while training runs)."""

    name = "dynamic sparsity"

    def __init__(self, model: nn.Module, masks: dict[str, torch.Tensor], seed: int = 0,
                 listeners: tuple[Callable[[Snapshot], None], ...] = ()):
        self.model = apply_masks(model, masks)
        self.generator = torch.Generator().manual_seed(seed)
        self.listeners = list(listeners)
        self.history: list[Snapshot] = []
        self._record(0)

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        return get_masks(self.model)

    def _record(self, step: int, **extra) -> None:
        masks = live_masks(self.model)
        snapshot = Snapshot(step, {n: int(m.sum()) for n, m in masks.items()}, next(iter(masks.values())).clone(),
                            extra)
        self.history.append(snapshot)
        for listener in self.listeners:
            listener(snapshot)

    def due(self, state) -> bool:
        raise NotImplementedError

    def rewire(self, state) -> dict:
        raise NotImplementedError

    def records(self, state) -> bool:
        """Whether this rewiring is kept as a Snapshot (every one, unless a method rewires too often for that)."""
        return True

    def __call__(self, state) -> None:
        if self.due(state):
            with torch.no_grad():
                extra = self.rewire(state) or {}
            if self.records(state):
                self._record(state.step, **extra)

    def result(self) -> MethodResult:
        """The trained network (masks baked) and its final masks; details["history"] is the rewiring record."""
        return MethodResult(self.name, baked(self.model), self.masks, details={"history": self.history})

    def _grow(self, mask: torch.Tensor, count: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Flat indices of `count` dormant positions of `mask` drawn at random: those in `exclude` (just pruned)
        only when the others run out, so the count can always be restored."""
        dormant = ~mask.reshape(-1)
        if exclude is not None:
            dormant[exclude] = False
        candidates = dormant.nonzero().squeeze(1)
        picked = candidates[torch.randperm(len(candidates), generator=self.generator)[:count]]
        if len(picked) < count and exclude is not None:
            rest = exclude[torch.randperm(len(exclude), generator=self.generator)[:count - len(picked)]]
            picked = torch.cat([picked, rest])
        return picked


def reset_optimizer_state(optimizer: torch.optim.Optimizer, parameter: torch.Tensor, flat: torch.Tensor) -> None:
    """Zero the optimiser's per-weight state (momentum, Adam's moments) of `parameter` at the flat indices `flat`,
    so a regrown weight starts without the history of the one that was there."""
    for value in optimizer.state.get(parameter, {}).values():
        if torch.is_tensor(value) and value.shape == parameter.shape:
            value.view(-1)[flat] = 0


# ---------------------------------------------------------------------------------------------------- SET
class SET(DynamicSparsity):
    """Sparse Evolutionary Training: at the end of each epoch before `last_epoch`, per layer, drop the fraction
    `zeta` of the smallest positive and of the largest negative weights and regrow as many at random. New weights
    are drawn as PyTorch initialises the layer, U(±1/√fan_in), or from N(0, regrow_std²) when it is given."""

    name = "set"

    def __init__(self, model, masks, zeta: float = 0.3, last_epoch: int | None = None,
                 regrow_std: float | None = None, seed: int = 0, listeners=()):
        check_sparsity(zeta, "zeta")
        self.zeta, self.last_epoch, self.regrow_std = zeta, last_epoch, regrow_std
        super().__init__(model, masks, seed, listeners)

    def due(self, state) -> bool:
        return state.end_of_epoch and (self.last_epoch is None or state.epoch < self.last_epoch)

    def new_weights(self, weight: torch.Tensor, count: int) -> torch.Tensor:
        if self.regrow_std is not None:
            return self.regrow_std * torch.randn(count, generator=self.generator)
        bound = 1 / math.sqrt(weight[0].numel())       # fan_in: one output's inputs (× kernel size for a conv)
        return (2 * torch.rand(count, generator=self.generator) - 1) * bound

    def rewire(self, state) -> None:
        raw = raw_weights(self.model)
        for name, mask in live_masks(self.model).items():
            w, flat = raw[name].view(-1), mask.view(-1)
            removed = torch.cat([drop_extremes(w, flat, self.zeta, positive) for positive in (True, False)])
            flat[removed] = False
            w[removed] = 0
            grown = self._grow(mask, len(removed), exclude=removed)
            flat[grown] = True
            w[grown] = self.new_weights(raw[name], len(grown)).to(w.dtype)
            reset_optimizer_state(state.optimizer, raw[name], torch.cat([removed, grown]))


def drop_extremes(w: torch.Tensor, active: torch.Tensor, zeta: float, positive: bool) -> torch.Tensor:
    """Flat indices of the round(ζ·n) active weights closest to zero on one side: the smallest of the n positive
    ones, or the largest of the n negative ones (SET's rule)."""
    side = active & (w > 0 if positive else w < 0)
    idx = side.nonzero().squeeze(1)
    order = torch.argsort(w[idx].abs(), stable=True)
    return idx[order[:round(zeta * len(idx))]]


# -------------------------------------------------------------------------------------------------- DeepR
class DeepR(DynamicSparsity):
    """Deep Rewiring after every step of plain SGD: θ = s·w moves by −lr·α + √(2·lr·T)·ν; a connection whose θ
    falls below 0 goes dormant and a random dormant connection of its layer wakes at θ = 0 with a random sign."""

    name = "deepr"

    def __init__(self, model, masks, alpha: float = 1e-5, temperature: float = 1e-5, seed: int = 0, listeners=(),
                 record_every: int | None = None):
        if alpha < 0 or temperature < 0:
            raise ValueError(f"alpha and temperature must be ≥ 0, got {alpha} and {temperature}")
        self.alpha, self.temperature, self.record_every = alpha, temperature, record_every
        super().__init__(model, masks, seed, listeners)
        raw = raw_weights(self.model)
        random_signs = {n: torch.where(torch.rand(w.shape, generator=self.generator) < 0.5, -1.0, 1.0)
                        for n, w in raw.items()}
        self.signs = {n: torch.where(raw[n] != 0, torch.sign(raw[n].detach()), random_signs[n]) for n in raw}
        self.rewired = 0                                    # connections replaced so far

    def due(self, state) -> bool:
        return True

    def records(self, state) -> bool:
        """Every `record_every` steps (default: once an epoch): DeepR rewires after every step."""
        return state.step % (self.record_every or state.steps_per_epoch) == 0

    def rewire(self, state) -> dict:
        lr = state.optimizer.param_groups[0]["lr"]
        raw = raw_weights(self.model)
        for name, mask in live_masks(self.model).items():
            w, flat, sign = raw[name].view(-1), mask.view(-1), self.signs[name].view(-1)
            active = flat.nonzero().squeeze(1)
            theta = sign[active] * w[active] - lr * self.alpha
            theta += math.sqrt(2 * lr * self.temperature) * torch.randn(len(active), generator=self.generator)
            w[active] = (sign[active] * theta).to(w.dtype)
            dead = active[theta < 0]
            flat[dead] = False
            w[dead] = 0
            woken = self._grow(mask, len(dead), exclude=dead)
            flat[woken] = True
            w[woken] = 0
            sign[woken] = torch.where(torch.rand(len(woken), generator=self.generator) < 0.5, -1.0, 1.0)
            reset_optimizer_state(state.optimizer, raw[name], torch.cat([dead, woken]))
            self.rewired += len(dead)
        return {"rewired": self.rewired}


# ---------------------------------------------------------------------------------------------------- DSR
class DSR(DynamicSparsity):
    """Dynamic Sparse Reparameterisation every `every` steps: prune |w| < H everywhere, adapt the global H toward
    pruning `target` connections (within the tolerance δ), regrow as many at zero, allotted to the layers in
    proportion to their surviving weights."""

    name = "dsr"

    def __init__(self, model, masks, target: int, every: int = 100, threshold: float = 1e-3,
                 tolerance: float = 0.1, last_step: int | None = None, seed: int = 0, listeners=()):
        if target < 1 or every < 1 or not threshold > 0 or not 0 <= tolerance < 1:
            raise ValueError("DSR needs target ≥ 1, every ≥ 1, threshold > 0 and tolerance in [0, 1), got "
                             f"{target}, {every}, {threshold}, {tolerance}")
        self.target, self.every, self.threshold, self.tolerance = target, every, threshold, tolerance
        self.last_step = last_step
        super().__init__(model, masks, seed, listeners)

    def due(self, state) -> bool:
        return state.step % self.every == 0 and (self.last_step is None or state.step < self.last_step)

    def adapt(self, pruned: int) -> float:
        """The next threshold: doubled when fewer than (1 − δ)·target were pruned, halved when more than
        (1 + δ)·target."""
        if pruned < (1 - self.tolerance) * self.target:
            self.threshold *= 2
        elif pruned > (1 + self.tolerance) * self.target:
            self.threshold /= 2
        return self.threshold

    def rewire(self, state) -> dict:
        raw, masks = raw_weights(self.model), live_masks(self.model)
        used, pruned = self.threshold, {}
        for name, mask in masks.items():
            w, flat = raw[name].view(-1), mask.view(-1)
            pruned[name] = (flat & (w.abs() < used)).nonzero().squeeze(1)
            flat[pruned[name]] = False
            w[pruned[name]] = 0
        total = sum(len(p) for p in pruned.values())
        shares = allot(total, {n: int(m.sum()) for n, m in masks.items()},
                       {n: int((~m).sum()) - len(pruned[n]) for n, m in masks.items()})
        for name, mask in masks.items():
            grown = self._grow(mask, shares[name], exclude=pruned[name])
            mask.view(-1)[grown] = True
            raw[name].view(-1)[grown] = 0
            reset_optimizer_state(state.optimizer, raw[name], torch.cat([pruned[name], grown]))
        self.adapt(total)
        return {"threshold": used, "pruned": total}


# ------------------------------------------------------------------------------------------ registry runs
def _train(rewiring: DynamicSparsity, data, epochs: int, optimizer, batch_size: int, seed: int, callbacks,
           progress: bool) -> MethodResult:
    fit(rewiring.model, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer, seed=seed,
        callbacks=[rewiring, *callbacks], progress=progress)
    return rewiring.result()


def sparse_evolutionary(model: nn.Module, data, *, sparsity: float | None = None, epsilon: float = 20.0,
                        zeta: float = 0.3, epochs: int = 10, lr: float = 1e-3, momentum: float = 0.9,
                        weight_decay: float = 2e-4, batch_size: int = 64, seed: int = 0, callbacks=(),
                        listeners=(), progress: bool = False) -> MethodResult:
    """SET from the untrained `model`: Erdős–Rényi masks (ε chosen to remove `sparsity` of the weights when it is
    given), SGD with momentum and weight decay (the authors' settings), rewired after each epoch but the last."""
    shapes = shapes_of(model)
    eps = epsilon if sparsity is None else epsilon_for(shapes, sparsity)
    generator = torch.Generator().manual_seed(seed)
    net = copy.deepcopy(model)
    masks = initial_masks(shapes, erdos_renyi_densities(shapes, eps), sparsity, generator)
    rewiring = SET(net, masks, zeta=zeta, last_epoch=epochs - 1, seed=seed, listeners=listeners)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    result = _train(rewiring, data, epochs, optimizer, batch_size, seed, callbacks, progress)
    result.details["epsilon"] = eps
    return result


def deep_rewiring(model: nn.Module, data, *, sparsity: float = 0.9, alpha: float = 1e-5, temperature: float = 1e-5,
                  epochs: int = 10, lr: float = 0.5, batch_size: int = 10, initial: str = "uniform", seed: int = 0,
                  callbacks=(), listeners=(), progress: bool = False) -> MethodResult:
    """DeepR from the untrained `model` with the authors' MNIST settings (plain SGD, lr 0.5, batch 10, α = T =
    1e-5) and a rewiring after every step; `initial` masks as `starting_masks` makes them."""
    net = copy.deepcopy(model)
    masks = starting_masks(shapes_of(model), sparsity, initial, torch.Generator().manual_seed(seed))
    rewiring = DeepR(net, masks, alpha=alpha, temperature=temperature, seed=seed, listeners=listeners)
    return _train(rewiring, data, epochs, torch.optim.SGD(net.parameters(), lr=lr), batch_size, seed, callbacks,
                  progress)


def dynamic_reparameterisation(model: nn.Module, data, *, sparsity: float = 0.9, every: int = 100,
                               prune_fraction: float = 0.01, threshold: float = 1e-3, tolerance: float = 0.1,
                               epochs: int = 10, lr: float = 0.05, momentum: float = 0.9, batch_size: int = 64,
                               initial: str = "uniform", seed: int = 0, callbacks=(), listeners=(),
                               progress: bool = False) -> MethodResult:
    """DSR from the untrained `model`: `initial` masks (`starting_masks`), SGD with momentum; every `every` steps a
    reallocation with target N_p = prune_fraction × the connections; none in the last epoch."""
    masks = starting_masks(shapes_of(model), sparsity, initial, torch.Generator().manual_seed(seed))
    target = max(1, round(prune_fraction * sum(int(m.sum()) for m in masks.values())))
    net = copy.deepcopy(model)
    steps_per_epoch = math.ceil(len(as_tensors(data)[0]) / batch_size)
    rewiring = DSR(net, masks, target=target, every=every, threshold=threshold, tolerance=tolerance,
                   last_step=(epochs - 1) * steps_per_epoch, seed=seed, listeners=listeners)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    return _train(rewiring, data, epochs, optimizer, batch_size, seed, callbacks, progress)
