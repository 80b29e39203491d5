"""Lesson 11's fair benchmark as a Pareto front: every method's test error against one cost — the FLOPs an ideal
sparse kernel would run, the FLOPs of the compacted dense layers, or the measured time relative to the dense
network — with the front of the drawn points as a staircase. Colour = family, filled = structured, open =
unstructured, ★ = the dense reference.

rows: `experiments.methods_bench.averaged(records)` (a DataFrame, one row per method × setting, means over seeds),
or a list of dicts with the same keys."""

from __future__ import annotations

import math
import zlib

import pandas as pd
import plotly.colors
import plotly.graph_objects as go

from ..pareto import pareto_front
from .shared import COLOURS, style

COSTS = {  # x → (short name, axis title, column of rows)
    "flops_nonzero": ("FLOPs, nonzero", "MFLOPs (multiply-adds) per image: nonzero weights (ideal sparse kernel)",
                      "flops_nonzero"),
    "flops_compact": ("FLOPs, compact", "MFLOPs (multiply-adds) per image: compacted dense layers", "flops_compact"),
    "time_b1": ("time, batch 1", "time relative to dense, batch 1 (1 / speed-up)", "speedup_b1"),
    "time_large": ("time, large batch", "time relative to dense, large batch (1 / speed-up)", "speedup_large"),
}
FAMILY_COLOURS = {  # the same family has the same colour in every figure of the lesson
    "dense": "#000000", "magnitude": COLOURS["magnitude"], "second_order": COLOURS["OBD"],
    "lottery": COLOURS["ticket"], "group_lasso": "#8c564b", "slimming": "#c49c94", "sss": "#ff7f0e",
    "l0": "#2ca02c", "vdrop": "#9467bd", "sbp": "#e377c2", "sse": "#bcbd22", "sse_lstm": "#dbdb8d",
    "at_init": "#17becf", "dst": "#393b79", "sensitivity": "#637939", "decorrelation": "#843c39",
}
SHAPES = ("circle", "square", "diamond", "triangle-up", "triangle-down", "pentagon", "hexagon", "cross")
REQUIRED = ("method", "family", "structured", "error")


def family_colour(family: str) -> str:
    """The family's colour: FAMILY_COLOURS', or for a family it does not know one of plotly's Dark24 chosen by
    the name alone (so it too is the same in every figure)."""
    palette = plotly.colors.qualitative.Dark24
    return FAMILY_COLOURS.get(family) or palette[zlib.crc32(family.encode()) % len(palette)]


def as_table(rows) -> pd.DataFrame:
    """rows as a fresh DataFrame (error_sd 0 where absent; an empty one still has the REQUIRED columns);
    ValueError naming the columns that are missing."""
    frame = pd.DataFrame(rows).reset_index(drop=True)
    if not len(frame):
        frame = pd.DataFrame(columns=[*frame.columns, *(c for c in REQUIRED if c not in frame.columns)])
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"rows lack {missing}: pass experiments.methods_bench.averaged(records)")
    if "error_sd" not in frame:
        frame["error_sd"] = 0.0
    return frame


def cost(rows, x: str = "flops_nonzero") -> pd.Series:
    """The cost `x` (a key of COSTS) of each row: MFLOPs per image, or 1 / speed-up (time relative to dense)."""
    if x not in COSTS:
        raise ValueError(f"x must be one of {list(COSTS)}, got {x!r}")
    frame = as_table(rows)
    column = COSTS[x][2]
    if column not in frame:
        raise ValueError(f"rows lack the column {column!r} that x={x!r} needs")
    values = frame[column].astype(float)
    return values / 1e6 if column.startswith("flops") else 1.0 / values


def drawn(rows, x: str = "flops_nonzero") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows that can be drawn, with their `cost`; the rows that cannot). A log axis has no place for a cost
    of 0 (a network cut down to its biases computes nothing), nor a NaN one: such rows are left out of the figure
    and of its front, and named in its title."""
    frame = as_table(rows)
    if not len(frame):
        return frame.assign(cost=[]), frame
    frame["cost"] = cost(frame, x)
    ok = frame["cost"].map(math.isfinite) & (frame["cost"] > 0) & frame["error"].astype(float).map(math.isfinite)
    return frame[ok].reset_index(drop=True), frame[~ok].reset_index(drop=True)


def front_rows(rows, x: str = "flops_nonzero") -> pd.DataFrame:
    """The rows on the Pareto front of (cost x, test error) over the drawable rows, cheapest first — exactly
    the points `front_figure(rows, x)` joins with its staircase; `[["method", "value"]]` names them."""
    points, _ = drawn(rows, x)
    keep = pareto_front(list(zip(points["cost"], points["error"].astype(float), strict=True)))
    return points.iloc[keep].sort_values(["cost", "error"], kind="stable").reset_index(drop=True)


def method_symbols(rows) -> dict[str, str]:
    """Method → marker shape: the methods of one family (one colour) get distinct SHAPES, in order of first
    appearance; the dense reference a star. Pass the whole table's to every figure so a filter keeps shapes."""
    frame = as_table(rows)
    symbols, seen = {}, {}
    for method, family in dict.fromkeys(zip(frame.get("method", []), frame.get("family", []), strict=True)):
        if method not in symbols:
            k = seen[family] = seen.get(family, -1) + 1
            symbols[method] = "star" if family == "dense" else SHAPES[k % len(SHAPES)]
    return symbols


def units_text(units) -> str:
    """Units per layer, inputs first, as "612-120-45-10" (a list, or averaged()'s string as it is)."""
    if isinstance(units, (list, tuple)):
        return "-".join(str(int(u)) for u in units)
    return "?" if units is None or (isinstance(units, float) and math.isnan(units)) else str(units)


def setting_text(row) -> str:
    """The setting as "knob = value" ("sparsity = 0.9"), or "reference, no pruning" for the dense network."""
    knob, value = row.get("knob", "none"), row.get("value")
    if row.get("family") == "dense" or knob in (None, "none") or value is None or pd.isna(value):
        return "reference, no pruning"
    return f"{knob} = {value:g}"


def hover_text(row, x: str = "flops_nonzero") -> str:
    """One point's hover: method, setting, mean error ± sd, sparsity, units per layer, the cost drawn, and the
    fastest variant with the speed-ups at both batch sizes."""
    def num(key, fmt):
        value = row.get(key)
        return "?" if value is None or pd.isna(value) else format(value, fmt)

    kind = "the unpruned reference" if row.get("family") == "dense" else \
        "structured" if row.get("structured") else "unstructured"
    seeds = row.get("seeds")
    seeds = "" if seeds is None or pd.isna(seeds) else f" over {int(seeds)} seed{'s' * (int(seeds) != 1)}"
    return (f"<b>{row['method']}</b> ({row['family']}, {kind})<br>{setting_text(row)}<br>"
            f"test error {row['error']:.2f} ± {num('error_sd', '.2f')}%{seeds}<br>"
            f"sparsity {num('sparsity', '.1%')} · units {units_text(row.get('units'))}<br>"
            f"{COSTS[x][0]}: {num('cost', '.3g')}<br>"
            f"fastest: {row.get('fastest_b1', '?')} at batch 1 ({num('speedup_b1', '.2f')}×), "
            f"{row.get('fastest_large', '?')} at a large batch ({num('speedup_large', '.2f')}×)")


def front_figure(rows, x: str = "flops_nonzero", symbols: dict[str, str] | None = None, height: int = 520,
                 title: str | None = None) -> go.Figure:
    """Test error (%) against the cost `x` (a key of COSTS) on a log axis: one trace per method (named after it,
    in order of first appearance; colour from its family, filled if structured, open if not, bars ± error_sd),
    the dense reference a black star, and last the trace "Pareto front": the front of the drawn points
    (`front_rows`) as a step line, cheapest first. Rows whose cost cannot go on a log axis are named in the
    title. symbols: method → marker shape (default `method_symbols(rows)`)."""
    points, dropped = drawn(rows, x)
    symbols = {**method_symbols(points), **(symbols or {})}
    fig = go.Figure()
    titled = set()
    for method in dict.fromkeys(points["method"]):
        part = points[points["method"] == method].sort_values("cost", kind="stable")
        first = part.iloc[0]
        colour, dense = family_colour(first["family"]), first["family"] == "dense"
        shape = symbols.get(method, "circle")
        shape = shape if dense or bool(first["structured"]) else f"{shape}-open"
        group_title = None if first["family"] in titled else first["family"]
        titled.add(first["family"])
        fig.add_trace(go.Scatter(
            x=part["cost"], y=part["error"], mode="markers", name=method, legendgroup=first["family"],
            legendgrouptitle_text=group_title, text=[hover_text(r, x) for _, r in part.iterrows()],
            hovertemplate="%{text}<extra></extra>",
            marker=dict(color=colour, symbol=shape, size=15 if dense else 10, line=dict(color=colour, width=1.5)),
            error_y=dict(type="data", array=part["error_sd"].fillna(0.0), thickness=1, width=3, color=colour)))
    front = front_rows(points, x)
    fig.add_trace(go.Scatter(x=front["cost"], y=front["error"], mode="lines", name="Pareto front",
                             line=dict(shape="hv", color="black", dash="dot", width=1.5), hoverinfo="skip"))
    if title is None:
        title = f"test error against {COSTS[x][0]}: {len(front)} of {len(points)} points on the front"
        if len(dropped):
            names = ", ".join(f"{r['method']} ({setting_text(r)})" for _, r in dropped.iterrows())
            title += f"<br><sup>not drawn (no cost > 0 on a log axis): {names}</sup>"
    return style(fig, top=70 if len(dropped) else 40, title=title, height=height,
                 xaxis=dict(type="log", title=COSTS[x][1]), yaxis_title="test error (%)",
                 legend=dict(groupclick="toggleitem"))
