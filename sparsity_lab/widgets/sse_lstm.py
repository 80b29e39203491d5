"""The SSE-for-LSTMs lesson's view: sliders for the number of members and the pruned fraction of an SGLD chain's
samples of a language model, re-measuring the ensemble's perplexity and redrawing each member's hidden sizes."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..cost import count_parameters
from ..language_model import ensemble_nll, true_token_probs
from ..masks import effective_weights
from ..methods import sse
from ..methods.sse_lstm import hidden_sizes
from ..plots.sse import ensemble_by_size
from ..plots.sse_lstm import kept_units
from ..structure import layer_groups
from .shared import View, ensemble_sliders, redraw, table_html

SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def group_pictures(lm: torch.nn.Module, row: int, column: int, unit: int) -> dict[str, dict[str, np.ndarray]]:
    """For `plots.sse_lstm.gate_groups`: the first LSTM layer's two matrices marked per grouping — 1 on the weights
    of one row group (gate-stacked row `row`), 2 on one column group (column `column`; untied: of the forget gate
    only) and, for ISS, 2 on everything of hidden unit `unit` — read from `structure.layer_groups`' index maps."""
    names = ("rnns.0.weight_ih", "rnns.0.weight_hh")
    shapes = {n: tuple(effective_weights(lm)[n].shape) for n in names}
    pictures = {}
    for grouping in ("untied", "tied", "iss"):
        marks = {n: np.zeros(shapes[n]) for n in names}
        for g in layer_groups(lm, grouping):
            if grouping == "iss":
                chosen = [(unit, 2)] if g.name == "rnns.0.iss" else []
            elif g.name.endswith(".rows"):
                chosen = [(row, 1)]
            else:   # untied columns are (gate, column) pairs: the forget gate's (gate 1) column
                chosen = [(column + (lm.rnns[0].input_size if "ih" in g.name else lm.rnns[0].hidden_size)
                           if grouping == "untied" else column, 2)]
            for k, value in chosen:
                for name, _, idx in g.parts:
                    if name in marks:
                        marks[name].reshape(-1)[idx[k].numpy()] = value
        pictures[grouping] = {n.rpartition(".")[2]: m for n, m in marks.items()}
    return pictures


class LanguageEnsembleExplorer(View):
    """Sliders for the number of members m and the fraction of weights pruned from each sample of `chain` (global
    magnitude threshold, *without* retraining): each move re-measures the perplexity of the first m members on
    `stream` against one dense model's, counts their parameters, and redraws the units each member keeps per
    layer (ISS compaction). Drive it headless: `explorer.sparsity.value = 0.9; explorer.members.value = 2`."""

    def __init__(self, chain, model: torch.nn.Module, stream: torch.Tensor, dense_perplexity: float,
                 sparsity: float = 0.8):
        self.states, self.model, self.stream = list(chain), model, stream
        if not self.states:
            raise ValueError("chain is empty: sample at least one member")
        self.dense_perplexity = float(dense_perplexity)
        self.dense_params = count_parameters(model)["total"]
        self.members, self.sparsity = ensemble_sliders(len(self.states), SPARSITIES, sparsity)
        self.cache: dict[float, dict] = {}
        self.status = W.HTML()
        measured = self.measure()
        self.figure = go.FigureWidget(ensemble_by_size(measured["perplexities"], self.dense_perplexity,
                                                       self.members.value))
        self.units = go.FigureWidget(self._units_figure(measured))
        for slider in (self.members, self.sparsity):
            slider.observe(self.update, names="value")
        self.update()

    def measure(self) -> dict:
        sparsity = self.sparsity.value
        if sparsity not in self.cache:
            pruned = [sse.prune(sse.model_with(self.model, s), sparsity=sparsity).masked() for s in self.states]
            probs = torch.stack([true_token_probs(m, self.stream) for m in pruned])
            self.cache[sparsity] = {
                "perplexities": [float(np.exp(ensemble_nll(probs[:m]))) for m in range(1, len(probs) + 1)],
                "sizes": [hidden_sizes(m) for m in pruned],
                "params": [count_parameters(m)["nonzero"] for m in pruned]}
        return self.cache[sparsity]

    def _units_figure(self, measured: dict) -> go.Figure:
        m = self.members.value
        names = ["embedding", *(f"layer {k + 1}" for k in range(len(measured["sizes"][0]) - 1))]
        dense = [self.model.embedding.embedding_dim, *(r.hidden_size for r in self.model.rnns)]
        members = [{f"member {k + 1}": list(s)} for k, s in enumerate(measured["sizes"][:m])]
        return kept_units(members, names, dense, "units each member keeps (what ISS compaction leaves)")

    def update(self, *_):
        measured, m = self.measure(), self.members.value
        self.perplexity = measured["perplexities"][m - 1]
        self.params = sum(measured["params"][:m]) / self.dense_params
        redraw(self.figure, ensemble_by_size(measured["perplexities"], self.dense_perplexity, m))
        self.figure.update_layout(title="test perplexity against the number of members", yaxis_title="perplexity")
        redraw(self.units, self._units_figure(measured))
        self.status.value = (f"<b>{m} members pruned to {self.sparsity.value:.0%}, not retrained</b>: perplexity "
                             f"{self.perplexity:.3f} (one dense model {self.dense_perplexity:.3f})"
                             + table_html([{"params ×": self.params}], {"params ×": "{:.2f}"}))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.members, self.sparsity]), self.status, self.figure, self.units])
