"""Latency and throughput of the served backbone over HTTP, against the same pipeline in-process and infinity-emb.

Run (about 5 minutes on 2 CPU cores; keep the machine otherwise idle):
    RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=token HF_HUB_OFFLINE=1 python benchmarks/serve_latency.py
Options: --model (a sentence-transformers folder; default all-MiniLM-L6-v2 from $BACKBONE_MODELS_DIR), --release
(measure that release of the registry instead, as ``backbone deploy`` serves it, on real STARD queries from --stard),
--precision (both components' inference precision, in Serve and in-process alike; default each checkpoint's own),
--threads (torch threads of each replica, ``threads`` in ``--scaling``; the in-process pipeline uses torch's default),
--batch-wait-s (each replica's ``batching.batch_wait_timeout_s`` in ``--scaling``), --clients, --seconds per
measurement, --rounds (Serve and its baseline alternate that many times within --seconds each, default 3),
--infinity (the ``infinity_emb`` executable of a separate venv: infinity-emb
0.0.78 pins sentence-transformers<4, transformers<=4.57 and numpy<2, so it cannot share this project's environment).

What it does: builds a release from --model (a retriever checkpoint, a reranker checkpoint with a fresh head, a
FAISS index over 600 short statute-like documents), or takes --release, deploys it on a private local Ray through
the same Serve config ``backbone deploy`` applies, then measures for --seconds each:

- ``/v1/search`` of each application (the built release: ``default``, k=8 candidates, reranked, top 3) at each
  --clients count, and the in-process pipeline (the same ``LoadedRetriever.search`` + ``LoadedReranker.score`` +
  ``ranked_hits`` at the application's K, top_n and weight) called by as many threads; the ratios are Serve's
  requests/s over the in-process requests/s, and Serve's p50 over the in-process p50 on the requests both made (the
  same queries, in the same order: the faster side makes more, and queries differ in length). Beside failed requests it
  counts degraded answers: a 200 whose application reranks but whose answer says ``reranked: false``.
- ``/v1/embeddings`` (one sentence) and ``/v1/rerank`` (one query, 8 documents) at 8 clients against infinity-emb
  serving the same model folders on the same machine, if its venv is there (and no --release); otherwise it says so.

Clients are threads of this process (httpx), on the same 2 cores as the servers: absolute figures include that
cost on both sides of each ratio. The table is printed and written as JSON to benchmarks/results/serve_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import ray
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the release builder the serving tests use

from backbone.data import load_stard  # noqa: E402
from backbone.recipes import Inference, Reranker, Retriever  # noqa: E402
from backbone.registry import AppSettings, Registry, Releases  # noqa: E402
from backbone.serving.cluster import ServeCluster  # noqa: E402
from backbone.serving.config import Batching, RerankerConfig, RetrieverConfig, Scaling, ServingScaling  # noqa: E402
from backbone.serving.reranker import LoadedReranker  # noqa: E402
from backbone.serving.retriever import LoadedRetriever  # noqa: E402
from backbone.serving.search_steps import ranked_hits  # noqa: E402
from backbone.serving.serve_config import serve_config, served_index  # noqa: E402
from backbone.settings import models_dir  # noqa: E402
from serving_release import APPLICATIONS, build_servable_release  # noqa: E402

DEFAULT_STARD = REPO.parent / "shared" / "data" / "stard"
QUERIES = ["谁可以成为个体工商户？", "合同违约怎么赔偿？", "夫妻一方的债务如何偿还？", "公司侵权责任"]
DOCUMENTS = ["自然人从事工商业经营，经依法登记，为个体工商户。", "当事人应当遵循诚信原则。"] * 4


def measure(call: Callable[[int], bool], clients: int, seconds: float, first: int = 0) -> dict:
    """Run ``call(request_number)`` from ``clients`` threads for ``seconds``: :func:`summary` of the requests, and
    the most requests one client made (``most_per_client``).

    ``call`` returns True for an answer that is a 200 but degraded (a search that should have been reranked and was
    not). Client ``c``'s ``n``-th request is number ``c * 100_000 + first + n``, so two runs of the same ``call``
    sequence from the same ``first`` share numbers, and a run from a later ``first`` goes on to later queries."""
    latencies: dict[int, float] = {}
    errors, degraded, counts = [0], [0], [0] * clients
    stop = threading.Event()

    def client(number: int) -> None:
        while not stop.is_set():
            request = number * 100_000 + first + counts[number]
            started = time.perf_counter()
            try:
                degraded[0] += call(request)
            except Exception:  # counted and reported: a benchmark must not hide failures
                errors[0] += 1
            latencies[request] = time.perf_counter() - started
            counts[number] += 1

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return {**summary(latencies, errors[0], degraded[0], time.perf_counter() - started), "most_per_client": max(counts)}


def summary(latencies: dict[int, float], errors: int, degraded: int, seconds: float) -> dict:
    """p50/p99 in ms and requests/s of requests that took ``latencies`` (seconds, by request number) in ``seconds``,
    with the failed requests and the degraded answers among them."""
    ms = np.array(list(latencies.values())) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "degraded": degraded,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "req_per_s": len(latencies) / seconds,
        "seconds": seconds,
        "latencies": latencies,
    }


def alternate(
    served: Callable[[int], bool], baseline: Callable[[int], bool], clients: int, seconds: float, rounds: int
) -> tuple[dict, dict]:
    """:func:`measure` ``served`` and ``baseline`` for ``seconds`` each in ``rounds`` alternating turns, pooled, so
    that a drift of the machine's speed during the run falls on both sides. Each round starts both sides at the same
    request number, past the last round's requests: both send the same queries, and the rounds go on through them."""
    turns: list[tuple[dict, dict]] = []
    first = 0
    for _ in range(rounds):
        turn = measure(served, clients, seconds / rounds, first), measure(baseline, clients, seconds / rounds, first)
        first += max(side["most_per_client"] for side in turn)
        turns.append(turn)
    pooled = []
    for side in range(2):
        sides = [turn[side] for turn in turns]
        latencies = {number: latency for each in sides for number, latency in each["latencies"].items()}
        errors, degraded = sum(each["errors"] for each in sides), sum(each["degraded"] for each in sides)
        pooled.append(summary(latencies, errors, degraded, sum(each["seconds"] for each in sides)))
    return pooled[0], pooled[1]


def same_requests_p50_ratio(served: dict, baseline: dict) -> tuple[float, int]:
    """Served p50 over baseline p50 on the requests both made (the same queries: the faster side makes more, and
    query lengths vary, so p50s of all requests compare different query mixes), and how many requests that is."""
    common = sorted(set(served["latencies"]) & set(baseline["latencies"]))
    p50 = [float(np.percentile([side["latencies"][number] for number in common], 50)) for side in (served, baseline)]
    return p50[0] / p50[1], len(common)


def http_call(client: httpx.Client, path: str, body: Callable[[int], dict]) -> Callable[[int], bool]:
    """A call of ``path`` that raises on any status but 200 and is never degraded (embeddings, rerank)."""

    def call(number: int) -> bool:
        client.post(path, json=body(number)).raise_for_status()
        return False

    return call


def search_call(client: httpx.Client, application: str, queries: list[str], reranks: bool) -> Callable[[int], bool]:
    """A ``/v1/search`` of ``application``: degraded when it should be reranked and the answer says it was not."""

    def call(number: int) -> bool:
        answer = client.post("/v1/search", json={"query": queries[number % len(queries)], "application": application})
        answer.raise_for_status()
        return reranks and not answer.json()["reranked"]

    return call


def start_infinity(executable: Path, models: list[Path], port: int) -> subprocess.Popen | None:
    """infinity-emb on loopback serving ``models``, or ``None`` if it does not come up within 120 s."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    arguments = [str(executable), "v2", "--host", "127.0.0.1", "--port", str(port), "--no-model-warmup"]
    for model in models:
        arguments += ["--model-id", str(model)]
    process = subprocess.Popen(arguments, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
            return process
        except httpx.HTTPError:
            time.sleep(2)
    process.terminate()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=models_dir() / "sentence-transformers" / "all-MiniLM-L6-v2")
    parser.add_argument("--release", help="measure this release of the registry ($BACKBONE_REGISTRY) as deployed")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16", "int8", "auto"], help="both components' inference precision"
    )
    parser.add_argument("--stard", type=Path, default=Path(os.environ.get("BACKBONE_STARD_DIR", DEFAULT_STARD)))
    parser.add_argument("--threads", type=int, help="torch threads of each replica (default: Ray's, one)")
    parser.add_argument(
        "--batch-wait-s", type=float, help="each replica's batch_wait_timeout_s (default: the product's Batching())"
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating turns of Serve and its baseline within --seconds each"
    )
    parser.add_argument("--infinity", type=Path, default=Path("/tmp/infinity-venv/bin/infinity_emb"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serve_latency.json")
    args = parser.parse_args()

    inference = Inference(precision=args.precision) if args.precision else None
    if args.release:
        registry = Registry()
        record, documents = Releases(registry).current(args.release), None
        applications = dict(record.applications)
        queries = load_stard(args.stard).queries.column("text").to_pylist()[:200]
    else:
        root = Path(tempfile.mkdtemp(prefix="serve-bench-"))
        retriever_spec = Retriever(model=str(args.model), max_query_length=64, max_passage_length=128)
        reranker_spec = Reranker(model=str(args.model), max_length=192, max_query_length=64)
        release = build_servable_release(root, args.model, retriever=retriever_spec, reranker=reranker_spec, copies=100)
        record, registry, documents = release.record, release.registry, release.documents
        applications, queries = {"default": APPLICATIONS["default"]}, QUERIES
    retriever = LoadedRetriever.load(
        RetrieverConfig(
            registry=registry.uri,
            checkpoint=record.retriever.checkpoint,
            index=served_index(record),
            documents=str(documents) if documents else None,
            inference=inference,
        )
    )
    reranker = LoadedReranker.load(
        RerankerConfig(registry=registry.uri, checkpoint=record.reranker.checkpoint, inference=inference)
    )

    def in_process(settings: AppSettings) -> Callable[[int], bool]:
        def call(number: int) -> bool:
            query = queries[number % len(queries)]
            [candidates] = retriever.search([query], settings.k)
            scores = None
            if settings.calls_reranker:
                scores = reranker.score(
                    [query] * len(candidates), [reranker.passage(c.title, c.text) for c in candidates]
                )
            ranked_hits(candidates, scores, settings.top_n, settings.weight)
            return False

        return call

    context = ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=True,
                       dashboard_host="127.0.0.1", log_to_driver=False)  # fmt: skip
    port = 18000
    batching = Batching() if args.batch_wait_s is None else Batching(batch_wait_timeout_s=args.batch_wait_s)
    replica = Scaling(inference=inference, threads=args.threads, batching=batching)
    scaling = ServingScaling(retriever=replica, reranker=replica)
    config = serve_config(record, registry, documents, port=port, scaling=scaling)
    ServeCluster(f"http://{context.dashboard_url}").apply(config)
    rows: list[dict] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=httpx.Limits(max_connections=64)) as http:
        for name, settings in applications.items():
            search = search_call(http, name, queries, settings.calls_reranker)
            search(0)
            for clients in args.clients:
                served, baseline = alternate(search, in_process(settings), clients, args.seconds, args.rounds)
                rows.append({"endpoint": f"/v1/search {name} (k={settings.k})", "clients": clients, "serve": served,
                             "baseline": baseline, "baseline_name": "in-process pipeline"})  # fmt: skip

        infinity = None
        if args.infinity.is_file() and not args.release:
            infinity = start_infinity(args.infinity, [args.model, registry.materialize(record.reranker.checkpoint)],
                                      port + 1)  # fmt: skip
        note = "" if infinity else f"infinity-emb not run: no working server from {args.infinity}"
        ours = {
            "/v1/embeddings": http_call(http, "/v1/embeddings", lambda n: {"input": queries[n % len(queries)]}),
            "/v1/rerank": http_call(http, "/v1/rerank", lambda n: {"query": queries[n % 4], "documents": DOCUMENTS}),
        }
        theirs = {}
        if infinity:
            remote = httpx.Client(base_url=f"http://127.0.0.1:{port + 1}", timeout=60)
            names = [str(args.model).split("/")[-2:], str(registry.materialize(record.reranker.checkpoint)).split("/")]
            embed_model, rerank_model = "/".join(names[0]), "/".join(names[1][-2:])
            theirs = {
                "/v1/embeddings": http_call(
                    remote, "/embeddings", lambda n: {"model": embed_model, "input": [queries[n % len(queries)]]}
                ),
                "/v1/rerank": http_call(
                    remote,
                    "/rerank",
                    lambda n: {"model": rerank_model, "query": queries[n % 4], "documents": DOCUMENTS},
                ),
            }
        for endpoint, call in ours.items():
            call(0)
            baseline = None
            if endpoint in theirs:
                theirs[endpoint](0)
                served, baseline = alternate(call, theirs[endpoint], 8, args.seconds, args.rounds)
            else:
                served = measure(call, 8, args.seconds)
            rows.append({"endpoint": endpoint, "clients": 8, "serve": served, "baseline": baseline,
                         "baseline_name": "infinity-emb"})  # fmt: skip
        if infinity:
            infinity.terminate()
    ray.shutdown()

    served_what = f"release {record.name} v{record.version}" if args.release else f"model {args.model.name}"
    precision = retriever.info()["precision"], reranker.info()["precision"]
    print(f"{served_what}, precision {precision[0]} / {precision[1]} (retriever / reranker), {os.cpu_count()} CPUs, "
          f"replica threads {args.threads or 'Ray default'}, batch wait {batching.batch_wait_timeout_s} s, "
          f"in-process threads {torch.get_num_threads()}, {args.seconds:.0f} s a measurement "
          f"in {args.rounds} alternating rounds")  # fmt: skip
    print("| endpoint | clients | p50 ms | p99 ms | req/s | failed | degraded | baseline | p50 ms | p99 ms | req/s "
          "| req/s ratio | p50 ratio (same requests) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        served, base = row["serve"], row["baseline"]
        line = f"| {row['endpoint']} | {row['clients']} | {served['p50_ms']:.1f} | {served['p99_ms']:.1f} | "
        line += f"{served['req_per_s']:.1f} | {served['errors']} | {served['degraded']} of {served['requests']} | "
        line += f"{row['baseline_name']} | "
        if base:
            row["ratio"] = served["req_per_s"] / base["req_per_s"]
            row["p50_ratio"], row["p50_ratio_requests"] = same_requests_p50_ratio(served, base)
            line += f"{base['p50_ms']:.1f} | {base['p99_ms']:.1f} | {base['req_per_s']:.1f} | {row['ratio']:.2f} | "
            line += f"{row['p50_ratio']:.2f} |"
        else:
            line += "not run | | | | |"
        print(line)
    if note:
        print(note)
    for row in rows:  # the ratios are computed: the per-request latencies stay out of the JSON
        for side in (row["serve"], row["baseline"]):
            if side:
                side.pop("latencies")
                side.pop("most_per_client", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"served": served_what, "precision": precision, "machine": platform.platform(), "note": note,
              "seconds": args.seconds, "rounds": args.rounds, "batch_wait_s": batching.batch_wait_timeout_s,
              "rows": rows}  # fmt: skip
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
