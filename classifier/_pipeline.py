"""The composition root: from a conversation to a score, and to a case for human review.

:meth:`Pipeline.run` reads top to bottom, in the order the data flows (and in which the
law asks for it):

1. **scope**: the scan policy (legal-basis calendar, end-to-end encryption, protected
   participants, text-less conversations) decides before any text is read;
2. **text boundary**: the one place that reads message text; it returns numbers
   (indicator counts, age evidence, traffic) and meters the bytes scanned;
3. **state**: per-conversation accumulators of those numbers (continuing a prior state
   for conversations that arrive over several batches);
4. **risk factors**: the documented, closed factor vector of each state;
5. **model**: the ONNX risk model's score, times the peer gate;
6. **explanation and early detection**, for flagged conversations: each factor's
   contribution, and the message after which the score first crossed the threshold;
7. **triage**: a flagged conversation becomes a case for human review (with its
   encrypted evidence excerpt) when a guard is attached; otherwise nothing is stored.

Every caller goes through here: :class:`Scorer`, :class:`StreamScorer`, the CLI, the
Spark integration, the evaluation harness and the guard. Nobody wires the stages by hand,
so the scan policy applies on every path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._conversation import Conversation
from ._errors import ConfigError, Errors, InputTypeError, ModelError
from ._features import FEATURE_NAMES, RISK_FACTORS, FactorContext, RiskFactorBuilder
from ._model import RiskModel
from ._scope import ScanPolicy
from ._state import ConversationState
from ._text import TextBoundary
from .indicators import IndicatorExtractor

__all__ = ["Explanation", "FactorContribution", "Pipeline", "ScoreResult", "conversation_state"]

EXPLAIN_CHOICES = ("flagged", "all")
_DESCRIPTIONS = dict(RISK_FACTORS)


@dataclass(frozen=True)
class FactorContribution:
    """One risk factor's part in a score: its value and how much the score drops when it
    alone is set to its benign-typical value."""

    name: str
    value: float
    contribution: float
    description: str


@dataclass(frozen=True)
class Explanation:
    """Why a conversation got its score: the factors with the largest contributions."""

    score: float
    threshold: float
    model_version: str
    factors: tuple[FactorContribution, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "threshold": self.threshold,
                "model_version": self.model_version,
                "factors": [{"name": f.name, "value": f.value, "contribution": f.contribution,
                             "description": f.description} for f in self.factors]}


@dataclass(frozen=True)
class ScoreResult:
    """One line of scoring output.

    ``status`` is ``"scored"`` or ``"refused"`` (with ``reason``). ``subject`` is the
    participant a flag is about (the possible adult of the riskiest pair); None when the
    conversation is not flagged (nobody is named without a flag).
    """

    conversation_id: str
    score: float | None = None
    flagged: bool = False
    risk_factors: Mapping[str, float] = field(default_factory=dict)
    model_version: str | None = None
    threshold: float | None = None
    flagged_at_message: int | None = None
    status: str = "scored"
    reason: str | None = None
    subject: str | None = None
    explanation: Explanation | None = field(default=None, compare=False)
    case_id: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The scoring output format (one JSON object per conversation)."""
        if self.status != "scored":
            return {"conversation_id": self.conversation_id, "status": self.status,
                    "reason": self.reason}
        return {"conversation_id": self.conversation_id, "score": round(self.score or 0.0, 6),
                "flagged": self.flagged, "subject": self.subject,
                "risk_factors": {k: round(v, 6) for k, v in self.risk_factors.items()},
                "model_version": self.model_version, "threshold": self.threshold,
                "flagged_at_message": self.flagged_at_message}


@dataclass
class Outcome:
    """What :meth:`Pipeline.run` returns per conversation: the result, and the merged
    numeric state (None for a refused conversation, whose prior numbers are dropped)."""

    result: ScoreResult
    state: ConversationState | None


class Pipeline:
    """scope -> text boundary -> state -> risk factors -> model -> triage.

    Parameters
    ----------
    model : RiskModel, optional
        Default: the shipped model.
    extractor : IndicatorExtractor, optional
        Default: the bundled English catalogue.
    policy : ScanPolicy, optional
        Default: the bundled legal-basis calendar, the system clock.
    threshold : float, optional
        Overrides the model's policy threshold (recorded in every result).
    explain : {"flagged", "all"}, default "flagged"
        Which results carry the factors' contributions (explaining costs one model row
        per factor; an unflagged conversation leads to nothing stored).
    explain_top : int, default 8
        How many factors an explanation names; 0 for all.
    early : bool, default True
        Find the message after which a flagged conversation's score first crossed.
    guard : classifier.guard.Guard, optional
        Where flagged conversations become cases for human review.

    Examples
    --------
    >>> from classifier import Pipeline, read_jsonl, sample_path
    >>> pipeline = Pipeline()
    >>> first = next(iter(read_jsonl(sample_path()))).conversation
    >>> result = pipeline.score(first)
    >>> result.flagged, result.subject is not None
    (True, True)
    """

    def __init__(self, *, model: RiskModel | None = None,
                 extractor: IndicatorExtractor | None = None, policy: ScanPolicy | None = None,
                 threshold: float | None = None, explain: str = "flagged",
                 explain_top: int = 8, early: bool = True, guard: Any = None) -> None:
        if explain not in EXPLAIN_CHOICES:
            raise ConfigError(Errors.E005.format(
                name="explain", expected=f"one of {EXPLAIN_CHOICES}", got=repr(explain)))
        if model is None:
            model = RiskModel.load()
        if extractor is None:
            extractor = IndicatorExtractor(catalogue=_catalogue_for(model))
        model_sha = getattr(model, "metadata", {}).get("catalogue_sha256")
        if model_sha is not None and model_sha != extractor.catalogue.sha256:
            raise ModelError(Errors.M004.format(path=getattr(model, "path", "(in memory)"),
                                                got=str(model_sha)[:12],
                                                expected=extractor.catalogue.sha256[:12]))
        self.extractor = extractor
        self.model = model
        self.policy = policy or ScanPolicy()
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(
                threshold, (int, float)) or not 0.0 <= threshold <= 1.0):
            got = (f"{type(threshold).__name__} outside [0, 1]"
                   if isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
                   else type(threshold).__name__)  # (the value itself is never quoted)
            raise ConfigError(Errors.E005.format(name="threshold", expected="a number in "
                                                 "[0, 1] or None", got=got))
        self.threshold = self.model.threshold if threshold is None else float(threshold)
        self.explain = explain
        self.explain_top = explain_top
        self.early = early
        self.guard = guard
        self.boundary = TextBoundary(self.extractor)
        self.factors = RiskFactorBuilder(self.extractor.catalogue)
        self.counts: Counter[str] = Counter()

    # -- the composition root ----------------------------------------------------------
    def run(self, conversations: Sequence[Conversation],
            priors: Sequence[ConversationState | None] | None = None,
            flagged_before: Sequence[int | None] | None = None, *,
            early: bool | None = None) -> list[Outcome]:
        """Score conversations (optionally continuing prior numeric states)."""
        early = self.early if early is None else early
        for i, conv in enumerate(conversations):
            if not isinstance(conv, Conversation):
                raise InputTypeError(Errors.E005.format(
                    name=f"conversations[{i}]", expected="a Conversation",
                    got=type(conv).__name__))
        n = len(conversations)
        priors = priors if priors is not None else [None] * n
        flagged_before = flagged_before if flagged_before is not None else [None] * n
        out: list[Outcome | None] = [None] * n

        # 1. scope: decided before any text is read
        todo: list[int] = []
        for i, conv in enumerate(conversations):
            decision = self.policy.decide(conv, continuing=priors[i] is not None)
            if decision.allowed:
                todo.append(i)
            else:  # a refusal drops the prior numbers as well
                out[i] = Outcome(ScoreResult(conv.conversation_id, status="refused",
                                             reason=decision.reason), None)
                self.counts["refused"] += 1

        # 2. text boundary: the only place that reads text; bytes are metered here
        columns = self.boundary.extract([conversations[i] for i in todo])
        for i, cols in zip(todo, columns, strict=True):
            conv = conversations[i]
            self.policy.record_scan(conv.region, cols.n_bytes, int((~cols.scanned).sum()))

        # 3. state, and 4.-5. risk factors and model: the state is scored after every
        #    message that can raise a score (an indicator, age evidence, someone new);
        #    a run of other messages is added at once, since it can only lower a score
        #    (the factors are monotone). A conversation is flagged when its score reached
        #    the threshold after any message, as a stream would have seen it.
        states: list[ConversationState] = []
        points: list[list[int]] = []
        mats: list[tuple[np.ndarray, list[tuple[str, str]]]] = []
        for j, i in enumerate(todo):
            conv, prior = conversations[i], priors[i]
            context = FactorContext.of(conv)
            part = ConversationState(conv.conversation_id, self.extractor.catalogue)
            state = part if prior is None else prior.copy()
            # the factors of each prefix where a score can rise, read off the running state
            # (and the new part, merged in at the end, when continuing a prior state)
            prefix, positions = self.factors.prefix_matrices(
                state, columns[j], context, also=None if prior is None else part,
                positions=None if early else [])
            mats.extend(prefix)
            if prior is not None:
                state = prior.merge(part)  # exact merge (order flags, seams)
            mats.append(self.factors.pair_matrix(state, context))
            states.append(state)
            points.append(positions)
        scored = self.score_matrices(mats)

        # 6. early detection, and the explanations of the flagged in one model call
        decided: list[tuple[bool, int | None, float, np.ndarray, str | None]] = []
        at = 0
        for j, i in enumerate(todo):
            conv, prior = conversations[i], priors[i]
            mine = scored[at:at + len(points[j]) + 1]
            at += len(points[j]) + 1
            offset = prior.n_messages if prior is not None else 0
            crossing = next((k for k, (sc, _, _) in enumerate(mine) if sc >= self.threshold),
                            None)
            first = flagged_before[i]
            if crossing is not None and first is None and early:
                first = offset + (points[j][crossing] if crossing < len(points[j])
                                  else len(conv.messages) - 1)
            flagged = crossing is not None or first is not None
            peak = max(range(len(mine)), key=lambda k: mine[k][0])
            score, x, subject = mine[peak] if flagged else mine[-1]
            decided.append((flagged, first, score, x, subject))
        wanted = [j for j, d in enumerate(decided) if d[0] or self.explain == "all"]
        explanations = dict(zip(wanted, self._explain_many([decided[j][3] for j in wanted]),
                                strict=True))

        # 7. triage
        for j, i in enumerate(todo):
            conv = conversations[i]
            flagged, first, score, _, subject = decided[j]
            explanation = explanations.get(j)
            if explanation is not None:
                score = explanation.score
            result = ScoreResult(
                conv.conversation_id, score, flagged,
                {f.name: f.contribution for f in explanation.factors} if explanation else {},
                self.model.version, self.threshold, first,
                subject=subject if flagged else None,
                explanation=explanation)
            self.counts["flagged" if flagged else "scored"] += 1
            if flagged and self.guard is not None:
                excerpt = self.boundary.evidence(conv, columns[j], subject)
                case_id = self.guard.triage(result, excerpt, region=conv.region)
                self.counts["queued"] += case_id is not None
                result = replace(result, case_id=case_id)
            out[i] = Outcome(result, states[j])
        return out  # type: ignore[return-value]

    # -- conveniences ------------------------------------------------------------------
    def score(self, conversation: Conversation) -> ScoreResult:
        """Score one conversation."""
        return self.run([conversation])[0].result

    def score_many(self, conversations: Sequence[Conversation]) -> list[ScoreResult]:
        """Score many conversations at once: one extraction batch and one model call."""
        return [o.result for o in self.run(conversations)]

    def score_batch(self, conversations: Iterable[Conversation], *,
                    batch_messages: int = 20_000) -> Iterator[ScoreResult]:
        """Score conversations lazily, ``batch_messages`` messages per :meth:`run`."""
        chunk: list[Conversation] = []
        size = 0
        for conv in conversations:
            chunk.append(conv)
            size += len(conv.messages)
            if size >= batch_messages:
                yield from self.score_many(chunk)
                chunk, size = [], 0
        if chunk:
            yield from self.score_many(chunk)

    def state_of(self, conversation: Conversation) -> ConversationState:
        """The numeric state of a whole conversation (see :func:`conversation_state`)."""
        return conversation_state(conversation, self.extractor)

    def prefix_scores(self, conversation: Conversation) -> np.ndarray:
        """The score after each message (what a stream scorer would have seen)."""
        cols = self.boundary.extract([conversation])[0]
        state = ConversationState(conversation.conversation_id, self.extractor.catalogue)
        context = FactorContext.of(conversation)
        return np.array([self.score_states([(state, context)])[0][0]
                         for _ in state.replay(cols)])

    def first_crossing(self, conversation: Conversation) -> int | None:
        """Index of the first message after which the score reached the threshold."""
        result = self.run([conversation], early=True)[0].result
        return result.flagged_at_message

    def score_states(self, items: Sequence[tuple[ConversationState, FactorContext]],
                     ) -> list[tuple[float, np.ndarray, str | None]]:
        """(score, factor vector, subject) of the riskiest ordered pair of each state: all
        pairs of all states in one model call."""
        return self.score_matrices([self.factors.pair_matrix(state, context)
                                    for state, context in items])

    def score_matrices(self, mats: Sequence[tuple[np.ndarray, list[tuple[str, str]]]],
                       ) -> list[tuple[float, np.ndarray, str | None]]:
        """:meth:`score_states` of factor matrices already built (one model call)."""
        rows = [m for m, _ in mats if len(m)]
        scores = (self.model.predict(np.vstack(rows)) if rows else np.zeros(0)).tolist()
        out: list[tuple[float, np.ndarray, str | None]] = []
        at = 0
        for X, pairs in mats:
            if not pairs:
                out.append((0.0, np.zeros(len(FEATURE_NAMES), dtype=np.float32), None))
                continue
            mine = scores[at:at + len(pairs)]
            at += len(pairs)
            k = int(np.argmax(mine))
            out.append((float(mine[k]), X[k], pairs[k][0]))
        return out

    # -- stages' helpers ---------------------------------------------------------------
    def _explain_many(self, xs: Sequence[np.ndarray]) -> list[Explanation]:
        """The explanation of each factor vector (one model call for all of them)."""
        if not xs:
            return []
        scores, contribs = self.model.explain_many(np.vstack(xs))
        out = []
        for x, score, contrib in zip(xs, scores.tolist(), contribs, strict=True):
            order = np.argsort(-np.abs(contrib))
            if self.explain_top:
                order = order[:self.explain_top]
            out.append(Explanation(score, self.threshold, self.model.version, tuple(
                FactorContribution(FEATURE_NAMES[i], float(x[i]), float(contrib[i]),
                                   _DESCRIPTIONS[FEATURE_NAMES[i]]) for i in order)))
        return out


def _catalogue_for(model: Any) -> Any:
    """The bundled catalogue with the model's learned recognisers (``recognisers.npz`` in
    its directory), or the bundled recognisers when the model has none of its own."""
    from .indicators import load_catalogue

    path = getattr(model, "path", None)
    own = Path(path) / "recognisers.npz" if path is not None else None
    if own is not None and own.is_file():
        from .indicators import WordRecogniser

        return load_catalogue(recogniser=False).with_recogniser(WordRecogniser.load(own))
    return load_catalogue()


def conversation_state(conversation: Conversation,
                       extractor: IndicatorExtractor | None = None) -> ConversationState:
    """The numeric state of a whole conversation, through the text boundary.

    Scope is not applied: this is for analysis of data already allowed (evaluation sets,
    the ``extract`` command); scoring goes through :class:`Pipeline`.

    >>> from classifier import conversation_state, read_jsonl, sample_path
    >>> conv = next(iter(read_jsonl(sample_path()))).conversation
    >>> state = conversation_state(conv)
    >>> state.n_messages == len(conv.messages), len(state.to_bytes()) < 1024
    (True, True)
    """
    extractor = extractor or IndicatorExtractor()
    state = ConversationState(conversation.conversation_id, extractor.catalogue)
    state.add(TextBoundary(extractor).extract([conversation])[0])
    return state


