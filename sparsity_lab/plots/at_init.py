"""Figures for lesson 09, sparse from the start (lottery tickets, SNIP, GraSP): test error against the weights
left, seeds spread as error bars, with the shuffled and reinitialised controls dashed; and the fraction of each
layer's weights that every method keeps."""

from __future__ import annotations

import numpy as np
import plotly.colors
import plotly.graph_objects as go

from .shared import COLOURS, style

CONTROLS = ("shuffled", "reinit")  # a method named "<parent> <control>" is a sanity check of <parent>'s mask
PALETTE = [c.lower() for c in plotly.colors.qualitative.D3]
LESSON_COLOURS = {  # this lesson's methods, so that every figure of it agrees (lottery = ticket, as in lesson 08)
    "lottery": COLOURS["ticket"], "random": COLOURS["random mask"], "SNIP": PALETTE[0], "GraSP": PALETTE[2],
    "magnitude (trained)": PALETTE[1],
}
SYMBOLS = {"shuffled": "x", "reinit": "diamond"}


def parent(method: str) -> str:
    """The method a control checks ("SNIP shuffled" → "SNIP"); any other method is its own parent."""
    head, _, tail = method.rpartition(" ")
    return head if head and tail in CONTROLS else method


def method_colours(methods: list[str]) -> dict[str, str]:
    """Method → colour: a control takes its parent's; this lesson's methods (LESSON_COLOURS) and the names COLOURS
    knows keep theirs in every figure; any other method gets the next colour of plotly's D3 palette that no
    method here uses yet, in order of first appearance (so the same list always gets the same colours)."""
    known = {**COLOURS, **LESSON_COLOURS}
    mains = list(dict.fromkeys(parent(m) for m in methods))
    colours = {m: known[m].lower() for m in mains if m in known}
    free = (c for c in PALETTE if c not in colours.values())
    for m in mains:
        if m not in colours:
            colours[m] = next(free, "#333333")
    return {m: colours[parent(m)] for m in methods}


def error_vs_sparsity(records: list[dict], dense: float | None = None, dash: dict[str, str] | None = None,
                      colours: dict[str, str] | None = None) -> go.Figure:
    """Test error after training against the percentage of weights left (log axis, reversed: sparser to the
    right), one line per method in order of first appearance: the mean over seeds, with a bar from the best to
    the worst seed. Controls ("<method> shuffled", "<method> reinit") are dashed in their parent's colour
    (shuffled marked ×, reinit ◆); `dash` (method → plotly dash) overrides, `colours` (method → colour) too. The
    black dashed line "dense" is the unpruned network's error, if given. Hover: method, weights left, the mean
    and each seed's error.

    records: dicts with "method", "sparsity" (fraction of prunable weights removed), "seed" and "error" (%). Seeds
    at one sparsity are grouped when their sparsities agree to 6 decimals."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    colours = {**method_colours(methods), **(colours or {})}
    fig = go.Figure()
    for method in methods:
        groups: dict[float, list[dict]] = {}
        for r in records:
            if r["method"] == method:
                groups.setdefault(round(float(r["sparsity"]), 6), []).append(r)
        points = [groups[s] for s in sorted(groups)]
        remaining = [100 * (1 - np.mean([r["sparsity"] for r in rows])) for rows in points]
        errors = [np.array([r["error"] for r in rows], dtype=float) for rows in points]
        mean, low, high = (np.array([f(e) for e in errors]) for f in (np.mean, np.min, np.max))
        seeds = ["<br>".join(f"seed {r['seed']}: {r['error']:.2f}%" for r in rows) for rows in points]
        control = method.rpartition(" ")[2] if parent(method) != method else None
        fig.add_trace(go.Scatter(
            x=remaining, y=mean, mode="lines+markers", name=method, text=seeds,
            error_y=dict(type="data", symmetric=False, array=high - mean, arrayminus=mean - low, thickness=1),
            line=dict(color=colours[method], dash=(dash or {}).get(method, "dash" if control else "solid")),
            marker=dict(symbol=SYMBOLS.get(control, "circle")),
            hovertemplate=(f"<b>{method}</b><br>weights remaining %{{x:.3g}}%<br>mean error %{{y:.2f}}%<br>"
                           "%{text}<extra></extra>")))
    if dense is not None:
        xs = [x for trace in fig.data for x in trace.x] or [100.0, 1.0]
        fig.add_trace(go.Scatter(x=[max(xs), min(xs)], y=[dense, dense], mode="lines", name="dense",
                                 line=dict(color="black", dash="dash"),
                                 hovertemplate=f"dense network: {dense:.2f}%<extra></extra>"))
    return style(fig, xaxis=dict(type="log", autorange="reversed", title="weights remaining (%)"),
                 yaxis_title="test error after training (%)", height=420)


def layer_densities(densities: dict[str, list[float]], layers: list[str], sparsity: float | None = None,
                    colours: dict[str, str] | None = None) -> go.Figure:
    """Grouped bars: for each layer (x, e.g. "784→300") the percentage of its weights each method keeps, one
    colour per method as in `error_vs_sparsity` (controls hatched). Bars of one height mean the cut was spread
    evenly over the layers (random pruning); a global criterion such as SNIP can cut one layer far harder.

    densities: method → the fraction (0–1) of each layer's weights kept, in the order of `layers`; `sparsity`
    (the overall fraction removed) goes in the title."""
    for method, values in densities.items():
        if len(values) != len(layers):
            raise ValueError(f"{method!r} has {len(values)} densities for {len(layers)} layers {list(layers)}")
    colours = {**method_colours(list(densities)), **(colours or {})}
    fig = go.Figure([go.Bar(x=list(layers), y=[100 * float(v) for v in values], name=method,
                            marker=dict(color=colours[method], pattern_shape="/" if parent(method) != method else ""),
                            hovertemplate=f"<b>{method}</b><br>%{{x}}: %{{y:.1f}}% kept<extra></extra>")
                     for method, values in densities.items()])
    title = "weights kept per layer" + ("" if sparsity is None else f" at {sparsity:.1%} sparsity overall")
    return style(fig, top=40, title=title, barmode="group", yaxis=dict(range=[0, 100], title="weights kept (%)"),
                 xaxis_title="layer (inputs→outputs)", height=360)
