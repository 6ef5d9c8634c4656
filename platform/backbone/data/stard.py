"""STARD (Su et al., EMNLP Findings 2024): Chinese statute retrieval for layperson queries.

Upstream layout (``oneal2000/STARD``, folder ``data/``): ``corpus.jsonl`` lines ``{"id", "name", "content"}``,
``queries.json`` (a list of ``{query_id, 问题, 相关法规, match_id, match_name}``) and the official splits
``example/<split>.query.txt`` (``qid<TAB>text``). The relevant articles of a query are its ``match_id``;
``match_name`` is in a different order for some queries, so it is never used.
"""

from __future__ import annotations

import http.client
import shutil
import urllib.request
import uuid
from pathlib import Path

from backbone import settings
from backbone.data.builder import DatasetBuilder
from backbone.data.dataset import RetrievalDataset
from backbone.data.readers import Where, iter_fields, iter_json_array, iter_jsonl, read_id, read_ids, read_text
from backbone.errors import BackboneError, DataError

STARD_URL = "https://raw.githubusercontent.com/oneal2000/STARD/main/data"
STARD_FILES = (
    "queries.json",
    "corpus.jsonl",
    "example/train.query.txt",
    "example/dev.query.txt",
    "example/qrels.train.tsv",
    "example/qrels.dev.tsv",
)
_SPLIT_SUFFIX = ".query.txt"
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def load_stard(source: Path) -> RetrievalDataset:
    """Load STARD from a local copy of the upstream files.

    ``source`` is either the folder holding ``queries.json`` or a clone of the upstream repository (files
    under ``data/``). Each ``example/<split>.query.txt`` is a split: its queries, with their text from that
    file, judge their ``match_id`` articles with grade 1. An article's title is its ``name`` (law and
    article number) and its text its ``content``. Integer ids become strings.

    Args:
        source: the STARD folder.

    Example:
        >>> dataset = load_stard(Path("../shared/data/stard"))  # doctest: +SKIP
        >>> dataset.relevant("train")["0"]  # doctest: +SKIP
        {'705': 1, '49282': 1}
    """
    root = _stard_root(source)
    split_files = sorted((root / "example").glob(f"*{_SPLIT_SUFFIX}"))
    if not split_files:
        raise DataError(root / "example", f"no <split>{_SPLIT_SUFFIX} files: STARD needs at least one split")
    builder = DatasetBuilder()
    for where, record in iter_jsonl(root / "corpus.jsonl"):
        doc_id = read_id(record, "id", where)
        builder.add_doc(doc_id, read_text(record, "name", where), read_text(record, "content", where), where)
    matches: dict[str, tuple[Where, list[str]]] = {}
    for where, item in iter_json_array(root / "queries.json"):
        query_id = read_id(item, "query_id", where)
        if query_id in matches:
            raise where.error(f"duplicate query id {query_id!r} (first at {matches[query_id][0]})")
        matches[query_id] = (where, read_ids(item, "match_id", where))
    for path in split_files:
        split = path.name.removesuffix(_SPLIT_SUFFIX)
        builder.add_split(split, Where(path))
        for where, (query_id, text) in iter_fields(path, 2):
            if query_id not in matches:
                raise where.error(f"query {query_id!r} is not in {root / 'queries.json'}")
            builder.add_query(query_id, text, where)
            item_where, doc_ids = matches[query_id]
            for doc_id in doc_ids:
                builder.add_judgment(split, query_id, doc_id, 1, item_where)
    return builder.build({"loader": "stard", "name": "stard", "path": str(root.resolve()), "upstream": STARD_URL})


def fetch_stard(cache_dir: Path, *, base_url: str | None = None) -> Path:
    """Download the STARD files :func:`load_stard` reads into ``cache_dir`` and return it.

    Files already in ``cache_dir`` are kept; each new one is written under a temporary name and renamed, so
    an interrupted download never leaves a truncated file that a later call would take as complete.

    Args:
        cache_dir: where the files go (the ``data/`` layout without the ``data/`` folder).
        base_url: a mirror of the upstream ``data/`` folder; ``None`` uses ``STARD_URL``.

    Example:
        >>> load_stard(fetch_stard(Path.home() / ".cache/backbone/downloads/stard"))  # doctest: +SKIP
    """
    base = (base_url or STARD_URL).rstrip("/")
    for relpath in STARD_FILES:
        target = cache_dir / relpath
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part-{uuid.uuid4().hex}")
        url = f"{base}/{relpath}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
                shutil.copyfileobj(response, out)
            with partial.open("rb") as head:
                # A large file kept in Git LFS is served as a small pointer text instead of its content.
                if head.read(len(_LFS_POINTER)) == _LFS_POINTER:
                    raise BackboneError(
                        f"cannot download STARD ({url} is a Git LFS pointer, not the file): fetch the upstream "
                        "repository with git lfs and pass --source DIR, or put it in $BACKBONE_DATA_DIR/stard"
                    )
            partial.replace(target)
        except (OSError, http.client.HTTPException) as err:
            raise BackboneError(
                f"cannot download STARD ({url}: {err}): no network? Pass --source DIR with a local copy, "
                "or put one in $BACKBONE_DATA_DIR/stard"
            ) from None
        finally:
            partial.unlink(missing_ok=True)
    return cache_dir


def resolve_stard_source(source: Path | None) -> Path:
    """Where to load STARD from: ``source`` if given, else ``$BACKBONE_DATA_DIR/stard``, else a download.

    The download goes to ``$BACKBONE_HOME/downloads/stard`` and is reused by later calls.

    Args:
        source: an explicit local copy, or ``None``.

    Example:
        >>> resolve_stard_source(Path("../shared/data/stard"))
        PosixPath('../shared/data/stard')
    """
    if source is not None:
        return source
    local = settings.data_dir() / "stard"
    if local.exists():
        return local
    return fetch_stard(settings.backbone_home() / "downloads" / "stard")


def _stard_root(source: Path) -> Path:
    for root in (source, source / "data"):
        if (root / "queries.json").is_file():
            return root
    raise DataError(source, "not a STARD folder: no queries.json (nor data/queries.json)")
