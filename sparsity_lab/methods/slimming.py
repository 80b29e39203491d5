"""Network slimming (Liu et al. 2017): an L1 penalty on BatchNorm scales γ, then cut the channels with the smallest
|γ| and fold BatchNorm into the convolutions, so `compact` can remove the cut filters.

    net = lenet5_bn(seed=0)
    folded, masks, history = network_slimming(net, data, ((2, 0.05),), s=1e-4, fraction=0.5)
    small = compact(folded, masks)

The cheap cousin of the group lasso (group_lasso.py): one scalar per channel instead of a norm over its weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import LeNet5
from ..train import History
from .group_lasso import check_lambda, sgd_stages


class LeNet5BN(LeNet5):
    """LeNet5-Caffe with BatchNorm after each conv (conv → BN → ReLU → pool), for network slimming."""

    def __init__(self, conv1: int = 20, conv2: int = 50, fc1: int = 500, n_classes: int = 10,
                 in_channels: int = 1, image_size: int = 28):
        super().__init__(conv1, conv2, fc1, n_classes, in_channels, image_size)
        self.bn1, self.bn2 = nn.BatchNorm2d(conv1), nn.BatchNorm2d(conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def lenet5_bn(seed: int = 0, **sizes) -> LeNet5BN:
    """A LeNet5BN with weights drawn from `seed` (the caller's random state is left untouched)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LeNet5BN(**sizes)


def bn_l1_penalty(s: float):
    """Network slimming's penalty s·Σ|γ| over every BatchNorm scale (Liu et al. 2017, eq. 1): model → scalar."""
    s = check_lambda(s, "s")

    def penalty(model: nn.Module) -> torch.Tensor:
        return s * sum(m.weight.abs().sum() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return penalty


def slimming_keep(model: LeNet5BN, fraction: float) -> dict[str, torch.Tensor]:
    """Keep-decisions per BatchNorm ("bn1", "bn2"): cut the `fraction` of all channels with the smallest |γ|
    (one global threshold). The paper's pitfall, a layer cut away entirely, is avoided by keeping its largest γ."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1) (the share of channels to cut), got {fraction}")
    gammas = {name: getattr(model, name).weight.detach().abs() for name in ("bn1", "bn2")}
    everything = torch.cat(list(gammas.values()))
    n_cut = round(fraction * everything.numel())
    threshold = everything.sort().values[n_cut - 1] if n_cut > 0 else -1.0
    keep = {name: g > threshold for name, g in gammas.items()}
    for name, k in keep.items():
        if not k.any():
            k[gammas[name].argmax()] = True
    return keep


@torch.no_grad()
def fold_batchnorm(model: LeNet5BN, keep: dict[str, torch.Tensor] | None = None) -> tuple[LeNet5, dict]:
    """A plain LeNet5 that computes what `model` computes in eval mode with the cut channels' γ set to 0, and
    the masks that remove those channels' filters, ready for `compact(folded, masks)`.

    BN(conv(x)) = γ·(W·x + b − μ)/√(σ²+ε) + β, so W' = W·γ/√(σ²+ε) and b' = (b − μ)·γ/√(σ²+ε) + β. A cut
    channel has γ = 0: its folded filter is zero and it outputs the constant relu(β), which `compact` folds into
    the next layer's bias."""
    folded = LeNet5(model.conv1.out_channels, model.conv2.out_channels, model.fc1.out_features,
                    model.fc2.out_features, model.conv1.in_channels, model.image_size)
    folded.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("bn")})
    masks = {}
    for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2")):
        conv, bn = getattr(folded, conv_name), getattr(model, bn_name)
        kept = keep[bn_name] if keep is not None else torch.ones_like(bn.weight, dtype=torch.bool)
        scale = bn.weight * kept / (bn.running_var + bn.eps).sqrt()
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
        rows = torch.ones_like(conv.weight, dtype=torch.bool)
        rows[~kept] = False
        masks[f"{conv_name}.weight"] = rows
    return folded, masks


def network_slimming(model: LeNet5BN, data, stages=((2, 0.05),), *, s: float = 1e-4, fraction: float = 0.5,
                     **sgd) -> tuple[LeNet5, dict[str, torch.Tensor], History]:
    """Train with s·Σ|γ| (in place), cut `fraction` of the channels by |γ|, fold BN: (LeNet5, masks, history)."""
    history = sgd_stages(model, data, stages, penalty=bn_l1_penalty(s), **sgd)
    model.eval()
    folded, masks = fold_batchnorm(model, slimming_keep(model, fraction))
    return folded, masks, history
