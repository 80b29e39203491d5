"""What every view shares: the `View` contract (one `widget` to lay out, shown when a cell ends in the view) and
tables of numbers as HTML, through pandas."""

from __future__ import annotations

import abc
import gc
import numbers

import ipywidgets as W
import pandas as pd
from IPython.display import display


def _import_figurewidget() -> None:
    """Import plotly's FigureWidget with the garbage collector paused. The import pulls in nbformat → jsonschema →
    rfc3987_syntax, which compiles some forty grammars: millions of short-lived objects. In a kernel that has torch
    loaded, every collection during it also walks torch's own objects, and the import takes 10–15 s instead of 3 s
    (measured in lesson 03's kernel). The import makes no garbage cycles that need collecting on the way."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        from plotly.graph_objects import FigureWidget  # noqa: F401  (plotly imports it lazily on first use)
    finally:
        if enabled:
            gc.enable()


_import_figurewidget()

TABLE_CSS = "<style>.sparsity-lab-table td, .sparsity-lab-table th {padding: 2px 10px; text-align: right}</style>"


def scale_slider(scales, value: float | None = None, description: str = "λ × ") -> W.SelectionSlider:
    """A slider over the λ scales of a cached sweep (sorted; the middle one unless `value` is given)."""
    scales = sorted(set(scales))
    return W.SelectionSlider(options=[(f"{s:g}", s) for s in scales],
                             value=scales[len(scales) // 2] if value is None else value, description=description,
                             continuous_update=False)


def ensemble_sliders(members: int, sparsities, sparsity: float) -> tuple[W.IntSlider, W.SelectionSlider]:
    """The ensemble views' two sliders: how many of `members` to average (all, to start), and the pruned fraction,
    one of `sparsities` (shown as percentages)."""
    if sparsity not in sparsities:
        raise ValueError(f"sparsity must be one of {tuple(sparsities)}, got {sparsity!r}")
    return (W.IntSlider(value=members, min=1, max=members, description="members", continuous_update=False),
            W.SelectionSlider(options=[(f"{s:.0%}", s) for s in sparsities], value=sparsity, description="sparsity",
                              continuous_update=False))


def redraw(figure, fresh) -> None:
    """Show a freshly built figure in a live FigureWidget in one message: each trace's x, y (and z, for heatmaps)
    and the title copied across; the traces replaced when their number changed."""
    with figure.batch_update():
        if len(figure.data) != len(fresh.data):
            figure.data = []
            figure.add_traces(fresh.data)
        else:
            for old, new in zip(figure.data, fresh.data, strict=True):
                old.update(x=new.x, y=new.y, **({"z": new.z} if hasattr(new, "z") else {}))
        figure.layout.title.text = fresh.layout.title.text


class View(abc.ABC):
    """An interactive view: `widget` is the whole of it as one ipywidget, and a cell that ends in the view shows
    that widget. Drive a view headless by setting its controls' `.value` and reading its figures' data."""

    @property
    @abc.abstractmethod
    def widget(self) -> W.Widget:
        """The controls, figures and read-outs, laid out."""

    def _ipython_display_(self) -> None:
        display(self.widget)


class TrainingMonitor(View):
    """A view that is also a training callback: `update(model, step)` runs at step 1 and every `every` steps
    (`train.fit` calls the monitor after each step), and `figure` is the whole view."""

    figure = None

    def __init__(self, every: int):
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every!r}")
        self.every = int(every)

    def update(self, model, step: int) -> None:
        raise NotImplementedError

    def __call__(self, state) -> None:
        if state.step % self.every == 0 or state.step == 1:
            self.update(state.model, state.step)

    @property
    def widget(self) -> W.Widget:
        return self.figure


def _cell(value) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    return f"{value:,}" if isinstance(value, numbers.Integral) else f"{value:,.2f}"


def table_html(rows: list[dict] | dict[str, list] | pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """An HTML table through `DataFrame.to_html`. rows: anything `pandas.DataFrame` takes (one dict per row, a dict
    of columns, a DataFrame). Integers get thousands separators, other numbers two decimals, and each column
    named in `formats` its own template (column → e.g. "{:.3f}" or "{:.2f}%")."""
    frame = pd.DataFrame(rows)
    formats = formats or {}
    formatters = {c: formats[c].format if c in formats else _cell for c in frame.columns}
    return TABLE_CSS + frame.to_html(index=False, border=0, formatters=formatters, classes="sparsity-lab-table")
