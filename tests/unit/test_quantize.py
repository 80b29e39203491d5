"""Deep Compression's quantisation, Huffman coding and bit counts (sparsity_lab.methods.quantize), each checked
against an independent computation: a brute force over prefix codes, Lloyd's objective, gradients of a plain copy,
and bit counts of a tiny network done by hand."""

import copy
import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from sparsity_lab.masks import apply_masks, get_masks, prunable
from sparsity_lab.methods.quantize import (
    SharedWeight,
    bake,
    codebooks,
    compression_stages,
    csr_bits,
    decode,
    distinct_values,
    encode,
    fine_tune_centroids,
    huffman_code,
    huffman_lengths,
    kmeans_1d,
    share_weights,
    storage,
)
from sparsity_lab.models import MLP, build
from sparsity_lab.train import fit


def random_masks(model, seed, keep=0.5):
    g = torch.Generator().manual_seed(seed)
    return {name: torch.rand(getattr(*target).shape, generator=g) < keep for name, target in prunable(model).items()}


def tiny(seed=0, sizes=(6, 5, 3)):
    torch.manual_seed(seed)
    return MLP(list(sizes))


def wcss(values, centroids, assignment):
    return float(((values.double() - centroids.double()[assignment]) ** 2).sum())


# ---------------------------------------------------------------------------------------------------- Huffman coding
def brute_force_cost(counts):
    """The least Σ count · length over every length vector with lengths in 1..n−1 that satisfies Kraft's
    inequality Σ 2^−l ≤ 1 (each such vector has a prefix code)."""
    live = [c for c in counts.values() if c > 0]
    if len(live) == 1:
        return live[0]
    return min(sum(c * n for c, n in zip(live, lengths, strict=True))
               for lengths in itertools.product(range(1, len(live)), repeat=len(live))
               if sum(2.0 ** -n for n in lengths) <= 1)


def test_huffman_lengths_are_optimal_against_a_brute_force_over_prefix_codes():
    rng = random.Random(0)
    for trial in range(40):
        n = 2 + trial % 5
        counts = {s: rng.randint(0, 12) for s in range(n)}
        counts[rng.randrange(n)] += 1  # at least one symbol in use
        lengths = huffman_lengths(counts)
        assert set(lengths) == {s for s, c in counts.items() if c > 0}
        assert sum(counts[s] * n for s, n in lengths.items()) == brute_force_cost(counts), counts


def test_the_canonical_code_is_prefix_free_has_the_huffman_lengths_and_round_trips():
    rng = random.Random(1)
    for trial in range(30):
        counts = {s: rng.randint(0, 20) for s in "abcdefgh"[:2 + trial % 7]}
        counts["a"] += 1
        code, lengths = huffman_code(counts), huffman_lengths(counts)
        assert {s: len(w) for s, w in code.items()} == lengths
        words = list(code.values())
        assert not any(a != b and b.startswith(a) for a in words for b in words)
        if len(words) > 1:  # a Huffman code is complete: Kraft holds with equality
            assert sum(2.0 ** -len(w) for w in words) == 1.0
        message = rng.choices(list(code), k=rng.randint(0, 50))
        assert decode(encode(message, code), code) == message


def test_huffman_single_symbol_ties_and_zero_counts():
    assert huffman_lengths({"x": 7}) == {"x": 1} and huffman_code({"x": 7}) == {"x": "0"}
    assert huffman_lengths({"x": 7, "y": 0}) == {"x": 1}
    assert huffman_lengths({}) == {} and huffman_lengths({"y": 0}) == {}
    # four equal counts: a balanced tree; canonical words in symbol order, whatever the mapping's order
    assert huffman_code({0: 3, 1: 3, 2: 3, 3: 3}) == {0: "00", 1: "01", 2: "10", 3: "11"}
    assert huffman_code({3: 3, 2: 3, 1: 3, 0: 3}) == huffman_code({0: 3, 1: 3, 2: 3, 3: 3})
    # c is as frequent as a and b together: c alone at depth 1
    assert huffman_lengths({"a": 1, "b": 1, "c": 2}) == {"a": 2, "b": 2, "c": 1}
    assert huffman_code({"a": 1, "b": 1, "c": 2}) == {"c": "0", "a": "10", "b": "11"}


def test_decode_rejects_bits_that_do_not_decode():
    code = {"a": "0", "b": "10", "c": "11"}
    assert decode("01011", code) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="bits end inside a code word"):
        decode("011", {"a": "0", "b": "10", "c": "110"})
    with pytest.raises(ValueError, match="bits must be a string of '0' and '1'"):
        decode("0120", code)
    with pytest.raises(ValueError, match="match no code word"):
        decode("011", {"a": "0", "b": "10"})  # an incomplete code: no word starts "11"
    with pytest.raises(ValueError, match="none a prefix of another"):
        decode("0", {"a": "0", "b": "01"})


# ---------------------------------------------------------------------------------------------------------- k-means
def test_kmeans_finds_well_separated_clusters():
    g = torch.Generator().manual_seed(0)
    groups = [torch.randn(30, generator=g) * 0.1 + centre for centre in (-5.0, 0.0, 5.0)]
    order = torch.randperm(90, generator=g)
    values = torch.cat(groups)[order]
    for init in ("linear", "random", "density"):
        centroids, assignment = kmeans_1d(values, 3, init=init, seed=3)
        expected = torch.stack([group.mean() for group in groups])
        assert torch.allclose(centroids, expected, atol=1e-5), init
        truth = torch.arange(3).repeat_interleave(30)[order]
        assert torch.equal(assignment, truth), init


@pytest.mark.parametrize("init", ["linear", "random", "density"])
def test_kmeans_never_increases_the_within_cluster_sum_of_squares(init):
    values = torch.randn(500, generator=torch.Generator().manual_seed(1)) ** 3
    previous = float("inf")
    for iters in range(0, 12):
        centroids, assignment = kmeans_1d(values, 6, init=init, iters=iters, seed=2)
        assert torch.all(centroids[1:] >= centroids[:-1])
        # each value sits with its nearest centroid (a brute force over all k)
        nearest = (values[:, None] - centroids[None, :]).abs().min(1).values
        assert torch.allclose((values - centroids[assignment]).abs(), nearest)
        cost = wcss(values, centroids, assignment)
        assert cost <= previous + 1e-9, (iters, cost, previous)
        previous = cost


def test_kmeans_initialisations():
    values = torch.tensor([3.0, -1.0, 0.5, 7.0, 2.0, 2.5])
    centroids, _ = kmeans_1d(values, 5, iters=0)
    step = (7.0 - -1.0) / 4   # linear: min, then min + i·(max − min)/(k − 1), up to max
    assert torch.allclose(centroids, torch.tensor([-1.0, -1 + step, -1 + 2 * step, -1 + 3 * step, 7.0]))
    drawn, _ = kmeans_1d(values, 3, init="random", iters=0, seed=5)
    assert all(bool((values == c).any()) for c in drawn)
    # density: equal mass, 100 evenly spread values into 4 clusters of 25
    _, assignment = kmeans_1d(torch.arange(100.0), 4, init="density", iters=0)
    assert torch.bincount(assignment).tolist() == [25, 25, 25, 25]


def test_an_empty_cluster_keeps_its_centroid():
    # linear init [0, 5, 10]: nothing is nearest to 5, which stays; the others are their members' means
    centroids, assignment = kmeans_1d(torch.tensor([0.0, 0.0, 1.0, 10.0, 10.0]), 3)
    assert torch.allclose(centroids, torch.tensor([1 / 3, 5.0, 10.0]))
    assert assignment.tolist() == [0, 0, 0, 2, 2]


# ---------------------------------------------------------------------------------------------------- shared weights
def test_share_weights_leaves_k_values_per_layer_zeros_where_pruned_and_the_input_alone():
    model = tiny()
    masks = random_masks(model, seed=1)
    before = copy.deepcopy(model.state_dict())
    shared = share_weights(model, masks, k={"layers.0.weight": 3, "layers.1.weight": 2})
    assert all(torch.equal(before[n], t) for n, t in model.state_dict().items())
    assert get_masks(model) == {}
    assert {n: m.tolist() for n, m in get_masks(shared).items()} == {n: m.tolist() for n, m in masks.items()}
    limits = {"layers.0.weight": 3, "layers.1.weight": 2}
    for name, (module, attr) in prunable(shared).items():
        w = getattr(module, attr).detach()
        assert torch.unique(w[masks[name]]).numel() <= limits[name]
        assert bool((w[~masks[name]] == 0).all())
        # every kept weight took the centroid nearest to its original value
        original = getattr(*prunable(model)[name]).detach()[masks[name]]
        centroids = codebooks(shared)[name]["centroids"]
        nearest = (original[:, None] - centroids[None, :]).abs().min(1).values
        assert torch.allclose((original - w[masks[name]]).abs(), nearest)
    x = torch.randn(7, 6)
    plain = bake(shared)
    assert not any(isinstance(m, SharedWeight) for m in plain.modules())
    assert torch.allclose(plain(x), shared(x))
    assert distinct_values(plain) == distinct_values(shared)
    assert all(distinct_values(plain)[n] <= limits[n] for n in limits)


def test_share_weights_of_a_masked_model_uses_its_masks_and_effective_weights():
    model = tiny(2)
    masks = random_masks(model, seed=3)
    masked = apply_masks(copy.deepcopy(model), masks)
    shared = share_weights(masked, k=4)
    assert {n: m.tolist() for n, m in get_masks(shared).items()} == {n: m.tolist() for n, m in masks.items()}
    assert {n: m.tolist() for n, m in get_masks(masked).items()} == {n: m.tolist() for n, m in masks.items()}
    x = torch.randn(5, 6)
    assert torch.allclose(shared(x), share_weights(model, masks, k=4)(x))
    everything = share_weights(model, k=4)
    assert all(bool(m.all()) for m in get_masks(everything).values())


def test_a_centroid_gradient_is_the_sum_of_its_members_weight_gradients():
    model = tiny(4)
    masks = random_masks(model, seed=5, keep=0.7)
    shared = share_weights(model, masks, k=3)
    plain = bake(shared)
    x, y = torch.randn(9, 6), torch.randint(3, (9,))
    F.cross_entropy(shared(x), y).backward()
    F.cross_entropy(plain(x), y).backward()
    books = codebooks(shared)
    for name, (module, attr) in prunable(plain).items():
        grad, book = getattr(module, attr).grad, books[name]
        expected = torch.zeros(3).index_add_(0, book["index"][book["mask"]], grad[book["mask"]])
        got = prunable(shared)[name][0].parametrizations[attr][0].centroids.grad
        assert torch.allclose(got, expected, atol=1e-6), name


def test_fine_tuning_centroids_lowers_the_loss_and_keeps_the_codebook_structure():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(96, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    model = tiny(7)
    fit(model, (x, y), epochs=20, lr=0.3, batch_size=32, progress=False)
    masks = random_masks(model, seed=8, keep=0.6)
    shared = share_weights(model, masks, k=2)
    before, bias = codebooks(shared), shared.layers[0].bias.detach().clone()
    loss_before = F.cross_entropy(shared(x), y).item()
    fine_tune_centroids(shared, (x, y), epochs=15, lr=0.02, batch_size=32)
    assert F.cross_entropy(shared(x), y).item() < loss_before
    after = codebooks(shared)
    for name in before:
        assert torch.equal(after[name]["index"], before[name]["index"])
        assert torch.equal(after[name]["mask"], before[name]["mask"])
    assert all(n <= 2 for n in distinct_values(shared).values())
    assert not torch.equal(shared.layers[0].bias, bias)
    frozen = share_weights(model, masks, k=2)
    fine_tune_centroids(frozen, (x, y), epochs=2, lr=0.02, batch_size=32, train_biases=False)
    assert torch.equal(frozen.layers[0].bias, model.layers[0].bias)
    assert all(p.requires_grad for p in frozen.parameters())


# ------------------------------------------------------------------------------------------------------ bit counts
def test_csr_bits_of_a_hand_matrix():
    matrix = torch.tensor([[0.0, 1.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 3.0]])
    # 3 nonzeros: values 3·32; column indices 3·⌈log2 4⌉ = 3·2; row pointers (3 + 1)·⌈log2(3 + 1)⌉ = 4·2
    assert csr_bits(matrix) == {"values": 96, "column_indices": 6, "row_pointers": 8, "total": 110}
    assert csr_bits(matrix != 0, value_bits=4)["total"] == 3 * 4 + 6 + 8
    conv = torch.zeros(2, 1, 2, 2)   # 2 × 4 matrix, one entry: 32 + 1·2 + (2 + 1)·max(1, ⌈log2 2⌉) = 32 + 2 + 3
    conv[1, 0, 1, 1] = 1.0
    assert csr_bits(conv)["total"] == 37


def hand_network():
    """MLP 4 → 3 → 2 with hand-picked kept weights. layers.0.weight (3×4, flattened 0..11) keeps positions
    1, 2, 11 with values 1, 1, −1; layers.1.weight (2×3, 0..5) keeps 0, 4, 5 with values 0.5, −0.5, 0.5."""
    torch.manual_seed(0)
    model = MLP([4, 3, 2])
    masks = {"layers.0.weight": torch.zeros(12, dtype=torch.bool), "layers.1.weight": torch.zeros(6, dtype=torch.bool)}
    with torch.no_grad():
        for name, kept, values in (("layers.0.weight", [1, 2, 11], [1.0, 1.0, -1.0]),
                                   ("layers.1.weight", [0, 4, 5], [0.5, -0.5, 0.5])):
            masks[name][kept] = True
            getattr(*prunable(model)[name]).view(-1)[kept] = torch.tensor(values)
    shape = {"layers.0.weight": (3, 4), "layers.1.weight": (2, 3)}
    return model, {n: m.reshape(shape[n]) for n, m in masks.items()}


def totals(table):
    return dict(zip(table["layer"], table["total_bits"], strict=True))


def test_storage_of_a_tiny_network_counted_by_hand():
    model, masks = hand_network()
    # dense: 12 + 3 + 6 + 2 = 23 parameters of 32 bits
    assert totals(storage(model, stage="dense"))["total"] == 32 * 23
    # pruned, b = 2 bits per gap (0..3 positions skipped). layers.0: positions 1, 2, 11 from −1 skip 1, 0, 8;
    # 8 > 3 needs ⌊8 / 4⌋ = 2 fillers (at 6 and 10, each skipping 3), then 11 skips 0: 3 + 2 = 5 entries.
    # layers.1: positions 0, 4, 5 skip 0, 3, 0: 3 entries, no filler (3 is the widest gap 2 bits hold).
    pruned = storage(model, masks, stage="pruned", index_bits=2)
    assert pruned["fillers"].tolist() == [2, 0, 2] and pruned["kept"].tolist() == [3, 3, 6]
    layer0 = 5 * (32 + 2) + 3 * 32      # 5 entries of a 32-bit value and a 2-bit gap; 3 biases
    layer1 = 3 * (32 + 2) + 2 * 32
    assert totals(pruned) == {"layers.0.weight": layer0, "layers.1.weight": layer1, "total": layer0 + layer1}
    # with the default 5 bits (gaps up to 31) nothing needs a filler
    assert totals(storage(model, masks, stage="pruned"))["total"] == 3 * 37 + 96 + 3 * 37 + 64
    # shared: k = 2 for layers.0 (linear init puts centroids at −1 and 1, exactly its values), k = 3 for
    # layers.1 (centroids −0.5, 0, 0.5; 0 stays empty). layers.0 has fillers: ⌈log2(2 + 1)⌉ = 2 bits per entry
    # value; layers.1 has none: ⌈log2 3⌉ = 2 bits per kept weight. Codebooks 32·k.
    shared = share_weights(model, masks, k={"layers.0.weight": 2, "layers.1.weight": 3})
    assert torch.allclose(codebooks(shared)["layers.1.weight"]["centroids"], torch.tensor([-0.5, 0.0, 0.5]))
    s0 = 5 * 2 + 5 * 2 + 32 * 2 + 3 * 32
    s1 = 3 * 2 + 3 * 2 + 32 * 3 + 2 * 32
    assert totals(storage(shared, stage="shared", index_bits=2)) == {"layers.0.weight": s0, "layers.1.weight": s1,
                                                                    "total": s0 + s1}
    # huffman. layers.0 values: symbols 1, 1, 0 and the filler symbol 2 twice: counts {0: 1, 1: 2, 2: 2}; the
    # optimal code has lengths 2, 2, 1 (in some order of the two 2s), 1·2 + 2·2 + 2·1 = 8 bits. Its gaps: 1, 0,
    # 0 and 3, 3 for the fillers: counts {0: 2, 1: 1, 3: 2}, again 8 bits. Tables: 8 bits per symbol of the
    # alphabets, 3 values + 4 gaps.
    h0 = 8 + 8 + 32 * 2 + 8 * (3 + 4) + 3 * 32
    # layers.1 values: symbols 2, 0, 2, counts {0: 1, 2: 2}: 1 bit each, 3 bits; gaps 0, 3, 0: 1 bit each, 3 bits.
    h1 = 3 + 3 + 32 * 3 + 8 * (3 + 4) + 2 * 32
    huffman = storage(shared, stage="huffman", index_bits=2)
    assert totals(huffman) == {"layers.0.weight": h0, "layers.1.weight": h1, "total": h0 + h1}
    assert huffman["table_bits"].tolist() == [56, 56, 112]
    # a baked model's codebook is its distinct kept values: layers.1 now has 2 (−0.5, 0.5): 1 bit per value
    plain = totals(storage(bake(shared), masks, stage="shared", index_bits=2))
    assert plain["layers.1.weight"] == 3 * 1 + 3 * 2 + 32 * 2 + 2 * 32 and plain["layers.0.weight"] == s0


def test_compression_stages_join_the_four_storages():
    model, masks = hand_network()
    shared = share_weights(model, masks, k=2)
    stages = compression_stages(model, masks, shared, index_bits=2)
    assert stages["stage"].tolist() == ["dense", "pruned", "shared", "huffman"]
    expected = [storage(model, stage="dense"), storage(model, masks, stage="pruned", index_bits=2),
                storage(shared, stage="shared", index_bits=2), storage(shared, stage="huffman", index_bits=2)]
    bits = [int(t["total_bits"].iloc[-1]) for t in expected]
    assert stages["bits"].tolist() == bits
    assert stages.loc["huffman", "KB"] == bits[3] / 8000
    assert stages.loc["pruned", "ratio"] == pytest.approx(bits[0] / bits[1])


@pytest.mark.parametrize("name, sizes", [("lenet5-caffe-bn", {"conv1": 3, "conv2": 4, "fc1": 5, "image_size": 16}),
                                         ("lstm-lm", {"vocab": 7, "embedding": 3, "hidden": (4,)})])
def test_storage_of_other_layer_types(name, sizes):
    model = build(name, **sizes)
    # dense: every parameter (BatchNorm's γ and β, an LSTM's one bias for two weights) 32 bits, once
    assert totals(storage(model, stage="dense"))["total"] == 32 * sum(p.numel() for p in model.parameters())
    masks = random_masks(model, seed=9, keep=0.3)
    shared = share_weights(model, masks, k=3)
    table = storage(shared, stage="shared").set_index("layer")
    for layer, (module, _) in prunable(model).items():
        entries = table.loc[layer, "kept"] + table.loc[layer, "fillers"]
        assert table.loc[layer, "kept"] == int(masks[layer].sum())
        # the paper's gap widths: 8 bits in a conv layer, 5 elsewhere
        assert table.loc[layer, "index_bits"] == entries * (8 if isinstance(module, torch.nn.Conv2d) else 5)
    assert all(n <= 3 for n in distinct_values(bake(shared)).values())
