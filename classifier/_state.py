"""Per-conversation incremental state: numbers only, bounded size, mergeable.

The state accumulates what the text boundary returned (indicator counts, age evidence,
character counts, times, who sent what); it never sees text. Per participant: counts per
indicator, the first time each category appeared, age evidence (stated ages, school-year
bands, corrections and retractions), traffic counts. Per **ordered pair** of participants
(A towards B): how many of A's messages went to B and how many of those carried each
category. A message goes to the participant who spoke last before it (in a one-to-one
conversation, the other party; in a group, whom the sender answers), which bounds the
directed counts by the traffic between the two.

A bare number ("13", "only 11") is an age only when it answers someone else's age
question asked at most four messages before: the state keeps, for that, how many messages
ago an age was last asked and by whom (numbers, never the message).

Merging two partial states of one conversation is exact for every counter, sum, minimum
and maximum. The order-dependent figures (turns, which message answers which) are exact
when the parts cover consecutive stretches of time (incremental batches); otherwise
:attr:`ConversationState.order_exact` becomes False. The binary form is in
:mod:`classifier._codec`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ._errors import ConfigError, Errors, StateError
from ._text import MessageColumns
from .indicators import AgeKind, Catalogue, MessageIndicators

__all__ = ["NOBODY", "OVERFLOW_ID", "AgeStats", "ConversationState", "ParticipantState",
           "merge_states"]

OVERFLOW_ID = "*"
NOBODY = ""  # the addressee of a message sent before anyone else spoke
NEVER = math.inf
AGE_ANSWER_WINDOW = 4  # a bare number answers an age question asked this many messages back
_FAR = 255


def _epoch(ts: datetime | float | int, state: ConversationState | None = None) -> float:
    """Epoch seconds of a message's time (an error names its index in ``state``, counted
    only then)."""
    if isinstance(ts, float):
        return float(ts)
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise StateError(Errors.E303.format(index=state.n_messages if state else 0,
                                                type_name="naive datetime"))
        return ts.timestamp()
    if isinstance(ts, int) and not isinstance(ts, bool):
        return float(ts)
    raise StateError(Errors.E303.format(index=state.n_messages if state else 0,
                                        type_name=type(ts).__name__))


_LAYOUTS: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _layout(catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each indicator's category, the indicator-to-category one-hot matrix and the
    hand-written age questions (a learned guess never turns "6" into an age), computed
    once per catalogue and shared, read-only, by its states."""
    key = (catalogue.sha256, len(catalogue.indicators), len(catalogue.categories))
    layout = _LAYOUTS.get(key)
    if layout is None:
        cats = tuple(catalogue.categories)
        category = np.array([cats.index(ind.category) for ind in catalogue.indicators],
                            dtype=np.int64)
        onehot = np.zeros((len(category), len(cats)), dtype=bool)
        onehot[np.arange(len(category)), category] = True
        questions = np.array([k for k, ind in enumerate(catalogue.indicators)
                              if ind.category == "age_question" and not ind.recogniser],
                             dtype=np.int64)
        for array in (category, onehot, questions):
            array.flags.writeable = False
        layout = _LAYOUTS[key] = (category, onehot, questions)
    return layout


@dataclass
class AgeStats:
    """Mergeable moments of age intervals (midpoints) with their overall range."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, low: float, high: float) -> None:
        mid = (low + high) / 2.0
        self.n += 1
        self.total += mid
        self.total_sq += mid * mid
        self.low = min(self.low, low)
        self.high = max(self.high, high)

    def merge(self, other: AgeStats) -> AgeStats:
        return AgeStats(self.n + other.n, self.total + other.total,
                        self.total_sq + other.total_sq, min(self.low, other.low),
                        max(self.high, other.high))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        if self.n < 2:
            return 0.0 if self.n else math.nan
        return math.sqrt(max(self.total_sq / self.n - self.mean ** 2, 0.0))

    def values(self) -> tuple[float, ...]:
        return (float(self.n), self.total, self.total_sq, self.low, self.high)


@dataclass
class ParticipantState:
    """What one participant has sent, as numbers."""

    counts: np.ndarray  # uint32 per indicator
    first_seen: np.ndarray  # float64 per category: epoch seconds of first occurrence
    n_messages: int = 0
    n_scanned: int = 0  # text messages passed to the extractor
    n_not_scanned: int = 0  # non-text modality: never scanned, only counted
    n_with_indicators: int = 0  # scanned messages that carried at least one indicator
    first_ts: float = math.inf
    last_ts: float = -math.inf
    disclosed_age: AgeStats = field(default_factory=AgeStats)  # stated, answered, turning
    school_age: AgeStats = field(default_factory=AgeStats)
    corrected_age: float = math.nan  # the latest "im actually N" (NaN: none)
    corrected_at: float = -math.inf  # when it was said (merging keeps the latest)
    n_retractions: int = 0  # "im not 17": an earlier claim withdrawn

    @classmethod
    def empty(cls, n_indicators: int, n_categories: int) -> ParticipantState:
        return cls(np.zeros(n_indicators, dtype=np.uint32),
                   np.full(n_categories, NEVER, dtype=np.float64))

    def merge(self, other: ParticipantState) -> ParticipantState:
        later = other if other.corrected_at > self.corrected_at else self
        return ParticipantState(
            counts=self.counts + other.counts,
            first_seen=np.minimum(self.first_seen, other.first_seen),
            n_messages=self.n_messages + other.n_messages,
            n_scanned=self.n_scanned + other.n_scanned,
            n_not_scanned=self.n_not_scanned + other.n_not_scanned,
            n_with_indicators=self.n_with_indicators + other.n_with_indicators,
            first_ts=min(self.first_ts, other.first_ts),
            last_ts=max(self.last_ts, other.last_ts),
            disclosed_age=self.disclosed_age.merge(other.disclosed_age),
            school_age=self.school_age.merge(other.school_age),
            corrected_age=later.corrected_age, corrected_at=later.corrected_at,
            n_retractions=self.n_retractions + other.n_retractions,
        )

    def copy(self) -> ParticipantState:
        return ParticipantState(**{**self.__dict__, "counts": self.counts.copy(),
                                   "first_seen": self.first_seen.copy(),
                                   "disclosed_age": AgeStats(**self.disclosed_age.__dict__),
                                   "school_age": AgeStats(**self.school_age.__dict__)})

    def scalars(self) -> tuple[float, ...]:
        return (float(self.n_messages), float(self.n_scanned), float(self.n_not_scanned),
                float(self.n_with_indicators),
                self.first_ts, self.last_ts, *self.disclosed_age.values(),
                *self.school_age.values(), self.corrected_age, self.corrected_at,
                float(self.n_retractions))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParticipantState):
            return NotImplemented
        return (np.array_equal(self.counts, other.counts)
                and np.array_equal(self.first_seen, other.first_seen)
                and np.allclose(self.scalars(), other.scalars(), rtol=1e-12, atol=1e-9,
                                equal_nan=True))


class ConversationState:
    """Incremental, mergeable, serialisable numeric state of one conversation.

    Parameters
    ----------
    conversation_id : str
    catalogue : Catalogue
        Fixes the length of the count vector and the category order.
    max_participants : int, default 8
        Slots at most; the last one pools every further sender (id ``"*"``), so that the
        state stays bounded in group chats.

    Examples
    --------
    >>> from classifier import IndicatorExtractor
    >>> ext = IndicatorExtractor()
    >>> state = ConversationState("c-1", ext.catalogue)
    >>> state.update("u-1", 1_772_000_000.0, ext.extract("how old r u"))
    >>> state.update("u-2", 1_772_000_060.0, ext.extract("13"))  # answers the question
    >>> state.n_messages, state.participants["u-2"].disclosed_age.mean
    (2, 13.0)
    """

    def __init__(self, conversation_id: str, catalogue: Catalogue, *,
                 max_participants: int = 8) -> None:
        if max_participants < 2:
            raise ConfigError(Errors.E005.format(name="max_participants",
                                                 expected="at least 2", got=max_participants))
        self.conversation_id = conversation_id
        self.catalogue_sha256 = catalogue.sha256
        self.n_indicators = len(catalogue.indicators)
        self.n_categories = len(catalogue.categories)
        self._indicator_category, self._onehot, self._aq_indicators = _layout(catalogue)
        self.max_participants = max_participants
        self.participants: dict[str, ParticipantState] = {}
        # (sender, addressee) -> messages per category, then all messages, uint32
        self.pairs: dict[tuple[str, str], np.ndarray] = {}
        self.first_ts = math.inf
        self.last_ts = -math.inf
        self.first_sender: str | None = None
        self.last_sender: str | None = None  # the current turn's sender
        self.prev_sender: str | None = None  # the previous turn's sender
        self.since_aq = _FAR  # messages since someone last asked an age (capped)
        self.aq_by: str | None = None  # who asked
        self.n_turns = 0
        self.order_exact = True

    # -- updating ----------------------------------------------------------------------
    def _key(self, sender: str) -> str:
        """The slot a sender is counted in (beyond ``max_participants``: the pool)."""
        if sender in self.participants:
            return sender
        if len(self.participants) >= self.max_participants - 1:
            sender = OVERFLOW_ID
        if sender not in self.participants:
            self.participants[sender] = ParticipantState.empty(self.n_indicators,
                                                               self.n_categories)
        return sender

    def _pair(self, sender: str, addressee: str) -> np.ndarray:
        key = (sender, addressee)
        row = self.pairs.get(key)
        if row is None:
            row = self.pairs[key] = np.zeros(self.n_categories + 1, dtype=np.uint32)
        return row

    def update(self, sender: str, ts: datetime | float, indicators: MessageIndicators | None,
               *, scanned: bool = True) -> None:
        """Add one message, in time order (see :meth:`add` for many).

        Parameters
        ----------
        sender : str
        ts : datetime (timezone-aware) or epoch seconds
        indicators : MessageIndicators or None
            The extractor's output; None for a message that was not scanned.
        scanned : bool
            False for non-text modalities, which are counted but never scanned.
        """
        self._update(sender, _epoch(ts, self), indicators.counts if scanned and indicators
                     is not None else None, indicators.ages if indicators is not None else ())

    def _update(self, sender: str, t: float, counts: np.ndarray | None,
                ages: Sequence[Any]) -> None:
        """:meth:`update` of a message at epoch seconds ``t`` with its indicator counts
        (None: not scanned) and age evidence."""
        key = self._key(sender)
        p = self.participants[key]
        continuing = key == self.last_sender
        addressee = (self.prev_sender if continuing else self.last_sender) or NOBODY
        answers_aq = self.since_aq <= AGE_ANSWER_WINDOW and self.aq_by not in (None, key)
        p.n_messages += 1
        aq = False
        pair = self._pair(key, addressee)
        pair[-1] += 1
        if counts is not None:
            p.n_scanned += 1
            if np.count_nonzero(counts):  # (cheaper than counts.any() on one row)
                p.n_with_indicators += 1
                p.counts += counts
                hit = np.unique(self._indicator_category[np.flatnonzero(counts)])
                p.first_seen[hit] = np.minimum(p.first_seen[hit], t)
                pair[hit] += 1
                aq = bool(counts[self._aq_indicators].any())
            for ev in ages:
                _add_age(p, ev, t, answers_aq)
        else:
            p.n_not_scanned += 1
        p.first_ts = min(p.first_ts, t)
        p.last_ts = max(p.last_ts, t)
        if self.first_sender is None:
            self.first_sender, self.first_ts = key, t
        if aq:
            self.since_aq, self.aq_by = 0, key
        else:
            self.since_aq = min(self.since_aq + 1, _FAR)
        if not continuing:
            if self.last_sender is not None:
                self.n_turns += 1
            self.prev_sender, self.last_sender = self.last_sender, key
        self.last_ts = max(self.last_ts, t)

    def add(self, columns: MessageColumns) -> None:
        """Add a run of messages (the text boundary's :class:`MessageColumns`), in time
        order: the one way messages enter the state. Equal to :meth:`update` per message."""
        n = len(columns)
        if n == 0:
            return
        if n == 1:
            self._add_one(columns, 0)
        else:
            self._add_many(columns)

    def _add_one(self, columns: MessageColumns, i: int) -> None:
        scanned = columns.scanned[i]
        self._update(columns.senders[i], float(columns.times[i]),
                     columns.counts[i] if scanned else None,
                     columns.ages.get(i, ()) if scanned else ())

    def replay(self, columns: MessageColumns) -> Iterator[int]:
        """Add messages one at a time, yielding each position once it is added (what a
        stream scorer sees after every message)."""
        for i in range(len(columns)):
            self._add_one(columns, i)
            yield i

    def _add_many(self, columns: MessageColumns) -> None:
        """Vectorised :meth:`update` over a run of messages (same result).

        The common message carries no indicator: the run's counters, times and turns are
        summed in plain Python, and only the few messages with indicators touch the
        per-indicator arrays (integer sums and minima: the same numbers in any order)."""
        senders, counts, ages = columns.senders, columns.counts, columns.ages
        times = np.asarray(columns.times, dtype=np.float64).tolist()
        scanned = np.asarray(columns.scanned, dtype=bool)
        hit_rows = np.flatnonzero(scanned & counts.any(axis=1)).tolist()
        aq_rows: set[int] = set()
        if hit_rows:
            aq_rows = set(np.flatnonzero(
                scanned & (counts[:, self._aq_indicators] > 0).any(axis=1)).tolist())
        scan = scanned.tolist()
        keys = [self._key(s) for s in senders]
        participants, pair = self.participants, self._pair
        last, prev = self.last_sender, self.prev_sender
        since, asker = self.since_aq, self.aq_by
        turns = 0
        answers: dict[int, bool] = {}
        pair_rows: dict[tuple[str, str], list[int]] = {}  # pair -> its messages' positions
        for i, key in enumerate(keys):
            if i in ages:
                answers[i] = since <= AGE_ANSWER_WINDOW and asker not in (None, key)
            if i in aq_rows:
                since, asker = 0, key
            elif since < _FAR:
                since += 1
            if key == last:
                addressee = prev or NOBODY
            else:
                addressee = last or NOBODY
                if last is not None:
                    turns += 1
                prev, last = last, key
            rows = pair_rows.get((key, addressee))
            if rows is None:
                pair_rows[(key, addressee)] = [i]
            else:
                rows.append(i)
        # per participant: messages, scanned, first and last time
        for key in dict.fromkeys(keys):
            mine = [i for i, k in enumerate(keys) if k == key]
            p = participants[key]
            n_scan = sum(1 for i in mine if scan[i])
            p.n_messages += len(mine)
            p.n_scanned += n_scan
            p.n_not_scanned += len(mine) - n_scan
            mine_times = [times[i] for i in mine]
            p.first_ts = min(p.first_ts, min(mine_times))
            p.last_ts = max(p.last_ts, max(mine_times))
        # the messages with indicators: their counts, categories and first times
        hit_cats: dict[int, np.ndarray] = {}
        for i in hit_rows:
            p = participants[keys[i]]
            row = counts[i]
            cats = np.unique(self._indicator_category[np.flatnonzero(row)])
            hit_cats[i] = cats
            p.n_with_indicators += 1
            p.counts += row
            p.first_seen[cats] = np.minimum(p.first_seen[cats], times[i])
        # per ordered pair: messages, and messages per category
        for pair_key, rows in pair_rows.items():
            out = pair(*pair_key)
            out[-1] += len(rows)
            for i in rows:
                cats = hit_cats.get(i)
                if cats is not None:
                    out[cats] += 1
        for i in sorted(ages):
            if scan[i]:
                p = participants[keys[i]]
                for ev in ages[i]:
                    _add_age(p, ev, times[i], answers[i])
        if self.first_sender is None:
            self.first_sender, self.first_ts = keys[0], times[0]
        self.last_sender, self.prev_sender = last, prev
        self.since_aq, self.aq_by = since, asker
        self.n_turns += turns
        self.last_ts = max(self.last_ts, max(times))

    # -- reading -----------------------------------------------------------------------
    @property
    def n_messages(self) -> int:
        return sum(p.n_messages for p in self.participants.values())

    def directed(self, sender: str, addressee: str) -> np.ndarray:
        """Messages per category from ``sender`` to ``addressee`` (and, last, all of them),
        counting what the sender said before anyone else spoke as said to each other."""
        row = self.pairs.get((sender, addressee))
        out = np.zeros(self.n_categories + 1, dtype=np.uint32) if row is None else row.copy()
        lead = self.pairs.get((sender, NOBODY))
        if lead is not None and addressee != NOBODY:
            out += lead
        return out

    # -- merging -----------------------------------------------------------------------
    def merge(self, other: ConversationState) -> ConversationState:
        """Combine two partial states of the same conversation (see module docs)."""
        if other.conversation_id != self.conversation_id:
            raise StateError(Errors.E300)
        if other.catalogue_sha256 != self.catalogue_sha256:
            raise StateError(Errors.E302.format(got=other.catalogue_sha256[:12],
                                                expected=self.catalogue_sha256[:12]))
        if not other.participants:
            return self.copy()
        if not self.participants:
            return other.copy()
        early, late = (self, other) if self.first_ts <= other.first_ts else (other, self)
        out = early.copy()
        for pid, p in late.participants.items():
            out.participants[pid] = (out.participants[pid].merge(p) if pid in out.participants
                                     else p.copy())
        consecutive = early.last_ts <= late.first_ts
        for (a, b), row in late.pairs.items():
            if b == NOBODY and consecutive and early.last_sender is not None:
                # the late part's opening messages went to whoever spoke last before them
                b = early.last_sender if a != early.last_sender else (early.prev_sender
                                                                       or NOBODY)
            out._pair(a, b)[:] += row
        out.n_turns = early.n_turns + late.n_turns
        out.order_exact = early.order_exact and late.order_exact
        if consecutive:
            if late.first_sender != early.last_sender:
                out.n_turns += 1
            out.last_sender, out.prev_sender = late.last_sender, late.prev_sender
            if late.aq_by is not None:
                out.since_aq, out.aq_by = late.since_aq, late.aq_by
            else:
                out.since_aq = min(early.since_aq + late.n_messages, _FAR)
            if late.prev_sender is None:  # the late part was one turn
                out.prev_sender = (early.last_sender if late.first_sender != early.last_sender
                                   else early.prev_sender)
            out.last_ts = late.last_ts
        else:
            out.order_exact = False
            if late.last_ts >= early.last_ts:
                out.last_sender, out.prev_sender = late.last_sender, late.prev_sender
                if late.aq_by is not None:
                    out.since_aq, out.aq_by = late.since_aq, late.aq_by
                out.last_ts = late.last_ts
        return out

    def copy(self) -> ConversationState:
        new = object.__new__(ConversationState)
        new.__dict__.update(self.__dict__)
        new.participants = {k: v.copy() for k, v in self.participants.items()}
        new.pairs = {k: v.copy() for k, v in self.pairs.items()}
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConversationState):
            return NotImplemented
        pairs_equal = (self.pairs.keys() == other.pairs.keys()
                       and all(np.array_equal(v, other.pairs[k]) for k, v in self.pairs.items()))
        return (self.conversation_id == other.conversation_id
                and self.catalogue_sha256 == other.catalogue_sha256
                and self.participants == other.participants and pairs_equal
                and (self.first_ts, self.last_ts, self.first_sender, self.last_sender,
                     self.prev_sender, self.since_aq, self.aq_by, self.n_turns)
                == (other.first_ts, other.last_ts, other.first_sender, other.last_sender,
                    other.prev_sender, other.since_aq, other.aq_by, other.n_turns))

    def __repr__(self) -> str:
        return (f"ConversationState(conversation_id={self.conversation_id!r}, "
                f"participants={len(self.participants)}, messages={self.n_messages})")

    # -- serialising -------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Compact binary form (numbers and ids only; :mod:`classifier._codec`)."""
        from ._codec import encode_state

        return encode_state(self)

    @classmethod
    def from_bytes(cls, data: bytes, catalogue: Catalogue) -> ConversationState:
        """Restore a state written by :meth:`to_bytes` (E301, E302 when it cannot be)."""
        from ._codec import decode_state

        return decode_state(data, catalogue)

    def __reduce__(self) -> Any:
        # pickles as its compact numeric form; restores against the bundled catalogue
        from ._codec import restore_state

        return (restore_state, (self.to_bytes(), self.catalogue_sha256))


def _add_age(p: ParticipantState, ev: Any, t: float, answers_age_question: bool) -> None:
    kind = ev.kind
    if kind == AgeKind.DISCLOSED:
        p.disclosed_age.add(ev.low, ev.high)
    elif kind == AgeKind.SCHOOL:
        p.school_age.add(ev.low, ev.high)
    elif kind == AgeKind.CANDIDATE:
        if answers_age_question:  # "13" in reply to someone's "how old r u"
            p.disclosed_age.add(ev.low, ev.high)
    elif kind == AgeKind.CORRECTION:
        p.disclosed_age.add(ev.low, ev.high)
        if t >= p.corrected_at:
            p.corrected_age, p.corrected_at = (ev.low + ev.high) / 2.0, t
    elif kind == AgeKind.RETRACTION:
        p.n_retractions += 1


def merge_states(states: Iterable[ConversationState]) -> ConversationState:
    """Merge several partial states of one conversation."""
    it = iter(states)
    out = next(it)
    for s in it:
        out = out.merge(s)
    return out

