"""Figures for the structured-Bayesian-pruning lesson: the truncated log-normal noise of one unit (its density in
log θ and in θ, beside the prior and a histogram of draws), the SNR of every unit during training, and the units
that survive."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, style


def noise_density(arrays: dict) -> go.Figure:
    """Left: the density of log θ (line), the truncated log-uniform prior (dashed) and a histogram of draws (bars).
    Right: the density of θ = e^(log θ) on (0, 1], with E[θ] and E[θ] ± √Var[θ] marked. arrays: from
    `widgets.sbp.noise_arrays`."""
    fig = make_subplots(1, 2, horizontal_spacing=0.12, subplot_titles=("log θ", "θ"))
    fig.add_trace(go.Bar(x=arrays["centres"], y=arrays["histogram"], width=arrays["width"], name="draws (histogram)",
                         marker_color="#c6d4ea"), 1, 1)
    fig.add_trace(go.Scatter(x=arrays["x"], y=arrays["density"], mode="lines", name="q(log θ)",
                             line=dict(color=COLOURS["kept"], width=3)), 1, 1)
    fig.add_trace(go.Scatter(x=arrays["bounds"], y=[arrays["prior"]] * 2, mode="lines", name="prior (log-uniform)",
                             line=dict(color="black", dash="dash")), 1, 1)
    fig.add_trace(go.Scatter(x=arrays["theta"], y=arrays["theta_density"], mode="lines", name="q(θ)",
                             line=dict(color=COLOURS["kept"], width=3), showlegend=False), 1, 2)
    mean, sd = arrays["mean"], arrays["sd"]
    fig.add_trace(go.Scatter(x=[max(mean - sd, 0), min(mean + sd, arrays["theta"][-1])], y=[0, 0],
                             mode="lines+markers", name="E[θ] ± √Var[θ]", line=dict(color=COLOURS["OBS"], width=6),
                             marker=dict(size=[0, 0])), 1, 2)
    fig.add_trace(go.Scatter(x=[mean], y=[0], mode="markers", name="E[θ]",
                             marker=dict(size=14, symbol="diamond", color=COLOURS["OBS"])), 1, 2)
    fig.update_yaxes(type="log", title_text="density", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    verdict = "kept" if arrays["snr"] > arrays["threshold"] else "removed"
    title = (f"E[θ] = {mean:.3g} · √Var[θ] = {sd:.3g} · SNR = {arrays['snr']:.3g} ({verdict} at SNR > "
             f"{arrays['threshold']:g}) · KL = {arrays['kl']:.3g} nats")
    return style(fig, top=60, title=title, height=360, legend=dict(orientation="h", y=-0.25))


def snr_profile(snr: dict[str, np.ndarray], threshold: float, title: str = "") -> go.Figure:
    """Each layer's units sorted by SNR, highest first, against the fraction of the layer (log SNR axis), and the
    threshold: where a curve crosses it is the fraction of that layer kept."""
    fig = go.Figure()
    for name, values in snr.items():
        values = np.sort(np.asarray(values, dtype=float))[::-1]
        fig.add_trace(go.Scatter(x=(np.arange(len(values)) + 0.5) / max(len(values), 1), y=values, mode="lines",
                                 name=f"{name} ({len(values)})"))
    fig.add_hline(y=threshold, line=dict(color="black", dash="dash"), annotation_text=f"SNR = {threshold:g}")
    return style(fig, top=40, title=title, xaxis_title="fraction of the layer's units, by SNR", yaxis_title="SNR",
                 yaxis_type="log", xaxis_range=[0, 1], height=330, legend=dict(orientation="h", y=-0.3))
