"""The ``backbone registry`` and ``backbone release`` commands.

The main commands and the error path run as real ``backbone`` processes; their variants (``--json``,
``--version``, ``--registry``, ``--help``) run in-process through typer's runner to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _registry_helpers import publish
from typer.testing import CliRunner

from backbone.cli import app
from backbone.registry import AppSettings, Registry, Releases


def _backbone(*args: str, registry: Path, expect: int = 0) -> str:
    """Run ``backbone ARGS`` as a process with BACKBONE_REGISTRY at ``registry``: stdout, or stderr on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "backbone.cli", *args],
        env={**os.environ, "BACKBONE_REGISTRY": str(registry)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == expect, done.stdout + done.stderr
    return done.stdout if expect == 0 else done.stderr


def _in_process(*args: str) -> str:
    """Run ``backbone ARGS`` in this process; its output (BACKBONE_REGISTRY is unset: pass --registry)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A registry with a retriever (and its index), two rerankers, and a release promoted once."""
    root = tmp_path / "registry"
    registry = Registry(str(root))
    retriever = publish(registry, name="retriever/stage-1", metrics={"ndcg@10": 0.4123}, params={"lr": 2e-5})
    index = publish(registry, "index", {"index.faiss": b"x" * 100}, parents=[retriever.id], name="index/flat")
    reranker_1 = publish(registry, name="reranker/stage-1")
    reranker_2 = publish(registry, name="reranker/stage-2")
    releases = Releases(registry)
    releases.create(
        "legal",
        retriever_checkpoint=retriever.id,
        retriever_index=index.id,
        reranker_checkpoint=reranker_1.id,
        applications={"search": AppSettings(k=50, top_n=5)},
    )
    releases.promote("legal", "reranker", reranker_2.id, note="better mrr")
    ids = {"retriever": retriever.id, "index": index.id, "reranker_1": reranker_1.id, "reranker_2": reranker_2.id}
    return root, ids


def test_registry_list_and_show(populated: tuple[Path, dict[str, str]]) -> None:
    root, ids = populated

    listing = _backbone("registry", "list", registry=root).splitlines()
    assert listing[0].split()[:4] == ["id", "kind", "name", "created"]
    assert [line.split()[0] for line in listing[1:]] == list(ids.values())
    assert "ndcg@10=0.4123" in listing[1]

    shown = _backbone("registry", "show", ids["index"], registry=root)
    assert f"id:         {ids['index']}" in shown
    assert f"parents:    {ids['retriever']}" in shown
    assert "index.faiss" in shown


def test_registry_variants(populated: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, ids = populated

    only_index = _in_process("registry", "list", "--kind", "index", "--registry", str(root)).splitlines()
    assert [line.split()[0] for line in only_index[1:]] == [ids["index"]]
    as_json = json.loads(_in_process("registry", "list", "--kind", "checkpoint", "--json", "--registry", str(root)))
    assert [m["id"] for m in as_json] == [ids["retriever"], ids["reranker_1"], ids["reranker_2"]]
    manifest = json.loads(_in_process("registry", "show", ids["retriever"], "--json", "--registry", str(root)))
    assert manifest["metrics"] == {"ndcg@10": 0.4123} and manifest["params"] == {"lr": 2e-5}
    assert "no report artifacts in" in _in_process("registry", "list", "--kind", "report", "--registry", str(root))
    assert "no artifacts in" in _in_process("registry", "list", "--registry", str(tmp_path / "empty"))
    verified = _in_process("registry", "verify", ids["retriever"], "--registry", str(root))
    assert verified.startswith(f"{ids['retriever']}: 2 files intact")


def test_release_history(populated: tuple[Path, dict[str, str]]) -> None:
    root, ids = populated

    history = _backbone("release", "history", "legal", registry=root).splitlines()
    assert history[0].split()[:2] == ["version", "created"]
    assert history[1].split()[0] == "v1" and history[1].endswith("create")
    assert history[2].split()[0] == "v2"
    assert history[2].split()[2:5] == [ids["retriever"], ids["index"], ids["reranker_2"]]
    assert history[2].endswith(f"promote reranker to {ids['reranker_2']} (better mrr)")


def test_release_show(populated: tuple[Path, dict[str, str]]) -> None:
    root, ids = populated

    current = _in_process("release", "show", "legal", "--registry", str(root))
    assert "legal v2 (current)" in current
    assert f"reranker:   {ids['reranker_2']}" in current
    assert "search: k=50 top_n=5 rerank=yes weight=1" in current
    assert "chosen for: - (set by hand)" in current
    first = json.loads(_in_process("release", "show", "legal", "--version", "1", "--json", "--registry", str(root)))
    assert first["reranker"]["checkpoint"] == ids["reranker_1"]
    history = json.loads(_in_process("release", "history", "legal", "--json", "--registry", str(root)))
    assert [record["version"] for record in history] == [1, 2]


def test_user_errors_are_one_line_with_status_2(populated: tuple[Path, dict[str, str]]) -> None:
    root, ids = populated

    missing = _backbone("release", "history", "medical", registry=root, expect=2)
    assert missing.strip() == f"error: no release 'medical' in registry {root} (releases there: legal)"

    (root / "artifacts" / ids["index"] / "files" / "index.faiss").write_bytes(b"y" * 100)
    error = _backbone("registry", "verify", ids["index"], registry=root, expect=2)
    assert error.startswith(f"error: artifact {ids['index']}: file 'index.faiss' has sha256")
    assert len(error.strip().splitlines()) == 1


def test_release_promote_appends_a_version_and_warns_of_settings_chosen_for_another_pair(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    registry = Registry(str(root))
    retriever = publish(registry, name="retriever/stage-1")
    rerankers = [publish(registry, name=f"reranker/stage-{n}") for n in (1, 2)]
    settings = {"api": AppSettings(k=10, top_n=5, weight=0.5), "search": AppSettings(k=20, top_n=10)}
    Releases(registry).propose(
        "legal", retriever_checkpoint=retriever.id, reranker_checkpoint=rerankers[0].id, applications=settings
    )
    chosen = f"chosen for: retriever {retriever.id}, reranker {rerankers[0].id}"
    assert chosen in _in_process("release", "show", "legal", "--registry", str(root))

    done = subprocess.run(
        [sys.executable, "-m", "backbone.cli", "release", "promote", "legal", "reranker", rerankers[1].id],
        env={**os.environ, "BACKBONE_REGISTRY": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"legal v2: promote reranker to {rerankers[1].id}"
    assert done.stderr.strip() == (
        f"warning: applications api, search keep the K and weight a search chose for reranker {rerankers[0].id}; "
        f"release legal v2 serves retriever {retriever.id} with reranker {rerankers[1].id}. Choose them for this "
        "pair with `backbone release rechoose legal --recipe RECIPE`."
    )
    current = Releases(Registry(str(root))).current("legal")
    assert (current.version, current.reranker.checkpoint, current.applications) == (2, rerankers[1].id, settings)
    assert chosen in _in_process("release", "show", "legal", "--registry", str(root))

    # Back to the pair the settings were chosen for: no warning.
    Releases(registry).rollback("legal", "reranker")
    assert Releases(Registry(str(root))).current("legal").stale_settings() is None
    again = _backbone("release", "promote", "legal", "reranker", rerankers[0].id, registry=root, expect=2)
    assert again.strip() == f"error: release 'legal' v3 already serves {rerankers[0].id} as reranker"
    unknown = _backbone("release", "promote", "legal", "retriever", "checkpoint-nope", registry=root, expect=2)
    assert unknown.startswith("error: retriever checkpoint: ") and "checkpoint-nope" in unknown


@pytest.mark.parametrize(
    "command",
    [
        ["registry", "list"],
        ["registry", "show"],
        ["registry", "verify"],
        ["release", "show"],
        ["release", "history"],
        ["release", "promote"],
        ["release", "rechoose"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    assert "--registry" in _in_process(*command, "--help")
