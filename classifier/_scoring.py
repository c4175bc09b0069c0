"""Scoring: one conversation, a batch, or a stream a message at a time.

Every score carries its explanation: each named risk factor's contribution (numbers and
names only). In stream mode the scorer reports the message index at which the score
first crossed the threshold (early detection).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ._conversation import Conversation, Message
from ._errors import ConfigError, Errors
from ._features import FEATURE_NAMES, RiskFactorBuilder
from ._model import RiskModel
from ._scope import refusal_reason
from ._state import ConversationState
from .indicators import IndicatorBatch, IndicatorExtractor

__all__ = ["ConversationStream", "ScoreResult", "Scorer"]

EXPLAIN_CHOICES = ("flagged", "all")


@dataclass(frozen=True)
class ScoreResult:
    """One line of scoring output (DESIGN section 5)."""

    conversation_id: str
    score: float | None = None
    flagged: bool = False
    risk_factors: Mapping[str, float] = field(default_factory=dict)
    model_version: str | None = None
    threshold: float | None = None
    flagged_at_message: int | None = None
    status: str = "scored"
    reason: str | None = None
    subject: str | None = None  # the older party, whom a flag is about (not in to_dict)

    def to_dict(self) -> dict[str, Any]:
        if self.status != "scored":
            return {"conversation_id": self.conversation_id, "status": self.status,
                    "reason": self.reason}
        return {"conversation_id": self.conversation_id, "score": round(self.score or 0.0, 6),
                "flagged": self.flagged,
                "risk_factors": {k: round(v, 6) for k, v in self.risk_factors.items()},
                "model_version": self.model_version, "threshold": self.threshold,
                "flagged_at_message": self.flagged_at_message}


class Scorer:
    """Scores conversations with a risk model.

    Parameters
    ----------
    model : RiskModel, optional
        Default: the shipped model.
    extractor : IndicatorExtractor, optional
    threshold : float, optional
        Overrides the model's policy threshold (recorded in every result).
    explain_top : int, default 8
        How many factors (largest contributions) each result names; 0 for all.
    explain : {"flagged", "all"}, default "flagged"
        Which results carry the risk factors' contributions. Explaining costs one model
        row per risk factor, many times the score itself; a conversation that is not
        flagged leads to nothing stored (DESIGN section 3), so by default only flags
        are explained. "all" explains every result (for error analysis).

    Examples
    --------
    >>> from classifier import read_jsonl
    >>> from classifier._cli import sample_path
    >>> scorer = Scorer()
    >>> first = next(iter(read_jsonl(sample_path()))).conversation
    >>> result = scorer.score(first)
    >>> result.flagged, 0.0 <= result.score <= 1.0
    (True, True)
    """

    def __init__(self, model: RiskModel | None = None, *,
                 extractor: IndicatorExtractor | None = None,
                 threshold: float | None = None, explain_top: int = 8,
                 explain: str = "flagged") -> None:
        if explain not in EXPLAIN_CHOICES:
            raise ConfigError(Errors.E005.format(
                name="explain", expected=f"one of {EXPLAIN_CHOICES}", got=repr(explain)))
        self.extractor = extractor or IndicatorExtractor()
        self.model = model or RiskModel.load(catalogue_sha256=self.extractor.catalogue.sha256)
        self.factors = RiskFactorBuilder(self.extractor.catalogue)
        self.threshold = self.model.threshold if threshold is None else float(threshold)
        self.explain_top = explain_top
        self.explain = explain

    def _explanation(self, x: np.ndarray) -> tuple[float, dict[str, float]]:
        score, contrib = self.model.explain(x)
        order = np.argsort(-np.abs(contrib))
        if self.explain_top:
            order = order[:self.explain_top]
        return score, {FEATURE_NAMES[i]: float(contrib[i]) for i in order}

    def score(self, conversation: Conversation, *, early: bool = True) -> ScoreResult:
        """Score a whole conversation; ``early`` also finds where the score first crossed."""
        return self.score_continued(conversation, early=early)[0]

    def score_continued(self, conversation: Conversation, *,
                        prior: ConversationState | None = None,
                        prior_flagged_at: int | None = None, early: bool = True,
                        ) -> tuple[ScoreResult, ConversationState | None]:
        """Score a conversation's new messages on top of its prior numeric state.

        This is how batches of one conversation that arrive at different times are
        scored (Spark, streaming): the new messages' state is merged into ``prior``,
        which is exact when the new messages are all later than the prior ones
        (:meth:`ConversationState.merge`); late messages are still counted, with
        ``order_exact`` set to False. ``flagged_at_message`` counts from the
        conversation's first message; a conversation flagged before keeps
        ``prior_flagged_at``.

        Returns
        -------
        (ScoreResult, ConversationState or None)
            The result and the merged state; the state is None for a refused
            conversation, whose prior numbers are dropped as well.
        """
        return self.score_continued_many([conversation], [prior], [prior_flagged_at],
                                         early=early)[0]

    def _result(self, conversation: Conversation, declared: Mapping[str, int | None],
                x: np.ndarray, score: float, subject: str | None,
                prior: ConversationState | None, prior_flagged_at: int | None,
                early: bool, extracted: tuple[IndicatorBatch, int] | None = None,
                ) -> ScoreResult:
        flagged = score >= self.threshold
        factors: dict[str, float] = {}
        if flagged or self.explain == "all":
            score, factors = self._explanation(x)
        first = prior_flagged_at
        if first is None and flagged and early:
            start = prior.copy() if prior is not None else None
            index = self._first_crossing(conversation, declared, start, extracted)
            if index is None:  # a late message lifted the merged score, no prefix did
                index = len(conversation.messages) - 1
            first = (prior.n_messages if prior is not None else 0) + index
        return ScoreResult(conversation.conversation_id, score, flagged, factors,
                           self.model.version, self.threshold, first, subject=subject)

    def score_many(self, conversations: Sequence[Conversation], *,
                   early: bool = True) -> list[ScoreResult]:
        """Score many conversations at once: one extraction batch and one model call.

        The results equal :meth:`score` on each; this is the fast path for batches
        (the extractor and the model both pay a fixed cost per call).
        """
        none = [None] * len(conversations)
        return [r for r, _ in self.score_continued_many(conversations, none, none,
                                                        early=early)]

    def score_continued_many(self, conversations: Sequence[Conversation],
                             priors: Sequence[ConversationState | None],
                             prior_flagged_at: Sequence[int | None], *, early: bool = True,
                             ) -> list[tuple[ScoreResult, ConversationState | None]]:
        """:meth:`score_continued` for many conversations, batched like :meth:`score_many`."""
        out: list[tuple[ScoreResult, ConversationState | None] | None] = [None] * len(
            conversations)
        todo: list[int] = []
        for i, conv in enumerate(conversations):
            reason = refusal_reason(conv)
            if reason is None or (reason == "no_text" and priors[i] is not None):
                todo.append(i)
            else:  # a refusal drops the prior numbers as well
                out[i] = ScoreResult(conv.conversation_id, status="refused", reason=reason), None
        texts: list[str] = []
        years: list[int] = []
        offsets: list[int] = []
        for i in todo:
            offsets.append(len(texts))
            for m in conversations[i].messages:
                if m.is_text:
                    texts.append(m.text)
                    years.append(m.ts.year)
        batch = self.extractor.extract_batch(texts, reference_year=years)
        X = np.empty((len(todo), len(FEATURE_NAMES)), dtype=np.float32)
        subjects: list[str | None] = []
        declared_of: list[dict[str, int | None]] = []
        states: list[ConversationState] = []
        for j, i in enumerate(todo):
            conv, prior = conversations[i], priors[i]
            declared = {p.id: p.declared_age for p in conv.participants}
            part = ConversationState(conv.conversation_id, self.extractor.catalogue)
            part.update_from_batch(conv.messages, batch, offsets[j])
            state = part if prior is None else prior.merge(part)
            X[j], subject = self.factors.transform_with_subject(state, declared)
            subjects.append(subject)
            declared_of.append(declared)
            states.append(state)
        scores = self.model.predict(X) if todo else np.zeros(0)
        for j, i in enumerate(todo):
            out[i] = (self._result(conversations[i], declared_of[j], X[j], float(scores[j]),
                                   subjects[j], priors[i], prior_flagged_at[i], early,
                                   (batch, offsets[j])),
                      states[j])
        return out  # type: ignore[return-value]

    def score_batch(self, conversations: Iterable[Conversation], *, early: bool = True,
                    batch_messages: int = 20_000) -> Iterator[ScoreResult]:
        """Score conversations lazily, ``batch_messages`` messages per :meth:`score_many`."""
        chunk: list[Conversation] = []
        size = 0
        for conv in conversations:
            chunk.append(conv)
            size += len(conv.messages)
            if size >= batch_messages:
                yield from self.score_many(chunk, early=early)
                chunk, size = [], 0
        if chunk:
            yield from self.score_many(chunk, early=early)

    def _first_crossing(self, conversation: Conversation, declared: Mapping[str, int | None],
                        start: ConversationState | None,
                        extracted: tuple[IndicatorBatch, int] | None = None,
                        chunk: int = 16) -> int | None:
        """The first prefix whose score reaches the threshold, scoring prefixes in chunks
        and stopping there (flags come early, so most of a long conversation is skipped).

        ``extracted`` is the batch (and first row) that already holds the conversation's
        text messages, so that they are not extracted twice.
        """
        state = start or ConversationState(conversation.conversation_id,
                                           self.extractor.catalogue)
        messages = conversation.messages
        if extracted is None:
            added: Iterable[int] = state.iter_update(messages, self.extractor)
        else:
            added = _add_extracted(state, messages, *extracted)
        rows = np.empty((chunk, len(FEATURE_NAMES)), dtype=np.float32)
        filled = 0
        for i in added:
            rows[filled] = self.factors.transform(state, declared)
            filled += 1
            if filled == chunk or i == len(messages) - 1:
                hits = np.flatnonzero(self.model.predict(rows[:filled]) >= self.threshold)
                if hits.size:
                    return i - filled + 1 + int(hits[0])
                filled = 0
        return None

    def prefix_scores(self, conversation: Conversation) -> np.ndarray:
        """The score after each message (what a stream scorer would have seen)."""
        declared = {p.id: p.declared_age for p in conversation.participants}
        state = ConversationState(conversation.conversation_id, self.extractor.catalogue)
        msgs = conversation.messages
        rows = np.empty((len(msgs), len(FEATURE_NAMES)), dtype=np.float32)
        for i in state.iter_update(msgs, self.extractor):
            rows[i] = self.factors.transform(state, declared)
        return self.model.predict(rows) if len(msgs) else np.zeros(0)

    def first_crossing(self, conversation: Conversation) -> int | None:
        """Index of the first message after which the score reached the threshold."""
        declared = {p.id: p.declared_age for p in conversation.participants}
        return self._first_crossing(conversation, declared, None)

    def stream(self, conversation_id: str,
               declared_ages: Mapping[str, int | None] | None = None) -> ConversationStream:
        """A per-conversation stream: add messages one at a time."""
        return ConversationStream(self, conversation_id, dict(declared_ages or {}))


class ConversationStream:
    """Scores a conversation a message at a time; numbers only are kept between messages."""

    def __init__(self, scorer: Scorer, conversation_id: str,
                 declared_ages: dict[str, int | None]) -> None:
        self.scorer = scorer
        self.state = ConversationState(conversation_id, scorer.extractor.catalogue)
        self.declared_ages = declared_ages
        self.n_messages = 0
        self.flagged_at_message: int | None = None
        self.last_score = 0.0

    def add(self, message: Message | None = None, *, sender: str | None = None,
            ts: datetime | float | None = None, text: str | None = None) -> float:
        """Add one message (a :class:`Message`, or sender/ts/text) and return the score."""
        if message is not None:
            sender, ts, text = message.sender, message.ts, (message.text if message.is_text
                                                             else None)
        assert sender is not None and ts is not None
        self.state.add_message(sender, ts, text, self.scorer.extractor)
        x = self.scorer.factors.transform(self.state, self.declared_ages)
        self.last_score = float(self.scorer.model.predict(x)[0])
        if self.flagged_at_message is None and self.last_score >= self.scorer.threshold:
            self.flagged_at_message = self.n_messages
        self.n_messages += 1
        return self.last_score

    @property
    def flagged(self) -> bool:
        return self.flagged_at_message is not None


def _add_extracted(state: ConversationState, messages: Sequence[Message],
                   batch: IndicatorBatch, first_row: int) -> Iterator[int]:
    """Add messages one at a time from rows already extracted (as ``iter_update`` does)."""
    row = first_row
    for i, m in enumerate(messages):
        if m.is_text:
            state.update(m.sender, m.ts, batch[row], n_chars=len(m.text))
            row += 1
        else:
            state.update(m.sender, m.ts, None, scanned=False)
        yield i
