"""The structured-sparse inference path: turn a masked network into a physically smaller dense one.

A mask that zeroes scattered weights makes nothing faster: the matrix multiply still touches every entry. But a
neuron whose outgoing weights are all zero can be deleted, with its row in the layer before; a conv filter that
nobody reads can go with its channel in the next conv; an LSTM hidden unit that nothing reads can go from every
gate. `compact` finds every such unit in any mask (structured or not) and rebuilds a model of the same class with
smaller layers, so the FLOPs saved are FLOPs not computed. `assert_equivalent` checks the outputs are the same.

Two rules make it exact for any mask:
- a unit whose output is never read by a surviving unit is removed (backwards, from the outputs);
- a unit whose incoming weights are all zero outputs a constant relu(bias): it is removed and that constant is
  folded into the next layer's bias (forwards, from the inputs). LSTM units are only removed by the first rule:
  with zero weights their cell state still changes in time.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .masks import effective_weights, prunable
from .models import MLP, LeNet5, LSTMLanguageModel


def compact(model: nn.Module, masks: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """A smaller dense copy of `model` that computes the same function as `model` with `masks` applied.

    Without `masks`, the model's current effective weights (parametrized masks included) decide what is zero.
    Supports MLP (input pixels removed too), LeNet5 (filters, channels, the conv→fc flatten) and the LSTM
    language model (hidden units of every layer and embedding dimensions).
    """
    if not prunable(model):
        raise ValueError(f"{type(model).__name__} has no prunable layer to compact")
    # fork_rng: building the small model draws an initialisation we overwrite; the caller's RNG must not move
    with torch.no_grad(), torch.random.fork_rng():
        weights = {k: v.detach().clone() for k, v in effective_weights(model).items()}
        for name, mask in (masks or {}).items():
            if name not in weights or weights[name].shape != mask.shape:
                raise ValueError(f"mask {name!r} of shape {tuple(mask.shape)} matches no weight of the model")
            weights[name] *= mask
        if isinstance(model, MLP):
            return _compact_mlp(model, weights)
        if isinstance(model, LeNet5):
            return _compact_lenet5(model, weights)
        if isinstance(model, LSTMLanguageModel):
            return _compact_lstm_lm(model, weights)
    raise ValueError(f"compact supports MLP, LeNet5 and LSTMLanguageModel, not {type(model).__name__}")


def _chain(stages: list[tuple[torch.Tensor, torch.Tensor]], keep_inputs: bool):
    """Shrink a feed-forward chain. Each stage is (W3, bias) with W3 of shape (out units, in units, per unit):
    a Linear is (out, in, 1), a conv (out, in, kh·kw), a Linear after a flatten (out, channels, positions).
    Returns the surviving input indices of the first stage, the surviving units of every stage, new biases."""
    biases = [b.clone() for _, b in stages]
    # Backwards: a unit lives only if a living unit of the next stage reads it.
    used = [torch.ones(stages[-1][0].shape[0], dtype=torch.bool)]
    for w3, _ in reversed(stages):
        used.insert(0, (w3[used[0]] != 0).any(2).any(0))
    inputs = torch.ones_like(used[0]) if keep_inputs else used[0]
    used = used[1:]
    # Forwards: a used unit with no living input is a constant relu(bias); fold it into the next bias.
    alive, reading = [], inputs
    for k, (w3, _) in enumerate(stages[:-1]):
        fed = (w3[:, reading] != 0).any(2).any(1)
        constant = used[k] & ~fed
        value = F.relu(biases[k][constant])
        biases[k + 1] += (stages[k + 1][0][:, constant].sum(2) * value).sum(1)
        keep = used[k] & fed
        if not keep.any():  # keep one silent unit rather than a zero-width layer
            keep[0] = True
            biases[k][0] = 0.0
            stages[k][0][0] = 0.0
            stages[k + 1][0][:, 0] = 0.0  # it outputs 0: no unit of the next stage is fed by it
        alive.append(keep)
        reading = keep
    if not inputs.any():
        inputs[0] = True
    alive.append(used[-1])
    return inputs, alive, biases


def _slice(w: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return w[rows][:, cols].contiguous()


def _compact_mlp(model: MLP, weights: dict[str, torch.Tensor]) -> MLP:
    stages = [(weights[f"layers.{k}.weight"].unsqueeze(2), layer.bias.detach())
              for k, layer in enumerate(model.layers)]
    inputs, alive, biases = _chain(stages, keep_inputs=False)
    index = inputs.nonzero().squeeze(1)
    if model.input_index is not None:
        index = model.input_index[index]
    elif len(index) == len(inputs):
        index = None
    small = MLP([int(inputs.sum()), *(int(a.sum()) for a in alive)], input_index=index)
    reading = inputs
    for k, layer in enumerate(small.layers):
        layer.weight.data = _slice(stages[k][0].squeeze(2), alive[k], reading)
        layer.bias.data = biases[k][alive[k]].clone()
        reading = alive[k]
    return small.to(model.layers[0].weight.device)


def _compact_lenet5(model: LeNet5, weights: dict[str, torch.Tensor]) -> LeNet5:
    names = ("conv1", "conv2", "fc1", "fc2")
    shapes = {n: weights[f"{n}.weight"].shape for n in names}
    w3 = [weights["conv1.weight"].flatten(2), weights["conv2.weight"].flatten(2),
          weights["fc1.weight"].reshape(shapes["fc1"][0], shapes["conv2"][0], -1),
          weights["fc2.weight"].unsqueeze(2)]
    stages = [(w, getattr(model, n).bias.detach()) for w, n in zip(w3, names, strict=True)]
    inputs, alive, biases = _chain(stages, keep_inputs=True)
    c1, c2, f1 = (int(a.sum()) for a in alive[:3])
    small = LeNet5(c1, c2, f1, n_classes=shapes["fc2"][0], in_channels=shapes["conv1"][1],
                   image_size=model.image_size)
    reading = inputs
    for k, name in enumerate(names):
        layer = getattr(small, name)
        layer.weight.data = _slice(stages[k][0], alive[k], reading).reshape(layer.weight.shape)
        layer.bias.data = biases[k][alive[k]].clone()
        reading = alive[k]
    return small.to(model.conv1.weight.device)


def _gate_rows(units: torch.Tensor) -> torch.Tensor:
    """Boolean (H,) units → boolean (4H,) rows of the gate-stacked weights."""
    return units.repeat(4)


def lstm_needed_units(model: LSTMLanguageModel, weights: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Which embedding dimensions and hidden units can influence the logits: [embedding, layer 1, ...].

    A unit is needed if a needed reader (the decoder, a needed unit of the next layer, or a needed unit of its
    own layer through the recurrent matrix) has a nonzero weight on it. Found backwards, each layer to a fixed
    point of its recurrence."""
    reads = (weights["decoder.weight"] != 0).any(0)
    needed = []
    for k in reversed(range(len(model.rnns))):
        w_hh = weights[f"rnns.{k}.weight_hh"]
        units = reads.clone()
        while True:
            grown = units | (w_hh[_gate_rows(units)] != 0).any(0)
            if torch.equal(grown, units):
                break
            units = grown
        needed.insert(0, units)
        reads = (weights[f"rnns.{k}.weight_ih"][_gate_rows(units)] != 0).any(0)
    needed.insert(0, reads)
    for units in needed:
        if not units.any():  # a zero-width layer would break nn modules; one unread unit changes nothing
            units[0] = True
    return needed


def _compact_lstm_lm(model: LSTMLanguageModel, weights: dict[str, torch.Tensor]) -> LSTMLanguageModel:
    needed = lstm_needed_units(model, weights)
    vocab = model.embedding.weight.shape[0]
    small = LSTMLanguageModel(vocab, int(needed[0].sum()), tuple(int(u.sum()) for u in needed[1:]))
    small.embedding.weight.data = weights["embedding.weight"][:, needed[0]].contiguous()
    for k, rnn in enumerate(small.rnns):
        rows = _gate_rows(needed[k + 1])
        rnn.weight_ih.data = _slice(weights[f"rnns.{k}.weight_ih"], rows, needed[k])
        rnn.weight_hh.data = _slice(weights[f"rnns.{k}.weight_hh"], rows, needed[k + 1])
        rnn.bias.data = model.rnns[k].bias.detach()[rows].clone()
    small.decoder.weight.data = weights["decoder.weight"][:, needed[-1]].contiguous()
    small.decoder.bias.data = model.decoder.bias.detach().clone()
    return small.to(model.decoder.weight.device)


class IndexListLSTMLanguageModel(nn.Module):
    """SSE's index-list inference: keep the full weight matrices plus, for each, the lists of its nonzero rows
    and columns, and compute only those. Works for untied, tied and ISS sparsity alike; the hidden size stays.

    Each forward call gathers the surviving submatrices once, then every time step multiplies only surviving
    columns of the state into surviving rows of the gates (the other gates get their bias alone)."""

    LAYER_KEYS = ("w_ih", "w_hh", "bias", "rows_ih", "cols_ih", "rows_hh", "cols_hh")

    def __init__(self, model: LSTMLanguageModel):
        super().__init__()
        with torch.no_grad():
            weights = {k: v.detach().clone() for k, v in effective_weights(model).items()}
        # buffers, so .to(device) and state_dict carry the weights and the index lists
        self.register_buffer("embedding", weights["embedding.weight"])
        self.n_layers = len(model.rnns)
        for k, rnn in enumerate(model.rnns):
            w_ih, w_hh = weights[f"rnns.{k}.weight_ih"], weights[f"rnns.{k}.weight_hh"]
            layer = {"w_ih": w_ih, "w_hh": w_hh, "bias": rnn.bias.detach().clone(),
                     **_index_lists(w_ih, "ih"), **_index_lists(w_hh, "hh")}
            for key in self.LAYER_KEYS:
                self.register_buffer(f"layer{k}_{key}", layer[key])
        self.register_buffer("decoder_weight", weights["decoder.weight"])
        self.register_buffer("decoder_bias", model.decoder.bias.detach().clone())
        self.register_buffer("decoder_cols", (self.decoder_weight != 0).any(0).nonzero().squeeze(1))

    @property
    def layers(self) -> list[dict[str, torch.Tensor]]:
        """Per LSTM layer: its full weights, bias, and the index lists of nonzero rows and columns."""
        return [{key: getattr(self, f"layer{k}_{key}") for key in self.LAYER_KEYS} for k in range(self.n_layers)]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding[tokens]
        for layer in self.layers:
            x = index_list_recurrence(x, layer)
        w = self.decoder_weight.index_select(1, self.decoder_cols)
        return torch.addmm(self.decoder_bias, x.index_select(2, self.decoder_cols).flatten(0, 1),
                           w.t()).view(*x.shape[:2], -1)


def _index_lists(w: torch.Tensor, tag: str) -> dict[str, torch.Tensor]:
    return {f"rows_{tag}": (w != 0).any(1).nonzero().squeeze(1), f"cols_{tag}": (w != 0).any(0).nonzero().squeeze(1)}


def index_list_recurrence(x: torch.Tensor, p: dict) -> torch.Tensor:
    """One LSTM layer by index lists: x (T, B, I) → (T, B, H). `p` holds the full weights w_ih, w_hh, bias and
    the lists rows_ih, cols_ih, rows_hh, cols_hh of their nonzero rows and columns."""
    steps, batch, _ = x.shape
    hidden = p["w_hh"].shape[1]
    w_ih = p["w_ih"].index_select(0, p["rows_ih"]).index_select(1, p["cols_ih"])
    w_hh_t = p["w_hh"].index_select(0, p["rows_hh"]).index_select(1, p["cols_hh"]).t()
    gates_x = p["bias"].repeat(steps * batch, 1)
    gates_x.index_add_(1, p["rows_ih"], x.index_select(2, p["cols_ih"]).flatten(0, 1) @ w_ih.t())
    h = c = x.new_zeros(batch, hidden)
    outputs = []
    for gx in gates_x.view(steps, batch, -1):
        gates = gx.index_add(1, p["rows_hh"], h.index_select(1, p["cols_hh"]) @ w_hh_t)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs)


class CSRMLP(nn.Module):
    """An MLP whose weights are stored as torch sparse CSR matrices: only nonzeros are stored and multiplied.

    Activations are kept feature-major (features, batch) so each layer is `addmm(bias, W_csr, h)` with the sparse
    matrix on the left, the layout torch's CPU CSR kernels are fast for."""

    def __init__(self, model: MLP):
        super().__init__()
        with torch.no_grad():
            weights = effective_weights(model)
            with warnings.catch_warnings():  # torch flags all sparse CSR support as beta; addmm is what we use
                warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
                self.weights = [weights[f"layers.{k}.weight"].detach().to_sparse_csr()
                                for k in range(len(model.layers))]
            self.biases = [layer.bias.detach().clone().unsqueeze(1) for layer in model.layers]
        self.input_index = model.input_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.input_index is not None:
            x = x.index_select(1, self.input_index)
        h = x.t()
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.addmm(b, w, h)
            if k < len(self.weights) - 1:
                h = F.relu(h)
        return h.t()


@torch.no_grad()
def max_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between the outputs of two models on the same input (eval mode)."""
    a.eval()
    b.eval()
    return (a(x) - b(x)).abs().max().item()


def assert_equivalent(masked: nn.Module, small: nn.Module, x: torch.Tensor, atol: float = 1e-5) -> float:
    """Raise AssertionError unless `small` computes what `masked` does on `x` (max |difference| ≤ atol, relative
    to the output scale when outputs are larger than 1). Returns the max difference."""
    diff = max_difference(masked, small, x)
    with torch.no_grad():
        scale = max(1.0, masked(x).abs().max().item())
    if not diff <= atol * scale:
        raise AssertionError(f"the compact model differs from the masked one: max |difference| = {diff:.3g} "
                             f"> {atol:g} × output scale {scale:.3g}")
    return diff
