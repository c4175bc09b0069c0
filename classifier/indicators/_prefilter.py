"""The prefilter: which messages of a batch may hold an indicator at all.

Each template compiles to a *superset* regex over lower-cased text: its tokens in order,
with nothing or one space between them, anchored at word edges where spaCy cannot split
inside a word. A spaCy match is exactly such a stretch of text, so every message the full
matcher would match is a prefilter candidate (the prefilter can only let through too
much, never too little). Only the
candidates are tokenised by spaCy; the common message with no indicator costs one scan
of a joined, lower-cased batch.

Two engines run the same regexes: Hyperscan (one scan per batch; x86-64 Linux wheels)
and Python's ``re`` (portable, slower).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._cache import read_entry, write_entry
from .._errors import ConfigError, Errors, InputTypeError, MissingDependencyError
from ._catalogue import RE_EDGES

__all__ = ["ENGINES", "Prefilter", "hyperscan_available", "join_lower"]

ENGINES = ("auto", "hyperscan", "re", "none")
_SEP = "\x00"


def hyperscan_available() -> bool:
    try:
        import hyperscan  # noqa: F401
    except ImportError:
        return False
    return True


def join_lower(texts: Sequence[str]) -> tuple[str, int]:
    """Join a batch with NUL separators, lower-cased; returns (joined, n_separators_expected)."""
    joined = _SEP.join(texts)
    if joined.count(_SEP) != len(texts) - 1:
        # a message carries NUL itself: blank it in this view only
        joined = _SEP.join(t.replace(_SEP, " ") for t in texts)
    return joined.lower(), len(texts) - 1


def _re_edges(regex: str) -> str:
    for consuming, lookaround in RE_EDGES.items():
        regex = regex.replace(consuming, lookaround)
    return regex


class Prefilter:
    """Candidate selection for a batch of messages.

    Parameters
    ----------
    regexes : sequence of str
        Superset regexes (one per template or pattern).
    engine : {"auto", "hyperscan", "re", "none"}
        ``auto`` takes Hyperscan where installed, else ``re``; ``none`` lets every
        message through (the full matcher).
    cache : bool, default True
        Keep the compiled Hyperscan database in the user cache (:mod:`classifier._cache`),
        keyed by the regexes and the Hyperscan version: compiling takes seconds, loading
        milliseconds.
    """

    def __init__(self, regexes: Sequence[str], *, engine: str = "auto",
                 cache: bool = True) -> None:
        if engine not in ENGINES:
            raise ConfigError(Errors.E002.format(engine=engine, choices=", ".join(ENGINES)))
        if engine == "auto":
            engine = "hyperscan" if hyperscan_available() else "re"
        if engine == "hyperscan" and not hyperscan_available():
            raise MissingDependencyError(Errors.E003)
        self.engine = engine
        self._regexes = tuple(regexes)
        self._db: Any = None
        self._scratch: Any = None
        self._re: re.Pattern[str] | None = None
        if engine == "hyperscan":
            self._db = self._load_hyperscan(cache)
            import hyperscan

            self._scratch = hyperscan.Scratch(self._db)
        elif engine == "re":
            # no groups: capturing ~400 groups makes `re` ~7x slower; this engine does
            # not tell which regex hit (every pattern is tried on a candidate)
            self._re = re.compile("|".join(f"(?:{_re_edges(r)})" for r in self._regexes))

    def _load_hyperscan(self, cache: bool) -> Any:
        import hyperscan

        key = None
        if cache:
            from importlib.metadata import version

            digest = hashlib.sha256("\n".join(self._regexes).encode("utf-8")).hexdigest()
            key = f"hyperscan-{digest[:32]}-{version('hyperscan')}.db"
            blob = read_entry(key)
            if blob is not None:
                try:
                    return hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
                except Exception:
                    pass
        db = self._compile_hyperscan()
        if key is not None:
            write_entry(key, hyperscan.dumpb(db))
        return db

    def _compile_hyperscan(self) -> Any:
        import hyperscan

        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        exprs = [r.encode("utf-8") for r in self._regexes]
        # UTF-8 mode: one class match per code point. (Byte mode missed a match of a
        # template with edges and two alternations here: a Hyperscan engine bug, found by
        # the agreement benchmark.) UTF-8 mode needs valid input: see candidates().
        db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs),
                   flags=[hyperscan.HS_FLAG_UTF8] * len(exprs))
        return db

    def candidates(self, texts: Sequence[str], *, lowered: str | None = None,
                   ) -> tuple[np.ndarray, dict[int, set[int]] | None]:
        """Which messages may hold an indicator (a boolean mask), and for each of them the
        regexes that hit it (row -> set of regex indices; None when the engine cannot
        tell, and then every pattern must be tried). ``lowered``: the batch as
        :func:`join_lower` gives it, when the caller has it already.

        Raises
        ------
        InputTypeError
            If an item is not a str (naming its index, never its value).
        """
        n = len(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputTypeError(Errors.E001.format(type_name=type(t).__name__, record=i))
        if self.engine == "none" or n == 0:
            return np.ones(n, dtype=bool), None
        if n == 1 and self._db is not None:  # one message (a stream): no separators
            return self._candidates_one(texts[0])
        joined = join_lower(texts)[0] if lowered is None else lowered
        mask = np.zeros(n, dtype=bool)
        if self._db is not None:
            data = joined.encode("utf-8", "replace")  # lone surrogates -> "?"
            hits: list[tuple[int, int]] = []
            append = hits.append

            def on_match(rx: int, _from: int, to: int, _flags: int, _ctx: Any) -> None:
                append((rx, to))

            self._db.scan(data, match_event_handler=on_match, scratch=self._scratch)
            if not hits:
                return mask, {}
            seps = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0)
        else:
            assert self._re is not None
            if not joined.isascii():  # lone surrogates -> "?", as the matcher tokenises them
                joined = joined.encode("utf-8", "replace").decode("utf-8")
            hits = [(-1, m.end()) for m in self._re.finditer(joined)]
            if not hits:
                return mask, None
            seps = np.asarray([m.start() for m in re.finditer(_SEP, joined)], dtype=np.int64)
        arr = np.asarray(hits, dtype=np.int64)
        idx = np.searchsorted(seps, arr[:, 1] - 1, side="left")
        keep = idx < n
        mask[idx[keep]] = True
        if self._db is None:
            return mask, None
        by_row: dict[int, set[int]] = {}
        for row, rx in zip(idx[keep].tolist(), arr[keep, 0].tolist(), strict=True):
            by_row.setdefault(row, set()).add(rx)
        return mask, by_row

    def _candidates_one(self, text: str) -> tuple[np.ndarray, dict[int, set[int]]]:
        """:meth:`candidates` of a batch of one message, with Hyperscan (the same answer:
        every match of a one-message batch is in its row)."""
        found: set[int] = set()
        add = found.add

        def on_match(rx: int, _from: int, _to: int, _flags: int, _ctx: Any) -> None:
            add(rx)

        lowered = (text.replace(_SEP, " ") if _SEP in text else text).lower()
        self._db.scan(lowered.encode("utf-8", "replace"), match_event_handler=on_match,
                      scratch=self._scratch)
        return np.array([bool(found)]), ({0: found} if found else {})
