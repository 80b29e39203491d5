"""Second-order pruning views (lesson 01): a two-weight quadratic bowl where magnitude, OBD and OBS choose, and an
explorer of pruning paths (criterion × sparsity → layer-1 masks and test error)."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..methods.base import PruningPath, pruned_copy
from ..methods.obs import two_weight_problem, two_weight_removals
from ..plots.second_order import quadratic_bowl
from ..plots.shared import receptive_fields
from ..train import evaluate
from .shared import View, redraw, table_html


class QuadraticBowlExplorer(View):
    """Two weights and an exactly quadratic loss: move the Hessian's correlation, the curvature ratio and θ*₂,
    and see which weight magnitude, OBD and OBS remove, what zeroing it costs, and where OBS's move lands
    (computed by `obs.two_weight_removals`).

    Drive it headless: `bowl.correlation.value = 0.9; bowl.figure.layout.title.text`."""

    def __init__(self, correlation: float = 0.8, ratio: float = 4.0, w2: float = 0.7):
        style = dict(continuous_update=False, style={"description_width": "initial"})
        self.correlation = W.FloatSlider(value=correlation, min=-0.95, max=0.95, step=0.05,
                                         description="correlation ρ of H", **style)
        self.ratio = W.FloatLogSlider(value=ratio, base=10, min=-1, max=1, step=0.05,
                                      description="curvature ratio H₂₂/H₁₁", **style)
        self.w2 = W.FloatSlider(value=w2, min=-1.5, max=1.5, step=0.05, description="trained w2 (w1 = 1)",
                                **style)
        self.table = W.HTML()
        self.removed: dict[str, int] = {}
        self.figure = go.FigureWidget(self._figure())
        for control in (self.correlation, self.ratio, self.w2):
            control.observe(self.update, names="value")

    def _figure(self) -> go.Figure:
        h, theta = two_weight_problem(self.correlation.value, self.ratio.value, self.w2.value)
        r = two_weight_removals(h, theta)
        self.removed = r["removed"]
        columns = {"value": theta, "OBD saliency ½H_qqθ_q²": r["obd"], "true ΔL, zeroed": r["loss_zeroed"],
                   "OBS saliency θ_q²/2[H⁻¹]_qq": r["obs"], "true ΔL after OBS move": r["loss_moved"]}
        self.table.value = table_html({"weight": ["w1", "w2"], **{c: v.numpy() for c, v in columns.items()}},
                                      {c: "{:.3f}" for c in columns} | {"value": "{:+.2f}"})
        return quadratic_bowl(h.numpy(), theta.numpy(), r["zeroed"].numpy(), r["moved"].numpy(), self.removed)

    def update(self, *_):
        redraw(self.figure, self._figure())

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.correlation, self.ratio, self.w2]), self.figure, self.table])


class SaliencyExplorer(View):
    """Choose a criterion and a sparsity: the first layer's surviving weights of (the first `n_units`) hidden
    neurons, each drawn as a side×side map, and the test error of the network pruned that way, read from
    precomputed pruning paths.

    paths: criterion → PruningPath (all over the same sparsities); test: (x, y). Drive it headless:
    `explorer.sparsity.value = 0.9; explorer.figure.data[0].z`."""

    def __init__(self, model: torch.nn.Module, paths: dict[str, PruningPath], test, side: int = 14,
                 sparsity: float = 0.9, layer: str = "layers.0.weight", columns: int = 8, n_units: int = 32):
        grids = {tuple(p.sparsities) for p in paths.values()}
        if len(grids) != 1:
            raise ValueError("every path must cover the same sparsities, got " + ", ".join(map(str, grids)))
        self.model, self.paths, self.test, self.side, self.layer = model, paths, test, side, layer
        self.grid = list(next(iter(grids)))
        self.columns, self.n_units = columns, min(n_units, model.get_parameter(layer).shape[0])
        self.criterion = W.ToggleButtons(options=list(paths), description="criterion")
        nearest = min(self.grid, key=lambda s: abs(s - sparsity))
        self.sparsity = W.SelectionSlider(options=[(f"{s:.2f}", s) for s in self.grid], value=nearest,
                                          description="sparsity", continuous_update=False)
        self.status = W.HTML()
        blank = np.ones((self.n_units, side * side))
        self.figure = go.FigureWidget(receptive_fields(blank, self.n_units, side, columns))
        self.criterion.observe(self.update, names="value")
        self.sparsity.observe(self.update, names="value")
        self.update()

    def state(self) -> dict[str, torch.Tensor]:
        """The weights of the current criterion at the current sparsity."""
        return self.paths[self.criterion.value].states[self.grid.index(self.sparsity.value)]

    def update(self, *_):
        state = self.state()
        mask = (state[self.layer] != 0).double().numpy()
        fresh = receptive_fields(mask, self.n_units, self.side, self.columns)
        with self.figure.batch_update():
            self.figure.data[0].z = fresh.data[0].z
            self.figure.data[1].z = fresh.data[1].z
        error = evaluate(pruned_copy(self.model, state), self.test)["error"]
        kept = {n: int((w != 0).sum()) for n, w in state.items()}
        layers = " · ".join(f"{n.removesuffix('.weight')}: {k:,} of {state[n].numel():,} kept"
                            for n, k in kept.items())
        self.status.value = (f"<b>{self.criterion.value} at sparsity {self.sparsity.value:.2f}: test error "
                             f"{error:.1f}%</b> (no retraining) · {layers}")

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.criterion, self.sparsity]), self.status, self.figure])
