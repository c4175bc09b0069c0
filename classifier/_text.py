"""The text boundary: the only runtime code that reads message text.

Everything that needs message text for its meaning passes through here, once per message:

- **extraction**: the texts of a batch go through :class:`IndicatorExtractor` in one call
  and come back as numbers (:class:`MessageColumns`: indicator counts, age evidence, times,
  who sent what; not even a message's length leaves);
- **byte metering**: the UTF-8 bytes of text scanned, per conversation, for the annual
  report;
- **evidence rows**: for a flagged conversation, the excerpt a human reviewer needs (the
  messages that carried indicators and a few before each) is cut here from the counts
  already extracted (triage never extracts twice) and handed over sealed-ready as
  :class:`EvidenceExcerpt`, whose bytes only the guard encrypts.

The text is dropped here. Format modules (:mod:`classifier._conversation`,
:mod:`classifier._message_rows`) move text into :class:`Message` objects without
reading it; ``tests/test_firewall.py`` fails when any other module touches ``.text``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ._conversation import Conversation
from ._errors import Errors, FirewallError
from .indicators import AgeEvidence, IndicatorBatch, IndicatorExtractor

__all__ = ["EvidenceExcerpt", "MessageColumns", "TextBoundary"]


@dataclass(frozen=True)
class MessageColumns:
    """A run of one conversation's messages, as numbers only.

    Attributes
    ----------
    senders : tuple of str
    times : ndarray of float64, epoch seconds
    scanned : ndarray of bool, False for non-text messages (counted, never scanned)
    counts : ndarray of shape (n, n_indicators), uint16 (zero rows where not scanned)
    ages : mapping of position -> age evidence
    n_bytes : int, UTF-8 bytes of text scanned
    """

    senders: tuple[str, ...]
    times: np.ndarray
    scanned: np.ndarray
    counts: np.ndarray
    ages: dict[int, tuple[AgeEvidence, ...]] = field(default_factory=dict)
    n_bytes: int = 0

    def __len__(self) -> int:
        return len(self.senders)

    def slice(self, start: int, stop: int) -> MessageColumns:
        """Messages ``start <= i < stop`` (positions in ``ages`` renumbered)."""
        return MessageColumns(self.senders[start:stop], self.times[start:stop],
                              self.scanned[start:stop],
                              self.counts[start:stop],
                              {i - start: a for i, a in self.ages.items() if start <= i < stop},
                              0)

    @property
    def carrying(self) -> np.ndarray:
        """Positions of the messages that carried at least one indicator."""
        return np.flatnonzero(self.counts.any(axis=1)) if len(self) else np.zeros(0, np.int64)


class EvidenceExcerpt:
    """The plaintext excerpt of a flagged conversation, for the guard to encrypt.

    Holds message text: hidden from ``repr``, never pickled or copied across processes.
    """

    __slots__ = ("_plaintext", "last_ts", "n_messages")

    def __init__(self, plaintext: bytes, n_messages: int, last_ts: str | None) -> None:
        self._plaintext = plaintext
        self.n_messages = n_messages
        self.last_ts = last_ts

    @property
    def plaintext(self) -> bytes:
        return self._plaintext

    def __repr__(self) -> str:
        return f"EvidenceExcerpt(n_messages={self.n_messages})"

    def __reduce__(self) -> Any:
        raise FirewallError(Errors.E004.format(kind="EvidenceExcerpt"))


def _epoch(ts: datetime) -> float:
    return ts.timestamp()


class TextBoundary:
    """Reads the text of conversations and messages, once, and returns numbers.

    Parameters
    ----------
    extractor : IndicatorExtractor
    """

    def __init__(self, extractor: IndicatorExtractor) -> None:
        self.extractor = extractor

    def extract(self, conversations: Sequence[Conversation]) -> list[MessageColumns]:
        """Every conversation's messages as :class:`MessageColumns`, in one extraction
        batch (the extractor and its prefilter pay their fixed cost once)."""
        texts: list[str] = []
        years: list[int] = []
        spans: list[tuple[int, list[int]]] = []
        for conv in conversations:
            first = len(texts)
            positions = []
            for i, m in enumerate(conv.messages):
                if m.is_text:
                    texts.append(m.text)
                    years.append(m.ts.year)
                    positions.append(i)
            spans.append((first, positions))
        batch = self.extractor.extract_batch(texts, reference_year=years)
        out = []
        for conv, (first, positions) in zip(conversations, spans, strict=True):
            out.append(self._columns(conv.messages, batch, first, positions,
                                     [texts[first + j] for j in range(len(positions))]))
        return out

    def _columns(self, messages: Sequence[Any], batch: IndicatorBatch, first: int,
                 positions: list[int], texts: list[str]) -> MessageColumns:
        n, n_text = len(messages), len(positions)
        rows = batch.counts[first:first + n_text]
        scanned = np.zeros(n, dtype=bool)
        scanned[positions] = True
        if n_text == n:
            counts = rows
        else:
            counts = np.zeros((n, rows.shape[1]), dtype=rows.dtype)
            counts[positions] = rows
        found = batch.ages_between(first, first + n_text)
        ages = {positions[r - first]: ev for r, ev in found.items()}
        n_bytes = sum(map(_utf8_len, texts))
        times = np.fromiter((_epoch(m.ts) for m in messages), dtype=np.float64, count=n)
        return MessageColumns(tuple(m.sender for m in messages), times, scanned, counts, ages,
                              n_bytes)

    def extract_messages(self, messages: Sequence[Any]) -> MessageColumns:
        """Stream messages (objects with ``sender``, ``ts`` and ``text``, None for a non-text
        message), in arrival order, as one run of columns (one extraction batch)."""
        n = len(messages)
        texts = [m.text for m in messages]
        if None in texts:  # non-text messages: counted, never scanned
            positions = [i for i, text in enumerate(texts) if text is not None]
            texts = [texts[i] for i in positions]
        else:  # the common micro-batch (and a single message): text only
            positions = None
        years = [_year(m.ts) for m in messages] if positions is None else \
            [_year(messages[i].ts) for i in positions]
        batch = self.extractor.extract_batch(texts, reference_year=years)
        if positions is None:
            scanned = np.array([True]) if n == 1 else np.ones(n, dtype=bool)  # (cheaper)
            counts, ages = batch.counts, dict(batch.ages)
        else:
            scanned = np.zeros(n, dtype=bool)
            scanned[positions] = True
            counts = np.zeros((n, batch.counts.shape[1]), dtype=batch.counts.dtype)
            counts[positions] = batch.counts
            ages = {positions[r]: ev for r, ev in batch.ages.items()}
        times = np.array([m.ts.timestamp() if isinstance(m.ts, datetime) else float(m.ts)
                          for m in messages], dtype=np.float64)
        n_bytes = sum(map(_utf8_len, texts))
        return MessageColumns(tuple([m.sender for m in messages]), times, scanned, counts,
                              ages, n_bytes)

    def bytes_by_region(self, messages: Sequence[Any]) -> dict[str, int]:
        """UTF-8 bytes of the text of stream messages (with ``region``), per region."""
        out: dict[str, int] = {}
        for m in messages:
            if m.text is not None:
                out[m.region] = out.get(m.region, 0) + _utf8_len(m.text)
        return out

    def evidence(self, conversation: Conversation, columns: MessageColumns, subject: str | None,
                 *, before: int = 3) -> EvidenceExcerpt:
        """The excerpt of a flagged conversation: the messages that carried indicators and
        up to ``before`` messages before each (positions taken from ``columns``, extracted
        already)."""
        msgs = conversation.messages
        keep = sorted({j for i in columns.carrying.tolist()
                       for j in range(max(0, i - before), i + 1)})
        plaintext = json.dumps({
            "conversation_id": conversation.conversation_id,
            "subject": subject or (msgs[0].sender if msgs else None),
            "participants": [p.id for p in conversation.participants],
            "messages": [{"index": i, "sender": msgs[i].sender,
                          "ts": msgs[i].ts.astimezone(UTC).isoformat(),
                          "text": msgs[i].text, "modality": msgs[i].modality} for i in keep],
        }, ensure_ascii=False).encode("utf-8", "replace")  # a lone surrogate becomes "?"
        last = msgs[keep[-1]].ts.astimezone(UTC).isoformat() if keep else None
        return EvidenceExcerpt(plaintext, len(keep), last)


def _utf8_len(text: str) -> int:
    """UTF-8 bytes of a text (a lone surrogate, which a Conversation built in code may
    hold, counted as the three bytes it would take)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _year(ts: datetime | float) -> int:
    if isinstance(ts, datetime):
        return ts.year
    return datetime.fromtimestamp(float(ts), UTC).year
