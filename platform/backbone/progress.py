"""Progress of long work (encoding a corpus, scoring pairs, a search), readable on a terminal and in a log.

On a terminal the bar is tqdm's own. Anywhere else (a ``ray job submit`` log, a Ray worker, a pipe) a redrawn bar
would be carriage returns in one endless line, so each redraw is written as a line of its own, at most every
``TQDM_MININTERVAL`` seconds (default 30), with done/total, percent, elapsed, time left and rate::

    [retriever/alignment] encode corpus: 640/2000 32% [00:31<01:06, 20.5 passages/s]

``TQDM_DISABLE=1`` silences every bar (tqdm reads both variables itself).
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from tqdm import tqdm

_LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} {percentage:.0f}% [{elapsed}<{remaining}, {rate_fmt}]"
_LOG_INTERVAL_S = 30.0


def progress(total: int, label: str | None, unit: str) -> tqdm:
    """A progress bar of ``total`` ``unit`` for ``label``; silent when ``label`` is None.

    Args:
        total: how much work there is.
        label: what is being done, as a log line names it; None for work nobody should see (a rank other than 0,
            a short pass inside a request).
        unit: what is counted ("passages", "pairs", "trials").

    Example:
        >>> with progress(3, None, "pairs") as bar:
        ...     _ = bar.update(3)
    """
    stream = sys.stderr
    if label is None:
        return tqdm(total=total, disable=True)
    if stream.isatty():
        return tqdm(total=total, desc=label, unit=f" {unit}", file=stream, dynamic_ncols=True)
    interval = float(os.environ.get("TQDM_MININTERVAL", _LOG_INTERVAL_S))
    return tqdm(
        total=total,
        desc=label,
        unit=f" {unit}",
        file=_Lines(stream),
        bar_format=_LINE_FORMAT,
        mininterval=interval,
        maxinterval=max(interval, 1.0),  # tqdm's default (10 s) would otherwise lower it
        ascii=True,
    )


def part(label: str | None, what: str) -> str | None:
    """The label of one part of ``label``'s work ("[retriever/refinement] encode corpus"); None stays None."""
    return f"{label} {what}" if label else None


class _Lines:
    """A stream that turns tqdm's carriage-return redraws into one line each, never the same count twice (closing
    redraws the last count with a newer rate)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.strip("\r\n")
        count = line.partition(" [")[0]
        if line and count != self._last:
            self._stream.write(line + "\n")
            self._last = count

    def flush(self) -> None:
        self._stream.flush()
