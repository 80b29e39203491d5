"""Ensembles: averaged predictive distributions, NLL, error, calibration (ECE, reliability bins) and cost."""

import math

import pytest
import torch

from sparsity_lab import ensemble
from sparsity_lab.methods.sgmcmc import SampleCollector
from sparsity_lab.models import build
from sparsity_lab.train import predict_proba


def random_probs(n=500, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(2 * torch.randn(n, c, generator=g, dtype=torch.float64), 1)
    return probs, torch.randint(0, c, (n,), generator=g)


def ece_by_loops(probs, y, n_bins):
    """Guo et al.'s ECE written out: bin b holds confidences in (b/n_bins, (b+1)/n_bins], 0 in the first."""
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(len(y)) if (lo < probs[i].max() <= hi) or (b == 0 and probs[i].max() == 0)]
        if members:
            conf = sum(float(probs[i].max()) for i in members) / len(members)
            acc = sum(int(probs[i].argmax() == y[i]) for i in members) / len(members)
            total += len(members) / len(y) * abs(acc - conf)
    return total


def test_average_predictions_is_the_mean_of_the_members():
    members = torch.tensor([[[0.7, 0.2, 0.1]], [[0.1, 0.8, 0.1]], [[0.4, 0.4, 0.2]]])
    torch.testing.assert_close(ensemble.average_predictions(members), torch.tensor([[0.4, 1.4 / 3, 0.4 / 3]]))
    torch.testing.assert_close(ensemble.average_predictions(list(members)), ensemble.average_predictions(members))
    with pytest.raises(ValueError, match="member_probs"):
        ensemble.average_predictions(torch.ones(3, 4))
    with pytest.raises(ValueError, match="member_probs is empty"):
        ensemble.average_predictions([])


def test_nll_and_error_by_hand():
    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    y = torch.tensor([0, 1, 1])
    assert ensemble.negative_log_likelihood(probs, y) == pytest.approx(-(math.log(0.5) + math.log(0.1)
                                                                         + math.log(0.8)) / 3)
    assert ensemble.error(probs, y) == pytest.approx(100 / 3)  # argmax ties go to class 0: right; the 0.9 wrong


def test_ece_matches_a_loop_over_bins():
    probs, y = random_probs()
    for n_bins in (1, 5, 15):
        assert ensemble.expected_calibration_error(probs, y, n_bins) == pytest.approx(ece_by_loops(probs, y, n_bins))


def test_ece_of_a_calibrated_and_of_a_confidently_wrong_model():
    g = torch.Generator().manual_seed(1)
    n = 20_000
    confidence = 0.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    right = torch.rand(n, generator=g, dtype=torch.float64) < confidence  # right with probability = confidence
    probs = torch.stack([confidence, 1 - confidence], 1)
    y = torch.where(right, 0, 1)
    # each of 10 bins holds ~n/20 points; its accuracy is off by ~√(0.25/(n/20)) = 0.016 at most
    assert ensemble.expected_calibration_error(probs, y, 10) < 3 * math.sqrt(0.25 / (n / 20))
    wrong = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert ensemble.expected_calibration_error(wrong, torch.tensor([1, 0]), 15) == pytest.approx(1.0)


def test_reliability_bins_count_every_point_once_and_leave_empty_bins_nan():
    probs, y = random_probs(c=2)
    bins = ensemble.reliability_bins(probs, y, 10)
    assert bins["count"].sum() == len(y) and bins["count"][:5].sum() == 0  # two classes: confidence ≥ 0.5
    assert torch.isnan(bins["accuracy"][:5]).all()
    edge = ensemble.reliability_bins(torch.tensor([[1.0, 0.0], [0.5, 0.5]]), torch.tensor([0, 0]), 2)
    assert edge["count"].tolist() == [1, 1]  # 0.5 closes the first bin, 1.0 the last


def test_scores_by_size_average_the_first_members():
    g = torch.Generator().manual_seed(0)
    members = torch.softmax(torch.randn(4, 50, 3, generator=g), -1)
    y = torch.randint(0, 3, (50,), generator=g)
    rows = ensemble.scores_by_size(members, y)
    assert [r["members"] for r in rows] == [1, 2, 3, 4]
    for m, row in enumerate(rows, start=1):
        expected = ensemble.scores(members[:m].mean(0), y)
        assert row["nll"] == pytest.approx(expected["nll"]) and row["ece"] == pytest.approx(expected["ece"])


def test_sample_predictions_load_each_sample_and_leave_the_model_alone():
    model = build("mlp", seed=0, sizes=[6, 5, 3])
    collector = SampleCollector()
    others = [build("mlp", seed=s, sizes=[6, 5, 3]) for s in (1, 2)]
    for other in others:
        collector.add(other)
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(0))
    before = predict_proba(model, x)
    probs = ensemble.sample_predictions(model, collector, x)
    assert probs.shape == (2, 7, 3)
    for m, other in enumerate(others):
        torch.testing.assert_close(probs[m], predict_proba(other, x))
    torch.testing.assert_close(predict_proba(model, x), before)
    with pytest.raises(ValueError, match="empty"):
        ensemble.sample_predictions(model, SampleCollector(), x)


def test_ensemble_cost_is_the_sum_over_members():
    model = build("mlp", seed=0, sizes=[784, 100, 10])
    cost = ensemble.ensemble_cost([model] * 5, torch.zeros(1, 784))
    assert cost["params"] == 5 * (784 * 100 + 100 + 100 * 10 + 10)
    assert cost["flops"] == 5 * (784 * 100 + 100 * 10)


def test_ensemble_widget_follows_its_slider():
    from sparsity_lab.widgets.sgmcmc import EnsembleSize

    g = torch.Generator().manual_seed(0)
    members = torch.softmax(3 * torch.randn(6, 200, 4, generator=g), -1)
    y = torch.randint(0, 4, (200,), generator=g)
    view = EnsembleSize(members, members[0], y)
    all_six = list(view.figure.data[2].y)
    view.members.value = 1
    assert list(view.figure.data[2].y) != all_six
    assert list(view.figure.data[2].y) == list(view.figure.data[1].y)  # one member = the single model
    assert "average of 1" in view.status.value
