"""The structured-Bayesian-pruning lesson's views: one unit's truncated log-normal noise under two sliders, a live
view of every unit's SNR during training, and an SNR-threshold slider that redraws the surviving units and
re-measures the test error."""

from __future__ import annotations

import math

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..methods import sbp
from ..plots.sbp import noise_density, snr_profile
from ..plots.shared import filter_grid, filter_grid_arrays, pixel_map
from ..train import evaluate
from .shared import TrainingMonitor, View, redraw, table_html

BINS = 60


def noise_arrays(mu: float, sigma: float, draws: np.ndarray, threshold: float = sbp.SNR_THRESHOLD,
                 a: float = sbp.A, b: float = sbp.B) -> dict:
    """What `plots.sbp.noise_density` draws: the closed-form density of log θ and of θ, the prior, E[θ], √Var[θ],
    the SNR and the KL, and the draws of log θ as a density histogram."""
    x = np.linspace(a, b, 600)
    density = sbp.log_theta_density(x, mu, sigma, a, b).numpy()
    theta = np.linspace(math.exp(a), math.exp(b), 600)
    theta_density = sbp.log_theta_density(np.log(theta), mu, sigma, a, b).numpy() / theta
    edges = np.linspace(a, b, BINS + 1)
    counts, _ = np.histogram(draws, bins=edges)
    mean = float(sbp.truncated_lognormal_mean(mu, sigma, a, b))
    return {"x": x, "density": np.maximum(density, 1e-12), "bounds": [a, b], "prior": 1 / (b - a),
            "centres": (edges[:-1] + edges[1:]) / 2, "width": edges[1] - edges[0],
            "histogram": np.maximum(counts / (len(draws) * (edges[1] - edges[0])), 1e-12),
            "theta": theta, "theta_density": theta_density, "mean": mean,
            "sd": float(sbp.truncated_lognormal_variance(mu, sigma, a, b).sqrt()),
            "snr": float(sbp.snr(mu, sigma, a, b)), "kl": float(sbp.kl_log_uniform(mu, sigma, a, b)),
            "threshold": threshold}


class NoiseExplorer(View):
    """Sliders for μ and log σ of one unit's noise redraw the density of log θ (beside the prior and `draws` samples
    from `methods.sbp.sample_log_theta`, seeded) and of θ, and report E[θ], √Var[θ], the SNR and the KL.
    Drive it headless: `explorer.mu.value = -3.0; explorer.figure.layout.title.text`."""

    def __init__(self, mu: float = 0.0, log_sigma: float = -1.0, draws: int = 20_000, seed: int = 0):
        if draws < 100:
            raise ValueError(f"draws must be at least 100 for a histogram, got {draws}")
        self.draws, self.seed = draws, seed
        self.mu = W.FloatSlider(value=mu, min=-25.0, max=5.0, step=0.5, description="μ", continuous_update=False)
        self.log_sigma = W.FloatSlider(value=log_sigma, min=-5.0, max=3.0, step=0.25, description="log σ",
                                       continuous_update=False)
        self.figure = go.FigureWidget(noise_density(self.arrays()))
        for slider in (self.mu, self.log_sigma):
            slider.observe(self.update, names="value")

    def arrays(self) -> dict:
        mu, sigma = self.mu.value, math.exp(self.log_sigma.value)
        draws = sbp.sample_log_theta(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64),
                                     (self.draws,), generator=torch.Generator().manual_seed(self.seed))
        return noise_arrays(mu, sigma, draws.numpy())

    def update(self, *_):
        redraw(self.figure, noise_density(self.arrays()))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([W.HBox([self.mu, self.log_sigma]), self.figure])


class SNRMonitor(TrainingMonitor):
    """A training callback that redraws every layer's units sorted by SNR each `every` steps; `history` keeps, per
    redraw, the step and the number of units of each layer above the threshold (kept)."""

    def __init__(self, every: int = 40, threshold: float = sbp.SNR_THRESHOLD):
        super().__init__(every)
        self.threshold = sbp.check_snr_threshold(threshold)
        self.history: list[dict] = []
        self.figure = go.FigureWidget(snr_profile({}, self.threshold, "SNR per unit: not started"))

    def update(self, model: torch.nn.Module, step: int) -> None:
        values = {name: v.numpy() for name, v in sbp.unit_snr(model).items()}
        kept = {name: int((v > self.threshold).sum()) for name, v in values.items()}
        self.history.append({"step": step, **kept})
        redraw(self.figure, snr_profile(values, self.threshold, f"SNR after {step} steps; kept: " +
                                        ", ".join(f"{n} {k}/{len(values[n])}" for n, k in kept.items())))


class SNRThresholdExplorer(View):
    """A slider for the test-time SNR threshold of a trained `sbp` network: each move sets it
    (`methods.sbp.set_snr_threshold`), redraws the first units — an MLP's input pixels, a conv net's conv1
    filters — and re-measures the test error and the units kept per layer. Drive it headless:
    `explorer.threshold.value = 3.0`."""

    def __init__(self, model: torch.nn.Module, data, threshold: float = sbp.SNR_THRESHOLD):
        self.model, self.data = model, data
        self.noise = sbp.sbp_noise(model)
        if not self.noise:
            raise ValueError(f"{type(model).__name__} has no SBP noise: train it with methods.sbp.sbp")
        self.first = next(iter(self.noise))
        self.conv = self.first.endswith(".maps")
        self.threshold = W.FloatLogSlider(value=threshold, base=10, min=-1, max=2, step=0.05,
                                          description="SNR >", continuous_update=False, readout_format=".2f")
        self.status = W.HTML()
        self.figure = go.FigureWidget(self._figure())
        self.threshold.observe(self.update, names="value")
        self.update()

    def _first_keep(self) -> np.ndarray:
        return self.noise[self.first].keep().numpy()

    def _conv1(self) -> np.ndarray:
        layer = self.first.rpartition(".")[0]
        return self.model.get_submodule(layer).weight.detach()[:, 0].numpy()

    def _figure(self) -> go.Figure:
        if self.conv:
            return filter_grid(self._conv1(), self._first_keep(), title=self.first.removesuffix(".maps"))
        return pixel_map(self._first_keep().astype(float), side=self._side())

    def _side(self) -> int:
        side = math.isqrt(self.noise[self.first].n)
        if side * side != self.noise[self.first].n:
            raise ValueError(f"the network reads {self.noise[self.first].n} inputs: not a square image to draw")
        return side

    def rows(self) -> list[dict]:
        return [{"units": name, "total": noise.n, "kept": int(noise.keep().sum()),
                 "removed": f"{1 - float(noise.keep().double().mean()):.1%}"} for name, noise in self.noise.items()]

    def update(self, *_):
        sbp.set_snr_threshold(self.model, self.threshold.value)
        keep = self._first_keep()
        with self.figure.batch_update():
            if self.conv:
                kept, removed, bound = filter_grid_arrays(self._conv1(), keep, 10)
                self.figure.data[0].z, self.figure.data[1].z = removed, kept
                self.figure.data[1].zmin, self.figure.data[1].zmax = -bound, bound
                name = self.first.removesuffix(".maps")
                self.figure.layout.title.text = f"{name}: {int(keep.sum())} of {len(keep)} kept"
            else:
                fresh = pixel_map(keep.astype(float), side=self._side())
                self.figure.data[0].z = fresh.data[0].z
                self.figure.layout.title.text = fresh.layout.title.text
        self.error = evaluate(self.model, self.data)["error"]
        self.status.value = (f"<b>SNR > {self.threshold.value:.2f}</b>: test error {self.error:.2f}%"
                             + table_html(self.rows()))

    @property
    def widget(self) -> W.Widget:
        return W.VBox([self.threshold, self.status, self.figure])
