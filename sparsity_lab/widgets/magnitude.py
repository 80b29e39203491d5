"""The lesson-00 explorer: a sparsity slider and a weights/neurons toggle that prune a trained MLP live."""

from __future__ import annotations

import copy

import ipywidgets as W
import plotly.graph_objects as go
import torch

from .. import cost
from ..masks import apply_masks, effective_weights
from ..methods.magnitude import magnitude_prune
from ..plots.shared import receptive_fields
from ..train import evaluate
from .shared import View, table_html

UNITS = {"weights (unstructured)": "weight", "neurons (structured)": "neuron"}


class PruningExplorer(View):
    """Prune a trained MLP by magnitude as the slider moves; redraw its layer-1 masks, accuracy and costs
    (`cost.variants` on x_bench when `measure`).

    Drive it headless: `explorer.sparsity.value = 0.9; explorer.figure.data[0].z`."""

    def __init__(self, model: torch.nn.Module, data, x_bench: torch.Tensor, sparsity: float = 0.9,
                 threads: int = 1, measure: bool = True):
        self.model, self.data, self.x_bench, self.threads, self.measure = model, data, x_bench, threads, measure
        self.masked = copy.deepcopy(model)
        self.sparsity = W.FloatSlider(value=sparsity, min=0.0, max=0.99, step=0.01, description="sparsity",
                                      continuous_update=False, readout_format=".2f")
        self.unit = W.ToggleButtons(options=list(UNITS), description="remove", style={"button_width": "auto"})
        self.status = W.HTML()
        self.table = W.HTML()
        self.figure = go.FigureWidget(receptive_fields(torch.ones(300, 784).numpy()))
        self.sparsity.observe(self.update, names="value")
        self.unit.observe(self.update, names="value")
        self.update()

    def update(self, *_):
        unit = UNITS[self.unit.value]
        apply_masks(self.masked, magnitude_prune(self.model, self.sparsity.value, unit).masks)
        mask = (effective_weights(self.masked)["layers.0.weight"] != 0).float().numpy()
        fresh = receptive_fields(mask)
        with self.figure.batch_update():
            self.figure.data[0].z = fresh.data[0].z
            self.figure.data[1].z = fresh.data[1].z
        accuracy = evaluate(self.masked, self.data)["accuracy"]
        report = cost.flops(self.masked, self.x_bench[:1])
        self.status.value = (f"<b>test accuracy {100 * accuracy:.1f}%</b> · MACs per image: dense "
                             f"{report['dense']:,} · nonzero {report['nonzero']:,} · smallest submatrix "
                             f"{report['submatrix']:,}")
        if self.measure:
            self.table.value = table_html(cost.variants(self.masked, self.x_bench, self.threads))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.sparsity, self.unit]), self.status, self.figure, self.table])
