"""Gates: learned (or random) multipliers on whole units, as parametrizations of the weights that carry them.

A gate multiplies each unit of a layer by a factor z_j: a unit's *output* (after its activation) when it sits on
the columns of the layer that reads the unit (side "reader"), or its *pre-activation* (its incoming weights, the
bias left alone) when it sits on the rows of the layer that makes it (side "producer"). Either way the gate is a
`torch.nn.utils.parametrize` parametrization of one weight, `weight · z` broadcast along rows or columns, so
everything that reads weights already understands it:

- `masks.effective_weights`, `cost` and `compact` see the gated weights; `compact` puts the model in eval mode, so
  a random gate shows its deterministic test-time value, and a unit whose gate is 0 is removed;
- `train.fit` adds every gate's `penalty()` to the loss and calls its `after_step(optimizer)` after each step
  (a proximal step, a clamp);
- `keep_masks(model)` turns the gates' test-time keep sets into a method's boolean masks.

A method that learns gates (sparse structure selection here; L0 gates, Sparse VD, structured Bayesian pruning in
their lessons) writes one `Gate` subclass with `factors()`, `keep()` and, if it needs them, `penalty()` and
`after_step()`, and places it with `attach`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .masks import combine, prunable
from .structure import Groups, Units, unit_groups, units

SIDES = ("reader", "producer")


class Gate(nn.Module):
    """The parametrization weight ↦ weight · z, with one factor z_j per unit along `dim` (0: rows, 1: columns),
    each repeated `block` times (the positions of a map that a Linear reads after a flatten).

    Subclasses define `factors()` (n,): a random draw in training mode if the gate is stochastic, the
    deterministic test-time value in eval mode; `keep()` (n,) bool: the test-time keep set. `penalty()` (added to
    the loss by `train.fit`) and `after_step(optimizer)` (called by `fit` after every optimiser step) default to
    nothing. `groups` is set by `attach`: the unit groups that `keep()` removes."""

    def __init__(self, n: int, dim: int = 1, block: int = 1):
        super().__init__()
        if dim not in (0, 1) or n < 1 or block < 1:
            raise ValueError(f"a gate needs n ≥ 1 units, dim 0 or 1 and block ≥ 1, got n={n}, dim={dim}, "
                             f"block={block}")
        self.n, self.dim, self.block = n, dim, block
        self.groups: Groups | None = None

    def factors(self) -> torch.Tensor:
        raise NotImplementedError

    def keep(self) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self) -> torch.Tensor:
        return torch.zeros(())

    def after_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Called by `train.fit` after every optimiser step."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        z = self.factors().to(weight.dtype)
        if z.shape != (self.n,):
            raise ValueError(f"{type(self).__name__}.factors() must have shape ({self.n},), got {tuple(z.shape)}")
        if weight.shape[self.dim] != self.n * self.block:
            raise ValueError(f"a gate of {self.n} units × block {self.block} cannot sit on dim {self.dim} of a "
                             f"weight of shape {tuple(weight.shape)}")
        shape = [1] * weight.dim()
        shape[self.dim] = -1
        return weight * z.repeat_interleave(self.block).view(shape)


def gates(model: nn.Module) -> dict[str, Gate]:
    """Every gate in `model`, by the name of the weight it sits on."""
    out = {}
    for name, (module, attr) in prunable(model).items():
        if parametrize.is_parametrized(module, attr):
            for p in module.parametrizations[attr]:
                if isinstance(p, Gate):
                    out[name] = p
    return out


def gate_on(module: nn.Module, kind: type[Gate]) -> Gate | None:
    """The first gate of class `kind` among the parametrizations of `module.weight`, or None: how a forward hook
    finds its own module's gate at each call (so a deep copy of the model uses its own)."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    return next((p for p in module.parametrizations.weight if isinstance(p, kind)), None)


def gate_penalty(model: nn.Module) -> torch.Tensor | None:
    """The sum of every gate's penalty (None when the model has no gate)."""
    found = list(gates(model).values())
    return sum(g.penalty() for g in found) if found else None


def keep_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Boolean masks from every gate's test-time keep set: a unit whose gate is off loses its whole unit group
    (its rows in the layer that makes it and the columns that read it), so `compact` removes it."""
    found = gates(model)
    if not found:
        raise ValueError(f"{type(model).__name__} has no gates: attach some with gates.attach")
    return combine(*(g.groups.masks(g.keep()) for g in found.values()))


def _weight_of(model: nn.Module, layer: str) -> str:
    attr = "weight_ih" if hasattr(model.get_submodule(layer), "weight_ih") else "weight"
    return f"{layer}.{attr}" if layer else attr


def attach(model: nn.Module, make_gate: Callable[[int, int, int], Gate], side: str = "reader",
           kinds: tuple[str, ...] = ("units", "maps"), where: list[Units] | None = None) -> dict[str, Gate]:
    """Put a gate on every set of units of `model` whose kind is in `kinds` (see `structure.units`: "inputs",
    "units" of a Linear, "maps" of a conv), or on the units `where`, in place. `make_gate(n, dim, block)` builds
    one gate. side "reader": on the columns of the layer that reads the units (their outputs, after the
    activation); "producer": on the rows of the layer that makes them (before it; inputs have no producer).
    Returns units name → gate."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    chosen = where if where is not None else [u for u in units(model) if u.kind in kinds and u.reader is not None]
    if not chosen:
        raise ValueError(f"{type(model).__name__} has no units of kinds {kinds} to gate")
    by_name = {g.name: g for g in unit_groups(model)}
    out = {}
    for u in chosen:
        if side == "producer" and u.producer is None:
            raise ValueError(f"{u.name!r} are the network's inputs: no layer makes them, gate them on the reader")
        layer = u.reader if side == "reader" else u.producer
        module = model.get_submodule(layer)
        dim, block = (1, u.block) if side == "reader" else (0, 1)
        gate = make_gate(u.size, dim, block)
        gate.groups = by_name[u.name]
        attr = _weight_of(model, layer).rpartition(".")[2]
        parametrize.register_parametrization(module, attr, gate)
        out[u.name] = gate
    return out
