"""A dependency-free progress bar on stderr, shown only on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, label: str, total: int | None = None,
             every: float = 0.2) -> Iterator[T]:
    """Yield ``items``, drawing ``label [#####     ] n/total`` on stderr when it is a tty."""
    stream = sys.stderr
    if not stream.isatty():
        yield from items
        return
    start = last = time.monotonic()
    n = 0
    for n, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= every:
            last = now
            _draw(stream, label, n, total, now - start)
    _draw(stream, label, n, total, time.monotonic() - start)
    stream.write("\n")


def _draw(stream, label: str, n: int, total: int | None, elapsed: float) -> None:  # type: ignore[no-untyped-def]
    rate = n / elapsed if elapsed > 0 else 0.0
    if total:
        done = int(30 * n / total)
        bar = f"[{'#' * done}{' ' * (30 - done)}] {n}/{total}"
    else:
        bar = f"{n}"
    stream.write(f"\r{label} {bar} ({rate:,.0f}/s)")
    stream.flush()
