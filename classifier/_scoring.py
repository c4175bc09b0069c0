"""Scoring: one conversation, a batch, or a stream a message at a time.

Every score carries its explanation: each named risk factor's contribution (numbers and
names only). In stream mode the scorer reports the message index at which the score
first crossed the threshold (early detection).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from ._conversation import Conversation, Message
from ._features import FEATURE_NAMES, RiskFactorBuilder
from ._model import RiskModel
from ._scope import refusal_reason
from ._state import ConversationState
from .indicators import IndicatorExtractor

__all__ = ["ConversationStream", "ScoreResult", "Scorer"]


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
                 threshold: float | None = None, explain_top: int = 8) -> None:
        self.extractor = extractor or IndicatorExtractor()
        self.model = model or RiskModel.load(catalogue_sha256=self.extractor.catalogue.sha256)
        self.factors = RiskFactorBuilder(self.extractor.catalogue)
        self.threshold = self.model.threshold if threshold is None else float(threshold)
        self.explain_top = explain_top

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
        reason = refusal_reason(conversation)
        if reason is not None and not (reason == "no_text" and prior is not None):
            return ScoreResult(conversation.conversation_id, status="refused",
                               reason=reason), None
        declared = {p.id: p.declared_age for p in conversation.participants}
        part = ConversationState.from_conversation(conversation, self.extractor)
        state = part if prior is None else prior.merge(part)
        x, subject = self.factors.transform_with_subject(state, declared)
        score, factors = self._explanation(x)
        flagged = score >= self.threshold
        first = prior_flagged_at
        if first is None and flagged and early:
            start = prior.copy() if prior is not None else None
            hits = np.flatnonzero(self._prefix_scores(conversation, declared, start)
                                  >= self.threshold)
            # a late message can lift the merged score without any prefix crossing
            index = int(hits[0]) if hits.size else len(conversation.messages) - 1
            first = (prior.n_messages if prior is not None else 0) + index
        return (ScoreResult(conversation.conversation_id, score, flagged, factors,
                            self.model.version, self.threshold, first, subject=subject),
                state)

    def score_batch(self, conversations: Iterable[Conversation], *,
                    early: bool = True) -> Iterator[ScoreResult]:
        for conv in conversations:
            yield self.score(conv, early=early)

    def _prefix_scores(self, conversation: Conversation, declared: Mapping[str, int | None],
                       start: ConversationState | None) -> np.ndarray:
        state = start or ConversationState(conversation.conversation_id,
                                           self.extractor.catalogue)
        msgs = conversation.messages
        rows = np.empty((len(msgs), len(FEATURE_NAMES)), dtype=np.float32)
        for i in state.iter_update(msgs, self.extractor):
            rows[i] = self.factors.transform(state, declared)
        return self.model.predict(rows) if len(msgs) else np.zeros(0)

    def prefix_scores(self, conversation: Conversation) -> np.ndarray:
        """The score after each message (what a stream scorer would have seen)."""
        declared = {p.id: p.declared_age for p in conversation.participants}
        return self._prefix_scores(conversation, declared, None)

    def first_crossing(self, conversation: Conversation) -> int | None:
        """Index of the first message after which the score reached the threshold."""
        hits = np.flatnonzero(self.prefix_scores(conversation) >= self.threshold)
        return int(hits[0]) if hits.size else None

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
