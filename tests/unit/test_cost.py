"""sparsity_lab.cost: parameter counts and FLOPs (dense / nonzero / smallest submatrix) against hand counts."""

import copy

import pytest
import torch
from torch import nn

from sparsity_lab.compact import compact
from sparsity_lab.cost import count_parameters, flops, latency, machine, matrix_flops, variants
from sparsity_lab.masks import apply_masks, combine
from sparsity_lab.models import MLP, LeNet5, build
from sparsity_lab.structure import unit_groups


def ones(*shape):
    return torch.ones(shape, dtype=torch.bool)


# ------------------------------------------------------------------------------------------ one matrix
@pytest.mark.parametrize("w, dense, nonzero, submatrix", [
    ([[1, 0, 0, 0], [0, 0, 0, 0], [0, 2, 0, 3]], 12, 3, 2 * 3),  # rows {0, 2} × columns {0, 1, 3}
    ([[0, 0], [0, 0]], 4, 0, 0),
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], 9, 3, 9),  # a diagonal: sparse, yet no smaller submatrix
    ([[0, 5, 5, 0]], 4, 2, 2),
    ([[7.0]], 1, 1, 1),
])
def test_matrix_flops_by_hand(w, dense, nonzero, submatrix):
    assert matrix_flops(torch.tensor(w, dtype=torch.float32)) == {"dense": dense, "nonzero": nonzero,
                                                                   "submatrix": submatrix}


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4)])
def test_matrix_flops_needs_a_matrix(shape):
    with pytest.raises(ValueError, match="2-D"):
        matrix_flops(torch.ones(shape))


# ------------------------------------------------------------------------------------------ MLP
def test_mlp_flops_by_hand():
    mlp = build("mlp", sizes=[4, 3, 2])
    dense = flops(mlp, torch.rand(1, 4))
    assert (dense["dense"], dense["nonzero"], dense["submatrix"]) == (4 * 3 + 3 * 2,) * 3
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 0] = mask[1, 2] = True  # 2 nonzeros in rows {0, 1} × columns {0, 2}
    apply_masks(mlp, {"layers.0.weight": mask})
    counts = flops(mlp, torch.rand(1, 4))
    assert counts["layers"] == [{"layer": "layers.0.weight", "dense": 12, "nonzero": 2, "submatrix": 4},
                                {"layer": "layers.1.weight", "dense": 6, "nonzero": 6, "submatrix": 6}]
    assert (counts["dense"], counts["nonzero"], counts["submatrix"]) == (18, 8, 10)
    # per example: a batch of images, or flattened ones, gives the same counts
    assert flops(mlp, torch.rand(5, 1, 2, 2)) == counts


def test_lenet_300_100_dense_flops():
    counts = flops(build("lenet-300-100"), torch.rand(1, 1, 28, 28))
    assert counts["dense"] == counts["nonzero"] == counts["submatrix"] == 784 * 300 + 300 * 100 + 100 * 10


def test_submatrix_flops_are_what_compaction_reaches_for_unit_masks():
    mlp = build("mlp", sizes=[10, 8, 6, 3])
    g = torch.Generator().manual_seed(0)
    kept = [7, 5, 2]
    masks = combine(*[grp.masks(torch.randperm(grp.n, generator=g) < k)
                      for grp, k in zip(unit_groups(mlp), kept, strict=True)])
    masked = apply_masks(copy.deepcopy(mlp), masks)
    x = torch.rand(1, 10)
    by_hand = 7 * 5 + 5 * 2 + 2 * 3
    assert flops(masked, x)["submatrix"] == by_hand
    assert flops(compact(masked), x)["dense"] == by_hand
    assert flops(masked, x)["dense"] == 10 * 8 + 8 * 6 + 6 * 3


# ------------------------------------------------------------------------------------------ conv
def test_lenet5_flops_count_output_positions():
    net = LeNet5()
    conv1, conv2, fc1, fc2 = 20 * 25 * 24 * 24, 50 * 20 * 25 * 8 * 8, 800 * 500, 500 * 10
    counts = flops(net, torch.rand(1, 1, 28, 28))
    assert [row["dense"] for row in counts["layers"]] == [conv1, conv2, fc1, fc2]
    assert counts["dense"] == 2_293_000 == conv1 + conv2 + fc1 + fc2
    assert flops(net, torch.rand(3, 1, 28, 28))["dense"] == counts["dense"]

    masks = {"conv1.weight": ones(20, 1, 5, 5), "conv2.weight": ones(50, 20, 5, 5), "fc1.weight": ones(500, 800)}
    masks["conv1.weight"][:10] = False            # half the filters: rows of conv1's matrix
    masks["conv2.weight"][:, :10] = False         # half the input channels: columns of conv2's matrix
    masks["conv2.weight"][0, 10, 0, 0] = False    # one scattered zero: fewer nonzeros, same submatrix
    r, c = torch.meshgrid(torch.arange(500), torch.arange(800), indexing="ij")
    masks["fc1.weight"] = (r < 250) & (c < 400) & ((r + c) % 2 == 0)  # a checkerboard in one corner
    counts = flops(apply_masks(net, masks), torch.rand(1, 1, 28, 28))
    rows = {row["layer"]: row for row in counts["layers"]}
    assert rows["conv1.weight"] == {"layer": "conv1.weight", "dense": conv1, "nonzero": 10 * 25 * 576,
                                    "submatrix": 10 * 25 * 576}
    assert rows["conv2.weight"]["nonzero"] == (50 * 10 * 25 - 1) * 64
    assert rows["conv2.weight"]["submatrix"] == 50 * (10 * 25) * 64
    assert (rows["fc1.weight"]["nonzero"], rows["fc1.weight"]["submatrix"]) == (250 * 400 // 2, 250 * 400)
    assert rows["fc2.weight"]["nonzero"] == fc2


def test_conv_flops_other_sizes():
    net = LeNet5(conv1=2, conv2=4, fc1=6, n_classes=5, in_channels=3, image_size=32)
    # 32 → conv 28 → pool 14 → conv 10 → pool 5
    expected = 2 * (3 * 25) * 28 * 28 + 4 * (2 * 25) * 10 * 10 + (4 * 5 * 5) * 6 + 6 * 5
    assert flops(net, torch.rand(1, 3, 32, 32))["dense"] == expected == 138_230


# ------------------------------------------------------------------------------------------ LSTM
def test_lstm_flops_per_token():
    lm = build("lstm-lm", vocab=7, embedding=3, hidden=(4, 5))
    layer1, layer2, decoder = 16 * 3 + 16 * 4, 20 * 4 + 20 * 5, 7 * 5
    one = flops(lm, torch.zeros(1, 1, dtype=torch.long))
    assert one["dense"] == layer1 + layer2 + decoder == 327  # the embedding is a look-up, not counted
    assert [row["layer"] for row in one["layers"]] == ["rnns.0.weight_ih", "rnns.0.weight_hh",
                                                       "rnns.1.weight_ih", "rnns.1.weight_hh", "decoder.weight"]
    assert flops(lm, torch.zeros(6, 2, dtype=torch.long)) == one  # per token, whatever (T, B)
    assert flops(lm, torch.zeros(6, 2, dtype=torch.int32)) == one  # int32 ids are tokens too

    masks = {"rnns.0.weight_ih": ones(16, 3), "rnns.0.weight_hh": ones(16, 4)}
    masks["rnns.0.weight_ih"][1::4] = False   # unit 1 in every gate: 4 rows
    masks["rnns.0.weight_ih"][0, 0] = False   # a scattered zero
    masks["rnns.0.weight_hh"][:, 2] = False   # the state of unit 2 is read by nobody
    rows = {r["layer"]: r for r in flops(apply_masks(lm, masks), torch.zeros(3, 2, dtype=torch.long))["layers"]}
    assert (rows["rnns.0.weight_ih"]["nonzero"], rows["rnns.0.weight_ih"]["submatrix"]) == (12 * 3 - 1, 12 * 3)
    assert (rows["rnns.0.weight_hh"]["nonzero"], rows["rnns.0.weight_hh"]["submatrix"]) == (16 * 3, 16 * 3)
    assert rows["rnns.1.weight_ih"]["nonzero"] == 80


# ------------------------------------------------------------------------------------------ parameters
def test_count_parameters_with_and_without_masks():
    mlp = build("mlp", sizes=[4, 3, 2])
    assert count_parameters(mlp) == {"total": 12 + 3 + 6 + 2, "nonzero": 23}
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 0] = mask[1, 2] = True
    apply_masks(mlp, {"layers.0.weight": mask})
    assert count_parameters(mlp) == {"total": 23, "nonzero": 23 - 10}  # the original under the mask is not counted
    with torch.no_grad():
        mlp.layers[1].bias[0] = 0.0
    assert count_parameters(mlp) == {"total": 23, "nonzero": 12}


def test_count_parameters_of_an_lstm_language_model():
    lm = build("lstm-lm", vocab=7, embedding=3, hidden=(4, 5))
    total = 7 * 3 + (16 * 3 + 16 * 4 + 16) + (20 * 4 + 20 * 5 + 20) + (7 * 5 + 7)
    assert count_parameters(lm) == {"total": total, "nonzero": total}
    apply_masks(lm, {"embedding.weight": torch.zeros(7, 3, dtype=torch.bool)})
    assert count_parameters(lm) == {"total": total, "nonzero": total - 21}


# ------------------------------------------------------------------------------------------ latency
def test_latency_measures_and_restores_the_thread_count():
    threads = torch.get_num_threads()
    seconds = latency(MLP([8, 4, 2]), torch.rand(2, 8), threads=1, min_run_time=0.01)
    assert 0 < seconds < 1
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError, match="threads"):
        latency(nn.Linear(2, 2), torch.rand(1, 2), threads=0)


def test_variants_count_and_time_masked_compact_and_csr():
    mlp = build("mlp", sizes=[10, 8, 6, 3])
    g = torch.Generator().manual_seed(0)
    masks = combine(*[grp.masks(torch.randperm(grp.n, generator=g) < k)
                      for grp, k in zip(unit_groups(mlp), [7, 5, 2], strict=True)])
    masked = apply_masks(copy.deepcopy(mlp), masks)
    x = torch.rand(16, 10)
    table = variants(masked, x, rounds=1)
    assert list(table.columns) == ["variant", "params", "MACs computed", "latency ms", "speed-up"]
    assert list(table["variant"]) == ["masked dense", "compact dense", "sparse CSR"]
    nonzero = count_parameters(masked)["nonzero"]
    assert list(table["params"]) == [10 * 8 + 8 + 8 * 6 + 6 + 6 * 3 + 3, 7 * 5 + 5 + 5 * 2 + 2 + 2 * 3 + 3, nonzero]
    assert list(table["MACs computed"]) == [10 * 8 + 8 * 6 + 6 * 3, 7 * 5 + 5 * 2 + 2 * 3,
                                            flops(masked, x[:1])["nonzero"]]
    assert (table["latency ms"] > 0).all()
    speedup = table["latency ms"].iloc[0] / table["latency ms"]
    assert table["speed-up"].tolist() == pytest.approx(speedup.tolist()) and table["speed-up"].iloc[0] == 1.0


def test_machine_names_the_cpu_cores_torch_and_threads():
    import os

    line = machine(2)
    assert f"{os.cpu_count()} cores" in line and f"torch {torch.__version__}" in line and line.endswith("2 threads")
    assert machine(1).endswith("1 thread")
