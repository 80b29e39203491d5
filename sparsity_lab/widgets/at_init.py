"""Lesson 09's explorer of masks chosen before training (lottery tickets, SNIP, GraSP, random): pick a method and
a sparsity, and see which input pixels the first layer's neurons still read and how each method spreads its
budget over the layers."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..plots.at_init import layer_densities
from ..plots.shared import receptive_fields
from .shared import View, redraw


def _labels(grid: list[float]) -> list[str]:
    """Percentages with as many decimals (1 to 4) as it takes to tell the grid's values apart."""
    for digits in range(1, 5):
        labels = [f"{s:.{digits}%}" for s in grid]
        if len(set(labels)) == len(labels):
            break
    return labels


def _checked(masks: dict, sparsities: list[float], side: int, layer: str) -> dict[str, list[dict]]:
    """The masks as bool tensors (nonzero = kept), after checking that they fit together; else ValueError."""
    if not masks:
        raise ValueError("masks is empty: give at least one method")
    if not sparsities or len(set(sparsities)) != len(sparsities):
        raise ValueError(f"sparsities must be distinct and not empty, got {list(sparsities)}")
    first = next(iter(masks.values()))
    shapes = {n: tuple(m.shape) for n, m in (first[0] if len(first) else {}).items()}
    for method, per_sparsity in masks.items():
        if len(per_sparsity) != len(sparsities):
            raise ValueError(f"{method!r} has {len(per_sparsity)} mask dicts for {len(sparsities)} sparsities")
        for s, found in zip(sparsities, per_sparsity, strict=True):
            got = {n: tuple(m.shape) for n, m in found.items()}
            if list(got) != list(shapes):
                raise ValueError(f"{method!r} at sparsity {s} has layers {list(got)}, expected {list(shapes)}")
            if got != shapes:
                bad = next(n for n in shapes if got[n] != shapes[n])
                raise ValueError(f"{method!r} at sparsity {s}: layer {bad!r} has shape {got[bad]}, "
                                 f"expected {shapes[bad]}")
    if any(len(shape) != 2 for shape in shapes.values()):
        raise ValueError(f"every mask must be 2-D (out, in), got shapes {shapes}")
    if layer not in shapes:
        raise ValueError(f"layer {layer!r} is not among the masks' layers {list(shapes)}")
    if shapes[layer][1] != side * side:
        raise ValueError(f"layer {layer!r} has {shapes[layer][1]} inputs, not side·side = {side * side}")
    return {method: [{n: torch.as_tensor(m).detach().cpu() != 0 for n, m in found.items()} for found in per_sparsity]
            for method, per_sparsity in masks.items()}


class SparseStartExplorer(View):
    """Choose a method and a sparsity: the first layer's kept weights of the first `n_units` hidden neurons, each
    as a side×side picture, with the input pixels any neuron still reads (`figure`); the percentage of each
    layer's weights every method keeps at that sparsity (`densities`); and the counts (`status`).

    masks: method → one dict per sparsity, masks[method][k] the masks (layer name → bool (out, in)) at
    sparsities[k]. `sparsity` starts the slider at the nearest grid value. After an update, `pixels_read` and
    `dead_units` hold the status's two counts. Drive it headless:
    `explorer.method.value = "SNIP"; explorer.sparsity.value = 0.9; explorer.figure.data[0].z`."""

    def __init__(self, masks: dict[str, list[dict[str, torch.Tensor]]], sparsities: list[float], side: int = 28,
                 layer: str = "layers.0.weight", sparsity: float = 0.9, n_units: int = 24, columns: int = 6):
        self.grid = [float(s) for s in sparsities]
        self.masks = _checked(masks, self.grid, side, layer)
        self.side, self.layer, self.columns = side, layer, columns
        shapes = {n: tuple(m.shape) for n, m in self.masks[next(iter(self.masks))][0].items()}
        labels = [f"{i}→{o}" for o, i in shapes.values()]
        unique = len(set(labels)) == len(labels)  # else name them too: plotly merges equal categories
        self.layers = labels if unique else [f"{n} {x}" for n, x in zip(shapes, labels, strict=True)]
        self.n_units = min(n_units, shapes[layer][0])
        self.method = W.ToggleButtons(options=list(self.masks), description="method")
        order = sorted(range(len(self.grid)), key=self.grid.__getitem__)
        names = _labels(self.grid)
        nearest = min(self.grid, key=lambda s: abs(s - sparsity))
        self.sparsity = W.SelectionSlider(options=[(names[k], self.grid[k]) for k in order], value=nearest,
                                          description="sparsity", continuous_update=False)
        self.status = W.HTML()
        blank = np.ones((self.n_units, side * side))
        self.figure = go.FigureWidget(receptive_fields(blank, self.n_units, side, columns))
        self.densities = go.FigureWidget(self._densities())
        self.method.observe(self.update, names="value")
        self.sparsity.observe(self.update_densities, names="value")
        self.sparsity.observe(self.update, names="value")
        self.update()

    def state(self) -> dict[str, torch.Tensor]:
        """The masks (layer name → bool tensor) of the chosen method at the chosen sparsity."""
        return dict(self.masks[self.method.value][self.grid.index(self.sparsity.value)])

    def _densities(self) -> go.Figure:
        k = self.grid.index(self.sparsity.value)
        kept = {method: [float(m.float().mean()) for m in found[k].values()] for method, found in self.masks.items()}
        return layer_densities(kept, self.layers, self.sparsity.value)

    def update_densities(self, *_):
        redraw(self.densities, self._densities())

    def update(self, *_):
        state = self.state()
        first = state[self.layer]
        fresh = receptive_fields(first.double().numpy(), self.n_units, self.side, self.columns)
        with self.figure.batch_update():
            self.figure.data[0].z = fresh.data[0].z
            self.figure.data[1].z = fresh.data[1].z
        self.pixels_read = int(first.any(0).sum())
        self.dead_units = int((~first.any(1)).sum())
        kept = sum(int(m.sum()) for m in state.values()) / sum(m.numel() for m in state.values())
        layers = " · ".join(f"{label}: {int(m.sum()):,} of {m.numel():,} kept"
                            for label, m in zip(self.layers, state.values(), strict=True))
        self.status.value = (f"<b>{self.method.value} at sparsity {self.sparsity.label}: {kept:.2%} of the weights "
                             f"kept</b> · {layers}<br>{self.pixels_read:,} of {first.shape[1]:,} input pixels "
                             f"still read · {self.dead_units:,} of {first.shape[0]:,} first-layer neurons have "
                             "no inputs left")

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.method, self.sparsity]), self.status, self.figure, self.densities])
