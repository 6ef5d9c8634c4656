"""Serving cost of a LoRA stage's checkpoint: merged into the weights (what a stage publishes) against the same
adapter left unmerged on the base model, and against the base model itself, in one run.

Run (about 3 minutes on 2 CPU cores; keep the machine otherwise idle):
    HF_HUB_OFFLINE=1 python benchmarks/lora_latency.py
Options: --model (a sentence-transformers folder; default multilingual-e5-small from $BACKBONE_MODELS_DIR), --stard
(default $BACKBONE_STARD_DIR or ../shared/data/stard), --rounds, --rank, --k (pairs of one rerank call), --threads.

What it times: the calls a Serve replica makes per request, through the product's own functions. A query embedding
(``encode_queries`` of one real STARD query: what ``/v1/embeddings`` and the retrieval half of ``/v1/search`` run)
and one rerank (``score_pairs`` of a query with K real STARD articles: the reranking half of ``/v1/search``). Three
models of each component: the base model; base + a rank-r LoRA adapter on the attention projections (the family's
default targets), trained-looking (its B matrices drawn at random, so it changes the outputs); and that same adapter
merged with ``merge_lora``. Variants alternate within each round, so drift in the machine's speed hits all three;
each figure is the median over rounds. The merged model's outputs are checked against the unmerged model's.

The table is printed and written as JSON to benchmarks/results/lora_latency.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from backbone.data import load_stard
from backbone.models import (
    add_lora,
    build_reranker,
    build_retriever,
    encode_queries,
    merge_lora,
    passage_text,
    score_pairs,
)
from backbone.recipes import LoraFinetune, Reranker, Retriever
from backbone.settings import models_dir

REPO = Path(__file__).resolve().parents[1]


def with_adapter(model: nn.Module, lora: LoraFinetune, seed: int) -> nn.Module:
    """A copy of ``model`` carrying an adapter whose B matrices are random (a fresh adapter is an exact no-op)."""
    adapted = copy.deepcopy(model)
    add_lora(adapted, lora, "encoder")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    return adapted


def merged_copy(model: nn.Module) -> nn.Module:
    merged = copy.deepcopy(model)
    merge_lora(merged)
    return merged


def time_rounds(calls: dict[str, Callable[[], np.ndarray]], rounds: int) -> dict[str, float]:
    """Median milliseconds of each call over ``rounds`` rounds, the calls alternating within a round."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():  # warm-up
        call()
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=models_dir() / "intfloat" / "multilingual-e5-small")
    default_stard = Path(os.environ.get("BACKBONE_STARD_DIR", REPO.parent / "shared" / "data" / "stard"))
    parser.add_argument("--stard", type=Path, default=default_stard)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "lora_latency.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dataset = load_stard(args.stard)
    rng = random.Random(0)
    queries = rng.sample(dataset.queries.column("text").to_pylist(), args.rounds + 1)
    titles, texts = dataset.corpus.column("title").to_pylist(), dataset.corpus.column("text").to_pylist()
    lora = LoraFinetune(method="lora", rank=args.rank, alpha=2 * args.rank, dropout=0.0)

    retriever = Retriever(model=str(args.model), query_prefix="query: ", passage_prefix="passage: ")
    reranker = Reranker(model=str(args.model), max_length=320, max_query_length=64)
    articles = [passage_text(reranker, titles[i], texts[i]) for i in rng.sample(range(len(titles)), args.k)]
    base_retriever, base_reranker = build_retriever(retriever), build_reranker(reranker)
    models = {
        "retriever": {"base": base_retriever, "unmerged": with_adapter(base_retriever, lora, 1)},
        "reranker": {"base": base_reranker, "unmerged": with_adapter(base_reranker, lora, 2)},
    }
    for variants in models.values():
        variants["merged"] = merged_copy(variants["unmerged"])

    query_iter = iter(queries * 10)

    def embed(model: nn.Module) -> Callable[[], np.ndarray]:
        return lambda: encode_queries(model, retriever, [next(query_iter)])

    def rerank(model: nn.Module) -> Callable[[], np.ndarray]:
        return lambda: score_pairs(model, reranker, [next(query_iter)] * args.k, articles)

    probe = queries[0]
    checks = {
        "retriever": encode_queries(models["retriever"]["merged"], retriever, [probe])
        - encode_queries(models["retriever"]["unmerged"], retriever, [probe]),
        "reranker": score_pairs(models["reranker"]["merged"], reranker, [probe] * args.k, articles)
        - score_pairs(models["reranker"]["unmerged"], reranker, [probe] * args.k, articles),
    }
    moved = {
        "retriever": encode_queries(models["retriever"]["unmerged"], retriever, [probe])
        - encode_queries(models["retriever"]["base"], retriever, [probe]),
        "reranker": score_pairs(models["reranker"]["unmerged"], reranker, [probe] * args.k, articles)
        - score_pairs(models["reranker"]["base"], reranker, [probe] * args.k, articles),
    }

    with torch.inference_mode():
        medians = {
            "query embedding (1 query)": time_rounds(
                {name: embed(model) for name, model in models["retriever"].items()}, args.rounds
            ),
            f"rerank ({args.k} pairs)": time_rounds(
                {name: rerank(model) for name, model in models["reranker"].items()}, args.rounds
            ),
        }

    rows = []
    for call, component in zip(medians, ("retriever", "reranker"), strict=True):
        base = medians[call]["base"]
        for variant in ("base", "unmerged", "merged"):
            rows.append(
                {
                    "call": call,
                    "model": variant,
                    "median_ms": round(medians[call][variant], 2),
                    "ratio_to_base": round(medians[call][variant] / base, 3),
                    "max_abs_diff_to_unmerged": float(np.abs(checks[component]).max()) if variant == "merged" else None,
                    "max_abs_change_from_base": float(np.abs(moved[component]).max())
                    if variant == "unmerged"
                    else None,
                }
            )

    print(
        f"model {args.model.name}, LoRA rank {args.rank} on query/key/value, {args.threads} threads, "
        f"{args.rounds} rounds (median)"
    )
    print("| call | model | median ms | ratio to base | note |")
    print("| --- | --- | ---: | ---: | --- |")
    for row in rows:
        note = ""
        if row["max_abs_diff_to_unmerged"] is not None:
            note = f"max abs diff to unmerged {row['max_abs_diff_to_unmerged']:.1e}"
        if row["max_abs_change_from_base"] is not None:
            note = f"adapter moves outputs by up to {row['max_abs_change_from_base']:.3f}"
        print(f"| {row['call']} | {row['model']} | {row['median_ms']:.1f} | {row['ratio_to_base']:.3f} | {note} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "model": str(args.model.name),
        "rank": args.rank,
        "k": args.k,
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
