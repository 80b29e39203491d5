"""Lesson 10's live connectivity movie of dynamic sparse training (SET, DeepR, DSR): the first layer's receptive
fields redrawn at every rewiring while training runs, then replayed with a slider.

    movie = ConnectivityMovie("SET", side=28); movie             # display it first: it fills in as training runs
    rewiring = SET(model, masks, listeners=[movie]); fit(model, data, callbacks=[rewiring])
    ConnectivityMovie.from_history(result.details["history"])    # or replay a finished run
"""

from __future__ import annotations

import numbers

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch

from ..methods.dst import Snapshot
from ..plots.shared import receptive_fields
from .shared import View


def _value(v) -> str:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return str(v)
    return f"{v:,}" if isinstance(v, numbers.Integral) else f"{v:.3g}"


class ConnectivityMovie(View):
    """The first layer's masks of the first `n_units` neurons, each as a side×side picture, and the input pixels
    any neuron still reads (`figure`), one frame per `Snapshot` of a dynamic sparse training run.

    Pass the movie itself as a listener (`SET(..., listeners=[movie])`): each snapshot is kept (`history`, masks
    cloned), drawn, and the `frame` slider moves to it; after training, move `frame` to replay. `status` reads
    the shown frame: step, connections in all and per layer, the first layer's connections rewired since the
    first snapshot (active now, dormant then), the input pixels still read, and the method's `extra` values;
    `rewired` and `pixels_read` hold those two counts. Headless: `movie.frame.value = 0; movie.figure.data[0].z`."""

    def __init__(self, title: str = "", side: int = 28, n_units: int = 24, columns: int = 6):
        self.title, self.side, self.n_units, self.columns = title, side, n_units, columns
        self.history: list[Snapshot] = []
        self.rewired = self.pixels_read = 0
        self.status = W.HTML("no snapshot yet: pass this movie in a method's <code>listeners=</code> and train")
        self.frame = W.IntSlider(value=0, min=0, max=0, description="snapshot", disabled=True,
                                 continuous_update=False)
        blank = np.zeros((n_units, side * side))
        self.figure = go.FigureWidget(receptive_fields(blank, n_units, side, columns))
        self.frame.observe(lambda change: self.show(change["new"]), names="value")

    def _add(self, snapshot: Snapshot) -> None:
        """Check and keep a copy of `snapshot`; ValueError if its first-layer mask does not fit the movie."""
        first = torch.as_tensor(snapshot.first).detach().cpu().bool().clone()
        shape = tuple(first.shape)
        if len(shape) != 2 or shape[1] != self.side * self.side:
            raise ValueError(f"the first-layer mask at step {snapshot.step} has shape {shape}, not (units, "
                             f"side·side) = (units, {self.side * self.side})")
        if self.history and shape != tuple(self.history[0].first.shape):
            raise ValueError(f"the first-layer mask at step {snapshot.step} has shape {shape}, but the first "
                             f"snapshot's has shape {tuple(self.history[0].first.shape)}")
        self.history.append(Snapshot(snapshot.step, dict(snapshot.counts), first, dict(snapshot.extra)))

    def _to_last(self) -> None:
        """Let the slider reach the newest frame and show it."""
        last = len(self.history) - 1
        self.frame.max, self.frame.disabled = last, last < 1
        if self.frame.value == last:
            self.show(last)
        else:
            self.frame.value = last                     # the slider's observer draws it

    def listener(self, snapshot: Snapshot) -> None:
        """Keep `snapshot`, draw it and move the slider to it (a method calls this at every rewiring)."""
        self._add(snapshot)
        self._to_last()

    __call__ = listener

    @classmethod
    def from_history(cls, history: list[Snapshot], **kwargs) -> ConnectivityMovie:
        """A movie of a finished run's snapshots (e.g. `result.details["history"]`), showing the last;
        kwargs as for the constructor."""
        if not history:
            raise ValueError("history is empty: a run records at least its step-0 snapshot")
        movie = cls(**kwargs)
        for snapshot in history:
            movie._add(snapshot)
        movie._to_last()
        return movie

    def show(self, k: int) -> None:
        """Draw snapshot k and describe it in `status`."""
        snapshot, start = self.history[k], self.history[0].first
        first = snapshot.first
        units = min(self.n_units, first.shape[0])
        fresh = receptive_fields(first.double().numpy(), units, self.side, self.columns)
        with self.figure.batch_update():
            self.figure.data[0].z = fresh.data[0].z
            self.figure.data[1].z = fresh.data[1].z
            self.figure.layout.annotations[0].text = fresh.layout.annotations[0].text
        self.rewired = int((first & ~start).sum())
        self.pixels_read = int(first.any(0).sum())
        layers = " · ".join(f"{name}: {count:,}" for name, count in snapshot.counts.items())
        extra = "".join(f" · {name}: {_value(v)}" for name, v in snapshot.extra.items())
        self.status.value = (f"<b>step {snapshot.step:,}</b> (snapshot {k + 1} of {len(self.history)}) · "
                             f"{sum(snapshot.counts.values()):,} connections · {layers}<br>first layer: "
                             f"{self.rewired:,} of {int(first.sum()):,} connections rewired since step "
                             f"{self.history[0].step:,} · {self.pixels_read:,} of {first.shape[1]:,} input pixels "
                             f"still read{extra}")

    @property
    def widget(self) -> W.Widget:
        top = [W.HTML(f"<b>{self.title}</b>")] if self.title else []
        return W.VBox([*top, self.status, self.frame, self.figure])


def side_by_side(movies: list[ConnectivityMovie]) -> W.Widget:
    """The movies' widgets in one row when the page is wide enough (watch SET and DeepR rewire together), one under
    the other when it is not: a movie's figure needs about 600 pixels, or its pixel map is cut off."""
    if not movies:
        raise ValueError("side_by_side needs at least one movie")
    return W.GridBox([movie.widget for movie in movies],
                     layout=W.Layout(grid_template_columns="repeat(auto-fit, minmax(600px, 1fr))"))
