"""Scoring conversations: the :class:`Scorer` facade over :class:`classifier.Pipeline`.

``Scorer`` keeps the scoring API users know (one conversation, a batch, a conversation
continued over batches, a stream a message at a time); every call goes through the
pipeline, so the scan policy, the text boundary and the same model apply on every path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace

import numpy as np

from ._conversation import Conversation, Message
from ._errors import ConfigError, Errors
from ._model import RiskModel
from ._pipeline import Pipeline, ScoreResult
from ._scope import ScanPolicy
from ._state import ConversationState
from .indicators import IndicatorExtractor

__all__ = ["ConversationStream", "ScoreResult", "Scorer"]


class Scorer:
    """Scores conversations with a risk model (through :class:`Pipeline`).

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
        Which results carry the risk factors' contributions.
    policy : ScanPolicy, optional
        The scan policy (default: the bundled legal-basis calendar and the system clock).

    Examples
    --------
    >>> from classifier import Scorer, read_jsonl, sample_path
    >>> scorer = Scorer()
    >>> first = next(iter(read_jsonl(sample_path()))).conversation
    >>> result = scorer.score(first)
    >>> result.flagged, 0.0 <= result.score <= 1.0
    (True, True)
    """

    def __init__(self, model: RiskModel | None = None, *,
                 extractor: IndicatorExtractor | None = None,
                 threshold: float | None = None, explain_top: int = 8,
                 explain: str = "flagged", policy: ScanPolicy | None = None) -> None:
        self.pipeline = Pipeline(model=model, extractor=extractor, threshold=threshold,
                                 explain_top=explain_top, explain=explain, policy=policy)

    extractor = property(lambda self: self.pipeline.extractor)
    model = property(lambda self: self.pipeline.model)
    factors = property(lambda self: self.pipeline.factors)
    threshold = property(lambda self: self.pipeline.threshold)
    policy = property(lambda self: self.pipeline.policy)

    def score(self, conversation: Conversation) -> ScoreResult:
        """Score a whole conversation (with the message where the score first crossed)."""
        return self.pipeline.score(conversation)

    def score_many(self, conversations: Sequence[Conversation]) -> list[ScoreResult]:
        """Score many conversations at once: one extraction batch and one model call."""
        return self.pipeline.score_many(conversations)

    def score_batch(self, conversations: Iterable[Conversation], *,
                    batch_messages: int = 20_000) -> Iterator[ScoreResult]:
        """Score conversations lazily, ``batch_messages`` messages per model call."""
        return self.pipeline.score_batch(conversations, batch_messages=batch_messages)

    def score_continued(self, conversation: Conversation, *,
                        prior: ConversationState | None = None,
                        prior_flagged_at: int | None = None,
                        ) -> tuple[ScoreResult, ConversationState | None]:
        """Score a conversation's new messages on top of its prior numeric state.

        Exact when the new messages are all later than the prior ones
        (:meth:`ConversationState.merge`); late messages are still counted, with
        ``order_exact`` set to False. ``flagged_at_message`` counts from the
        conversation's first message; a conversation flagged before keeps
        ``prior_flagged_at``. The state is None for a refused conversation.
        """
        return self.score_continued_many([conversation], [prior], [prior_flagged_at])[0]

    def score_continued_many(self, conversations: Sequence[Conversation],
                             priors: Sequence[ConversationState | None],
                             prior_flagged_at: Sequence[int | None], *,
                             early: bool | None = None,
                             ) -> list[tuple[ScoreResult, ConversationState | None]]:
        """:meth:`score_continued` for many conversations, batched."""
        return [(o.result, o.state) for o in self.pipeline.run(conversations, priors,
                                                                prior_flagged_at, early=early)]

    def prefix_scores(self, conversation: Conversation) -> np.ndarray:
        """The score after each message (what a stream scorer would have seen)."""
        return self.pipeline.prefix_scores(conversation)

    def first_crossing(self, conversation: Conversation) -> int | None:
        """Index of the first message after which the score reached the threshold."""
        return self.pipeline.first_crossing(conversation)

    def stream(self, conversation_id: str,
               declared_ages: Mapping[str, int | None] | None = None) -> ConversationStream:
        """A per-conversation stream: add messages one at a time."""
        return ConversationStream(self.pipeline, conversation_id, dict(declared_ages or {}))


class ConversationStream:
    """Scores one conversation a message at a time; numbers only are kept between messages."""

    def __init__(self, pipeline: Pipeline, conversation_id: str,
                 declared_ages: dict[str, int | None]) -> None:
        self.pipeline = pipeline
        self.state = ConversationState(conversation_id, pipeline.extractor.catalogue)
        self.declared_ages = declared_ages
        self.n_messages = 0
        self.flagged_at_message: int | None = None
        self.last_score = 0.0

    def add(self, message: Message | None = None, *, sender: str | None = None,
            ts: datetime | float | None = None, text: str | None = None) -> float:
        """Add one message (a :class:`Message`, or sender/ts/text) and return the score."""
        if message is not None:
            item = message if message.is_text else SimpleNamespace(
                sender=message.sender, ts=message.ts, text=None)
        else:
            if sender is None or ts is None:
                raise ConfigError(Errors.E005.format(name="sender and ts",
                                                     expected="given", got="None"))
            item = SimpleNamespace(sender=sender, ts=ts, text=text)
        self.state.add(self.pipeline.boundary.extract_messages([item]))
        self.last_score = self.pipeline.score_states([(self.state, self.declared_ages)])[0][0]
        if self.flagged_at_message is None and self.last_score >= self.pipeline.threshold:
            self.flagged_at_message = self.n_messages
        self.n_messages += 1
        return self.last_score

    @property
    def flagged(self) -> bool:
        return self.flagged_at_message is not None
