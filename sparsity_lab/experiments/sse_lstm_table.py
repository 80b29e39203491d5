"""Lesson 08's table: Sparse Structured Ensembles of 2-layer LSTM language models on the synthetic language, for
several seeds. Each seed trains one dense SGD model, samples one SGLD chain without a prior (the plain SGLD
ensemble) and one under the group sparse prior over each grouping (untied, tied, ISS), whose samples are pruned
and retrained — a few minutes per seed on a laptop CPU — so the lesson reads the cached table
(sparsity_lab/results/sse_lstm_table.json), recomputes its first seed's dense model and ISS ensemble live and
checks that they agree with it. Regenerate:

    python -m sparsity_lab.experiments.sse_lstm_table [--scale classroom] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..corpus import download_ptb, load_ptb, synthetic_language
from ..cost import count_parameters
from ..language_model import ensemble_nll, lm_loss, true_token_probs
from ..methods.sse_lstm import GROUPINGS, hidden_sizes, run_sse_lstm, sse_flops, surviving
from ..models import LSTMLanguageModel, build
from ..recipes import SSELSTMLesson, get
from ..train import sgd_stages
from .cache import pack, record_made_here, unpack

TABLE_FILE = Path(__file__).resolve().parents[1] / "results" / "sse_lstm_table.json"
MASKS_FILE = TABLE_FILE.with_name("sse_lstm_masks.pt")


def corpus_of(recipe: SSELSTMLesson, root: str | Path = "~/.cache/sparsity_lab/ptb"):
    """The recipe's corpus, the same for every seed (the seeds vary the models, not the data): the synthetic
    language, or PTB (downloaded to `root` once, checksummed)."""
    if recipe.source == "ptb":
        return load_ptb(download_ptb(Path(root).expanduser()))
    return synthetic_language(**recipe.language)


def start_model(corpus, recipe: SSELSTMLesson, seed: int) -> LSTMLanguageModel:
    return build("lstm-lm", seed=seed, vocab=corpus.vocab_size, embedding=recipe.embedding, hidden=recipe.hidden)


def dense_model(corpus, recipe: SSELSTMLesson, seed: int) -> LSTMLanguageModel:
    """The dense baseline: SGD on segments, the recipe's step schedule."""
    model = start_model(corpus, recipe, seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        sgd_stages(model, corpus.segments("train", recipe.bptt), recipe.sgd_stages(), momentum=0.0,
                   batch_size=recipe.batch_size, seed=seed, loss_fn=lm_loss)
    return model.eval()


def record(method: str, models: list, dense: LSTMLanguageModel, stream: torch.Tensor, grouping: str | None) -> dict:
    """One line of the table: the ensemble's perplexity, each member's, and the cost in multiples of the dense
    model: nonzero parameters, and FLOPs per token as the grouping's inference computes them."""
    probs = torch.stack([true_token_probs(m, stream) for m in models])
    dense_params = count_parameters(dense)["total"]
    dense_flops = sse_flops(dense, "tied")
    out = {"method": method, "grouping": grouping, "models": len(models),
           "perplexity": math.exp(ensemble_nll(probs)),
           "member perplexities": [math.exp(ensemble_nll(p[None])) for p in probs],
           "params ×": sum(count_parameters(m)["nonzero"] for m in models) / dense_params,
           "FLOPs ×": sum(sse_flops(m, grouping or "tied") for m in models) / dense_flops}
    if grouping is not None:
        out["hidden sizes"] = [list(hidden_sizes(m)) for m in models]
        out["index lists"] = [{k: [v["rows"], v["columns"]] for k, v in surviving(m).items()} for m in models]
    return out


def sse_record(corpus, recipe: SSELSTMLesson, seed: int, grouping: str | None, dense: LSTMLanguageModel,
               progress: bool = False):
    """The SGLD ensemble under `grouping`'s prior (None: no prior, nothing pruned): (record, the ensemble)."""
    found = run_sse_lstm(corpus, start_model(corpus, recipe, seed), grouping=grouping, progress=progress,
                         **recipe.sse(grouping, seed))
    label = (f"SGLD, {recipe.samples} models" if grouping is None
             else f"SGLD+GSP({grouping})+PR, {recipe.sparsity:.0%} sparse")
    return record(label, found.models, dense, corpus.test, grouping), found


def seed_records(corpus, recipe: SSELSTMLesson, seed: int, groupings=(None, *GROUPINGS),
                 progress: bool = False) -> tuple[list[dict], dict]:
    """Every row of the table for one seed, and the first member's masks per grouping."""
    dense = dense_model(corpus, recipe, seed)
    rows, masks = [record("SGD, 1 model", [dense], dense, corpus.test, None)], {}
    for grouping in tqdm(groupings, desc=f"seed {seed}", disable=not progress, leave=False):
        row, found = sse_record(corpus, recipe, seed, grouping, dense)
        rows.append(row)
        if grouping is not None:
            masks[grouping] = found.members[0].masks
    return rows, masks


def first_members(path: str | Path = MASKS_FILE) -> dict[str, dict[str, torch.Tensor]]:
    """The cached masks of the first seed's first member, per grouping (for latency: only the structure matters)."""
    return {grouping: unpack(p) for grouping, p in torch.load(path, weights_only=True).items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="classroom", choices=("classroom", "paper"))
    parser.add_argument("--out", default=str(TABLE_FILE))
    args = parser.parse_args(argv)
    recipe = get("08", args.scale)
    torch.set_num_threads(1)      # the lesson's thread count: the same floating-point sums, the same numbers
    corpus = corpus_of(recipe)
    known = corpus.entropy_rate is not None     # PTB has no known floor
    out = {"recipe": dataclasses.asdict(recipe), "floor": corpus.floor_perplexity if known else None,
           "true model": math.exp(corpus.true_nll("test")) if known else None, "seeds": {}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for seed in tqdm(recipe.seeds, desc="seeds"):
        out["seeds"][str(seed)], masks = seed_records(corpus, recipe, seed, progress=True)
        if seed == recipe.seeds[0]:
            torch.save({g: pack(m) for g, m in masks.items()}, Path(args.out).with_name(MASKS_FILE.name))
    Path(args.out).write_text(json.dumps(out, indent=1))
    record_made_here(args.out, Path(args.out).with_name(MASKS_FILE.name))
    print(f"wrote {args.out}")


def load_table(path: str | Path = TABLE_FILE) -> dict:
    """The cached table: {"recipe", "floor", "true model", "seeds": {seed: [row, ...]}}."""
    return json.loads(Path(path).read_text())


if __name__ == "__main__":
    main()
