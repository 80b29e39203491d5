"""Figures for the group-lasso lesson: unit balls and proximal steps, group norms, surviving neurons, and the
error-vs-FLOPs front of structured against unstructured sparsity. (Pixel maps and conv filter grids: `shared`.)"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, style


def _ball_2d(kind: str, radius: float, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    angle = np.linspace(0, 2 * np.pi, n)
    x, y = np.cos(angle), np.sin(angle)
    if kind == "lasso":  # the L1 ball is the circle squeezed onto the diamond |x| + |y| = 1
        norm = np.abs(x) + np.abs(y)
        x, y = x / norm, y / norm
    return radius * x, radius * y


def prox_2d(point: np.ndarray, path_lasso: np.ndarray, path_group: np.ndarray, t: float) -> go.Figure:
    """Two panels: the proximal step of t·‖w‖₁ (left) and of t·‖w‖₂ with (w₁, w₂) one group (right).

    point (2,): the weights before the step; path_* (k, 2): the proximal point as t grows from 0 (the last row
    is the point at this t). The dotted curve is the penalty's ball of radius t around the origin."""
    fig = make_subplots(1, 2, subplot_titles=("lasso: lands on an axis", "group lasso: the whole group at once"),
                        horizontal_spacing=0.12)
    lim = 1.15 * max(1e-9, float(np.abs(point).max()))
    for col, (kind, path, colour) in enumerate((("lasso", path_lasso, COLOURS["lasso"]),
                                                 ("group", path_group, COLOURS["group lasso"])), start=1):
        bx, by = _ball_2d(kind, t)
        fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", line=dict(dash="dot", color=colour),
                                 name=f"{kind} ball, radius t", showlegend=False), 1, col)
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", line=dict(color=colour, width=3),
                                 name="prox path", showlegend=False), 1, col)
        fig.add_trace(go.Scatter(x=[point[0]], y=[point[1]], mode="markers", marker=dict(color="grey", size=10),
                                 name="w", showlegend=col == 1), 1, col)
        fig.add_trace(go.Scatter(x=[path[-1, 0]], y=[path[-1, 1]], mode="markers",
                                 marker=dict(color=colour, size=13, symbol="x"), name="prox(w)",
                                 showlegend=False), 1, col)
        fig.update_xaxes(range=[-lim, lim], zeroline=True, zerolinecolor="black", title="w₁", row=1, col=col)
        fig.update_yaxes(range=[-lim, lim], zeroline=True, zerolinecolor="black", title="w₂", row=1, col=col,
                         scaleanchor=f"x{'' if col == 1 else col}")
    return style(fig, top=40, height=380)


def _ball_3d(kind: str, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface of the unit ball of |w₁|+|w₂|+|w₃| (lasso) or ‖(w₁,w₂)‖+|w₃| (group lasso, two groups)."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, n), np.linspace(-np.pi / 2, np.pi / 2, n))
    x, y, z = np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)
    norm = np.abs(x) + np.abs(y) + np.abs(z) if kind == "lasso" else np.hypot(x, y) + np.abs(z)
    return x / norm, y / norm, z / norm


def prox_3d(point: np.ndarray, prox_lasso: np.ndarray, prox_group: np.ndarray) -> go.Figure:
    """Unit balls in 3-D: the lasso's octahedron and the group lasso's double cone for groups {w₁,w₂}, {w₃}, each
    with the point w (grey) and its proximal point (cross). Group prox points land on the w₃ axis (group
    {w₁,w₂} removed) or in the w₁w₂ plane (w₃ removed); lasso prox points land on any coordinate plane."""
    fig = make_subplots(1, 2, specs=[[{"type": "scene"}, {"type": "scene"}]],
                        subplot_titles=("lasso ball |w₁|+|w₂|+|w₃| ≤ 1", "group lasso ball ‖(w₁,w₂)‖+|w₃| ≤ 1"))
    for col, (kind, prox, colour) in enumerate((("lasso", prox_lasso, COLOURS["lasso"]),
                                                 ("group", prox_group, COLOURS["group lasso"])), start=1):
        x, y, z = _ball_3d(kind)
        fig.add_trace(go.Surface(x=x, y=y, z=z, opacity=0.35, showscale=False,
                                 colorscale=[[0, colour], [1, colour]], hoverinfo="skip"), 1, col)
        fig.add_trace(go.Scatter3d(x=[point[0], prox[0]], y=[point[1], prox[1]], z=[point[2], prox[2]],
                                   mode="lines+markers", line=dict(color="black", width=4),
                                   marker=dict(size=[4, 8], color=["grey", colour], symbol=["circle", "diamond"]),
                                   showlegend=False), 1, col)
    axes = dict(xaxis_title="w₁", yaxis_title="w₂", zaxis_title="w₃", aspectmode="cube",
                xaxis_range=[-1.3, 1.3], yaxis_range=[-1.3, 1.3], zaxis_range=[-1.3, 1.3])
    fig.update_layout(scene=axes, scene2=axes, height=420, margin=dict(l=0, r=0, t=40, b=0))
    return fig


def group_norms(norms: dict[str, np.ndarray], floor: float = 1e-8, tol: float | None = None) -> go.Figure:
    """Sorted group norms on a log axis, one curve per training method; exact zeros are drawn at `floor` and
    counted in the legend. `tol` draws the SSL code's threshold."""
    fig = go.Figure()
    for name, values in norms.items():
        values = np.sort(np.asarray(values, dtype=float))
        zeros = int((values == 0).sum())
        fig.add_trace(go.Scatter(y=np.maximum(values, floor), mode="lines", name=f"{name}: {zeros} exact zeros"))
    if tol is not None:
        fig.add_hline(y=tol, line=dict(dash="dash", color="grey"), annotation_text=f"threshold {tol:g}")
    return style(fig, yaxis_type="log", xaxis_title="groups, sorted by norm", yaxis_title="‖θ_g‖₂", height=340,
                 legend=dict(x=0.01, y=0.99))


def neuron_counts(ours: dict[str, list[int]], published: dict[str, list[int]],
                  layers: tuple[str, ...] = ("input", "hidden 1", "hidden 2")) -> go.Figure:
    """Surviving neurons per layer, ours (solid) beside the published ones (hatched), grouped by layer."""
    fig = go.Figure()
    for name, sizes in ours.items():
        fig.add_trace(go.Bar(x=list(layers), y=sizes[:len(layers)], name=name, text=sizes[:len(layers)]))
    for name, sizes in published.items():
        fig.add_trace(go.Bar(x=list(layers), y=sizes[:len(layers)], name=name, text=sizes[:len(layers)],
                             marker_pattern_shape="/", opacity=0.6))
    return style(fig, barmode="group", yaxis_title="neurons kept", height=340)


def pareto(points: list[dict], dense: dict, selected: float | None = None) -> go.Figure:
    """Test error against MFLOPs per image, structured (group lasso) vs unstructured (L1) at equal sparsity.

    points: records with method, scale, error, flops_compact (what a dense kernel runs after compaction) and
    flops_nonzero (what an ideal sparse kernel would run); dense: the dense model's record. The point whose
    scale equals `selected` is ringed."""
    fig = go.Figure()
    styles = {"group lasso (neurons)": COLOURS["group lasso"], "L1 (weights)": COLOURS["lasso"]}
    for method, colour in styles.items():
        rows = sorted((p for p in points if p["method"] == method), key=lambda p: p["flops_compact"])
        fig.add_trace(go.Scatter(x=[p["flops_compact"] / 1e6 for p in rows], y=[p["error"] for p in rows],
                                 mode="lines+markers", name=f"{method}: compact, dense kernel",
                                 marker=dict(color=colour, size=9), line=dict(color=colour),
                                 text=[f"λ × {p['scale']}, sparsity {p['sparsity']:.0%}" for p in rows]))
        fig.add_trace(go.Scatter(x=[p["flops_nonzero"] / 1e6 for p in rows], y=[p["error"] for p in rows],
                                 mode="markers", name=f"{method}: nonzeros only (ideal sparse kernel)",
                                 marker=dict(color=colour, size=9, symbol="circle-open")))
    fig.add_trace(go.Scatter(x=[dense["flops_compact"] / 1e6], y=[dense["error"]], mode="markers", name="dense",
                             marker=dict(color="black", size=13, symbol="star")))
    chosen = [p for p in points if selected is not None and p["scale"] == selected]
    fig.add_trace(go.Scatter(x=[p["flops_compact"] / 1e6 for p in chosen], y=[p["error"] for p in chosen],
                             mode="markers", name="selected λ", marker=dict(size=20, color="rgba(0,0,0,0)",
                                                                           line=dict(color="black", width=2))))
    return style(fig, xaxis_title="MFLOPs (multiply-adds) per image", yaxis_title="test error (%)", height=400,
                 xaxis_type="log")
