"""Lesson 11's explorer of the fair benchmark: choose the cost, which kinds of method, which families and which
methods to show, and watch the Pareto front re-form over what is left.

    explorer = ParetoExplorer(averaged(load_bench()["records"])); explorer       # the last line of a cell shows it
    explorer.cost.value = "time_large"; explorer.structured.value = False         # or drive it headless
    explorer.front[["method", "value"]]                                           # the visible front's rows
"""

from __future__ import annotations

import math

import ipywidgets as W
import pandas as pd
import plotly.graph_objects as go

from ..plots.pareto import COSTS, as_table, front_figure, front_rows, method_symbols, setting_text
from .shared import View


class ParetoExplorer(View):
    """Test error against a cost for every method × setting of `rows` (`averaged(records)`, or a list of dicts
    with its keys), with the Pareto front of the points shown (`figure`, from `plots.pareto.front_figure`).

    Controls: `cost` (a key of COSTS: FLOPs of the nonzero weights, FLOPs after compaction, time relative to dense
    at batch 1 or at a large batch); `structured` and `unstructured` (checkboxes; the dense reference is neither
    and stays, unless its family box is off); `families` (family → checkbox); `methods` (a multi-select, all
    chosen to start); `max_error` (a slider: hide results with a higher test error, e.g. networks pruned to
    nothing; it starts at the worst error, showing all). A point is shown when it passes all five. Every change
    redraws the figure and recomputes the front over the shown points only; `front` holds its rows (cheapest
    first) and `status` names them.

    Headless: `explorer.families["magnitude"].value = False; explorer.figure.data[-1].x` (the front's costs)."""

    def __init__(self, rows, x: str = "flops_nonzero", height: int = 520):
        if x not in COSTS:
            raise ValueError(f"x must be one of {list(COSTS)}, got {x!r}")
        self.rows = as_table(rows)
        if not len(self.rows):
            raise ValueError("rows is empty: nothing to explore")
        self.height = height
        self.symbols = method_symbols(self.rows)       # from the whole table, so a filter never reshapes a method
        self.cost = W.ToggleButtons(options=[(short, key) for key, (short, _, _) in COSTS.items()], value=x,
                                    description="cost")
        self.structured = W.Checkbox(value=True, description="structured", indent=False)
        self.unstructured = W.Checkbox(value=True, description="unstructured", indent=False)
        self.families = {family: W.Checkbox(value=True, description=family, indent=False,
                                            layout=W.Layout(width="auto"))
                         for family in dict.fromkeys(self.rows["family"])}
        methods = list(dict.fromkeys(self.rows["method"]))
        self.methods = W.SelectMultiple(options=methods, value=tuple(methods), rows=min(12, len(methods)),
                                        description="methods")
        top = math.ceil(float(self.rows["error"].max()))   # starts at the worst error: every point shown
        self.max_error = W.FloatSlider(value=top, min=0, max=top, step=1, description="max error %",
                                       continuous_update=False, style={"description_width": "initial"})
        self.status = W.HTML()
        self.figure = go.FigureWidget()
        for control in (self.cost, self.structured, self.unstructured, self.methods, self.max_error,
                        *self.families.values()):
            control.observe(self.update, names="value")
        self.update()

    def visible(self) -> pd.DataFrame:
        """The rows the controls let through (all their columns), in the table's order."""
        rows = self.rows
        structured = rows["structured"].astype(bool)
        kind = (rows["family"] == "dense") | (structured & self.structured.value) | \
            (~structured & self.unstructured.value)
        families = rows["family"].map(lambda f: self.families[f].value)
        methods = rows["method"].isin(self.methods.value)
        good_enough = (rows["family"] == "dense") | (rows["error"] <= self.max_error.value)
        return rows[kind & families & methods & good_enough].reset_index(drop=True)

    def update(self, *_) -> None:
        """Redraw the figure for the controls' values, and recompute `front` and `status`."""
        shown = self.visible()
        fresh = front_figure(shown, self.cost.value, symbols=self.symbols, height=self.height)
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(fresh.data)
            self.figure.layout = fresh.layout
        self.front = front_rows(shown, self.cost.value)
        names = ", ".join(f"{r['method']} ({setting_text(r)})" for _, r in self.front.iterrows())
        self.status.value = (f"<b>on the front ({COSTS[self.cost.value][0]}), cheapest first:</b> {names}"
                             if names else "<b>no point shown</b>: turn a family, a kind or a method back on")

    @property
    def widget(self) -> W.Widget:
        kinds = W.HBox([W.HTML("<b>show</b>&nbsp;"), self.structured, self.unstructured, self.max_error])
        families = W.HBox([W.HTML("<b>families</b>&nbsp;"), *self.families.values()],
                          layout=W.Layout(flex_flow="row wrap"))
        return W.VBox([self.cost, kinds, families, W.HBox([self.methods, self.figure]), self.status])
