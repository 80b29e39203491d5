"""The method contract, for every method in METHODS: a registered method is tested here without a new test.

On a small model of a kind the method applies to, each result must: be a MethodResult named after the method;
leave the input model untouched; give boolean masks keyed and shaped like prunable weights of its model; remove
exactly the target fraction (counted here from the masks, of weights or of whole groups) where the method takes
one; give the same masks for the same seed; and compact into a smaller network whose outputs equal the masked
model's. Each run is made once per (method, seed) and shared by the checks.
"""

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from sparsity_lab.compact import assert_equivalent, compact
from sparsity_lab.corpus import synthetic_language
from sparsity_lab.data import load_digits
from sparsity_lab.masks import apply_masks, prunable
from sparsity_lab.methods import METHODS, MethodResult
from sparsity_lab.models import MLP, LeNet5, LeNet5BN, LSTMLanguageModel

SPARSITY = 0.5


@functools.cache
def digits(images: int):
    """256 training and 64 test digits, 8×8 (for MLPs) or upsampled to 16×16 (for LeNet5)."""
    d = load_digits(seed=0)
    x_train, x_test = d.x_train[:256], d.x_test[:64]
    if images == 16:
        x_train, x_test = (F.interpolate(x, size=16, mode="bilinear") for x in (x_train, x_test))
    return (x_train, d.y_train[:256]), x_test


@functools.cache
def small_language():
    """A tiny synthetic language: (x, y) training segments of 6 tokens, and (T, B) test tokens."""
    corpus = synthetic_language(vocab=8, states=6, branching=2, tokens=(600, 60, 60), seed=0)
    return corpus.segments("train", 6), corpus.test[:60].view(6, 10)


def small_model(method):
    """A small model the method applies to, with the data to run it on."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        if method.models == ("lstm-lm",):
            return LSTMLanguageModel(vocab=8, embedding=4, hidden=(6, 5)), *small_language()
        if "lenet5-caffe-bn" in method.models:
            return LeNet5BN(4, 6, 12, image_size=16), *digits(16)
        if "lenet5-caffe" in method.models and "mlp" not in method.models:
            return LeNet5(4, 6, 12, image_size=16), *digits(16)
        return MLP([64, 12, 8, 10]), *digits(8)


@functools.cache
def run(name: str, seed: int = 0):
    method = METHODS[name]
    model, train, x_test = small_model(method)
    before = copy.deepcopy(model.state_dict())
    options = dict(method.quick)
    if method.target is not None:
        options["sparsity"] = SPARSITY
    result = method(model, train, seed=seed, **options)
    return model, before, result, x_test


NAMES = sorted(METHODS)


@pytest.mark.parametrize("name", NAMES)
def test_a_method_returns_boolean_masks_over_prunable_weights_and_leaves_its_input_alone(name):
    model, before, result, _ = run(name)
    assert isinstance(result, MethodResult) and result.method == name
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    targets = prunable(result.model)
    assert result.masks and set(result.masks) <= set(targets)
    for key, mask in result.masks.items():
        assert mask.dtype == torch.bool and mask.shape == getattr(*targets[key]).shape


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS[n].target is not None])
def test_a_method_removes_exactly_its_target_fraction(name):
    method = METHODS[name]
    _, _, result, _ = run(name)
    if method.target == "weights":
        counts = [(int((~m).sum()), m.numel()) for m in result.masks.values()]
    else:
        removed = [g.removed(result.masks) for g in result.groups]
        counts = [(int(r.sum()), len(r)) for r in removed]
    if method.scope == "layer":
        assert all(k == round(SPARSITY * n) for k, n in counts), counts
    else:
        assert sum(k for k, _ in counts) == round(SPARSITY * sum(n for _, n in counts)), counts


@pytest.mark.parametrize("name", NAMES)
def test_a_method_is_deterministic_for_a_seed(name):
    first = run(name)[2]
    again = run.__wrapped__(name)[2]  # a fresh run, not the cached one
    assert first.masks.keys() == again.masks.keys()
    assert all(torch.equal(first.masks[k], again.masks[k]) for k in first.masks)


@pytest.mark.parametrize("name", NAMES)
def test_a_methods_masked_model_compacts_to_the_same_outputs(name):
    _, _, result, x_test = run(name)
    assert 0 < result.sparsity < 1  # the run removed something, so the equivalence below has teeth
    masked = apply_masks(copy.deepcopy(result.model), result.masks)
    small = compact(masked)
    assert_equivalent(masked, small, x_test)
    assert_equivalent(masked, result.compact(), x_test)
    assert sum(p.numel() for p in small.parameters()) <= sum(p.numel() for p in masked.parameters())


def test_a_method_without_its_target_or_data_is_refused_naming_what_it_needs():
    model, train, _ = small_model(METHODS["obd"])
    with pytest.raises(ValueError, match="needs a target sparsity"):
        METHODS["obd"](model, train)
    with pytest.raises(ValueError, match="needs data"):
        METHODS["obd"](model, sparsity=0.5)
    with pytest.raises(ValueError, match="decides how much to remove"):
        METHODS["ssl-neurons"](model, train, sparsity=0.5)


def test_the_registry_lists_every_method_of_the_lessons_so_far():
    expected = {f"magnitude-{u}-{s}" for u in ("weight", "neuron", "filter") for s in ("layer", "global")}
    expected |= {"filter-l1", "obd", "obs", "kron-obd-neurons", "kron-obd-filters", "kron-obs-neurons",
                 "kron-obs-filters", "lottery-ticket", "lottery-reinit", "lottery-random-mask", "ssl-neurons",
                 "ssl-filters", "ssl-channels", "ssl-shapes", "network-slimming", "sss-neurons", "sss-filters"}
    assert expected <= set(METHODS)
    table = METHODS.table()
    assert list(table["method"]) == list(METHODS) and table["summary"].str.len().min() > 20
