"""Scoring one conversation's message rows on top of its prior numeric state.

Engines that hold messages one per row (Spark, a stream) group them by conversation and
call :func:`score_rows` per group, on the executor; the text never leaves that call. What
is kept between batches is a :class:`PriorState`: numbers and pseudonymous participant
ids only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .._conversation import (
    Conversation,
    Participant,
    Relationship,
    assurance_problem,
    relationship_problem,
)
from .._errors import Errors, StateError
from .._message_rows import MessageRow, RejectedRow, conversation_from_rows
from .._scoring import Scorer, ScoreResult
from .._state import ConversationState

__all__ = ["PriorState", "RowsScore", "score_rows", "score_rows_many", "scorer_for"]

_SCORERS: dict[tuple[str | None, float | None, int], Scorer] = {}


def scorer_for(model_dir: str | Path | None = None, threshold: float | None = None,
               explain_top: int = 8) -> Scorer:
    """One :class:`Scorer` per process and configuration.

    Executors call this instead of receiving a pickled scorer: building the extractor
    takes seconds, and a worker process scores many partitions.
    """
    from .._model import RiskModel

    key = (None if model_dir is None else str(model_dir), threshold, explain_top)
    scorer = _SCORERS.get(key)
    if scorer is None:
        scorer = Scorer(RiskModel.load(model_dir), threshold=threshold,
                        explain_top=explain_top)
        _SCORERS[key] = scorer
    return scorer


@dataclass(frozen=True)
class PriorState:
    """What is kept of a conversation between batches: numbers and pseudonymous ids.

    Besides the numeric state, what the provider said of the conversation so far: the
    participants' declared ages and how it knows them (``age_assurance``), and its
    relationship metadata on the pair; a later batch's values replace these."""

    state: bytes
    declared_ages: Mapping[str, int] = field(default_factory=dict)
    flagged_at_message: int | None = None
    age_assurance: Mapping[str, str] = field(default_factory=dict)
    relationship: Relationship | None = None


@dataclass(frozen=True)
class RowsScore:
    """The outcome for one conversation's rows in one batch.

    ``result`` is None when no row was usable (then ``prior`` is the unchanged input);
    ``prior`` is None for a refused conversation, whose numbers are dropped.
    """

    result: ScoreResult | None
    prior: PriorState | None
    rejected: list[RejectedRow]
    n_messages: int = 0


def score_rows(scorer: Scorer, conversation_id: object, rows: Iterable[MessageRow],
               prior: PriorState | None = None, *, early: bool = True) -> RowsScore:
    """Validate and score one conversation's new rows on top of its prior state.

    Examples
    --------
    >>> from classifier import MessageRow
    >>> scorer = scorer_for()
    >>> first = score_rows(scorer, "c-1", [MessageRow("row 0", "u-1", 1_772_000_000,
    ...                                               "how old are you", declared_age=41)])
    >>> later = score_rows(scorer, "c-1", [MessageRow("row 1", "u-2", 1_772_000_060,
    ...                                               "i am 12")], first.prior)
    >>> later.n_messages, later.prior.declared_ages
    (2, {'u-1': 41})
    """
    return score_rows_many(scorer, [(conversation_id, rows, prior)], early=early)[0]


def score_rows_many(scorer: Scorer,
                    groups: Sequence[tuple[object, Iterable[MessageRow], PriorState | None]],
                    *, early: bool = True) -> list[RowsScore]:
    """:func:`score_rows` for many conversations, in one extraction batch and model call."""
    outcomes: list[RowsScore | None] = [None] * len(groups)
    todo: list[int] = []
    conversations: list[Conversation] = []
    priors: list[ConversationState | None] = []
    rejected_of: dict[int, list[RejectedRow]] = {}
    for g, (conversation_id, rows, prior) in enumerate(groups):
        conversation, rejected = conversation_from_rows(conversation_id, rows)
        if conversation is None:
            outcomes[g] = RowsScore(None, prior, rejected)
            continue
        previous = None
        if prior is not None:
            found = _prior_problem(prior)
            if found is not None:  # values of a prior made by hand or edited: this one only
                outcomes[g] = RowsScore(None, prior, [*rejected, RejectedRow(
                    str(conversation_id), "prior state", found[0],
                    Errors.E211.format(field=found[0], problem=found[1]))])
                continue
            try:
                previous = ConversationState.from_bytes(prior.state,
                                                        scorer.extractor.catalogue)
            except StateError as exc:  # a damaged or foreign prior: this conversation only
                outcomes[g] = RowsScore(None, prior, [*rejected, RejectedRow(
                    str(conversation_id), "prior state", "state", str(exc))])
                continue
            known = {p.id for p in conversation.participants}
            merged = tuple(replace(
                p, declared_age=p.declared_age if p.declared_age is not None
                else prior.declared_ages.get(p.id),
                age_assurance=p.age_assurance or prior.age_assurance.get(p.id))
                for p in conversation.participants)
            # participants silent in this batch keep their declared age and its assurance
            merged += tuple(Participant(pid, prior.declared_ages.get(pid),
                                        age_assurance=prior.age_assurance.get(pid))
                            for pid in {**prior.declared_ages, **prior.age_assurance}
                            if pid not in known)
            conversation = replace(conversation, participants=merged,
                                   relationship=_merged(prior.relationship,
                                                        conversation.relationship))
        todo.append(g)
        conversations.append(conversation)
        priors.append(previous)
        rejected_of[g] = rejected
    flagged_before = [groups[g][2].flagged_at_message if groups[g][2] is not None else None
                      for g in todo]
    scored = scorer.score_continued_many(conversations, priors, flagged_before, early=early)
    for g, conversation, (result, state) in zip(todo, conversations, scored, strict=True):
        if state is None:
            outcomes[g] = RowsScore(result, None, rejected_of[g])
            continue
        ages = {p.id: p.declared_age for p in conversation.participants
                if p.declared_age is not None}
        assurance = {p.id: p.age_assurance for p in conversation.participants
                     if p.age_assurance is not None}
        outcomes[g] = RowsScore(result, PriorState(state.to_bytes(), ages,
                                                   result.flagged_at_message, assurance,
                                                   conversation.relationship),
                                rejected_of[g], state.n_messages)
    return outcomes  # type: ignore[return-value]


def _prior_problem(prior: PriorState) -> tuple[str, str] | None:
    """(field, problem) of the first value of a prior state that the interchange reader
    would refuse (a prior table written by hand or edited), or None."""
    ages = prior.declared_ages
    if not isinstance(ages, Mapping) or any(
            type(k) is not str or type(v) is not int or not 0 <= v <= 130
            for k, v in ages.items()):
        return "declared_ages", "must map participant ids to integers in 0..130"
    problem = assurance_problem(prior.age_assurance)
    if problem is not None:
        return "age_assurance", problem
    if prior.relationship is not None:
        if not isinstance(prior.relationship, Relationship):
            return "relationship", "must be a Relationship or null"
        found = relationship_problem(prior.relationship)
        if found is not None:
            return found
    if prior.flagged_at_message is not None and (type(prior.flagged_at_message) is not int
                                                 or prior.flagged_at_message < 0):
        return "flagged_at_message", "must be a non-negative integer or null"
    return None


def _merged(before: Relationship | None, now: Relationship | None) -> Relationship | None:
    """The relationship known so far: this batch's given values over the earlier ones."""
    if before is None or now is None:
        return now or before
    return Relationship(*(b if n is None else n for b, n in zip(
        (before.family_link, before.contact_age_days, before.mutual_contacts),
        (now.family_link, now.contact_age_days, now.mutual_contacts), strict=True)))
