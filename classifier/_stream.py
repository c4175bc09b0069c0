"""A bounded stream scorer: many conversations, a message at a time, numbers only kept.

Per open conversation it keeps the numeric :class:`ConversationState`, the declared
ages (with the provider's age assurance and relationship metadata, when given), the
message count and the index of the first flag. Memory is bounded: a
conversation idle longer than ``idle_timeout`` is evicted, and beyond ``max_open`` open
conversations the least recently active one is evicted. A flag is emitted once, at the
first message after which the score reaches the threshold. The numeric state can be
checkpointed to a file and restored (no text is ever in it). Every micro-batch goes
through the pipeline's stages: scope (the legal basis, end-to-end encryption, protected
participants), the text boundary, state, risk factors, model.
"""

from __future__ import annotations

import base64
import json
import math
import numbers
import os
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ._conversation import (
    Relationship,
    assurance_problem,
    parse_timestamp,
    relationship_problem,
)
from ._errors import ConfigError, Errors, StateError
from ._features import FactorContext
from ._message_rows import (
    RejectedRow,
    StreamMessage,
    check_stream_message,
    normal_declared_ages,
)
from ._pipeline import Pipeline
from ._state import ConversationState
from ._text import MessageColumns

__all__ = ["StreamFlag", "StreamMessage", "StreamScorer"]


@dataclass(frozen=True)
class StreamFlag:
    """Emitted once per conversation, when its score first reaches the threshold."""

    conversation_id: str
    message_index: int
    score: float
    subject: str | None


@dataclass
class _Open:
    state: ConversationState
    declared: dict[str, int | None]
    n_messages: int = 0
    flagged_at: int | None = None
    last_seen: float = 0.0
    refused: str | None = None
    assurance: dict[str, str | None] | None = None
    relationship: Relationship | None = None

    def context(self) -> FactorContext | dict[str, int | None]:
        """What the factors may know besides the messages (the profile ages alone when
        the provider gave nothing more)."""
        if self.assurance is None and self.relationship is None:
            return self.declared
        rel = self.relationship or Relationship()
        return FactorContext(self.declared, dict(self.assurance or {}), rel.family_link,
                             rel.contact_age_days, rel.mutual_contacts)

    def learn(self, m: StreamMessage) -> bool:
        """Take the profile ages, age assurance and relationship a message carries;
        whether any of them changed."""
        changed = False
        if m.declared_ages and not m.declared_ages.items() <= self.declared.items():
            self.declared.update(normal_declared_ages(m.declared_ages))  # (checked: ints)
            changed = True
        if m.age_assurance and not m.age_assurance.items() <= (self.assurance or {}).items():
            self.assurance = {**(self.assurance or {}), **m.age_assurance}
            changed = True
        if m.relationship is not None and m.relationship != self.relationship:
            self.relationship = m.relationship
            changed = True
        return changed


class StreamScorer:
    """Scores interleaved messages of many conversations with bounded memory.

    Parameters
    ----------
    pipeline : Pipeline or Scorer, optional
        Default: a :class:`Pipeline` with the shipped model.
    idle_timeout : float, default 7 days
        Seconds without a message after which a conversation is evicted.
    max_open : int, default 100000
        Open conversations at most; the least recently active is evicted beyond it.
    skip_plain : bool, default True
        Run the model only after messages that changed the risk-relevant state (an
        indicator a risk factor reads: not a child- or adult-context one once its sender
        has counted the three the age estimate reads; age evidence, a new participant or
        pair, new profile ages). The risk
        factors are monotone so that any other message can only lower a score, so the
        flags are the same as scoring after every message (tested); ``False`` scores
        after every message.
    max_ahead : float or None, default 1 day
        A message dated more than this many seconds after the pipeline's clock (its scan
        policy's ``clock``) is rejected, field ``ts``; one accepted ahead of the clock
        moves the stream's time (which evicts idle conversations) only as far as the
        clock. The stream's time otherwise follows its messages, so that one from a wrong
        clock cannot make every open conversation idle. None accepts any time and lets
        the messages alone set the stream's time (replaying data dated ahead).

    Examples
    --------
    >>> from classifier import StreamScorer
    >>> stream = StreamScorer()
    >>> stream.add("c-1", "u-1", 1_790_000_000.0, "hi there") is None
    True
    """

    def __init__(self, pipeline: Pipeline | None = None, *, idle_timeout: float = 7 * 86400.0,
                 max_open: int = 100_000, skip_plain: bool = True,
                 max_ahead: float | None = 86400.0) -> None:
        if max_open < 1 or idle_timeout <= 0:
            raise ConfigError(Errors.E005.format(name="max_open and idle_timeout",
                                                 expected=">= 1 and > 0",
                                                 got=(max_open, idle_timeout)))
        if max_ahead is not None and (isinstance(max_ahead, bool)
                                      or not isinstance(max_ahead, numbers.Real)
                                      or not 0 <= max_ahead < math.inf):
            raise ConfigError(Errors.E005.format(name="max_ahead",
                                                 expected="seconds >= 0 or None",
                                                 got=type(max_ahead).__name__))
        if pipeline is None:
            pipeline = Pipeline()
        self.pipeline: Pipeline = getattr(pipeline, "pipeline", pipeline)  # a Scorer too
        self.idle_timeout = idle_timeout
        self.max_open = max_open
        self._open: OrderedDict[str, _Open] = OrderedDict()
        self.skip_plain = skip_plain
        self.max_ahead = max_ahead
        self.evicted = 0
        # messages after which the model did not run (fewer in micro-batches: after a
        # conversation's first crossing inside one, its flag is known only once the
        # micro-batch's single model call is done, so its later messages are scored)
        self.skipped = 0
        self.rejected: deque[RejectedRow] = deque(maxlen=10_000)  # the latest bad messages

    def __len__(self) -> int:
        return len(self._open)

    def add(self, conversation_id: str, sender: str, ts: datetime | float | str,
            text: str | None, *, declared_ages: Mapping[str, int | None] | None = None,
            age_assurance: Mapping[str, str | None] | None = None,
            relationship: Relationship | None = None,
            protected_roles: Mapping[str, str | None] | None = None,
            protected_role: str | None = None, e2ee: bool = False,
            region: str = "EU") -> StreamFlag | None:
        """Add one message (``text=None`` for a non-text message, counted, not scanned);
        the keywords are as :class:`StreamMessage`'s."""
        n_rejected = len(self.rejected)
        flags = self.add_many([StreamMessage(conversation_id, sender, ts, text,
                                             declared_ages, e2ee=e2ee,
                                             protected_role=protected_role, region=region,
                                             age_assurance=age_assurance,
                                             relationship=relationship,
                                             protected_roles=protected_roles)])
        if len(self.rejected) > n_rejected:  # one message: its caller hears at once
            raise StateError(Errors.E304.format(reason=self.rejected.pop().reason))
        return flags[0] if flags else None

    def add_many(self, messages: Sequence[StreamMessage]) -> list[StreamFlag]:
        """Add a micro-batch of messages in arrival order; returns the flags it raised.

        Equal to :meth:`add` one message at a time (a score after every message, the
        same evictions), but the texts are extracted in one batch and the scores come
        from one model call. A bad message (missing sender, a timestamp without a zone,
        text that is not a string, ...) is skipped and appended to :attr:`rejected`,
        naming its row in the micro-batch and the field; the good messages are scored.
        """
        pipeline = self.pipeline
        now = pipeline.policy.clock()
        clock = now.timestamp()
        latest = None if self.max_ahead is None else clock + self.max_ahead
        # format: a bad message is named and skipped, the others go on; so is a message
        # dated far after the clock (its time would evict every open conversation)
        good: list[StreamMessage] = []
        for i, m in enumerate(messages):
            bad = check_stream_message(m, i)
            if bad is None:
                if isinstance(m.ts, str):  # ISO 8601 with a zone (checked): a datetime now
                    m = replace(m, ts=parse_timestamp(m.ts))
                if latest is not None and _epoch(m.ts) > latest:
                    bad = RejectedRow(m.conversation_id, f"micro-batch row {i}", "ts",
                                      Errors.E211.format(
                                          field="ts", problem=f"more than {self.max_ahead:g} "
                                          "seconds after the scorer's clock"))
                else:
                    good.append(m)
            if bad is not None:
                self.rejected.append(bad)
        # scope: outside every legal basis nothing is scanned; an end-to-end-encrypted or
        # protected conversation is refused and its numbers dropped
        if pipeline.policy.basis_on(now.date()) is None:
            pipeline.policy.refusals["no_legal_basis"] += len(good)
            return []
        scan: list[StreamMessage] = []
        for m in good:
            conv = self._open.get(m.conversation_id)
            if m.e2ee or m.protected:
                reason = "e2ee" if m.e2ee else "protected_participant"
                if conv is None or conv.refused is None:
                    pipeline.policy.refusals[reason] += 1
                self._open.pop(m.conversation_id, None)
                self._open[m.conversation_id] = _Open(
                    ConversationState(m.conversation_id, pipeline.extractor.catalogue), {},
                    last_seen=_epoch(m.ts),
                    refused=reason)
                continue
            if conv is not None and conv.refused is not None:
                continue
            scan.append(m)
        # text boundary: the texts of the micro-batch in one extraction batch; its bytes
        # are metered per region, and each conversation counts once, when it opens
        columns = pipeline.boundary.extract_messages(scan)
        self._meter(scan, columns)
        mats: list[tuple[np.ndarray, list[tuple[str, str]]]] = []
        queued: list[tuple[_Open, str, int]] = []
        pair_matrix = pipeline.factors.pair_matrix
        opened, times, ages = self._open, columns.times.tolist(), columns.ages
        for i, m in enumerate(scan):
            t = times[i]
            cid = m.conversation_id
            conv = opened.get(cid)
            if conv is None:
                conv = opened[cid] = _Open(ConversationState(cid, pipeline.extractor.catalogue),
                                           {})
            else:
                opened.move_to_end(cid)  # most recently active last
            changed_ages = conv.learn(m)  # profile ages, age assurance, relationship
            state = conv.state
            shape = (len(state.participants), len(state.pairs))
            state.add(columns if len(scan) == 1 else columns.slice(i, i + 1))  # state
            index = conv.n_messages
            conv.n_messages += 1
            conv.last_seen = max(conv.last_seen, t)
            # the model runs only when the message changed what can raise a score: an
            # indicator a factor reads, age evidence, a new participant or pair, new
            # profile ages (a plain message can only lower it: the factors are monotone,
            # see _features)
            if conv.flagged_at is None and (
                    not self.skip_plain or index == 0 or changed_ages or i in ages
                    or shape != (len(state.participants), len(state.pairs))
                    or self._changes_factors(state, m.sender, columns.counts[i])):
                mats.append(pair_matrix(state, conv.context()))  # factors now
                queued.append((conv, cid, index))
            else:
                self.skipped += 1
            # a message ahead of the clock (within max_ahead) moves the stream's time no
            # further than the clock: it cannot make the others idle
            self.evict(now=t if latest is None else min(t, clock))
        flags: list[StreamFlag] = []
        # model: every queued prefix's pairs in one call
        for (conv, cid, index), (score, _, subject) in zip(
                queued, pipeline.score_matrices(mats) if mats else [], strict=True):
            if conv.flagged_at is None and score >= pipeline.threshold:
                conv.flagged_at = index
                flags.append(StreamFlag(cid, index, float(score), subject))
        return flags

    def _changes_factors(self, state: ConversationState, sender: str, row: np.ndarray) -> bool:
        """Whether a message's indicators (added to ``state`` already) can change a risk
        factor: not when it carries none, nor when all are context indicators past the age
        estimate's cap (:meth:`RiskFactorBuilder.inert`)."""
        if not np.count_nonzero(row):  # (cheaper than row.any() on one row)
            return False
        p = state.participants.get(sender)
        if p is None:  # pooled with other senders: score it
            return True
        factors = self.pipeline.factors
        child, adult = factors.context_counts(p)
        row_child, row_adult, _ = factors.context_of(row)
        return not factors.inert(row, child - row_child, adult - row_adult)

    def _meter(self, scan: Sequence[StreamMessage], columns: MessageColumns) -> None:
        """Count the bytes scanned, the messages not scanned and the conversations opened,
        per region (one record when the micro-batch is of one region: a single message)."""
        if not scan:
            return
        region = scan[0].region
        by_region: Mapping[str, Sequence[int]]
        if all(m.region == region for m in scan):
            by_region, n_bytes = {region: range(len(scan))}, {region: columns.n_bytes}
        else:
            rows_of: dict[str, list[int]] = {}
            for i, m in enumerate(scan):
                rows_of.setdefault(m.region, []).append(i)
            by_region, n_bytes = rows_of, self.pipeline.boundary.bytes_by_region(scan)
        scanned = columns.scanned.tolist()
        for region in sorted(by_region):
            rows = by_region[region]
            self.pipeline.policy.record_scan(
                region, n_bytes.get(region, 0), sum(1 for i in rows if not scanned[i]),
                conversations=len({scan[i].conversation_id for i in rows
                                   if scan[i].conversation_id not in self._open}))

    def evict(self, *, now: float) -> int:
        """Evict idle conversations and any beyond ``max_open``; returns how many."""
        n = 0
        opened, oldest_kept = self._open, now - self.idle_timeout
        while opened and (len(opened) > self.max_open
                          or next(iter(opened.values())).last_seen < oldest_kept):
            opened.popitem(last=False)
            n += 1
        self.evicted += n
        return n

    def flagged(self) -> Iterator[tuple[str, int]]:
        """(conversation id, message index of the first flag) of the open conversations."""
        for cid, conv in self._open.items():
            if conv.flagged_at is not None:
                yield cid, conv.flagged_at

    def checkpoint(self, path: str | Path) -> int:
        """Write the numeric state of every open conversation; returns how many.

        The file is replaced whole (written beside it, then renamed): a failure part way
        leaves the previous checkpoint as it was."""
        path = Path(path)
        part = path.with_name(f".{path.name}.partial")
        try:
            with open(part, "w", encoding="utf-8") as fh:
                for cid, conv in self._open.items():
                    fh.write(json.dumps({
                        "conversation_id": cid,
                        "state": base64.b64encode(conv.state.to_bytes()).decode(),
                        "declared": conv.declared, "n_messages": conv.n_messages,
                        "flagged_at": conv.flagged_at, "last_seen": conv.last_seen,
                        "refused": conv.refused, "assurance": conv.assurance,
                        "relationship": None if conv.relationship is None
                        else asdict(conv.relationship)}) + "\n")
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        return len(self._open)

    def restore(self, path: str | Path) -> int:
        """Load a checkpoint (replacing what is open, once all of it has loaded); returns
        how many."""
        catalogue = self.pipeline.extractor.catalogue
        loaded: OrderedDict[str, _Open] = OrderedDict()
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(_lines(fh), 1):
                d = _checkpoint_line(line, n)
                state = ConversationState.from_bytes(d["state"], catalogue)
                loaded[d["conversation_id"]] = _Open(
                    state, d["declared"], d["n_messages"], d["flagged_at"],
                    d["last_seen"], d.get("refused"), *_metadata(d, n))
        self._open = loaded
        return len(self._open)


def _lines(fh: Any) -> Iterator[str]:
    """A checkpoint's lines; one that is not UTF-8 is E301 (naming no content)."""
    try:
        yield from fh
    except UnicodeDecodeError:
        raise StateError(Errors.E301.format(problem="the checkpoint is not UTF-8")) from None


def _checkpoint_line(line: str, n: int) -> dict[str, Any]:
    """One checkpoint line parsed and its fields checked (types and ranges), with the state
    as bytes (checked by :meth:`ConversationState.from_bytes`): E301 naming the line and
    the field, never a value."""
    def bad(field: str, problem: str) -> StateError:
        return StateError(Errors.E301.format(problem=f"checkpoint line {n}, field {field!r}: "
                                                    f"{problem}"))
    try:
        d = json.loads(line)
    except ValueError:
        raise StateError(Errors.E301.format(problem=f"checkpoint line {n} is not JSON (a "
                                                    "file cut short or edited)")) from None
    if not isinstance(d, dict):
        raise bad("", "must be an object")
    for field, kinds in (("conversation_id", str), ("state", str), ("declared", dict),
                         ("n_messages", int), ("last_seen", (int, float))):
        if not isinstance(d.get(field), kinds) or isinstance(d.get(field), bool):
            raise bad(field, "missing or of the wrong type")
    if d["n_messages"] < 0 or not math.isfinite(d["last_seen"]):
        raise bad("n_messages" if d["n_messages"] < 0 else "last_seen", "out of range")
    flagged = d.get("flagged_at")
    if flagged is not None and (isinstance(flagged, bool) or not isinstance(flagged, int)
                                or not 0 <= flagged < d["n_messages"]):
        raise bad("flagged_at", "must be null or a message index")
    if d.get("refused") not in (None, "e2ee", "protected_participant"):
        raise bad("refused", "must be null, e2ee or protected_participant")
    try:
        d["declared"] = normal_declared_ages(d["declared"])
    except ValueError:
        raise bad("declared", "must map participant ids to ages in 0..130 or null") from None
    try:
        d["state"] = base64.b64decode(d["state"], validate=True)
    except ValueError:
        raise bad("state", "not base64") from None
    return d


def _epoch(ts: datetime | float | str) -> float:
    """Epoch seconds of a checked stream timestamp (an aware datetime or a number)."""
    return ts.timestamp() if isinstance(ts, datetime) else float(ts)


def _metadata(d: Mapping[str, Any], line: int,
              ) -> tuple[dict[str, str | None] | None, Relationship | None]:
    """The age assurance and relationship of a checkpoint line, checked as a stream
    message's are (a file edited by hand is refused, naming the line and the field)."""
    assurance, raw = d.get("assurance"), d.get("relationship")
    problem = None if assurance is None else assurance_problem(assurance)
    field = "assurance"
    rel = None
    if problem is None and raw is not None:
        field = "relationship"
        names = [f.name for f in fields(Relationship)]
        if not isinstance(raw, dict) or set(raw) - set(names):
            problem = f"must be an object of {', '.join(names)}"
        else:
            rel = Relationship(**raw)
            found = relationship_problem(rel)
            field, problem = found if found else (field, None)
    if problem is not None:
        raise StateError(Errors.E301.format(problem=f"checkpoint line {line}, field {field!r}: "
                                                    f"{problem}"))
    return (None if assurance is None else dict(assurance)), rel
