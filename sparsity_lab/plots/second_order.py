"""Figures for second-order pruning (OBD, OBS, Kron): a 2-D quadratic bowl with each criterion's choice,
predicted vs actual loss increases, and pruning curves."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .shared import COLOURS, style


def quadratic_bowl(h: np.ndarray, theta_star: np.ndarray, zeroed: np.ndarray, moved: np.ndarray,
                   removed: dict[str, int], span: float = 2.0) -> go.Figure:
    """Contours of L(θ) = ½·(θ − θ*)ᵀ·H·(θ − θ*) over the plane of two weights, with θ*, the axes where one
    weight is 0, and for each weight q: `zeroed[q]` (θ* with θ_q set to 0, what magnitude and OBD do) and
    `moved[q]` (OBS's point, the other weight moved to make up). h (2, 2), theta_star (2,), zeroed and moved
    (2, 2). removed: criterion → the weight it removes (0 or 1), listed in the title."""
    h, theta_star = np.asarray(h, float), np.asarray(theta_star, float)
    grid = np.linspace(-span, span, 121)
    t1, t2 = np.meshgrid(grid, grid)
    d = np.stack([t1 - theta_star[0], t2 - theta_star[1]])
    loss = 0.5 * np.einsum("i...,ij,j...->...", d, h, d)
    fig = go.Figure(go.Contour(x=grid, y=grid, z=np.log10(loss + 1e-3), colorscale="Blues",
                               reversescale=True, showscale=False, hoverinfo="skip", name="log₁₀ L"))
    for axis in ("x", "y"):
        fig.add_shape(type="line", line=dict(color="black", width=1, dash="dot"),
                      **({"x0": -span, "x1": span, "y0": 0, "y1": 0} if axis == "x" else
                         {"x0": 0, "x1": 0, "y0": -span, "y1": span}))
    fig.add_trace(go.Scatter(x=[theta_star[0]], y=[theta_star[1]], mode="markers", name="θ* (trained)",
                             marker=dict(symbol="star", size=16, color="black")))
    for q in (0, 1):
        label = f"remove w{q + 1}"
        fig.add_trace(go.Scatter(x=[theta_star[0], zeroed[q][0]], y=[theta_star[1], zeroed[q][1]],
                                 mode="lines+markers", line=dict(color=COLOURS["OBD"], dash="dash"),
                                 marker=dict(size=[0, 10], symbol="circle"), name=f"{label}: zero it (OBD)",
                                 legendgroup=f"q{q}"))
        fig.add_trace(go.Scatter(x=[theta_star[0], moved[q][0]], y=[theta_star[1], moved[q][1]],
                                 mode="lines+markers", line=dict(color=COLOURS["OBS"]),
                                 marker=dict(size=[0, 12], symbol="diamond"), name=f"{label}: OBS move",
                                 legendgroup=f"q{q}"))
    title = " · ".join(f"{name} removes w{q + 1}" for name, q in removed.items())
    return style(fig, top=40, title=title, xaxis_title="w1", yaxis_title="w2", height=430, width=560,
                 xaxis=dict(range=[-span, span]), yaxis=dict(range=[-span, span], scaleanchor="x"),
                 legend=dict(font=dict(size=10)))


def predicted_vs_actual(records: dict[str, tuple[np.ndarray, np.ndarray]]) -> go.Figure:
    """One scatter per criterion: predicted loss increase (x) against the measured one (y), and y = x.
    records: name → (predicted, actual), two sequences of the same length."""
    fig = go.Figure()
    values = np.concatenate([np.concatenate([np.asarray(p), np.asarray(a)]) for p, a in records.values()])
    low, high = float(values.min()), float(values.max())
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", line=dict(color="grey", dash="dash"),
                             name="predicted = actual"))
    for name, (predicted, actual) in records.items():
        fig.add_trace(go.Scatter(x=np.asarray(predicted), y=np.asarray(actual), mode="markers", name=name,
                                 marker=dict(size=5, opacity=0.6, color=COLOURS.get(name))))
    return style(fig, xaxis_title="predicted ΔL (training loss)", yaxis_title="actual ΔL", height=400)


def pruning_curves(curves: dict[str, tuple[list[float], list[float]]], dense_error: float,
                   title: str = "one-shot pruning, no retraining") -> go.Figure:
    """Test error (%) against sparsity, one line per criterion; the dense network's error as a dotted line.
    curves: name → (sparsities, errors)."""
    fig = go.Figure()
    for name, (sparsities, errors) in curves.items():
        fig.add_trace(go.Scatter(x=list(sparsities), y=list(errors), mode="lines+markers", name=name,
                                 line=dict(color=COLOURS.get(name))))
    fig.add_hline(y=dense_error, line=dict(color="black", dash="dot"), annotation_text="dense")
    return style(fig, top=40, title=title, xaxis_title="sparsity (fraction of weights removed)",
                 yaxis_title="test error (%)", height=380)
