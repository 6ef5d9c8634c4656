"""Readable output: progress lines away from a terminal, passes that keep their order, quiet model loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers.utils import logging as transformers_logging

from backbone.models import build_retriever
from backbone.models.passes import CHUNK_BATCHES, chunked_pass
from backbone.models.quiet import silence_weight_loading
from backbone.progress import part, progress
from backbone.recipes import Retriever


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


def test_a_chunked_pass_runs_longest_first_in_chunks_and_returns_rows_in_input_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    texts = [f"t{position}" + "x" * (position * 7 % 23) for position in range(2 * CHUNK_BATCHES + 3)]
    seen: list[list[str]] = []

    def run(chunk: list[str]) -> np.ndarray:
        seen.append(chunk)
        return np.array([[len(text), int(text[1:].rstrip("x"))] for text in chunk])

    rows = chunked_pass(texts, [len(text) for text in texts], run, batch_size=1, label="encode", unit="texts")

    assert rows.tolist() == [[len(text), position] for position, text in enumerate(texts)]
    assert [len(chunk) for chunk in seen] == [CHUNK_BATCHES, CHUNK_BATCHES, 3]
    flat = [len(text) for chunk in seen for text in chunk]
    assert flat == sorted(flat, reverse=True)
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"encode: {len(texts)}/{len(texts)} 100%")


def test_a_chunked_pass_over_nothing_keeps_the_row_shape() -> None:
    rows = chunked_pass([], [], lambda chunk: np.zeros((len(chunk), 4), np.float32), batch_size=8, label=None, unit="x")
    assert rows.shape == (0, 4) and rows.dtype == np.float32


def test_loading_a_model_prints_no_weight_loading_bar(
    tiny_encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = Retriever(model=str(tiny_encoder_dir))
    transformers_logging.set_tqdm_hook(None)  # what transformers does on its own: the control
    try:
        build_retriever(spec)
        assert "Loading weights" in capsys.readouterr().err
    finally:
        silence_weight_loading()
    build_retriever(spec)
    assert "Loading weights" not in capsys.readouterr().err
