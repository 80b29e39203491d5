"""The SG-MCMC lesson's views: SGD vs SGLD on the toy posterior, live; and an ensemble-size slider for BMA on MNIST."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from .. import ensemble, toy
from ..plots.sgmcmc import reliability_diagram, set_toy_samples, toy_view
from .shared import View, table_html

SAMPLERS = {"SGD (no noise)": "sgd", "SGLD": "sgld", "pSGLD": "psgld", "SGHMC": "sghmc"}  # button → toy method
NAMES = {"sgd": "SGD", "sgld": "SGLD", "psgld": "pSGLD", "sghmc": "SGHMC"}


class ToySampler(View):
    """SGD, SGLD, pSGLD or SGHMC on the Welling & Teh toy posterior: step size, schedule, minibatch size, length,
    and pSGLD's RMS memory α (0.999 by default: 0.99, the package's and RMSprop's default, follows the chain closely
    enough that the dropped Γ(θ) term widens the samples, see pSGLD).

    The chain (path and θ2 histogram) redraws over the exact posterior when a control changes; results are
    cached by their settings. Drive it headless: `view.lr.value = 2.0; view.figure.data[1].x`."""

    def __init__(self, x: torch.Tensor, grid: toy.Grid, lr: float = 0.1, steps: int = 2000, batch_size: int = 10,
                 alpha: float = 0.999, seed: int = 0):
        self.x, self.grid, self.seed = x, grid, seed
        self.coarse = grid.coarsen(8) if all(n % 8 == 0 for n in grid.density.shape) else grid  # for the TV
        self.cache: dict[tuple, toy.ToyRun] = {}
        self.method = W.ToggleButtons(options=list(SAMPLERS), value="SGLD", description="method")
        self.lr = W.FloatLogSlider(value=lr, base=10, min=-3, max=1.3, step=0.1, description="step η",
                                   continuous_update=False, readout_format=".3f")
        self.schedule = W.ToggleButtons(options=["constant", "decaying"], description="schedule")
        self.batch_size = W.SelectionSlider(options=[1, 2, 5, 10, 20, 50, 100], value=batch_size,
                                            description="minibatch", continuous_update=False)
        self.steps = W.SelectionSlider(options=[500, 1000, 2000, 5000, 10000], value=steps, description="steps",
                                       continuous_update=False)
        self.alpha = W.ToggleButtons(options=[0.99, 0.999, 0.9999], value=alpha, description="pSGLD α")
        self.status = W.HTML()
        self.figure = go.FigureWidget(toy_view(grid))
        for control in self.controls:
            control.observe(self.update, names="value")
        self.update()

    @property
    def controls(self) -> list[W.ValueWidget]:
        return [self.method, self.lr, self.schedule, self.batch_size, self.steps, self.alpha]

    def settings(self) -> tuple:
        method = SAMPLERS[self.method.value]
        return (method, self.lr.value, self.schedule.value, self.batch_size.value, self.steps.value,
                self.alpha.value if method == "psgld" else None)

    def run(self) -> toy.ToyRun:
        """The chain for the current settings (computed once per distinct setting)."""
        key = self.settings()
        if key not in self.cache:
            method, lr, schedule, batch_size, steps, alpha = key
            options = {} if alpha is None else {"alpha": alpha}
            self.cache[key] = toy.run_chains(self.x, method, lr=lr, steps=steps, batch_size=batch_size,
                                             schedule=schedule, seed=self.seed, **options)
        return self.cache[key]

    def update(self, *_) -> None:
        result = self.run()
        samples = result.samples[:, 0]
        burn_in = len(samples) // 10
        with self.figure.batch_update():
            set_toy_samples(self.figure, samples, NAMES[self.settings()[0]], burn_in)
        if result.diverged_at is not None:
            self.status.value = (f"<b style='color:#d62728'>diverged at step {result.diverged_at}</b>: the step "
                                 "is too large for the curvature of the posterior. Try a smaller η.")
            return
        kept = samples[burn_in:]
        self.status.value = (f"after {burn_in} burn-in steps: {100 * np.mean(kept[:, 1] < 0):.0f}% of the "
                             f"samples in the θ2 &lt; 0 mode · total variation to the exact posterior "
                             f"{toy.total_variation(kept, self.coarse):.2f}")

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.method, self.schedule, self.alpha]),
                       W.HBox([self.lr, self.batch_size, self.steps]), self.status, self.figure])


class EnsembleSize(View):
    """Average the first M sampled networks: reliability diagram and scores of that ensemble beside one SGD
    model. member_probs (K, N, C) softmax outputs of the samples, single_probs (N, C), y (N,).

    Drive it headless: `view.members.value = 5; view.figure.data[2].y`."""

    def __init__(self, member_probs: torch.Tensor, single_probs: torch.Tensor, y: torch.Tensor, n_bins: int = 15):
        self.member_probs, self.single_probs, self.y, self.n_bins = member_probs, single_probs, y, n_bins
        self.single = ensemble.scores(single_probs, y, n_bins)
        self.members = W.IntSlider(value=len(member_probs), min=1, max=len(member_probs), description="members M",
                                   continuous_update=False)
        self.status = W.HTML()
        self.figure = go.FigureWidget(reliability_diagram({
            "SGD, one model": ensemble.reliability_bins(single_probs, y, n_bins),
            "SGLD average": ensemble.reliability_bins(member_probs.mean(0), y, n_bins)}))
        self.members.observe(self.update, names="value")
        self.update()

    def update(self, *_) -> None:
        m = self.members.value
        probs = ensemble.average_predictions(self.member_probs[:m])
        bins = ensemble.reliability_bins(probs, self.y, self.n_bins)
        keep = (bins["count"] > 0).numpy()
        with self.figure.batch_update():
            self.figure.data[2].update(x=bins["confidence"].numpy()[keep], y=bins["accuracy"].numpy()[keep],
                                       name=f"SGLD average of {m}")
        averaged = ensemble.scores(probs, self.y, self.n_bins)
        rows = [{"": name, "test error": s["error"], "NLL": s["nll"], "ECE": s["ece"]}
                for name, s in (("SGD, one model", self.single), (f"SGLD, average of {m}", averaged))]
        self.status.value = table_html(rows, {"test error": "{:.2f}%", "NLL": "{:.3f}", "ECE": "{:.3f}"})

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.members, self.status, self.figure])
