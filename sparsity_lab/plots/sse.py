"""Figures for the Sparse Structured Ensembles lesson: the input layer's group norms during sampling, each member's
surviving pixels, and the ensemble's error as members are added."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .shared import COLOURS, MASK_SCALE, _image_axes, json_safe, style, tile


def pixel_norms(norms: np.ndarray, title: str = "") -> go.Figure:
    """The L2 norm of each input pixel's outgoing weights as a 28×28 map, log10 scale."""
    z = np.log10(np.maximum(np.asarray(norms, dtype=float), 1e-6)).reshape(28, 28)[::-1]
    fig = go.Figure(go.Heatmap(z=z, zmin=-4, zmax=0.5, colorscale="Viridis", colorbar=dict(title="log10 ‖θ_g‖"),
                               hovertemplate="log10 norm %{z:.2f}<extra></extra>"))
    _image_axes(fig)
    return style(fig, top=40, title=title, height=330, width=400)


def member_pixels(keeps: list[np.ndarray], columns: int = 6) -> go.Figure:
    """Each member's surviving input pixels (keeps: (784,) 0/1 per member) side by side, and how many members read
    each pixel (the last panel)."""
    maps = np.stack([np.asarray(k, dtype=float).reshape(28, 28) for k in keeps])
    shared = maps.mean(0, keepdims=True)
    tiles = tile(np.concatenate([maps, shared]), columns=min(columns, len(maps) + 1))[::-1]
    fig = go.Figure(go.Heatmap(z=json_safe(tiles), zmin=0, zmax=1, colorscale=MASK_SCALE, showscale=False,
                               hovertemplate="kept=%{z:.2f}<extra></extra>"))
    _image_axes(fig)
    return style(fig, top=40, height=260, plot_bgcolor="white",
                 title="each member's surviving input pixels; last: the fraction of members that read each pixel")


def ensemble_by_size(errors: list[float], dense_error: float, chosen: int) -> go.Figure:
    """Test error of the ensemble of the first m members against m, the single dense model (dashed) and the
    chosen m ringed (the last trace)."""
    m = np.arange(1, len(errors) + 1)
    fig = go.Figure([go.Scatter(x=m, y=errors, mode="lines+markers", name="ensemble of the first m members",
                                marker=dict(color=COLOURS["SGLD"], size=9)),
                     go.Scatter(x=[m[0], m[-1]], y=[dense_error] * 2, mode="lines", name="one dense SGD model",
                                line=dict(color=COLOURS["SGD"], dash="dash")),
                     go.Scatter(x=[chosen], y=[errors[chosen - 1]], mode="markers", name="chosen m", showlegend=False,
                                marker=dict(size=20, symbol="circle-open", line=dict(width=3), color="black"))])
    return style(fig, top=40, title="test error against the number of members", xaxis_title="members m",
                 yaxis_title="test error %", height=330, legend=dict(orientation="h", y=-0.3))
