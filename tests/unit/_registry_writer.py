"""A registry writer that the tests run as a separate process, to kill it or race it against others.

Usage::

    python _registry_writer.py publish ROOT SOURCE [--pause-at file:K | manifest] [--go FILE]
    python _registry_writer.py promote ROOT RELEASE COMPONENT CHECKPOINT [CHECKPOINT ...] [--go FILE]

``publish`` publishes the folder SOURCE as a checkpoint and prints its id. ``promote`` promotes each
CHECKPOINT in turn as COMPONENT of RELEASE and prints each version it wrote.

``--go FILE`` prints ``ready``, then waits until FILE exists before starting, so that several writers
start at the same moment.
``--pause-at`` stops the real publishing code at a point, prints ``paused <artifact id>`` and sleeps until
killed: ``file:K`` halfway through uploading the K-th file, ``manifest`` with the manifest written to its
temporary file but not yet renamed into place. The pause wraps the registry's own functions; the code that
runs up to it is the real one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from backbone.registry import Lineage, Registry, Releases, StorageRoot, store


def _pause(artifact_id: str) -> None:
    print(f"paused {artifact_id}", flush=True)
    while True:
        time.sleep(60)


def _pause_in_file(number: int) -> None:
    """Pause halfway through uploading the ``number``-th file (1-based)."""
    real_upload = store._upload_file
    uploads = 0

    def upload(root: StorageRoot, source: Path, path: str) -> Any:
        nonlocal uploads
        uploads += 1
        if uploads < number:
            return real_upload(root, source, path)
        half = source.stat().st_size // 2
        artifact_id = path.split("/")[1]

        class HalfThenPause:
            """A reader that hands over the first half of ``source`` in small chunks, then pauses."""

            def __init__(self) -> None:
                self.handle = source.open("rb")
                self.given = 0

            def read(self, size: int) -> bytes:
                if self.given >= half:
                    _pause(artifact_id)
                chunk = self.handle.read(min(size, half - self.given))
                self.given += len(chunk)
                return chunk

        with root.open_output(path) as writer:
            return store.copy_hashing(HalfThenPause(), writer)

    store._upload_file = upload


def _pause_before_manifest_rename() -> None:
    real_write_temp = StorageRoot._write_local_temp

    def write_temp(target: Path, data: bytes) -> Path:
        temp = real_write_temp(target, data)
        if target.name == "manifest.json":
            _pause(target.parent.name)
        return temp

    StorageRoot._write_local_temp = staticmethod(write_temp)


def main() -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--go", type=Path, help="wait for this file to exist before starting")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", parents=[common])
    publish.add_argument("root")
    publish.add_argument("source", type=Path)
    publish.add_argument("--pause-at", default=None)
    promote = commands.add_parser("promote", parents=[common])
    promote.add_argument("root")
    promote.add_argument("release")
    promote.add_argument("component", choices=["retriever", "reranker"])
    promote.add_argument("checkpoints", nargs="+")
    args = parser.parse_args()

    registry = Registry(args.root)  # opened before waiting: the race is about writing, not importing
    if args.go is not None:
        print("ready", flush=True)
        while not args.go.exists():
            time.sleep(0.001)
    if args.command == "publish":
        if args.pause_at == "manifest":
            _pause_before_manifest_rename()
        elif args.pause_at is not None:
            _pause_in_file(int(args.pause_at.removeprefix("file:")))
        print(registry.publish("checkpoint", args.source, name="test/writer", lineage=Lineage()).id, flush=True)
    else:
        releases = Releases(registry)
        for checkpoint in args.checkpoints:
            print(releases.promote(args.release, args.component, checkpoint).version, flush=True)


if __name__ == "__main__":
    sys.exit(main())
