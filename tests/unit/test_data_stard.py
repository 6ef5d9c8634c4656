"""load_stard on small files in the upstream layout, every error it reports, and the download path."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backbone.data import fetch_stard, load_stard, resolve_stard_source
from backbone.data import stard as stard_module
from backbone.errors import BackboneError, DataError

CORPUS = [
    {"id": 0, "name": "民法典第一条", "content": "第一条的内容。\n"},
    {"id": 1, "name": "民法典第二条", "content": "第二条的内容。\n"},
    {"id": 2, "name": "刑法第三条", "content": "第三条的内容。\n"},
]
QUERIES = [
    # match_name is deliberately in another order than match_id: only match_id may be used.
    {
        "query_id": 10,
        "问题": "问题十",
        "相关法规": {},
        "match_id": [0, 2],
        "match_name": ["刑法第三条", "民法典第一条"],
    },
    {"query_id": 11, "问题": "问题十一", "相关法规": {}, "match_id": [1], "match_name": ["民法典第二条"]},
]
SPLITS = {"train": "10\t问题十\n", "dev": "11\t问题十一\n"}


def write_stard(
    root: Path,
    *,
    corpus: str | None = None,
    queries: list[dict] | None = None,
    splits: dict[str, str] | None = None,
) -> Path:
    """Write a tiny STARD copy; each argument replaces the matching file's default content."""
    (root / "example").mkdir(parents=True)
    if corpus is None:
        corpus = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in CORPUS)
    (root / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (root / "queries.json").write_text(json.dumps(QUERIES if queries is None else queries, ensure_ascii=False))
    for split, text in (SPLITS if splits is None else splits).items():
        (root / "example" / f"{split}.query.txt").write_text(text, encoding="utf-8")
    return root


def test_load(tmp_path: Path) -> None:
    dataset = load_stard(write_stard(tmp_path / "stard"))

    assert dataset.splits() == ["dev", "train"]
    assert dataset.relevant("train") == {"10": {"0": 1, "2": 1}}
    assert dataset.relevant("dev") == {"11": {"1": 1}}
    assert dataset.corpus.to_pylist()[0] == {"doc_id": "0", "title": "民法典第一条", "text": "第一条的内容。\n"}
    assert dataset.queries.to_pylist() == [{"query_id": "11", "text": "问题十一"}, {"query_id": "10", "text": "问题十"}]
    assert dataset.source["loader"] == "stard"
    assert dataset.source["path"] == str((tmp_path / "stard").resolve())


def test_load_from_a_clone_of_the_upstream_repository(tmp_path: Path) -> None:
    write_stard(tmp_path / "STARD" / "data")
    assert load_stard(tmp_path / "STARD").splits() == ["dev", "train"]


def test_any_split_file_is_a_split(tmp_path: Path) -> None:
    dataset = load_stard(write_stard(tmp_path, splits={"test": "10\t问题十\n11\t问题十一\n"}))
    assert dataset.splits() == ["test"]
    assert dataset.query_ids("test") == ["10", "11"]


def test_not_a_stard_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not a STARD folder: no queries\.json"):
        load_stard(tmp_path)


def test_no_split_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"example: no <split>\.query\.txt files"):
        load_stard(write_stard(tmp_path, splits={}))


def corpus_lines(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


GOOD_DOC = '{"id": 0, "name": "民法典第一条", "content": "内容"}'


@pytest.mark.parametrize(
    ("corpus", "expected"),
    [
        (corpus_lines(GOOD_DOC, '{"id": 1, "name": "x", "content": "y"'), r"corpus\.jsonl:2: malformed JSON"),
        (corpus_lines(GOOD_DOC, '{"id": 1, "name": "x"}'), r"corpus\.jsonl:2: missing field 'content'"),
        (corpus_lines(GOOD_DOC, '{"id": 1, "name": 5, "content": "y"}'), r"corpus\.jsonl:2: field 'name' must be"),
        (corpus_lines(GOOD_DOC, "", GOOD_DOC), r"corpus\.jsonl:3: duplicate doc id '0' \(first at .*corpus\.jsonl:1\)"),
        (corpus_lines(GOOD_DOC, '{"id": 1, "name": "x", "content": " "}'), r"corpus\.jsonl:2: doc '1' has empty text"),
    ],
)
def test_corpus_errors(tmp_path: Path, corpus: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        load_stard(write_stard(tmp_path, corpus=corpus))


def test_missing_match_id(tmp_path: Path) -> None:
    queries = [QUERIES[0], {"query_id": 11, "问题": "问题十一"}]
    with pytest.raises(DataError, match=r"queries\.json:1: item 1: missing field 'match_id'"):
        load_stard(write_stard(tmp_path, queries=queries))


def test_duplicate_query_in_queries_json(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"queries\.json:1: item 1: duplicate query id '10'"):
        load_stard(write_stard(tmp_path, queries=[QUERIES[0], QUERIES[0]]))


def test_match_id_naming_an_unknown_article(tmp_path: Path) -> None:
    queries = [QUERIES[0], {**QUERIES[1], "match_id": [1, 99]}]
    with pytest.raises(DataError, match=r"queries\.json:1: item 1: query '11' judges unknown doc '99'"):
        load_stard(write_stard(tmp_path, queries=queries))


def test_split_query_missing_from_queries_json(tmp_path: Path) -> None:
    splits = {"train": "10\t问题十\n12\t问题十二\n", "dev": SPLITS["dev"]}
    with pytest.raises(DataError, match=r"train\.query\.txt:2: query '12' is not in .*queries\.json"):
        load_stard(write_stard(tmp_path, splits=splits))


def test_query_in_two_splits(tmp_path: Path) -> None:
    splits = {"train": SPLITS["train"], "dev": "11\t问题十一\n10\t问题十\n"}
    with pytest.raises(
        DataError, match=r"train\.query\.txt:1: duplicate query id '10' \(first at .*dev\.query\.txt:2\)"
    ):
        load_stard(write_stard(tmp_path, splits=splits))


def test_split_line_without_text(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dev\.query\.txt:1: expected 2 non-empty"):
        load_stard(write_stard(tmp_path, splits={"dev": "11\n"}))


def test_split_with_no_judged_queries(tmp_path: Path) -> None:
    queries = [QUERIES[0], {**QUERIES[1], "match_id": []}]
    with pytest.raises(DataError, match=r"dev\.query\.txt: split 'dev' has no judged queries"):
        load_stard(write_stard(tmp_path, queries=queries))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server standing in for GitHub: (base URL, the folder it serves)."""
    served = write_stard(tmp_path / "served")
    for relpath in ("example/qrels.train.tsv", "example/qrels.dev.tsv"):
        (served / relpath).write_text("10\t0\n", encoding="utf-8")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def test_fetch_downloads_every_file_and_keeps_existing_ones(tmp_path: Path, mirror: tuple[str, Path]) -> None:
    url, served = mirror
    cache = tmp_path / "cache"
    assert fetch_stard(cache, base_url=url) == cache
    for relpath in stard_module.STARD_FILES:
        assert (cache / relpath).read_bytes() == (served / relpath).read_bytes()
    assert not [path for path in cache.rglob(".*")], "no temporary files are left behind"
    assert load_stard(cache).splits() == ["dev", "train"]

    shutil.rmtree(served)  # the files are in the cache: a second fetch needs nothing from the server
    assert fetch_stard(cache, base_url=url) == cache


def test_fetch_failure_names_the_offline_option(tmp_path: Path, mirror: tuple[str, Path]) -> None:
    url, served = mirror
    (served / "corpus.jsonl").unlink()
    with pytest.raises(BackboneError, match=r"cannot download STARD \(.*corpus\.jsonl: HTTP Error 404.*--source DIR"):
        fetch_stard(tmp_path / "cache", base_url=url)
    assert not (tmp_path / "cache" / "corpus.jsonl").exists()
    assert not [path for path in (tmp_path / "cache").rglob(".*")]


def test_fetch_refuses_a_git_lfs_pointer(tmp_path: Path, mirror: tuple[str, Path]) -> None:
    url, served = mirror
    (served / "corpus.jsonl").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n")
    with pytest.raises(BackboneError, match=r"corpus\.jsonl is a Git LFS pointer, not the file"):
        fetch_stard(tmp_path / "cache", base_url=url)
    assert not (tmp_path / "cache" / "corpus.jsonl").exists()


def test_fetch_without_network(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackboneError, match=r"no network\? Pass --source DIR .* \$BACKBONE_DATA_DIR/stard"):
        fetch_stard(tmp_path / "cache", base_url=f"http://127.0.0.1:{port}")


def test_resolve_prefers_explicit_then_data_dir_then_download(
    tmp_path: Path, mirror: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, private_backbone_home: Path
) -> None:
    explicit = tmp_path / "explicit"
    assert resolve_stard_source(explicit) == explicit

    monkeypatch.setattr(stard_module, "STARD_URL", mirror[0])
    downloaded = resolve_stard_source(None)
    assert downloaded == private_backbone_home / "downloads" / "stard"
    assert (downloaded / "corpus.jsonl").is_file()

    local = write_stard(private_backbone_home / "data" / "stard")
    assert resolve_stard_source(None) == local
