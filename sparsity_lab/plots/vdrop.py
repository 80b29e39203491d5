"""Figures for the sparse-variational-dropout lesson: the KL approximation against the integrated KL, and histograms
of log α (per layer, counts computed in the kernel so a live update sends a few numbers, not every weight)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, style

EDGES = np.linspace(-8, 8, 65)   # log α is clipped to [−8, 8]


def kl_curve(log_alpha: np.ndarray, approx: np.ndarray, integrated: np.ndarray) -> go.Figure:
    """The paper's fit of KL(q‖p) and the KL by numerical integration (left axis), and their difference (right)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=log_alpha, y=integrated, mode="markers", name="numerical integration",
                             marker=dict(size=7, color="black")), secondary_y=False)
    fig.add_trace(go.Scatter(x=log_alpha, y=approx, mode="lines", name="kl_approx (k1, k2, k3)",
                             line=dict(color=COLOURS["kept"], width=3)), secondary_y=False)
    fig.add_trace(go.Scatter(x=log_alpha, y=approx - integrated, mode="lines", name="difference (right axis)",
                             line=dict(color=COLOURS["OBS"], dash="dot")), secondary_y=True)
    fig.update_yaxes(title_text="KL(q‖p) per weight", secondary_y=False)
    fig.update_yaxes(title_text="difference", range=[-0.02, 0.02], secondary_y=True)
    return style(fig, top=40, title="the KL of one weight against log α", xaxis_title="log α", height=340,
                 legend=dict(orientation="h", y=-0.3))


def histogram_counts(values: np.ndarray) -> np.ndarray:
    """The fraction of `values` in each of the 64 bins of `EDGES` (values at the clip land in the end bins)."""
    counts, _ = np.histogram(np.clip(np.asarray(values, dtype=float), -8, 8), bins=EDGES)
    return counts / max(1, len(values))


def log_alpha_histogram(fractions: dict[str, np.ndarray], threshold: float, title: str = "") -> go.Figure:
    """One bar histogram of log α per layer (fractions from `histogram_counts`, log scale), and the threshold."""
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    fig = go.Figure([go.Bar(x=centres, y=f, name=name, opacity=0.6, width=EDGES[1] - EDGES[0])
                     for name, f in fractions.items()])
    fig.add_vline(x=threshold, line=dict(color="black", dash="dash"), annotation_text=f"threshold {threshold:g}")
    return style(fig, top=40, title=title, barmode="overlay", xaxis_title="log α", yaxis_title="fraction of weights",
                 yaxis_type="log", yaxis_range=[-5, 0], height=320, legend=dict(orientation="h", y=-0.3))
