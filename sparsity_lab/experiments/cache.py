"""What the cached results share: boolean masks stored as bits, JSON files read and written one way, the CPU each
cache was made on, and the command line and process pool of a sweep over seeds.

Where a cache was made matters to the tests that recompute a slice of it. The package pins PyTorch, MKL and oneDNN to
their AVX2 kernels, so a rerun on a machine with the same CPU gives the same bits; on another CPU model the
libraries still block their sums differently, and training amplifies a last-bit difference: caches made on an AMD
EPYC retrain on an Intel Xeon to test errors 0.1–0.4 points away (8 slices measured, 2026-12-03). So `made_here`
tells a test whether to demand the same numbers, or only agreement within `DRIFT` (`agrees`)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm


def pack(masks: dict[str, torch.Tensor]) -> dict:
    """Boolean masks as bits (numpy.packbits) with their shapes: an eighth of the bytes."""
    return {name: (tuple(m.shape), torch.from_numpy(np.packbits(m.reshape(-1).numpy()))) for name, m in masks.items()}


def unpack(packed: dict) -> dict[str, torch.Tensor]:
    """The masks `pack` stored."""
    return {name: torch.from_numpy(np.unpackbits(bits.numpy(), count=math.prod(shape)).astype(bool)).reshape(shape)
            for name, (shape, bits) in packed.items()}


RESULTS = Path(__file__).resolve().parents[1] / "results"
MADE_ON = RESULTS / "made_on.json"   # cache file (relative to results/) → the CPU model it was made on
DRIFT = {"error": 1.0, "nll": 0.02, "perplexity": 0.01}
"""How far a recomputed number may lie from its cache on another CPU: test error in points (2.5× the largest drift
measured between an AMD EPYC and an Intel Xeon), NLL in nats, perplexity relative."""


def cpu_of(machine: str) -> str:
    """The CPU model in a `cost.machine` line (its first field), e.g. a benchmark record's "machine"."""
    return machine.split(", ")[0]


def cpu() -> str:
    """This machine's CPU model, as /proc/cpuinfo names it."""
    from ..cost import machine
    return cpu_of(machine(1))


def _key(path: str | Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(RESULTS)) if path.is_relative_to(RESULTS) else str(path)


def made_on(path: str | Path) -> str | None:
    """The CPU model the cache at `path` was made on (None if nothing is recorded)."""
    return (read_json(MADE_ON) if MADE_ON.exists() else {}).get(_key(path))


def made_here(path: str | Path) -> bool:
    """Whether this machine has the CPU that made the cache at `path`, so a recomputed slice must match it exactly."""
    return made_on(path) == cpu()


def record_made_here(*paths: str | Path) -> None:
    """Note that the caches at `paths` were just written on this machine's CPU (in results/made_on.json); a file
    outside results/ is not noted."""
    paths = [p for p in paths if Path(p).resolve().is_relative_to(RESULTS)]
    if not paths:
        return
    table = read_json(MADE_ON) if MADE_ON.exists() else {}
    table.update({_key(p): cpu() for p in paths})
    MADE_ON.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")


def agrees(fresh: float, cached: float, here: bool, what: str = "error") -> bool:
    """Whether a recomputed number matches its cache: to 1e-9 when made `here` (same CPU), else within DRIFT[what]
    (relative for perplexity)."""
    if here:
        return math.isclose(fresh, cached, rel_tol=0, abs_tol=1e-9)
    bound = DRIFT[what] * (abs(cached) if what == "perplexity" else 1)
    return abs(fresh - cached) <= bound


def claim_reproduced(statement: str, pairs, path: str | Path, what: str = "error", source: str = "") -> bool:
    """A lesson's claim that live numbers reproduce their cache (`checks.claim`): each (live, cached) pair in
    `pairs` exactly on the CPU that made the cache at `path`, within DRIFT[what] on another — and the claim says
    which. `source`: how the cache was made, for the evidence."""
    from ..checks import claim

    pairs = [(float(a), float(b)) for a, b in pairs]
    made, here = made_on(path), made_here(path)
    how = "exactly" if here else (f"within {DRIFT[what]:g}{' relative' if what == 'perplexity' else ''} (the cache "
                                  f"was made on an {made}, this machine is an {cpu()}: the last bits differ)")
    evidence = f"largest difference {max(abs(a - b) for a, b in pairs):.2g}" + (f"; {source}" if source else "")
    return claim(f"{statement} {how}", all(agrees(a, b, here, what) for a, b in pairs), evidence)


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def write_json(content: dict, path: str | Path, quiet: bool = False) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(content, indent=1))
    if not quiet:
        print(f"wrote {path}")


def sweep_arguments(doc: str, out: Path, argv=None) -> argparse.Namespace:
    """The command line every sweep takes: --scale, --jobs (seeds in parallel), --out."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--scale", default="classroom", choices=("classroom", "paper"))
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel, one process each")
    parser.add_argument("--out", default=str(out))
    return parser.parse_args(argv)


def run_seeds(one_seed: Callable, scale: str, seeds, jobs: int) -> list:
    """one_seed(scale, seed) for every seed, `jobs` processes at a time, in seed order, with a progress bar.
    Each seed's numbers do not depend on `jobs`: every process trains with one thread from its own seed."""
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(tqdm(pool.map(one_seed, [scale] * len(seeds), seeds), total=len(seeds), desc="seeds"))
