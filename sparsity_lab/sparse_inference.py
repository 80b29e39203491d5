"""Running a sparse network *without* compacting it: the alternatives `compact` is measured against.

    IndexListLSTMLanguageModel   SSE's index-list inference (Zhang & Ou 2018): the full LSTM weights plus, per
                                 matrix, the lists of its nonzero rows and columns; only those are computed
    CSRMLP                       an MLP whose weights are torch sparse CSR matrices: only nonzeros are stored
                                 and multiplied (unstructured sparsity's best case on a CPU)
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .masks import effective_weights
from .models import MLP, LSTMLanguageModel


class IndexListLSTMLanguageModel(nn.Module):
    """SSE's index-list inference: keep the full weight matrices plus, for each, the lists of its nonzero rows
    and columns, and compute only those. Works for untied, tied and ISS sparsity alike; the hidden size stays.

    Each forward call gathers the surviving submatrices once, then every time step multiplies only surviving
    columns of the state into surviving rows of the gates (the other gates get their bias alone)."""

    LAYER_KEYS = ("w_ih", "w_hh", "bias", "rows_ih", "cols_ih", "rows_hh", "cols_hh")

    def __init__(self, model: LSTMLanguageModel):
        super().__init__()
        if not isinstance(model, LSTMLanguageModel):
            raise ValueError(f"IndexListLSTMLanguageModel needs an LSTMLanguageModel, got {type(model).__name__}")
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

    def forward(self, tokens: torch.Tensor, states: list | None = None, return_states: bool = False):
        """Tokens (T, B) → logits (T, B, vocab); `states` and `return_states` as `LSTMLanguageModel.forward`'s."""
        x = self.embedding[tokens]
        final = []
        for k, layer in enumerate(self.layers):
            x, state = index_list_recurrence(x, layer, None if states is None else states[k], return_state=True)
            final.append(state)
        w = self.decoder_weight.index_select(1, self.decoder_cols)
        logits = torch.addmm(self.decoder_bias, x.index_select(2, self.decoder_cols).flatten(0, 1),
                             w.t()).view(*x.shape[:2], -1)
        return (logits, final) if return_states else logits


def _index_lists(w: torch.Tensor, tag: str) -> dict[str, torch.Tensor]:
    return {f"rows_{tag}": (w != 0).any(1).nonzero().squeeze(1), f"cols_{tag}": (w != 0).any(0).nonzero().squeeze(1)}


def index_list_recurrence(x: torch.Tensor, p: dict, state=None, return_state: bool = False):
    """One LSTM layer by index lists: x (T, B, I) → (T, B, H), from `state` (h, c) or zeros; with `return_state`
    also the final (h, c). `p` holds the full weights w_ih, w_hh, bias and the lists rows_ih, cols_ih, rows_hh,
    cols_hh of their nonzero rows and columns."""
    steps, batch, _ = x.shape
    hidden = p["w_hh"].shape[1]
    w_ih = p["w_ih"].index_select(0, p["rows_ih"]).index_select(1, p["cols_ih"])
    w_hh_t = p["w_hh"].index_select(0, p["rows_hh"]).index_select(1, p["cols_hh"]).t()
    gates_x = p["bias"].repeat(steps * batch, 1)
    gates_x.index_add_(1, p["rows_ih"], x.index_select(2, p["cols_ih"]).flatten(0, 1) @ w_ih.t())
    h, c = state if state is not None else (x.new_zeros(batch, hidden),) * 2
    outputs = []
    for gx in gates_x.view(steps, batch, -1):
        gates = gx.index_add(1, p["rows_hh"], h.index_select(1, p["cols_hh"]) @ w_hh_t)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return (torch.stack(outputs), (h, c)) if return_state else torch.stack(outputs)


class CSRMLP(nn.Module):
    """An MLP whose weights are stored as torch sparse CSR matrices: only nonzeros are stored and multiplied.

    Activations are kept feature-major (features, batch) so each layer is `addmm(bias, W_csr, h)` with the sparse
    matrix on the left, the layout torch's CPU CSR kernels are fast for."""

    def __init__(self, model: MLP):
        super().__init__()
        if not isinstance(model, MLP):
            raise ValueError(f"CSRMLP needs an MLP (Linear layers with ReLU between), got {type(model).__name__}")
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
