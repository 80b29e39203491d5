"""The sparse-variational-dropout lesson's views: a live histogram of log α during training, and a threshold slider
that redraws the masks and re-measures the test error."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..methods import vdrop
from ..plots.shared import filter_grid, filter_grid_arrays, receptive_fields
from ..plots.vdrop import histogram_counts, log_alpha_histogram
from ..train import evaluate
from .shared import TrainingMonitor, View, redraw, table_html


def _layer(name: str) -> str:
    return name.removesuffix(".weight")


class LogAlphaMonitor(TrainingMonitor):
    """A training callback that redraws the histogram of every layer's log α each `every` steps; `history` keeps,
    per redraw, the step and the fraction of each layer's weights at or above the threshold (removed)."""

    def __init__(self, every: int = 50, threshold: float = vdrop.THRESHOLD):
        super().__init__(every)
        self.threshold = vdrop.check_threshold(threshold)
        self.history: list[dict] = []
        self.figure = go.FigureWidget(log_alpha_histogram({}, self.threshold, "log α: not started"))

    def update(self, model: torch.nn.Module, step: int) -> None:
        alphas = {_layer(k): v.reshape(-1).numpy() for k, v in vdrop.log_alphas(model).items()}
        removed = {name: float((a >= self.threshold).mean()) for name, a in alphas.items()}
        self.history.append({"step": step, **removed})
        redraw(self.figure, log_alpha_histogram({n: histogram_counts(a) for n, a in alphas.items()}, self.threshold,
                                                f"log α after {step} steps; removed: " +
                                                ", ".join(f"{n} {r:.0%}" for n, r in removed.items())))

class ThresholdExplorer(View):
    """A slider for the test-time threshold on log α of a trained `sparse_vd` network: each move sets it
    (`vdrop.set_threshold`), redraws the first layer's masks — an MLP's receptive fields or a conv's filters — and
    re-measures the test error and each layer's sparsity. Drive it headless: `explorer.threshold.value = 0.0`."""

    def __init__(self, model: torch.nn.Module, data, threshold: float = vdrop.THRESHOLD):
        self.model, self.data = model, data
        self.first = next(iter(vdrop.vd_gates(model)))
        self.threshold = W.FloatSlider(value=threshold, min=-8.0, max=8.0, step=0.5, description="threshold",
                                       continuous_update=False, readout_format=".1f")
        self.status = W.HTML()
        self.conv = model.get_submodule(_layer(self.first)).weight.dim() == 4
        self.figure = go.FigureWidget(self._figure())
        self.threshold.observe(self.update, names="value")
        self.update()

    def _first_weights(self) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            return self.model.get_submodule(_layer(self.first)).weight.detach().numpy()

    def _figure(self) -> go.Figure:
        w = self._first_weights()
        if self.conv:
            return filter_grid(w[:, 0], np.abs(w).reshape(len(w), -1).max(1) > 0, title=_layer(self.first))
        return receptive_fields((w != 0).astype(float), n_units=24, side=self._side(w))

    @staticmethod
    def _side(w: np.ndarray) -> int:
        side = int(round(w.shape[1] ** 0.5))
        if side * side != w.shape[1]:
            raise ValueError(f"the first layer reads {w.shape[1]} inputs: not a square image to draw")
        return side

    def rows(self) -> list[dict]:
        masks = {name: g.keep() for name, g in vdrop.vd_gates(self.model).items()}
        return [{"layer": _layer(n), "weights": m.numel(), "kept": int(m.sum()),
                 "sparsity": f"{1 - m.double().mean():.1%}"} for n, m in masks.items()]

    def update(self, *_):
        vdrop.set_threshold(self.model, self.threshold.value)
        w = self._first_weights()
        with self.figure.batch_update():
            if self.conv:
                alive = np.abs(w).reshape(len(w), -1).max(1) > 0
                kept, removed, bound = filter_grid_arrays(w[:, 0], alive, 10)
                self.figure.data[0].z, self.figure.data[1].z = removed, kept
                self.figure.data[1].zmin, self.figure.data[1].zmax = -bound, bound
            else:
                fresh = receptive_fields((w != 0).astype(float), n_units=24, side=self._side(w))
                for old, new in zip(self.figure.data, fresh.data, strict=True):
                    old.z = new.z
        self.error = evaluate(self.model, self.data)["error"]
        self.status.value = (f"<b>threshold {self.threshold.value:g}</b> (α ≈ {np.exp(self.threshold.value):.3g}): "
                             f"test error {self.error:.2f}%" + table_html(self.rows()))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.threshold, self.status, self.figure])
