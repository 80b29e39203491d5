"""Figures of compression beyond pruning: the storage of Deep Compression's stages, a layer's shared weights, error and
kilobytes against the number of clusters, and a teacher's soft targets at a temperature (with the softmax, entropy
and image helpers the temperature view shows)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .shared import COLOURS, _image_axes, style

STAGE_ORDER = ("dense", "pruned", "shared", "huffman")
CENTROID_COLOUR = "#d62728"


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(z / T) over the last axis (Hinton et al. 2015, eq. 1), computed stably."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def entropy_bits(probs: np.ndarray) -> np.ndarray:
    """−Σ p log2 p over the last axis, in bits (0 log 0 = 0): 0 for a one-hot vector, log2 C for a uniform one."""
    p = np.asarray(probs, dtype=np.float64)
    return -(p * np.log2(np.where(p > 0, p, 1.0))).sum(axis=-1)


def stage_bars(stages: pd.DataFrame, paper: dict[str, float] | None = None) -> go.Figure:
    """Kilobytes per Deep Compression stage (`quantize.compression_stages`: index = stage, columns KB and ratio), on a
    log axis with each stage's ratio to dense written on its bar; `paper`: stage → KB of the paper, a second series
    (the ratio on its bars is to the paper's own dense KB, when it gives one)."""
    if not len(stages):
        raise ValueError("stages is empty: give quantize.compression_stages' table")
    missing = [c for c in ("KB", "ratio") if c not in stages.columns]
    if missing:
        raise ValueError(f"stages needs the columns KB and ratio (quantize.compression_stages), lacks {missing}")
    names = [s for s in STAGE_ORDER if s in stages.index] + [s for s in stages.index if s not in STAGE_ORDER]
    fig = go.Figure(go.Bar(x=names, y=[float(stages.loc[s, "KB"]) for s in names], name="ours",
                           marker_color=COLOURS["kept"],
                           text=[f"{stages.loc[s, 'KB']:.1f} KB, {stages.loc[s, 'ratio']:.0f}×" for s in names],
                           textposition="outside"))
    if paper:
        dense = paper.get("dense")
        fig.add_bar(x=list(paper), y=list(paper.values()), name="Han et al. 2016", marker_color=COLOURS["removed"],
                    text=[f"{v:g} KB" + (f", {dense / v:.0f}×" if dense else "") for v in paper.values()],
                    textposition="outside")
    return style(fig, top=40, title="storage after each stage", yaxis=dict(type="log", title="KB"), barmode="group",
                 height=360)


def weight_counts(weights: np.ndarray, bins: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """The histogram `shared_histogram` draws: (bin centres, counts) of `weights` in `bins` equal bins."""
    counts, edges = np.histogram(np.asarray(weights, dtype=np.float64).ravel(), bins=bins)
    return (edges[:-1] + edges[1:]) / 2, counts


def shared_histogram(weights: np.ndarray, centroids: np.ndarray, title: str = "kept weights and centroids",
                     bins: int = 120) -> go.Figure:
    """One layer's kept weights (1-D) as a histogram of `bins` bars (`weight_counts`), with its k centroids as
    vertical lines from 0 to the tallest bar: one scatter trace, the lines separated by NaN (x = each centroid three
    times)."""
    centroids = np.asarray(centroids, dtype=np.float64).ravel()
    if not len(centroids):
        raise ValueError("centroids is empty: give the layer's k shared values")
    centres, counts = weight_counts(weights, bins)
    top = max(1, int(counts.max(initial=0)))
    fig = go.Figure(go.Bar(x=centres, y=counts, name="kept weights", marker_color=COLOURS["kept"],
                           hovertemplate="w≈%{x:.3f}: %{y}<extra></extra>"))
    fig.add_scatter(x=np.repeat(centroids, 3), y=np.tile([0.0, top, np.nan], len(centroids)), mode="lines",
                    line=dict(color=CENTROID_COLOUR, width=1), name="centroids",
                    hovertemplate="centroid %{x:.3f}<extra></extra>")
    return style(fig, top=40, title=title, xaxis_title="weight", yaxis_title="count", height=320, bargap=0)


def cluster_curve(rows: list[dict], current: int | None = None) -> go.Figure:
    """Test error (left) and kilobytes after Huffman coding (right) against the clusters per layer k (a log axis
    ticked at each k, so powers of 2 are evenly spaced): rows of {k, error, KB}; `current`, one of the ks, is marked
    on both (traces 2 and 3; empty when None)."""
    if not rows:
        raise ValueError("rows is empty: give one dict per k")
    lacking = [r for r in rows if not {"k", "error", "KB"} <= set(r)]
    if lacking:
        raise ValueError(f"rows need the keys k, error and KB, got {sorted(lacking[0])}")
    rows = sorted(rows, key=lambda r: r["k"])
    ks = [r["k"] for r in rows]
    if current is not None and current not in ks:
        raise ValueError(f"current must be one of the ks {ks}, got {current!r}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("test error %", "KB after Huffman coding"))
    for col, key in ((1, "error"), (2, "KB")):
        fig.add_scatter(x=ks, y=[r[key] for r in rows], mode="lines+markers", name=key, showlegend=False,
                        line=dict(color=COLOURS["kept"]), row=1, col=col)
    marked = [r for r in rows if r["k"] == current]
    for col, key in ((1, "error"), (2, "KB")):
        fig.add_scatter(x=[r["k"] for r in marked], y=[r[key] for r in marked], mode="markers", showlegend=False,
                        marker=dict(color=CENTROID_COLOUR, size=12), name="current k", row=1, col=col)
    fig.update_xaxes(type="log", title="k (clusters per layer)", tickvals=ks)
    return style(fig, top=40, height=300)


def soft_target_bars(probs: dict[str, np.ndarray], title: str = "soft targets", log: bool = False) -> go.Figure:
    """Grouped bars of several probability vectors over the same classes (series name → (C,) probabilities), e.g.
    one example's soft targets at T = 1 and at T; `log`: a log probability axis, where the small ones show."""
    if not probs:
        raise ValueError("probs is empty: give at least one probability vector")
    vectors = {name: np.asarray(p, dtype=np.float64).ravel() for name, p in probs.items()}
    sizes = {name: len(p) for name, p in vectors.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"probs must all have the same number of classes, got {sizes}")
    fig = go.Figure([go.Bar(x=list(range(len(p))), y=p, name=name) for name, p in vectors.items()])
    return style(fig, top=40, title=title, barmode="group", height=300,
                 xaxis=dict(title="class", dtick=1), yaxis=dict(title="probability", type="log" if log else "linear"))


def digit_image(image: np.ndarray, title: str = "") -> go.Figure:
    """A square grey-scale image, e.g. one MNIST digit: side² pixel values in any shape ((side, side), (1, side,
    side), (side·side,)), read row by row and drawn the right way up (row 0 at the top)."""
    pixels = np.asarray(image, dtype=np.float64)
    side = math.isqrt(pixels.size)
    if not pixels.size or side * side != pixels.size:
        raise ValueError(f"image must hold side² pixels of a square image, got shape {pixels.shape}")
    fig = go.Figure(go.Heatmap(z=pixels.reshape(side, side)[::-1], colorscale="Greys", showscale=False,
                               hovertemplate="%{z:.2f}<extra></extra>"))
    _image_axes(fig)
    return style(fig, top=40, title=title, height=260, width=260, plot_bgcolor="white")
