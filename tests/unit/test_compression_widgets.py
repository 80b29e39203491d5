"""Lesson 12's figures and views: Deep Compression's stage bars, a layer's centroids under the k slider, and a
teacher's soft targets under the temperature slider, driven headless."""

import numpy as np
import pandas as pd
import pytest

from sparsity_lab.plots.compression import cluster_curve, shared_histogram, soft_target_bars, softmax, stage_bars
from sparsity_lab.widgets.compression import ClusterExplorer, TemperatureExplorer


def _sweep():
    rng = np.random.default_rng(0)
    weights = {"a": np.concatenate([rng.uniform(-1, -0.5, 50), rng.uniform(0.5, 1, 50)]), "b": rng.normal(size=40)}
    results = {k: {"error": 10 / k, "KB": 5.0 + k, "ratio": 100 / (5 + k),
                   "centroids": {n: np.linspace(w.min(), w.max(), k) for n, w in weights.items()}} for k in (2, 4, 8)}
    return results, weights


def test_softmax_matches_the_definition_and_flattens_with_temperature():
    z = np.array([[3.0, 1.0, -2.0], [0.0, 0.0, 0.0]])
    for t in (0.5, 1.0, 4.0):
        expected = np.exp(z / t) / np.exp(z / t).sum(-1, keepdims=True)
        assert np.allclose(softmax(z, t), expected)
    assert softmax(z, 10.0)[0].max() < softmax(z, 1.0)[0].max()
    with pytest.raises(ValueError, match="temperature"):
        softmax(z, 0.0)


def test_stage_bars_draw_every_stage_with_its_ratio_and_the_paper():
    stages = pd.DataFrame({"KB": [1000.0, 100.0, 40.0, 30.0], "ratio": [1.0, 10.0, 25.0, 33.3]},
                          index=["dense", "pruned", "shared", "huffman"])
    fig = stage_bars(stages, paper={"dense": 1070, "huffman": 27})
    assert list(fig.data[0].x) == ["dense", "pruned", "shared", "huffman"]
    assert list(fig.data[0].y) == [1000.0, 100.0, 40.0, 30.0] and "33×" in fig.data[0].text[-1]
    assert list(fig.data[1].y) == [1070, 27] and fig.layout.yaxis.type == "log"


def test_histogram_curve_and_bars_hold_the_values_given():
    fig = shared_histogram(np.arange(10.0), np.array([1.0, 5.0]))
    assert list(fig.data[0].x) == list(range(10))
    assert list(fig.data[1].x) == [1.0] * 3 + [5.0] * 3 and np.isnan(fig.data[1].y[2])   # two lines, NaN-separated
    curve = cluster_curve([{"k": 4, "error": 2.0, "KB": 9.0}, {"k": 2, "error": 3.0, "KB": 8.0}], current=4)
    assert list(curve.data[0].x) == [2, 4] and list(curve.data[1].y) == [8.0, 9.0]
    assert list(curve.data[2].x) == [4] and list(curve.data[3].y) == [9.0]
    bars = soft_target_bars({"T = 1": np.array([0.9, 0.1]), "T = 4": np.array([0.6, 0.4])})
    assert [b.name for b in bars.data] == ["T = 1", "T = 4"] and list(bars.data[1].y) == [0.6, 0.4]


def test_the_k_slider_moves_the_centroids_the_marker_and_the_status():
    results, weights = _sweep()
    view = ClusterExplorer(results, weights, current=8)
    lines = lambda: sorted({x for x in view.histogram.data[1].x if x == x})  # noqa: E731
    assert len(lines()) == 8 and "k = 8" in view.status.value
    view.k.value = 2
    assert np.allclose(lines(), [weights["a"].min(), weights["a"].max()])
    assert list(view.curve.data[2].x) == [2] and "k = 2: error 5.0%" in view.status.value
    view.layer.value = "b"
    assert np.allclose(view.histogram.data[0].x, weights["b"])


def test_the_cluster_explorer_rejects_what_it_cannot_show():
    results, weights = _sweep()
    with pytest.raises(ValueError, match="results is empty"):
        ClusterExplorer({}, weights)
    with pytest.raises(ValueError, match="current must be one of"):
        ClusterExplorer(results, weights, current=3)
    with pytest.raises(ValueError, match="no layer 'c'"):
        ClusterExplorer(results, {**weights, "c": np.zeros(3)})


def test_the_temperature_slider_shows_softmax_of_z_over_t_and_raises_the_entropy():
    logits = np.array([[8.0, 2.0, 1.0, 0.0], [0.0, 5.0, 1.0, 1.0]])
    view = TemperatureExplorer(logits, labels=[0, 1], temperatures=(1, 4, 16))
    entropies = []
    for t in (1, 4, 16):
        view.temperature.value = t
        assert np.allclose(view.figure.data[1].y, softmax(logits[0], t))
        assert np.allclose(view.figure.data[0].y, softmax(logits[0], 1))
        entropies.append(float(view.status.value.split("entropy ")[1].split(" bits")[0]))
    assert entropies[0] < entropies[1] < entropies[2]
    view.example.value = 1
    assert np.allclose(view.figure.data[1].y, softmax(logits[1], 16)) and "a 1" in view.figure.layout.title.text
    with pytest.raises(ValueError, match="logits must be"):
        TemperatureExplorer(np.zeros(4))
    with pytest.raises(ValueError, match="labels must have one entry"):
        TemperatureExplorer(logits, labels=[0])
