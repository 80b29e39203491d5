"""What the cached results share: boolean masks stored as bits, and JSON files read and written one way."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch


def pack(masks: dict[str, torch.Tensor]) -> dict:
    """Boolean masks as bits (numpy.packbits) with their shapes: an eighth of the bytes."""
    return {name: (tuple(m.shape), torch.from_numpy(np.packbits(m.reshape(-1).numpy()))) for name, m in masks.items()}


def unpack(packed: dict) -> dict[str, torch.Tensor]:
    """The masks `pack` stored."""
    return {name: torch.from_numpy(np.unpackbits(bits.numpy(), count=math.prod(shape)).astype(bool)).reshape(shape)
            for name, (shape, bits) in packed.items()}


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def write_json(content: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(content, indent=1))
    print(f"wrote {path}")
