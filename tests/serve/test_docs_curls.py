"""Every ``curl`` of README.md and docs/ run as written against the served tiny release: each answers 200 with JSON.

Only the address changes (``localhost:8000`` becomes the test's port); the release serves the application the docs
name (``search``). What the answers hold is tested in ``test_api.py``.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from docs_blocks import shell_lines


def _curls() -> list[tuple[str, list[str]]]:
    """(file:line, argv) of every ``curl`` command inside a bash block, continuation lines joined."""
    return [
        (line.where, shlex.split(line.command, comments=True))
        for line in shell_lines()
        if line.command.startswith("curl ")
    ]


CURLS = _curls()


def test_the_docs_have_curls_to_run() -> None:
    assert len(CURLS) >= 7, CURLS


@pytest.mark.parametrize(("where", "argv"), CURLS, ids=[where for where, _ in CURLS])
def test_a_documented_curl_answers(served, where: str, argv: list[str]) -> None:
    address = f"127.0.0.1:{served.http.base_url.port}"
    command = [arg.replace("localhost:8000", address) for arg in argv]
    done = subprocess.run(
        [*command, "--max-time", "60", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=90
    )
    body, _, status = done.stdout.rpartition("\n")
    assert done.returncode == 0 and status == "200", f"{where}: {shlex.join(argv)}\n-> {status} {body[:500]}"
    answer = json.loads(body)
    assert isinstance(answer, dict), f"{where}: not a JSON object: {body[:500]}"
    if "reranked" in answer:  # a search of an application that reranks: a 200 without reranking is no success
        assert answer["reranked"] is True and answer["rerank_error"] is None, f"{where}: degraded: {body[:500]}"
