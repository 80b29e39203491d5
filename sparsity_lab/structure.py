"""Structure: which weights live or die together, declared once for every model.

A model's *chain* is its forward pass as an ordered list of (module name, module): `nn.Sequential` is its own
chain, and the package's models declare theirs (`MLP.chain()`, ...). Between two weight layers (Linear, Conv2d,
Embedding, LSTM) of a chain sit *units* — a layer's outputs: neurons, conv maps, embedding dimensions, LSTM hidden
units. A unit is coupled to everything that must go with it: its row in the layer that makes it (every gate's row
for an LSTM, and its column of the recurrent matrix), its entry in a BatchNorm in between, and its column in the
layer that reads it (a block of columns after a flatten: one per position of the map). `units(model)` finds them
once; `unit_groups`, `compact`, the group lasso, slimming and the gates all read that one declaration.

A `Groups` object (`sparsity_lab.groups`, re-exported here) cuts one or several weight tensors into `n` groups of
flat indices; this module decides which tensors and indices a unit couples.

Kinds, by layer type (Wen et al. 2016 for conv, Zhang & Ou 2018 and Wen et al. 2018 for LSTM):
    Linear   "outputs" (rows: a neuron's incoming weights), "inputs" (columns: a neuron's outgoing weights)
    Conv2d   "filters" W[n,:,:,:], "channels" W[:,c,:,:], "shapes" W[:,c,i,j], "layer" (all of it)
    LSTM     "untied" (rows of each gate matrix, and columns of each gate matrix separately),
             "tied" (rows, and columns of the four gates concatenated), "iss" (every weight of one hidden unit)
    units    `unit_groups`: whole units with everything coupled to them ("inputs" of an MLP, "units" of a
             Linear, "maps" of a conv, "iss" of an embedding or LSTM)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .groups import (  # noqa: F401
    Groups,
    block_columns,
    columns,
    fibres,
    gate_columns,
    make_groups,
    rows,
    single_weights,
    unit_rows,
    unit_rows_and_column,
    whole,
)
from .models import LSTMLayer, SelectInputs

WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, nn.Embedding, LSTMLayer)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)
PASS_THROUGH = (*NORMS, *ACTIVATIONS, *POOLS, nn.Flatten, nn.Dropout, nn.Identity, SelectInputs)
UNIT_KIND = {nn.Linear: "units", nn.Conv2d: "maps", nn.Embedding: "iss", LSTMLayer: "iss"}


# ---------------------------------------------------------------------------------------------- the chain
def _names(types) -> str:
    return ", ".join(t.__name__ for t in types)


def declares_chain(model: nn.Module) -> bool:
    """Whether `model` has a chain: an nn.Sequential, or a model with a chain() method."""
    return isinstance(model, nn.Sequential) or callable(getattr(model, "chain", None))


def chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The forward pass of `model` as (module name, module) steps: an nn.Sequential's children (nested ones
    flattened), or what the model declares with `chain()`. Every step must be a layer type the package knows."""
    if isinstance(model, nn.Sequential):
        steps = []
        for name, child in model.named_children():
            inner = chain(child) if isinstance(child, nn.Sequential) else [("", child)]
            steps += [(f"{name}.{sub}" if sub else name, m) for sub, m in inner]
    elif declares_chain(model):
        steps = list(model.chain())
    else:
        raise ValueError(f"{type(model).__name__} declares no chain: use an nn.Sequential, or give the model a "
                         "chain() method listing its layers in the order forward applies them")
    for name, module in steps:
        if not isinstance(module, WEIGHT_LAYERS + PASS_THROUGH):
            raise ValueError(f"layer {name or '(unnamed)'!r} is a {type(module).__name__}, which the structured "
                             f"path does not know; supported: {_names(WEIGHT_LAYERS)} (weights), "
                             f"{_names(PASS_THROUGH)} (between them)")
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            raise ValueError(f"layer {name!r}: grouped convolutions (groups={module.groups}) are not supported")
    if not any(isinstance(m, WEIGHT_LAYERS) for _, m in steps):
        raise ValueError(f"{type(model).__name__} has no weight layer ({_names(WEIGHT_LAYERS)})")
    return steps


def run_chain(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply the chain's steps one after another (what `forward` must compute; LSTM layers return their
    output sequence). Used to check a model's declaration against its forward pass."""
    for _, module in chain(model):
        x = module(x)
        if isinstance(module, LSTMLayer):
            x = x[0]
    return x


def check_input(model: nn.Module, x: torch.Tensor, argument: str = "x") -> None:
    """Raise ValueError naming `argument`, its shape and what `model` reads (from its chain: features, images or
    token ids) when x cannot be the model's input. Models without a chain are not checked."""
    if not declares_chain(model):
        return
    steps = chain(model)
    first = next(m for _, m in steps if isinstance(m, WEIGHT_LAYERS))
    select = next((m for _, m in steps if isinstance(m, SelectInputs)), None)
    if isinstance(first, nn.Embedding):
        ok = not x.is_floating_point() and x.dim() == 2 and (x.numel() == 0 or int(x.max()) < first.num_embeddings)
        reads = f"(T, B) integer token ids below {first.num_embeddings:,}"
    elif isinstance(first, nn.Conv2d):
        side = getattr(model, "image_size", None)
        ok = x.dim() == 4 and x.shape[1] == first.in_channels and (side is None or tuple(x.shape[2:]) == (side,) * 2)
        reads = f"(B, {first.in_channels}, {side or 'H'}, {side or 'W'}) images"
    else:
        flat = isinstance(steps[0][1], nn.Flatten)
        need = int(select.index.max()) + 1 if select is not None else first.in_features
        features = x.flatten(1).shape[1] if flat and x.dim() >= 2 else x.shape[-1] if x.dim() >= 2 else 0
        ok = x.is_floating_point() and (features >= need if select is not None else features == need)
        reads = f"(B, {need}{'+' if select is not None else ''}) features" + (", or images of that many pixels"
                                                                               if flat else "")
    if not ok:
        raise ValueError(f"{argument} has shape {tuple(x.shape)} ({str(x.dtype).removeprefix('torch.')}), but "
                         f"{type(model).__name__} reads {reads}")


def in_units(layer: nn.Module) -> int:
    """How many units a weight layer reads: input features, channels, tokens (an Embedding) or LSTM inputs."""
    return {nn.Linear: lambda m: m.in_features, nn.Conv2d: lambda m: m.in_channels,
            nn.Embedding: lambda m: m.num_embeddings, LSTMLayer: lambda m: m.input_size}[_layer_type(layer)](layer)


def out_units(layer: nn.Module) -> int:
    """How many units a weight layer makes: neurons, conv maps, embedding dimensions or LSTM hidden units."""
    return {nn.Linear: lambda m: m.out_features, nn.Conv2d: lambda m: m.out_channels,
            nn.Embedding: lambda m: m.embedding_dim, LSTMLayer: lambda m: m.hidden_size}[_layer_type(layer)](layer)


def _layer_type(module: nn.Module) -> type:
    return next(t for t in WEIGHT_LAYERS if isinstance(module, t))


@dataclass(frozen=True)
class Units:
    """A set of units and everything coupled to them.

    producer: the module name of the layer that makes them (None for a network's inputs); between: the names of
    per-unit modules after it (BatchNorm); reader: the layer that reads them (None for the network's outputs),
    with `block` consecutive input columns per unit (the positions of a map after a flatten, else 1)."""

    name: str
    kind: str
    size: int
    producer: str | None
    between: tuple[str, ...]
    reader: str | None
    block: int = 1


def has_input_index(model: nn.Module) -> bool:
    """Whether `model` selects the inputs it reads (an MLP's `input_index`), so that inputs can be removed."""
    return "input_index" in getattr(model, "_buffers", {})


def units(model: nn.Module) -> list[Units]:
    """Every set of units in `model`'s chain, from the inputs to the outputs (see `Units`). The network's inputs
    come first when the model can drop inputs (an MLP); its outputs last (reader None: never removed)."""
    steps = chain(model)
    weights = [k for k, (_, m) in enumerate(steps) if isinstance(m, WEIGHT_LAYERS)]
    first_name, first = steps[weights[0]]
    out = []
    if has_input_index(model):
        out.append(Units(f"{first_name}.inputs", "inputs", in_units(first), None, (), first_name, 1))
    for a, b in zip(weights, [*weights[1:], None], strict=True):
        name, producer = steps[a]
        size = out_units(producer)
        after = steps[a + 1:b] if b is not None else steps[a + 1:]
        between = []
        for bn_name, module in after:
            if isinstance(module, NORMS):
                if module.num_features != size:
                    raise ValueError(f"{bn_name!r} normalises {module.num_features} features but {name!r} makes "
                                     f"{size} units")
                between.append(bn_name)
        if b is None:
            out.append(Units(f"{name}.outputs", "outputs", size, name, tuple(between), None))
            break
        reader_name, reader = steps[b]
        if isinstance(reader, nn.Embedding):
            raise ValueError(f"an Embedding ({reader_name!r}) can only be a chain's first weight layer")
        reads = in_units(reader)
        if reads % size:
            raise ValueError(f"{reader_name!r} reads {reads} inputs, not a multiple of the {size} units that "
                             f"{name!r} makes")
        if reads != size and not isinstance(reader, nn.Linear):
            raise ValueError(f"{reader_name!r} reads {reads} inputs but {name!r} makes {size} units")
        kind = UNIT_KIND[_layer_type(producer)]
        out.append(Units(f"{name}.{kind}", kind, size, name, tuple(between), reader_name, reads // size))
    return out


def widths(model: nn.Module) -> list[int]:
    """Units at every boundary of the chain, inputs first: [784, 300, 100, 10] for LeNet-300-100,
    [1, 20, 50, 500, 10] for LeNet5-Caffe (input channels, conv1 maps, conv2 maps, fc1 neurons, classes)."""
    steps = [m for _, m in chain(model) if isinstance(m, WEIGHT_LAYERS)]
    return [in_units(steps[0]), *(out_units(m) for m in steps)]


# ---------------------------------------------------------------------------------------------- groups
def _param(prefix: str, attr: str) -> str:
    return f"{prefix}.{attr}" if prefix else attr


def _producer_parts(name: str, layer: nn.Module) -> list[tuple[str, tuple[int, ...], object]]:
    """The weights that make each unit: rows of a Linear or conv, columns of an Embedding, every gate's row of an
    LSTM's two matrices and the unit's own column of the recurrent one."""
    if isinstance(layer, LSTMLayer):
        return [(_param(name, "weight_ih"), tuple(layer.weight_ih.shape), unit_rows),
                (_param(name, "weight_hh"), tuple(layer.weight_hh.shape), unit_rows_and_column)]
    view = columns if isinstance(layer, nn.Embedding) else rows
    return [(_param(name, "weight"), tuple(layer.weight.shape), view)]


def _reader_parts(name: str, layer: nn.Module, block: int) -> list[tuple[str, tuple[int, ...], object]]:
    """The weights that read each unit: columns (a block of them after a flatten), an LSTM's input columns."""
    attr = "weight_ih" if isinstance(layer, LSTMLayer) else "weight"
    shape = tuple(getattr(layer, attr).shape)
    return [(_param(name, attr), shape, block_columns(block) if block > 1 else columns)]


def unit_groups(model: nn.Module) -> list[Groups]:
    """One `Groups` per removable set of units (`units`, outputs excluded): each group is a whole unit with every
    weight coupled to it, so removing it deletes the unit from the network. MLP: its input pixels ("inputs") and
    hidden neurons ("units"); conv nets: each conv map with what reads it ("maps"); the LSTM language model: the
    embedding dimensions and hidden units ("iss", Wen et al. 2018's intrinsic sparse structures)."""
    out = []
    for u in units(model):
        if u.reader is None:
            continue
        reader = model.get_submodule(u.reader)
        parts = [] if u.producer is None else _producer_parts(u.producer, model.get_submodule(u.producer))
        out.append(make_groups(u.name, u.kind, *parts, *_reader_parts(u.reader, reader, u.block)))
    if not out:
        raise ValueError(f"{type(model).__name__} has no removable units (it has a single weight layer)")
    return out


LINEAR_KINDS = {"outputs": rows, "inputs": columns}
CONV_KINDS = {"filters": rows, "channels": columns, "shapes": fibres, "layer": whole}
LSTM_KINDS = ("untied", "tied", "iss")


def layer_groups(model: nn.Module, kind: str) -> list[Groups]:
    """All groups of one kind in `model`, one `Groups` per layer (per tensor part for untied/tied LSTM groups).

    Linear: "outputs"/"inputs"; Conv2d: "filters"/"channels"/"shapes"/"layer"; LSTM: "untied"/"tied"/"iss".
    A kind applies to the layers of its type; a kind that matches no layer of the model is an error.
    """
    if kind in LSTM_KINDS:
        out = _lstm_groups(model, kind)
    elif kind in LINEAR_KINDS or kind in CONV_KINDS:
        out = []
        for mname, module in model.named_modules():
            table = LINEAR_KINDS if isinstance(module, nn.Linear) else CONV_KINDS \
                if isinstance(module, nn.Conv2d) else {}
            if kind == "layer" and isinstance(module, nn.Conv2d):
                raise ValueError("depth-wise ('layer') groups need a shortcut around the layer to be removable; "
                                 f"{type(model).__name__} has none (layer {mname!r})")
            if kind in table:
                shape = tuple(module.weight.shape)
                gname = f"{mname or type(module).__name__}.{kind}"
                out.append(make_groups(gname, kind, (_param(mname, "weight"), shape, table[kind])))
    else:
        choices = sorted([*LINEAR_KINDS, *CONV_KINDS, *LSTM_KINDS])
        raise ValueError(f"unknown group kind {kind!r}; choose from {choices}")
    if not out:
        raise ValueError(f"{type(model).__name__} has no layer with {kind!r} groups")
    return out


def neuron_groups(model: nn.Module) -> list[Groups]:
    """SSE/SSL neuron-wise groups of an MLP: all outgoing weights of each input and hidden neuron (columns)."""
    return layer_groups(model, "inputs")


def _lstm_groups(model: nn.Module, kind: str) -> list[Groups]:
    if isinstance(model, LSTMLayer):
        layers = [("", model)]
    else:
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LSTMLayer)]
    if not layers:
        raise ValueError(f"{kind!r} groups are for LSTM layers; {type(model).__name__} has none")
    if kind == "iss":
        if isinstance(model, LSTMLayer):
            raise ValueError("'iss' groups span a layer and its successor: build them on a language model")
        return [g for g in unit_groups(model) if g.kind == "iss"]
    out = []
    for lname, layer in layers:
        col_view = gate_columns if kind == "untied" else columns
        for attr in ("weight_ih", "weight_hh"):
            pname = _param(lname, attr)
            shape = tuple(getattr(layer, attr).shape)
            out.append(make_groups(f"{pname}.rows", kind, (pname, shape, rows)))
            out.append(make_groups(f"{pname}.columns", kind, (pname, shape, col_view)))
    return out
