"""Readable output: progress lines away from a terminal, batched passes that keep their order, quiet model loads and
saves."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import CrossEncoder
from transformers.utils import logging as transformers_logging

from backbone.models import build_reranker, build_retriever
from backbone.models.passes import batched_pass, token_batches
from backbone.models.quiet import expecting_new_head, silence_model_io
from backbone.progress import part, progress
from backbone.recipes import Reranker, Retriever


def test_a_log_gets_one_line_per_redraw_with_count_rate_and_time_left(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    with progress(3, "[retriever/alignment] encode corpus", "passages") as bar:
        for _ in range(3):
            bar.update(1)

    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert all(line.startswith("[retriever/alignment] encode corpus: ") for line in lines)
    counts = [line.split(": ")[1].split(" ")[0] for line in lines]
    assert counts == ["0/3", "1/3", "2/3", "3/3"]  # closing does not repeat the last count
    assert lines[-1].startswith("[retriever/alignment] encode corpus: 3/3 100% [00:00<00:00,")
    assert lines[-1].endswith("passages/s]")


def test_no_label_shows_nothing(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    with progress(2, None, "pairs") as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""
    assert part(None, "score pairs") is None
    assert part("[reranker/base]", "score pairs") == "[reranker/base] score pairs"


def test_a_batched_pass_runs_longest_first_in_token_budgeted_batches_and_returns_rows_in_input_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    texts = [f"t{position}" + "x" * (position * 7 % 23) for position in range(19)]
    lengths = [len(text) for text in texts]
    seen: list[list[str]] = []

    def run(batch: list[str]) -> np.ndarray:
        seen.append(batch)
        return np.array([[len(text), int(text[1:].rstrip("x"))] for text in batch])

    rows = batched_pass(texts, lengths, run, max_batch_tokens=60, max_batch_size=4, label="encode", unit="texts")

    assert rows.tolist() == [[len(text), position] for position, text in enumerate(texts)]
    flat = [len(text) for batch in seen for text in batch]
    assert flat == sorted(flat, reverse=True)
    assert all(len(batch) <= 4 and len(batch) * len(batch[0]) <= 60 for batch in seen)
    # Greedy: a batch is cut only when the next text would break a budget.
    assert all(len(batch) == 4 or (len(batch) + 1) * len(batch[0]) > 60 for batch in seen[:-1])
    assert [len(batch) for batch in seen] == [2, 2, 3, 3, 4, 4, 1]  # 25+23 | 23+21 | 19.. | 16.. | 12.. | 7.. | 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"encode: {len(texts)}/{len(texts)} 100%")


def test_token_batches_take_many_short_items_few_long_ones_and_a_too_long_item_alone() -> None:
    assert token_batches([8] * 10, max_batch_tokens=32, max_batch_size=100) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert token_batches([100, 8, 8], max_batch_tokens=32, max_batch_size=100) == [[0], [1, 2]]
    assert token_batches([8] * 5, max_batch_tokens=1000, max_batch_size=2) == [[0, 1], [2, 3], [4]]
    assert token_batches([], max_batch_tokens=32, max_batch_size=4) == []


def test_a_batched_pass_over_nothing_keeps_the_row_shape() -> None:
    rows = batched_pass(
        [],
        [],
        lambda batch: np.zeros((len(batch), 4), np.float32),
        max_batch_tokens=64,
        max_batch_size=8,
        label=None,
        unit="x",
    )
    assert rows.shape == (0, 4) and rows.dtype == np.float32


def _load_and_save(spec: Retriever, folder: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Load and save a model; what sentence-transformers logged below WARNING."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        build_retriever(spec).save(str(folder))
    return [r.getMessage() for r in caplog.records if r.name.startswith("sentence_transformers") and r.levelno < 30]


def test_loading_and_saving_a_model_print_no_bars_and_no_info_lines(
    tiny_encoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    spec = Retriever(model=str(tiny_encoder_dir))
    # What transformers and sentence-transformers do on their own: the control.
    transformers_logging.set_tqdm_hook(None)
    logging.getLogger("sentence_transformers").setLevel(logging.NOTSET)
    try:
        info = _load_and_save(spec, tmp_path / "loud", caplog)
        err = capsys.readouterr().err
        assert "Loading weights" in err and "Writing model shards" in err
        assert "No device provided, using cpu" in info, info
    finally:
        silence_model_io()
    info = _load_and_save(spec, tmp_path / "quiet", caplog)
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "Writing model shards" not in err
    assert info == []


@pytest.fixture
def warnings_seen(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, also seeing transformers' records (its logger does not propagate to the root)."""
    transformers = logging.getLogger("transformers")
    seen_already = transformers.propagate  # transformers turns propagation off, and another test may turn it on
    if not seen_already:
        transformers.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            yield caplog
    finally:
        transformers.removeHandler(caplog.handler)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()) for record in caplog.records]
    return [text for text, record in zip(plain, caplog.records, strict=True) if record.levelno >= logging.WARNING]


def test_a_reranker_built_from_an_encoder_does_not_warn_about_its_new_head(
    tiny_encoder_dir: Path, warnings_seen: pytest.LogCaptureFixture
) -> None:
    caplog = warnings_seen
    CrossEncoder(str(tiny_encoder_dir), num_labels=1)  # the control: the report, on its own
    assert any(" LOAD REPORT from: " in message for message in _warnings(caplog)), _warnings(caplog)
    caplog.clear()
    build_reranker(Reranker(model=str(tiny_encoder_dir), max_length=32, max_query_length=8))
    assert _warnings(caplog) == []


def test_a_load_report_naming_other_weights_still_shows(warnings_seen: pytest.LogCaptureFixture) -> None:
    report = (
        "BertForSequenceClassification LOAD REPORT from: x\nKey | Status | \n----+---------+-\n"
        "classifier.bias | MISSING | \nbert.encoder.layer.0.attention.self.query.weight | MISSING | \n"
    )
    converting = "Converting SentenceTransformer model x to CrossEncoder."
    with expecting_new_head():
        logging.getLogger("transformers.modeling_utils").warning(report)
        logging.getLogger("transformers.modeling_utils").warning(report.replace("bert.encoder", "classifier.x"))
        logging.getLogger("sentence_transformers.base.model").warning(converting)
    logging.getLogger("sentence_transformers.base.model").warning(converting)  # outside: shown
    assert _warnings(warnings_seen) == [report, converting]
