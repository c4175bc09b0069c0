"""Per-conversation incremental state: numbers only, constant size, mergeable.

The state accumulates, per participant, what the extractor returned (indicator counts,
age evidence) and traffic data (message counts, timing, replies). It never sees text.
Its size does not grow with the length of the conversation; a one-to-one conversation
serialises to well under 1 KB (see ``benchmarks/``).

Merging two partial states of one conversation is exact for every counter, sum, minimum
and maximum. The order-dependent traffic figures (turns, reply latency) are exact when
the partial states cover consecutive stretches of time (incremental batches); for
interleaved partial states they leave out the one reply at the seam and
:attr:`ConversationState.order_exact` becomes False.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ._errors import ConfigError, Errors, StateError
from ._text import MessageColumns
from .indicators import AgeKind, Catalogue, MessageIndicators

__all__ = ["ConversationState", "ParticipantState", "merge_states"]

OVERFLOW_ID = "*"
NEVER = math.inf
_NIGHT_HOURS = frozenset({22, 23, 0, 1, 2, 3, 4, 5})
_COUNT_MAX = np.iinfo(np.uint16).max
_NIGHT_TABLE = np.isin(np.arange(24), sorted(_NIGHT_HOURS))


def _epoch(ts: datetime | float | int, index: int = 0) -> float:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            raise StateError(Errors.E303.format(index=index, type_name="naive datetime"))
        return ts.timestamp()
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    raise StateError(Errors.E303.format(index=index, type_name=type(ts).__name__))


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
        var = max(self.total_sq / self.n - self.mean ** 2, 0.0)
        return math.sqrt(var)

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
    n_chars: int = 0
    n_night: int = 0
    n_replies: int = 0
    reply_latency_sum: float = 0.0
    first_ts: float = math.inf
    last_ts: float = -math.inf
    disclosed_age: AgeStats = field(default_factory=AgeStats)
    school_age: AgeStats = field(default_factory=AgeStats)

    @classmethod
    def empty(cls, n_indicators: int, n_categories: int) -> ParticipantState:
        return cls(np.zeros(n_indicators, dtype=np.uint32),
                   np.full(n_categories, NEVER, dtype=np.float64))

    def merge(self, other: ParticipantState) -> ParticipantState:
        return ParticipantState(
            counts=self.counts + other.counts,
            first_seen=np.minimum(self.first_seen, other.first_seen),
            n_messages=self.n_messages + other.n_messages,
            n_scanned=self.n_scanned + other.n_scanned,
            n_not_scanned=self.n_not_scanned + other.n_not_scanned,
            n_with_indicators=self.n_with_indicators + other.n_with_indicators,
            n_chars=self.n_chars + other.n_chars,
            n_night=self.n_night + other.n_night,
            n_replies=self.n_replies + other.n_replies,
            reply_latency_sum=self.reply_latency_sum + other.reply_latency_sum,
            first_ts=min(self.first_ts, other.first_ts),
            last_ts=max(self.last_ts, other.last_ts),
            disclosed_age=self.disclosed_age.merge(other.disclosed_age),
            school_age=self.school_age.merge(other.school_age),
        )

    def _scalars(self) -> tuple[float, ...]:
        return (float(self.n_messages), float(self.n_scanned), float(self.n_not_scanned),
                float(self.n_with_indicators), float(self.n_chars), float(self.n_night),
                float(self.n_replies),
                self.reply_latency_sum, self.first_ts, self.last_ts,
                *self.disclosed_age.values(), *self.school_age.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParticipantState):
            return NotImplemented
        return (np.array_equal(self.counts, other.counts)
                and np.array_equal(self.first_seen, other.first_seen)
                and np.allclose(self._scalars(), other._scalars(), rtol=1e-12, atol=1e-9,
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
    >>> from classifier.indicators import IndicatorExtractor
    >>> ext = IndicatorExtractor()
    >>> state = ConversationState("c-1", ext.catalogue)
    >>> state.update("u-1", 1_772_000_000.0, ext.extract("are your parents home"))
    >>> state.update("u-2", 1_772_000_060.0, ext.extract("no"))
    >>> state.n_messages, state.participants["u-2"].n_replies
    (2, 1)
    """

    def __init__(self, conversation_id: str, catalogue: Catalogue, *,
                 max_participants: int = 8) -> None:
        self.conversation_id = conversation_id
        self.catalogue_sha256 = catalogue.sha256
        self.n_indicators = len(catalogue.indicators)
        self.n_categories = len(catalogue.categories)
        cat_index = {name: i for i, name in enumerate(catalogue.categories)}
        self._indicator_category = np.array(
            [cat_index[ind.category] for ind in catalogue.indicators], dtype=np.int64)
        self._category_onehot = np.zeros((self.n_indicators, self.n_categories), dtype=bool)
        self._category_onehot[np.arange(self.n_indicators), self._indicator_category] = True
        if max_participants < 2:
            raise ConfigError(Errors.E005.format(name="max_participants",
                                                 expected="at least 2", got=max_participants))
        self.max_participants = max_participants
        self.participants: dict[str, ParticipantState] = {}
        self.first_ts = math.inf
        self.last_ts = -math.inf
        self.first_sender: str | None = None
        self.last_sender: str | None = None
        self.n_turns = 0
        self.order_exact = True

    # -- updating -------------------------------------------------------------------
    def _slot(self, sender: str) -> ParticipantState:
        state = self.participants.get(sender)
        if state is None:
            if len(self.participants) >= self.max_participants - 1:
                sender = OVERFLOW_ID
                state = self.participants.get(sender)
            if state is None:
                state = ParticipantState.empty(self.n_indicators, self.n_categories)
                self.participants[sender] = state
        return state

    def update(self, sender: str, ts: datetime | float, indicators: MessageIndicators | None,
               *, n_chars: int = 0, scanned: bool = True) -> None:
        """Add one message, in time order.

        Parameters
        ----------
        sender : str
        ts : datetime (timezone-aware) or epoch seconds
        indicators : MessageIndicators or None
            The extractor's output; None for a message that was not scanned.
        n_chars : int
            Length of the text (a traffic figure; the text itself never comes here).
        scanned : bool
            False for non-text modalities, which are counted but never scanned.
        """
        t = _epoch(ts, self.n_messages)
        p = self._slot(sender)
        p.n_messages += 1
        p.n_chars += n_chars
        if scanned and indicators is not None:
            p.n_scanned += 1
            self._add_indicators(p, indicators, t)
        else:
            p.n_not_scanned += 1
        if time.gmtime(t).tm_hour in _NIGHT_HOURS:  # UTC; providers may shift ts
            p.n_night += 1
        p.first_ts = min(p.first_ts, t)
        p.last_ts = max(p.last_ts, t)
        if self.last_sender is not None and sender != self.last_sender:
            self.n_turns += 1
            p.n_replies += 1
            p.reply_latency_sum += max(t - self.last_ts, 0.0)
        if self.first_sender is None:
            self.first_sender, self.first_ts = sender, t
        self.last_sender, self.last_ts = sender, max(self.last_ts, t)

    def _add_indicators(self, p: ParticipantState, ind: MessageIndicators, t: float) -> None:
        counts = ind.counts
        if counts.any():
            p.n_with_indicators += 1
            p.counts += counts
            hit_categories = self._indicator_category[np.flatnonzero(counts)]
            p.first_seen[hit_categories] = np.minimum(p.first_seen[hit_categories], t)
        for ev in ind.ages:
            (p.disclosed_age if ev.kind == AgeKind.DISCLOSED else p.school_age).add(ev.low, ev.high)

    def add(self, columns: MessageColumns) -> None:
        """Add a run of messages (the text boundary's :class:`MessageColumns`), in time
        order; the one way messages enter the state."""
        if len(columns) == 1:
            self._add_one(columns)
        else:
            self.update_many(columns.senders, columns.times, columns.counts, columns.ages,
                             columns.n_chars, columns.scanned)

    def _add_one(self, columns: MessageColumns) -> None:
        scanned = bool(columns.scanned[0])
        indicators = (MessageIndicators(columns.counts[0], columns.ages.get(0, ()))
                      if scanned else None)
        self.update(columns.senders[0], float(columns.times[0]), indicators,
                    n_chars=int(columns.n_chars[0]), scanned=scanned)

    def replay(self, columns: MessageColumns) -> Iterator[int]:
        """Add messages one at a time, yielding each position once it is added (what a
        stream scorer sees after every message)."""
        for i in range(len(columns)):
            self._add_one(columns.slice(i, i + 1))
            yield i

    def update_many(self, senders: Sequence[str], times: np.ndarray, counts: np.ndarray,
                    ages: dict[int, tuple[Any, ...]], n_chars: np.ndarray,
                    scanned: np.ndarray) -> None:
        """Add a run of messages at once, vectorised; equal to :meth:`update` per message.

        ``counts`` has one row per message (ignored where ``scanned`` is False); ``ages``
        maps a message's position to its age evidence.
        """
        n = len(senders)
        if n == 0:
            return
        raw_of: dict[str, int] = {}
        slots: list[ParticipantState] = []
        slot_of_raw: list[int] = []
        raw = np.empty(n, dtype=np.int64)
        for i, sender in enumerate(senders):
            r = raw_of.get(sender)
            if r is None:
                r = raw_of[sender] = len(raw_of)
                p = self._slot(sender)  # first sight, as update() would assign it
                k = next((j for j, q in enumerate(slots) if q is p), len(slots))
                if k == len(slots):
                    slots.append(p)
                slot_of_raw.append(k)
            raw[i] = r
        slot = np.asarray(slot_of_raw, dtype=np.int64)[raw]
        prev = np.empty(n, dtype=np.int64)
        prev[1:] = raw[:-1]
        prev[0] = (-1 if self.last_sender is None
                   else raw_of.get(self.last_sender, -2))
        switch = (prev != -1) & (raw != prev)
        last_before = np.maximum.accumulate(np.concatenate(([self.last_ts], times)))[:-1]
        with np.errstate(invalid="ignore"):
            latency = np.maximum(times - last_before, 0.0)
        night = _NIGHT_TABLE[(np.floor(times / 3600.0) % 24).astype(np.int64)]
        hit = scanned & counts.any(axis=1)
        n_slots = len(slots)
        member = slot[:, None] == np.arange(n_slots)  # (n, slots)
        # per-slot sums of six per-message figures in one product (exact: small integers)
        figures = np.column_stack((np.ones(n), scanned, n_chars, night, hit, switch))
        sums = (member.T.astype(np.float64) @ figures).astype(np.int64).tolist()
        firsts = np.where(member, times[:, None], np.inf).min(axis=0).tolist()
        lasts = np.where(member, times[:, None], -np.inf).max(axis=0).tolist()
        for k, p in enumerate(slots):
            n_msg, n_scan, n_char, n_night, n_hit, n_rep = sums[k]
            p.n_messages += n_msg
            p.n_chars += n_char
            p.n_scanned += n_scan
            p.n_not_scanned += n_msg - n_scan
            p.n_night += n_night
            p.first_ts = min(p.first_ts, firsts[k])
            p.last_ts = max(p.last_ts, lasts[k])
            mine = member[:, k] if n_slots > 1 else None
            if n_hit:
                hits = hit if mine is None else hit & mine
                c = counts[hits]
                p.n_with_indicators += n_hit
                p.counts += c.sum(axis=0, dtype=np.uint32)
                in_category = (c > 0) @ self._category_onehot
                first = np.where(in_category, times[hits][:, None], np.inf).min(axis=0)
                p.first_seen = np.minimum(p.first_seen, first)
            if n_rep:
                rep = switch if mine is None else switch & mine
                p.n_replies += n_rep
                # in message order, as update() adds them (same floating-point result)
                p.reply_latency_sum = float(np.cumsum(
                    np.concatenate(([p.reply_latency_sum], latency[rep])))[-1])
        for i in sorted(ages):
            if scanned[i]:
                p = slots[slot[i]]
                for ev in ages[i]:
                    stats = p.disclosed_age if ev.kind == AgeKind.DISCLOSED else p.school_age
                    stats.add(ev.low, ev.high)
        self.n_turns += int(switch.sum())
        if self.first_sender is None:
            self.first_sender, self.first_ts = senders[0], float(times[0])
        self.last_sender = senders[-1]
        self.last_ts = max(self.last_ts, float(times.max()))

    # -- reading --------------------------------------------------------------------
    @property
    def n_messages(self) -> int:
        return sum(p.n_messages for p in self.participants.values())

    # -- merging --------------------------------------------------------------------
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
        out.participants = {}
        for pid in list(early.participants) + [k for k in late.participants
                                                if k not in early.participants]:
            a, b = early.participants.get(pid), late.participants.get(pid)
            if a is not None and b is not None:
                out.participants[pid] = a.merge(b)
            else:
                only = a if a is not None else b
                assert only is not None
                out.participants[pid] = _copy_p(only)
        out.n_turns = early.n_turns + late.n_turns
        out.order_exact = early.order_exact and late.order_exact
        if early.last_ts <= late.first_ts:
            if late.first_sender != early.last_sender:
                out.n_turns += 1
                seam = out.participants[late.first_sender]  # type: ignore[index]
                seam.n_replies += 1
                seam.reply_latency_sum += late.first_ts - early.last_ts
            out.last_sender, out.last_ts = late.last_sender, late.last_ts
        else:
            out.order_exact = False
            if late.last_ts >= early.last_ts:
                out.last_sender, out.last_ts = late.last_sender, late.last_ts
        return out

    def copy(self) -> ConversationState:
        new = object.__new__(ConversationState)
        new.__dict__.update(self.__dict__)
        new.participants = {k: _copy_p(v) for k, v in self.participants.items()}
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConversationState):
            return NotImplemented
        return (self.conversation_id == other.conversation_id
                and self.catalogue_sha256 == other.catalogue_sha256
                and self.participants == other.participants
                and (self.first_ts, self.last_ts, self.first_sender, self.last_sender,
                     self.n_turns) == (other.first_ts, other.last_ts, other.first_sender,
                                       other.last_sender, other.n_turns))

    def __repr__(self) -> str:
        return (f"ConversationState(conversation_id={self.conversation_id!r}, "
                f"participants={len(self.participants)}, messages={self.n_messages})")

    # -- serialising ----------------------------------------------------------------
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


def _copy_p(p: ParticipantState) -> ParticipantState:
    return ParticipantState(**{**p.__dict__, "counts": p.counts.copy(),
                               "first_seen": p.first_seen.copy(),
                               "disclosed_age": AgeStats(**p.disclosed_age.__dict__),
                               "school_age": AgeStats(**p.school_age.__dict__)})


def merge_states(states: Iterable[ConversationState]) -> ConversationState:
    """Merge several partial states of one conversation."""
    it = iter(states)
    out = next(it)
    for s in it:
        out = out.merge(s)
    return out
