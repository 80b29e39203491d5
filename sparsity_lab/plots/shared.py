"""Figures for pruning: first-layer receptive fields, the pixels a network still reads, speed-up vs FLOP cut."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def tile(fields: np.ndarray, columns: int = 8, gap: float = np.nan) -> np.ndarray:
    """Arrange (n, h, w) images in a grid with a one-pixel gap: returns (rows·(h+1)−1, columns·(w+1)−1).
    Gap pixels are NaN; pass the result through `json_safe` before it goes to a browser."""
    n, h, w = fields.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), gap)
    for k in range(n):
        r, c = divmod(k, columns)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = fields[k]
    return out


def json_safe(z: np.ndarray) -> list:
    """Nested lists with None where z is NaN: plotly draws None as a gap, and JSON has no NaN."""
    return np.where(np.isnan(z), None, z).tolist()


def receptive_fields(mask: np.ndarray, n_units: int = 24, side: int = 28, columns: int = 6) -> go.Figure:
    """Left: the first-layer mask of `n_units` neurons, each as a side×side image (1 = weight kept).
    Right: the input pixels that any neuron still reads. mask: (units, side·side) of 0/1."""
    mask = np.asarray(mask, dtype=float)
    fields = mask[:n_units].reshape(-1, side, side)
    read = mask.max(0).reshape(side, side)
    fig = make_subplots(1, 2, column_widths=[0.68, 0.32], horizontal_spacing=0.04,
                        subplot_titles=(f"layer-1 masks of the first {n_units} neurons", "pixels still read"))
    scale = [[0, "#f2f2f2"], [1, "#1f4e96"]]
    tiles = json_safe(tile(fields, columns)[::-1])
    fig.add_trace(go.Heatmap(z=tiles, zmin=0, zmax=1, colorscale=scale, showscale=False,
                             hovertemplate="kept=%{z}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=read[::-1], zmin=0, zmax=1, colorscale=scale, showscale=False,
                             hovertemplate="read=%{z}<extra></extra>"), 1, 2)
    for axis in ("xaxis", "yaxis", "xaxis2", "yaxis2"):
        fig.layout[axis].update(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), plot_bgcolor="white")
    return fig


def speedup_vs_flops(records: list[dict]) -> go.Figure:
    """Measured speed-up against FLOP reduction, one marker series per `variant` (records need `variant`,
    `flop_ratio`, `speedup`). The dashed diagonal is 'speed-up = FLOP cut', what an ideal kernel would give."""
    fig = go.Figure()
    top = max([1.0, *(r["flop_ratio"] for r in records), *(r["speedup"] for r in records)])
    fig.add_trace(go.Scatter(x=[1, top], y=[1, top], mode="lines", line=dict(dash="dash", color="grey"),
                             name="speed-up = FLOP cut"))
    for variant in dict.fromkeys(r["variant"] for r in records):
        rows = [r for r in records if r["variant"] == variant]
        fig.add_trace(go.Scatter(x=[r["flop_ratio"] for r in rows], y=[r["speedup"] for r in rows],
                                 mode="markers+lines", name=variant,
                                 text=[f"sparsity {r.get('sparsity', '')}" for r in rows]))
    fig.update_layout(xaxis_title="FLOP reduction (×)", yaxis_title="measured speed-up (×)", height=380,
                      xaxis_type="log", yaxis_type="log", margin=dict(l=10, r=10, t=30, b=10))
    return fig
