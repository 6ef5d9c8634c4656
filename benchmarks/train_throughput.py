"""Training throughput of one retriever stage on Ray Train (1 and 2 workers) against a plain single-process loop.

Run (a few minutes with multilingual-e5-small on 2 CPU cores; keep the machine otherwise idle):
    RAY_USAGE_STATS_ENABLED=0 python benchmarks/train_throughput.py
Quick smoke run with a tiny model (see tests/tiny_models.py):
    RAY_USAGE_STATS_ENABLED=0 python benchmarks/train_throughput.py --model /tmp/tiny-bench --steps 3 --warmup 1

Four runs on the same model, data, global batch size and total torch threads, in this order: plain, ray-1, ray-2,
plain again (two plain runs guard against the machine drifting; their mean is the baseline). Every run trains the
recipe's first retriever stage (InfoNCE over in-batch negatives) through the same ``train_steps`` function, each
step the stage loop's own ``backbone.training.loop.train_step``.

- plain: one process, no Ray, ``--threads`` torch threads.
- ray-1: a TorchTrainer with 1 worker of ``--threads`` threads (Ray Train does not wrap a single worker in DDP).
- ray-2: a TorchTrainer with 2 workers of ``--threads // 2`` threads, each taking its half of every global batch;
  the loss gathers the candidates of both halves, as a real stage does.

Steady state is examples/s over the measured steps (the ``--warmup`` steps before them are left out). Start-up is the
fixed cost before the first step: for plain, loading the model; for Ray, from calling ``trainer.fit()`` to the first
step's start (driver and worker clocks are the same machine's ``time.time()``). The table is printed and written,
with every step time, as JSON (``--out``). Target: ray-1 reaches at least 0.9 of the plain loop's examples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import ray
import ray.train
import sentence_transformers
import torch
import torch.distributed as dist
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer, prepare_model

from backbone.data import labelled_pairs, load_stard
from backbone.errors import BackboneError
from backbone.model_paths import resolve_model
from backbone.models import passage_text
from backbone.ray_runtime import ensure_ray
from backbone.recipes import Retriever, RetrieverStage, load_recipe
from backbone.training.loop import train_step
from backbone.training.retriever_task import RetrieverTask

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.9  # ray-1 examples/s over the plain loop's

Pair = tuple[str, str]  # (query text, positive passage)


@dataclass
class Run:
    """One configuration's measurements."""

    config: str
    workers: int
    threads_per_worker: int
    step_seconds: list[float]  # every step, warm-up included
    losses: list[float]  # each step's loss, averaged over the workers
    startup_s: float  # start of the run to the first step's start
    fit_s: float | None = None  # Ray only: trainer.fit() called to returned
    examples_per_s: float = 0.0
    ratio: float = 0.0  # examples_per_s over the plain baseline


def train_steps(
    task: RetrieverTask, model: torch.nn.Module, pairs: list[Pair], batch: int, learning_rate: float
) -> dict[str, Any]:
    """Train one step per global batch of ``pairs`` with the stage loop's own ``train_step``; every configuration
    runs exactly this.

    Under Ray Train each worker takes its contiguous share of every global batch (as ``training/loop.py`` does) and
    the loss gathers every worker's candidates; ``train_step`` all-reduces the loss every step, inside the clock, as
    a stage does. A barrier ends each step so that rank 0's clock covers all ranks.

    Returns:
        ``step_seconds``, the loss of each step (mean over workers) and ``first_step_at`` (``time.time()``).
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    per_worker = batch // world
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate)
    model.train()
    step_seconds, losses, first_step_at = [], [], 0.0
    for step in range(len(pairs) // batch):
        mine = pairs[step * batch : (step + 1) * batch][rank * per_worker : (rank + 1) * per_worker]
        queries, passages = [query for query, _ in mine], [passage for _, passage in mine]
        _barrier(world)
        if step == 0:
            first_step_at = time.time()
        started = time.perf_counter()
        loss = train_step(
            partial(task.loss, model, queries, passages, None), trainable, optimizer, "fp32", torch.device("cpu")
        )
        _barrier(world)
        step_seconds.append(time.perf_counter() - started)
        losses.append(loss)
    return {"step_seconds": step_seconds, "losses": losses, "first_step_at": first_step_at}


def _barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def run_plain(spec: Retriever, stage: RetrieverStage, model_path: str, pairs: list[Pair], threads: int) -> Run:
    """The baseline: one process, no Ray, no DDP; the loss points at the bare model."""
    started = time.time()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    task = RetrieverTask(spec, stage, metrics=[])
    model = task.build(model_path)
    task.prepare(model, model)
    log = train_steps(task, model, pairs, stage.batch_size, stage.learning_rate)
    return Run("plain", 1, threads, log["step_seconds"], log["losses"], log["first_step_at"] - started)


def _ray_worker(config: dict[str, Any]) -> None:
    """``train_loop_per_worker``: the stage loop's set-up (``training/loop.py``), then ``train_steps``."""
    torch.set_num_threads(config["threads"])
    torch.manual_seed(0)
    task = RetrieverTask(config["spec"], config["stage"], metrics=[])
    model = task.build(config["model_path"])
    ddp_model = prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": False})
    task.prepare(model, ddp_model)
    log = train_steps(task, model, config["pairs"], config["stage"].batch_size, config["stage"].learning_rate)
    # Same machine: rank 0 hands its figures to the driver through a file.
    if ray.train.get_context().get_world_rank() == 0:
        Path(config["out"]).write_text(json.dumps(log))


def run_ray(
    spec: Retriever,
    stage: RetrieverStage,
    model_path: str,
    pairs: list[Pair],
    workers: int,
    threads: int,
    folder: Path,
) -> Run:
    """One TorchTrainer with ``workers`` workers of ``threads`` CPUs and torch threads each."""
    out = folder / f"ray-{workers}.json"
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={
            "spec": spec,
            "stage": stage,
            "model_path": model_path,
            "pairs": pairs,
            "threads": threads,
            "out": str(out),
        },
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": threads}),
        run_config=RunConfig(name=f"train-throughput-ray-{workers}", storage_path=str(folder / "ray-train")),
    )
    called = time.time()
    trainer.fit()
    returned = time.time()
    log = json.loads(out.read_text())
    return Run(
        f"ray-{workers}",
        workers,
        threads,
        log["step_seconds"],
        log["losses"],
        log["first_step_at"] - called,
        fit_s=returned - called,
    )


def load_pairs(stard_dir: Path, spec: Retriever, split: str, count: int, seed: int) -> list[Pair]:
    """The first ``count`` STARD training pairs (query, positive passage) in a fixed shuffled order."""
    dataset = load_stard(stard_dir)
    pairs = labelled_pairs(dataset, split)
    rows = pc.index_in(pairs["doc_id"], value_set=dataset.corpus["doc_id"])
    titles = dataset.corpus["title"].take(rows).to_pylist()
    all_pairs = [
        (query, passage_text(spec, title, text))
        for query, title, text in zip(pairs["anchor"].to_pylist(), titles, pairs["positive"].to_pylist(), strict=True)
    ]
    if len(all_pairs) < count:
        raise BackboneError(f"{stard_dir}: split {split!r} has {len(all_pairs)} training pairs; {count} are needed")
    random.Random(seed).shuffle(all_pairs)
    return all_pairs[:count]


def summarise(runs: list[Run], batch: int, warmup: int) -> float:
    """Fill in each run's steady-state examples/s and its ratio to the plain baseline; return the baseline."""
    for run in runs:
        measured = run.step_seconds[warmup:]
        run.examples_per_s = batch * len(measured) / sum(measured)
    plain = [run.examples_per_s for run in runs if run.config == "plain"]
    baseline = sum(plain) / len(plain)
    for run in runs:
        run.ratio = run.examples_per_s / baseline
    return baseline


def table(runs: list[Run]) -> str:
    lines = [f"{'config':<8} {'workers x threads':>17} {'examples/s':>10} {'ratio':>6} {'start-up s':>10} {'fit s':>6}"]
    for run in runs:
        fit = f"{run.fit_s:6.1f}" if run.fit_s is not None else f"{'-':>6}"
        lines.append(
            f"{run.config:<8} {f'{run.workers} x {run.threads_per_worker}':>17} {run.examples_per_s:10.2f} "
            f"{run.ratio:6.2f} {run.startup_s:10.1f} {fit}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipe", type=Path, default=REPO / "jobs/recipes/stard-mini.yaml", help="Recipe with the retriever stage."
    )
    parser.add_argument("--model", help="Base model folder (default: the recipe's retriever model, resolved).")
    parser.add_argument("--steps", type=int, default=8, help="Measured steps per configuration.")
    parser.add_argument("--warmup", type=int, default=2, help="Steps before them, left out of the steady state.")
    parser.add_argument("--threads", type=int, default=2, help="Total torch threads of every configuration.")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks/results/train_throughput.json", help="JSON results file."
    )
    parser.add_argument(
        "--stard",
        type=Path,
        default=Path(os.environ.get("BACKBONE_STARD_DIR", REPO.parent / "shared/data/stard")),
        help="STARD folder (default: $BACKBONE_STARD_DIR, else ../shared/data/stard).",
    )
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.threads < 2 or args.threads % 2:
        parser.error("--threads must be even (ray-2 gives each worker half of them)")
    try:
        recipe = load_recipe(args.recipe)
        spec = recipe.retriever
        if not spec.stages:
            raise BackboneError(f"{args.recipe}: the retriever has no stage to train")
        # The first stage's loss, temperature, batch size and learning rate. Whatever its negatives policy, no mined
        # negatives are passed: every other passage of the global batch is a query's negative (the alignment stage).
        stage = spec.stages[0]
        if stage.batch_size % 2:
            raise BackboneError(f"batch size {stage.batch_size} does not split across 2 workers")
        model_path = args.model or resolve_model(spec.model)
        steps = args.warmup + args.steps
        pairs = load_pairs(args.stard, spec, recipe.dataset.train_split, steps * stage.batch_size, recipe.seed)
    except BackboneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    # Ray is up before the first plain run, so every run shares the machine with Ray's own processes.
    ensure_ray(num_cpus=max(args.threads, os.cpu_count() or 1))
    print(f"model {model_path}; batch {stage.batch_size}; {args.warmup} + {args.steps} steps; {args.threads} threads")
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as folder:
        runs = [run_plain(spec, stage, model_path, pairs, args.threads)]
        runs.append(run_ray(spec, stage, model_path, pairs, 1, args.threads, Path(folder)))
        runs.append(run_ray(spec, stage, model_path, pairs, 2, args.threads // 2, Path(folder)))
        runs.append(run_plain(spec, stage, model_path, pairs, args.threads))
    baseline = summarise(runs, stage.batch_size, args.warmup)
    ray_1 = next(run for run in runs if run.config == "ray-1")
    ray_2 = next(run for run in runs if run.config == "ray-2")
    target_met = ray_1.ratio >= TARGET

    print()
    print(table(runs))
    print(f"\nbaseline (mean of the plain runs): {baseline:.2f} examples/s")
    print(f"ray-1 / plain = {ray_1.ratio:.3f}, ray-2 / plain = {ray_2.ratio:.3f}")
    print(f"fixed start-up from fit() to the first step: ray-1 {ray_1.startup_s:.1f} s, ray-2 {ray_2.startup_s:.1f} s")
    print(f"target ray-1 >= {TARGET} x plain: {'met' if target_met else 'NOT met'}")

    result = {
        "benchmark": "train_throughput",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "nproc": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ray": ray.__version__,
            "sentence_transformers": sentence_transformers.__version__,
        },
        "recipe": str(args.recipe),
        "stage": f"retriever/{stage.name}",
        "model": model_path,
        "batch": stage.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "loss": stage.loss,
        "temperature": stage.temperature,
        "learning_rate": stage.learning_rate,
        "baseline_examples_per_s": baseline,
        "ratios": {run.config: run.ratio for run in (ray_1, ray_2)},
        "startup_s": {run.config: run.startup_s for run in (ray_1, ray_2)},
        "target": TARGET,
        "target_met": target_met,
        "runs": [asdict(run) for run in runs],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
