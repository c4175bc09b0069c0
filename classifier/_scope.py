"""Scope: what may be scanned at all, decided before any text is read.

The first stage of :class:`classifier.Pipeline`, applied on every path (library, CLI,
stream, Spark, evaluation, guard):

- a **legal-basis calendar** kept as data (``data/legal_basis.json``: Reg. 2021/1232,
  its extension by 2024/1307, the gap from 2026-04-04 to 2026-07-30, Reg. 2026/1881 to
  2028-04-03; a provider can correct it or add a basis of its own); outside every window
  nothing is scanned;
- **end-to-end-encrypted** conversations are refused (Reg. 2026/1881; recital 25: nothing
  may weaken end-to-end encryption);
- conversations with a **protected participant** (helpline, counselling, medical, legal;
  recitals 26-27) are not scanned at all;
- **non-text** messages (audio is out of scope, Art 1(2)) are counted, never scanned.

The policy also keeps the counters the annual report needs (bytes of text scanned by
region, refusals by reason, messages not scanned); the text boundary reports the bytes.
Refusals are counted, never stored with content.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from ._conversation import Conversation
from ._errors import ConfigError, Errors

__all__ = ["LegalBasis", "ScanDecision", "ScanPolicy", "load_legal_bases", "refusal_reason"]


def _default_calendar() -> Path:
    return Path(str(resources.files("classifier") / "data" / "legal_basis.json"))


@dataclass(frozen=True)
class LegalBasis:
    """A window of time in which an instrument allows scanning."""

    id: str
    instrument: str
    start: date
    end: date

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class ScanDecision:
    """Whether a conversation may be scanned; ``reason`` when not, ``basis`` when so."""

    allowed: bool
    reason: str | None = None
    basis: str | None = None


def load_legal_bases(path: str | Path | None = None) -> tuple[LegalBasis, ...]:
    """Read and validate the calendar; errors name the file and the entry (E010)."""
    path = Path(path) if path is not None else _default_calendar()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        windows = raw.get("windows", []) if isinstance(raw, dict) else None
    except (OSError, ValueError) as exc:
        problem: str | None = type(exc).__name__
    else:
        problem = None if isinstance(windows, list) else "'windows' must be a list"
    if problem:
        raise ConfigError(Errors.E010.format(file=path, problem=problem))
    out = []
    for i, w in enumerate(windows):
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


def refusal_reason(conversation: Conversation) -> str | None:
    """Why a conversation must not be scanned whatever the date, or None.

    - ``e2ee``: end-to-end-encrypted communications are out of scope (Reg. 2026/1881);
    - ``protected_participant``: a helpline, counselling, medical or legal participant
      (recitals 26-27): the conversation is not scanned at all;
    - ``no_text``: nothing in it is text (audio is out of scope, Art 1(2)).
    """
    if conversation.e2ee:
        return "e2ee"
    if any(p.protected_role for p in conversation.participants):
        return "protected_participant"
    if not any(m.is_text for m in conversation.messages):
        return "no_text"
    return None


class ScanPolicy:
    """Decides whether a conversation may be scanned, and keeps the scan counters.

    Parameters
    ----------
    bases : tuple of LegalBasis, optional
        Default: the bundled calendar (``classifier/data/legal_basis.json``).
    extra_bases : tuple of LegalBasis
        Further bases a provider records (for example a national law).
    clock : callable returning an aware datetime, optional
        When "now" is (default: the system clock, UTC). The legal window is about when
        scanning happens, not when the messages were sent.

    Examples
    --------
    >>> from datetime import date
    >>> policy = ScanPolicy()
    >>> policy.basis_on(date(2026, 5, 1)) is None          # the gap between instruments
    True
    >>> policy.basis_on(date(2027, 1, 1)).id
    'reg-2026-1881'
    """

    def __init__(self, bases: tuple[LegalBasis, ...] | None = None,
                 extra_bases: tuple[LegalBasis, ...] = (), *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.bases = (bases if bases is not None else load_legal_bases()) + tuple(extra_bases)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.refusals: Counter[str] = Counter()
        self.bytes_scanned: Counter[str] = Counter()
        self.conversations_scanned = 0
        self.messages_not_scanned = 0

    def basis_on(self, day: date) -> LegalBasis | None:
        return next((b for b in self.bases if b.covers(day)), None)

    def decide(self, conversation: Conversation, when: datetime | date | None = None, *,
               continuing: bool = False) -> ScanDecision:
        """May this conversation be scanned now (or ``when``)? Counts refusals.

        ``continuing``: new messages of a conversation already scanned (a stream, a later
        batch); a batch without text is then not a refusal.
        """
        when = self.clock() if when is None else when
        day = when.date() if isinstance(when, datetime) else when
        basis = self.basis_on(day)
        reason = None if basis else "no_legal_basis"
        if reason is None:
            reason = refusal_reason(conversation)
            if reason == "no_text" and continuing:
                reason = None
        if reason:
            self.refusals[reason] += 1
            return ScanDecision(False, reason)
        assert basis is not None
        return ScanDecision(True, basis=basis.id)

    def record_scan(self, region: str, n_bytes: int, n_not_scanned: int, *,
                    conversations: int = 1) -> None:
        """Count scanned bytes and conversations (the text boundary reports the bytes; a
        stream counts a conversation once, when it opens)."""
        self.conversations_scanned += conversations
        self.bytes_scanned[region] += n_bytes
        self.messages_not_scanned += n_not_scanned

    def counters(self) -> Mapping[str, int]:
        """The counters, for the annual report (``classifier.guard.record_scan``)."""
        out = {f"refused.{k}": v for k, v in self.refusals.items()}
        out |= {f"bytes_scanned.{k}": v for k, v in self.bytes_scanned.items()}
        out["conversations_scanned"] = self.conversations_scanned
        out["messages_not_scanned"] = self.messages_not_scanned
        return out

    def reset(self) -> None:
        """Forget the counters (after they were persisted)."""
        self.refusals.clear()
        self.bytes_scanned.clear()
        self.conversations_scanned = self.messages_not_scanned = 0
