"""Lesson 12's figures and views: Deep Compression's stage bars, a layer's centroids under the k slider, and a
teacher's soft targets under the temperature slider, driven headless and checked against numbers computed here."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sparsity_lab.plots.compression import (
    cluster_curve,
    digit_image,
    entropy_bits,
    shared_histogram,
    soft_target_bars,
    softmax,
    stage_bars,
    weight_counts,
)
from sparsity_lab.widgets.compression import ClusterExplorer, TemperatureExplorer


def _sweep():
    rng = np.random.default_rng(0)
    weights = {"a": np.concatenate([rng.uniform(-1, -0.5, 50), rng.uniform(0.5, 1, 50)]), "b": rng.normal(size=40)}
    results = {k: {"error": 10 / k, "KB": 5.0 + k, "ratio": 100 / (5 + k),
                   "centroids": {n: np.linspace(w.min(), w.max(), k) for n, w in weights.items()}} for k in (2, 4, 8)}
    return results, weights


def _softmax_by_hand(z, t):
    e = [math.exp(v / t) for v in z]
    return np.array([v / sum(e) for v in e])


def _lines(trace) -> list[float]:
    """The x of each vertical line of a NaN-separated line trace."""
    return sorted({float(x) for x in trace.x if x == x})


# --- the plots --------------------------------------------------------------------------------------------------

def test_softmax_matches_the_definition_and_flattens_with_temperature():
    z = np.array([[3.0, 1.0, -2.0], [0.0, 0.0, 0.0]])
    for t in (0.5, 1.0, 4.0):
        assert np.allclose(softmax(z, t), [_softmax_by_hand(row, t) for row in z])
    assert softmax(z, 10.0)[0].max() < softmax(z, 1.0)[0].max()
    assert np.allclose(softmax(np.array([1000.0, 0.0])), [1.0, 0.0])       # no overflow
    with pytest.raises(ValueError, match="temperature"):
        softmax(z, 0.0)


def test_entropy_in_bits_agrees_with_torch():
    p = softmax(np.array([[2.0, 1.0, 0.0, -1.0], [5.0, 5.0, 5.0, 5.0]]), 1.5)
    expected = torch.distributions.Categorical(probs=torch.tensor(p)).entropy() / math.log(2)
    assert np.allclose(entropy_bits(p), expected.numpy())
    assert entropy_bits(np.array([0.0, 1.0, 0.0])) == 0 and entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3)


def test_stage_bars_draw_every_stage_with_its_ratio_and_the_paper():
    stages = pd.DataFrame({"KB": [30.0, 1000.0, 100.0, 40.0], "ratio": [33.3, 1.0, 10.0, 25.0]},
                          index=["huffman", "dense", "pruned", "shared"])
    fig = stage_bars(stages, paper={"dense": 1070, "huffman": 27})
    assert list(fig.data[0].x) == ["dense", "pruned", "shared", "huffman"]          # the pipeline's order
    assert list(fig.data[0].y) == [1000.0, 100.0, 40.0, 30.0] and fig.data[0].text[-1] == "30.0 KB, 33×"
    assert list(fig.data[1].x) == ["dense", "huffman"] and list(fig.data[1].y) == [1070, 27]
    assert fig.data[1].text[-1] == "27 KB, 40×" and fig.layout.yaxis.type == "log"   # 1070 / 27 = 39.6
    assert len(stage_bars(stages).data) == 1
    with pytest.raises(ValueError, match="stages is empty"):
        stage_bars(stages.iloc[:0])
    with pytest.raises(ValueError, match=r"lacks \['ratio'\]"):
        stage_bars(stages[["KB"]])


def test_shared_histogram_counts_the_weights_and_draws_each_centroid_to_the_tallest_bar():
    weights = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 3.0])       # bins [0, 1), [1, 2), [2, 3]: 2, 3 and 1 weights
    fig = shared_histogram(weights, np.array([0.5, 2.0]), title="w", bins=3)
    assert np.allclose(fig.data[0].x, [0.5, 1.5, 2.5]) and list(fig.data[0].y) == [2, 3, 1]
    assert list(fig.data[1].x) == [0.5] * 3 + [2.0] * 3 and fig.data[1].name == "centroids"
    assert list(fig.data[1].y[:2]) == [0, 3] and np.isnan(fig.data[1].y[2])        # two lines, NaN-separated
    rng = np.random.default_rng(1)
    w = rng.normal(size=500)
    centres, counts = weight_counts(w, 20)
    edges = np.linspace(w.min(), w.max(), 21)
    by_hand = [int(((w >= lo) & ((w < hi) | (hi == edges[-1]))).sum())          # the last bin holds its right edge
               for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    assert list(counts) == by_hand and counts.sum() == 500 and np.allclose(centres, (edges[1:] + edges[:-1]) / 2)
    with pytest.raises(ValueError, match="centroids is empty"):
        shared_histogram(w, np.array([]))


def test_cluster_curve_puts_error_and_size_against_k_and_marks_the_current_k():
    rows = [{"k": 4, "error": 2.0, "KB": 9.0}, {"k": 2, "error": 3.0, "KB": 8.0}]
    curve = cluster_curve(rows, current=4)
    assert list(curve.data[0].x) == [2, 4] and list(curve.data[0].y) == [3.0, 2.0]
    assert list(curve.data[1].y) == [8.0, 9.0]
    assert list(curve.data[2].x) == [4] and list(curve.data[2].y) == [2.0] and list(curve.data[3].y) == [9.0]
    assert curve.layout.xaxis.type == "log" and list(curve.layout.xaxis.tickvals) == [2, 4]
    assert len(cluster_curve(rows).data[2].x) == 0
    with pytest.raises(ValueError, match="current must be one of the ks"):
        cluster_curve(rows, current=3)
    with pytest.raises(ValueError, match="rows need the keys"):
        cluster_curve([{"k": 2, "error": 1.0}])
    with pytest.raises(ValueError, match="rows is empty"):
        cluster_curve([])


def test_soft_target_bars_group_the_vectors_given():
    bars = soft_target_bars({"T = 1": np.array([0.9, 0.1]), "T = 4": np.array([0.6, 0.4])}, log=True)
    assert [b.name for b in bars.data] == ["T = 1", "T = 4"] and list(bars.data[1].y) == [0.6, 0.4]
    assert list(bars.data[0].x) == [0, 1] and bars.layout.barmode == "group" and bars.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="same number of classes"):
        soft_target_bars({"a": np.ones(3) / 3, "b": np.ones(2) / 2})
    with pytest.raises(ValueError, match="probs is empty"):
        soft_target_bars({})


def test_digit_image_is_drawn_the_right_way_up():
    image = np.arange(16.0).reshape(4, 4)
    for given in (image, image.ravel(), image[None]):
        z = np.asarray(digit_image(given).data[0].z)
        assert np.array_equal(z[-1], image[0])              # plotly's row 0 is the bottom: row 0 goes last
    with pytest.raises(ValueError, match="image must hold side² pixels"):
        digit_image(np.zeros(10))


# --- the k slider -----------------------------------------------------------------------------------------------

def test_the_k_slider_moves_the_centroids_the_marker_and_the_status():
    results, weights = _sweep()
    view = ClusterExplorer(results, weights, current=8)
    assert np.allclose(_lines(view.histogram.data[1]), results[8]["centroids"]["a"])
    assert list(view.curve.data[2].x) == [8] and view.status.value == "k = 8: error 1.2%, 13.0 KB (8×)"
    view.k.value = 2
    assert np.allclose(_lines(view.histogram.data[1]), [weights["a"].min(), weights["a"].max()])
    assert list(view.curve.data[2].x) == [2] and list(view.curve.data[3].y) == [7.0]
    assert view.status.value == "k = 2: error 5.0%, 7.0 KB (14×)" and "2 centroids" in view.histogram.layout.title.text
    assert list(view.histogram.data[0].y) == list(np.histogram(weights["a"], 120)[0])   # the bars stay


def test_the_layer_dropdown_shows_that_layers_weights_and_centroids():
    results, weights = _sweep()
    view = ClusterExplorer(results, weights)
    assert view.k.value == 8                                   # the largest k by default
    curve_before = [list(t.y) for t in view.curve.data]
    view.layer.value = "b"
    assert list(view.histogram.data[0].y) == list(np.histogram(weights["b"], 120)[0])
    assert np.allclose(_lines(view.histogram.data[1]), results[8]["centroids"]["b"])
    assert [list(t.y) for t in view.curve.data] == curve_before and view.histogram.layout.title.text.startswith("b:")


def test_the_status_reads_like_the_lessons_line():
    view = ClusterExplorer({16: {"error": 6.5, "KB": 24.1, "ratio": 44.3, "centroids": {"w": np.linspace(-1, 1, 16)}}},
                           {"w": torch.linspace(-1, 1, 50, requires_grad=True)})
    assert view.status.value == "k = 16: error 6.5%, 24.1 KB (44×)"


def test_the_cluster_explorer_rejects_what_it_cannot_show():
    results, weights = _sweep()
    with pytest.raises(ValueError, match="results is empty"):
        ClusterExplorer({}, weights)
    with pytest.raises(ValueError, match="weights is empty"):
        ClusterExplorer(results, {})
    with pytest.raises(ValueError, match=r"current must be one of the ks of results \[2, 4, 8\], got 3"):
        ClusterExplorer(results, weights, current=3)
    with pytest.raises(ValueError, match="no layer 'c'"):
        ClusterExplorer(results, {**weights, "c": np.zeros(3)})
    with pytest.raises(ValueError, match=r"results\[4\] lacks \['ratio'\]"):
        ClusterExplorer({**results, 4: {k: v for k, v in results[4].items() if k != "ratio"}}, weights)


# --- the temperature slider -------------------------------------------------------------------------------------

def test_the_temperature_slider_shows_softmax_of_z_over_t_and_raises_the_entropy():
    logits = np.array([[8.0, 2.0, 1.0, 0.0], [0.0, 5.0, 1.0, 1.0]])
    view = TemperatureExplorer(logits, labels=[0, 1], temperatures=(1, 4, 16))
    assert view.temperature.value == 4
    entropies = []
    for t in (1, 4, 16):
        view.temperature.value = t
        p = _softmax_by_hand(logits[0], t)
        assert np.allclose(view.figure.data[1].y, p) and view.figure.data[1].name == f"T = {t}"
        assert np.allclose(view.figure.data[0].y, _softmax_by_hand(logits[0], 1))
        entropy = -sum(q * math.log2(q) for q in p)
        assert view.status.value == (f"T = {t}: entropy {entropy:.2f} bits, {1 - p.max():.1%} of the mass off the "
                                     "top class")
        entropies.append(entropy)
    assert entropies[0] < entropies[1] < entropies[2]
    view.example.value = 1
    assert np.allclose(view.figure.data[1].y, _softmax_by_hand(logits[1], 16))
    assert "a 1" in view.figure.layout.title.text


def test_the_temperature_explorer_takes_tensors_and_shows_each_examples_image():
    logits = torch.randn(3, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    images = torch.rand(3, 28 * 28, generator=torch.Generator().manual_seed(1))
    view = TemperatureExplorer(logits, labels=torch.tensor([7, 2, 1]), images=images, current=8)
    assert view.temperature.value == 8 and "(a 7)" in view.figure.layout.title.text
    assert np.allclose(np.asarray(view.image.data[0].z)[::-1].ravel(), images[0].numpy())
    view.example.value = 2
    assert np.allclose(np.asarray(view.image.data[0].z)[::-1].ravel(), images[2].numpy())
    assert np.allclose(view.figure.data[1].y, _softmax_by_hand(logits[2].tolist(), 8))
    assert TemperatureExplorer(logits.detach()).image is None
    square = TemperatureExplorer(logits.detach(), images=images.reshape(3, 1, 28, 28))
    assert np.allclose(np.asarray(square.image.data[0].z)[::-1].ravel(), images[0].numpy())


def test_the_temperature_explorer_rejects_what_it_cannot_show():
    logits = np.zeros((2, 4))
    for kwargs, message in (({"logits": np.zeros(4)}, "logits must be"), ({"labels": [0]}, "labels must have one"),
                            ({"images": np.zeros((1, 16))}, "images must have one image"),
                            ({"images": np.zeros((2, 15))}, "images must be square"),
                            ({"temperatures": (1, 0)}, "temperatures must be positive"),
                            ({"temperatures": ()}, "temperatures must be positive"),
                            ({"current": 3}, r"current must be one of temperatures \[1, 2, 4, 8, 16, 20\]")):
        with pytest.raises(ValueError, match=message):
            TemperatureExplorer(**{"logits": logits, **kwargs})
