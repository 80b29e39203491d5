"""The L0 lesson's views: the hard-concrete distribution under two sliders, a live view of the gates during
training, and a λ slider over the cached sweep."""

from __future__ import annotations

import copy

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..methods import l0
from ..plots.l0 import BINS, gate_training, hard_concrete, sweep_front
from ..plots.shared import pixel_map
from .shared import TrainingMonitor, View, redraw, scale_slider


def hard_concrete_arrays(log_alpha: float, beta: float, draws: np.ndarray) -> dict:
    """What `hard_concrete` draws, as arrays: the analytic density on (0, 1) and the point masses at 0 and 1, and
    the draws as a density histogram of their continuous part (area = their fraction inside (0, 1)) and their
    fractions at exactly 0 and 1."""
    z = np.linspace(1e-4, 1 - 1e-4, 400)
    at0, at1 = (float(v) for v in l0.point_masses(log_alpha, beta))
    edges = np.linspace(0, 1, BINS + 1)
    inside = draws[(draws > 0) & (draws < 1)]
    counts, _ = np.histogram(inside, bins=edges)
    return {"z": z, "density": l0.density(z, log_alpha, beta).numpy(), "masses": (at0, at1),
            "centres": (edges[:-1] + edges[1:]) / 2, "histogram": counts / (len(draws) * (edges[1] - edges[0])),
            "drawn_masses": (float(np.mean(draws == 0)), float(np.mean(draws == 1))),
            "p_nonzero": float(l0.prob_nonzero(log_alpha, beta)), "test_gate": float(l0.test_gates(log_alpha))}


class HardConcreteExplorer(View):
    """Sliders for log α and β redraw the hard-concrete density, its point masses at 0 and 1 and P(z ≠ 0), beside
    a histogram of `draws` samples drawn in the kernel by `methods.l0.sample_gates` (seeded: the same picture on a
    rerun). Drive it headless: `explorer.log_alpha.value = -1.0; explorer.figure.data[1].y`."""

    def __init__(self, log_alpha: float = 0.0, beta: float = l0.BETA, draws: int = 20_000, seed: int = 0):
        if draws < 100:
            raise ValueError(f"draws must be at least 100 for a histogram, got {draws}")
        self.draws, self.seed = draws, seed
        self.log_alpha = W.FloatSlider(value=log_alpha, min=-4.0, max=4.0, step=0.1, description="log α",
                                       continuous_update=False)
        self.beta = W.FloatSlider(value=beta, min=0.05, max=1.5, step=0.05, description="β",
                                  continuous_update=False)
        self.figure = go.FigureWidget(hard_concrete(self.arrays()))
        for slider in (self.log_alpha, self.beta):
            slider.observe(self.update, names="value")

    def arrays(self) -> dict:
        log_alpha = torch.full((self.draws,), self.log_alpha.value, dtype=torch.float64)
        z = l0.sample_gates(log_alpha, self.beta.value, generator=torch.Generator().manual_seed(self.seed))
        return hard_concrete_arrays(self.log_alpha.value, self.beta.value, z.numpy())

    def update(self, *_):
        redraw(self.figure, hard_concrete(self.arrays()))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.log_alpha, self.beta]), self.figure])


class GateMonitor(TrainingMonitor):
    """A training callback that draws the L0 gates every `every` steps: the expected fraction of units kept per
    layer, and (for an MLP with input gates) each pixel's P(z ≠ 0). `history` keeps the curves.

    model: the network being trained, or the network before `l0.l0` gates a copy of it (the monitor then learns
    which units will carry gates from a gated copy of its own)."""

    def __init__(self, model: torch.nn.Module, every: int = 20):
        super().__init__(every)
        if not l0.l0_gates(model):
            model = copy.deepcopy(model)
            l0.attach_l0(model, n_train=1)
        self.sizes = {g.groups.name: g.n for g in l0.l0_gates(model).values()}
        self.steps: list[int] = []
        self.history: dict[str, list[float]] = {name: [] for name in self.sizes}
        self.figure = go.FigureWidget(gate_training([], self.history, self.sizes, self._pixels(model)))

    @staticmethod
    def _pixels(model: torch.nn.Module) -> np.ndarray | None:
        gate = next((g for g in l0.l0_gates(model).values() if g.groups.name.endswith(".inputs") and g.n == 784), None)
        return None if gate is None else gate.prob_nonzero().detach().numpy()

    def update(self, model: torch.nn.Module, step: int) -> None:
        self.steps.append(step)
        for name, value in l0.expected_active(model).items():
            self.history[name].append(value)
        with self.figure.batch_update():
            for trace, name in zip(self.figure.data, self.history, strict=False):
                trace.x, trace.y = self.steps, [v / self.sizes[name] for v in self.history[name]]
            pixels = self._pixels(model)
            if pixels is not None:
                self.figure.data[-1].z = pixels.reshape(28, 28)[::-1]

class L0SweepExplorer(View):
    """A λ slider over the cached sweep (`experiments.l0_sweep`): the chosen run on the error-vs-FLOPs front, the
    units it keeps and the input pixels it still reads. Drive it headless: `explorer.scale.value = 2.0`."""

    def __init__(self, sweep: dict, scale: float | None = None):
        self.sweep = sweep
        self.scale = scale_slider([p["scale"] for p in sweep["points"]], scale)
        self.status = W.HTML()
        self.front = go.FigureWidget(sweep_front(sweep["points"], sweep["dense"], self.scale.value))
        self.pixels = go.FigureWidget(pixel_map(np.ones(784)))
        self.scale.observe(self.update, names="value")
        self.update()

    def point(self) -> dict:
        return next(p for p in self.sweep["points"] if p["scale"] == self.scale.value)

    def update(self, *_):
        p, dense = self.point(), self.sweep["dense"]
        with self.front.batch_update():
            self.front.data[-1].x, self.front.data[-1].y = [p["flops_compact"] / 1e6], [p["error"]]
        fresh = pixel_map(np.array([c == "1" for c in p["pixels"]]), title="input pixels still read")
        with self.pixels.batch_update():
            self.pixels.data[0].z = fresh.data[0].z
            self.pixels.layout.title.text = fresh.layout.title.text
        lam = ", ".join(f"{k} {v:g}" for k, v in p["lam"].items())
        self.status.value = (f"<b>λ</b>: {lam}<br><b>kept</b>: {'-'.join(map(str, p['sizes']))} · error "
                             f"{p['error']:.1f}% (dense {dense['error']:.1f}%) · {p['flops_compact'] / 1e6:.3f} "
                             f"MFLOPs, {dense['flops'] / p['flops_compact']:.1f}× fewer than dense")

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.scale, self.status, W.HBox([self.front, self.pixels])])
