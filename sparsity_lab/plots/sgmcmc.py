"""Figures for stochastic-gradient MCMC (SGLD, pSGLD, SGHMC): the toy posterior with a sampler's path, step-size
bias, mixing, calibration, ensemble size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, style

if TYPE_CHECKING:
    from ..toy import Grid

MAX_POINTS = 3000  # drawn per trace; longer runs are thinned evenly for the browser's sake


def _thin(points: np.ndarray, limit: int = MAX_POINTS) -> np.ndarray:
    return points[:: max(1, len(points) // limit)]


def toy_view(grid: Grid, samples: np.ndarray | None = None, name: str = "SGLD", burn_in: int = 0) -> go.Figure:
    """Left: exact posterior contours with a chain's path (samples (T, 2)). Right: the θ2 marginal, exact (line)
    and from the samples after `burn_in` (histogram). Traces: 0 contour, 1 path, 2 exact marginal, 3 histogram."""
    fig = make_subplots(1, 2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                        subplot_titles=("exact posterior p(θ | x) and the chain", "marginal of θ2"))
    fig.add_trace(go.Contour(x=grid.theta1, y=grid.theta2, z=grid.density, showscale=False, ncontours=10,
                             contours=dict(coloring="none"), line=dict(color=COLOURS["exact"], width=1.2),
                             name="exact", hoverinfo="skip"), 1, 1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name=name, line=dict(width=0.5),
                             marker=dict(size=2.5), opacity=0.6), 1, 1)
    fig.add_trace(go.Scatter(x=grid.theta2, y=grid.marginal(1), mode="lines", name="exact marginal",
                             line=dict(color=COLOURS["exact"])), 1, 2)
    fig.add_trace(go.Histogram(x=[], histnorm="probability density", name="samples", opacity=0.6,
                               xbins=dict(start=grid.theta2[0], end=grid.theta2[-1], size=0.1)), 1, 2)
    fig.update_xaxes(title_text="θ1", range=[grid.theta1[0], grid.theta1[-1]], row=1, col=1)
    fig.update_yaxes(title_text="θ2", range=[grid.theta2[0], grid.theta2[-1]], row=1, col=1)
    fig.update_xaxes(title_text="θ2", range=[grid.theta2[0], grid.theta2[-1]], row=1, col=2)
    style(fig, top=40, height=420, showlegend=False)
    if samples is not None:
        set_toy_samples(fig, samples, name, burn_in)
    return fig


def set_toy_samples(fig: go.Figure, samples: np.ndarray, name: str, burn_in: int = 0) -> None:
    """Put a chain's samples (T, 2) into a `toy_view` figure (also a FigureWidget: updates it in place)."""
    path = _thin(np.asarray(samples))
    kept = np.asarray(samples)[burn_in:, 1]
    fig.data[1].update(x=path[:, 0], y=path[:, 1], name=name, line=dict(color=COLOURS.get(name)),
                       marker=dict(color=COLOURS.get(name)))
    fig.data[3].update(x=kept[np.isfinite(kept)], marker=dict(color=COLOURS.get(name)))


def tv_vs_step(records: Sequence[Mapping]) -> go.Figure:
    """Total variation to the exact posterior against the learning rate, one line per `label` (records need
    `label`, `lr`, `tv`). Too small a step mixes slowly, too large a step is biased (or diverges: tv = 1)."""
    fig = go.Figure()
    for label in dict.fromkeys(r["label"] for r in records):
        rows = sorted((r for r in records if r["label"] == label), key=lambda r: r["lr"])
        fig.add_trace(go.Scatter(x=[r["lr"] for r in rows], y=[r["tv"] for r in rows], mode="lines+markers",
                                 name=label))
    return style(fig, xaxis_type="log", xaxis_title="learning rate η (mean-loss units; ε = 2η/N)",
                 yaxis_title="total variation to the exact posterior", yaxis_range=[0, 1.02], height=380)


def traces(runs: Mapping[str, np.ndarray], grad_evals_per_step: Mapping[str, int]) -> go.Figure:
    """θ2 along each chain (runs: name → (T,) values) against per-point gradient evaluations: jumps between
    θ2 ≈ 1 and θ2 ≈ −1 are mode switches."""
    fig = go.Figure()
    for name, values in runs.items():
        steps = np.arange(len(values)) * grad_evals_per_step[name]
        fig.add_trace(go.Scatter(x=_thin(steps), y=_thin(np.asarray(values)), mode="lines", name=name,
                                 line=dict(width=1, color=COLOURS.get(name))))
    return style(fig, xaxis_title="gradient evaluations (data points touched)", yaxis_title="θ2", height=340)


def reliability_diagram(bins: Mapping[str, Mapping]) -> go.Figure:
    """Accuracy against confidence per bin (from `ensemble.reliability_bins`), one series per name; the dashed
    diagonal is perfect calibration. Below it: overconfident."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"),
                             name="calibrated"))
    for name, b in bins.items():
        keep = np.asarray(b["count"]) > 0
        fig.add_trace(go.Scatter(x=np.asarray(b["confidence"])[keep], y=np.asarray(b["accuracy"])[keep],
                                 mode="lines+markers", name=name, line=dict(color=COLOURS.get(name.split()[0])),
                                 text=[f"{int(c)} points" for c in np.asarray(b["count"])[keep]]))
    return style(fig, xaxis_title="confidence (top probability)", yaxis_title="accuracy", height=380,
                 xaxis_range=[0, 1.02], yaxis_range=[0, 1.02])


def by_ensemble_size(rows: Sequence[Mapping], baseline: Mapping | None = None,
                     metrics: Sequence[str] = ("nll", "ece", "error")) -> go.Figure:
    """Each metric against the number of averaged members (rows from `ensemble.scores_by_size`), with the single
    SGD model as a dashed line when `baseline` (a `scores` dict) is given."""
    titles = {"nll": "NLL (nats)", "ece": "ECE", "error": "test error (%)"}
    fig = make_subplots(1, len(metrics), subplot_titles=[titles.get(m, m) for m in metrics])
    for k, metric in enumerate(metrics, start=1):
        fig.add_trace(go.Scatter(x=[r["members"] for r in rows], y=[r[metric] for r in rows],
                                 mode="lines+markers", name="SGLD average", line=dict(color=COLOURS["SGLD"]),
                                 showlegend=k == 1), 1, k)
        if baseline is not None:
            fig.add_hline(y=baseline[metric], line=dict(dash="dash", color=COLOURS["SGD"]), row=1, col=k,
                          annotation_text="SGD, one model" if k == 1 else None, annotation_position="top right")
        fig.update_xaxes(title_text="members M", row=1, col=k)
    return style(fig, top=40, height=320)

