"""Lottery tickets (Frankle & Carbin 2019): iterative magnitude pruning with rewinding, and the two controls.

    θ₀ ← init;  m ← 1
    repeat: train m ⊙ θ from the rewind point → θ_T;
            m ← m minus the `rate` smallest |θ_T| of each layer's survivors;
            rewind the survivors to θ₀ (or to θ_k, an early iterate: Frankle et al. 2020)

A "winning ticket" is the sparse subnetwork m ⊙ θ₀ that, trained alone, matches the dense network's accuracy.
The claim is about the *pairing* of mask and initial values, so two controls break one half of it each:
    reinit       the same mask m, new random initial values (Liu et al. 2019 train such nets "from scratch")
    random mask  a random mask with the same per-layer counts, the same rewind values
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..masks import apply_masks, baked, check_sparsity, effective_weights, random_masks
from ..train import TrainState, evaluate, fit
from .base import MethodResult

CONTROLS = ("reinit", "random mask")


def prune_survivors(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                    rates: dict[str, float]) -> dict[str, torch.Tensor]:
    """One IMP round: each layer loses round(rate·survivors) of its surviving weights, those of smallest |w|.

    weights: name → trained weight; masks: name → current bool mask; rates: name → fraction cut."""
    out = {}
    for name, mask in masks.items():
        rate = check_sparsity(rates[name], f"rates[{name!r}]")
        alive = mask.reshape(-1).nonzero().squeeze(1)
        scores = weights[name].detach().abs().reshape(-1)[alive]
        cut = alive[torch.argsort(scores, stable=True)[:round(rate * len(alive))]]
        new = mask.clone().reshape(-1)
        new[cut] = False
        out[name] = new.reshape(mask.shape)
    return out


def random_masks_like(masks: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random masks keeping, in each layer, as many weights as `masks` does (positions drawn from `seed`)."""
    return random_masks({n: tuple(m.shape) for n, m in masks.items()}, {n: int(m.sum()) for n, m in masks.items()},
                        torch.Generator().manual_seed(seed))


def reinitialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of `model` with fresh initial values from each layer's `reset_parameters`, drawn from `seed`."""
    fresh = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return fresh


@dataclass
class LotteryRun:
    """Test error (%) after training per IMP round, for the ticket and each control; round 0 is dense.

    sparsity[r]: fraction of the prunable weights removed in round r; masks[r]: the ticket's masks;
    rewind: the state dict each round starts from (θ₀, or the dense run's weights after `rewind_step`
    steps); final: variant → (its trained network, its masks) in the last round."""

    sparsity: list[float] = field(default_factory=list)
    error: dict[str, list[float]] = field(default_factory=dict)
    masks: list[dict[str, torch.Tensor]] = field(default_factory=list)
    rewind: dict[str, torch.Tensor] = field(default_factory=dict)
    final: dict[str, tuple[nn.Module, dict[str, torch.Tensor]]] = field(default_factory=dict)

    def result(self, variant: str = "ticket") -> MethodResult:
        """The last round of one variant ("ticket", "reinit", "random mask") as a MethodResult: its trained network
        (masks baked) and its masks; details["run"] is this whole run, for the curves."""
        if variant not in self.final:
            raise ValueError(f"variant must be one of {sorted(self.final)}, got {variant!r}")
        net, masks = self.final[variant]
        name = {"ticket": "lottery-ticket", "reinit": "lottery-reinit", "random mask": "lottery-random-mask"}
        return MethodResult(name[variant], baked(net), masks, details={"run": self})


def lottery_tickets(model: nn.Module, data, rounds: int = 5, rate: float = 0.2,
                    output_rate: float | None = None, rewind_step: int = 0, controls=CONTROLS,
                    optimizer: Callable | None = None, epochs: int = 5, batch_size: int = 64, seed: int = 0,
                    test_data=None) -> LotteryRun:
    """Iterative magnitude pruning with rewinding, from the untrained `model` (its values are θ₀); controls.

    rounds: pruning rounds after the dense run; rate: fraction of each layer's survivors cut per round
    (Frankle & Carbin: 0.2), output_rate: the same for the last layer (default rate/2, as in the paper);
    rewind_step: 0 rewinds to θ₀, k > 0 to the weights after k steps of the dense run; optimizer: params →
    torch optimiser (default Adam, lr 1.2e-3, the paper's for LeNet); test_data: where the error is measured
    (default `data`'s test split). Every training run uses the same minibatch order (`seed`)."""
    if rounds < 0:
        raise ValueError(f"rounds must be ≥ 0, got {rounds}")
    check_sparsity(rate, "rate")
    if output_rate is not None:
        check_sparsity(output_rate, "output_rate")
    unknown = set(controls) - set(CONTROLS)
    if unknown:
        raise ValueError(f"controls must be among {CONTROLS}, got {sorted(unknown)}")
    optimizer = optimizer or (lambda params: torch.optim.Adam(params, lr=1.2e-3))
    test_data = test_data if test_data is not None else data
    names = list(effective_weights(model))
    rates = {n: rate for n in names}
    rates[names[-1]] = rate / 2 if output_rate is None else output_rate
    rewind_to = copy.deepcopy(model)

    def train(net: nn.Module, masks: dict[str, torch.Tensor], callbacks=()) -> tuple[nn.Module, float]:
        net = apply_masks(copy.deepcopy(net), masks)
        fit(net, data, epochs=epochs, batch_size=batch_size, optimizer=optimizer(net.parameters()), seed=seed,
            callbacks=callbacks, progress=False)
        return net, evaluate(net, test_data)["error"]

    def remember(state: TrainState) -> None:
        if state.step == rewind_step:  # the dense run wears all-ones masks: keep plain weights
            rewind_to.load_state_dict(baked(state.model).state_dict())

    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in effective_weights(model).items()}
    run = LotteryRun(error={"ticket": [], **{c: [] for c in controls}})
    for r in range(rounds + 1):
        trained, error = train(rewind_to, masks, [remember] if r == 0 and rewind_step > 0 else ())
        removed = sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
        run.sparsity.append(removed)
        run.masks.append(masks)
        run.error["ticket"].append(error)
        run.final["ticket"] = (trained, masks)
        if "reinit" in controls:
            fresh = (trained, error) if r == 0 else train(reinitialised(model, seed + 1000 + r), masks)
            run.error["reinit"].append(fresh[1])
            run.final["reinit"] = (fresh[0], masks)
        if "random mask" in controls:
            random = masks if r == 0 else random_masks_like(masks, seed + 2000 + r)
            other = (trained, error) if r == 0 else train(rewind_to, random)
            run.error["random mask"].append(other[1])
            run.final["random mask"] = (other[0], random)
        masks = prune_survivors(effective_weights(trained), masks, rates)
    run.rewind = copy.deepcopy(rewind_to.state_dict())
    return run


def lottery(model: nn.Module, data, *, variant: str = "ticket", rounds: int = 5, rate: float = 0.2,
            seed: int = 0, **options) -> MethodResult:
    """Iterative magnitude pruning with rewinding from the untrained `model` (`lottery_tickets`), returning one
    variant's last round: "ticket" (the mask with its initial values), or a control, "reinit" (the same mask, new
    initial values) or "random mask" (a random mask with the same per-layer counts)."""
    controls = () if variant == "ticket" else (variant,)
    if variant != "ticket" and variant not in CONTROLS:
        raise ValueError(f"variant must be 'ticket' or one of {CONTROLS}, got {variant!r}")
    return lottery_tickets(model, data, rounds, rate, controls=controls, seed=seed, **options).result(variant)
