"""Figures for the L0 lesson: the hard-concrete distribution (its density and its two point masses, beside a
histogram of draws), the gates during training, and the error-vs-FLOPs front of a λ sweep."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, style

BINS = 40  # histogram bins on (0, 1)


def hard_concrete(arrays: dict) -> go.Figure:
    """The hard concrete (arrays from `widgets.l0.hard_concrete_arrays`): the density of its continuous part
    (line), its point masses at 0 and 1 (stems, with their probability on the right axis) and the kernel's draws
    (bars; crosses at the drawn fractions)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=arrays["centres"], y=arrays["histogram"], width=1 / BINS, name="draws (histogram)",
                         marker_color="#c6d4ea"), secondary_y=False)
    fig.add_trace(go.Scatter(x=arrays["z"], y=arrays["density"], mode="lines", name="density on (0, 1)",
                             line=dict(color=COLOURS["kept"], width=3)), secondary_y=False)
    masses = arrays["masses"]
    fig.add_trace(go.Scatter(x=[0, 0, None, 1, 1], y=[0, masses[0], None, 0, masses[1]], mode="lines+markers",
                             name="P(z = 0), P(z = 1)", line=dict(color=COLOURS["OBS"], width=4),
                             marker=dict(size=[0, 12, 0, 0, 12], color=COLOURS["OBS"])), secondary_y=True)
    fig.add_trace(go.Scatter(x=[0, 1], y=list(arrays["drawn_masses"]), mode="markers", name="drawn fraction",
                             marker=dict(symbol="x", size=12, color="black")), secondary_y=True)
    fig.update_yaxes(title_text="density", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="point mass", range=[0, 1], secondary_y=True)
    title = (f"P(z ≠ 0) = {arrays['p_nonzero']:.3f} · test-time gate {arrays['test_gate']:.3f} · "
             f"P(z = 0) = {masses[0]:.3f}, P(z = 1) = {masses[1]:.3f}")
    return style(fig, top=50, title=title, xaxis_title="z", xaxis_range=[-0.05, 1.05], height=360,
                 legend=dict(orientation="h", y=-0.25))


def gate_training(steps: list[int], kept: dict[str, list[float]], sizes: dict[str, int],
                  pixels: np.ndarray | None) -> go.Figure:
    """Left: the expected fraction of each layer's units whose gate is nonzero, against the training step.
    Right (an MLP): P(z ≠ 0) of each input pixel's gate as a 28×28 map."""
    cols = 2 if pixels is not None else 1
    fig = make_subplots(1, cols, column_widths=[0.62, 0.38][:cols], horizontal_spacing=0.1,
                        subplot_titles=("expected units kept, Σ P(z ≠ 0) / units", "P(z ≠ 0) per input pixel")[:cols])
    for name, values in kept.items():
        fig.add_trace(go.Scatter(x=steps, y=[v / sizes[name] for v in values], mode="lines", name=name), 1, 1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=1)
    if pixels is not None:
        fig.add_trace(go.Heatmap(z=np.asarray(pixels).reshape(28, 28)[::-1], zmin=0, zmax=1, colorscale="Blues",
                                 showscale=False, hovertemplate="P=%{z:.2f}<extra></extra>"), 1, 2)
        fig.update_xaxes(showticklabels=False, row=1, col=2)
        fig.update_yaxes(showticklabels=False, scaleanchor="x2", row=1, col=2)
    return style(fig, top=40, height=330, legend=dict(orientation="h", y=-0.25))


def sweep_front(points: list[dict], dense: dict, chosen: float) -> go.Figure:
    """Test error against FLOPs per image: each λ's compact network (filled) and its expected FLOPs at the end of
    training (open), the dense network (star), the chosen λ ringed (the last trace)."""
    points = sorted(points, key=lambda p: p["flops_compact"])
    fig = go.Figure([
        go.Scatter(x=[p["flops_compact"] / 1e6 for p in points], y=[p["error"] for p in points],
                   mode="lines+markers", name="compact network", marker=dict(size=9, color=COLOURS["kept"]),
                   text=[f"λ × {p['scale']:g}: {'-'.join(map(str, p['sizes']))}" for p in points]),
        go.Scatter(x=[p["flops_expected"] / 1e6 for p in points], y=[p["error"] for p in points], mode="markers",
                   name="expected FLOPs", marker=dict(size=9, symbol="circle-open", color=COLOURS["kept"])),
        go.Scatter(x=[dense["flops"] / 1e6], y=[dense["error"]], mode="markers", name="dense",
                   marker=dict(size=14, symbol="star", color="black")),
        go.Scatter(x=[], y=[], mode="markers", name="chosen λ", showlegend=False,
                   marker=dict(size=20, symbol="circle-open", line=dict(width=3), color=COLOURS["OBS"])),
    ])
    p = next(q for q in points if q["scale"] == chosen)
    fig.data[-1].x, fig.data[-1].y = [p["flops_compact"] / 1e6], [p["error"]]
    return style(fig, top=40, title="test error vs multiply-adds per image", xaxis_title="MFLOPs (log)",
                 yaxis_title="test error %", xaxis_type="log", height=360, legend=dict(orientation="h", y=-0.3))
