"""The same registry on object storage: an S3-compatible server (moto) in a thread, reached through pyarrow.

Nothing in the registry changes for S3: only the root URI does. Needs ``moto[server]`` 5.2.2 or later
(5.2.0 and 5.2.1 answer multipart uploads in a form pyarrow rejects, getmoto/moto#10055); where it is
missing or broken the tests are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from _registry_helpers import publish, start_writer, write_files

from backbone.errors import ChecksumError, RegistryError
from backbone.registry import AppSettings, Registry, Releases

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")

_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """``host:port`` of a fresh S3 server with a bucket ``registry``, skipping if pyarrow cannot use it."""
    saved = {key: os.environ.get(key) for key in _CREDENTIALS}
    os.environ.update(_CREDENTIALS)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        fs = pafs.S3FileSystem(
            endpoint_override=f"{host}:{port}",
            scheme="http",
            allow_bucket_creation=True,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),  # a broken moto fails fast
        )
        fs.create_dir("registry")
        try:
            with fs.open_output_stream("registry/probe") as stream:
                stream.write(b"probe")
        except OSError as err:
            pytest.skip(f"this moto cannot complete pyarrow's uploads (need moto>=5.2.2): {err}")
        yield f"{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def uri(endpoint: str, request: pytest.FixtureRequest) -> str:
    """A registry root of its own for each test, in the server's bucket."""
    return f"s3://registry/{request.node.name.replace('[', '-').rstrip(']')}?endpoint_override={endpoint}&scheme=http"


def test_publish_list_and_materialize_through_local_cache(uri: str, private_backbone_home: Path) -> None:
    registry = Registry(uri)
    checkpoint = publish(registry, files={"model.safetensors": b"w" * 3000, "1_Pooling/config.json": b"{}"})
    index = publish(registry, "index", {"index.faiss": b"i" * 100}, parents=[checkpoint.id], cache_key="k")

    reader = Registry(uri)
    assert [m.id for m in reader.list()] == [checkpoint.id, index.id]
    assert reader.find("index", "k") == index
    reader.verify(checkpoint.id)

    folder = reader.materialize(checkpoint.id)
    assert folder == private_backbone_home / "cache" / checkpoint.id
    assert (folder / "1_Pooling" / "config.json").read_bytes() == b"{}"
    assert [p.name for p in folder.parent.iterdir()] == [checkpoint.id]  # no temporary download left
    assert reader.materialize(checkpoint.id) == folder  # reused, still verified

    (folder / "model.safetensors").write_bytes(b"x" * 3000)
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        reader.materialize(checkpoint.id)


def test_damaged_object_is_refused_and_not_cached(uri: str, private_backbone_home: Path) -> None:
    registry = Registry(uri)
    manifest = publish(registry, files={"model.safetensors": b"w" * 3000})
    with registry.root.open_output(f"artifacts/{manifest.id}/files/model.safetensors") as stream:
        stream.write(b"v" * 3000)

    with pytest.raises(ChecksumError, match=rf"{manifest.id}: file 'model\.safetensors' has sha256"):
        registry.verify(manifest.id)
    with pytest.raises(ChecksumError, match=r"model\.safetensors"):
        registry.materialize(manifest.id)
    cache = private_backbone_home / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_releases_on_object_storage(uri: str) -> None:
    registry = Registry(uri)
    retriever = publish(registry).id
    reranker_1, reranker_2 = publish(registry).id, publish(registry).id
    releases = Releases(registry)
    releases.create(
        "legal",
        retriever_checkpoint=retriever,
        reranker_checkpoint=reranker_1,
        applications={"search": AppSettings(k=10, top_n=3)},
    )
    releases.promote("legal", "reranker", reranker_2)
    rolled_back = releases.rollback("legal", "reranker")

    history = Releases(Registry(uri)).history("legal")
    assert [r.reranker.checkpoint for r in history] == [reranker_1, reranker_2, reranker_1]
    assert history[-1] == rolled_back and rolled_back.retriever.checkpoint == retriever


def test_killed_writer_leaves_nothing_visible(uri: str, tmp_path: Path) -> None:
    source = write_files(tmp_path / "ckpt", {f"shard-{n}.safetensors": b"s" * 100_000 for n in range(4)})
    writer = start_writer("publish", uri, str(source), "--pause-at", "file:3")
    assert writer.stdout is not None
    line = writer.stdout.readline()
    writer.kill()
    writer.wait(timeout=10)
    assert line.startswith("paused "), writer.stderr.read() if writer.stderr else line
    partial_id = line.split()[1]

    registry = Registry(uri)
    assert f"artifacts/{partial_id}/files/shard-0.safetensors" in {
        path.removeprefix(registry.root.base + "/") for path in _keys(registry)
    }
    assert registry.list() == []
    with pytest.raises(RegistryError, match=f"no artifact {partial_id}"):
        registry.get(partial_id)
    assert registry.gc(older_than=timedelta(0)) == [partial_id]
    assert _keys(registry) == []


def _keys(registry: Registry) -> list[str]:
    selector = pafs.FileSelector(registry.root.base, recursive=True, allow_not_found=True)
    return [info.path for info in registry.root.fs.get_file_info(selector) if info.type == pafs.FileType.File]
