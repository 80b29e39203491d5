"""Masks as parametrizations: `layer.weight` reads as `original * mask`, the original is kept, and it all saves.

A mask is a `dict[str, BoolTensor]` keyed by parameter name ("layers.0.weight"), the same keys as a score. Masks
are boolean everywhere: a float or integer mask is accepted only when every entry is exactly 0 or 1, anything
else (0.5, −1, NaN) is an error, so a mask never means "scale" in one place and "keep" in another.

    apply_masks(model, masks)        # register (or update) the masks
    get_masks(model)                 # read them back
    remove_masks(model)              # bake the zeros into plain weights and drop the parametrizations
    sparsity_report(model)           # per-layer counts
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from .models import LSTMLayer

WEIGHT_NAMES = {nn.Linear: ("weight",), nn.Conv2d: ("weight",), nn.Embedding: ("weight",),
                LSTMLayer: ("weight_ih", "weight_hh")}


class Mask(nn.Module):
    """The parametrization: multiply a weight by a fixed boolean mask (a buffer, so it is saved with the model)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        # a copy, so updating the mask in place never writes into the caller's tensor (nor the reverse)
        self.register_buffer("mask", mask.detach().to(torch.bool).clone())

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def prunable(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Every weight matrix a mask may cover: name → (module, attribute). Biases and norms are left dense."""
    out = {}
    for mname, module in model.named_modules():
        for kind, attrs in WEIGHT_NAMES.items():
            if isinstance(module, kind):
                for attr in attrs:
                    out[f"{mname}.{attr}" if mname else attr] = (module, attr)
    return out


def effective_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights as the forward pass sees them (masks applied), keyed by parameter name."""
    return {name: getattr(module, attr) for name, (module, attr) in prunable(model).items()}


def raw_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable weight tensors by name: under a mask, the original (unmasked) parameter, for in-place updates
    such as a proximal step."""
    return {name: module.parametrizations[attr].original if parametrize.is_parametrized(module, attr)
            else getattr(module, attr) for name, (module, attr) in prunable(model).items()}


def as_bool(mask, name: str = "mask") -> torch.Tensor:
    """A mask as a BoolTensor: bool as is; numbers only if every entry is exactly 0 or 1 (else ValueError)."""
    mask = torch.as_tensor(mask)
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
        bad = mask[(mask != 0) & (mask != 1)].reshape(-1)[:3].tolist()
        raise ValueError(f"{name} must be boolean (True = keep); a {str(mask.dtype).removeprefix('torch.')} mask "
                         f"is accepted only with entries exactly 0 or 1, got values like {bad}")
    return mask != 0


def check_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Validate masks against `model`: known prunable weights, matching shapes, boolean (see `as_bool`).
    Returns them as BoolTensors on each weight's device."""
    targets = prunable(model)
    if not targets:
        raise ValueError(f"{type(model).__name__} has no prunable layer (Linear, Conv2d, Embedding or LSTM)")
    if not isinstance(masks, dict):
        raise ValueError(f"masks must be a dict of weight name → boolean tensor, got {type(masks).__name__}")
    out = {}
    for name, mask in masks.items():
        if name not in targets:
            raise ValueError(f"mask for unknown weight {name!r}; the prunable weights are {sorted(targets)}")
        weight = getattr(*targets[name])
        mask = as_bool(mask, f"the mask for {name!r}")
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"the mask for {name!r} has shape {tuple(mask.shape)} but the weight has shape "
                             f"{tuple(weight.shape)}")
        out[name] = mask.to(weight.device)
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> nn.Module:
    """Mask `model`'s weights in place (a second call replaces the masks it names). Returns the model."""
    targets = prunable(model)
    masks = check_masks(model, masks)
    for name, mask in masks.items():
        module, attr = targets[name]
        existing = _mask_of(module, attr)
        if existing is not None:
            existing.mask.copy_(mask)
        else:
            parametrize.register_parametrization(module, attr, Mask(mask))
    return model


def _mask_of(module: nn.Module, attr: str) -> Mask | None:
    if parametrize.is_parametrized(module, attr):
        for p in module.parametrizations[attr]:
            if isinstance(p, Mask):
                return p
    return None


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The masks currently applied to `model` (weights without a mask are absent)."""
    out = {}
    for name, (module, attr) in prunable(model).items():
        mask = _mask_of(module, attr)
        if mask is not None:
            out[name] = mask.mask.clone()
    return out


def live_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The mask buffers applied to `model` themselves, not copies: writing into them rewires the model (dynamic
    sparse training does)."""
    out = {}
    for name, (module, attr) in prunable(model).items():
        mask = _mask_of(module, attr)
        if mask is not None:
            out[name] = mask.mask
    return out


def remove_masks(model: nn.Module, bake: bool = True) -> nn.Module:
    """Drop every mask and gate (every parametrization of a prunable weight). With `bake` the weights keep what
    the forward pass sees in eval mode (masked zeros, gates at their test-time value); without, the original
    weights come back."""
    training = model.training
    model.eval()
    for module, attr in prunable(model).values():
        if parametrize.is_parametrized(module, attr):
            # A deep copy of a parametrized module shares its generated class, and removal deletes the weight's
            # property from that class, breaking every other copy. Give this module its own class first.
            cls = module.__class__
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            parametrize.remove_parametrizations(module, attr, leave_parametrized=bake)
    return model.train(training)


def combine(*masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Intersection of several masks: a weight lives only if every mask that names it keeps it."""
    out: dict[str, torch.Tensor] = {}
    for m in masks:
        for name, mask in m.items():
            out[name] = out[name] & mask if name in out else mask.clone()
    return out


def random_masks(shapes: dict[str, tuple], kept: dict[str, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each layer keeps kept[name] of its weights at random positions, drawn from `generator` layer by layer."""
    out = {}
    for name, shape in shapes.items():
        keep = torch.zeros(math.prod(shape), dtype=torch.bool)
        keep[torch.randperm(math.prod(shape), generator=generator)[:kept[name]]] = True
        out[name] = keep.reshape(shape)
    return out


def densities(masks: dict[str, torch.Tensor]) -> list[float]:
    """The fraction of each layer's weights a mask keeps, in layer order."""
    return [float(m.float().mean()) for m in masks.values()]


def sparsity_of(masks: dict[str, torch.Tensor]) -> float:
    """The fraction of all the masks' weights they remove."""
    return sum(int((~m).sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())


def check_sparsity(sparsity: float, name: str = "sparsity") -> float:
    """Validate a fraction of weights to remove."""
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] (a fraction of weights to remove), got {sparsity}")
    return float(sparsity)


def sparsity_report(model: nn.Module) -> list[dict]:
    """One row per prunable weight: name, shape, weights, nonzero weights and sparsity (fraction of zeros)."""
    rows = []
    with torch.no_grad():
        for name, w in effective_weights(model).items():
            nonzero = int(torch.count_nonzero(w))
            rows.append({"layer": name, "shape": tuple(w.shape), "weights": w.numel(), "nonzero": nonzero,
                         "sparsity": 1 - nonzero / w.numel()})
    total = sum(r["weights"] for r in rows)
    nonzero = sum(r["nonzero"] for r in rows)
    rows.append({"layer": "total", "shape": (), "weights": total, "nonzero": nonzero,
                 "sparsity": 1 - nonzero / max(total, 1)})
    return rows


def baked(model: nn.Module) -> nn.Module:
    """A copy of `model` with its masks (and gates, at their test-time value) multiplied into plain weights: what
    a masked model costs when deployed with a dense kernel (zeros are stored and multiplied, but no mask is
    applied on each call)."""
    import copy
    return remove_masks(copy.deepcopy(model), bake=True)
