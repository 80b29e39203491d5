"""The method contract: every method ends in a `MethodResult`, and scores become masks through one of two selectors.

    result = METHODS["obd"](model, data, sparsity=0.9)      # any registered method, one signature
    result.masks                                             # dict[str, BoolTensor], keyed like masks.prunable
    small = result.compact()                                 # the physically smaller network, same outputs

A method is a function `method(model, data=None, *, sparsity=None, seed=0, **options) -> MethodResult` that never
changes `model` (it works on a copy). Whatever it does inside — scores, a penalty, gates, a sampler — it ends in
boolean masks over prunable weights and the model those masks apply to (trained, or with moved weights).

Scores come in two shapes, and each has one selector that removes the lowest-scored fraction:
    weight scores   dict[str, Tensor], each shaped like its weight        → `select_weights`
    group scores    list[(Groups, Tensor (n,))], one score per group      → `select_groups`
with scope "layer" (that fraction in each tensor / each Groups) or "global" (one threshold over all of them; only
meaningful when the scores share a currency, such as predicted loss increases).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..masks import apply_masks, baked, check_masks, check_sparsity, combine, effective_weights, prunable
from ..structure import Groups

GroupScores = list[tuple[Groups, torch.Tensor]]
SCOPES = ("layer", "global")


@dataclass
class MethodResult:
    """What every method returns.

    method: its registry name; model: the network the masks apply to (trained, or with moved weights; the
    method's input is never changed); masks: name → BoolTensor over prunable weights (True = kept), a method
    that learns gates or noise gives its deterministic test-time keep set; groups: the groups it decided about
    (None: single weights); scores: weight-shaped or per-group scores, when it ranks; history: the training
    history, when it trains; path: the states at several sparsities, when it prunes along a path; details:
    anything else the lesson plots (named per method)."""

    method: str
    model: nn.Module
    masks: dict[str, torch.Tensor]
    groups: list[Groups] | None = None
    scores: dict[str, torch.Tensor] | GroupScores | None = None
    history: Any = None
    path: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.masks = check_masks(self.model, self.masks)

    @property
    def sparsity(self) -> float:
        """Fraction of all the model's prunable weights that the masks remove."""
        total = sum(getattr(m, a).numel() for m, a in prunable(self.model).values())
        return sum(int((~m).sum()) for m in self.masks.values()) / total

    def masked(self) -> nn.Module:
        """A copy of the model with the masks applied (as parametrizations)."""
        return apply_masks(copy.deepcopy(self.model), self.masks)

    def compact(self) -> nn.Module:
        """The smaller dense network that computes what the masked model computes."""
        from ..compact import compact
        return compact(self.model, self.masks)


@dataclass(frozen=True)
class Method:
    """A registered method: its `run` function and what a reader (and the benchmark) needs to know about it.

    family: the methods/ module it comes from; structured: whether its masks remove whole groups; needs: what it
    uses besides the model ("data", "curvature", "training"); target: what `sparsity` counts — "weights",
    "groups" (the fraction removed, per layer or globally as `scope` says) — or None (the method decides how
    much to remove, e.g. from λ); models: the model names it applies to (`models.build`); quick: options for a
    tiny run (tests, smoke benchmarks)."""

    name: str
    run: Callable[..., MethodResult]
    family: str
    structured: bool
    needs: tuple[str, ...]
    target: str | None
    models: tuple[str, ...]
    summary: str
    scope: str = "layer"
    quick: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: nn.Module, data=None, *, sparsity: float | None = None, seed: int = 0,
                 **options) -> MethodResult:
        if self.target is not None and sparsity is None:
            raise ValueError(f"method {self.name!r} needs a target sparsity (the fraction of {self.target} to "
                             "remove), e.g. sparsity=0.9")
        if self.target is None and sparsity is not None:
            raise ValueError(f"method {self.name!r} decides how much to remove itself; it takes no sparsity")
        if "data" in self.needs and data is None:
            raise ValueError(f"method {self.name!r} needs data (a Dataset or an (x, y) pair)")
        kwargs = {} if sparsity is None else {"sparsity": sparsity}
        result = self.run(model, data, seed=seed, **kwargs, **options)
        result.method = self.name
        return result


def lowest_fraction(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean keep-mask shaped like scores, removing the round(sparsity·n) lowest scores (ties: by index)."""
    check_sparsity(sparsity)
    n_remove = round(sparsity * scores.numel())
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[torch.argsort(scores.reshape(-1), stable=True)[:n_remove]] = False
    return keep.reshape(scores.shape)


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")


def _split(keep: torch.Tensor, shapes: list[torch.Size]) -> list[torch.Tensor]:
    pieces = keep.split([s.numel() for s in shapes])
    return [p.reshape(s) for p, s in zip(pieces, shapes, strict=True)]


def select_weights(scores: dict[str, torch.Tensor], sparsity: float, scope: str = "layer") -> dict[str, torch.Tensor]:
    """Masks removing the `sparsity` fraction of lowest weight scores, per tensor ("layer") or over all
    ("global"). scores: name → tensor shaped like that weight (higher = more worth keeping)."""
    _check_scope(scope)
    if not scores:
        raise ValueError("scores is empty: give at least one weight's scores")
    if scope == "layer":
        return {name: lowest_fraction(s, sparsity) for name, s in scores.items()}
    keep = lowest_fraction(torch.cat([s.reshape(-1) for s in scores.values()]), sparsity)
    return dict(zip(scores, _split(keep, [s.shape for s in scores.values()]), strict=True))


def select_groups(scored: GroupScores, sparsity: float, scope: str = "layer") -> dict[str, torch.Tensor]:
    """Masks removing the `sparsity` fraction of groups with the lowest scores, in each Groups ("layer") or over
    all of them ("global"). scored: (Groups, (n,) scores) pairs; masks of overlapping groups are intersected."""
    _check_scope(scope)
    if not scored:
        raise ValueError("scored is empty: give at least one (Groups, scores) pair")
    for groups, s in scored:
        if s.shape != (groups.n,):
            raise ValueError(f"scores for {groups.name!r} must have shape ({groups.n},), got {tuple(s.shape)}")
    if scope == "layer":
        keeps = [lowest_fraction(s, sparsity) for _, s in scored]
    else:
        keeps = _split(lowest_fraction(torch.cat([s for _, s in scored]), sparsity), [s.shape for _, s in scored])
    return combine(*(groups.masks(keep) for (groups, _), keep in zip(scored, keeps, strict=True)))


def removed_fraction(groups: list[Groups], masks: dict[str, torch.Tensor], scope: str = "global") -> list[float]:
    """The fraction of groups the masks remove entirely: one number per Groups ("layer") or overall."""
    removed = [g.removed(masks) for g in groups]
    if scope == "layer":
        return [float(r.double().mean()) for r in removed]
    return [float(torch.cat(removed).double().mean())]


@dataclass
class PruningPath:
    """Weights after pruning to each of `sparsities` (ascending fractions of all the weights pruned over).

    states[k]: name → weight tensor (zeros where removed, OBS's moves included); predicted[k]: the summed
    predicted loss increase of the weights removed so far (NaN for criteria that predict none)."""

    sparsities: list[float]
    states: list[dict[str, torch.Tensor]]
    predicted: list[float]


def score_path(model: nn.Module, scores: dict[str, torch.Tensor], sparsities,
               scope: str = "layer") -> PruningPath:
    """The pruned weights at each sparsity when `scores` decide and no weight moves: masked weight copies."""
    weights = {name: w.detach() for name, w in effective_weights(model).items() if name in scores}
    states = [{n: weights[n] * m for n, m in select_weights(scores, s, scope).items()} for s in sparsities]
    return PruningPath(list(sparsities), states, [float("nan")] * len(states))


def pruned_copy(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A deep copy of `model` (masks baked) whose named weights are replaced by `state` (a path's state)."""
    copy_ = baked(model)
    with torch.no_grad():
        for name, w in state.items():
            copy_.get_parameter(name).copy_(w)
    return copy_


def state_masks(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The masks of a path's state: a weight is kept where it is nonzero."""
    return {name: w != 0 for name, w in state.items()}
