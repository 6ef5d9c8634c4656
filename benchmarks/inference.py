"""Model passes at this CPU's limit: the backbone's one inference path against plain sentence-transformers fp32.

Run (about 6 minutes on 2 CPU cores with stard-mini; keep the machine otherwise idle):
    HF_HUB_OFFLINE=1 python benchmarks/inference.py [--recipe jobs/recipes/stard-mini.yaml]
Options: --recipe (its dataset, retriever and reranker specs; the dataset is prepared if it is not yet), --reranker
(a trained reranker checkpoint folder for the quality rows; default the recipe's untrained base reranker), --articles
and --pairs (how many texts the speed rows time), --layers (reranker depths to time), --retriever-splits, --rounds,
--threads, --out.

In one run, same model folder, same real texts of the recipe's dataset, same thread count:
- the GEMM rate torch reaches on the model's own linear-layer shapes, fp32 and bf16 (what a pass could reach; bf16
  only where the CPU multiplies it natively, as everywhere below: elsewhere it is no fast path);
- corpus encoding: ``SentenceTransformer(model).encode`` fp32 (the reference) against the product's
  ``encode_passages`` at fp32, bf16 and int8 (ONNX Runtime; its export is made in the warm-up, not timed; the
  recipe's token budget); articles/s, the ratio to the reference, cosine of each embedding to the reference's, and
  the linear layers' achieved GFLOP/s;
- retrieval quality: nDCG@10 and Recall@100 on the recipe's eval split (and any --retriever-splits) over the whole
  corpus, each precision, with BM25 beside them;
- pair scoring: ``CrossEncoder.predict`` fp32 against ``score_pairs`` at each precision on the eval queries' top
  candidates, and the same for rerankers built from the first N layers; pairs/s and MRR@10 of the reranked top 20,
  beside the MRR@10 of the retriever's own order of those candidates.
Variants alternate within each round; each figure is the median over rounds. The table is printed and written as
JSON to benchmarks/results/inference.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import CrossEncoder, SentenceTransformer
from torch import nn

from backbone.data import build_recipe_dataset, load_dataset
from backbone.evaluation import BM25, DenseIndex, evaluate, rerank
from backbone.model_paths import resolve_model
from backbone.models import (
    build_reranker,
    build_retriever,
    encode_passages,
    encode_queries,
    load_reranker,
    passage_text,
    score_pairs,
)
from backbone.models.precision import native_bf16
from backbone.recipes import Inference, Reranker, Retriever, load_recipe

REPO = Path(__file__).resolve().parents[1]


def at(spec: Retriever | Reranker, precision: str, **changes: object) -> Retriever | Reranker:
    """``spec`` with its passes at ``precision`` (and any other field changed)."""
    inference = Inference(precision=precision, max_batch_tokens=spec.inference.max_batch_tokens)  # type: ignore[arg-type]
    return spec.model_copy(update={"inference": inference, **changes})


def gemm_rate(tokens: int, shapes: list[tuple[int, int]], dtype: torch.dtype, seconds: float = 2.0) -> float:
    """GFLOP/s of ``tokens x in @ in x out`` products over the model's linear shapes, for ``seconds``."""
    pairs = [(torch.randn(tokens, n_in, dtype=dtype), torch.randn(n_in, n_out, dtype=dtype)) for n_in, n_out in shapes]
    flops, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for left, right in pairs:
            torch.mm(left, right)
            flops += 2 * tokens * right.shape[0] * right.shape[1]
    return flops / (time.perf_counter() - started) / 1e9


def linear_flops_per_token(model: nn.Module) -> int:
    """2 x the weights of the transformer layers' linear maps: the matrix-product work of one token."""
    return 2 * sum(
        module.weight.numel()
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and ("layer." in name or "layers." in name)
    )


def median_seconds(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each call over ``rounds``, the calls alternating within a round (after one warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def print_table(rows: list[dict[str, object]], columns: list[str]) -> None:
    """``rows`` as a Markdown table of ``columns`` (None or absent shows as -)."""
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for row in rows:
        print("| " + " | ".join("-" if row.get(column) is None else str(row[column]) for column in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "jobs" / "recipes" / "stard-mini.yaml")
    parser.add_argument("--reranker", type=Path, default=None, help="a trained reranker checkpoint folder")
    parser.add_argument("--articles", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--layers", type=int, nargs="+", default=[12, 6])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--retriever-splits",
        nargs="+",
        default=[],
        help="more splits whose judged queries the retrieval quality rows add to the eval split's (the base "
        "retriever was trained on none of them; more queries resolve smaller differences between precisions)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "inference.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    recipe = load_recipe(args.recipe)
    dataset = load_dataset(build_recipe_dataset(recipe.dataset, recipe.name))
    split = recipe.dataset.eval_split
    qrels = dataset.relevant(split)
    query_text = dict(zip(dataset.queries["query_id"].to_pylist(), dataset.queries["text"].to_pylist(), strict=True))
    query_ids = [query for query in dataset.query_ids(split) if query in qrels]
    retrieval_qrels, retrieval_ids = dict(qrels), list(query_ids)
    for extra in args.retriever_splits:
        judged = dataset.relevant(extra)
        retrieval_qrels.update(judged)
        retrieval_ids += [query for query in dataset.query_ids(extra) if query in judged]
    doc_ids = dataset.corpus["doc_id"].to_pylist()
    titles, texts = dataset.corpus["title"].to_pylist(), dataset.corpus["text"].to_pylist()
    retriever_spec, reranker_spec = recipe.retriever, recipe.reranker
    passages = [passage_text(retriever_spec, title, text) for title, text in zip(titles, texts, strict=True)]
    model_dir = resolve_model(retriever_spec.model)
    native = native_bf16(torch.device("cpu"))
    # bf16 where the CPU multiplies it natively; elsewhere it runs tens of times slower than fp32 and is no path
    precisions = ["fp32", "bf16", "int8"] if native else ["fp32", "int8"]
    record: dict[str, object] = {
        "recipe": str(args.recipe.relative_to(REPO) if args.recipe.is_relative_to(REPO) else args.recipe),
        "model": retriever_spec.model,
        "threads": args.threads,
        "rounds": args.rounds,
        "native_bf16": native,
        "reranker_checkpoint": str(args.reranker) if args.reranker else None,
        "machine": platform.platform(),
        "cpu": torch.cpu.get_capabilities().get("cpu_name") if hasattr(torch.cpu, "get_capabilities") else None,
        "torch": torch.__version__,
    }

    # --- the GEMM rate on the model's shapes
    plain = SentenceTransformer(model_dir, device="cpu")
    plain.max_seq_length = retriever_spec.max_passage_length
    shapes = [(384, 384), (384, 1536), (1536, 384)] if plain.get_embedding_dimension() == 384 else []
    if not shapes:
        width = plain.get_embedding_dimension()
        shapes = [(width, width), (width, 4 * width), (4 * width, width)]
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    gemm = {name: gemm_rate(4096, shapes, dtypes[name]) for name in precisions if name in dtypes}
    record["gemm_gflops"] = gemm

    # --- corpus encoding: speed and cosine on --articles texts, quality on the whole corpus
    model = build_retriever(retriever_spec)
    sample = passages[:: max(1, len(passages) // args.articles)][: args.articles]
    prompt = retriever_spec.passage_prefix
    tokens = int(
        sum(
            min(len(ids), retriever_spec.max_passage_length)
            for ids in plain.tokenizer([prompt + t for t in sample])["input_ids"]
        )
    )
    per_token = linear_flops_per_token(plain[0].auto_model)
    specs = {name: at(retriever_spec, name) for name in precisions}
    with torch.inference_mode():
        calls: dict[str, Callable[[], object]] = {
            "sentence-transformers fp32 encode": lambda: plain.encode(
                sample, prompt=prompt, batch_size=32, normalize_embeddings=True
            ),
            **{
                f"backbone encode_passages {name}": (lambda s=s: encode_passages(model, s, sample))
                for name, s in specs.items()
            },
        }
        seconds = median_seconds(calls, args.rounds)
        reference = plain.encode(sample, prompt=prompt, batch_size=32, normalize_embeddings=True)
        outputs = {name: encode_passages(model, s, sample) for name, s in specs.items()}
        quality = {}
        for name, s in specs.items():
            index = DenseIndex.build(doc_ids, encode_passages(model, s, passages))
            run = index.search(retrieval_ids, encode_queries(model, s, [query_text[q] for q in retrieval_ids]), k=100)
            quality[name] = (evaluate(retrieval_qrels, run, ["ndcg@10", "recall@100"]), run)
    base_seconds = seconds["sentence-transformers fp32 encode"]
    encoding_rows = []
    for name, spent in seconds.items():
        precision = name.split()[-1]
        cosines = (outputs[precision] * reference).sum(axis=1) if name.startswith("backbone") else np.ones(1)
        metrics = quality[precision][0] if name.startswith("backbone") else quality["fp32"][0]
        encoding_rows.append(
            {
                "path": name,
                "articles_per_s": round(len(sample) / spent, 1),
                "ratio": round(base_seconds / spent, 2),
                "linear_gflops": round(tokens * per_token / spent / 1e9, 1),
                "cosine_mean": round(float(cosines.mean()), 6),
                "cosine_min": round(float(cosines.min()), 6),
                "ndcg@10": round(metrics["ndcg@10"], 4) if name.startswith("backbone") else None,
                "recall@100": round(metrics["recall@100"], 4) if name.startswith("backbone") else None,
            }
        )
    lexical = BM25.build(doc_ids, passages, language="auto").search({q: query_text[q] for q in retrieval_ids}, k=100)
    bm25 = evaluate(retrieval_qrels, lexical, ["ndcg@10", "recall@100"])
    encoding_rows.append(
        {"path": "BM25 (no model: the lexical baseline)"} | {metric: round(value, 4) for metric, value in bm25.items()}
    )
    record["encoding"] = {"articles": len(sample), "tokens": tokens, "rows": encoding_rows}

    # --- pair scoring: the eval queries' top 20 from the fp32 retriever
    fp32_run = quality["fp32"][1]
    candidates = {query: sorted(fp32_run[query], key=fp32_run[query].get, reverse=True)[:20] for query in query_ids}
    reranker_passages = {
        doc: passage_text(reranker_spec, t, x) for doc, t, x in zip(doc_ids, titles, texts, strict=True)
    }
    flat = [(query, doc) for query in query_ids for doc in candidates[query]]
    timed = flat[:: max(1, len(flat) // args.pairs)][: args.pairs]
    queries = [query_text[query] for query, _ in timed]
    pair_passages = [reranker_passages[doc] for _, doc in timed]
    top = {query: {doc: 1.0 / (rank + 1) for rank, doc in enumerate(docs)} for query, docs in candidates.items()}

    def mrr(scorer: CrossEncoder, spec: Reranker) -> float:
        reranked = rerank(
            top,
            lambda qs, ps: score_pairs(scorer, spec, qs, ps),
            {q: query_text[q] for q in query_ids},
            reranker_passages,
            depth=20,
        )
        return evaluate(qrels, reranked, ["mrr@10"])["mrr@10"]

    pair_rows: list[dict[str, object]] = [
        {
            "path": "fp32 retriever's own order (no reranking)",
            "mrr@10": round(evaluate(qrels, top, ["mrr@10"])["mrr@10"], 4),
        }
    ]
    depths = [reranker_spec.layers or 12, *[n for n in args.layers if n != (reranker_spec.layers or 12)]]
    for depth in depths:
        spec = reranker_spec.model_copy(update={"layers": None if depth == 12 else depth})
        trained = args.reranker is not None and depth == depths[0]
        scorer = load_reranker(str(args.reranker), spec) if trained else build_reranker(spec)
        pair_specs = {name: at(spec, name) for name in precisions}
        prefixed = [
            (spec.query_prefix + q, spec.passage_prefix + p) for q, p in zip(queries, pair_passages, strict=True)
        ]
        plain_scorer = CrossEncoder(str(args.reranker), max_length=spec.max_length) if trained else scorer
        with torch.inference_mode():
            calls = {
                "sentence-transformers fp32 CrossEncoder.predict": lambda m=plain_scorer, x=prefixed: m.predict(
                    x, batch_size=32, activation_fn=nn.Identity()
                ),
                **{
                    f"backbone score_pairs {name}": (lambda m=scorer, s=s: score_pairs(m, s, queries, pair_passages))
                    for name, s in pair_specs.items()
                },
            }
            seconds = median_seconds(calls, args.rounds)
            scores = {name: score_pairs(scorer, s, queries, pair_passages) for name, s in pair_specs.items()}
            quality_mrr = {name: mrr(scorer, s) for name, s in pair_specs.items()}
        base_seconds = seconds["sentence-transformers fp32 CrossEncoder.predict"]
        for name, spent in seconds.items():
            precision = name.split()[-1] if name.startswith("backbone") else None
            pair_rows.append(
                {
                    "layers": depth,
                    "model": "trained checkpoint" if trained else "untrained (seeded head)",
                    "path": name,
                    "pairs_per_s": round(len(timed) / spent, 1),
                    "ratio": round(base_seconds / spent, 2),
                    "max_abs_diff_to_fp32": round(float(np.abs(scores[precision] - scores["fp32"]).max()), 4)
                    if precision
                    else None,
                    "mrr@10": round(quality_mrr[precision], 4) if precision else None,
                }
            )
    record["pairs"] = {"timed": len(timed), "reranked_queries": len(query_ids), "depth": 20, "rows": pair_rows}

    print(
        f"{recipe.name}: {retriever_spec.model}, {args.threads} threads, {args.rounds} rounds (median); "
        f"native bf16: {native}; GEMM on the model's shapes: "
        + ", ".join(f"{name} {rate:.0f}" for name, rate in gemm.items())
        + " GFLOP/s"
        + ("" if native else " (bf16 not timed: this CPU has no native bf16 multiply)")
    )
    print(
        f"\nencoding {len(sample)} articles ({tokens} tokens); quality: {' + '.join([split, *args.retriever_splits])}, "
        f"{len(retrieval_ids)} queries, whole corpus"
    )
    print_table(
        encoding_rows,
        ["path", "articles_per_s", "ratio", "linear_gflops", "cosine_mean", "cosine_min", "ndcg@10", "recall@100"],
    )
    print(f"\npair scoring ({len(timed)} pairs timed; MRR@10 of {len(query_ids)} {split} queries' top 20 reranked)")
    print_table(pair_rows, ["layers", "model", "path", "pairs_per_s", "ratio", "max_abs_diff_to_fp32", "mrr@10"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
