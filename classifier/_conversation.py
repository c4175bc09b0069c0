"""Conversation model and the JSON Lines interchange format (DESIGN section 5).

Values that cross module boundaries are frozen dataclasses. A :class:`Message` keeps its
text out of ``repr`` and refuses to be pickled: the only component that may read the
text is the indicator extractor, and no copy of it should leak into logs, worker
processes or caches on the way there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ._errors import Errors, RecordError

__all__ = [
    "PROTECTED_ROLES",
    "REGIONS",
    "Conversation",
    "Message",
    "Participant",
    "RecordResult",
    "conversation_from_dict",
    "conversation_to_dict",
    "read_jsonl",
    "write_jsonl",
]

REGIONS = ("EU", "non-EU")
PROTECTED_ROLES = ("helpline", "counselling", "medical", "legal")
TEXT_MODALITY = "text"

_CONVERSATION_FIELDS = (
    "conversation_id", "region", "e2ee", "participants", "messages",
    "label", "subgroup", "offender",
)
_PARTICIPANT_FIELDS = ("id", "declared_age", "protected_role")
_MESSAGE_FIELDS = ("sender", "ts", "text", "modality")


@dataclass(frozen=True, slots=True)
class Participant:
    """A participant of a conversation.

    Parameters
    ----------
    id : str
        The provider's (pseudonymous) account id.
    declared_age : int or None
        The age on the account profile; may be missing or false.
    protected_role : str or None
        Set by the provider for verified helpline, counselling, medical or legal
        accounts; such conversations are not scanned at all.
    """

    id: str
    declared_age: int | None = None
    protected_role: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One message. ``text`` is hidden from ``repr`` and the object cannot be pickled."""

    sender: str
    ts: datetime
    text: str = field(repr=False)
    modality: str = TEXT_MODALITY

    @property
    def is_text(self) -> bool:
        """Whether the message is text and may be scanned (Art 1(2): audio is out of scope)."""
        return self.modality == TEXT_MODALITY

    def __reduce__(self) -> Any:
        # The substance firewall: message text never travels by pickle.
        raise TypeError("Message objects hold message text and cannot be pickled.")


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation in the interchange format.

    ``label``, ``subgroup`` and ``offender`` are evaluation-only fields.
    """

    conversation_id: str
    participants: tuple[Participant, ...]
    messages: tuple[Message, ...]
    region: str = "EU"
    e2ee: bool = False
    label: int | None = None
    subgroup: str | None = None
    offender: str | None = None

    def participant(self, participant_id: str) -> Participant | None:
        """Return the participant with this id, or None."""
        for p in self.participants:
            if p.id == participant_id:
                return p
        return None

    def __reduce__(self) -> Any:
        raise TypeError("Conversation objects hold message text and cannot be pickled.")


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of reading one record: a conversation, or an error naming line and field."""

    line: int
    conversation: Conversation | None = None
    error: RecordError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Checker:
    """Field checks for one record; every error names the line and the dotted field."""

    def __init__(self, line: int) -> None:
        self.line = line

    def fail(self, template: str, field_name: str, **kw: Any) -> RecordError:
        return RecordError(
            template.format(line=self.line, field=field_name, **kw), line=self.line,
            field=field_name,
        )

    def require(self, obj: dict[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            raise self.fail(Errors.E202, path)
        return obj[key]

    def typed(self, value: Any, types: type | tuple[type, ...], path: str, expected: str) -> Any:
        # bool is a subclass of int: never accept it where a number is expected
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            raise self.fail(Errors.E203, path, expected=expected, got=_type_name(value))
        return value

    def known_fields(self, obj: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in obj:
            if key not in allowed:
                raise self.fail(Errors.E208, f"{path}{key}", allowed=", ".join(allowed))

    def timestamp(self, value: Any, path: str) -> datetime:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(Errors.E203, path, expected="an ISO 8601 string", got=_type_name(value))
        ts = parse_timestamp(value)
        if ts is None:
            raise self.fail(Errors.E207, path)
        return ts


def parse_timestamp(value: Any) -> datetime | None:
    """A timezone-aware datetime from epoch seconds, ISO 8601 with a zone or an aware
    datetime; None if ``value`` is none of these (naive times are ambiguous)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return None
        return ts if ts.tzinfo is not None else None
    return None


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def conversation_from_dict(obj: Any, *, line: int = 1) -> Conversation:
    """Validate one decoded record and build a :class:`Conversation`.

    Raises
    ------
    RecordError
        Naming ``line`` and the dotted field; never the message text.
    """
    c = _Checker(line)
    if not isinstance(obj, dict):
        raise RecordError(Errors.E201.format(line=line, got=_type_name(obj)), line=line, field="")
    c.known_fields(obj, _CONVERSATION_FIELDS, "")
    cid = c.typed(c.require(obj, "conversation_id", "conversation_id"), str, "conversation_id",
                  "a string")
    if not cid:
        raise c.fail(Errors.E204, "conversation_id", problem="empty")
    region = obj.get("region", "EU")
    if region not in REGIONS:
        raise c.fail(Errors.E204, "region", problem=f"must be one of {', '.join(REGIONS)}")
    e2ee = c.typed(obj.get("e2ee", False), bool, "e2ee", "true or false")

    raw_participants = c.typed(c.require(obj, "participants", "participants"), list,
                               "participants", "a list")
    participants: list[Participant] = []
    seen: set[str] = set()
    for i, p in enumerate(raw_participants):
        path = f"participants[{i}]"
        c.typed(p, dict, path, "an object")
        c.known_fields(p, _PARTICIPANT_FIELDS, f"{path}.")
        pid = c.typed(c.require(p, "id", f"{path}.id"), str, f"{path}.id", "a string")
        if not pid:
            raise c.fail(Errors.E204, f"{path}.id", problem="empty")
        if pid in seen:
            raise c.fail(Errors.E206, f"{path}.id", id=pid)
        seen.add(pid)
        age = p.get("declared_age")
        if age is not None:
            c.typed(age, int, f"{path}.declared_age", "an integer or null")
            if not 0 <= age <= 130:
                raise c.fail(Errors.E204, f"{path}.declared_age", problem="outside 0..130")
        role = p.get("protected_role")
        if role is not None and role not in PROTECTED_ROLES:
            raise c.fail(Errors.E204, f"{path}.protected_role",
                         problem=f"must be null or one of {', '.join(PROTECTED_ROLES)}")
        participants.append(Participant(pid, age, role))

    raw_messages = c.typed(c.require(obj, "messages", "messages"), list, "messages", "a list")
    messages: list[Message] = []
    for i, m in enumerate(raw_messages):
        path = f"messages[{i}]"
        c.typed(m, dict, path, "an object")
        c.known_fields(m, _MESSAGE_FIELDS, f"{path}.")
        sender = c.typed(c.require(m, "sender", f"{path}.sender"), str, f"{path}.sender",
                         "a string")
        if sender not in seen:
            raise c.fail(Errors.E205, f"{path}.sender", sender=sender)
        ts = c.timestamp(c.require(m, "ts", f"{path}.ts"), f"{path}.ts")
        modality = c.typed(m.get("modality", TEXT_MODALITY), str, f"{path}.modality", "a string")
        text = m.get("text", "")
        if modality == TEXT_MODALITY:
            text = c.typed(c.require(m, "text", f"{path}.text"), str, f"{path}.text", "a string")
        elif not isinstance(text, str):
            text = ""
        messages.append(Message(sender, ts, text, modality))

    label = obj.get("label")
    if label is not None and (isinstance(label, bool) or label not in (0, 1)):
        raise c.fail(Errors.E204, "label", problem="must be 0, 1 or null")
    subgroup = obj.get("subgroup")
    if subgroup is not None:
        c.typed(subgroup, str, "subgroup", "a string or null")
    offender = obj.get("offender")
    if offender is not None and offender not in seen:
        raise c.fail(Errors.E205, "offender", sender=offender)
    return Conversation(cid, tuple(participants), tuple(messages), region, e2ee, label,
                        subgroup, offender)


def _iso(ts: datetime) -> str:
    s = ts.astimezone(UTC).isoformat()
    return s.replace("+00:00", "Z")


def conversation_to_dict(conv: Conversation) -> dict[str, Any]:
    """The interchange-format dict of a conversation (optional fields only when set)."""
    out: dict[str, Any] = {
        "conversation_id": conv.conversation_id,
        "region": conv.region,
        "e2ee": conv.e2ee,
        "participants": [
            {"id": p.id, "declared_age": p.declared_age, "protected_role": p.protected_role}
            for p in conv.participants
        ],
        "messages": [
            {"sender": m.sender, "ts": _iso(m.ts), "text": m.text, "modality": m.modality}
            for m in conv.messages
        ],
    }
    for key in ("label", "subgroup", "offender"):
        value = getattr(conv, key)
        if value is not None:
            out[key] = value
    return out


def _parse_line(raw: str, line: int) -> RecordResult:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: the decoder's repr would carry the document
        err = RecordError(Errors.E200.format(line=line, problem=f"{exc.msg} at column {exc.colno}"),
                          line=line, field="")
        return RecordResult(line, None, err)
    try:
        return RecordResult(line, conversation_from_dict(obj, line=line), None)
    except RecordError as err:
        return RecordResult(line, None, err)


def read_jsonl(source: str | Path | IO[str] | Iterable[str]) -> Iterator[RecordResult]:
    """Read conversations from JSON Lines, one :class:`RecordResult` per non-blank line.

    A bad line yields a result with ``error`` set (naming line and field) and reading
    goes on: a batch never loses its good records because of a bad one.

    Parameters
    ----------
    source : path, open text file, or iterable of lines

    Examples
    --------
    >>> lines = ['{"conversation_id": "c1", "participants": [{"id": "a"}], '
    ...          '"messages": [{"sender": "a", "ts": "2026-03-01T10:00:00Z", "text": "hi"}]}',
    ...          '{"conversation_id": 5}']
    >>> [(r.line, r.ok) for r in read_jsonl(lines)]
    [(1, True), (2, False)]
    """
    if isinstance(source, (str, Path)):
        with open(source, encoding="utf-8") as fh:
            yield from read_jsonl(fh)
        return
    for line_no, raw in enumerate(source, start=1):
        if raw.strip():
            yield _parse_line(raw, line_no)


def write_jsonl(conversations: Iterable[Conversation], target: str | Path | IO[str]) -> int:
    """Write conversations as JSON Lines; returns how many were written."""
    if isinstance(target, (str, Path)):
        with open(target, "w", encoding="utf-8") as fh:
            return write_jsonl(conversations, fh)
    n = 0
    for conv in conversations:
        target.write(json.dumps(conversation_to_dict(conv), ensure_ascii=False) + "\n")
        n += 1
    return n
