"""A Ray head node on loopback for tests that submit jobs, stopped by its process group (never ``ray stop``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


RAY_AUTH = {"RAY_AUTH_MODE": "token"}
"""Ray's token auth, on for every head and client of the tests as in the README's local flow: each side reads the
token from ~/.ray/auth_token (where a local ``ray.init`` or ``ray get-auth-token --generate`` writes it)."""


def ray_env() -> dict[str, str]:
    """The environment of the head and of every client: usage reporting off, Ray's token auth on (``RAY_AUTH``)."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **RAY_AUTH}


def worker_pythonpath() -> str:
    """PYTHONPATH for a test's Ray workers: this checkout's code, and the tests' modules (loops pickled by reference).

    A runtime_env's PYTHONPATH replaces the inherited one, so the checkout's ``platform`` comes first: workers then
    run the code under test even where the installed ``backbone`` points at another checkout.
    """
    return os.pathsep.join(str(REPO / folder) for folder in ("platform", "tests/cluster", "tests"))


@contextmanager
def head_node(
    num_cpus: int = 2,
    gcs: int | None = None,
    extra_args: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Start ``ray start --head --block`` on 127.0.0.1; yield the dashboard (job API) address.

    Args:
        num_cpus: the head's CPUs.
        gcs: the control server's port (default: a free one); pass it to name the head in its own config.
        extra_args: further ``ray start`` arguments, e.g. ``--autoscaling-config``.
        extra_env: further environment of the head and everything it starts.
    """
    dashboard, gcs = free_port(), gcs or free_port()
    # The token the head and its clients share: generated once, kept when it exists (the README's local flow).
    subprocess.run(["ray", "get-auth-token", "--generate"], env=ray_env(), capture_output=True, check=True)
    log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the head; closed in the finally below)
    process = subprocess.Popen(
        [
            "ray",
            "start",
            "--head",
            "--block",
            f"--num-cpus={num_cpus}",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={free_port()}",
            # Every agent port too: a second Ray on the machine (the tests' own, a user's) holds the defaults.
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            *extra_args,
        ],
        env={**ray_env(), **(extra_env or {})},
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    address = f"http://127.0.0.1:{dashboard}"
    try:
        # Generous: on a loaded 2-core machine a head has taken over a minute to serve its dashboard.
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # any HTTP answer (a 401 without the token) means the dashboard serves
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-3000:]
                    raise RuntimeError(
                        f"the Ray head did not come up within {_START_TIMEOUT_S} s (exit code {process.poll()}); "
                        f"its output:\n{output}"
                    ) from None
                time.sleep(1)
        yield address
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        # `ray stop` would remove the head's address file; stopping by process group leaves it, and later Ray
        # processes on the machine would then try to reach a head that is gone.
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.is_file() and current.read_text().strip().endswith(f":{gcs}"):
            current.unlink()
        log.close()


def submit(address: str, entrypoint: list[str], runtime_env: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``ray job submit`` of the repository as working dir; retried while the head's job agent is still starting."""
    deadline = time.monotonic() + 60
    while True:
        command = ["ray", "job", "submit", "--address", address, "--working-dir", str(REPO)]
        job = subprocess.run(
            [*command, "--runtime-env-json", runtime_env, "--", *entrypoint],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if "No available agent to submit job" not in job.stderr or time.monotonic() > deadline:
            return job
        time.sleep(2)
