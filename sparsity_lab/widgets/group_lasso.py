"""The group-lasso lesson's views: a proximal-step explorer, a live conv-filter grid, and a λ slider over a sweep."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..masks import effective_weights
from ..methods.group_lasso import group_soft_threshold, soft_threshold
from ..plots.group_lasso import pareto, prox_2d, prox_3d
from ..plots.shared import filter_grid, filter_grid_arrays, pixel_map
from ..train import TrainState
from .shared import View, scale_slider


class ProxExplorer(View):
    """Move the threshold t = η·λ of one proximal step and watch where the point lands, in 2-D and 3-D.

    Drive it headless: `explorer.t.value = 0.8; explorer.figure2d.data[3].x`."""

    def __init__(self, point2=(1.0, 0.45), point3=(0.55, 0.3, 0.7), t: float = 0.3):
        self.point2 = torch.tensor(point2, dtype=torch.float64)
        self.point3 = torch.tensor(point3, dtype=torch.float64)
        self.t = W.FloatSlider(value=t, min=0.0, max=1.2, step=0.02, description="t = η·λ", readout_format=".2f")
        self.status = W.HTML()
        self.figure2d = go.FigureWidget(prox_2d(*self._arrays_2d(t), t))
        self.figure3d = go.FigureWidget(prox_3d(self.point3.numpy(), *self._points_3d(t)))
        self.t.observe(self.update, names="value")
        self.update()

    def _arrays_2d(self, t: float):
        ts = np.linspace(0.0, t, 60)
        lasso = np.stack([soft_threshold(self.point2, float(s)).numpy() for s in ts])
        group = np.stack([group_soft_threshold(self.point2, float(s)).numpy() for s in ts])
        return self.point2.numpy(), lasso, group

    def _points_3d(self, t: float):
        lasso = soft_threshold(self.point3, t)
        group = torch.cat([group_soft_threshold(self.point3[:2], t), soft_threshold(self.point3[2:], t)])
        return lasso.numpy(), group.numpy()

    def update(self, *_):
        t = self.t.value
        fresh2, fresh3 = prox_2d(*self._arrays_2d(t), t), prox_3d(self.point3.numpy(), *self._points_3d(t))
        with self.figure2d.batch_update():
            for old, new in zip(self.figure2d.data, fresh2.data, strict=True):
                old.x, old.y = new.x, new.y
        with self.figure3d.batch_update():
            for old, new in zip(self.figure3d.data, fresh3.data, strict=True):
                old.x, old.y, old.z = new.x, new.y, new.z
        lasso, group = self._points_3d(t)
        self.status.value = (f"3-D, t = {t:.2f}: lasso prox = ({', '.join(f'{v:.2f}' for v in lasso)}) · "
                             f"group prox = ({', '.join(f'{v:.2f}' for v in group)})")

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.t, self.figure2d, self.status, self.figure3d])


class FilterGridMonitor(View):
    """A live grid of one conv layer's filters: pass `monitor` as a training callback; every `every` steps it
    redraws the filters and greys out those that are exactly zero. Input channel 0 of each filter is shown."""

    def __init__(self, model: torch.nn.Module, layer: str = "conv1", every: int = 10, columns: int = 10):
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.layer, self.every, self.columns = f"{layer}.weight", every, columns
        self.figure = go.FigureWidget(filter_grid(*self._arrays(model), columns=columns, title=layer))
        self.title = layer
        self.updates = 0

    def _arrays(self, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            w = effective_weights(model)[self.layer].detach().cpu()
        return w[:, 0].numpy(), (w.flatten(1) != 0).any(1).numpy()

    def update(self, model: torch.nn.Module) -> None:
        filters, alive = self._arrays(model)
        kept, removed, bound = filter_grid_arrays(filters, alive, self.columns)
        with self.figure.batch_update():
            self.figure.data[0].z = removed
            self.figure.data[1].z = kept
            self.figure.data[1].zmin, self.figure.data[1].zmax = -bound, bound
            self.figure.layout.title.text = f"{self.title}: {int(alive.sum())} of {len(alive)} kept"
        self.updates += 1

    def __call__(self, state: TrainState) -> None:
        if state.step % self.every == 0 or state.end_of_epoch:
            self.update(state.model)

    @property
    def widget(self) -> W.Widget:
        return self.figure


class SweepExplorer(View):
    """A λ slider over a precomputed `mlp_sweep`: the chosen point on the error-vs-FLOPs front, the neurons it
    keeps, and the input pixels that survive. Drive it headless: `explorer.scale.value = 2.0`."""

    def __init__(self, sweep: dict, scale: float | None = None):
        self.sweep = sweep
        self.scale = scale_slider([p["scale"] for p in sweep["points"]], scale or None)
        self.status = W.HTML()
        self.front = go.FigureWidget(pareto(sweep["points"], sweep["dense"], self.scale.value))
        self.pixels = go.FigureWidget(pixel_map(np.ones(784)))
        self.scale.observe(self.update, names="value")
        self.update()

    def _point(self, method: str) -> dict:
        return next(p for p in self.sweep["points"] if p["method"] == method and p["scale"] == self.scale.value)

    def update(self, *_):
        ssl, l1 = self._point("group lasso (neurons)"), self._point("L1 (weights)")
        dense = self.sweep["dense"]
        with self.front.batch_update():
            self.front.data[-1].x = [ssl["flops_compact"] / 1e6, l1["flops_compact"] / 1e6]
            self.front.data[-1].y = [ssl["error"], l1["error"]]
        fresh = pixel_map(np.array([c == "1" for c in ssl["pixels"]]))
        with self.pixels.batch_update():
            self.pixels.data[0].z = fresh.data[0].z
            self.pixels.layout.title.text = fresh.layout.title.text
        rows = [("dense", dense), ("group lasso", ssl), ("L1, same sparsity", l1)]
        self.status.value = "<br>".join(
            f"<b>{name}</b>: {'-'.join(map(str, r['sizes']))} neurons · error {r['error']:.1f}% · sparsity "
            f"{r['sparsity']:.0%} · compact MFLOPs {r['flops_compact'] / 1e6:.3f} "
            f"({dense['flops_compact'] / r['flops_compact']:.1f}× fewer)" for name, r in rows)

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.scale, self.status, W.HBox([self.front, self.pixels])])
