"""sparsity_lab.compact on arbitrary nn.Sequential chains: random conv/pool/flatten/linear chains with every
activation, BatchNorm, dropout and padding setting the structured path supports, under random masks of every kind.

Nothing here trusts the implementation:
- outputs are compared with a reference forward written here from plain functional ops (F.linear, F.conv2d with
  F.pad for the non-zero padding modes, F.batch_norm(training=False), the activation functions, the pools) on the
  masked weights, run in float64 — never by calling the model;
- expected widths come from a reachability argument over the unit graph written here with Python sets: backwards,
  a unit lives iff a living unit of the next weight layer reads it through a nonzero weight (outputs always live,
  inputs of an nn.Sequential always stay); forwards, a living unit no surviving unit feeds is a constant, removed
  only where folding it into the next bias is exact (the reader is a Linear with a bias, or a conv with a bias and
  no zero padding, and no zero-padded count_include_pad AvgPool2d sits in between); an empty layer keeps one
  silent unit, which feeds nothing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from sparsity_lab.compact import compact
from sparsity_lab.masks import apply_masks
from sparsity_lab.structure import widths

TOL = 1e-5
PROPERTY = settings(max_examples=150, deadline=None, database=None)
DENSITIES = (0.0, 0.1, 0.4, 0.8, 1.0)
PADDING_MODES = ("zeros", "zeros", "reflect", "replicate", "circular")  # zeros twice: it decides folding
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "gelu_tanh")
# per weight layer, weighted towards the kinds that leave something alive (a dead layer silences all before it)
LAYER_MASKS = ("absent", "dense", "dead", *("unstructured", "rows", "columns", "constant_unit") * 4)
BIASES = st.sampled_from((True, True, True, False))
CONVS = st.sampled_from((0, 1, 2, 2))  # how many Conv2d layers; two often: a conv reader, where folding needs care
FIRST_MASKS = st.sampled_from(LAYER_MASKS)
EVERYTHING = st.sampled_from((False,) * 9 + (True,))  # every weight masked, now and then
seeds = st.integers(0, 2**31 - 1)


# ------------------------------------------------------------------------------------------ random chains
def make_activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "leaky_relu": nn.LeakyReLU(0.15), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(),
            "gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh")}[name]


def build(spec: tuple) -> nn.Module:
    """An nn.Sequential from a spec: a tuple of (kind, *arguments) entries with every size spelled out."""
    layers = []
    for kind, *args in spec:
        if kind == "conv":
            c_in, c_out, k, p, mode, bias = args
            layers.append(nn.Conv2d(c_in, c_out, k, padding=p, padding_mode=mode, bias=bias))
        elif kind == "linear":
            n_in, n_out, bias = args
            layers.append(nn.Linear(n_in, n_out, bias=bias))
        elif kind == "bn2d":
            layers.append(nn.BatchNorm2d(args[0], affine=args[1]))
        elif kind == "bn1d":
            layers.append(nn.BatchNorm1d(args[0], affine=args[1]))
        elif kind == "act":
            layers.append(make_activation(args[0]))
        elif kind == "maxpool":
            k, p, ceil = args
            layers.append(nn.MaxPool2d(k, 2, padding=p, ceil_mode=ceil))
        elif kind == "avgpool":
            k, p, ceil, count_include_pad = args
            layers.append(nn.AvgPool2d(k, 2, padding=p, ceil_mode=ceil, count_include_pad=count_include_pad))
        elif kind == "flatten":
            layers.append(nn.Flatten())
        elif kind == "dropout":
            layers.append(nn.Dropout(args[0]))
        elif kind == "identity":
            layers.append(nn.Identity())
        else:
            raise AssertionError(kind)
    return nn.Sequential(*layers)


def randomise(model: nn.Module, g: torch.Generator) -> nn.Module:
    """Order-1 weights, biases and BatchNorm statistics/affine parameters (so folded constants matter); eval mode."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 1.5 / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.7)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                if m.affine:
                    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
                    m.weight.copy_(sign * (0.5 + torch.rand(n, generator=g)))
                    m.bias.copy_(torch.randn(n, generator=g))
    return model.eval()


def pool_out(size: int, k: int, p: int, ceil: bool) -> int:
    return F.max_pool2d(torch.zeros(1, 1, size, size), k, 2, p, ceil_mode=ceil).shape[-1]


@st.composite
def between(draw, kinds: dict[str, object]) -> list[tuple]:
    """Some of the optional pass-through steps `kinds` (name → entry), in a random order."""
    present = [entry for name, entry in kinds.items() if draw(st.booleans())]
    return list(draw(st.permutations(present))) if present else []


@st.composite
def chains(draw, convs=CONVS) -> tuple[tuple, tuple[int, ...]]:
    """(spec, input shape without the batch): an optional conv part (`convs` Conv2d layers, each with optional
    BatchNorm2d, activation and pool in a random order), then Flatten, then 1–3 Linear layers."""
    spec: list[tuple] = []
    n_conv = draw(convs)
    if n_conv:
        c, size = draw(st.integers(1, 2)), draw(st.integers(6, 8))
        shape: tuple[int, ...] = (c, size, size)
        for _ in range(n_conv):
            p = draw(st.integers(0, 1))
            k = min(draw(st.integers(1, 3)), size + 2 * p)
            mode = draw(st.sampled_from(PADDING_MODES)) if p else "zeros"
            out = draw(st.integers(1, 5))
            spec.append(("conv", c, out, k, p, mode, draw(BIASES)))
            c, size = out, size + 2 * p - k + 1
            extras: dict[str, object] = {"bn": ("bn2d", c, draw(st.booleans())),
                                         "act": ("act", draw(st.sampled_from(ACTIVATIONS)))}
            pk, pp, ceil = draw(st.integers(2, 3)), draw(st.integers(0, 1)), draw(st.booleans())
            if size + 2 * pp >= pk:
                extras["pool"] = ("maxpool", pk, pp, ceil) if draw(st.booleans()) else \
                    ("avgpool", pk, pp, ceil, draw(st.booleans()))
            for entry in draw(between(extras)):
                spec.append(entry)
                if entry[0] in ("maxpool", "avgpool"):
                    size = pool_out(size, pk, pp, ceil)
        spec.append(("flatten",))
        features = c * size * size
    else:
        features = draw(st.integers(1, 6))
        shape = (features,)
        if draw(st.booleans()):
            spec.append(("identity",))
    n_linear = draw(st.integers(1, 3))
    for i in range(n_linear):
        out = draw(st.integers(1, 6))
        spec.append(("linear", features, out, draw(BIASES)))
        features = out
        extras = {"bn": ("bn1d", out, draw(st.booleans())), "act": ("act", draw(st.sampled_from(ACTIVATIONS))),
                  "dropout": ("dropout", 0.3)}
        if i == n_linear - 1:  # after the outputs: at most an activation
            extras = {"act": extras["act"]}
        spec.extend(draw(between(extras)))
    return tuple(spec), shape


# ------------------------------------------------------------------------------------------ masks
@dataclass
class WeightLayer:
    name: str  # the parameter name, "3.weight"
    module: nn.Module
    n_in: int  # input units (features, channels, or conv maps before a flatten)
    index: int  # position in the Sequential


def weight_layers(model: nn.Sequential) -> list[WeightLayer]:
    out, units = [], None
    for i, (name, m) in enumerate(model.named_children()):
        if isinstance(m, nn.Linear | nn.Conv2d):
            n_in = m.in_channels if isinstance(m, nn.Conv2d) else units or m.in_features
            out.append(WeightLayer(f"{name}.weight", m, n_in, i))
            units = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
    return out


def unit_blocks(w: torch.Tensor, n_in: int) -> torch.Tensor:
    """(out units, input units, rest): a conv's kernels, or a Linear's block of columns per input unit."""
    return w.reshape(w.shape[0], n_in, -1)


def some(n: int, g: torch.Generator) -> torch.Tensor:
    """A random boolean subset of range(n), about 60% of it, never empty."""
    keep = torch.rand(n, generator=g) < 0.6
    keep[int(torch.randint(n, (1,), generator=g))] = True
    return keep


def layer_mask(kind: str, density: float, w: torch.Tensor, n_in: int, g: torch.Generator) -> torch.Tensor:
    n_out = w.shape[0]
    if kind == "dense":
        mask = torch.ones(w.shape, dtype=torch.bool)
    elif kind == "unstructured":
        mask = torch.rand(w.shape, generator=g) < density
    elif kind == "rows":  # whole units' incoming weights (at least one row kept)
        mask = some(n_out, g).view(-1, *[1] * (w.dim() - 1)).expand(w.shape).clone()
    elif kind == "columns":  # whole input units' outgoing weights (a block of columns after a flatten)
        mask = torch.ones(unit_blocks(w, n_in).shape, dtype=torch.bool)
        mask[:, ~some(n_in, g)] = False
        mask = mask.reshape(w.shape)
    elif kind == "dead":
        mask = torch.zeros(w.shape, dtype=torch.bool)
    elif kind == "constant_unit":  # one unit with no incoming weight, the others at least 40% dense
        mask = torch.rand(w.shape, generator=g) < max(density, 0.4)
        mask[int(torch.randint(n_out, (1,), generator=g))] = False
    else:
        raise AssertionError(kind)
    return mask


def random_masks(model: nn.Sequential, kinds: list[str], densities: list[float], everything: bool,
                 g: torch.Generator) -> dict[str, torch.Tensor]:
    masks = {}
    for layer, kind, density in zip(weight_layers(model), kinds, densities, strict=True):
        kind = "dead" if everything else kind
        if kind != "absent":
            masks[layer.name] = layer_mask(kind, density, layer.module.weight.detach(), layer.n_in, g)
    return masks


@st.composite
def cases(draw, convs=CONVS, first=FIRST_MASKS, everything=EVERYTHING):
    """A random chain, masks for it (a kind and density per weight layer — `first` for the first — or everything
    masked) and a seed for the values."""
    spec, shape = draw(chains(convs))
    n = sum(entry[0] in ("conv", "linear") for entry in spec)
    kinds = [draw(first), *draw(st.lists(st.sampled_from(LAYER_MASKS), min_size=n - 1, max_size=n - 1))]
    densities = draw(st.lists(st.sampled_from((*DENSITIES, 0.4, 0.8, 0.8, 1.0)), min_size=n, max_size=n))
    return spec, shape, kinds, densities, draw(everything), draw(seeds)


def make_case(spec, shape, kinds, densities, everything, seed):
    g = torch.Generator().manual_seed(seed)
    model = randomise(build(spec), g)
    masks = random_masks(model, kinds, densities, everything, g)
    x = torch.randn(3, *shape, generator=g) * 1.5
    return model, masks, x


# ------------------------------------------------------------------------------------------ the reference
@torch.no_grad()
def reference_forward(model: nn.Sequential, masks: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The masked chain in float64 from functional ops and the modules' attributes (the model is never called)."""

    def d(t):
        return None if t is None else t.detach().double()

    h = x.double()
    for name, m in model.named_children():
        if isinstance(m, nn.Linear | nn.Conv2d):
            w = d(m.weight)
            if f"{name}.weight" in masks:
                w = w * masks[f"{name}.weight"]
            if isinstance(m, nn.Linear):
                h = F.linear(h, w, d(m.bias))
                continue
            padding = m.padding
            if m.padding_mode != "zeros":
                ph, pw = m.padding
                h = F.pad(h, (pw, pw, ph, ph), mode=m.padding_mode)
                padding = 0
            h = F.conv2d(h, w, d(m.bias), m.stride, padding, m.dilation)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            h = F.batch_norm(h, d(m.running_mean), d(m.running_var), d(m.weight), d(m.bias), training=False,
                             eps=m.eps)
        elif isinstance(m, nn.ReLU):
            h = F.relu(h)
        elif isinstance(m, nn.LeakyReLU):
            h = F.leaky_relu(h, m.negative_slope)
        elif isinstance(m, nn.Tanh):
            h = torch.tanh(h)
        elif isinstance(m, nn.Sigmoid):
            h = torch.sigmoid(h)
        elif isinstance(m, nn.GELU):
            h = F.gelu(h, approximate=m.approximate)
        elif isinstance(m, nn.MaxPool2d):
            h = F.max_pool2d(h, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        elif isinstance(m, nn.AvgPool2d):
            h = F.avg_pool2d(h, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                             m.divisor_override)
        elif isinstance(m, nn.Flatten):
            h = h.flatten(m.start_dim, m.end_dim)
        elif not isinstance(m, nn.Dropout | nn.Identity):  # eval mode: dropout is the identity
            raise AssertionError(f"the reference does not know {type(m).__name__}")
    return h


def assert_matches_reference(small: nn.Module, model: nn.Module, masks, x: torch.Tensor) -> None:
    expected = reference_forward(model, masks, x)
    with torch.no_grad():
        got = small.eval()(x).double()
    assert got.shape == expected.shape
    scale = max(1.0, expected.abs().max().item())
    diff = (got - expected).abs().max().item()
    assert diff <= TOL * scale, f"max |difference| {diff:.3g} against the reference (output scale {scale:.3g})"


# ------------------------------------------------------------------------------------------ expected sizes
def pads(padding, kernel_size: tuple[int, ...]) -> bool:
    """Whether a padding setting adds a border: 'same' does for a kernel wider than 1, numbers above 0 do."""
    if padding == "same":
        return max(kernel_size) > 1
    if padding == "valid":
        return False
    return any(p > 0 for p in ((padding, padding) if isinstance(padding, int) else padding))


def folding_is_exact(reader: nn.Module, steps: list[nn.Module]) -> bool:
    """Whether a constant unit can be folded into the bias of `reader`, through the pass-through `steps`: a zero
    border (of a conv reader, or counted into an average) would see 0 where the constant should be."""
    if reader.bias is None:
        return False
    if isinstance(reader, nn.Conv2d) and reader.padding_mode == "zeros" and pads(reader.padding, reader.kernel_size):
        return False
    return not any(isinstance(s, nn.AvgPool2d) and s.count_include_pad and pads(s.padding, (s.kernel_size,))
                   for s in steps)


def expected_widths(model: nn.Sequential, masks: dict[str, torch.Tensor]) -> list[int]:
    layers = weight_layers(model)
    children = list(model.children())
    gaps = [children[a.index + 1:b.index] for a, b in zip(layers, layers[1:], strict=False)]
    reads = []  # reads[k][i]: the input units that output unit i of layer k reads through a nonzero weight
    for layer in layers:
        w = layer.module.weight.detach()
        if layer.name in masks:
            w = w * masks[layer.name]
        blocks = unit_blocks(w, layer.n_in)
        reads.append([{j for j in range(layer.n_in) if bool(blocks[i, j].ne(0).any())} for i in range(w.shape[0])])
    sizes = [layers[0].n_in] + [len(r) for r in reads]
    depth = len(layers)
    used = [set() for _ in range(depth + 1)]
    used[depth] = set(range(sizes[depth]))
    for k in reversed(range(depth)):
        used[k] = {j for i in used[k + 1] for j in reads[k][i]}
    keep = [set(range(sizes[0]))]  # an nn.Sequential keeps all its inputs
    feeders = keep[0]  # the surviving units that carry a signal into the next layer
    for k in range(depth - 1):
        fed = {i for i in range(sizes[k + 1]) if reads[k][i] & feeders}
        kept = used[k + 1] & fed if folding_is_exact(layers[k + 1].module, gaps[k]) else set(used[k + 1])
        feeders = kept
        if not kept:
            kept, feeders = {0}, set()  # one silent unit: its readers' weights are zero
        keep.append(kept)
    keep.append(set(range(sizes[depth])))
    return [len(s) for s in keep]


# ------------------------------------------------------------------------------------------ checks
def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


def assert_same_structure(small: nn.Module, model: nn.Module) -> None:
    assert type(small) is nn.Sequential
    assert [n for n, _ in small.named_children()] == [n for n, _ in model.named_children()]
    assert [type(m) for m in small.children()] == [type(m) for m in model.children()]


# ------------------------------------------------------------------------------------------ properties
@PROPERTY
@given(case=cases())
def test_compacted_chain_matches_the_reference_forward_with_the_expected_widths(case):
    model, masks, x = make_case(*case)
    # the reference itself agrees with torch's modules on the masked model
    baked = copy.deepcopy(model)
    with torch.no_grad():
        for layer in weight_layers(baked):
            if layer.name in masks:
                layer.module.weight.mul_(masks[layer.name])
        expected = reference_forward(model, masks, x)
        assert (baked(x).double() - expected).abs().max().item() <= TOL * max(1.0, expected.abs().max().item())

    before = state(model)
    small = compact(model, masks)
    assert_same_state(state(model), before)  # the original is left alone
    assert_same_structure(small, model)
    assert widths(small) == expected_widths(model, masks)
    assert all(w >= 1 for w in widths(small))
    assert_matches_reference(small, model, masks, x)
    # the masked model with its zeros baked in, compacted without masks, gives the same small model
    assert_same_state(state(compact(baked)), state(small))
    # compacting again changes nothing
    again = compact(small)
    assert_same_structure(again, small)
    assert widths(again) == widths(small)
    assert_same_state(state(again), state(small))


@PROPERTY
@given(case=cases(), seed=seeds)
def test_masks_applied_as_parametrizations_count_like_passed_masks(case, seed):
    model, masks, x = make_case(*case)
    small = compact(model, masks)
    masked = apply_masks(copy.deepcopy(model), masks)
    from_applied = compact(masked)
    assert_same_structure(from_applied, model)
    assert widths(from_applied) == expected_widths(model, masks)
    assert_matches_reference(from_applied, model, masks, x)
    assert_same_state(state(from_applied), state(small))
    # applied and passed masks intersect
    g = torch.Generator().manual_seed(seed)
    passed = {layer.name: torch.rand(layer.module.weight.shape, generator=g) < 0.7 for layer in weight_layers(model)}
    both = {name: passed[name] & masks[name] if name in masks else passed[name] for name in passed}
    combined = compact(masked, passed)
    assert widths(combined) == expected_widths(model, both)
    assert_matches_reference(combined, model, both, x)


@settings(max_examples=100, deadline=None, database=None)
@given(case=cases(convs=st.just(2), first=st.sampled_from(("constant_unit", "rows")), everything=st.just(False)))
def test_constant_maps_before_a_conv_reader_are_folded_only_where_exact(case):
    """Conv → (BatchNorm, activation, pool) → conv with constant maps in the first: folding depends on the
    reader's padding and bias and on the pool (the rare case among random chains, so drawn on purpose)."""
    model, masks, x = make_case(*case)
    small = compact(model, masks)
    assert widths(small) == expected_widths(model, masks)
    assert_matches_reference(small, model, masks, x)


# ------------------------------------------------------------------------------------------ constant units
FOLDED_CONSTANTS = [  # (activation, bias of the constant unit): act(bias) != 0 each time
    (nn.ReLU(), 0.8), (nn.LeakyReLU(0.2), -0.9), (nn.Tanh(), 0.7), (nn.Tanh(), -1.2), (nn.Sigmoid(), -0.8),
    (nn.Sigmoid(), 0.0), (nn.GELU(), 0.9), (nn.GELU(), -0.6), (nn.GELU(approximate="tanh"), 1.1)]


@pytest.mark.parametrize(("activation", "bias"), FOLDED_CONSTANTS, ids=lambda v: repr(v))
def test_constant_unit_is_folded_through_each_activation(activation, bias):
    g = torch.Generator().manual_seed(1)
    model = randomise(nn.Sequential(nn.Linear(3, 4), activation, nn.Linear(4, 2)), g)
    with torch.no_grad():
        model[0].bias[2] = bias
    masks = {"0.weight": torch.ones(4, 3, dtype=torch.bool)}
    masks["0.weight"][2] = False  # unit 2 outputs act(bias) whatever the input
    constant = activation(torch.tensor(bias)).item()
    assert constant != 0.0
    small = compact(model, masks)
    assert widths(small) == [3, 3, 2]  # the constant unit is gone ...
    expected_bias = model[2].bias.detach() + model[2].weight.detach()[:, 2] * constant
    torch.testing.assert_close(small[2].bias.detach(), expected_bias)  # ... into the next bias
    torch.testing.assert_close(small[0].weight.detach(), model[0].weight.detach()[[0, 1, 3]])
    assert_matches_reference(small, model, masks, torch.randn(5, 3, generator=g))


@pytest.mark.parametrize(("activation", "bias"), FOLDED_CONSTANTS[:5], ids=lambda v: repr(v))
def test_constant_conv_map_is_folded_through_batchnorm_activation_pool_and_flatten(activation, bias):
    g = torch.Generator().manual_seed(2)
    model = randomise(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), activation, nn.MaxPool2d(2, padding=1),
                                    nn.Flatten(), nn.Linear(3 * 3 * 3, 2)), g)
    with torch.no_grad():
        model[0].bias[1] = bias
    masks = {"0.weight": torch.ones(3, 2, 3, 3, dtype=torch.bool)}
    masks["0.weight"][1] = False
    small = compact(model, masks)
    assert widths(small) == [2, 2, 2]
    assert small[1].num_features == 2
    assert_matches_reference(small, model, masks, torch.randn(4, 2, 6, 6, generator=g))


READERS = [  # (reader conv kwargs, pool between or None, whether the constant map is folded)
    ({"padding": 1}, None, False),  # zero padding: the border sees 0, not the constant
    ({"padding": (0, 1)}, None, False),
    ({"padding": "same"}, None, False),
    ({"padding": 1, "padding_mode": "reflect"}, None, True),
    ({"padding": 1, "padding_mode": "replicate"}, None, True),
    ({"padding": 1, "padding_mode": "circular"}, None, True),
    ({"padding": 0}, None, True),
    ({"padding": "valid"}, None, True),
    ({"padding": 0, "bias": False}, None, False),  # no bias to fold into
    ({"padding": 1, "kernel_size": 1}, None, False),  # a 1×1 kernel on a zero border still sees 0
    ({"padding": "same", "kernel_size": 1}, None, True),  # ... but 'same' adds no border to a 1×1 kernel
    ({"padding": 0, "stride": 2, "dilation": 2}, None, True),
    ({"padding": 0}, nn.AvgPool2d(2, padding=1, count_include_pad=True), False),  # averages in the zero padding
    ({"padding": 0}, nn.AvgPool2d(2, padding=1, count_include_pad=False), True),
    ({"padding": 0}, nn.AvgPool2d(2, ceil_mode=True), True),
    ({"padding": 0}, nn.MaxPool2d(3, stride=1, padding=1), True),  # max pools pad with -inf
]


@pytest.mark.parametrize(("reader", "pool", "folded"), READERS, ids=lambda v: repr(v))
def test_constant_map_is_kept_exactly_where_folding_would_be_inexact(reader, pool, folded):
    g = torch.Generator().manual_seed(3)
    model = randomise(nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Sigmoid(), pool or nn.Identity(),
                                    nn.Conv2d(3, 2, **{"kernel_size": 3, **reader}), nn.Flatten()), g)
    x = torch.randn(4, 1, 7, 7, generator=g)
    model.append(randomise(nn.Linear(model(x).shape[1], 2), g))
    masks = {"0.weight": torch.ones(3, 1, 3, 3, dtype=torch.bool)}
    masks["0.weight"][0] = False  # map 0 is sigmoid(bias) everywhere
    small = compact(model, masks)
    assert widths(small) == [1, 2 if folded else 3, 2, 2]
    assert widths(small) == expected_widths(model, masks)
    assert_matches_reference(small, model, masks, x)


def test_constant_unit_before_a_linear_without_bias_is_kept():
    g = torch.Generator().manual_seed(4)
    model = randomise(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False)), g)
    masks = {"0.weight": torch.ones(4, 3, dtype=torch.bool)}
    masks["0.weight"][1] = False
    small = compact(model, masks)
    assert widths(small) == [3, 4, 2]
    assert_matches_reference(small, model, masks, torch.randn(5, 3, generator=g))


def test_dead_network_keeps_one_silent_unit_per_layer():
    g = torch.Generator().manual_seed(6)
    model = randomise(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GELU(), nn.Flatten(),
                                    nn.Linear(4 * 36, 5), nn.Sigmoid(), nn.Linear(5, 3)), g)
    masks = {layer.name: torch.zeros(layer.module.weight.shape, dtype=torch.bool) for layer in weight_layers(model)}
    small = compact(model, masks)
    assert widths(small) == [2, 1, 1, 3]
    x = torch.randn(4, 2, 6, 6, generator=g)
    out = small(x)
    assert torch.equal(out, out[:1].expand_as(out))  # a constant ...
    assert_matches_reference(small, model, masks, x)  # ... the right one


def test_zero_padded_conv_keeps_a_constant_map_that_feeds_later_layers():
    """A kept constant map (not foldable) is a surviving unit: the units it feeds are not constants."""
    g = torch.Generator().manual_seed(7)
    model = randomise(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1),
                                    nn.ReLU(), nn.Flatten(), nn.Linear(2 * 36, 2)), g)
    with torch.no_grad():
        model[0].bias.fill_(1.0)
    masks = {"0.weight": torch.zeros(2, 1, 3, 3, dtype=torch.bool)}  # both maps are relu(1) everywhere
    small = compact(model, masks)
    assert widths(small) == [1, 2, 2, 2]  # kept: the zero border of conv 2 breaks the constant
    assert_matches_reference(small, model, masks, torch.randn(3, 1, 6, 6, generator=g))


# ------------------------------------------------------------------------------------------ batchnorm
def test_batchnorm_between_linears_is_sliced_with_its_units():
    g = torch.Generator().manual_seed(8)
    model = randomise(nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5, eps=1e-3, momentum=0.2), nn.ReLU(),
                                    nn.Linear(5, 2)), g)
    with torch.no_grad():
        model[1].num_batches_tracked.fill_(7)
    masks = {"3.weight": torch.ones(2, 5, dtype=torch.bool)}
    masks["3.weight"][:, [1, 3]] = False  # nobody reads units 1 and 3
    small = compact(model, masks)
    assert widths(small) == [3, 3, 2]
    bn, old = small[1], model[1]
    assert type(bn) is nn.BatchNorm1d and bn.num_features == 3 and bn.eps == 1e-3 and bn.momentum == 0.2
    kept = [0, 2, 4]
    for attr in ("running_mean", "running_var", "weight", "bias"):
        torch.testing.assert_close(getattr(bn, attr).detach(), getattr(old, attr).detach()[kept], msg=attr)
    assert int(bn.num_batches_tracked) == 7
    assert_matches_reference(small, model, masks, torch.randn(6, 3, generator=g))


def test_batchnorm2d_between_convs_is_sliced_and_normalises_folded_constants():
    g = torch.Generator().manual_seed(9)
    model = randomise(nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4, affine=False), nn.Tanh(),
                                    nn.Conv2d(4, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 4, 2)), g)
    masks = {"0.weight": torch.ones(4, 1, 3, 3, dtype=torch.bool), "3.weight": torch.ones(3, 4, 3, 3, dtype=torch.bool)}
    masks["0.weight"][1] = False  # a constant map: tanh(BN(0)) = tanh(-mean/std), folded into conv 3's bias
    masks["3.weight"][:, 3] = False  # map 3 unread
    small = compact(model, masks)
    assert widths(small) == [1, 2, 3, 2]
    torch.testing.assert_close(small[1].running_mean, model[1].running_mean[[0, 2]])
    torch.testing.assert_close(small[1].running_var, model[1].running_var[[0, 2]])
    assert small[1].weight is None and small[4].num_features == 3
    assert_matches_reference(small, model, masks, torch.randn(3, 1, 6, 6, generator=g))


def test_nested_sequentials_keep_their_structure_and_dotted_mask_names():
    g = torch.Generator().manual_seed(13)
    inner = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh()), nn.Sequential(nn.Linear(4, 5), nn.ReLU())
    model = randomise(nn.Sequential(*inner, nn.Linear(5, 2)), g)
    masks = {"0.0.weight": torch.ones(4, 3, dtype=torch.bool), "1.0.weight": torch.ones(5, 4, dtype=torch.bool)}
    masks["0.0.weight"][1] = False  # a constant: tanh(BN(bias)), folded into 1.0's bias
    masks["1.0.weight"][:, 2] = False  # unit 2 of 0.0 unread
    flat = nn.Sequential(*inner[0], *inner[1], model[2])  # the same modules, one level
    flat_masks = {"0.weight": masks["0.0.weight"], "3.weight": masks["1.0.weight"]}
    small = compact(model, masks)
    assert [(n, type(m)) for n, m in small.named_modules()] == [(n, type(m)) for n, m in model.named_modules()]
    assert widths(small) == expected_widths(flat, flat_masks) == [3, 2, 5, 2]
    assert small[0][1].num_features == 2
    assert_matches_reference(small, flat, flat_masks, torch.randn(4, 3, generator=g))


# ------------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("layer", [nn.Conv1d(2, 2, 1), nn.Softmax(dim=1), nn.LayerNorm(4)],
                         ids=lambda m: type(m).__name__)
def test_unknown_layer_is_refused_by_name_with_the_supported_types(layer):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), layer, nn.Linear(4, 2))
    with pytest.raises(ValueError, match=rf"'2' is a {type(layer).__name__}\b") as info:
        compact(model)
    for supported in ("Linear", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Dropout"):
        assert supported in str(info.value)


def test_grouped_conv_is_refused():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 1, groups=2), nn.Flatten(),
                          nn.Linear(16, 2))
    with pytest.raises(ValueError, match=r"'2'.*grouped.*groups=2"):
        compact(model)


def test_compact_leaves_the_global_rng_alone():
    g = torch.Generator().manual_seed(10)
    model = randomise(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
                                    nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3)), g)
    masks = {"0.weight": torch.rand(4, 2, 3, 3, generator=g) < 0.5, "6.weight": torch.rand(5, 16, generator=g) < 0.5}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    compact(model, masks)
    compact(apply_masks(copy.deepcopy(model), masks))
    assert torch.equal(torch.get_rng_state(), rng)


def test_compact_keeps_the_training_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    small = compact(model.train())
    assert model.training and small.training and all(m.training for m in small.modules())
    small = compact(model.eval())
    assert not model.training and not any(m.training for m in small.modules())


# ------------------------------------------------------------------------------------------ found bugs, fixed
def test_a_constant_map_through_avgpool_with_divisor_override_is_kept_not_misfolded():
    """AvgPool2d(divisor_override=d) turns a constant c into c·k²/d: the unit must not be folded as c."""
    g = torch.Generator().manual_seed(11)
    model = randomise(nn.Sequential(nn.Conv2d(1, 2, 1), nn.AvgPool2d(2, divisor_override=1), nn.Flatten(),
                                    nn.Linear(2 * 3 * 3, 2)), g)
    masks = {"0.weight": torch.tensor([True, False]).view(2, 1, 1, 1)}
    small = compact(model, masks)
    assert_matches_reference(small, model, masks, torch.randn(3, 1, 6, 6, generator=g))


def test_float64_chain_with_batchnorm_stays_float64():
    g = torch.Generator().manual_seed(12)
    model = randomise(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)), g).double()
    small = compact(model)
    assert all(t.dtype == torch.float64 for t in small.state_dict().values() if t.is_floating_point())
    x = torch.randn(3, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(small(x), model(x))
