"""Figures of compression beyond pruning: the storage of Deep Compression's stages, a layer's shared weights, error and
kilobytes against the number of clusters, and a teacher's soft targets at a temperature."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, style

STAGE_ORDER = ("dense", "pruned", "shared", "huffman")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(z / T) over the last axis (Hinton et al. 2015, eq. 1), computed stably."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def stage_bars(stages: pd.DataFrame, paper: dict[str, float] | None = None) -> go.Figure:
    """Kilobytes per Deep Compression stage (`quantize.compression_stages`: index = stage, columns KB and ratio), on a
    log axis with each stage's ratio to dense written on its bar; `paper`: stage → KB of the paper, a second series."""
    if not len(stages):
        raise ValueError("stages is empty: give quantize.compression_stages' table")
    names = [s for s in STAGE_ORDER if s in stages.index] + [s for s in stages.index if s not in STAGE_ORDER]
    fig = go.Figure(go.Bar(x=names, y=[stages.loc[s, "KB"] for s in names], name="ours",
                           marker_color=COLOURS["kept"],
                           text=[f"{stages.loc[s, 'KB']:.1f} KB, {stages.loc[s, 'ratio']:.0f}×" for s in names],
                           textposition="outside"))
    if paper:
        fig.add_bar(x=list(paper), y=list(paper.values()), name="Han et al. 2016", marker_color="#bbbbbb",
                    text=[f"{v:g} KB" for v in paper.values()], textposition="outside")
    return style(fig, top=40, title="storage after each stage", yaxis=dict(type="log", title="KB"), barmode="group",
                 height=360)


def shared_histogram(weights: np.ndarray, centroids: np.ndarray, title: str = "kept weights and centroids"
                     ) -> go.Figure:
    """A histogram of one layer's kept weights with its k centroids as vertical lines (one scatter trace)."""
    weights, centroids = np.asarray(weights).ravel(), np.asarray(centroids).ravel()
    fig = go.Figure(go.Histogram(x=weights, nbinsx=120, name="kept weights", marker_color=COLOURS["kept"]))
    top = len(weights) / 20 if len(weights) else 1
    fig.add_scatter(x=np.repeat(centroids, 3), y=np.tile([0, top, np.nan], len(centroids)), mode="lines",
                    line=dict(color="#d62728", width=1), name=f"{len(centroids)} centroids")
    return style(fig, top=40, title=title, xaxis_title="weight", yaxis_title="count", height=320)


def cluster_curve(rows: list[dict], current: int | None = None) -> go.Figure:
    """Test error (left) and kilobytes after Huffman coding (right) against the clusters per layer k (log₂ axis):
    rows of {k, error, KB}; `current` marks one k on both."""
    if not rows:
        raise ValueError("rows is empty: give one dict per k")
    rows = sorted(rows, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("test error %", "KB after Huffman coding"))
    for col, key in ((1, "error"), (2, "KB")):
        fig.add_scatter(x=ks, y=[r[key] for r in rows], mode="lines+markers", name=key, showlegend=False,
                        line=dict(color=COLOURS["kept"]), row=1, col=col)
    marked = [r for r in rows if r["k"] == current]
    for col, key in ((1, "error"), (2, "KB")):
        fig.add_scatter(x=[r["k"] for r in marked], y=[r[key] for r in marked], mode="markers", showlegend=False,
                        marker=dict(color="#d62728", size=12), name=f"k = {current}", row=1, col=col)
    fig.update_xaxes(type="log", title="k (clusters per layer)", tickvals=ks)
    return style(fig, top=40, height=300)


def soft_target_bars(probs: dict[str, np.ndarray], title: str = "soft targets", log: bool = False) -> go.Figure:
    """Grouped bars of several probability vectors over the classes (name → (C,) probabilities)."""
    if not probs:
        raise ValueError("probs is empty: give at least one probability vector")
    fig = go.Figure([go.Bar(x=list(range(len(p))), y=np.asarray(p), name=name) for name, p in probs.items()])
    return style(fig, top=40, title=title, barmode="group", height=300,
                 xaxis=dict(title="class", dtick=1), yaxis=dict(title="probability", type="log" if log else "linear"))
