"""``jobs/train.py`` submitted with ``ray job submit`` to a head node on loopback trains and prints its table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from head_node import head_node, ray_env, submit

from backbone.registry import Registry

pytestmark = pytest.mark.cluster


def test_train_job_runs_under_ray_job_submit(stard_dir: Path, tiny_encoder_dir: Path, tmp_path: Path) -> None:
    recipe = {
        "name": "tiny-job",
        "dataset": {
            "loader": "stard",
            "source": str(stard_dir),
            "subset": {"seed": 1, "queries": {"train": 16, "dev": 8}, "corpus_size": 80},
        },
        "retriever": {
            "model": str(tiny_encoder_dir),
            "max_query_length": 16,
            "max_passage_length": 32,
            "stages": [
                {
                    "name": "align",
                    "data": {"tables": ["weak", "train"], "max_examples": 16},
                    "loss": "infonce",
                    "batch_size": 8,
                    "learning_rate": 1e-3,
                },
            ],
        },
        "reranker": {"model": str(tiny_encoder_dir), "max_length": 48, "max_query_length": 16},
        "evaluation": {"retriever_metrics": ["recall@10", "ndcg@10"], "end_to_end_metrics": ["ndcg@10"]},
        "search": {"k": [10], "objective": "ndcg@10"},
    }
    recipe_file = tmp_path / "tiny-job.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    registry = tmp_path / "registry"
    env = {**ray_env(), "BACKBONE_HOME": str(tmp_path / "home"), "BACKBONE_REGISTRY": str(registry)}
    with head_node() as address:
        job = submit(
            address,
            ["python", "jobs/train.py", "--recipe", str(recipe_file), "--component", "retriever", "--workers", "2"],
            json.dumps({"env_vars": {"BACKBONE_HOME": str(tmp_path / "home"), "BACKBONE_REGISTRY": str(registry)}}),
            env,
        )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert "| retriever | recall@10 | ndcg@10 | examples | examples/s |" in job.stdout
    assert "| bm25 |" in job.stdout and "| align (checkpoint-" in job.stdout
    # A readable log: each stage line once, progress lines for the corpus encoding (rank 0's share of 2 workers,
    # done/total and rate), and no tokenizer warnings about texts the recipe cuts on purpose.
    assert job.stdout.count("[retriever/align] evaluation ") == 1
    assert re.search(
        r"\[retriever/align\] encode corpus: (\d+)/\1 100% \[[0-9:]+<00:00, +[0-9.]+ passages/s\]", job.stdout
    )
    assert "Token indices sequence length" not in job.stdout + job.stderr
    # Every worker loads and saves models: no bar and no sentence-transformers INFO line for each.
    for noise in ("Loading weights", "Writing model shards", "No device provided"):
        assert noise not in job.stdout + job.stderr, noise
    names = sorted(artifact.name for artifact in Registry(str(registry)).list("checkpoint"))
    assert names == ["retriever/align", "retriever/base"]
