"""A local S3-compatible server (moto) on loopback, reached through the standard AWS environment variables only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

import pyarrow.fs as pafs
import pytest


@contextmanager
def moto_s3(bucket: str) -> Iterator[dict[str, str]]:
    """Start moto's S3 server on 127.0.0.1 with ``bucket``; point this process's AWS environment at it.

    The endpoint rides in ``AWS_ENDPOINT_URL_S3`` and the credentials in ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``, as on a real deployment, so a registry URI stays a plain ``s3://bucket/prefix``.
    Ray processes started inside the block inherit the same variables. Skips the test where moto is missing.

    Args:
        bucket: the bucket to create.

    Yields:
        The AWS variables set, to hand to processes that do not inherit this environment.

    Example:
        >>> with moto_s3("registry") as env:  # doctest: +SKIP
        ...     Registry("s3://registry/backbone")
    """
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-profile lookup on a machine that is not on EC2
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
    }
    try:
        with patch.dict(os.environ, env):
            fs, _ = pafs.FileSystem.from_uri(f"s3://{bucket}?allow_bucket_creation=true")
            fs.create_dir(bucket)
            yield env
    finally:
        server.stop()
