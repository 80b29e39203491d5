"""What a network costs: parameters, FLOPs (multiply-adds) three ways, and measured latency.

FLOPs of one weight matrix W used once:
    dense      every entry of W                          (what a dense kernel computes)
    nonzero    the nonzero entries of W                  (what an ideal sparse kernel computes)
    submatrix  rows-with-a-nonzero × columns-with-a-nonzero: the smallest submatrix holding all nonzeros (SSE's
               definition, Zhang & Ou 2018), what compaction can actually reach for that matrix alone
A conv layer's matrix is W viewed as (filters, channels·kh·kw), used once per output position. An LSTM layer's two
matrices are used once per token. Counts are per example (an image, or a token for a language model).

`variants` puts the three side by side for one masked MLP: stored dense with its zeros, compacted, sparse CSR.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils import benchmark

from .compact import compact
from .masks import baked, effective_weights
from .models import LSTMLayer
from .sparse_inference import CSRMLP
from .structure import check_input


def count_parameters(model: nn.Module) -> dict[str, int]:
    """All parameters (biases included, a masked weight counted once) and how many are nonzero."""
    with torch.no_grad():
        tensors = {n: p for n, p in model.named_parameters() if ".parametrizations." not in n}
        tensors.update(effective_weights(model))
        return {"total": sum(t.numel() for t in tensors.values()),
                "nonzero": sum(int(torch.count_nonzero(t)) for t in tensors.values())}


def matrix_flops(w: torch.Tensor) -> dict[str, int]:
    """Multiply-adds of one use of a 2-D weight matrix: dense, nonzero and smallest-submatrix counts."""
    if w.dim() != 2:
        raise ValueError(f"matrix_flops needs a 2-D weight matrix, got shape {tuple(w.shape)}")
    nz = w != 0
    return {"dense": w.numel(), "nonzero": int(nz.sum()),
            "submatrix": int(nz.any(1).sum()) * int(nz.any(0).sum())}


@torch.no_grad()
def flops(model: nn.Module, example: torch.Tensor) -> dict:
    """FLOPs per example of `model` on an input shaped like `example` (a batch of one image, or (1, 1) tokens).

    Returns {"dense", "nonzero", "submatrix", "layers": [per-layer rows]}; uses forward hooks for conv sizes."""
    check_input(model, example, "example")
    weights = effective_weights(model)
    names = {id(m): n for n, m in model.named_modules()}
    uses: dict[str, int] = {}

    def hook(module, inputs, output):
        name = names[id(module)]
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(module, nn.Conv2d):
            uses[name] = out.shape[-1] * out.shape[-2] * out.shape[0]
        elif isinstance(module, LSTMLayer):
            uses[name] = out.shape[0] * out.shape[1]
        else:
            uses[name] = out.numel() // out.shape[-1]

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Linear | nn.Conv2d | LSTMLayer)]
    try:
        model.eval()
        model(example)
    finally:
        for h in handles:
            h.remove()
    tokens = not example.is_floating_point() and example.dim() == 2  # (T, B) token ids, int64 or int32
    batch = example.shape[0] * (example.shape[1] if tokens else 1)
    layers = []
    for name, w in weights.items():
        module_name, _, attr = name.rpartition(".")
        if module_name not in uses:  # embeddings are look-ups, not multiplications
            continue
        counts = matrix_flops(w.reshape(w.shape[0], -1))
        layers.append({"layer": name, **{k: v * uses[module_name] // batch for k, v in counts.items()}})
    totals = {k: sum(row[k] for row in layers) for k in ("dense", "nonzero", "submatrix")}
    return {**totals, "layers": layers}


def latency(model: nn.Module, x: torch.Tensor, threads: int = 1, min_run_time: float = 0.2) -> float:
    """Median seconds of one forward pass of `model` on `x` (inference mode), measured by torch.utils.benchmark
    with `threads` intra-op threads (the thread count is restored afterwards)."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    model.eval()

    @torch.inference_mode()
    def forward():
        return model(x)

    timer = benchmark.Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_run_time).median


def machine(threads: int = 1) -> str:
    """The machine a timing ran on, in one line: CPU model (from /proc/cpuinfo where there is one), cores, torch
    version and the intra-op threads used — to print beside every measured speed-up."""
    import os
    import platform
    from pathlib import Path

    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} thread{'s' * (threads != 1)}"


def compare_latency(models: dict[str, nn.Module], inputs: dict[str, torch.Tensor] | torch.Tensor,
                    threads: int = 1, rounds: int = 5, min_run_time: float = 0.05) -> dict[str, float]:
    """Seconds per forward pass of several models measured in alternation: `rounds` rounds, each timing every
    model once, and the fastest round of each model kept. Other processes only ever add time, and alternating
    exposes every model to the same disturbances, so the ratios are far steadier than one timing each.

    inputs: one tensor for all models, or name → tensor."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    best = {name: float("inf") for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            x = inputs[name] if isinstance(inputs, dict) else inputs
            best[name] = min(best[name], latency(model, x, threads, min_run_time))
    return best


def variants(masked: nn.Module, x: torch.Tensor, threads: int = 1, rounds: int = 3) -> pd.DataFrame:
    """Params, MACs and measured latency of one masked MLP run three ways: dense with the zeros stored (masks
    baked), compacted, and as sparse CSR matrices; timed in alternation on the batch x (`compare_latency`).

    Returns one row per variant: variant, params, MACs computed (per example), latency ms (the whole batch) and
    speed-up (against the first, masked dense)."""
    small = compact(masked)
    models = {"masked dense": baked(masked), "compact dense": small, "sparse CSR": CSRMLP(masked)}
    counts, params = flops(masked, x[:1]), count_parameters(masked)
    sizes = {"masked dense": (params["total"], counts["dense"]),
             "compact dense": (count_parameters(small)["total"], flops(small, x[:1])["dense"]),
             "sparse CSR": (params["nonzero"], counts["nonzero"])}
    seconds = compare_latency(models, x, threads, rounds=rounds)
    return pd.DataFrame([{"variant": name, "params": sizes[name][0], "MACs computed": sizes[name][1],
                          "latency ms": 1e3 * seconds[name], "speed-up": seconds["masked dense"] / seconds[name]}
                         for name in models])
