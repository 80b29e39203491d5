"""The lesson-00 explorer: a sparsity slider and a weights/neurons toggle that prune a trained MLP live."""

from __future__ import annotations

import copy

import ipywidgets as W
import plotly.graph_objects as go
import torch

from ..compact import compact
from ..cost import compare_latency, count_parameters, flops
from ..masks import apply_masks, baked, effective_weights
from ..methods.magnitude import magnitude_prune
from ..plots.pruning import receptive_fields, tile
from ..sparse_inference import CSRMLP
from ..train import evaluate

UNITS = {"weights (unstructured)": "weight", "neurons (structured)": "neuron"}


def cost_rows(masked: torch.nn.Module, x: torch.Tensor, threads: int = 1, rounds: int = 3) -> list[dict]:
    """Params, MACs and measured latency of one masked MLP run three ways: dense with the zeros stored (masks
    baked), compacted, and as sparse CSR matrices. Speed-ups are against the first."""
    small = compact(masked)
    variants = {"masked dense": baked(masked), "compact dense": small, "sparse CSR": CSRMLP(masked)}
    counts = flops(masked, x[:1])
    params = count_parameters(masked)
    sizes = {"masked dense": (params["total"], counts["dense"]),
             "compact dense": (count_parameters(small)["total"], flops(small, x[:1])["dense"]),
             "sparse CSR": (params["nonzero"], counts["nonzero"])}
    seconds = compare_latency(variants, x, threads, rounds=rounds)
    return [{"variant": name, "params": sizes[name][0], "MACs computed": sizes[name][1],
             "latency ms": 1e3 * seconds[name], "speed-up": seconds["masked dense"] / seconds[name]}
            for name in variants]


def html_table(rows: list[dict]) -> str:
    head = "".join(f"<th style='padding:2px 10px'>{k}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 10px;text-align:right'>"
                                    f"{v:,.2f}</td>" if isinstance(v, float) else
                                    f"<td style='padding:2px 10px'>{v:,}</td>" if isinstance(v, int) else
                                    f"<td style='padding:2px 10px'>{v}</td>" for v in r.values()) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class PruningExplorer:
    """Prune a trained MLP by magnitude as the slider moves; redraw its layer-1 masks, accuracy and costs.

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
        report = flops(self.masked, self.x_bench[:1])
        self.status.value = (f"<b>test accuracy {100 * accuracy:.1f}%</b> · MACs per image: dense "
                             f"{report['dense']:,} · nonzero {report['nonzero']:,} · smallest submatrix "
                             f"{report['submatrix']:,}")
        if self.measure:
            self.table.value = html_table(cost_rows(self.masked, self.x_bench, self.threads))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.sparsity, self.unit]), self.status, self.figure, self.table])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


__all__ = ["PruningExplorer", "cost_rows", "html_table", "tile"]
