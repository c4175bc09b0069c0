"""Conversations from message rows: one message per row, as DataFrames and streams hold them.

Spark, Flink or a message queue deliver messages one per row, not one conversation per
line. This module validates such rows and groups them into a :class:`Conversation` for
the scorer. A bad row is rejected with a coded reason naming the conversation, the row
and the field (never the text); the good rows of the same conversation are still
scored. Participant metadata rides on the rows: ``declared_age``, ``age_assurance`` and
``protected_role`` describe the row's sender; ``e2ee``, ``family_link``,
``contact_age_days`` and ``mutual_contacts`` the conversation (the provider's
relationship metadata on its pair, as :class:`Relationship`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ._conversation import (
    AGE_ASSURANCE,
    DEFAULT_LIMITS,
    MAX_COUNT,
    MAX_ID_CHARS,
    PROTECTED_ROLES,
    REGIONS,
    TEXT_MODALITY,
    Conversation,
    Message,
    Participant,
    Relationship,
    assurance_problem,
    is_encodable,
    parse_timestamp,
    relationship_problem,
)
from ._errors import Errors, FirewallError

__all__ = ["MessageRow", "RejectedRow", "StreamMessage", "check_row", "check_stream_message",
           "conversation_from_rows", "conversation_rows", "normal_declared_ages"]


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One message row as it comes from a table or a stream (values not yet checked).

    Parameters
    ----------
    record : str
        How an error names the row, for example ``"message_id 'm-17'"`` or ``"row 4"``.
    sender, ts, text, modality, declared_age, protected_role, e2ee
        The row's values; ``ts`` may be epoch seconds, ISO 8601 with a time zone or an
        aware datetime. Missing values are None (or NaN, as pandas gives them).
    age_assurance
        How the provider knows the sender's ``declared_age`` (``"self_declared"``,
        ``"estimated"``, ``"verified"`` or missing).
    family_link, contact_age_days, mutual_contacts
        The provider's relationship metadata on the conversation's pair (any row may
        carry it; the latest given value of each applies).
    protected_roles
        Participant id -> ``"helpline"``, ``"counselling"``, ``"medical"``, ``"legal"``
        or None (a mapping, or the list of pairs a table's map column gives): protected
        participants named on any row, whether or not they wrote in this batch, so that
        a child's messages to a helpline that has not answered yet are refused, not read.
    """

    record: str
    sender: Any
    ts: Any
    text: Any = field(repr=False)
    modality: Any = None
    declared_age: Any = None
    protected_role: Any = None
    e2ee: Any = None
    age_assurance: Any = None
    family_link: Any = None
    contact_age_days: Any = None
    mutual_contacts: Any = None
    protected_roles: Any = None

    def __reduce__(self) -> Any:
        # The substance firewall: message text never travels by pickle.
        raise FirewallError(Errors.E004.format(kind="MessageRow"))


@dataclass(frozen=True)
class StreamMessage:
    """One message of a stream of many conversations (``text=None`` for a non-text
    message, counted but never scanned).

    ``declared_ages`` (participant id -> profile age), ``age_assurance`` (participant id
    -> ``"self_declared"``, ``"estimated"`` or ``"verified"``: how the provider knows that
    age), ``relationship`` (the provider's metadata on the pair) and ``protected_role``
    (of the sender) carry what the provider knows, as a conversation's participants and
    relationship do; the latest given applies. ``protected_roles`` (participant id ->
    ``"helpline"``, ``"counselling"``, ``"medical"``, ``"legal"`` or None) names protected
    participants who have not written yet: a child's first message to a helpline is
    refused before it is read. A protected participant, by either field, or ``e2ee`` (an
    end-to-end-encrypted conversation) refuses the conversation: nothing is scanned and
    its numbers are dropped. ``region`` (``"EU"`` or ``"non-EU"``) is where the bytes
    scanned are counted for the annual report.
    """

    conversation_id: str
    sender: str
    ts: datetime | float | str  # aware datetime, epoch seconds or ISO 8601 with a zone
    text: str | None = field(repr=False)
    declared_ages: Mapping[str, int | None] | None = None
    e2ee: bool = False
    protected_role: str | None = None
    region: str = "EU"
    age_assurance: Mapping[str, str | None] | None = None
    relationship: Relationship | None = None
    protected_roles: Mapping[str, str | None] | None = None

    @property
    def protected(self) -> bool:
        """Whether the message says a participant of its conversation is protected."""
        return bool(self.protected_role) or bool(
            self.protected_roles and any(self.protected_roles.values()))

    def __reduce__(self) -> Any:
        raise FirewallError(Errors.E004.format(kind="StreamMessage"))


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that could not be used, with the coded reason (no message text in it)."""

    conversation_id: str | None
    record: str
    field: str
    reason: str


def _missing(value: Any) -> bool:
    """None, NaN (a float or numpy's) or pandas' NA: how tables say "no value"."""
    return (value is None or (isinstance(value, float) and value != value)
            or type(value).__name__ == "NAType")


def _is_bool(value: Any) -> bool:
    """A Python or numpy bool (never taken for a number)."""
    return isinstance(value, bool) or (getattr(value, "dtype", None) is not None
                                       and value.dtype.kind == "b")


class _RowCheck(Exception):
    def __init__(self, field_name: str, problem: str | None = None) -> None:
        self.field_name, self.problem = field_name, problem


def _age(value: Any) -> int | None:
    if _missing(value):
        return None
    if _is_bool(value):
        raise _RowCheck("declared_age", "must be an integer")
    try:
        age = int(value)
    except (TypeError, ValueError, OverflowError):  # (inf: OverflowError)
        raise _RowCheck("declared_age", "must be an integer") from None
    if age != value or not 0 <= age <= 130:
        raise _RowCheck("declared_age", "must be an integer in 0..130")
    return age


def normal_declared_ages(value: Any) -> dict[str, int | None]:
    """A stream message's ``declared_ages`` checked (participant id -> an integer age in
    0..130, or null) and as plain ints; a ValueError says what is wrong, never a value."""
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of participant id to age")
    out = {}
    for pid, age in value.items():
        if not isinstance(pid, str) or not pid:
            raise ValueError("keys must be non-empty participant ids")
        try:
            out[pid] = _age(age)
        except _RowCheck as bad:
            raise ValueError(bad.problem) from None
    return out


def _assurance(value: Any) -> str | None:
    if _missing(value):
        return None
    if type(value) is not str or value not in AGE_ASSURANCE:
        raise _RowCheck("age_assurance", f"must be null or one of {', '.join(AGE_ASSURANCE)}")
    return value


_ROLES_PROBLEM = f"must map participant ids to null or one of {', '.join(PROTECTED_ROLES)}"


def _protected_roles(value: Any) -> dict[str, str]:
    """The protected participants a row or stream message names (id -> role; ids whose
    role is null left out): from a mapping or a list of (id, role) pairs."""
    if value is None or (not isinstance(value, Mapping | list | tuple) and _missing(value)):
        return {}
    problem = _RowCheck("protected_roles", _ROLES_PROBLEM)
    try:
        pairs = list(value.items() if isinstance(value, Mapping) else value)
    except TypeError:
        raise problem from None
    roles: dict[str, str] = {}
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise problem
        pid, role = pair
        if not isinstance(pid, str) or not pid or len(pid) > MAX_ID_CHARS \
                or not is_encodable(pid):
            raise problem
        if role is None or _missing(role):
            continue
        if role not in PROTECTED_ROLES:
            raise problem
        roles[pid] = role
    return roles


def _relationship(family_link: Any, contact_age_days: Any,
                  mutual_contacts: Any) -> tuple[bool | None, int | None, int | None]:
    """A row's relationship values (missing ones None), checked by the interchange
    reader's rules (:func:`relationship_problem`) once a table's forms are taken as
    Python's: a numpy bool as a bool, a whole float (a count column with missing values
    gives ``3.0``) or a whole decimal as an int (as declared ages are)."""
    if family_link is None and contact_age_days is None and mutual_contacts is None:
        return None, None, None  # the common row: no metadata
    values: list[Any] = []
    for value in (family_link, contact_age_days, mutual_contacts):
        if _missing(value):
            value = None
        elif _is_bool(value):
            value = bool(value)
        elif isinstance(value, numbers.Real | Decimal) and not isinstance(value, int) and \
                math.isfinite(value) and abs(value) <= MAX_COUNT and float(value).is_integer():
            value = int(value)  # a whole float, numpy's too, or a decimal (Spark's DecimalType)
        elif isinstance(value, numbers.Integral):
            value = int(value)  # numpy's integers
        values.append(value)
    found = relationship_problem(Relationship(*values))
    if found is not None:
        raise _RowCheck(found[0].removeprefix("relationship."), found[1])
    return values[0], values[1], values[2]


def _check_values(sender: Any, ts: Any, text: Any, modality: Any, protected_role: Any,
                  e2ee: Any) -> tuple[datetime, str, str, str | None, bool]:
    """A row's values checked, in field order: (ts, text, modality, role, e2ee). The
    common value of each field (a string, an aware datetime, a bool) is checked first."""
    if not isinstance(sender, str) or not sender:
        raise _RowCheck("sender") if _missing(sender) else \
            _RowCheck("sender", "must be a non-empty string")
    if len(sender) > MAX_ID_CHARS or not is_encodable(sender):
        raise _RowCheck("sender", f"must be UTF-8 of at most {MAX_ID_CHARS} characters")
    if _missing(ts):
        raise _RowCheck("ts")
    when = parse_timestamp(ts)
    if when is None:
        raise _RowCheck("ts", "not epoch seconds, nor ISO 8601 with a time zone")
    if not isinstance(modality, str):
        if not _missing(modality):
            raise _RowCheck("modality", "must be a string")
        modality = TEXT_MODALITY
    if modality == TEXT_MODALITY:
        if not isinstance(text, str):
            raise _RowCheck("text") if _missing(text) else \
                _RowCheck("text", "must be a string")
        if len(text) > DEFAULT_LIMITS.max_message_chars:
            raise _RowCheck("text", f"longer than {DEFAULT_LIMITS.max_message_chars} characters")
        if not is_encodable(text):
            raise _RowCheck("text", "holds a lone surrogate (not encodable as UTF-8)")
    else:
        text = ""  # a non-text message is counted, never scanned
    role = None if protected_role is None or _missing(protected_role) else protected_role
    if role is not None and role not in PROTECTED_ROLES:
        raise _RowCheck("protected_role", f"must be null or one of {', '.join(PROTECTED_ROLES)}")
    if e2ee is not False and e2ee is not True:
        e2ee = False if _missing(e2ee) else e2ee
        if e2ee not in (True, False):  # also numpy.bool_
            raise _RowCheck("e2ee", "must be true or false")
    return when, text, modality, role, bool(e2ee)


@dataclass(frozen=True, slots=True)
class _Checked:
    message: Message
    age: int | None
    role: str | None
    e2ee: bool
    assurance: str | None
    relationship: tuple[bool | None, int | None, int | None]
    others: dict[str, str]  # protected participants the row names (protected_roles)


def _check(row: MessageRow) -> _Checked:
    ts, text, modality, role, e2ee = _check_values(row.sender, row.ts, row.text, row.modality,
                                                   row.protected_role, row.e2ee)
    return _Checked(Message(row.sender, ts, text, modality), _age(row.declared_age), role,
                    e2ee, _assurance(row.age_assurance),
                    _relationship(row.family_link, row.contact_age_days, row.mutual_contacts),
                    _protected_roles(row.protected_roles))


def _rejected(conversation_id: str | None, record: str, bad: _RowCheck) -> RejectedRow:
    template = Errors.E210 if bad.problem is None else Errors.E211
    return RejectedRow(conversation_id, record, bad.field_name,
                       template.format(field=bad.field_name, problem=bad.problem))


def _problem(conversation_id: Any, sender: Any, ts: Any, text: Any, modality: Any,
             protected_role: Any, e2ee: Any, declared_age: Any, age_assurance: Any = None,
             relationship: tuple[Any, Any, Any] = (None, None, None),
             protected_roles: Any = None) -> _RowCheck | None:
    """The first problem of a row (its conversation id, then its fields), or None."""
    if _missing(conversation_id) or not isinstance(conversation_id, str) or not conversation_id:
        return _RowCheck("conversation_id")
    try:
        _check_values(sender, ts, text, modality, protected_role, e2ee)
        _age(declared_age)
        _assurance(age_assurance)
        _relationship(*relationship)
        _protected_roles(protected_roles)
    except _RowCheck as bad:
        return bad
    return None


def _named(conversation_id: Any, record: str, bad: _RowCheck) -> RejectedRow:
    """The rejection of a row, under its conversation unless its id is what is wrong."""
    return _rejected(None if bad.field_name == "conversation_id" else conversation_id, record,
                     bad)


def check_row(conversation_id: Any, row: MessageRow) -> RejectedRow | None:
    """Why one row (of a stream, say) cannot be used, or None if it can."""
    bad = _problem(conversation_id, row.sender, row.ts, row.text, row.modality,
                   row.protected_role, row.e2ee, row.declared_age, row.age_assurance,
                   (row.family_link, row.contact_age_days, row.mutual_contacts),
                   row.protected_roles)
    return None if bad is None else _named(conversation_id, row.record, bad)


def check_stream_message(message: StreamMessage, position: int) -> RejectedRow | None:
    """Why a stream message cannot be used (named by its position in the micro-batch)."""
    cid = message.conversation_id
    if message.region not in REGIONS:
        return _rejected(cid if isinstance(cid, str) else None, f"micro-batch row {position}",
                         _RowCheck("region", f"must be one of {', '.join(REGIONS)}"))
    bad = _problem(cid, message.sender, message.ts, message.text,
                   TEXT_MODALITY if message.text is not None else "not_text",
                   message.protected_role, message.e2ee, None)
    if bad is None and message.protected_roles is not None:
        try:  # a stream message takes a mapping only (rows also take a table's pairs)
            if not isinstance(message.protected_roles, Mapping):
                raise _RowCheck("protected_roles", _ROLES_PROBLEM)
            _protected_roles(message.protected_roles)
        except _RowCheck as found:
            bad = found
    if bad is None and message.declared_ages:
        try:
            normal_declared_ages(message.declared_ages)
        except ValueError as found:
            bad = _RowCheck("declared_ages", str(found))
    if bad is None and message.age_assurance is not None:
        problem = assurance_problem(message.age_assurance)
        bad = None if problem is None else _RowCheck("age_assurance", problem)
    if bad is None and message.relationship is not None:
        if not isinstance(message.relationship, Relationship):
            bad = _RowCheck("relationship", "must be a Relationship or null")
        elif (found := relationship_problem(message.relationship)) is not None:
            bad = _RowCheck(*found)
    return None if bad is None else _named(cid, f"micro-batch row {position}", bad)


def conversation_from_rows(conversation_id: Any, rows: Iterable[MessageRow],
                           ) -> tuple[Conversation | None, list[RejectedRow]]:
    """Validate the rows of one conversation and build it.

    Messages are ordered by time, ties kept in row order. A sender's last non-missing
    ``declared_age`` is its declared age, its last ``age_assurance`` how the provider
    knows it; the last non-missing value of each relationship field applies to the
    conversation; any ``protected_role`` or ``e2ee`` on any row, and any participant a
    row's ``protected_roles`` names, applies to the whole conversation (it will be
    refused, not scanned); a participant named there who sent no row joins the
    conversation's participants.

    Returns
    -------
    (Conversation or None, list of RejectedRow)
        None when no row is usable.

    Examples
    --------
    >>> rows = [MessageRow("row 0", "u-1", 1_772_000_000, "hi", declared_age=30),
    ...         MessageRow("row 1", "u-2", "yesterday", "hello")]
    >>> conv, rejected = conversation_from_rows("c-1", rows)
    >>> len(conv.messages), rejected[0].field, rejected[0].reason[:6]
    (1, 'ts', '[E211]')
    """
    rows = list(rows)
    if _missing(conversation_id) or not isinstance(conversation_id, str) or not conversation_id:
        return None, [_rejected(None, r.record, _RowCheck("conversation_id")) for r in rows]
    rejected: list[RejectedRow] = []
    kept: list[tuple[Message, int]] = []
    ages: dict[str, int | None] = {}
    roles: dict[str, str | None] = {}
    assurances: dict[str, str | None] = {}
    relationship: list[Any] = [None, None, None]
    others: dict[str, str] = {}
    e2ee = False
    for position, row in enumerate(rows):
        try:
            got = _check(row)
        except _RowCheck as bad:
            rejected.append(_rejected(conversation_id, row.record, bad))
            continue
        sender = got.message.sender
        kept.append((got.message, position))
        if got.age is not None or sender not in ages:
            ages[sender] = got.age if got.age is not None else ages.get(sender)
        if got.role is not None or sender not in roles:
            roles[sender] = got.role or roles.get(sender)
        if got.assurance is not None or sender not in assurances:
            assurances[sender] = got.assurance or assurances.get(sender)
        relationship = [old if new is None else new
                        for old, new in zip(relationship, got.relationship, strict=True)]
        e2ee = e2ee or got.e2ee
        for pid, role in got.others.items():
            others.setdefault(pid, role)
    if not kept:
        return None, rejected
    kept.sort(key=lambda mp: (mp[0].ts, mp[1]))
    participants = tuple(Participant(pid, ages[pid], roles[pid] or others.get(pid),
                                     age_assurance=assurances[pid]) for pid in ages)
    participants += tuple(Participant(pid, None, role) for pid, role in others.items()
                          if pid not in ages)
    return Conversation(conversation_id, participants, tuple(m for m, _ in kept),
                        e2ee=e2ee, relationship=Relationship(*relationship)
                        if any(v is not None for v in relationship) else None), rejected


def conversation_rows(conversation: Conversation) -> Iterator[dict[str, Any]]:
    """The inverse: one dict per message of an interchange-format conversation.

    Each row carries its sender's ``declared_age``, ``age_assurance`` and
    ``protected_role``, the conversation's relationship fields, its protected participants
    (``protected_roles``, id -> role, or None when it has none: so that one who never
    wrote still refuses the conversation read back from rows), and a ``message_id`` of
    the form ``<conversation_id>/<index>``; ``ts`` is epoch seconds.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> conv = Conversation("c-1", (Participant("u-1", 30),),
    ...                     (Message("u-1", datetime(2026, 3, 1, tzinfo=UTC), "hi"),))
    >>> row = next(conversation_rows(conv))
    >>> row["message_id"], row["declared_age"], row["ts"]
    ('c-1/0', 30, 1772323200.0)
    """
    people = {p.id: p for p in conversation.participants}
    rel = conversation.relationship or Relationship()
    protected = {p.id: p.protected_role for p in conversation.participants
                 if p.protected_role} or None
    for i, m in enumerate(conversation.messages):
        p = people.get(m.sender)
        yield {"conversation_id": conversation.conversation_id,
               "message_id": f"{conversation.conversation_id}/{i}", "sender": m.sender,
               "ts": m.ts.timestamp(), "text": m.text if m.is_text else None,
               "modality": m.modality,
               "declared_age": p.declared_age if p is not None else None,
               "protected_role": p.protected_role if p is not None else None,
               "e2ee": conversation.e2ee,
               "age_assurance": p.age_assurance if p is not None else None,
               "family_link": rel.family_link, "contact_age_days": rel.contact_age_days,
               "mutual_contacts": rel.mutual_contacts, "protected_roles": protected}
