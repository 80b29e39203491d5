"""What the cached results share: boolean masks stored as bits, JSON files read and written one way, and the
command line and process pool of a sweep over seeds."""

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
