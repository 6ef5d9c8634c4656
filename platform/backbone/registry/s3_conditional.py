"""Create-if-absent on S3: a PUT with ``If-None-Match: *``, which S3 refuses (412) when the key exists.

``pyarrow`` has no conditional write, so :meth:`backbone.registry.root.StorageRoot.create_exclusive` sends this
one request through ``boto3``. The client is set up from the same places ``pyarrow`` reads: the registry URI's
``endpoint_override``, ``scheme`` and ``region`` options, then the standard AWS environment (credentials,
``AWS_ENDPOINT_URL_S3``, ``AWS_DEFAULT_REGION``), so one URI names one bucket for both.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from backbone.errors import RegistryError


def put_if_absent(uri: str, path: str, data: bytes) -> bool:
    """Write ``data`` to the object ``path`` only if no object is there yet, in one conditional PUT.

    Args:
        uri: the registry root's URI (``s3://bucket/prefix?endpoint_override=...``), for the client's options.
        path: the object as ``pyarrow`` names it: ``bucket/key``.
        data: the object's whole content.

    Returns:
        ``True`` if this call created the object, ``False`` if it already existed (nothing is written).

    Raises:
        RegistryError: the store refused the write for another reason (permissions, a missing bucket).

    Example:
        >>> put_if_absent("s3://my-bucket/registry", "my-bucket/registry/v3.json", b"{}")  # doctest: +SKIP
        True
    """
    bucket, _, key = path.partition("/")
    try:
        _client(*_client_options(uri)).put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in {"PreconditionFailed", "412"}:
            return False
        raise RegistryError(f"cannot write s3://{path} (registry {uri}): {err}") from err
    return True


def _client_options(uri: str) -> tuple[str | None, str | None]:
    """The endpoint URL and region the URI's query string sets, ``None`` where it leaves them to the environment."""
    query = {name: values[-1] for name, values in parse_qs(urlsplit(uri).query).items()}
    endpoint = query.get("endpoint_override")
    if endpoint is not None and "://" not in endpoint:
        endpoint = f"{query.get('scheme', 'https')}://{endpoint}"
    return endpoint, query.get("region")


def _client(endpoint_url: str | None, region: str | None) -> BaseClient:
    """A new ``boto3`` S3 client: it reads the AWS environment as it is now (a release is written rarely enough).

    Not cached: a client made earlier in the process would keep an endpoint or credentials the environment no longer
    names, and write to the wrong store.
    """
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
