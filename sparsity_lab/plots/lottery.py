"""Figures for sparse-from-the-start training: lottery-ticket curves (Frankle & Carbin 2019)."""

from __future__ import annotations

import plotly.graph_objects as go

from .shared import COLOURS, style


def lottery_curves(sparsity: list[float], errors: dict[str, list[float]]) -> go.Figure:
    """Test error after training against the percentage of weights left (log axis, as Frankle & Carbin plot
    it), one line per variant (ticket, reinit, random mask). sparsity: per round; errors: name → per round."""
    remaining = [100 * (1 - s) for s in sparsity]
    fig = go.Figure()
    for name, values in errors.items():
        fig.add_trace(go.Scatter(x=remaining, y=values, mode="lines+markers", name=name,
                                 line=dict(color=COLOURS.get(name))))
    return style(fig, xaxis=dict(type="log", autorange="reversed", title="weights remaining (%)"),
                 yaxis_title="test error after training (%)", height=380)
