"""`sparsity-lab bench compaction`: dense vs compacted latency, measured in one run, beside the FLOP reduction.
(`sparsity-lab bench methods`, every method on one footing, is `experiments.methods_bench`.)

Structured cases are the published structures: LeNet-500-300 → 537-217-130 (Sparse VD), 434-174-78 (SSL),
245-160-55 (SBP); LeNet5-Caffe → 3-18-(288)-283 (SBP's 3-18-284-283: we remove whole conv2 maps at the flatten, so
fc1 reads 18·16 = 288 inputs, not 284); a 2-layer LSTM 1500-1500 → ISS 533-425-533 (Wen et al. 2018). Each is
built by masking a dense model with random structured masks (seeded) and running it through `compact`, with
`assert_equivalent` checked, so the benchmark exercises the real inference path. Unstructured cases mask 90/96/99%
of LeNet-500-300's weights by magnitude and run them as masked dense and as torch sparse CSR.

The LSTM rows time the recurrent layers alone (embedded input in, hidden states out) at seq 35 × batch 20. The
baseline is what a user would compare with: the dense model exported to `torch.nn.LSTM` (`to_nn_lstm`). Beside
it, the compacted ISS model four ways: exported to nn.LSTM (what one deploys), its `LSTMLayer`s on the fused
kernel, the same layers as the readable Python loop (fused=False), and the uncompacted index lists.

Speed-up = dense latency / variant latency, both measured by `torch.utils.benchmark` in the same run (alternating
rounds, `cost.compare_latency`), at each batch size and thread count. Ratios, not absolute times, are what carry
over between machines. `TARGETS` marks the rows with a speed-up to reach.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch import nn

from .compact import assert_equivalent, compact
from .cost import compare_latency, flops
from .experiments import methods_bench
from .masks import apply_masks, baked, combine
from .methods.magnitude import magnitude
from .models import MLP, LeNet5, LSTMLanguageModel, to_nn_lstm
from .sparse_inference import CSRMLP, IndexListLSTMLanguageModel, index_list_recurrence
from .structure import unit_groups

MLP_STRUCTURES = {"Sparse VD 537-217-130": (537, 217, 130), "SSL 434-174-78": (434, 174, 78),
                  "SBP 245-160-55": (245, 160, 55)}
TARGETS = {("lenet-500-300", "SBP 245-160-55 (compact)", 1024): 8.0,
           ("lenet5-caffe", "SBP 3-18-288-283 (compact)", 256): 5.5,
           ("lstm-1500", "ISS 533-425-533 (nn.LSTM)", 20): 9.0}  # (model, variant, batch): speed-up to reach


def keep_first(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """A random boolean vector of length n with exactly k True entries."""
    keep = torch.zeros(n, dtype=torch.bool)
    keep[torch.randperm(n, generator=generator)[:k]] = True
    return keep


def structured_mlp(dense: MLP, widths: tuple[int, ...], generator: torch.Generator) -> MLP:
    """Mask `dense` so that `widths` (inputs, hidden...) units survive, and compact it."""
    groups = unit_groups(dense)  # input pixels, then each hidden layer's neurons
    masked = apply_masks(copy.deepcopy(dense), combine(*[g.masks(keep_first(g.n, k, generator))
                                                 for g, k in zip(groups, widths, strict=True)]))
    return _checked(masked, torch.rand(8, 784, generator=generator))


def structured_lenet5(dense: LeNet5, conv1: int, conv2: int, fc1: int, generator: torch.Generator) -> LeNet5:
    """Mask `dense` to keep conv1/conv2 feature maps and fc1 units (random choices), and compact it."""
    maps1, maps2, fc1_units = unit_groups(dense)  # conv1 maps, conv2 maps, fc1 neurons, each with its readers
    masks = combine(maps1.masks(keep_first(maps1.n, conv1, generator)),
                    maps2.masks(keep_first(maps2.n, conv2, generator)),
                    fc1_units.masks(keep_first(fc1_units.n, fc1, generator)))
    return _checked(apply_masks(copy.deepcopy(dense), masks), torch.rand(4, 1, 28, 28, generator=generator))


def structured_lstm(dense: LSTMLanguageModel, widths: tuple[int, ...], generator: torch.Generator):
    """Mask `dense` with ISS groups keeping `widths` (embedding, layer 1, layer 2) units: (masked, compact,
    compact exported to nn.LSTM), the last two checked against the masked model."""
    masks = combine(*[g.masks(keep_first(g.n, k, generator)) for g, k in zip(unit_groups(dense), widths,
                                                                             strict=True)])
    masked = apply_masks(copy.deepcopy(dense), masks)
    tokens = torch.randint(0, dense.decoder.out_features, (5, 2), generator=generator)
    small = _checked(masked, tokens)
    exported = to_nn_lstm(small)
    assert_equivalent(masked, exported, tokens)
    return masked, small, exported


def readable_loop(lm: LSTMLanguageModel) -> LSTMLanguageModel:
    """A copy of `lm` whose LSTM layers run the Python loop over time steps (`LSTMLayer(fused=False)`)."""
    loop = copy.deepcopy(lm)
    for rnn in loop.rnns:
        rnn.fused = False
    return loop


def _checked(masked: nn.Module, x: torch.Tensor) -> nn.Module:
    small = compact(masked)
    assert_equivalent(masked, small, x)
    return small


class LSTMStack(nn.Module):
    """The recurrent part of a language model, on already embedded input (T, B, E): its LSTMLayers (`rnns`) or,
    exported, its nn.LSTMs (`lstms`); each returns (output, state)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.rnns = lm.rnns if isinstance(lm, LSTMLanguageModel) else lm.lstms

    def forward(self, x):
        for rnn in self.rnns:
            x, _ = rnn(x)
        return x


class IndexListStack(nn.Module):
    """The LSTM layers of an `IndexListLSTMLanguageModel`: full weights, only surviving rows/columns computed."""

    def __init__(self, masked: LSTMLanguageModel):
        super().__init__()
        self.layers = IndexListLSTMLanguageModel(masked).layers

    def forward(self, x):
        for layer in self.layers:
            x = index_list_recurrence(x, layer)
        return x


def _record(model_name, variant, batch, threads, flop_ratio, dense_s, variant_s, **extra):
    return {"model": model_name, "variant": variant, "batch": batch, "threads": threads,
            "flop_ratio": round(flop_ratio, 2), "dense_ms": round(1e3 * dense_s, 4),
            "variant_ms": round(1e3 * variant_s, 4), "speedup": round(dense_s / variant_s, 2), **extra}


def _measure(cases, x, model_name, batch, threads, min_run_time):
    """Latency of the dense model (cases[0]) and of each variant on its input, timed in alternation over five
    rounds (fastest round of each kept, see `cost.compare_latency`), as records of speed-up over the dense one."""
    models = {name: m for name, m, _, _ in cases}
    seconds = compare_latency(models, dict(zip(models, x, strict=True)), threads, rounds=5,
                              min_run_time=min_run_time)
    dense_name, _, dense_flops, _ = cases[0]
    return [_record(model_name, name, batch, threads, dense_flops / flop, seconds[dense_name], seconds[name],
                    baseline=dense_name, **extra) for name, _, flop, extra in cases[1:]]


def compaction(batches=(1, 64, 1024), threads=(1, 2), min_run_time=0.1, seed=0, quick=False) -> list[dict]:
    """Run every case; returns a list of records (model, variant, batch, threads, flop_ratio, speedup...)."""
    g = torch.Generator().manual_seed(seed)
    records = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        mlp = MLP([784, 500, 300, 10])
        lenet5 = LeNet5()
        lm = LSTMLanguageModel(vocab=100 if quick else 10000, embedding=1500, hidden=(1500, 1500))
    image = torch.rand(1, 1, 28, 28, generator=g)
    mlp_cases = [("dense 784-500-300", mlp, flops(mlp, image)["dense"], {})]
    for name, widths in MLP_STRUCTURES.items():
        small = structured_mlp(mlp, (widths[0], *widths[1:]), g)
        mlp_cases.append((f"{name} (compact)", small, flops(small, image)["dense"], {"sizes": small.sizes}))
    for sparsity in (0.9, 0.96, 0.99):
        masked = magnitude(mlp, sparsity=sparsity).masked()
        nonzero = flops(masked, image)["nonzero"]
        mlp_cases.append((f"unstructured {sparsity:.0%} (masked dense)", baked(masked), nonzero, {}))
        mlp_cases.append((f"unstructured {sparsity:.0%} (CSR)", CSRMLP(masked), nonzero, {}))
    small5 = structured_lenet5(lenet5, 3, 18, 283, g)
    lenet_cases = [("dense 20-50-800-500", lenet5, flops(lenet5, image)["dense"], {}),
                   ("SBP 3-18-288-283 (compact)", small5, flops(small5, image)["dense"], {})]
    for batch in batches:
        x = torch.rand(batch, 1, 28, 28, generator=g)
        for t in threads:
            records += _measure(mlp_cases, [x] * len(mlp_cases), "lenet-500-300", batch, t, min_run_time)
            conv_batch = 256 if batch == 1024 else batch
            xc = x[:conv_batch]
            records += _measure(lenet_cases, [xc, xc], "lenet5-caffe", conv_batch, t, min_run_time)
    masked_lm, small_lm, small_nn = structured_lstm(lm, (533, 425, 533), g)
    token = torch.zeros(1, 1, dtype=torch.long)
    dense_flops, small_flops = [sum(row["dense"] for row in flops(m, token)["layers"]
                                    if row["layer"].startswith("rnns")) for m in (lm, small_lm)]
    steps, batch = (5 if quick else 35), 20
    x = torch.rand(steps, batch, 1500, generator=g)
    seq = {"seq": steps}
    lstm_cases = [("dense 1500-1500 (nn.LSTM)", LSTMStack(to_nn_lstm(lm)), dense_flops, seq),
                  ("ISS 533-425-533 (nn.LSTM)", LSTMStack(small_nn), small_flops, seq),
                  ("ISS 533-425-533 (compact, fused)", LSTMStack(small_lm), small_flops, seq),
                  ("ISS 533-425-533 (compact, loop)", LSTMStack(readable_loop(small_lm)), small_flops, seq),
                  ("ISS 533-425-533 (index lists)", IndexListStack(masked_lm), small_flops, seq)]
    small_x = x[..., :533].contiguous()
    for t in threads:
        records += _measure(lstm_cases, [x, small_x, small_x, small_x, x], "lstm-1500", batch, t, min_run_time)
    return records


def table(records: list[dict]) -> str:
    """The records as a text table, one row each, targets marked; under it, what each model's "dense" is."""
    lines = [f"{'model':<14} {'variant':<34} {'batch':>5} {'thr':>3} {'FLOP cut':>9} {'dense ms':>9} "
             f"{'variant ms':>10} {'speed-up':>9}"]
    for r in records:
        target = TARGETS.get((r["model"], r["variant"], r["batch"]))
        mark = "" if target is None else f"  target ≥ {target:g}× {'✓' if r['speedup'] >= target else '✗'}"
        lines.append(f"{r['model']:<14} {r['variant']:<34} {r['batch']:>5} {r['threads']:>3} "
                     f"{r['flop_ratio']:>8.2f}× {r['dense_ms']:>9.3f} {r['variant_ms']:>10.3f} "
                     f"{r['speedup']:>8.2f}×{mark}")
    baselines = {r["model"]: r["baseline"] for r in records if "baseline" in r}
    lines += ["", "dense = " + "; ".join(f"{model}: {name}" for model, name in baselines.items())]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=["compaction", "methods"],
                        help="compaction: dense vs compacted latency of published structures; methods: every method "
                             "on one footing (experiments.methods_bench)")
    parser.add_argument("--json", metavar="FILE", help="compaction: also write the records as a JSON list ('-' for "
                        "stdout)")
    parser.add_argument("--min-run-time", type=float, default=0.1,
                        help="seconds per timing; each is repeated in 5 alternating rounds (default 0.1)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: compaction with a small LSTM; methods "
                        "on tiny networks for one epoch")
    methods_bench.add_arguments(parser.add_argument_group("methods"))


def run(args: argparse.Namespace) -> int:
    if args.suite == "methods":
        return methods_bench.run(args)
    start = time.perf_counter()
    records = compaction(min_run_time=args.min_run_time, quick=args.quick)
    if args.json != "-":
        print(table(records))
        print(f"\n{len(records)} measurements in {time.perf_counter() - start:.0f} s "
              f"(torch {torch.__version__}, {torch.get_num_threads()} threads available)")
    if args.json:
        text = json.dumps(records, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    return 0
