"""The structured-sparse inference path: turn a masked network into a physically smaller dense one.

A mask that zeroes scattered weights makes nothing faster: the matrix multiply still touches every entry. But a
neuron whose outgoing weights are all zero can be deleted, with its row in the layer before; a conv filter that
nobody reads can go with its channel in the next conv; an LSTM hidden unit that nothing reads can go from every
gate. `compact` finds every such unit in any mask (structured or not) and rebuilds the model with smaller layers,
so the FLOPs saved are FLOPs not computed. `assert_equivalent` checks the outputs are the same.

It works on the model's chain (`structure.chain`: any nn.Sequential, and the package's models), by rules per
layer type: Linear, Conv2d, Embedding and LSTM layers are sliced; BatchNorm is sliced with the units it
normalises (kept, never dropped; `fold_batchnorm` folds it into the layer before); activations, pools, flatten
and dropout pass through. Two rules make it exact for any mask:
- a unit whose output is never read by a surviving unit is removed (backwards, from the outputs; an LSTM unit
  read by its own layer's recurrence is read);
- a unit whose incoming weights are all zero outputs a constant — tail(bias), its bias through whatever follows
  it (BatchNorm, relu(b), tanh(b), sigmoid(b), ...) — so it is removed and that constant is folded into the next
  layer's bias (forwards, from the inputs). Where the constant cannot be folded exactly (a reader with zero
  padding or no bias, an average pool with zero padding, an LSTM whose state still changes) the unit is kept.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from .masks import check_masks, effective_weights, prunable
from .models import LSTMLayer
from .structure import ACTIVATIONS, NORMS, WEIGHT_LAYERS, chain, check_input, has_input_index, in_units, out_units


def compact(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A smaller dense copy of `model` that computes what `model` with `masks` applied computes (in eval mode).

    Without `masks`, the model's current effective weights (its masks and gates included, gates at their
    deterministic test-time value) decide what is zero. The copy has the same class and layer names, plain
    weights (no masks, no gates), and is in the training mode `model` was in. A model with an `input_index`
    (an MLP) also loses the inputs no unit reads. Any nn.Sequential of the layer types in `structure` works."""
    masks = check_masks(model, masks or {})
    steps = chain(model)
    covered = {name for name, module in steps if isinstance(module, WEIGHT_LAYERS)}
    missing = sorted({name.rpartition(".")[0] for name in prunable(model)} - covered)
    if missing:
        raise ValueError(f"the chain of {type(model).__name__} does not include its layers {missing}")
    for name, module in steps:
        if isinstance(module, NORMS) and not module.track_running_stats:
            raise ValueError(f"compact needs BatchNorm with running statistics (track_running_stats=True); {name!r} "
                             "normalises each batch by itself, so its units cannot be removed one by one")
    training = model.training
    model.eval()
    # fork_rng: building the small layers draws an initialisation we overwrite; the caller's RNG must not move
    try:
        with torch.no_grad(), torch.random.fork_rng():
            weights = {k: v.detach().clone() for k, v in effective_weights(model).items()}
            for name, mask in masks.items():
                weights[name] *= mask
            small = _Plan(model, steps, weights).rebuild()
    finally:
        model.train(training)
    return small.train(training)


def _param(name: str, attr: str) -> str:
    return f"{name}.{attr}" if name else attr


def unit_view(module: nn.Module, name: str, weights: dict[str, torch.Tensor], n_in: int) -> torch.Tensor:
    """A weight layer's weights as (output units, input units, rest): a view, so writing into it writes into
    `weights`. A Linear after a flatten has rest = positions per input map; a conv, kh·kw; an LSTM, its 4 gates."""
    if isinstance(module, LSTMLayer):
        w = weights[_param(name, "weight_ih")]
        return w.view(4, module.hidden_size, -1).permute(1, 2, 0)
    w = weights[_param(name, "weight")]
    if isinstance(module, nn.Embedding):
        return w.t().unsqueeze(2)
    return w.view(w.shape[0], n_in, -1)


def _recurrent_view(module: LSTMLayer, name: str, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    return weights[_param(name, "weight_hh")].view(4, module.hidden_size, -1).permute(1, 2, 0)


def _constant_through(module: nn.Module, value: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A per-unit constant (the units `index`) after one pass-through step: BatchNorm's affine map in eval mode,
    an activation elementwise, pools, flatten and dropout unchanged."""
    if isinstance(module, NORMS):
        value = (value - module.running_mean[index]) / (module.running_var[index] + module.eps).sqrt()
        return value * module.weight[index] + module.bias[index] if module.affine else value
    if isinstance(module, ACTIVATIONS):
        return module(value)
    return value


def _pads(padding, kernel_size=(1, 1)) -> bool:
    """Whether a padding setting adds any border (an int, a tuple, 'valid' or 'same')."""
    if padding == "valid":
        return False
    if padding == "same":
        return any(k > 1 for k in kernel_size)
    return any(p > 0 for p in ((padding,) * 2 if isinstance(padding, int) else padding))


def _keeps_constants(module: nn.Module) -> bool:
    """Whether a constant map stays the same constant everywhere through this step: not through an average pool
    that counts zero padding into its averages, or divides by something else than the window it sums."""
    if not isinstance(module, nn.AvgPool2d):
        return True
    return module.divisor_override is None and not (module.count_include_pad and _pads(module.padding))


def _absorbs_constants(reader: nn.Module) -> bool:
    """Whether a constant input unit adds one constant to every output of `reader`: yes for a Linear with a bias,
    and a conv with a bias whose padding, if any, copies the map ('reflect', 'replicate', 'circular')."""
    if not isinstance(reader, nn.Linear | nn.Conv2d) or reader.bias is None:
        return False
    return isinstance(reader, nn.Linear) or reader.padding_mode != "zeros" or not _pads(reader.padding,
                                                                                          reader.kernel_size)


class _Plan:
    """Which units of a chain survive (`keep[k]`: boolean over the units at boundary k, the inputs first) and the
    biases with the folded constants; then the smaller model."""

    def __init__(self, model: nn.Module, steps: list[tuple[str, nn.Module]], weights: dict[str, torch.Tensor]):
        self.model, self.steps, self.weights = model, steps, weights
        self.index = [k for k, (_, m) in enumerate(steps) if isinstance(m, WEIGHT_LAYERS)]
        self.layers = [steps[k] for k in self.index]
        sizes = [in_units(self.layers[0][1]), *(out_units(m) for _, m in self.layers)]
        self.views = [unit_view(m, name, weights, n) for (name, m), n in zip(self.layers, sizes, strict=False)]
        self.biases = [None if getattr(m, "bias", None) is None else m.bias.detach().clone() for _, m in self.layers]
        self.keep = self._survivors(sizes)

    def _tail(self, k: int) -> list[tuple[str, nn.Module]]:
        """The pass-through steps after weight layer k (up to the next weight layer)."""
        end = self.index[k + 1] if k + 1 < len(self.index) else len(self.steps)
        return self.steps[self.index[k] + 1:end]

    def _survivors(self, sizes: list[int]) -> list[torch.Tensor]:
        views, layers = self.views, self.layers
        # Backwards: a unit lives only if a living unit of the next layer (or of its own recurrence) reads it.
        used = [torch.ones(sizes[-1], dtype=torch.bool)]
        for k in reversed(range(len(layers))):
            name, module = layers[k]
            if isinstance(module, LSTMLayer):
                recurrent = _recurrent_view(module, name, self.weights)
                while True:
                    grown = used[0] | (recurrent[used[0]] != 0).any(2).any(0)
                    if torch.equal(grown, used[0]):
                        break
                    used[0] = grown
            reads = torch.ones(sizes[k], dtype=torch.bool) if isinstance(module, nn.Embedding) else \
                (views[k][used[0]] != 0).any(2).any(0)
            used.insert(0, reads)
        inputs = used[0] if has_input_index(self.model) else torch.ones(sizes[0], dtype=torch.bool)
        if not inputs.any():
            inputs[0] = True
        keep = [inputs]
        # Forwards: a used unit with no living input is a constant; fold it into the next layer's bias.
        for k in range(len(layers) - 1):
            keep.append(self._fold_constants(k, keep[k], used[k + 1]))
        keep.append(used[-1])
        return keep

    def _fold_constants(self, k: int, reading: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
        (_, module), (_, reader) = self.layers[k], self.layers[k + 1]
        tail = [m for _, m in self._tail(k)]
        keep = used.clone()
        if isinstance(module, nn.Linear | nn.Conv2d) and _absorbs_constants(reader) and all(map(_keeps_constants,
                                                                                                   tail)):
            fed = (self.views[k][:, reading] != 0).any(2).any(1)
            constant = (used & ~fed).nonzero().squeeze(1)
            value = self.biases[k][constant] if self.biases[k] is not None else torch.zeros(len(constant))
            for step in tail:
                value = _constant_through(step, value, constant)
            self.biases[k + 1] += (self.views[k + 1][:, constant].sum(2) * value).sum(1)
            keep = used & fed
        if not keep.any():  # keep one silent unit rather than a zero-width layer: nothing reads it
            keep[0] = True
            self.views[k + 1][:, 0] = 0.0
            self.views[k][0] = 0.0
            if self.biases[k] is not None and not isinstance(module, LSTMLayer):
                self.biases[k][0] = 0.0
        return keep

    def rebuild(self) -> nn.Module:
        """The smaller model: a deep copy of the original in which every sliced layer is a new module."""
        replaced = {}
        for k, (name, module) in enumerate(self.layers):
            rows, cols = self.keep[k + 1], self.keep[k]
            replaced[id(module)] = _shrink(module, name, self.weights, self.biases[k], rows, cols)
            for _, step in self._tail(k):
                if isinstance(step, NORMS):
                    replaced[id(step)] = _shrink_norm(step, rows)
        small = copy.deepcopy(self.model, memo=dict(replaced))
        if has_input_index(self.model):
            index = self.keep[0].nonzero().squeeze(1)
            old = self.model.input_index
            if old is not None:
                index = old[index]
            elif len(index) == len(self.keep[0]):
                index = None
            small.input_index = index
        return small


def _shrink(module: nn.Module, name: str, weights: dict[str, torch.Tensor], bias: torch.Tensor | None,
            rows: torch.Tensor, cols: torch.Tensor) -> nn.Module:
    """A new layer of `module`'s type keeping output units `rows` and input units `cols`."""
    n_out, n_in = int(rows.sum()), int(cols.sum())
    if isinstance(module, LSTMLayer):
        gates = rows.repeat(4)
        small = LSTMLayer(n_in, n_out, module.fused)
        small.weight_ih.data = weights[_param(name, "weight_ih")][gates][:, cols].contiguous()
        small.weight_hh.data = weights[_param(name, "weight_hh")][gates][:, rows].contiguous()
        small.bias.data = module.bias.detach()[gates].clone()
        return small.to(module.bias.device)
    w = weights[_param(name, "weight")]
    if isinstance(module, nn.Embedding):
        small = nn.Embedding(module.num_embeddings, n_out, module.padding_idx, module.max_norm, module.norm_type,
                             module.scale_grad_by_freq, module.sparse)
        small.weight.data = w[:, rows].contiguous()
        return small.to(w.device)
    if isinstance(module, nn.Conv2d):
        small = nn.Conv2d(n_in, n_out, module.kernel_size, module.stride, module.padding, module.dilation,
                          bias=bias is not None, padding_mode=module.padding_mode)
        small.weight.data = w[rows][:, cols].contiguous()
    else:
        block = w.shape[1] // len(cols)
        small = nn.Linear(n_in * block, n_out, bias=bias is not None)
        small.weight.data = w.view(w.shape[0], len(cols), block)[rows][:, cols].reshape(n_out, -1).contiguous()
    if bias is not None:
        small.bias.data = bias[rows].clone()
    return small.to(w.device)


def _shrink_norm(norm: nn.Module, keep: torch.Tensor) -> nn.Module:
    """BatchNorm over the kept units only (running statistics, scale and shift sliced)."""
    small = type(norm)(int(keep.sum()), norm.eps, norm.momentum, norm.affine, norm.track_running_stats,
                       device=norm.running_mean.device, dtype=norm.running_mean.dtype)
    small.running_mean.copy_(norm.running_mean[keep])
    small.running_var.copy_(norm.running_var[keep])
    small.num_batches_tracked.copy_(norm.num_batches_tracked)
    if norm.affine:
        small.weight.data = norm.weight.detach()[keep].clone()
        small.bias.data = norm.bias.detach()[keep].clone()
    return small


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` in which every BatchNorm right after a Linear or conv is folded into that layer and
    replaced by nn.Identity: the same function in eval mode, one step less per layer.

    BN(W·x + b) = γ·(W·x + b − μ)/√(σ²+ε) + β, so W' = W·γ/√(σ²+ε) and b' = (b − μ)·γ/√(σ²+ε) + β."""
    steps = chain(model)
    replaced: dict[int, nn.Module] = {}
    for (_, layer), (_, norm) in zip(steps[:-1], steps[1:], strict=True):
        if isinstance(norm, NORMS) and isinstance(layer, nn.Linear | nn.Conv2d):
            if not norm.track_running_stats:
                raise ValueError("fold_batchnorm needs BatchNorm with running statistics (track_running_stats)")
            scale = (norm.running_var + norm.eps).rsqrt()
            shift = -norm.running_mean * scale
            if norm.affine:
                scale, shift = scale * norm.weight, shift * norm.weight + norm.bias
            if parametrize.is_parametrized(layer):
                raise ValueError("fold_batchnorm needs plain weights: pass masks.baked(model)")
            folded = copy.deepcopy(layer)
            folded.weight.data = layer.weight.detach() * scale.view(-1, *[1] * (layer.weight.dim() - 1))
            bias = layer.bias.detach() if layer.bias is not None else torch.zeros_like(scale)
            folded.bias = nn.Parameter(bias * scale + shift)
            replaced[id(layer)], replaced[id(norm)] = folded, nn.Identity()
    return copy.deepcopy(model, memo=replaced)


@torch.no_grad()
def max_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between the outputs of two models on the same input (eval mode)."""
    a.eval()
    b.eval()
    return (a(x) - b(x)).abs().max().item()


def assert_equivalent(masked: nn.Module, small: nn.Module, x: torch.Tensor, atol: float = 1e-5) -> float:
    """Raise AssertionError unless `small` computes what `masked` does on `x` (max |difference| ≤ atol, relative
    to the output scale when outputs are larger than 1). Returns the max difference."""
    check_input(masked, x)
    diff = max_difference(masked, small, x)
    with torch.no_grad():
        scale = max(1.0, masked(x).abs().max().item())
    if not diff <= atol * scale:
        raise AssertionError(f"the compact model differs from the masked one: max |difference| = {diff:.3g} "
                             f"> {atol:g} × output scale {scale:.3g}")
    return diff


__all__ = ["assert_equivalent", "compact", "fold_batchnorm", "max_difference", "unit_view"]
