"""Groups: the sets of weights that live or die together (a neuron, a filter, a channel, an LSTM hidden unit...).

A `Groups` object cuts one or several weight tensors into `n` groups. It stores, for each tensor it touches, a
LongTensor (n, size) of flat indices: row g lists the weights of group g in that tensor. Computed once from the
shapes, it serves every method the same way: `norms` scores the groups, `masks` turns a keep-decision into
boolean masks, `penalty` is the group lasso. A group may span several tensors (an LSTM hidden unit touches rows
of both weight matrices, a column of the recurrent matrix and a column of the next layer).

Kinds, by layer type (Wen et al. 2016 for conv, Zhang & Ou 2018 and Wen et al. 2018 for LSTM):
    Linear   "outputs" (rows: a neuron's incoming weights), "inputs" (columns: a neuron's outgoing weights)
    Conv2d   "filters" W[n,:,:,:], "channels" W[:,c,:,:], "shapes" W[:,c,i,j], "layer" (all of it)
    LSTM     "untied" (rows of each gate matrix, and columns of each gate matrix separately),
             "tied" (rows, and columns of the four gates concatenated), "iss" (every weight of one hidden unit)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .models import LeNet5, LSTMLanguageModel, LSTMLayer


@dataclass(frozen=True)
class Groups:
    """`n` groups over one or more weight tensors: `parts` holds (param name, param shape, (n, size) flat indices)."""

    name: str
    kind: str
    parts: tuple[tuple[str, tuple[int, ...], torch.Tensor], ...]

    @property
    def n(self) -> int:
        return self.parts[0][2].shape[0]

    @property
    def size(self) -> int:
        """Number of weights in one group (the dim(θ_g) of the group lasso)."""
        return sum(idx.shape[1] for _, _, idx in self.parts)

    def norms(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """L2 norm of each group, shape (n,). `params` maps parameter names to tensors (e.g. `effective_weights`)."""
        squares = sum(params[name].reshape(-1)[idx].pow(2).sum(1) for name, _, idx in self.parts)
        return squares.sqrt()

    def masks(self, keep: torch.Tensor) -> dict[str, torch.Tensor]:
        """Boolean masks, one per touched parameter, that zero every group not kept."""
        keep = torch.as_tensor(keep, dtype=torch.bool)
        if keep.shape != (self.n,):
            raise ValueError(f"keep must have shape ({self.n},) for groups {self.name!r}, got {tuple(keep.shape)}")
        out: dict[str, torch.Tensor] = {}
        for name, shape, idx in self.parts:
            mask = out.setdefault(name, torch.ones(shape, dtype=torch.bool))
            mask.view(-1)[idx[~keep].reshape(-1)] = False
        return out

    def penalty(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Group lasso Σ_g √dim(θ_g)·‖θ_g‖₂ (Yuan & Lin 2006), differentiable."""
        return self.size ** 0.5 * self.norms(params).sum()


def _index_groups(shape: tuple[int, ...], view) -> torch.Tensor:
    """Apply a reshaping `view` (tensor → (n, size)) to a tensor of flat indices: the index map of the groups."""
    return view(torch.arange(int(torch.Size(shape).numel())).reshape(shape)).contiguous()


# How each kind cuts one tensor into (n_groups, size): functions of the tensor itself.
def rows(w):
    return w.reshape(w.shape[0], -1)


def columns(w):
    return w.reshape(w.shape[0], w.shape[1], -1).transpose(0, 1).reshape(w.shape[1], -1)


def fibres(w):
    return w.reshape(w.shape[0], -1).t()


def whole(w):
    return w.reshape(1, -1)


def unit_rows(w):
    """(4H, I) gate-stacked LSTM weight → (H, 4·I): hidden unit k's row in every gate."""
    return w.reshape(4, w.shape[0] // 4, -1).transpose(0, 1).reshape(w.shape[0] // 4, -1)


def unit_rows_and_column(w):
    """(4H, H) recurrent LSTM weight → (H, 8H − 4): unit k's row in every gate and its column, each weight
    once (the 4 weights where they cross belong to both; counted twice they would weigh double in a norm)."""
    hidden = w.shape[1]
    crossing = (torch.arange(w.shape[0]) % hidden).unsqueeze(0) == torch.arange(hidden).unsqueeze(1)
    return torch.cat([unit_rows(w), columns(w)[~crossing].reshape(hidden, -1)], dim=1)


def gate_columns(w):
    """(4H, I) → (4·I, H): each column of each gate matrix on its own (SSE's untied columns)."""
    return w.reshape(4, w.shape[0] // 4, -1).transpose(1, 2).reshape(-1, w.shape[0] // 4)


def block_columns(block: int):
    """Columns in consecutive blocks of `block` (a Linear after a flatten: one block per input channel)."""
    def view(w):
        return w.reshape(w.shape[0], -1, block).transpose(0, 1).reshape(w.shape[1] // block, -1)
    return view


def make_groups(name: str, kind: str, *parts: tuple[str, tuple[int, ...], object]) -> Groups:
    """Groups from (param name, param shape, view) triples; every view must give the same number of groups."""
    built = tuple((pname, tuple(shape), _index_groups(shape, view)) for pname, shape, view in parts)
    counts = {idx.shape[0] for _, _, idx in built}
    if len(counts) != 1:
        raise ValueError(f"the parts of groups {name!r} disagree on the number of groups: {sorted(counts)}")
    return Groups(name, kind, built)


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
                pname = f"{mname}.weight" if mname else "weight"  # the model itself may be the layer
                gname = f"{mname or type(module).__name__}.{kind}"
                out.append(make_groups(gname, kind, (pname, shape, table[kind])))
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
        if not isinstance(model, LSTMLanguageModel):
            raise ValueError("'iss' groups span a layer and its successor: build them on an LSTMLanguageModel")
        return iss_groups(model)
    out = []
    for lname, layer in layers:
        prefix = f"{lname}." if lname else ""
        col_view = gate_columns if kind == "untied" else columns
        for pname in ("weight_ih", "weight_hh"):
            shape = tuple(getattr(layer, pname).shape)
            out.append(make_groups(f"{prefix}{pname}.rows", kind, (f"{prefix}{pname}", shape, rows)))
            out.append(make_groups(f"{prefix}{pname}.columns", kind, (f"{prefix}{pname}", shape, col_view)))
    return out


def iss_groups(model: LSTMLanguageModel) -> list[Groups]:
    """Intrinsic sparse structures (Wen et al. 2018): one group per embedding dimension and per hidden unit.

    Embedding dim e: column e of the embedding and of the first layer's weight_ih. Hidden unit k of layer l: its
    row in every gate of weight_ih and weight_hh, column k of weight_hh, and column k of what reads it next (the
    next layer's weight_ih or the decoder). Removing a group shrinks the hidden size itself.
    """
    emb = tuple(model.embedding.weight.shape)
    first = tuple(model.rnns[0].weight_ih.shape)
    out = [make_groups("embedding.iss", "iss", ("embedding.weight", emb, columns),
                       ("rnns.0.weight_ih", first, columns))]
    for k, rnn in enumerate(model.rnns):
        reader = f"rnns.{k + 1}.weight_ih" if k + 1 < len(model.rnns) else "decoder.weight"
        reader_shape = tuple(model.get_parameter(reader).shape)
        ih, hh = tuple(rnn.weight_ih.shape), tuple(rnn.weight_hh.shape)
        out.append(make_groups(f"rnns.{k}.iss", "iss",
                               (f"rnns.{k}.weight_ih", ih, unit_rows),
                               (f"rnns.{k}.weight_hh", hh, unit_rows_and_column),
                               (reader, reader_shape, columns)))
    return out


def lenet5_channel_groups(model: LeNet5) -> list[Groups]:
    """Per conv filter: the filter itself and everything that reads its output map (next conv's channel, or the
    block of fc1 columns after the flatten). Removing one removes a whole feature map."""
    c1, c2, f1 = (tuple(m.weight.shape) for m in (model.conv1, model.conv2, model.fc1))
    per_map = model.side * model.side
    return [make_groups("conv1.maps", "filters", ("conv1.weight", c1, rows), ("conv2.weight", c2, columns)),
            make_groups("conv2.maps", "filters", ("conv2.weight", c2, rows),
                        ("fc1.weight", f1, block_columns(per_map)))]


def mlp_unit_groups(model: nn.Module) -> list[Groups]:
    """Whole units of an MLP: each input pixel (its column in the first layer) and each hidden neuron (its row of
    incoming weights and its column of outgoing weights). Removing one deletes the unit from the network."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer")
    name, first = linears[0]
    out = [make_groups(f"{name}.inputs", "units", (f"{name}.weight", tuple(first.weight.shape), columns))]
    for (name, layer), (next_name, reader) in zip(linears[:-1], linears[1:], strict=True):
        out.append(make_groups(f"{name}.units", "units", (f"{name}.weight", tuple(layer.weight.shape), rows),
                               (f"{next_name}.weight", tuple(reader.weight.shape), columns)))
    return out
