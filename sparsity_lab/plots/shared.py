"""What every family's figures share: one palette, one layout, images in a grid, and the views several lessons
draw (first-layer receptive fields, the input pixels still read, conv filter grids, speed-up vs FLOP cut)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLOURS = {  # method or series name → its colour in every figure
    "magnitude": "#7f7f7f", "OBD": "#1f77b4", "OBS": "#d62728", "Kron-OBD": "#1f77b4", "Kron-OBS": "#d62728",
    "ticket": "#d62728", "reinit": "#1f77b4", "random mask": "#7f7f7f",
    "lasso": "#d62728", "group lasso": "#1f4e96",
    "SGD": "#d62728", "SGLD": "#1f77b4", "pSGLD": "#2ca02c", "SGHMC": "#9467bd", "exact": "#333333",
    "kept": "#1f4e96", "removed": "#bbbbbb",
}
MASK_SCALE = [[0, "#f2f2f2"], [1, COLOURS["kept"]]]  # 0/1 maps: removed pale, kept dark


def style(fig: go.Figure, top: int = 30, **layout) -> go.Figure:
    """Apply the common layout, 10-pixel margins with `top` pixels above (40 leaves room for a title), then
    `layout` (any `update_layout` keyword, which wins). Returns fig."""
    return fig.update_layout(**{"margin": dict(l=10, r=10, t=top, b=10), **layout})


def _image_axes(fig: go.Figure, panels: int = 1) -> None:
    """No ticks, grid or zero line on any axis, and square pixels in each of the `panels` side-by-side images."""
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    for k in range(1, panels + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"


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
    tiles = json_safe(tile(fields, columns)[::-1])
    fig.add_trace(go.Heatmap(z=tiles, zmin=0, zmax=1, colorscale=MASK_SCALE, showscale=False,
                             hovertemplate="kept=%{z}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=read[::-1], zmin=0, zmax=1, colorscale=MASK_SCALE, showscale=False,
                             hovertemplate="read=%{z}<extra></extra>"), 1, 2)
    _image_axes(fig, panels=2)
    return style(fig, top=40, height=380, plot_bgcolor="white")


def pixel_map(keep: np.ndarray, side: int = 28, title: str = "input pixels that survive") -> go.Figure:
    """A side×side map of the input pixels a network still reads (keep: (side·side,) of 0/1)."""
    keep = np.asarray(keep, dtype=float).reshape(side, side)
    fig = go.Figure(go.Heatmap(z=keep[::-1], zmin=0, zmax=1, showscale=False, hovertemplate="kept=%{z}<extra></extra>",
                               colorscale=MASK_SCALE))
    _image_axes(fig)
    return style(fig, top=40, title=f"{title}: {int(keep.sum())} of {side * side}", height=330, width=330)


def filter_grid_arrays(filters: np.ndarray, alive: np.ndarray, columns: int = 10) -> tuple[list, list, float]:
    """The two heatmap layers of `filter_grid` as JSON-safe nested lists (None = not drawn): the kept filters and
    a grey block per removed filter; and the largest |weight| kept, for a colour scale symmetric around 0."""
    filters = np.asarray(filters, dtype=float)
    alive = np.asarray(alive, dtype=bool)
    shown = tile(np.where(alive[:, None, None], filters, np.nan), columns)[::-1]
    removed = tile(np.where(alive[:, None, None], np.nan, np.ones_like(filters)), columns)[::-1]
    bound = float(np.nanmax(np.abs(shown))) if np.isfinite(shown).any() else 1.0
    return json_safe(shown), json_safe(removed), bound or 1.0


def filter_grid(filters: np.ndarray, alive: np.ndarray, columns: int = 10, title: str = "conv1 filters") -> go.Figure:
    """Conv filters (n, h, w) in a grid, blue-white-red around 0; removed filters (alive False) greyed out."""
    kept, removed, bound = filter_grid_arrays(filters, alive, columns)
    grey = [[0, COLOURS["removed"]], [1, COLOURS["removed"]]]
    fig = go.Figure([go.Heatmap(z=removed, zmin=0, zmax=1, colorscale=grey, showscale=False, hoverinfo="skip"),
                     go.Heatmap(z=kept, zmin=-bound, zmax=bound, colorscale="RdBu_r", showscale=False,
                                hovertemplate="w=%{z:.3f}<extra></extra>")])
    _image_axes(fig)
    return style(fig, top=40, title=f"{title}: {int(np.sum(alive))} of {len(alive)} kept", height=260)


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
    return style(fig, xaxis_title="FLOP reduction (×)", yaxis_title="measured speed-up (×)", height=380,
                 xaxis_type="log", yaxis_type="log")
