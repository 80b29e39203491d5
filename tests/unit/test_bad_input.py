"""The table of bad inputs the package handles: each row is a call that must fail early with a ValueError whose
message names the argument or the layer and what was expected. A new check adds a row here."""

import pytest
import torch
from torch import nn

from sparsity_lab import gates, recipes
from sparsity_lab.compact import assert_equivalent, compact
from sparsity_lab.corpus import Corpus, entropy_rate, stationary_distribution, synthetic_language
from sparsity_lab.cost import flops
from sparsity_lab.experiments.pretrained import pretrained
from sparsity_lab.masks import apply_masks, as_bool
from sparsity_lab.methods import METHODS, decorrelation, distill, hashing, l0, quantize, sbp, sensitivity, vdrop
from sparsity_lab.methods.base import select_groups, select_weights
from sparsity_lab.methods.lottery import lottery_tickets
from sparsity_lab.methods.obs import obs_saliency
from sparsity_lab.methods.slimming import slimming_cut
from sparsity_lab.methods.sss import ScalingGate
from sparsity_lab.models import MLP, LeNet5, LeNet5BN, build, to_nn_lstm
from sparsity_lab.sparse_inference import CSRMLP, IndexListLSTMLanguageModel
from sparsity_lab.structure import chain, unit_groups
from sparsity_lab.train import evaluate, fit


def mlp():
    return MLP([4, 3, 2])


def half(shape, value=0.5):
    return torch.full(shape, value)


XY = (torch.rand(8, 4), torch.arange(8) % 2)
TINY = {"vocab": 4, "states": 4, "branching": 2, "tokens": (20, 10, 10)}


def tiny_language(**changes):
    return synthetic_language(**{**TINY, **changes})


def no_model_corpus():
    stream = torch.tensor([0, 1, 0])
    return Corpus("ptb", stream, stream, stream, ["a", "b"])


BAD = [
    # masks are boolean everywhere (0/1 numbers are accepted as bool, anything else is not)
    ("a mask of 0.5s in apply_masks", lambda: apply_masks(mlp(), {"layers.0.weight": half((3, 4))}),
     r"mask for 'layers.0.weight' must be boolean.*0.5"),
    ("a mask of 0.5s in compact", lambda: compact(mlp(), {"layers.0.weight": half((3, 4))}),
     r"mask for 'layers.0.weight' must be boolean"),
    ("a mask with a NaN", lambda: as_bool(torch.tensor([1.0, float("nan")])), "must be boolean"),
    ("a mask of the wrong shape", lambda: compact(mlp(), {"layers.0.weight": torch.ones(4, 3, dtype=torch.bool)}),
     r"has shape \(4, 3\) but the weight has shape \(3, 4\)"),
    ("a mask for a weight that does not exist", lambda: apply_masks(mlp(), {"layers.9.weight": torch.ones(1)}),
     "unknown weight 'layers.9.weight'"),
    # the chain: what compact and structure accept
    ("a layer compact does not know", lambda: compact(nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=1),
                                                                    nn.Linear(3, 2))),
     r"layer '1' is a Softmax.*supported: Linear, Conv2d, Embedding"),
    ("a grouped convolution", lambda: chain(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2))), "groups=2"),
    ("a model without a chain", lambda: unit_groups(nn.Linear(2, 2)), "declares no chain"),
    ("a Linear reading the wrong number of features",
     lambda: unit_groups(nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2))), "reads 5 inputs, not a multiple of"),
    ("BatchNorm over the wrong number of units",
     lambda: unit_groups(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(5), nn.Linear(4, 2))),
     "normalises 5 features but '0' makes 4"),
    ("BatchNorm without running statistics",
     lambda: compact(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(4, 2))),
     "track_running_stats"),
    # the method contract
    ("a method that needs a sparsity, called without", lambda: METHODS["obd"](mlp(), XY), "needs a target sparsity"),
    ("a method that decides itself, given a sparsity", lambda: METHODS["ssl-neurons"](mlp(), XY, sparsity=0.5),
     "decides how much to remove itself"),
    ("a method that needs data, called without", lambda: METHODS["obs"](mlp(), sparsity=0.5), "needs data"),
    ("a sparsity outside [0, 1]", lambda: METHODS["magnitude-weight-layer"](mlp(), sparsity=1.5),
     r"sparsity must be in \[0, 1\]"),
    ("a scope that does not exist", lambda: select_weights({"w": torch.rand(3)}, 0.5, "network"), "scope must be"),
    ("group scores of the wrong shape", lambda: select_groups([(unit_groups(mlp())[0], torch.rand(3))], 0.5),
     r"scores for 'layers.0.inputs' must have shape \(4,\)"),
    ("a magnitude unit that does not exist", lambda: METHODS["magnitude-weight-layer"].run(mlp(), sparsity=0.5,
                                                                                           unit="pixel"),
     "unit must be one of"),
    ("filters of a network without convolutions", lambda: METHODS["filter-l1"](mlp(), sparsity=0.5),
     "must have an nn.Conv2d"),
    ("a SNIP unit that does not exist", lambda: METHODS["snip"].run(mlp(), XY, sparsity=0.5, unit="row"),
     "unit must be one of"),
    ("a GraSP temperature of 0", lambda: METHODS["grasp"].run(mlp(), XY, sparsity=0.5, temperature=0.0),
     "temperature must be positive"),
    ("random pruning at a sparsity above 1", lambda: METHODS["random-at-init"](mlp(), sparsity=1.5),
     r"sparsity must be in \[0, 1\]"),
    ("a SNIP batch larger than the data", lambda: METHODS["snip"](mlp(), XY, sparsity=0.5, examples=10**6),
     "examples must be in"),
    ("slimming without BatchNorm", lambda: slimming_cut(LeNet5(3, 4, 5, image_size=16), 0.5), "no BatchNorm"),
    ("slimming cutting every channel", lambda: slimming_cut(LeNet5BN(3, 4, 5, image_size=16), 1.0),
     r"sparsity must be in \[0, 1\)"),
    ("a lottery rate outside [0, 1], before any training",
     lambda: lottery_tickets(mlp(), XY, rounds=1, rate=1.5), r"rate must be in \[0, 1\]"),
    # gates
    ("a gate on the inputs' producer", lambda: gates.attach(mlp(), lambda n, d, b: ScalingGate(n, d, b),
                                                            side="producer", kinds=("inputs",)), "network's inputs"),
    ("a gate side that does not exist", lambda: gates.attach(mlp(), ScalingGate, side="middle"), "side must be"),
    ("gates on a model without them", lambda: gates.keep_masks(mlp()), "has no gates"),
    ("an L0 temperature β ≤ 0", lambda: l0.sample_gates(torch.zeros(3), beta=0.0), "beta must be a finite number > 0"),
    ("an L0 stretch γ ≥ 0", lambda: l0.prob_nonzero(torch.zeros(3), gamma=0.0), "gamma must be a finite number < 0"),
    ("an L0 stretch ζ ≤ 1", lambda: l0.test_gates(torch.zeros(3), zeta=1.0), "zeta must be a finite number > 1"),
    ("a NaN L0 temperature", lambda: l0.L0Gate(3, beta=float("nan")), "beta must be a finite number"),
    ("a negative L0 λ", lambda: l0.L0Gate(3, lam=-1.0), "lam must be a finite number ≥ 0"),
    ("a NaN L0 λ", lambda: l0.attach_l0(mlp(), n_train=8, lam=float("nan")), "lam must be a finite number ≥ 0"),
    ("a NaN log α", lambda: l0.sample_gates(torch.tensor([0.0, float("nan")])), "log_alpha contains NaN"),
    ("an L0 dataset size of 0", lambda: l0.L0Gate(3, n_train=0), "n_train must be the number of training examples"),
    ("an L0 drop rate of 1", lambda: l0.attach_l0(mlp(), n_train=8, drop_rate=1.0), r"drop_rate must be in \(0, 1\)"),
    ("a negative L0 gate learning rate", lambda: l0.l0(mlp(), XY, gate_lr=-1.0), "gate_lr must be"),
    ("a NaN variational-dropout threshold", lambda: vdrop.set_threshold(mlp(), float("nan")),
     "threshold must be a finite log α"),
    ("a KL warm-up that ends before it starts", lambda: vdrop.KLWarmup(5, 2), "must start at an epoch ≥ 0 and end no"),
    ("a negative dataset size for the KL", lambda: vdrop.attach_vd(mlp(), n_train=-5),
     "n_train must be the number of training examples"),
    ("a negative SSS γ", lambda: ScalingGate(3, gamma=-1.0), "gamma must be a finite number"),
    ("a negative SBP SNR threshold", lambda: sbp.LogNormalNoise(3, n_train=8, threshold=-1.0),
     "the SNR threshold must be a finite number ≥ 0"),
    ("an SBP truncation with a ≥ b", lambda: sbp.LogNormalNoise(3, n_train=8, a=0.0, b=-20.0),
     "the truncation needs finite a < b"),
    ("an SBP learning-rate decay past the run's end", lambda: sbp.sbp(mlp(), XY, decay_from=2.0),
     r"decay_from must be a fraction of the run in \[0, 1\]"),
    ("a NaN SBP noise learning rate", lambda: sbp.sbp(mlp(), XY, noise_lr=float("nan")), "noise_lr must be"),
    ("a pretrained network with no recipe", lambda: pretrained("lenet-300-100"),
     "no pretrained recipe for 'lenet-300-100'"),
    # models
    ("an MLP width of 2.5", lambda: MLP([784, 2.5, 10]), r"each a positive integer, got \[784, 2.5, 10\]"),
    ("a LeNet5 with no filters", lambda: LeNet5(conv1=0), r"positive integers, got \{'conv1': 0\}"),
    # data that does not fit the model or itself
    ("fit with more images than labels", lambda: fit(mlp(), (torch.rand(8, 4), torch.zeros(7, dtype=torch.long))),
     "has 8 examples in x but y has shape \\(7,\\)"),
    ("evaluate with more images than labels",
     lambda: evaluate(mlp(), (torch.rand(8, 4), torch.zeros(7, dtype=torch.long))), "has 8 examples in x"),
    ("fit on images of the wrong size", lambda: fit(mlp(), (torch.rand(8, 5), torch.zeros(8, dtype=torch.long))),
     r"x of the training data has shape \(8, 5\).*MLP reads \(B, 4\) features"),
    ("evaluate on images of the wrong size",
     lambda: evaluate(LeNet5(3, 4, 5, image_size=16), (torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))),
     r"LeNet5 reads \(B, 1, 16, 16\) images"),
    ("FLOPs of the wrong example", lambda: flops(mlp(), torch.rand(1, 7)), r"example has shape \(1, 7\)"),
    ("assert_equivalent on the wrong input", lambda: assert_equivalent(mlp(), mlp(), torch.rand(2, 3)),
     r"x has shape \(2, 3\)"),
    ("tokens beyond the vocabulary", lambda: evaluate(build("lstm-lm", vocab=5, embedding=2, hidden=(3,)),
                                                       (torch.full((4, 2), 9), torch.zeros(4, dtype=torch.long))),
     "token ids below 5"),
    ("an OBS inverse Hessian that is not positive definite",
     lambda: obs_saliency(torch.ones(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]])), "symmetric positive definite"),
    # language corpora
    ("a vocabulary smaller than a state's branching", lambda: tiny_language(vocab=1),
     r"branching must be ≤ vocab = 1, as a state emits distinct tokens, got 2"),
    ("no states", lambda: tiny_language(states=0), r"states must be an integer ≥ 1, got 0"),
    ("a non-integer vocabulary", lambda: tiny_language(vocab=4.0), r"vocab must be an integer ≥ 1, got 4.0"),
    ("a boolean state count", lambda: tiny_language(states=True), r"states must be an integer ≥ 1, got True"),
    ("more tokens than the states can emit", lambda: tiny_language(vocab=9), r"vocab must be ≤ states × branching"),
    ("one token per state", lambda: tiny_language(branching=1, vocab=2), "branching must be ≥ 2 when states > 1"),
    ("a zero Dirichlet concentration", lambda: tiny_language(concentration=0.0),
     "concentration must be a finite number > 0"),
    ("an infinite Dirichlet concentration", lambda: tiny_language(concentration=float("inf")),
     "concentration must be a finite number > 0"),
    ("two split lengths", lambda: tiny_language(tokens=(20, 10)), r"tokens must be \(train, valid, test\) lengths"),
    ("an empty test split", lambda: tiny_language(tokens=(20, 10, 0)), r"tokens\[test\] must be an integer ≥ 1"),
    ("a fractional split length", lambda: tiny_language(tokens=(20.5, 10, 10)), r"tokens\[train\] must be an integer"),
    ("a negative seed", lambda: tiny_language(seed=-1), "seed must be an integer ≥ 0"),
    ("a split that does not exist", lambda: tiny_language().segments("dev", 5), "split must be one of 'train'"),
    ("segments longer than the split", lambda: tiny_language().segments("valid", 10),
     r"length must be an integer in 1..9"),
    ("a batch of 0 columns", lambda: tiny_language().batchify("train", 0), r"batch must be an integer in 1..20"),
    ("the floor of a corpus with no known entropy rate", lambda: no_model_corpus().floor_perplexity,
     "entropy rate of 'ptb' is unknown"),
    ("the true likelihood of a corpus with no model", lambda: no_model_corpus().true_nll("test"),
     "'ptb' has no generating model"),
    ("a corpus of floats", lambda: Corpus("toy", torch.rand(3), torch.zeros(2, dtype=torch.long),
                                           torch.zeros(2, dtype=torch.long), ["a"]),
     "train must be a non-empty 1-D int64 tensor"),
    ("a corpus with token ids beyond its words", lambda: Corpus("toy", *[torch.tensor([0, 2])] * 3, ["a", "b"]),
     r"train holds token ids outside 0..1"),
    ("emissions that do not sum to 1", lambda: entropy_rate([[0.5, 0.4]], [[0, 0]]),
     "emissions must be row-stochastic"),
    ("an emitted token leading nowhere", lambda: entropy_rate([[0.5, 0.5]], [[0, -1]]),
     r"next_state must be a state in 0..0 wherever emissions > 0"),
    ("next_state of the wrong shape", lambda: entropy_rate([[0.5, 0.5]], [[0]]),
     r"next_state must have the shape of emissions \(1, 2\)"),
    ("a transition matrix that is not square", lambda: stationary_distribution([[0.5, 0.5]]),
     r"transition must be a \(S, S\) matrix"),
    ("a chain with two closed classes", lambda: stationary_distribution(torch.eye(3)),
     "more than one stationary distribution"),
    # other inference paths and budgets
    ("index lists for an MLP", lambda: IndexListLSTMLanguageModel(mlp()), "needs an LSTMLanguageModel"),
    ("an nn.LSTM export of an MLP", lambda: to_nn_lstm(mlp()), r"to_nn_lstm needs an LSTMLanguageModel.*got MLP"),
    ("CSR matrices for a LeNet5", lambda: CSRMLP(LeNet5(3, 4, 5, image_size=16)), "needs an MLP"),
    # weight sharing and storage (Deep Compression)
    ("k-means with k = 0", lambda: quantize.kmeans_1d(torch.rand(5), 0), "k must be an integer ≥ 1, got 0"),
    ("k-means of nothing", lambda: quantize.kmeans_1d(torch.zeros(0), 2), "values must be a non-empty 1-D tensor"),
    ("a k-means initialisation that does not exist", lambda: quantize.kmeans_1d(torch.rand(5), 2, init="kmeans++"),
     "init must be one of"),
    ("negative k-means iterations", lambda: quantize.kmeans_1d(torch.rand(5), 2, iters=-1),
     "iters must be an integer ≥ 0"),
    ("sharing weights into 0 clusters", lambda: quantize.share_weights(mlp(), k=0), "k must be an integer ≥ 1"),
    ("a per-layer k naming an unknown layer", lambda: quantize.share_weights(mlp(), k={"layers.0.weight": 4,
                                                                                      "layers.1.weight": 4,
                                                                                      "layers.9.weight": 4}),
     r"k names unknown weights \['layers.9.weight'\]"),
    ("fine-tuning centroids of an unshared model", lambda: quantize.fine_tune_centroids(mlp(), XY),
     "has no shared weights"),
    ("a negative centroid learning rate", lambda: quantize.fine_tune_centroids(quantize.share_weights(mlp(), k=2),
                                                                              XY, lr=-1.0), "lr must be a finite"),
    ("a storage stage that does not exist", lambda: quantize.storage(mlp(), stage="zipped"), "stage must be one of"),
    ("a negative sparse-index width", lambda: quantize.storage(mlp(), index_bits=-1),
     r"index_bits must be an integer in 1..16, got -1"),
    ("the shared stage of an unquantised model", lambda: quantize.storage(nn.Linear(30, 30), stage="shared"),
     "needs a share_weights model, or a baked one with at most 256"),
    ("CSR bits of a vector", lambda: quantize.csr_bits(torch.ones(3)), "at least 2 dimensions"),
    ("a negative Huffman count", lambda: quantize.huffman_lengths({"a": -1}), "counts must be integers ≥ 0"),
    ("Huffman-decoding a non-binary string", lambda: quantize.decode("012", {"a": "0", "b": "1"}),
     "bits must be a string of '0' and '1'"),
    ("Huffman-decoding a truncated word", lambda: quantize.decode("1", {"a": "0", "b": "10"}),
     "bits end inside a code word"),
    ("encoding a symbol the code lacks", lambda: quantize.encode("ab", {"a": "0"}), "symbol 'b' has no code word"),
    # beyond pruning: HashedNets and distillation
    ("a hash with no buckets", lambda: hashing.bucket_index(3, 4, 0), r"buckets must be an integer in \[1, 12\]"),
    ("more buckets than virtual weights", lambda: hashing.HashedLinear(4, 3, buckets=13),
     r"buckets must be an integer in \[1, 12\].*got 13"),
    ("a negative hash seed", lambda: hashing.sign_hash(3, 4, seed=-1), r"seed must be an integer in \[0, 2\^32\)"),
    ("a compression above 1", lambda: hashing.hashed_mlp([4, 3, 2], compression=1.5),
     r"compression must be a number in \(0, 1\].*got 1.5"),
    ("a compression of 0", lambda: hashing.hashed_mlp([4, 3, 2], compression=0.0), r"compression must be .* got 0.0"),
    ("both a compression and bucket counts", lambda: hashing.hashed_mlp([4, 3, 2], compression=0.5, buckets=[2, 2]),
     "give exactly one of compression"),
    ("bucket counts for the wrong number of layers", lambda: hashing.hashed_mlp([4, 3, 2], buckets=[2]),
     r"buckets must give one count per layer \(2\)"),
    ("a hashed MLP on images of the wrong size",
     lambda: fit(hashing.hashed_mlp([4, 3, 2], compression=0.5), (torch.rand(8, 5), torch.zeros(8, dtype=torch.long)),
                 batch_size=8, progress=False), r"x has shape \(8, 5\).*HashedMLP reads \(B, 4\) features"),
    ("expanding a model that is not hashed", lambda: hashing.expand(mlp()), "expand needs a HashedMLP.*got MLP"),
    ("a distillation temperature of 0", lambda: distill.soft_targets(torch.zeros(2, 3), 0.0),
     "temperature must be a finite number > 0, got 0.0"),
    ("a distillation weight above 1", lambda: distill.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3),
                                                                        torch.zeros(2, dtype=torch.long), alpha=1.5),
     r"alpha must be in \[0, 1\].*got 1.5"),
    ("teacher logits of another shape", lambda: distill.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4),
                                                                          torch.zeros(2, dtype=torch.long)),
     r"teacher_logits has shape \(2, 4\), but student_logits has \(2, 3\)"),
    ("no labels for the hard loss", lambda: distill.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), None,
                                                                      alpha=0.5), "y may be None only when alpha = 1"),
    ("an ensemble teacher with no members", lambda: distill.EnsembleTeacher([]), "members must be a non-empty"),
    ("distillation at a negative temperature, before training",
     lambda: distill.distil(mlp(), mlp(), XY, temperature=-1.0), "temperature must be a finite number > 0"),
    ("a sensitivity of a kind that does not exist", lambda: sensitivity.output_sensitivity(mlp(), XY[0], kind="all"),
     "kind must be one of"),
    ("a sensitivity of outputs that do not exist", lambda: sensitivity.output_sensitivity(mlp(), XY[0], outputs="z"),
     "outputs must be one of"),
    ("the specific sensitivity without labels", lambda: sensitivity.output_sensitivity(mlp(), XY[0], kind="specific"),
     "needs the labels y"),
    ("a sensitivity batch of the wrong shape", lambda: sensitivity.output_sensitivity(mlp(), torch.rand(3, 5)),
     r"x of the sensitivity batch has shape \(3, 5\)"),
    ("a negative sensitivity decay, before training",
     lambda: METHODS["sensitivity"](mlp(), XY, sparsity=0.5, lam=-1.0, batch_size=4),
     "lam must be a finite number ≥ 0"),
    ("a sensitivity target of 1.5, before training",
     lambda: METHODS["sensitivity"](mlp(), XY, sparsity=1.5), "sparsity must be"),
    ("a sensitivity batch larger than the data", lambda: sensitivity.SensitivityDecay(XY, 0.1, batch_size=9),
     r"batch_size must be in \[1, 8\]"),
    ("decorrelating a kind that does not exist", lambda: decorrelation.decorrelation_penalty(mlp(), "channels"),
     "kind must be one of"),
    ("decorrelating filters of an MLP", lambda: decorrelation.decorrelation_penalty(mlp(), "filters"),
     "MLP has no hidden units made by a Conv2d"),
    ("a negative decorrelation weight", lambda: METHODS["decorrelation-neurons"](mlp(), XY, lam=0.1, gamma=-1.0),
     "gamma must be a finite number ≥ 0"),
    ("a recipe scale that does not exist", lambda: recipes.get("02", "huge"), "scale must be one of"),
]


@pytest.mark.parametrize("call, message", [(c, m) for _, c, m in BAD], ids=[name for name, _, _ in BAD])
def test_bad_input_fails_early_with_a_message_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()
