"""Lesson 11's Pareto front: the figure draws each method's points at the cost asked for, styled by family and
kind; its front is exactly the brute-force front of the drawn points (checked by comparing every pair); and the
explorer's filters remove what they say and recompute the front over what is left, on a table made by hand and on
records of a real probe run passed through `averaged`."""

import itertools

import pytest

from sparsity_lab.experiments.methods_bench import BENCH_FILE, averaged, load_bench
from sparsity_lab.plots.pareto import COSTS, FAMILY_COLOURS, front_figure, front_rows
from sparsity_lab.widgets.pareto import ParetoExplorer


def row(method, family, structured, value, error, nonzero, compact, b1, large, units, sd=0.0):
    return dict(method=method, family=family, structured=structured, knob="none" if family == "dense" else "sparsity",
                value=value, error=error, error_sd=sd, sparsity=1 - nonzero / 266200, flops_nonzero=nonzero,
                flops_compact=compact, speedup_b1=b1, speedup_large=large, units=units, seeds=3,
                fastest_b1="compact", fastest_large="csr")


TABLE = [  # a structured point (sss 0.9) dominates mag 0.98 on FLOPs: hide structured and mag 0.98 joins the front
    row("dense", "dense", False, None, 2.0, 266200, 266200, 1.0, 1.0, [784, 300, 100, 10], 0.1),
    row("mag", "magnitude", False, 0.9, 2.3, 26620, 200000, 1.2, 1.2, [700, 290, 90, 10], 0.2),
    row("mag", "magnitude", False, 0.98, 3.5, 5324, 150000, 1.1, 1.5, [650, 280, 80, 10]),
    row("obd", "second_order", False, 0.9, 2.2, 26000, 180000, 1.3, 1.3, [600, 280, 85, 10]),
    row("obd", "second_order", False, 0.98, 4.0, 5400, 140000, 1.0, 1.4, [560, 270, 70, 10]),
    row("sss", "sss", True, 0.5, 2.1, 60000, 60000, 2.0, 2.5, [784, 80, 40, 10]),
    row("sss", "sss", True, 0.9, 3.0, 4000, 4000, 3.0, 8.0, [612, 120, 45, 10], 0.4),
    row("l0", "l0", True, 0.99, 90.0, 0, 12, 3.0, 300.0, [1, 1, 1, 10]),          # no FLOPs left: not on a log axis
]

PROBE = [  # (method, family, structured, test error, sparsity, units, flops compact, nonzero, b1 fastest, ×, large)
    ("dense", "dense", False, 5.9, 0.0, [784, 300, 100, 10], 266200, 266200, "compact", 1.1712, "masked", 1.0163),
    ("magnitude-weight-layer", "magnitude", False, 8.0, 0.9046, [644, 279, 63, 10], 197883, 25388, "csr", 1.2737,
     "csr", 1.2523),
    ("magnitude-weight-global", "magnitude", False, 6.6, 0.9001, [640, 287, 89, 10], 210113, 26597, "compact", 1.6542,
     "csr", 1.4882),
    ("magnitude-neuron-layer", "magnitude", True, 62.5, 0.9897, [78, 30, 10, 10], 2740, 2740, "csr", 1.085,
     "compact", 23.7724),
    ("magnitude-neuron-global", "magnitude", True, 90.0, 1.0, [1, 1, 1, 10], 12, 0, "csr", 2.8563, "csr", 297.9687),
    ("obd", "second_order", False, 7.6, 0.9, [415, 286, 88, 10], 144738, 26607, "csr", 1.115, "compact", 1.3694),
    ("kron-obd-neurons", "second_order", True, 26.9, 0.9897, [78, 30, 10, 10], 2740, 2740, "csr", 2.0908, "compact",
     24.0708),
]


def probe_records():
    """The probe run of `sparsity-lab bench methods` (LeNet-300-100, one seed), plus its failed OBS run."""
    keys = ("method", "family", "structured", "test_error", "sparsity", "units", "flops_compact", "flops_nonzero",
            "fastest_b1", "speedup_b1", "fastest_large", "speedup_large")
    records = [dict(zip(keys, p, strict=True), knob="none" if p[0] == "dense" else "sparsity",
                    value=None if p[0] == "dense" else 0.9, seed=0, status="ok", flops_dense=266200,
                    params_dense=266610, params_compact=0, params_nonzero=0, epochs=13) for p in PROBE]
    return records + [dict(method="obs", family="second_order", structured=False, knob="sparsity", value=0.9,
                           seed=0, status="error", message="MemoryError")]


def rounded(points):
    """Points as tuples with their numbers rounded to 9 digits, so that lists of them compare with ==."""
    return [tuple(round(float(v), 9) if isinstance(v, float | int) else v for v in p) for p in points]


def cost_of(r, x):
    column = COSTS[x][2]
    return r[column] / 1e6 if column.startswith("flops") else 1 / r[column]


def brute_front(rows, x):
    """(cost, error) of each drawable row that no other drawable row beats, by comparing every pair."""
    points = [(cost_of(r, x), r["error"]) for r in rows if cost_of(r, x) > 0]
    beaten = {q for p, q in itertools.permutations(points, 2)
              if p[0] <= q[0] and p[1] <= q[1] and (p[0] < q[0] or p[1] < q[1])}
    return sorted(set(points) - beaten)


def drawn_points(fig):
    """(method trace name, cost, error) of every marker in fig, the front trace left out."""
    return sorted((t.name, x, y) for t in fig.data if t.name != "Pareto front" for x, y in zip(t.x, t.y, strict=True))


def front_of(fig):
    front = fig.data[-1]
    assert front.name == "Pareto front" and front.line.shape == "hv"
    return list(zip(front.x, front.y, strict=True))


def test_the_figure_draws_each_method_at_the_chosen_cost_styled_by_family_and_kind():
    fig = front_figure(TABLE, "flops_nonzero")
    assert [t.name for t in fig.data] == ["dense", "mag", "obd", "sss", "Pareto front"]   # l0 had no cost > 0
    expected = sorted((r["method"], r["flops_nonzero"] / 1e6, r["error"]) for r in TABLE if r["method"] != "l0")
    assert rounded(drawn_points(fig)) == rounded(expected)
    dense, mag, obd, sss = fig.data[:4]
    assert dense.marker.symbol == "star" and dense.marker.color == "#000000"
    assert mag.marker.symbol.endswith("-open") and obd.marker.symbol.endswith("-open")
    assert not sss.marker.symbol.endswith("-open")
    assert [t.marker.color for t in (mag, obd, sss)] == [FAMILY_COLOURS[f] for f in ("magnitude", "second_order",
                                                                                      "sss")]
    assert len({t.marker.color for t in fig.data[:4]}) == 4
    assert list(sss.x) == pytest.approx([0.004, 0.06]) and list(sss.error_y.array) == [0.4, 0.0]   # cheapest first
    assert fig.layout.xaxis.type == "log" and "nonzero" in fig.layout.xaxis.title.text
    assert "l0 (sparsity = 0.99)" in fig.layout.title.text                       # named as not drawn
    assert "l0" in [t.name for t in front_figure(TABLE, "time_large").data]      # it has a time, though


@pytest.mark.parametrize("x", list(COSTS))
def test_the_front_is_the_brute_force_front_of_the_drawn_points(x):
    fig = front_figure(TABLE, x)
    assert rounded(front_of(fig)) == rounded(brute_front(TABLE, x))
    rows = front_rows(TABLE, x)
    assert rounded(list(zip(rows["cost"], rows["error"], strict=True))) == rounded(front_of(fig))
    real = averaged(probe_records())
    assert "obs" not in set(real["method"])                                      # failed runs are not averaged
    assert rounded(front_of(front_figure(real, x))) == rounded(brute_front(real.to_dict("records"), x))


def test_the_fronts_differ_by_cost_as_the_hand_table_was_built_to():
    front = front_rows(TABLE, "flops_nonzero")
    assert list(front["method"]) == ["sss", "obd", "sss", "dense"]
    assert list(front["value"].fillna(0.0)) == [0.9, 0.9, 0.5, 0.0]              # dense has no setting: NaN
    assert list(front_rows(TABLE, "time_large")["method"]) == ["l0", "sss", "sss", "dense"]


def test_hover_names_the_setting_the_error_and_the_units_per_layer():
    sss = front_figure(TABLE).data[3]
    text = sss.text[0]
    for part in ("<b>sss</b>", "structured", "sparsity = 0.9", "3.00 ± 0.40%", "612-120-45-10", "csr", "8.00×"):
        assert part in text, (part, text)
    real = front_figure(averaged(probe_records()), "time_b1")
    kron = next(t for t in real.data if t.name == "kron-obd-neurons")
    assert "78-30-10-10" in kron.text[0] and "2.09×" in kron.text[0]
    assert "reference, no pruning" in real.data[0].text[0] and "784-300-100-10" in real.data[0].text[0]


def test_hiding_structured_methods_removes_their_points_and_recomputes_the_front():
    explorer = ParetoExplorer(TABLE)
    before = rounded(front_of(explorer.figure))
    assert before == rounded(brute_front(TABLE, "flops_nonzero"))
    explorer.structured.value = False
    unstructured = [r for r in TABLE if not r["structured"]]
    assert {name for name, _, _ in drawn_points(explorer.figure)} == {"dense", "mag", "obd"}
    assert rounded(front_of(explorer.figure)) == rounded(brute_front(unstructured, "flops_nonzero")) != before
    assert list(explorer.front["method"]) == ["mag", "obd", "dense"] and "mag (sparsity = 0.98)" in \
        explorer.status.value
    explorer.unstructured.value, explorer.structured.value = False, True
    assert {name for name, _, _ in drawn_points(explorer.figure)} == {"dense", "sss"}   # dense is neither kind
    explorer.cost.value = "time_large"
    kept = [r for r in TABLE if r["structured"] or r["family"] == "dense"]
    assert rounded(front_of(explorer.figure)) == rounded(brute_front(kept, "time_large"))
    assert "large batch" in explorer.figure.layout.xaxis.title.text


def test_family_boxes_and_the_method_selector_filter_and_the_shapes_stay():
    explorer = ParetoExplorer(TABLE, x="flops_compact")
    assert list(explorer.families) == ["dense", "magnitude", "second_order", "sss", "l0"]
    shape = {t.name: t.marker.symbol for t in explorer.figure.data}
    explorer.families["second_order"].value = False
    assert "obd" not in {name for name, _, _ in drawn_points(explorer.figure)}
    kept = [r for r in TABLE if r["method"] != "obd"]
    assert rounded(front_of(explorer.figure)) == rounded(brute_front(kept, "flops_compact"))
    explorer.families["second_order"].value = True
    explorer.methods.value = ("dense", "mag")
    assert {name for name, _, _ in drawn_points(explorer.figure)} == {"dense", "mag"}
    assert rounded(front_of(explorer.figure)) == rounded(brute_front(TABLE[:3], "flops_compact"))
    assert all(t.marker.symbol == shape[t.name] for t in explorer.figure.data if t.name != "Pareto front")
    explorer.families["dense"].value = False
    explorer.families["magnitude"].value = False
    assert [t.name for t in explorer.figure.data] == ["Pareto front"] and len(explorer.front) == 0
    assert "no point shown" in explorer.status.value


def test_the_explorer_on_a_real_averaged_table():
    real = averaged(probe_records())
    explorer = ParetoExplorer(real, x="time_large")
    assert rounded(front_of(explorer.figure)) == rounded(brute_front(real.to_dict("records"), "time_large"))
    assert "magnitude-neuron-global" in explorer.status.value              # 298× faster, if at 90% error
    explorer.families["magnitude"].value = False
    assert "magnitude-neuron-global" not in explorer.status.value
    assert explorer.widget.children[-1] is explorer.status


@pytest.mark.skipif(not BENCH_FILE.exists(), reason="the benchmark cache is not made yet")
def test_the_cached_benchmark_draws_its_brute_force_front():
    real = averaged(load_bench()["records"])
    for x in COSTS:
        assert rounded(front_of(front_figure(real, x))) == rounded(brute_front(real.to_dict("records"), x))


def test_each_bad_input_is_named():
    with pytest.raises(ValueError, match="x must be one of"):
        front_figure(TABLE, "flops")
    with pytest.raises(ValueError, match=r"rows lack \['error'\]: pass experiments.methods_bench.averaged"):
        front_figure([{"method": "a", "family": "f", "structured": False, "test_error": 1.0}])
    with pytest.raises(ValueError, match="'speedup_b1' that x='time_b1' needs"):
        front_figure([{k: v for k, v in TABLE[0].items() if k != "speedup_b1"}], "time_b1")
    with pytest.raises(ValueError, match="rows is empty"):
        ParetoExplorer([])
    assert [t.name for t in front_figure([]).data] == ["Pareto front"]


def test_the_max_error_slider_hides_worse_results_but_never_the_dense_reference():
    rows = [{"method": "dense", "family": "dense", "structured": False, "error": 6.0, "flops_nonzero": 2e5,
             "flops_compact": 2e5, "speedup_b1": 1.0, "speedup_large": 1.0},
            {"method": "a", "family": "magnitude", "structured": True, "error": 7.0, "flops_nonzero": 5e4,
             "flops_compact": 5e4, "speedup_b1": 2.0, "speedup_large": 4.0},
            {"method": "b", "family": "magnitude", "structured": False, "error": 89.5, "flops_nonzero": 1e3,
             "flops_compact": 1e5, "speedup_b1": 1.5, "speedup_large": 2.0}]
    explorer = ParetoExplorer(rows)
    assert explorer.max_error.value == 90 and set(explorer.visible()["method"]) == {"dense", "a", "b"}
    explorer.max_error.value = 89      # one step left from the start hides the worst point
    assert set(explorer.visible()["method"]) == {"dense", "a"}
    assert list(explorer.front["method"]) == ["a", "dense"]
    explorer.max_error.value = 0
    assert set(explorer.visible()["method"]) == {"dense"}
