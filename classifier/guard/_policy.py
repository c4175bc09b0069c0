"""The scan policy, applied before any text is read.

A legal-basis calendar kept as data (``data/legal_basis.json``; a provider can record
another basis); end-to-end-encrypted conversations, conversations with a protected
participant (helpline, counselling, medical, legal) and non-text messages are not
scanned. Bytes of text scanned are metered by region (EU / non-EU) for the annual
report. Refusals are counted, never stored with content.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from .._conversation import Conversation
from .._errors import ConfigError, Errors
from .._scope import refusal_reason

__all__ = ["LegalBasis", "ScanDecision", "ScanPolicy", "load_legal_bases"]

DATA = Path(__file__).parent / "data" / "legal_basis.json"


@dataclass(frozen=True)
class LegalBasis:
    id: str
    instrument: str
    start: date
    end: date

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class ScanDecision:
    allowed: bool
    reason: str | None = None
    basis: str | None = None


def load_legal_bases(path: str | Path = DATA) -> tuple[LegalBasis, ...]:
    """Read and validate the calendar; errors name the file and the entry."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, w in enumerate(raw.get("windows", [])):
        try:
            basis = LegalBasis(w["id"], w["instrument"], date.fromisoformat(w["start"]),
                               date.fromisoformat(w["end"]))
        except (KeyError, TypeError, ValueError) as exc:
            problem = f"windows[{i}]: {type(exc).__name__} in id, instrument, start or end"
        else:
            problem = (f"windows[{i}] ({basis.id}): end before start"
                       if basis.end < basis.start else None)
        if problem:
            raise ConfigError(Errors.E010.format(file=path, problem=problem))
        out.append(basis)
    return tuple(out)


class ScanPolicy:
    """Decides whether a conversation may be scanned, and meters what was scanned.

    Parameters
    ----------
    bases : legal bases; default the bundled calendar
    extra_bases : further bases a provider records (for example a national law)
    """

    def __init__(self, bases: tuple[LegalBasis, ...] | None = None,
                 extra_bases: tuple[LegalBasis, ...] = ()) -> None:
        self.bases = (bases if bases is not None else load_legal_bases()) + extra_bases
        self.refusals: Counter[str] = Counter()
        self.bytes_scanned: Counter[str] = Counter()
        self.conversations_scanned = 0
        self.messages_not_scanned = 0

    def basis_on(self, day: date) -> LegalBasis | None:
        return next((b for b in self.bases if b.covers(day)), None)

    def decide(self, conversation: Conversation, when: datetime | date) -> ScanDecision:
        """May this conversation be scanned on this day? Counts refusals."""
        day = when.date() if isinstance(when, datetime) else when
        basis = self.basis_on(day)
        reason = None if basis else "no_legal_basis"
        reason = reason or refusal_reason(conversation)
        if reason:
            self.refusals[reason] += 1
            return ScanDecision(False, reason)
        return ScanDecision(True, basis=basis.id if basis else None)

    def meter(self, conversation: Conversation) -> None:
        """Count the bytes of text scanned (by region) and the messages not scanned."""
        self.conversations_scanned += 1
        for m in conversation.messages:
            if m.is_text:
                self.bytes_scanned[conversation.region] += len(m.text.encode("utf-8"))
            else:
                self.messages_not_scanned += 1

    def counters(self) -> Mapping[str, int]:
        out = {f"refused.{k}": v for k, v in self.refusals.items()}
        out |= {f"bytes_scanned.{k}": v for k, v in self.bytes_scanned.items()}
        out["conversations_scanned"] = self.conversations_scanned
        out["messages_not_scanned"] = self.messages_not_scanned
        return out
