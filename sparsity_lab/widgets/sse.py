"""The Sparse Structured Ensembles lesson's views: the input layer's group norms live during sampling, and sliders
for the number of members and the pruned fraction that re-measure the ensemble's error and cost."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..ensemble import scores_by_size
from ..masks import effective_weights
from ..methods import sse
from ..plots.sse import ensemble_by_size, member_pixels, pixel_norms
from ..structure import neuron_groups, widths
from .shared import TrainingMonitor, View, ensemble_sliders, redraw, table_html

SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.96, 0.98)


def input_norms(model: torch.nn.Module) -> np.ndarray:
    """The L2 norm of each input pixel's outgoing weights (the first layer's columns), (inputs,)."""
    first = neuron_groups(model)[0]
    with torch.no_grad():
        return first.norms(effective_weights(model)).numpy()


class PixelNormMonitor(TrainingMonitor):
    """A training callback that redraws the first layer's column norms as a 28×28 map every `every` steps;
    `history` keeps, per redraw, the step and how many pixels' norms are below `small` (on their way out)."""

    def __init__(self, every: int = 40, small: float = 1e-2):
        super().__init__(every)
        self.small = float(small)
        self.history: list[dict] = []
        self.figure = go.FigureWidget(pixel_norms(np.ones(784), "input pixels' group norms: not started"))

    def update(self, model: torch.nn.Module, step: int) -> None:
        norms = input_norms(model)
        below = int((norms < self.small).sum())
        self.history.append({"step": step, "below": below})
        redraw(self.figure, pixel_norms(norms, f"step {step}: {below} of {len(norms)} pixels' norms below "
                                               f"{self.small:g}"))


class EnsembleExplorer(View):
    """Sliders for the number of members m and the fraction of weights pruned from each sample of `chain` (by the
    global magnitude threshold, *without* retraining): each move re-measures the ensemble of the first m members —
    error and NLL against the one dense model, parameters and FLOPs in multiples of it — and redraws each
    member's surviving pixels. Drive it headless: `explorer.sparsity.value = 0.96; explorer.members.value = 2`."""

    def __init__(self, chain, model: torch.nn.Module, data, dense: torch.nn.Module, dense_error: float,
                 sparsity: float = 0.9):
        self.states, self.model, self.data, self.dense = list(chain), model, data, dense
        if not self.states:
            raise ValueError("chain is empty: sample at least one member")
        self.dense_error = dense_error
        self.members, self.sparsity = ensemble_sliders(len(self.states), SPARSITIES, sparsity)
        self.cache: dict[float, dict] = {}
        self.status = W.HTML()
        measured = self.measure()
        self.figure = go.FigureWidget(ensemble_by_size(measured["errors"], dense_error, self.members.value))
        self.pixels = go.FigureWidget(member_pixels(measured["pixels"]))
        for slider in (self.members, self.sparsity):
            slider.observe(self.update, names="value")
        self.update()

    def measure(self) -> dict:
        sparsity = self.sparsity.value
        if sparsity not in self.cache:
            pruned = [sse.prune(sse.model_with(self.model, s), sparsity=sparsity) for s in self.states]
            probs = sse.member_predictions([p.masked() for p in pruned], self.data.x_test)
            small = [p.compact() for p in pruned]
            first = neuron_groups(self.model)[0]
            pixels = [(~first.removed(p.masks)).numpy().astype(float) for p in pruned]
            scores = scores_by_size(probs, self.data.y_test)
            self.cache[sparsity] = {"scores": scores, "small": small, "pixels": pixels,
                                    "errors": [s["error"] for s in scores]}
        return self.cache[sparsity]

    def update(self, *_):
        measured, m = self.measure(), self.members.value
        redraw(self.figure, ensemble_by_size(measured["errors"], self.dense_error, m))
        redraw(self.pixels, member_pixels(measured["pixels"]))
        cost = sse.ensemble_cost_multiples(measured["small"][:m], self.dense, self.data.x_test[:1])
        score = measured["scores"][m - 1]
        self.error = score["error"]
        self.status.value = (f"<b>{m} members pruned to {self.sparsity.value:.0%}, not retrained</b>: test error "
                             f"{score['error']:.2f}% (one dense model {self.dense_error:.2f}%), NLL {score['nll']:.3f}"
                             + table_html([{"params ×": cost["params ×"], "FLOPs ×": cost["FLOPs ×"],
                                            "first member's widths": "-".join(map(str, widths(measured['small'][0])))}],
                                          {"params ×": "{:.2f}", "FLOPs ×": "{:.2f}"}))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.members, self.sparsity]), self.status, self.figure, self.pixels])
