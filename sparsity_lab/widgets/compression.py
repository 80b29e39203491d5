"""Views of compression beyond pruning: a slider over the number of shared values k (a layer's weights and centroids,
error and kilobytes against k), and a temperature slider over a teacher's soft targets.

    clusters = ClusterExplorer(sweep, kept, current=64); clusters        # sweep: k → error, KB, ratio, centroids
    clusters.k.value = 8; clusters.histogram.data[1].x                   # or drive it headless
    TemperatureExplorer(teacher_logits, labels).temperature.value = 4
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from ..plots.compression import cluster_curve, shared_histogram, soft_target_bars, softmax
from .shared import View, redraw


class ClusterExplorer(View):
    """Weight sharing at every k of `results` (precomputed by the lesson: k → {"error", "KB", "ratio", "centroids":
    {layer: (k,) array}}), over `weights` (layer → 1-D array of its kept weights). The `k` slider and the `layer`
    dropdown redraw the layer's histogram with that k's centroids (`histogram`) and mark k on the error and size
    curves (`curve`); `status` reads the numbers."""

    def __init__(self, results: dict, weights: dict, current: int | None = None):
        if not results:
            raise ValueError("results is empty: give one entry per k")
        if not weights:
            raise ValueError("weights is empty: give each layer's kept weights")
        missing = [(k, name) for k, r in results.items() for name in weights if name not in r["centroids"]]
        if missing:
            raise ValueError(f"results[{missing[0][0]}]['centroids'] has no layer {missing[0][1]!r}")
        ks = sorted(results)
        current = ks[-1] if current is None else current
        if current not in results:
            raise ValueError(f"current must be one of the ks of results {ks}, got {current!r}")
        self.results, self.weights = results, {n: np.asarray(w) for n, w in weights.items()}
        self.k = W.SelectionSlider(options=ks, value=current, description="k", continuous_update=False)
        self.layer = W.Dropdown(options=list(self.weights), description="layer")
        self.status = W.HTML()
        self.histogram = go.FigureWidget(self._histogram())
        self.curve = go.FigureWidget(cluster_curve(self._rows(), current))
        self.k.observe(self.update, names="value")
        self.layer.observe(self.update, names="value")
        self._status()

    def _rows(self) -> list[dict]:
        return [{"k": k, "error": r["error"], "KB": r["KB"]} for k, r in self.results.items()]

    def _histogram(self) -> go.Figure:
        name = self.layer.value
        return shared_histogram(self.weights[name], self.results[self.k.value]["centroids"][name],
                                title=f"{name}: kept weights and the {self.k.value} centroids")

    def _status(self) -> None:
        r = self.results[self.k.value]
        self.status.value = f"k = {self.k.value}: error {r['error']:.1f}%, {r['KB']:.1f} KB ({r['ratio']:.0f}×)"

    def update(self, *_) -> None:
        redraw(self.histogram, self._histogram())
        redraw(self.curve, cluster_curve(self._rows(), self.k.value))
        self._status()

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.k, self.layer]), self.status, self.histogram, self.curve])


class TemperatureExplorer(View):
    """A teacher's soft targets softmax(z / T) for one of a few examples (`logits` (N, C)) at the chosen temperature,
    beside T = 1 (`figure`); `status` gives their entropy and the mass off the top class. `labels`: the true class of
    each example, for the title."""

    def __init__(self, logits, labels=None, temperatures=(1, 2, 4, 8, 16, 20)):
        self.logits = np.asarray(logits, dtype=np.float64)
        if self.logits.ndim != 2 or not len(self.logits):
            raise ValueError(f"logits must be (examples, classes) with at least one example, got shape "
                             f"{self.logits.shape}")
        if labels is not None and len(labels) != len(self.logits):
            raise ValueError(f"labels must have one entry per example ({len(self.logits)}), got {len(labels)}")
        if not temperatures or any(not t > 0 for t in temperatures):
            raise ValueError(f"temperatures must be positive numbers, got {temperatures!r}")
        self.labels = labels
        self.example = W.IntSlider(value=0, min=0, max=len(self.logits) - 1, description="example",
                                   continuous_update=False)
        self.temperature = W.SelectionSlider(options=list(temperatures), value=temperatures[min(2, len(temperatures)
                                                                                                 - 1)],
                                             description="T", continuous_update=False)
        self.status = W.HTML()
        self.figure = go.FigureWidget(self._figure())
        self.example.observe(self.update, names="value")
        self.temperature.observe(self.update, names="value")
        self._status()

    def soft(self) -> np.ndarray:
        """The chosen example's soft targets at the chosen temperature."""
        return softmax(self.logits[self.example.value], self.temperature.value)

    def _figure(self) -> go.Figure:
        label = "" if self.labels is None else f" (a {self.labels[self.example.value]})"
        return soft_target_bars({"T = 1 (the plain softmax)": softmax(self.logits[self.example.value]),
                                 f"T = {self.temperature.value:g}": self.soft()},
                                title=f"the teacher's soft targets for example {self.example.value}{label}")

    def _status(self) -> None:
        p = self.soft()
        entropy = float(-(p * np.log2(np.clip(p, 1e-300, None))).sum())
        self.status.value = (f"T = {self.temperature.value:g}: entropy {entropy:.2f} bits, "
                             f"{1 - p.max():.1%} of the mass off the top class")

    def update(self, *_) -> None:
        fresh = self._figure()
        with self.figure.batch_update():
            for old, new in zip(self.figure.data, fresh.data, strict=True):
                old.update(y=new.y, name=new.name)
            self.figure.layout.title.text = fresh.layout.title.text
        self._status()

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.example, self.temperature]), self.status, self.figure])
