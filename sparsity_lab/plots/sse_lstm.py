"""Figures for the SSE-for-LSTMs lesson: the four gate matrices with one group of each grouping highlighted, the
units and index lists each member keeps, and perplexity against the language's floor."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, style

GATES = ("input", "forget", "cell", "output")
GROUP_SCALE = [[0, "#f2f2f2"], [0.33, "#f2f2f2"], [0.34, "#9ecae1"], [0.66, "#9ecae1"], [0.67, "#d62728"],
               [1, "#d62728"]]


def gate_groups(pictures: dict[str, dict[str, np.ndarray]], hidden: int) -> go.Figure:
    """One row per grouping, two panels each (weight_ih, weight_hh, gate-stacked rows): `pictures[grouping][name]`
    holds 0 (not in the shown groups), 1 (a row group) or 2 (a column group, or the ISS unit) per weight."""
    rows = list(pictures)
    fig = make_subplots(rows=len(rows), cols=2, horizontal_spacing=0.08, vertical_spacing=0.09,
                        subplot_titles=[f"{g}: {name}" for g in rows for name in ("weight_ih", "weight_hh")])
    for r, grouping in enumerate(rows, start=1):
        for c, name in enumerate(("weight_ih", "weight_hh"), start=1):
            z = np.asarray(pictures[grouping][name], dtype=float)
            fig.add_trace(go.Heatmap(z=z[::-1], zmin=0, zmax=2, colorscale=GROUP_SCALE, showscale=False, xgap=1,
                                     ygap=1, hovertemplate="column %{x}<extra></extra>"), row=r, col=c)
            ticks = [z.shape[0] - 1 - (k * hidden + hidden // 2) for k in range(4)]
            fig.update_yaxes(tickvals=ticks, ticktext=list(GATES) if c == 1 else [""] * 4, row=r, col=c)
            fig.update_xaxes(showticklabels=False, row=r, col=c)
    title = "blue: one row group, red: one column group (ISS: red is everything of one hidden unit)"
    return style(fig, top=70, title=title, height=260 * len(rows), plot_bgcolor="white")


def kept_units(members: list[dict[str, list[int]]], names: list[str], dense: list[int], title: str) -> go.Figure:
    """Grouped bars: per member (a dict label → sizes per layer), the units or index-list lengths kept in each of
    `names`, beside the dense sizes (`dense`, a dashed marker)."""
    fig = go.Figure()
    for k, member in enumerate(members):
        label, sizes = next(iter(member.items()))
        fig.add_trace(go.Bar(x=names, y=sizes, name=label, marker_color=COLOURS["SGLD"], opacity=0.45 + 0.5 * k /
                             max(1, len(members) - 1), hovertemplate="%{x}: %{y}<extra>" + label + "</extra>"))
    fig.add_trace(go.Scatter(x=names, y=dense, mode="markers", name="dense", marker=dict(symbol="line-ew-open",
                             size=40, line=dict(width=3, color="black"))))
    return style(fig, top=40, title=title, barmode="group", yaxis_title="kept", height=320,
                 legend=dict(orientation="h", y=-0.25))


def perplexities(rows: list[dict], floor: float, bayes: float) -> go.Figure:
    """Horizontal bars of test perplexity per model (rows: {"method", "perplexity"}), with the entropy-rate floor
    exp(H) and the true model's perplexity on this test sample as vertical lines."""
    names = [r["method"] for r in rows][::-1]
    values = [r["perplexity"] for r in rows][::-1]
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=COLOURS["SGLD"],
                           text=[f"{v:.3f}" for v in values], textposition="outside",
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    for x, label, dash in ((floor, "floor exp(H)", "dash"), (bayes, "true model on this sample", "dot")):
        fig.add_vline(x=x, line=dict(color="black", dash=dash), annotation_text=label,
                      annotation_position="top" if dash == "dash" else "bottom")
    low = min(floor, bayes, *values)
    return style(fig, top=50, title="test perplexity (lower is better; nothing can beat the floor for long)",
                 xaxis=dict(range=[0.97 * low, 1.03 * max(values)], title="perplexity"),
                 height=60 + 34 * len(rows))
