"""Risk factors: a fixed, documented vector per ordered pair of participants, from state.

Art 3(1)(f) limits detection to "key indicators and objectively identified risk factors
such as age difference and the likely involvement of a child". This module turns the
numeric conversation state (never text) into those factors, for each **ordered pair**
(A, B) of participants: A taken as the possible adult, B as the possible minor. Every
pair is scored; the riskiest pair decides, and its A is the subject a flag is about. So
in a group an adult who singles out one child is paired with that child, and in a
one-to-one conversation both readings (who is the adult?) are weighed.

- Age: per participant an age estimate with its uncertainty and a probability of being a
  minor, from stated ages (and bare numbers that answer an age question), corrections,
  school-year bands, decades, child- and adult-context cues and the profile age, which
  counts as strong evidence when the provider estimated or verified it
  (``age_assurance``) and as weak evidence when it is self-declared.
- Direction: what A sent towards B, per indicator category (messages carrying it, on a
  log scale); what B sent towards A.
- Stages: how many of the documented grooming stages A's indicators cover, and in what
  order.
- Relationship: family or known-relationship cues in the messages, and the provider's
  metadata on the pair (family link, days known, mutual contacts), all risk-reducing.
- Traffic: how long the conversation is (log scale) and whether it is a group.

Factors that help on one author's data and hurt on others' (reply latency, time of day,
who started, who asks whose age) are not used (see the factor-stability report).

Every factor that may only raise risk is monotone increasing in training; the message
counts are monotone decreasing, so that a message without any indicator can never raise
a score (the stream scorer relies on it). Teenage peers score low by design (recital 6):
every score is multiplied by :func:`peer_gate`.

>>> [name for name, _ in RISK_FACTORS][:3]
['younger_p_minor', 'older_p_adult', 'adult_minor_dyad']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._state import NOBODY, OVERFLOW_ID, ConversationState, ParticipantState
from .indicators import Catalogue

if TYPE_CHECKING:
    from ._text import MessageColumns

__all__ = [
    "FACTOR_VERSION",
    "FEATURE_NAMES",
    "MONOTONE_DECREASING",
    "MONOTONE_INCREASING",
    "PEER_GATE",
    "RISK_FACTORS",
    "AgeEstimate",
    "FactorContext",
    "RiskFactorBuilder",
    "gate",
    "peer_gate",
]

# The definitions below (names, order, constants) are versioned: a model records the
# version it was trained with, and loading checks it (M006).
FACTOR_VERSION = "2.5"
RISK_CATEGORIES = ("age_question", "flattery", "trust", "isolation", "secrecy",
                   "supervision_check", "platform_move", "gift", "photo_request",
                   "video_request", "meeting_request", "sexual_topic")
YOUNGER_CATEGORIES = tuple(c for c in RISK_CATEGORIES if c != "age_question")
STAGE_ORDER = ("friendship_forming", "relationship_forming", "risk_assessment", "exclusivity",
               "approach")
PRIOR_LOGIT = -0.85  # about 30% of accounts in a chat service are minors (assumed)
STAGE_FLOOR = 0.02
ASSURANCE_WEIGHT = {"verified": 5.0, "estimated": 3.0, "self_declared": 1.0, None: 1.0}
CONSTANTS = {"prior_logit": PRIOR_LOGIT, "stated_age_logit": 3.5, "retracted_age_logit": 1.5,
             "school_logit": 2.5, "context_logit": 0.7, "context_cap": 3,
             "assurance_weight": {str(k): v for k, v in ASSURANCE_WEIGHT.items()},
             "peer_gate": [2.0, 5.0], "evidence_gate": [0.5, 0.5], "adult_gate": 0.25,
             "stage_floor": STAGE_FLOOR}

RISK_FACTORS: tuple[tuple[str, str], ...] = (
    ("younger_p_minor", "Probability that B, the possible minor, is a minor."),
    ("older_p_adult", "Probability that A, the possible adult, is an adult."),
    ("adult_minor_dyad", "younger_p_minor x older_p_adult: likely an adult with a likely "
     "minor (near 0 for teenage peers and for two adults)."),
    ("younger_age", "Age estimate of B (years)."),
    ("older_age", "Age estimate of A (years)."),
    ("age_gap", "older_age - younger_age (years)."),
    ("age_gap_sd", "Uncertainty of the age gap (years, both estimates combined)."),
    ("younger_age_evidence", "How strong the evidence is that B is a minor (0: none; 1: a "
     "stated age, an answered age question or a verified profile age)."),
    ("older_age_evidence", "How strong the evidence of A's age is (0 to 1)."),
    ("older_profile_mismatch", "1 if A's profile age disagrees with the stated or inferred "
     "age by more than 3 years."),
    ("younger_profile_mismatch", "The same for B (children often claim 18)."),
    ("older_age_corrected", "1 if A corrected or withdrew an age claimed before ('im "
     "actually 24', 'im not 17')."),
    ("older_adult_cues", "Cues of an adult's life in A's messages (work, driving, own home, "
     "spouse; 0 to 1, capped at three): they contradict a teen age A may claim."),
    *((f"older_{c}", f"Share of A's messages to B that carry '{c}' indicators.")
      for c in RISK_CATEGORIES),
    *((f"younger_{c}", f"Share of B's messages to A that carry '{c}' indicators.")
      for c in YOUNGER_CATEGORIES),
    ("stage_coverage", "Share of the five grooming stages (friendship forming, relationship "
     "forming, risk assessment, exclusivity, approach) A's indicators cover."),
    ("escalation_order", "Share of stage pairs A reached in the documented order (0 with "
     "fewer than two stages)."),
    ("family_context", "Messages (either way) with family or known-relationship cues (log "
     "scale): kinship address, shared family, a surprise kept from a relative."),
    ("family_link", "1 if the provider links the two accounts in a family or "
     "parental-control group."),
    ("relationship_known", "1 if the provider supplied relationship metadata for the pair."),
    ("log_contact_age_days", "log(1 + days the two accounts have been contacts), 0 if "
     "unknown."),
    ("log_mutual_contacts", "log(1 + contacts the two share), 0 if unknown."),
    ("log_messages", "log(1 + messages in the conversation)."),
    ("log_pair_messages", "log(1 + messages from A to B)."),
    ("group", "1 if more than two people take part."),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in RISK_FACTORS)
MONOTONE_INCREASING = frozenset(
    {"younger_p_minor", "older_p_adult", "adult_minor_dyad", "age_gap", "stage_coverage",
     "escalation_order", "older_profile_mismatch", "older_age_corrected", "older_adult_cues",
     "younger_age_evidence"} | {f"older_{c}" for c in RISK_CATEGORIES}
    | {f"younger_{c}" for c in YOUNGER_CATEGORIES})
# A message that carries no indicator, no age and no new participant can only lower a
# score: the shares it dilutes are monotone increasing, the message counts it raises are
# monotone decreasing, and nothing else it touches (the stream scorer relies on this)
MONOTONE_DECREASING = frozenset({"family_context", "family_link", "log_messages",
                                 "log_pair_messages"})

PEER_GATE = ("score x (1 - younger_p_minor x (1 - older_p_adult) x closeness), closeness 1 "
             "for an age gap of 2 years or less, falling linearly to 0 at 5 years "
             "(recital 6: consensual activity between adolescent peers is not targeted); "
             "times (0.5 + 0.5 x younger_age_evidence): with no evidence that a minor "
             "takes part, no score exceeds half of what the model gives; times "
             "(1 - 0.25 x (1 - older_p_adult) x older_age_evidence) when A's messages hold "
             "no cue of an adult's life: a pair whose possible adult has evidence of being a "
             "minor, and nothing that contradicts it, scores at most three quarters (the pair "
             "the other way round is scored too)")
_I = {name: i for i, name in enumerate(FEATURE_NAMES)}


def peer_gate(X: np.ndarray) -> np.ndarray:
    """Factor in [0, 1] per row: near 0 for two likely minors close in age (recital 6).

    >>> x = np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32)
    >>> x[:, _I["younger_p_minor"]] = 0.95
    >>> x[0, _I["older_p_adult"]], x[0, _I["age_gap"]] = 0.05, 1.0   # two 14-year-olds
    >>> x[1, _I["older_p_adult"]], x[1, _I["age_gap"]] = 0.95, 20.0  # an adult and a child
    >>> [round(v, 3) for v in peer_gate(x).tolist()]
    [0.098, 1.0]
    """
    X = np.atleast_2d(X)
    near, far = CONSTANTS["peer_gate"]
    closeness = np.clip((far - np.abs(X[:, _I["age_gap"]])) / (far - near), 0.0, 1.0)
    both_minors = X[:, _I["younger_p_minor"]] * (1.0 - X[:, _I["older_p_adult"]])
    return 1.0 - both_minors * closeness


def gate(X: np.ndarray) -> np.ndarray:
    """What multiplies the model's probability: the peer gate and the evidence gate."""
    X = np.atleast_2d(X)
    base, slope = CONSTANTS["evidence_gate"]
    evidence = base + slope * np.clip(X[:, _I["younger_age_evidence"]], 0.0, 1.0)
    # A, the possible adult, with evidence of being a minor: an adult is what the pair lacks
    minor_a = ((1.0 - X[:, _I["older_p_adult"]]) * np.clip(X[:, _I["older_age_evidence"]], 0, 1)
               * (X[:, _I["older_adult_cues"]] <= 0.0))  # one cue of an adult's life: no gate
    return peer_gate(X) * evidence * (1.0 - CONSTANTS["adult_gate"] * minor_a)


@dataclass(frozen=True)
class FactorContext:
    """What the factors may know besides the messages: profile ages, how the provider knows
    them, and provider metadata on the pair (numbers and codes only)."""

    declared: Mapping[str, int | None] = field(default_factory=dict)
    assurance: Mapping[str, str | None] = field(default_factory=dict)
    family_link: bool | None = None
    contact_age_days: int | None = None
    mutual_contacts: int | None = None

    @classmethod
    def of(cls, conversation: Any) -> FactorContext:
        """The context of an interchange-format :class:`Conversation`."""
        rel = conversation.relationship
        return cls({p.id: p.declared_age for p in conversation.participants},
                   {p.id: p.age_assurance for p in conversation.participants},
                   rel.family_link if rel else None, rel.contact_age_days if rel else None,
                   rel.mutual_contacts if rel else None)

    @classmethod
    def coerce(cls, value: FactorContext | Mapping[str, int | None] | None) -> FactorContext:
        if isinstance(value, FactorContext):
            return value
        return cls(dict(value or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"declared": dict(self.declared), "assurance": dict(self.assurance),
                "family_link": self.family_link, "contact_age_days": self.contact_age_days,
                "mutual_contacts": self.mutual_contacts}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FactorContext:
        return cls(dict(d.get("declared") or {}), dict(d.get("assurance") or {}),
                   d.get("family_link"), d.get("contact_age_days"), d.get("mutual_contacts"))


@dataclass(frozen=True, slots=True)
class AgeEstimate:
    """Age estimate of one participant (numbers only)."""

    age: float
    sd: float
    p_minor: float
    minor_evidence: float  # 0..1: how strongly the evidence says "a minor"
    evidence: float  # 0..1: how strongly the evidence says anything about the age
    profile_mismatch: bool
    corrected: bool
    adult_cues: float = 0.0  # 0..1: cues of an adult's life in the participant's messages


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class RiskFactorBuilder:
    """Computes the risk-factor vectors of a conversation state.

    Parameters
    ----------
    catalogue : Catalogue
        Gives the indicator -> category and category -> stage maps.

    Examples
    --------
    >>> from classifier import Conversation, IndicatorExtractor, Message, conversation_state
    >>> from datetime import datetime, UTC
    >>> ext = IndicatorExtractor()
    >>> t = datetime(2026, 9, 1, tzinfo=UTC)
    >>> conv = Conversation("c", (), (Message("a", t, "how old r u"), Message("b", t, "12")))
    >>> X, pairs = RiskFactorBuilder(ext.catalogue).pair_matrix(conversation_state(conv, ext),
    ...                                                         {"a": 35, "b": None})
    >>> pairs, round(float(X[0, FEATURE_NAMES.index("younger_age")]))
    ([('a', 'b'), ('b', 'a')], 12)
    """

    def __init__(self, catalogue: Catalogue) -> None:
        cats = tuple(catalogue.categories)
        self.sha256 = catalogue.sha256
        k = len(catalogue.indicators)
        self._onehot = np.zeros((k, len(cats)), dtype=np.float64)
        for i, ind in enumerate(catalogue.indicators):
            self._onehot[i, cats.index(ind.category)] = 1.0
        self._cat = {c: i for i, c in enumerate(cats)}
        self._n_categories = len(cats)
        self._older = [self._cat[c] for c in RISK_CATEGORIES]
        self._younger = [self._cat[c] for c in YOUNGER_CATEGORIES]
        self._family = self._cat.get("family_context", -1)
        self._child = self._cat["child_context"]
        self._adult = self._cat["adult_context"]
        self._child_indicators = np.flatnonzero(self._onehot[:, self._child])
        self._adult_indicators = np.flatnonzero(self._onehot[:, self._adult])
        self._child_list = self._child_indicators.tolist()
        self._adult_list = self._adult_indicators.tolist()
        self._stage_cats = [
            [self._cat[c] for c, info in catalogue.categories.items() if info["stage"] == s]
            for s in STAGE_ORDER
        ]

    def context_of(self, row: np.ndarray) -> tuple[int, int, bool]:
        """(child-context, adult-context) indicators of one message's count row, and
        whether it carries any other indicator."""
        values = row.tolist()
        child = sum(values[k] for k in self._child_list)
        adult = sum(values[k] for k in self._adult_list)
        return child, adult, sum(values) > child + adult

    def inert(self, row: np.ndarray, child_before: float, adult_before: float) -> bool:
        """Whether a message's indicators (``row``) change no risk factor, given how many
        child- and adult-context indicators its sender had counted before it: every one of
        them of those two kinds, and of each kind it carries the sender has reached
        ``context_cap`` already (the age estimate reads no more, and no other factor
        reads the context categories). A plain message is inert."""
        child, adult, other = self.context_of(row)
        cap = CONSTANTS["context_cap"]
        return not other and (child == 0 or child_before >= cap) and (
            adult == 0 or adult_before >= cap)

    def relevant_positions(self, columns: MessageColumns, state: ConversationState) -> list[int]:
        """The messages of a run after which a score can rise, given the state before the
        run: an indicator that changes a factor (not a context indicator past the age
        estimate's cap, see :meth:`inert`), age evidence, a sender new to the
        conversation, and in a group every change of speaker (a new pair may form). Any
        other message only lowers a score."""
        marked = set(columns.ages)
        known = set(state.participants)
        previous = state.last_sender
        for i, sender in enumerate(columns.senders):
            if sender not in known:
                known.add(sender)
                marked.add(i)
            elif len(known) > 2 and sender != previous:
                marked.add(i)
            previous = sender
        running: dict[str, list[float]] = {}  # each sender's context indicators so far
        for i in np.flatnonzero(columns.counts.any(axis=1)).tolist():
            row, sender = columns.counts[i], columns.senders[i]
            counted = running.get(sender)
            if counted is None:  # a pooled sender starts from none: scored more, never less
                counted = running[sender] = list(self.context_counts(
                    state.participants.get(sender)))
            if not self.inert(row, *counted):
                marked.add(i)
            child, adult, _ = self.context_of(row)
            counted[0] += child
            counted[1] += adult
        return sorted(marked)

    def prefix_matrices(self, state: ConversationState, columns: MessageColumns,
                        context: FactorContext | Mapping[str, int | None] | None = None, *,
                        also: ConversationState | None = None,
                        positions: Sequence[int] | None = None,
                        ) -> tuple[list[tuple[np.ndarray, list[tuple[str, str]]]], list[int]]:
        """Add a run of messages to ``state`` (and to ``also``, when given) and return the
        factor matrices (:meth:`pair_matrix`) after each of ``positions`` (default: its
        :meth:`relevant_positions`, the scores a stream would have seen rise; ``[]``: none,
        the run is only added), with those positions. ``state`` ends holding the whole
        run; its final matrix is not among them."""
        positions = list(self.relevant_positions(columns, state) if positions is None
                         else positions)
        mats = []
        done = 0
        for pos in [*positions, len(columns) - 1]:
            run = columns.slice(done, pos + 1)
            state.add(run)
            if also is not None:
                also.add(run)
            done = pos + 1
            if len(mats) < len(positions):
                mats.append(self.pair_matrix(state, context))
        return mats, positions

    def context_counts(self, p: ParticipantState | None) -> tuple[float, float]:
        """(child-context, adult-context) indicators a participant has counted."""
        return (0.0, 0.0) if p is None else self._context_counts(p)

    def _context_counts(self, p: ParticipantState) -> tuple[float, float]:
        """(child-context, adult-context) messages of a participant: integer sums, each
        indicator's count added in the catalogue's order."""
        counts = p.counts.tolist()
        return (float(sum(counts[i] for i in self._child_list)),
                float(sum(counts[i] for i in self._adult_list)))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def estimate_age(self, p: ParticipantState | None, declared: int | None,
                     assurance: str | None = None) -> AgeEstimate:
        """Age, uncertainty and probability of being a minor for one participant."""
        c = CONSTANTS
        logit = PRIOR_LOGIT
        age = sd = math.nan
        minor_ev = adult_ev = 0.0
        stated = False
        corrected = False
        adult_cues = 0.0
        if p is not None:
            # the child- and adult-context messages (integer sums: the same numbers as
            # the per-category matrix product, at a fraction of its cost)
            child_n, adult_n = self._context_counts(p)
            da, sa = p.disclosed_age, p.school_age
            corrected = math.isfinite(p.corrected_age) or p.n_retractions > 0
            if math.isfinite(p.corrected_age):
                age, sd, stated = p.corrected_age, 1.0, True
            elif da.n:
                age, sd, stated = da.mean, max(da.std, 1.0), True
            if stated:
                weight = c["retracted_age_logit"] if (p.n_retractions and age < 18
                                                      ) else c["stated_age_logit"]
                logit += weight if age < 18 else -weight
                minor_ev = 1.0 if age < 18 and not p.n_retractions else minor_ev
                adult_ev = 1.0 if age >= 18 else adult_ev
            elif sa.n:
                age = (sa.low + sa.high) / 2.0
                sd = (sa.high - sa.low) / 2.0 + 1.0
                minor = sa.high <= 18
                logit += c["school_logit"] if minor else -c["school_logit"]
                minor_ev = 0.8 if minor else minor_ev
            child = min(child_n, c["context_cap"])
            adult = min(adult_n, c["context_cap"])
            adult_cues = adult / c["context_cap"]
            logit += c["context_logit"] * (child - adult)
            minor_ev = max(minor_ev, 0.25 * child)
            adult_ev = max(adult_ev, 0.25 * adult)
            if p.n_retractions:
                logit -= 1.5  # who withdraws a claimed age was usually not that young
        if declared is not None:
            w = ASSURANCE_WEIGHT.get(assurance, 1.0)
            if assurance in (None, "self_declared"):
                w = 1.5 if declared < 16 else (1.0 if declared < 18 else 0.5)
            logit += w if declared < 18 else -w
            strength = {"verified": 1.0, "estimated": 0.8}.get(assurance or "", 0.5)
            if declared < 18:
                minor_ev = max(minor_ev, strength)
            else:
                adult_ev = max(adult_ev, strength)
        p_minor = _sigmoid(logit)
        evidence = max(minor_ev, adult_ev)
        if not math.isfinite(age):
            inferred = 14.0 * p_minor + 32.0 * (1.0 - p_minor)
            if declared is not None:
                trust = 0.8 if assurance in ("verified", "estimated") else 0.5
                age = trust * declared + (1.0 - trust) * inferred
            else:
                age = inferred
            sd = 2.0 if assurance in ("verified", "estimated") else 8.0
        mismatch = declared is not None and stated and abs(declared - age) > 3.0
        return AgeEstimate(age, sd, p_minor, minor_ev, evidence, mismatch, corrected,
                           adult_cues)

    def pair_matrix(self, state: ConversationState,
                    context: FactorContext | Mapping[str, int | None] | None = None,
                    ) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """One factor vector per ordered pair (A, B) with traffic from A to B (float32,
        in :data:`FEATURE_NAMES` order), and the pairs."""
        context = FactorContext.coerce(context)
        ids = [pid for pid in state.participants if pid != OVERFLOW_ID] or list(
            state.participants)
        estimates = {pid: self.estimate_age(state.participants[pid], context.declared.get(pid),
                                            context.assurance.get(pid)) for pid in ids}
        if len(ids) == 1:  # nobody answered yet: the silent other party, unknown
            ids = [*ids, NOBODY]
            estimates[NOBODY] = self.estimate_age(None, None)
        directed: dict[tuple[str, str], list[int]] = {}

        def towards(a: str, b: str) -> list[int]:  # each direction read once, as numbers
            row = directed.get((a, b))
            if row is None:
                row = directed[(a, b)] = state.directed(a, b).tolist()
            return row

        pairs = [(a, b) for a in ids for b in ids if a != b and a != NOBODY
                 and (b == NOBODY or towards(a, b)[-1] > 0
                      or towards(b, a)[-1] > 0 or len(ids) == 2)]
        if not pairs:
            return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32), []
        n_messages = state.n_messages
        group = float(len([p for p in state.participants if p != NOBODY]) > 2)
        family = self._family_messages(state)
        rel = context
        known = float(any(v is not None for v in (rel.family_link, rel.contact_age_days,
                                                  rel.mutual_contacts)))
        # the factors as Python numbers, one list per pair, converted to float32 once
        # (the same float64 arithmetic numpy would do)
        tail = [math.log1p(family), float(bool(rel.family_link)), known,
                math.log1p(rel.contact_age_days or 0), math.log1p(rel.mutual_contacts or 0),
                math.log1p(n_messages)]
        older, younger = self._older, self._younger
        orders: dict[str, float] = {}
        nobody = [0] * (self._n_categories + 1)
        rows = []
        for a, b in pairs:
            oe, ye = estimates[a], estimates[b]
            to_b = towards(a, b)
            to_a = towards(b, a) if b != NOBODY else nobody
            p = state.participants.get(a)
            order = orders.get(a)
            if order is None:
                order = orders[a] = self._stage_order(p)
            d_b, d_a = max(to_b[-1], 1), max(to_a[-1], 1)
            rows.append([
                ye.p_minor, 1.0 - oe.p_minor, ye.p_minor * (1.0 - oe.p_minor),
                ye.age, oe.age, oe.age - ye.age, math.hypot(oe.sd, ye.sd),
                ye.minor_evidence, oe.evidence,
                float(oe.profile_mismatch), float(ye.profile_mismatch), float(oe.corrected),
                oe.adult_cues,
                *[to_b[c] / d_b for c in older],
                *[to_a[c] / d_a for c in younger],
                self._stage_coverage(p, to_b), order,
                *tail, math.log1p(to_b[-1]), group,
            ])
        return np.array(rows, dtype=np.float32), pairs

    def transform(self, state: ConversationState,
                  context: FactorContext | Mapping[str, int | None] | None = None,
                  ) -> np.ndarray:
        """The vector of the likeliest (adult, minor) pair by age alone (for analysis;
        scoring weighs every pair with the model)."""
        return self.transform_with_subject(state, context)[0]

    def transform_with_subject(self, state: ConversationState,
                               context: FactorContext | Mapping[str, int | None] | None = None,
                               ) -> tuple[np.ndarray, str | None]:
        X, pairs = self.pair_matrix(state, context)
        if not pairs:
            return np.zeros(len(FEATURE_NAMES), dtype=np.float32), None
        best = int(np.argmax(X[:, _I["adult_minor_dyad"]] + 1e-3 * X[:, _I["age_gap"]]))
        return X[best], pairs[best][0]

    def _family_messages(self, state: ConversationState) -> float:
        if self._family < 0:
            return 0.0
        return float(sum(int(row[self._family]) for row in state.pairs.values()))

    def _stage_coverage(self, p: ParticipantState | None, to: list[int]) -> float:
        """Stages A reached towards B: a stage counts when at least 2% of A's messages to
        B, and at least one, carry it."""
        if p is None:
            return 0.0
        floor = max(1.0, STAGE_FLOOR * float(to[-1]))
        present = sum(1 for cats in self._stage_cats if any(to[c] >= floor for c in cats))
        return present / len(STAGE_ORDER)

    def _stage_order(self, p: ParticipantState | None) -> float:
        """The share of stage pairs A reached in the documented order (over every stage A
        ever reached: a plain message never changes it)."""
        if p is None:
            return 0.0
        first_seen = p.first_seen.tolist()
        firsts = [min([first_seen[c] for c in cats], default=math.inf)
                  for cats in self._stage_cats]
        seen = [(i, t) for i, t in enumerate(firsts) if math.isfinite(t)]
        if len(seen) < 2:
            return 0.0
        pairs = [(a, b) for k, a in enumerate(seen) for b in seen[k + 1:]]
        concordant = sum(1 for (_, ta), (_, tb) in pairs if ta <= tb)
        return concordant / len(pairs)
