"""How the console shows figures to a person: durations, dates, reasons, risk factors."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .._features import RISK_FACTORS
from ..guard import CONFIRM_REASONS, DISMISS_REASONS

__all__ = ["DECISIONS", "REASON_LABELS", "age", "factor_rows", "time_left", "when"]

_DESCRIPTIONS = dict(RISK_FACTORS)
REASON_LABELS = {
    "solicitation_of_a_child": "Solicitation of a child (confirm: a supervisor may report it)",
    "no_solicitation": "No solicitation in the conversation",
    "peer_conversation": "A conversation between peers (children of a similar age)",
    "adult_conversation": "A conversation between adults",
    "family_or_professional": "A family member or a professional (teacher, coach, carer)",
    "insufficient_evidence": "The excerpt is not enough to decide",
}
# the decision form's choices: "<decision>:<reason>"
DECISIONS = tuple(f"confirm:{r}" for r in CONFIRM_REASONS) + tuple(
    f"dismiss:{r}" for r in DISMISS_REASONS)
CHANNELS = {"in_app": "the app's complaint form", "email": "e-mail", "post": "post",
            "phone": "telephone", "support": "the support desk"}
STATUS_LABELS = {"open": "waiting for a reviewer", "claimed": "being reviewed",
                 "confirmed": "confirmed, waiting for export", "dismissed": "dismissed",
                 "reported": "reported", "reinstated": "reinstated after a complaint"}


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"


def age(ts: float | None, now: float | None = None) -> str:
    """How long ago ``ts`` was, in words ("3 days")."""
    if ts is None:
        return "-"
    return _span((now or time.time()) - ts)


def time_left(deadline: float | None, now: float | None = None) -> str:
    """Time until a deadline, in words; "overdue" once it has passed."""
    if deadline is None:
        return "-"
    left = deadline - (now or time.time())
    return "overdue" if left <= 0 else _span(left)


def days_left(deadline: float | None, now: float | None = None) -> float:
    return ((deadline or 0.0) - (now or time.time())) / 86400.0


def when(ts: float | None) -> str:
    """A time as people read it (UTC, to the minute)."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


_LABELS = {
    "younger_p_minor": "Younger party likely a minor",
    "older_p_adult": "Older party likely an adult",
    "adult_minor_dyad": "An adult with a minor",
    "younger_age": "Age of the younger party",
    "older_age": "Age of the older party",
    "age_gap": "Age gap",
    "age_gap_sd": "Uncertainty of the age gap",
    "younger_age_evidence": "Evidence of the younger party's age",
    "older_age_evidence": "Evidence of the older party's age",
    "older_profile_mismatch": "Older party's profile age disagrees",
    "younger_profile_mismatch": "Younger party's profile age disagrees",
    "older_age_corrected": "Older party corrected a stated age",
    "older_adult_cues": "Older party mentions an adult's life",
    "stage_coverage": "Grooming stages covered",
    "escalation_order": "Stages in the documented order",
    "family_context": "Signs of a family relationship",
    "family_link": "Accounts linked as a family (provider)",
    "relationship_known": "A known relationship (provider)",
    "log_contact_age_days": "How long they have been in contact (provider)",
    "log_mutual_contacts": "Contacts in common (provider)",
    "log_messages": "Length of the conversation",
    "log_pair_messages": "Messages between these two",
    "group": "A group conversation",
}
_CATEGORIES = {
    "age_question": "questions about age", "flattery": "flattery", "trust": "building trust",
    "isolation": "isolation", "secrecy": "requests for secrecy",
    "supervision_check": "checks on supervision", "platform_move": "moves to another platform",
    "gift": "offers of gifts", "photo_request": "requests for photos",
    "video_request": "requests for video", "meeting_request": "requests to meet",
    "sexual_topic": "sexual topics",
}


def factor_label(name: str) -> str:
    """A risk factor's name as a reviewer reads it."""
    if name in _LABELS:
        return _LABELS[name]
    for side in ("older", "younger"):
        what = name.removeprefix(f"{side}_")
        if what != name and what in _CATEGORIES:
            return f"{side.capitalize()} party: {_CATEGORIES[what]}"
    return name.replace("_", " ")


def factor_rows(contributions: Mapping[str, float]) -> list[dict[str, Any]]:
    """The risk factors of a case, largest contribution first: name, description, the
    contribution (how much the score drops when that factor alone is set to its usual
    value in benign conversations) and a bar width in twentieths."""
    items = sorted(contributions.items(), key=lambda kv: -abs(float(kv[1])))
    top = max((abs(float(v)) for _, v in items), default=0.0) or 1.0
    return [{"name": k, "label": factor_label(k),
             "description": _DESCRIPTIONS.get(k, "(a factor this library does not describe)"),
             "contribution": float(v), "bar": round(20 * abs(float(v)) / top),
             "raises": float(v) >= 0} for k, v in items]


def figure(value: Any, digits: int = 1) -> str:
    """A number for a table ("-" for none)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
