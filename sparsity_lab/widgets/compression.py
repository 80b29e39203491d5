"""Views of compression beyond pruning: a slider over the number of shared values k (a layer's weights and centroids,
error and kilobytes against k), and a temperature slider over a teacher's soft targets.

    clusters = ClusterExplorer(sweep, kept, current=64); clusters        # sweep: k → error, KB, ratio, centroids
    clusters.k.value = 8; clusters.histogram.data[1].x                   # or drive it headless
    TemperatureExplorer(teacher_logits, labels, images).temperature.value = 4
"""

from __future__ import annotations

import math

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from ..plots.compression import cluster_curve, digit_image, entropy_bits, shared_histogram, soft_target_bars, softmax
from .shared import View, redraw

RESULT_KEYS = ("error", "KB", "ratio", "centroids")


def _array(values) -> np.ndarray:
    """A numpy float64 copy of an array or a (CPU or GPU, grad or not) tensor."""
    values = values.detach().cpu() if hasattr(values, "detach") else values
    return np.asarray(values, dtype=np.float64)


class ClusterExplorer(View):
    """Weight sharing at every k of `results` (precomputed by the lesson: k → {"error" (%), "KB", "ratio",
    "centroids": {layer: (k,) array}}), over `weights` (layer → 1-D array of its kept weights). The `k` slider and
    the `layer` dropdown redraw the layer's histogram with that k's centroids (`histogram`: trace 0 the bars,
    trace 1 the centroid lines) and mark k on the error and size curves (`curve`: traces 2 and 3); `status` reads
    "k = 16: error 6.5%, 24.1 KB (44×)". `current`: the k shown first (default the largest)."""

    def __init__(self, results: dict, weights: dict, current: int | None = None):
        if not results:
            raise ValueError("results is empty: give one entry per k")
        if not weights:
            raise ValueError("weights is empty: give each layer's kept weights")
        for k, r in results.items():
            lacking = [key for key in RESULT_KEYS if key not in r]
            if lacking:
                raise ValueError(f"results[{k!r}] lacks {lacking}: each k needs {list(RESULT_KEYS)}")
            missing = [name for name in weights if name not in r["centroids"]]
            if missing:
                raise ValueError(f"results[{k!r}]['centroids'] has no layer {missing[0]!r}")
        ks = sorted(results)
        current = ks[-1] if current is None else current
        if current not in results:
            raise ValueError(f"current must be one of the ks of results {ks}, got {current!r}")
        self.results = results
        self.weights = {name: _array(w).ravel() for name, w in weights.items()}
        self.k = W.SelectionSlider(options=ks, value=current, description="k", continuous_update=False)
        self.layer = W.Dropdown(options=list(self.weights), description="layer")
        self.status = W.HTML()
        self.histogram = go.FigureWidget(self._histogram())
        self.curve = go.FigureWidget(cluster_curve(self._rows(), current))
        self.k.observe(self.update, names="value")
        self.layer.observe(self._redraw_histogram, names="value")
        self._status()

    def _rows(self) -> list[dict]:
        return [{"k": k, "error": r["error"], "KB": r["KB"]} for k, r in self.results.items()]

    def _histogram(self) -> go.Figure:
        name, k = self.layer.value, self.k.value
        return shared_histogram(self.weights[name], _array(self.results[k]["centroids"][name]),
                                title=f"{name}: {len(self.weights[name]):,} kept weights and the {k} centroids")

    def _redraw_histogram(self, *_) -> None:
        redraw(self.histogram, self._histogram())

    def _status(self) -> None:
        r = self.results[self.k.value]
        self.status.value = f"k = {self.k.value}: error {r['error']:.1f}%, {r['KB']:.1f} KB ({r['ratio']:.0f}×)"

    def update(self, *_) -> None:
        """Redraw both figures and the status for the slider's k and the dropdown's layer."""
        self._redraw_histogram()
        redraw(self.curve, cluster_curve(self._rows(), self.k.value))
        self._status()

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.k, self.layer]), self.status, self.histogram, self.curve])


class TemperatureExplorer(View):
    """A teacher's soft targets softmax(z / T) for one of a few examples (`logits` (N, C), an array or tensor) at
    the chosen temperature, beside T = 1 (`figure`: trace 0 at T = 1, trace 1 at T); `status` gives their entropy
    in bits and the mass off the top class. `labels`: each example's true class, for the title; `images`: each
    example's square image ((N, side, side), (N, 1, side, side) or (N, side·side)), shown in `image` (None without
    images). Controls: `example` (an index) and `temperature` (one of `temperatures`; `current` first, default 4
    if offered, else the middle one)."""

    def __init__(self, logits, labels=None, images=None, temperatures=(1, 2, 4, 8, 16, 20),
                 current: float | None = None):
        self.logits = _array(logits)
        if self.logits.ndim != 2 or not len(self.logits) or self.logits.shape[1] < 2:
            raise ValueError(f"logits must be (examples, classes) with at least one example and two classes, got "
                             f"shape {self.logits.shape}")
        n = len(self.logits)
        if labels is not None and len(labels) != n:
            raise ValueError(f"labels must have one entry per example ({n}), got {len(labels)}")
        images = None if images is None else _array(images)
        if images is not None and len(images) != n:
            raise ValueError(f"images must have one image per example ({n}), got {len(images)}")
        if images is not None and math.isqrt(images[0].size) ** 2 != images[0].size:
            raise ValueError(f"images must be square (side² pixels each), got shape {images.shape}")
        temperatures = list(temperatures)
        if not temperatures or any(isinstance(t, bool) or not isinstance(t, int | float) or not t > 0
                                   for t in temperatures):
            raise ValueError(f"temperatures must be positive numbers, got {temperatures!r}")
        current = (4 if 4 in temperatures else temperatures[len(temperatures) // 2]) if current is None else current
        if current not in temperatures:
            raise ValueError(f"current must be one of temperatures {temperatures}, got {current!r}")
        self.labels = None if labels is None else labels.tolist() if hasattr(labels, "tolist") else list(labels)
        self.images = images
        self.example = W.IntSlider(value=0, min=0, max=n - 1, description="example", continuous_update=False)
        self.temperature = W.SelectionSlider(options=[(f"{t:g}", t) for t in temperatures], value=current,
                                             description="T", continuous_update=False)
        self.status = W.HTML()
        self.figure = go.FigureWidget(self._figure())
        self.image = None if self.images is None else go.FigureWidget(self._image())
        self.example.observe(self.update, names="value")
        self.temperature.observe(self.update, names="value")
        self._status()

    def soft(self) -> np.ndarray:
        """The chosen example's soft targets at the chosen temperature."""
        return softmax(self.logits[self.example.value], self.temperature.value)

    def _label(self) -> str:
        return "" if self.labels is None else f" (a {self.labels[self.example.value]})"

    def _figure(self) -> go.Figure:
        return soft_target_bars({"T = 1 (the plain softmax)": softmax(self.logits[self.example.value]),
                                 f"T = {self.temperature.value:g}": self.soft()},
                                title=f"the teacher's soft targets for example {self.example.value}{self._label()}")

    def _image(self) -> go.Figure:
        return digit_image(self.images[self.example.value], title=f"example {self.example.value}{self._label()}")

    def _status(self) -> None:
        p = self.soft()
        self.status.value = (f"T = {self.temperature.value:g}: entropy {float(entropy_bits(p)):.2f} bits, "
                             f"{1 - p.max():.1%} of the mass off the top class")

    def update(self, *_) -> None:
        """Redraw the bars (their names too: the second carries T), the image and the status."""
        fresh = self._figure()
        with self.figure.batch_update():
            for old, new in zip(self.figure.data, fresh.data, strict=True):
                old.update(y=new.y, name=new.name)
            self.figure.layout.title.text = fresh.layout.title.text
        if self.image is not None:
            redraw(self.image, self._image())
        self._status()

    @property
    def widget(self) -> W.Widget:
        figures = [self.figure] if self.image is None else [self.image, self.figure]
        return W.VBox([W.HBox([self.example, self.temperature]), self.status, W.HBox(figures)])
