"""Lesson 10's connectivity movie: every frame shows exactly its snapshot's first-layer mask (checked against an
array laid out by hand), the slider replays earlier ones, the read-out counts rewired connections and pixels read
by hand, and a real SET run fills the movie as it trains."""

import ipywidgets as W
import numpy as np
import pytest
import torch
from receptive_field_layout import laid_out, shown

from sparsity_lab.masks import get_masks
from sparsity_lab.methods import dst
from sparsity_lab.methods.dst import Snapshot
from sparsity_lab.models import MLP
from sparsity_lab.train import fit
from sparsity_lab.widgets.dst import ConnectivityMovie, side_by_side

SIDE, UNITS, LAYERS = 4, 5, ("layers.0.weight", "layers.1.weight")


def snapshots(n=4, seed=0):
    """n snapshots of a (5, 16) first layer with 40 random connections each, steps 0, 10, 20, …"""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        first = torch.zeros(UNITS * SIDE * SIDE, dtype=torch.bool)
        first[torch.randperm(len(first), generator=g)[:40]] = True
        out.append(Snapshot(10 * k, {LAYERS[0]: 40, LAYERS[1]: 7 + k}, first.reshape(UNITS, -1), {}))
    return out


def assert_shows(movie, mask, units, columns):
    left, right = shown(movie.figure.data[0].z), shown(movie.figure.data[1].z)
    np.testing.assert_array_equal(left, laid_out(mask, units, columns, SIDE))
    assert np.nansum(left) == int(mask[:units].sum())
    np.testing.assert_array_equal(right, mask.any(0).reshape(SIDE, SIDE).numpy()[::-1])


def test_each_snapshot_is_drawn_as_it_arrives_and_the_slider_replays_earlier_ones():
    movie = ConnectivityMovie("SET", side=SIDE, n_units=4, columns=3)
    assert movie.frame.disabled and movie.history == []
    run = snapshots()
    for k, snapshot in enumerate(run):
        movie(snapshot)
        assert len(movie.history) == k + 1 and movie.frame.value == movie.frame.max == k
        assert movie.frame.disabled == (k == 0)
        assert_shows(movie, snapshot.first, 4, 3)
    assert f"step 30</b> (snapshot 4 of 4) · {40 + 10} connections" in movie.status.value
    for k in (1, 0, 2):
        movie.frame.value = k
        assert_shows(movie, run[k].first, 4, 3)
        assert f"step {10 * k}</b>" in movie.status.value
    assert not torch.equal(run[1].first, run[2].first)          # so the replay saw changes
    default = ConnectivityMovie(side=SIDE)                       # 24 units asked, 5 there: all 5 drawn
    default(run[0])
    assert_shows(default, run[0].first, UNITS, 6)
    assert "first 5 neurons" in default.figure.layout.annotations[0].text


def test_the_movie_keeps_copies_not_the_methods_tensors():
    run = snapshots(1)
    movie = ConnectivityMovie(side=SIDE)
    movie.listener(run[0])
    run[0].first[:] = False
    assert movie.history[0].first.sum() == 40


def test_the_read_out_counts_rewired_connections_and_pixels_read_by_hand():
    start = torch.zeros(UNITS, SIDE * SIDE, dtype=torch.bool)
    start[0, [0, 1, 2]] = True
    start[1, [2, 15]] = True                                     # 5 connections, pixels 0, 1, 2, 15
    now = start.clone()
    now[0, 0] = False
    now[1, 15] = False
    now[3, [0, 7]] = True                                        # 2 moved, 1 new at a pixel read before: 3 rewired
    now[4, 2] = True                                             # pixels 0, 1, 2, 7 read
    movie = ConnectivityMovie(side=SIDE)
    movie(Snapshot(0, {LAYERS[0]: 5, LAYERS[1]: 15}, start))
    assert (movie.rewired, movie.pixels_read) == (0, 4)
    movie(Snapshot(120, {LAYERS[0]: 6, LAYERS[1]: 14}, now, {"threshold": 0.00125, "pruned": 1234}))
    assert (movie.rewired, movie.pixels_read) == (3, 4)
    text = movie.status.value
    for part in ("step 120", "snapshot 2 of 2", "20 connections", "layers.0.weight: 6", "layers.1.weight: 14",
                 "3 of 6 connections rewired since step 0", "4 of 16 input pixels still read",
                 "threshold: 0.00125", "pruned: 1,234"):
        assert part in text, (part, text)
    movie.frame.value = 0
    assert "0 of 5 connections rewired" in movie.status.value and "pruned" not in movie.status.value


def test_from_history_is_the_snapshots_fed_one_by_one():
    run = snapshots(5, seed=3)
    fed = ConnectivityMovie(side=SIDE, n_units=3, columns=2)
    for snapshot in run:
        fed(snapshot)
    built = ConnectivityMovie.from_history(run, side=SIDE, n_units=3, columns=2, title="DeepR")
    assert built.frame.value == built.frame.max == 4 and not built.frame.disabled
    assert [(s.step, s.counts) for s in built.history] == [(s.step, s.counts) for s in fed.history]
    assert all(torch.equal(a.first, b.first) for a, b in zip(built.history, fed.history, strict=True))
    for a, b in zip(built.figure.data, fed.figure.data, strict=True):
        np.testing.assert_array_equal(shown(a.z), shown(b.z))
    assert built.status.value == fed.status.value
    assert built.widget.children[0].value == "<b>DeepR</b>" and len(fed.widget.children) == 3
    both = side_by_side([fed, built])
    assert isinstance(both, W.GridBox) and len(both.children) == 2
    assert both.children[1].children[-1] is built.figure


def test_each_bad_input_is_named():
    run = snapshots(2)
    with pytest.raises(ValueError, match=r"shape \(5, 16\), not \(units, side·side\) = \(units, 25\)"):
        ConnectivityMovie(side=5)(run[0])
    with pytest.raises(ValueError, match=r"shape \(80,\), not \(units, side·side\)"):
        ConnectivityMovie(side=SIDE)(Snapshot(0, {}, run[0].first.reshape(-1)))
    movie = ConnectivityMovie(side=SIDE)
    movie(run[0])
    with pytest.raises(ValueError, match=r"at step 10 has shape \(4, 16\), but the first snapshot's has shape "
                                         r"\(5, 16\)"):
        movie(Snapshot(10, {}, run[1].first[:4]))
    assert len(movie.history) == 1
    with pytest.raises(ValueError, match="history is empty"):
        ConnectivityMovie.from_history([], side=SIDE)
    with pytest.raises(ValueError, match="at least one movie"):
        side_by_side([])


def test_a_set_run_fills_the_movie_as_it_trains():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, SIDE * SIDE, generator=g)
    y = (x[:, :4].sum(1) > 0).long() + (x[:, 4] > 1).long()
    torch.manual_seed(0)
    model = MLP([SIDE * SIDE, UNITS, 3])
    masks = dst.starting_masks(dst.shapes_of(model), 0.5, "uniform", torch.Generator().manual_seed(0))
    movie = ConnectivityMovie("SET", side=SIDE)
    rewiring = dst.SET(model, masks, listeners=[movie], zeta=0.3)
    fit(model, (x, y), epochs=2, batch_size=16, callbacks=[rewiring], progress=False)
    assert len(movie.history) == len(rewiring.history) == 3       # step 0 and after each epoch
    assert [s.step for s in movie.history] == [s.step for s in rewiring.history]
    final = get_masks(model)[LAYERS[0]]
    assert torch.equal(movie.history[-1].first, final) and movie.frame.value == 2
    assert_shows(movie, final, UNITS, 6)
    assert movie.rewired == int((final & ~masks[LAYERS[0]]).sum()) > 0
