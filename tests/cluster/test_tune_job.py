"""``jobs/tune.py`` under ``ray job submit`` to a head on loopback: interrupted mid-search, then resumed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from head_node import RAY_AUTH, REPO, head_node, ray_env, submit
from ray.job_submission import JobStatus, JobSubmissionClient
from tiny_pipeline import TinyPipeline

pytestmark = pytest.mark.cluster


def _finished_trials(registry: Path) -> int:
    return sum(1 for result in registry.glob("ray-tune/*/*/result.json") if result.stat().st_size > 0)


def _trial_results_since(started: float) -> int:
    """Trial results the Tune driver has written to its local staging folder since ``started``.

    The driver writes each result there as soon as it handles it, inside its run loop (so after Tune has taken over
    Ctrl-C); the copy in the registry is only synced from time to time.
    """
    staged = Path(tempfile.gettempdir()).glob(
        "ray/session_*/artifacts/*/tiny-pipeline-*/driver_artifacts/*/result.json"
    )
    return sum(1 for result in staged if result.stat().st_mtime >= started and result.stat().st_size > 0)


def _wait(condition, what: str, timeout: float = 300, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


def test_an_interrupted_search_job_resumes(tiny_pipeline: TinyPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = tiny_pipeline.registry
    shutil.rmtree(registry / "ray-tune")  # forget the finished search, so this job starts it afresh
    env_vars = {"BACKBONE_HOME": str(tiny_pipeline.home), "BACKBONE_REGISTRY": str(registry)}
    entrypoint = ["python", "jobs/tune.py", "--recipe", str(tiny_pipeline.recipe)]
    monkeypatch.setenv("RAY_AUTH_MODE", RAY_AUTH["RAY_AUTH_MODE"])  # the job client sends the head's token
    started = time.time()
    # A head of its own: a head that served an earlier job may have dropped that job's working-dir package from its
    # store while still listing it, and a new job reusing the package then fails to set up.
    with head_node(num_cpus=1) as address:  # one CPU: trials run one after another
        client = JobSubmissionClient(address)
        job = client.submit_job(
            entrypoint=" ".join(entrypoint), runtime_env={"working_dir": str(REPO), "env_vars": env_vars}
        )

        def driver_started() -> bool:
            assert not client.get_job_status(job).is_terminal(), client.get_job_logs(job)[-3000:]
            return client.get_job_info(job).driver_info is not None

        _wait(driver_started, "the job's driver")
        driver = int(client.get_job_info(job).driver_info.pid)
        _wait(lambda: _trial_results_since(started) > 0, "the first finished trial", poll=0.05)
        os.kill(driver, signal.SIGINT)  # what Ctrl-C does
        _wait(lambda: client.get_job_status(job).is_terminal(), "the interrupted job to end")
        interrupted_status, interrupted_logs = client.get_job_status(job), client.get_job_logs(job)
        finished_before = _finished_trials(registry)

        resumed = submit(address, entrypoint, json.dumps({"env_vars": env_vars}), ray_env())

    assert interrupted_status == JobStatus.FAILED, interrupted_logs[-3000:]
    assert "the search stopped after" in interrupted_logs and "run it again to resume" in interrupted_logs
    assert 0 < finished_before < 12
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "[search] resuming tiny-pipeline-" in resumed.stdout
    # Progress lines of the search, counting the trials finished before the interruption.
    assert re.search(r"search \(tiny-pipeline\): 12/12 100% \[", resumed.stdout + resumed.stderr)
    assert "release: tiny-pipeline v" in resumed.stdout and "model work: 0 corpus encodings" in resumed.stdout
    assert _finished_trials(registry) == 12  # the trials finished before the interruption were not run again
