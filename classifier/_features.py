"""Risk factors: a fixed, documented vector per conversation, computed from state only.

Art 3(1)(f) limits detection to "key indicators and objectively identified risk factors
such as age difference and the likely involvement of a child". This module turns the
numeric conversation state (never text) into those factors:

- per participant, an age estimate with its uncertainty and a probability of being a
  minor, from the declared profile age (weak: often false), disclosed ages, school-year
  bands and child- or adult-context cues;
- the dyad of the likely adult ("older") and the likely minor ("younger") and the age
  gap between them;
- direction-aware indicator rates: what the older party sends, and what the younger
  party sends (teenage peers talk alike; grooming is one-sided);
- stage coverage and order (escalation) of what the older party sends;
- traffic data: message count, who talks, reply latency, time span, night share, who
  started.

Teenage peers (both likely minors, small gap) score low by design (recital 6): every
model score is multiplied by :func:`peer_gate`, which goes to zero when both parties are
likely minors within two years of each other, whatever the indicators say.

>>> [name for name, _ in RISK_FACTORS][:3]
['younger_p_minor', 'older_p_adult', 'adult_minor_dyad']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ._state import ConversationState, ParticipantState
from .indicators import Catalogue

__all__ = [
    "FEATURE_NAMES",
    "MONOTONE_INCREASING",
    "PEER_GATE",
    "RISK_FACTORS",
    "AgeEstimate",
    "RiskFactorBuilder",
    "peer_gate",
]

RATE_CATEGORIES = ("age_question", "flattery", "relationship", "isolation", "secrecy",
                   "supervision_check", "platform_move", "gift", "photo_request",
                   "meeting_request", "sexual_topic")
STAGE_ORDER = ("friendship_forming", "relationship_forming", "risk_assessment", "exclusivity",
               "approach")

RISK_FACTORS: tuple[tuple[str, str], ...] = (
    ("younger_p_minor", "Probability that the younger party of the dyad is a minor."),
    ("older_p_adult", "Probability that the older party of the dyad is an adult."),
    ("adult_minor_dyad", "younger_p_minor x older_p_adult: likely an adult with a likely "
     "minor (near 0 for teenage peers and for adults)."),
    ("younger_age", "Age estimate of the younger party (years)."),
    ("older_age", "Age estimate of the older party (years)."),
    ("age_gap", "older_age - younger_age (years)."),
    ("age_gap_sd", "Uncertainty of the age gap (years, both estimates combined)."),
    ("younger_age_evidence", "1 if the younger party stated an age or a school year."),
    ("older_age_evidence", "1 if the older party stated an age or a school year."),
    ("older_profile_mismatch", "1 if the older party's profile age disagrees with the "
     "stated or inferred age by more than 3 years."),
    ("younger_profile_mismatch", "The same for the younger party (children often claim 18)."),
    *((f"older_rate_{c}", f"Indicators of category '{c}' sent by the older party, per "
       "message it sent.") for c in RATE_CATEGORIES),
    *((f"younger_rate_{c}", f"Indicators of category '{c}' sent by the younger party, per "
       "message it sent.") for c in RATE_CATEGORIES),
    ("stage_coverage", "Share of the five grooming stages (friendship forming, relationship "
     "forming, risk assessment, exclusivity, approach) the older party's indicators cover."),
    ("escalation_order", "Share of stage pairs the older party reached in the documented "
     "order (0 with fewer than two stages)."),
    ("log_messages", "log(1 + messages in the conversation)."),
    ("older_message_share", "Share of the messages sent by the older party."),
    ("log_reply_latency_younger", "log(1 + mean seconds the younger party takes to reply)."),
    ("log_span_hours", "log(1 + hours between the first and the last message)."),
    ("night_share", "Share of messages sent between 22:00 and 06:00 UTC."),
    ("older_started", "1 if the older party sent the first message."),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in RISK_FACTORS)
# Factors along which risk may only rise (monotone constraints in training).
MONOTONE_INCREASING = frozenset(
    {"younger_p_minor", "older_p_adult", "adult_minor_dyad", "age_gap", "stage_coverage",
     "escalation_order", "older_profile_mismatch"}
    | {f"older_rate_{c}" for c in RATE_CATEGORIES})

PEER_GATE = ("score x (1 - younger_p_minor x (1 - older_p_adult) x closeness), closeness 1 "
             "for an age gap of 2 years or less, falling linearly to 0 at 5 years "
             "(recital 6: consensual activity between adolescent peers is not targeted)")
_I_YOUNGER = FEATURE_NAMES.index("younger_p_minor")
_I_OLDER_ADULT = FEATURE_NAMES.index("older_p_adult")
_I_GAP = FEATURE_NAMES.index("age_gap")


def peer_gate(X: np.ndarray) -> np.ndarray:
    """Factor in [0, 1] per row: near 0 for two likely minors close in age (recital 6).

    >>> x = np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32)
    >>> x[:, _I_YOUNGER] = 0.95
    >>> x[0, _I_OLDER_ADULT], x[0, _I_GAP] = 0.05, 1.0   # two 14-year-olds
    >>> x[1, _I_OLDER_ADULT], x[1, _I_GAP] = 0.95, 20.0  # an adult and a child
    >>> [round(v, 3) for v in peer_gate(x).tolist()]
    [0.098, 1.0]
    """
    X = np.atleast_2d(X)
    closeness = np.clip((5.0 - np.abs(X[:, _I_GAP])) / 3.0, 0.0, 1.0)
    both_minors = X[:, _I_YOUNGER] * (1.0 - X[:, _I_OLDER_ADULT])
    return 1.0 - both_minors * closeness


_PRIOR_LOGIT = -0.85  # about 30% of accounts in a chat service are minors (assumed)


@dataclass(frozen=True, slots=True)
class AgeEstimate:
    """Age estimate of one participant (numbers only)."""

    age: float
    sd: float
    p_minor: float
    has_evidence: bool
    profile_mismatch: bool


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class RiskFactorBuilder:
    """Computes the risk-factor vector of a conversation state.

    Parameters
    ----------
    catalogue : Catalogue
        Gives the indicator -> category and category -> stage maps.

    Examples
    --------
    >>> from classifier.indicators import IndicatorExtractor
    >>> ext = IndicatorExtractor()
    >>> state = ConversationState("c", ext.catalogue)
    >>> state.update("a", 1.77e9, ext.extract("how old r u"))
    >>> state.update("b", 1.77e9 + 60, ext.extract("im 12"))
    >>> x = RiskFactorBuilder(ext.catalogue).transform(state, {"a": 35, "b": None})
    >>> x.shape == (len(FEATURE_NAMES),), round(float(x[FEATURE_NAMES.index("younger_age")]))
    (True, 12)
    """

    def __init__(self, catalogue: Catalogue) -> None:
        cats = tuple(catalogue.categories)
        self.sha256 = catalogue.sha256
        k = len(catalogue.indicators)
        self._onehot = np.zeros((k, len(cats)), dtype=np.float64)
        for i, ind in enumerate(catalogue.indicators):
            self._onehot[i, cats.index(ind.category)] = 1.0
        self._rate_cols = [cats.index(c) for c in RATE_CATEGORIES]
        self._child = cats.index("child_context")
        self._adult = cats.index("adult_context")
        self._stage_cats = [
            [cats.index(c) for c, info in catalogue.categories.items() if info["stage"] == s]
            for s in STAGE_ORDER
        ]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURE_NAMES

    def estimate_age(self, p: ParticipantState | None, declared: int | None) -> AgeEstimate:
        """Age, uncertainty and probability of being a minor for one participant."""
        logit = _PRIOR_LOGIT
        age = sd = math.nan
        evidence = False
        if p is not None:
            by_cat = p.counts @ self._onehot
            da, sa = p.disclosed_age, p.school_age
            if da.n:
                age, sd, evidence = da.mean, max(da.std, 1.0), True
                logit += 3.0 if age < 18 else -3.0
            elif sa.n:
                age = (sa.low + sa.high) / 2.0
                sd, evidence = (sa.high - sa.low) / 2.0 + 1.0, True
                logit += 2.5
            logit += 0.8 * min(by_cat[self._child], 3.0) - 0.8 * min(by_cat[self._adult], 3.0)
        if declared is not None:
            logit += 0.5 if declared < 18 else -0.3
        p_minor = _sigmoid(logit)
        if not evidence:
            inferred = 14.0 * p_minor + 32.0 * (1.0 - p_minor)
            age = inferred if declared is None else 0.5 * inferred + 0.5 * declared
            sd = 8.0
        mismatch = declared is not None and evidence and abs(declared - age) > 3.0
        return AgeEstimate(age, sd, p_minor, evidence, mismatch)

    def transform(self, state: ConversationState,
                  declared_ages: Mapping[str, int | None] | None = None) -> np.ndarray:
        """The risk-factor vector (float32, in :data:`FEATURE_NAMES` order)."""
        return self.transform_with_subject(state, declared_ages)[0]

    def transform_with_subject(self, state: ConversationState,
                               declared_ages: Mapping[str, int | None] | None = None,
                               ) -> tuple[np.ndarray, str | None]:
        """The risk-factor vector and the id of the older party (whom a flag is about)."""
        declared_ages = declared_ages or {}
        parts = sorted(state.participants.items(), key=lambda kv: -kv[1].n_messages)[:2]
        estimates = [(pid, p, self.estimate_age(p, declared_ages.get(pid))) for pid, p in parts]
        if len(estimates) == 1:
            estimates.append(("", None, self.estimate_age(None, None)))
        if not estimates:
            return np.zeros(len(FEATURE_NAMES), dtype=np.float32), None
        # older = the likelier adult; ties broken by the higher age estimate
        estimates.sort(key=lambda e: (e[2].p_minor, -e[2].age))
        (o_id, o, oe), (_y_id, y, ye) = estimates
        n_total = max(state.n_messages, 1)
        o_rates = self._rates(o)
        y_rates = self._rates(y)
        coverage, order = self._stages(o)
        latency = (y.reply_latency_sum / y.n_replies) if y is not None and y.n_replies else 0.0
        span_h = max(state.last_ts - state.first_ts, 0.0) / 3600.0 if state.n_messages else 0.0
        night = sum(p.n_night for p in state.participants.values()) / n_total
        values = [
            ye.p_minor, 1.0 - oe.p_minor, ye.p_minor * (1.0 - oe.p_minor),
            ye.age, oe.age, oe.age - ye.age, math.hypot(oe.sd, ye.sd),
            float(ye.has_evidence), float(oe.has_evidence),
            float(oe.profile_mismatch), float(ye.profile_mismatch),
            *o_rates, *y_rates,
            coverage, order,
            math.log1p(state.n_messages),
            (o.n_messages / n_total) if o is not None else 0.0,
            math.log1p(latency), math.log1p(span_h), night,
            float(state.first_sender == o_id),
        ]
        return np.asarray(values, dtype=np.float32), (o_id or None)

    def _rates(self, p: ParticipantState | None) -> np.ndarray:
        if p is None or not p.n_messages:
            return np.zeros(len(RATE_CATEGORIES))
        by_cat = p.counts @ self._onehot
        return by_cat[self._rate_cols] / p.n_messages

    def _stages(self, p: ParticipantState | None) -> tuple[float, float]:
        if p is None:
            return 0.0, 0.0
        firsts = [min((p.first_seen[c] for c in cats), default=math.inf)
                  for cats in self._stage_cats]
        seen = [(i, t) for i, t in enumerate(firsts) if math.isfinite(t)]
        coverage = len(seen) / len(STAGE_ORDER)
        if len(seen) < 2:
            return coverage, 0.0
        pairs = [(a, b) for k, a in enumerate(seen) for b in seen[k + 1:]]
        concordant = sum(1 for (_, ta), (_, tb) in pairs if ta <= tb)
        return coverage, concordant / len(pairs)
