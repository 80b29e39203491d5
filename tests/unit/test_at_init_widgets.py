"""Lesson 09's figures and explorer: the pictures show exactly the masks they are given (checked against arrays
laid out by hand), the bars their densities, the read-out its hand-counted pixels and dead neurons, and the error
curve the seeds' mean, best and worst worked out here."""

import numpy as np
import pytest
import torch
from receptive_field_layout import laid_out, shown

from sparsity_lab.plots.at_init import error_vs_sparsity, layer_densities, method_colours
from sparsity_lab.widgets.at_init import SparseStartExplorer

SIDE, SHAPES, GRID = 4, {"layers.0.weight": (5, 16), "layers.1.weight": (3, 5)}, [0.25, 0.5, 0.75]


def exact(shape, sparsity, generator):
    """A mask of `shape` removing exactly round(sparsity · numel) weights at random places."""
    n = int(np.prod(shape))
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.randperm(n, generator=generator)[:n - round(sparsity * n)]] = True
    return keep.reshape(shape)


@pytest.fixture
def masks():
    g = torch.Generator().manual_seed(0)
    return {method: [{n: exact(shape, s, g) for n, shape in SHAPES.items()} for s in GRID] for method in ("A", "B")}


def test_the_pictures_follow_the_method_and_the_sparsity(masks):
    explorer = SparseStartExplorer(masks, GRID, side=SIDE, sparsity=0.7, n_units=4, columns=3)
    assert explorer.sparsity.value == 0.75 and explorer.method.value == "A"          # the nearest grid value
    for method, k in [("A", 2), ("B", 2), ("B", 0), ("A", 1)]:
        explorer.method.value, explorer.sparsity.value = method, GRID[k]
        first = masks[method][k]["layers.0.weight"]
        np.testing.assert_array_equal(shown(explorer.figure.data[0].z), laid_out(first, 4, 3, SIDE))
        read = first.any(0).reshape(SIDE, SIDE).numpy()[::-1]
        np.testing.assert_array_equal(shown(explorer.figure.data[1].z), read)
        assert all(torch.equal(explorer.state()[n], masks[method][k][n]) for n in SHAPES)
    assert not np.array_equal(laid_out(masks["A"][1]["layers.0.weight"], 4, 3, SIDE),
                              laid_out(masks["B"][1]["layers.0.weight"], 4, 3, SIDE))   # so the loop saw changes


def test_the_bars_are_every_methods_densities_at_the_chosen_sparsity(masks):
    explorer = SparseStartExplorer(masks, GRID, side=SIDE, sparsity=0.25)
    for k in (0, 2):
        explorer.sparsity.value = GRID[k]
        assert [bar.name for bar in explorer.densities.data] == ["A", "B"]
        for bar, method in zip(explorer.densities.data, ("A", "B"), strict=True):
            assert list(bar.x) == ["16→5", "5→3"]
            expected = [100 * masks[method][k][n].float().mean().item() for n in SHAPES]
            assert list(bar.y) == pytest.approx(expected)
        assert f"{GRID[k]:.1%}" in explorer.densities.layout.title.text
    assert list(explorer.densities.data[0].y) == pytest.approx([100 * 20 / 80, 100 * 4 / 15])   # 75% removed


def test_the_read_out_counts_pixels_read_and_neurons_left_without_inputs():
    first = torch.zeros(5, 16, dtype=torch.bool)
    first[0, [0, 1, 2]] = True
    first[1, [2, 15]] = True                                            # pixels 0, 1, 2, 15 read; units 2-4 dead
    second = torch.ones(3, 5, dtype=torch.bool)
    hand = {"hand": [{"layers.0.weight": first, "layers.1.weight": second}]}
    explorer = SparseStartExplorer(hand, [0.9], side=SIDE)
    assert (explorer.pixels_read, explorer.dead_units) == (4, 3)
    text = explorer.status.value
    for part in ("hand", "4 of 16 input pixels", "3 of 5 first-layer neurons", "16→5: 5 of 80 kept",
                 "5→3: 15 of 15 kept", f"{20 / 95:.2%} of the weights kept"):
        assert part in text, (part, text)


def test_each_bad_input_is_named(masks):
    def broken(change):
        bad = {m: [dict(d) for d in per] for m, per in masks.items()}
        change(bad)
        return bad

    cases = [
        (broken(lambda b: b["B"].pop()), GRID, SIDE, "'B' has 2 mask dicts for 3 sparsities"),
        (broken(lambda b: b["A"][1].pop("layers.1.weight")), GRID, SIDE, "'A' at sparsity 0.5 has layers"),
        (broken(lambda b: b["B"][2].update({"layers.1.weight": torch.ones(3, 4, dtype=torch.bool)})), GRID, SIDE,
         r"'layers.1.weight' has shape \(3, 4\), expected \(3, 5\)"),
        (masks, GRID, 5, "16 inputs, not side·side = 25"),
        (masks, [0.25, 0.25, 0.75], SIDE, "distinct"),
        ({}, GRID, SIDE, "empty"),
    ]
    for bad, grid, side, message in cases:
        with pytest.raises(ValueError, match=message):
            SparseStartExplorer(bad, grid, side=side)
    with pytest.raises(ValueError, match="'layers.9.weight' is not among"):
        SparseStartExplorer(masks, GRID, side=SIDE, layer="layers.9.weight")
    with pytest.raises(ValueError, match="3 densities for 2 layers"):
        layer_densities({"A": [0.1, 0.2, 0.3]}, ["16→5", "5→3"])


def test_the_error_curve_is_the_seeds_mean_with_their_spread_and_controls_dashed_in_their_parents_colour():
    rng = np.random.default_rng(1)
    errors = {(m, s, seed): float(rng.uniform(1, 9)) for m in ("SNIP", "SNIP shuffled", "lottery")
              for s in (0.9, 0.5) for seed in range(3)}
    records = [{"method": m, "sparsity": s, "seed": seed, "error": e} for (m, s, seed), e in errors.items()]
    fig = error_vs_sparsity(records, dense=1.5)
    assert [t.name for t in fig.data] == ["SNIP", "SNIP shuffled", "lottery", "dense"]
    for trace in fig.data[:3]:
        assert list(trace.x) == pytest.approx([50, 10])                      # sparsest last
        seeds = [[errors[trace.name, s, seed] for seed in range(3)] for s in (0.5, 0.9)]
        mean = [sum(e) / 3 for e in seeds]
        assert list(trace.y) == pytest.approx(mean)
        assert list(trace.error_y.array) == pytest.approx([max(e) - m for e, m in zip(seeds, mean, strict=True)])
        assert list(trace.error_y.arrayminus) == pytest.approx([m - min(e) for e, m in zip(seeds, mean, strict=True)])
    snip, shuffled, lottery, dense = fig.data
    assert shuffled.line.dash == "dash" and snip.line.dash == "solid" and lottery.line.dash == "solid"
    assert shuffled.line.color == snip.line.color != lottery.line.color
    assert list(dense.y) == [1.5, 1.5] and dense.line.dash == "dash"
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.autorange == "reversed"
    assert error_vs_sparsity(records, dash={"SNIP": "dot"}).data[0].line.dash == "dot"
    bars = layer_densities({"SNIP": [0.5, 1.0], "lottery": [0.2, 0.3]}, ["a", "b"], sparsity=0.6)
    assert [b.marker.color for b in bars.data] == [snip.line.color, lottery.line.color]


def test_the_lessons_methods_get_distinct_colours_the_same_in_every_figure():
    mains = ["magnitude (trained)", "lottery", "SNIP", "GraSP", "random", "other", "another"]
    colours = method_colours(mains + ["GraSP reinit", "other shuffled"])
    assert len({colours[m] for m in mains}) == len(mains), colours
    assert colours["GraSP reinit"] == colours["GraSP"] and colours["other shuffled"] == colours["other"]
    assert method_colours(["random", "SNIP"]) == {m: colours[m] for m in ("random", "SNIP")}   # not order-dependent
