"""Conversation model and the JSON Lines interchange format.

Values that cross module boundaries are frozen dataclasses. A :class:`Message` keeps its
text out of ``repr`` and refuses to be pickled: the only component that may read the
text is the text boundary (:mod:`classifier._text`), and no copy of it should leak into
logs, worker processes or caches on the way there.

The reader cannot be broken by its input: every malformed line becomes a
:class:`RecordResult` with a coded :class:`RecordError` naming the line and the field
(never a value from the line), the good lines go on, and memory stays bounded by
:class:`ReadLimits` whatever the file holds.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import numbers
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ._errors import Errors, FirewallError, InputTypeError, RecordError

__all__ = [
    "AGE_ASSURANCE",
    "PROTECTED_ROLES",
    "REGIONS",
    "Conversation",
    "Message",
    "Participant",
    "ReadLimits",
    "RecordResult",
    "Relationship",
    "assurance_problem",
    "conversation_from_dict",
    "conversation_to_dict",
    "read_jsonl",
    "relationship_problem",
    "sample_path",
    "write_jsonl",
]

REGIONS = ("EU", "non-EU")
PROTECTED_ROLES = ("helpline", "counselling", "medical", "legal")
AGE_ASSURANCE = ("self_declared", "estimated", "verified")
TEXT_MODALITY = "text"
MAX_ID_CHARS = 256
MAX_NOTE_CHARS = 256

_CONVERSATION_FIELDS = (
    "conversation_id", "region", "e2ee", "language", "relationship", "participants",
    "messages", "label", "subgroup", "offender", "annotations",
)
_PARTICIPANT_FIELDS = ("id", "declared_age", "protected_role", "age_assurance",
                       "age_assurance_method")
_MESSAGE_FIELDS = ("sender", "ts", "text", "modality", "annotations")
_RELATIONSHIP_FIELDS = ("family_link", "contact_age_days", "mutual_contacts")


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """Bounds on what one record may hold; past a bound the record gets a coded error.

    Parameters
    ----------
    max_line_bytes : int, default 8 MiB
        A longer line is skipped without being held in memory (E212).
    max_message_chars : int, default 65,536
        Characters of text per message (an email body fits; E213).
    max_messages : int, default 50,000
        Messages per conversation (E213).
    max_participants : int, default 1,000
        Participants per conversation (E213).
    track_ids : int, default 1,000,000
        Conversation ids remembered to report duplicates (E215); beyond this many ids
        duplicates are no longer detected, so that memory stays bounded.
    """

    max_line_bytes: int = 8 * 1024 * 1024
    max_message_chars: int = 65_536
    max_messages: int = 50_000
    max_participants: int = 1_000
    track_ids: int = 1_000_000


DEFAULT_LIMITS = ReadLimits()


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
    age_assurance : {"self_declared", "estimated", "verified"} or None
        How the provider knows ``declared_age``: an estimated or verified age is strong
        evidence, a self-declared one (the default) weak.
    age_assurance_method : str or None
        The provider's words for the method (for example "document check").
    """

    id: str
    declared_age: int | None = None
    protected_role: str | None = None
    age_assurance: str | None = None
    age_assurance_method: str | None = None


@dataclass(frozen=True, slots=True)
class Relationship:
    """Provider metadata on the pair of a one-to-one conversation (all optional).

    ``family_link``: the accounts are linked in a family or parental-control group;
    ``contact_age_days``: days since they became contacts; ``mutual_contacts``: contacts
    they share.
    """

    family_link: bool | None = None
    contact_age_days: int | None = None
    mutual_contacts: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One message. ``text`` is hidden from ``repr`` and the object cannot be pickled.

    ``annotations`` is evaluation-only (for example ``{"stage": "isolation"}`` written by
    the author of a test set); the runtime never looks at it.
    """

    sender: str
    ts: datetime
    text: str = field(repr=False)
    modality: str = TEXT_MODALITY
    annotations: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def is_text(self) -> bool:
        """Whether the message is text and may be scanned (Art 1(2): audio is out of scope)."""
        return self.modality == TEXT_MODALITY

    def __reduce__(self) -> Any:
        # The substance firewall: message text never travels by pickle.
        raise FirewallError(Errors.E004.format(kind="Message"))


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation in the interchange format.

    ``label``, ``subgroup``, ``offender`` and ``annotations`` are evaluation-only fields.
    """

    conversation_id: str
    participants: tuple[Participant, ...]
    messages: tuple[Message, ...]
    region: str = "EU"
    e2ee: bool = False
    label: int | None = None
    subgroup: str | None = None
    offender: str | None = None
    language: str | None = None
    relationship: Relationship | None = None
    annotations: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def participant(self, participant_id: str) -> Participant | None:
        """Return the participant with this id, or None."""
        for p in self.participants:
            if p.id == participant_id:
                return p
        return None

    def __reduce__(self) -> Any:
        raise FirewallError(Errors.E004.format(kind="Conversation"))


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
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", int: "an integer", float: "a number", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


MAX_COUNT = 10**9  # days known, shared contacts: beyond any real account


def relationship_problem(rel: Relationship) -> tuple[str, str] | None:
    """(field, problem) of the first value of a :class:`Relationship` built in code that
    the interchange reader would refuse, or None: ``family_link`` true, false or null,
    the counts non-negative integers up to :data:`MAX_COUNT` or null (never a value of
    the input in the problem).

    >>> relationship_problem(Relationship(family_link=True, contact_age_days=30))
    >>> relationship_problem(Relationship(contact_age_days=-1))
    ('relationship.contact_age_days', 'must be a non-negative integer up to 1000000000 or null')
    """
    if rel.family_link is not None and type(rel.family_link) is not bool:
        return "relationship.family_link", "must be true, false or null"
    for name in ("contact_age_days", "mutual_contacts"):
        value = getattr(rel, name)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_COUNT):
            return (f"relationship.{name}",
                    f"must be a non-negative integer up to {MAX_COUNT} or null")
    return None


def assurance_problem(assurance: Any) -> str | None:
    """Why a mapping of participant id -> age assurance is not one, or None.

    >>> assurance_problem({"u-1": "verified", "u-2": None})
    >>> assurance_problem({1: "verified"})
    'must map participant ids (strings) to null or one of self_declared, estimated, verified'
    """
    if not isinstance(assurance, Mapping) or any(
            type(k) is not str or (v is not None and (type(v) is not str
                                                      or v not in AGE_ASSURANCE))
            for k, v in assurance.items()):
        return ("must map participant ids (strings) to null or one of "
                + ", ".join(AGE_ASSURANCE))
    return None


def is_encodable(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Checker:
    """Field checks for one record; every error names the line and the dotted field."""

    __slots__ = ("limits", "line")

    def __init__(self, line: int, limits: ReadLimits) -> None:
        self.line = line
        self.limits = limits

    def fail(self, template: str, field_name: str, **kw: Any) -> RecordError:
        return RecordError(template.format(line=self.line, field=field_name, **kw),
                           line=self.line, field=field_name)

    def require(self, obj: dict[str, Any], key: str, path: str) -> Any:
        if key not in obj:
            raise self.fail(Errors.E202, path)
        return obj[key]

    def typed(self, value: Any, types: type | tuple[type, ...], path: str, expected: str) -> Any:
        # bool is a subclass of int: never accept it where a number is expected
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            raise self.fail(Errors.E203, path, expected=expected, got=_type_name(value))
        return value

    def string(self, value: Any, path: str, *, limit: int = MAX_ID_CHARS,
               empty: bool = False) -> str:
        """A str within ``limit`` characters that encodes as UTF-8."""
        s = self.typed(value, str, path, "a string")
        if not s and not empty:
            raise self.fail(Errors.E204, path, problem="empty")
        if len(s) > limit:
            raise self.fail(Errors.E213, path, size=f"{len(s)} characters", limit=limit,
                            unit="characters")
        if not is_encodable(s):
            raise self.fail(Errors.E214, path)
        return s

    def optional_choice(self, obj: dict[str, Any], key: str, path: str,
                        choices: tuple[str, ...]) -> str | None:
        value = obj.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or value not in choices:
            raise self.fail(Errors.E204, path,
                            problem=f"must be null or one of {', '.join(choices)}")
        return value

    def known_fields(self, obj: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for position, key in enumerate(obj, start=1):
            if key not in allowed:
                # the key itself is input: name it by its position, never by its value
                raise self.fail(Errors.E208, path.rstrip(".") or "(record)", position=position,
                                allowed=", ".join(allowed))

    def bounded_list(self, value: Any, path: str, limit: int, unit: str) -> list[Any]:
        items = self.typed(value, list, path, "a list")
        if len(items) > limit:
            raise self.fail(Errors.E213, path, size=f"{len(items)} {unit}", limit=limit,
                            unit=unit)
        return items

    def notes(self, value: Any, path: str) -> Mapping[str, Any] | None:
        """Evaluation-only annotations: an object of short scalars (or lists of them)."""
        if value is None:
            return None
        obj = self.typed(value, dict, path, "an object or null")
        out: dict[str, Any] = {}
        for position, (key, v) in enumerate(obj.items(), start=1):
            where = f"{path}[key {position}]"
            if len(key) > MAX_NOTE_CHARS or not is_encodable(key):
                raise self.fail(Errors.E204, where, problem="an annotation key must be a short "
                                "UTF-8 string")
            out[key] = self._note(v, where)
        return out

    def _note(self, v: Any, where: str, depth: int = 0) -> Any:
        if isinstance(v, (list, dict)):
            if depth >= 2 or len(v) > 64:
                raise self.fail(Errors.E204, where, problem="annotations nest at most two "
                                "levels of at most 64 items")
            if isinstance(v, list):
                return tuple(self._note(x, where, depth + 1) for x in v)
            return {str(k)[:MAX_NOTE_CHARS]: self._note(x, where, depth + 1)
                    for k, x in v.items() if is_encodable(str(k))}
        if isinstance(v, str):
            return self.string(v, where, limit=MAX_NOTE_CHARS, empty=True)
        if v is None or isinstance(v, (bool, int)) or (isinstance(v, float) and math.isfinite(v)):
            return v
        raise self.fail(Errors.E203, where, expected="a string, number, boolean or null",
                        got=_type_name(v))

    def timestamp(self, value: Any, path: str) -> datetime:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(Errors.E203, path, expected="an ISO 8601 string", got=_type_name(value))
        if isinstance(value, str) and len(value) > 64:
            raise self.fail(Errors.E207, path)
        ts = parse_timestamp(value)
        if ts is None:
            raise self.fail(Errors.E207, path)
        return ts


def parse_timestamp(value: Any) -> datetime | None:
    """A timezone-aware datetime from epoch seconds, ISO 8601 with a zone or an aware
    datetime; None if ``value`` is none of these (naive times are ambiguous)."""
    if isinstance(value, datetime):  # aware: a zone that gives an offset
        return value if value.utcoffset() is not None else None
    if isinstance(value, bool) or (getattr(value, "dtype", None) is not None and \
            value.dtype.kind == "b"):
        return None
    if isinstance(value, numbers.Real):  # int, float and numpy's numbers
        try:
            seconds = float(value)
            return datetime.fromtimestamp(seconds, tz=UTC) if math.isfinite(seconds) else None
        except (OverflowError, OSError, ValueError):  # 10**400, beyond year 9999
            return None
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return None
        return ts if ts.tzinfo is not None else None
    return None


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def conversation_from_dict(obj: Any, *, line: int = 1,
                           limits: ReadLimits = DEFAULT_LIMITS) -> Conversation:
    """Validate one decoded record and build a :class:`Conversation`.

    Raises
    ------
    RecordError
        Naming ``line`` and the dotted field; never a value from the record.
    """
    c = _Checker(line, limits)
    if not isinstance(obj, dict):
        raise RecordError(Errors.E201.format(line=line, got=_type_name(obj)), line=line,
                          field="")
    c.known_fields(obj, _CONVERSATION_FIELDS, "")
    cid = c.string(c.require(obj, "conversation_id", "conversation_id"), "conversation_id")
    region = obj.get("region", "EU")
    if not isinstance(region, str) or region not in REGIONS:
        raise c.fail(Errors.E204, "region", problem=f"must be one of {', '.join(REGIONS)}")
    e2ee = c.typed(obj.get("e2ee", False), bool, "e2ee", "true or false")
    language = obj.get("language")
    if language is not None:
        c.typed(language, str, "language", "an ISO 639-1 code or null")
        if not (len(language) == 2 and language.isascii() and language.isalpha()):
            raise c.fail(Errors.E204, "language", problem="must be a two-letter ISO 639-1 code")
        language = language.lower()
    relationship = None
    raw_rel = obj.get("relationship")
    if raw_rel is not None:
        c.typed(raw_rel, dict, "relationship", "an object or null")
        c.known_fields(raw_rel, _RELATIONSHIP_FIELDS, "relationship.")
        relationship = Relationship(*(raw_rel.get(k) for k in _RELATIONSHIP_FIELDS))
        found = relationship_problem(relationship)  # one rule, for every path in
        if found is not None:
            raise c.fail(Errors.E204, found[0], problem=found[1])

    raw_participants = c.bounded_list(c.require(obj, "participants", "participants"),
                                      "participants", limits.max_participants, "participants")
    participants: list[Participant] = []
    seen: dict[str, int] = {}
    for i, p in enumerate(raw_participants):
        path = f"participants[{i}]"
        c.typed(p, dict, path, "an object")
        c.known_fields(p, _PARTICIPANT_FIELDS, f"{path}.")
        pid = c.string(c.require(p, "id", f"{path}.id"), f"{path}.id")
        if pid in seen:
            raise c.fail(Errors.E206, f"{path}.id", first=seen[pid])
        seen[pid] = i
        age = p.get("declared_age")
        if age is not None:
            c.typed(age, int, f"{path}.declared_age", "an integer or null")
            if not 0 <= age <= 130:
                raise c.fail(Errors.E204, f"{path}.declared_age", problem="outside 0..130")
        role = c.optional_choice(p, "protected_role", f"{path}.protected_role", PROTECTED_ROLES)
        assurance = c.optional_choice(p, "age_assurance", f"{path}.age_assurance",
                                      AGE_ASSURANCE)
        method = p.get("age_assurance_method")
        if method is not None:
            method = c.string(method, f"{path}.age_assurance_method", limit=MAX_NOTE_CHARS)
        participants.append(Participant(pid, age, role, assurance, method))

    raw_messages = c.bounded_list(c.require(obj, "messages", "messages"), "messages",
                                  limits.max_messages, "messages")
    messages: list[Message] = []
    max_chars = limits.max_message_chars
    for i, m in enumerate(raw_messages):
        path = f"messages[{i}]"
        c.typed(m, dict, path, "an object")
        c.known_fields(m, _MESSAGE_FIELDS, f"{path}.")
        sender = c.typed(c.require(m, "sender", f"{path}.sender"), str, f"{path}.sender",
                         "a string")
        if sender not in seen:
            raise c.fail(Errors.E205, f"{path}.sender")
        ts = c.timestamp(c.require(m, "ts", f"{path}.ts"), f"{path}.ts")
        modality = m.get("modality", TEXT_MODALITY)
        modality = c.string(modality, f"{path}.modality", limit=32)
        if modality == TEXT_MODALITY:
            text = c.typed(c.require(m, "text", f"{path}.text"), str, f"{path}.text",
                           "a string")
            if len(text) > max_chars:
                raise c.fail(Errors.E213, f"{path}.text", size=f"{len(text)} characters",
                             limit=max_chars, unit="characters")
            if not is_encodable(text):
                raise c.fail(Errors.E214, f"{path}.text")
        else:
            text = ""  # a non-text message is counted, never scanned: its payload is dropped
        notes = c.notes(m.get("annotations"), f"{path}.annotations")
        messages.append(Message(sender, ts, text, modality, notes))

    label = obj.get("label")
    if label is not None and (not isinstance(label, int) or isinstance(label, bool)
                              or label not in (0, 1)):
        raise c.fail(Errors.E204, "label", problem="must be 0, 1 or null")
    subgroup = obj.get("subgroup")
    if subgroup is not None:
        subgroup = c.string(subgroup, "subgroup", limit=64)
    offender = obj.get("offender")
    if offender is not None:
        c.typed(offender, str, "offender", "a string or null")
        if offender not in seen:
            raise c.fail(Errors.E217, "offender")
    notes = c.notes(obj.get("annotations"), "annotations")
    return Conversation(cid, tuple(participants), tuple(messages), region, e2ee, label,
                        subgroup, offender, language, relationship, notes)


def _iso(ts: datetime) -> str:
    s = ts.astimezone(UTC).isoformat()
    return s.replace("+00:00", "Z")


def conversation_to_dict(conv: Conversation) -> dict[str, Any]:
    """The interchange-format dict of a conversation (optional fields only when set)."""
    participants = []
    for p in conv.participants:
        d: dict[str, Any] = {"id": p.id, "declared_age": p.declared_age,
                             "protected_role": p.protected_role}
        if p.age_assurance is not None:
            d["age_assurance"] = p.age_assurance
        if p.age_assurance_method is not None:
            d["age_assurance_method"] = p.age_assurance_method
        participants.append(d)
    messages = []
    for m in conv.messages:
        md: dict[str, Any] = {"sender": m.sender, "ts": _iso(m.ts), "text": m.text,
                              "modality": m.modality}
        if m.annotations:
            md["annotations"] = {k: list(v) if isinstance(v, tuple) else v
                                 for k, v in m.annotations.items()}
        messages.append(md)
    out: dict[str, Any] = {"conversation_id": conv.conversation_id, "region": conv.region,
                           "e2ee": conv.e2ee}
    if conv.language is not None:
        out["language"] = conv.language
    if conv.relationship is not None:
        out["relationship"] = {k: getattr(conv.relationship, k) for k in _RELATIONSHIP_FIELDS
                               if getattr(conv.relationship, k) is not None}
    out["participants"] = participants
    out["messages"] = messages
    for key in ("label", "subgroup", "offender"):
        value = getattr(conv, key)
        if value is not None:
            out[key] = value
    if conv.annotations:
        out["annotations"] = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in conv.annotations.items()}
    return out


def _decode_error(raw: bytes, line: int) -> RecordError | str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start
    return RecordError(Errors.E209.format(line=line, offset=offset), line=line, field="")


def parse_line(raw: str | bytes, line: int, limits: ReadLimits = DEFAULT_LIMITS,
               ) -> RecordResult:
    """One line of JSON Lines as a :class:`RecordResult`; never raises for bad input."""
    if isinstance(raw, bytes):
        if len(raw) > limits.max_line_bytes:
            return _failed(line, Errors.E212.format(line=line, limit=limits.max_line_bytes))
        decoded = _decode_error(raw, line)
        if isinstance(decoded, RecordError):
            return RecordResult(line, None, decoded)
        raw = decoded
    elif len(raw) > limits.max_line_bytes:  # characters: at least as many bytes
        return _failed(line, Errors.E212.format(line=line, limit=limits.max_line_bytes))
    if line == 1 and raw.startswith("\ufeff"):
        raw = raw[1:]
    problem = None
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: the decoder's repr would carry the document
        problem = Errors.E200.format(line=line, problem=f"{exc.msg} at column {exc.colno}")
    except (RecursionError, ValueError, MemoryError):
        problem = Errors.E216.format(line=line)
    if problem is not None:
        return _failed(line, problem)
    try:
        return RecordResult(line, conversation_from_dict(obj, line=line, limits=limits), None)
    except RecordError as err:
        return RecordResult(line, None, err)
    except RecursionError:
        return _failed(line, Errors.E216.format(line=line))
    except Exception as exc:  # a bug of ours: never lose the other records for it
        name = type(exc).__name__
    return _failed(line, Errors.E218.format(line=line, type_name=name))


def _failed(line: int, message: str) -> RecordResult:
    return RecordResult(line, None, RecordError(message, line=line, field=""))


def _binary_lines(fh: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; None for a line over ``limit`` (never held whole)."""
    line_no = 0
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            while True:  # skip the rest of the line in bounded chunks
                rest = fh.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line_no, None
            continue
        yield line_no, raw


def read_jsonl(source: str | os.PathLike[str] | IO[str] | IO[bytes] | Iterable[str | bytes],
               *, limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[RecordResult]:
    """Read conversations from JSON Lines, one :class:`RecordResult` per non-blank line.

    A bad line yields a result with ``error`` set (a coded :class:`RecordError` naming
    line and field, never a value from the line) and reading goes on: a batch never loses
    its good records because of a bad one. Invalid UTF-8, a line over the size limit, deep
    nesting and a repeated conversation id are errors of that line only.

    Parameters
    ----------
    source : path, open file (text or binary), or iterable of lines (str or bytes)
    limits : ReadLimits, optional

    Examples
    --------
    >>> lines = ['{"conversation_id": "c1", "participants": [{"id": "a"}], '
    ...          '"messages": [{"sender": "a", "ts": "2026-03-01T10:00:00Z", "text": "hi"}]}',
    ...          '{"conversation_id": 5}']
    >>> [(r.line, r.ok) for r in read_jsonl(lines)]
    [(1, True), (2, False)]
    >>> str(list(read_jsonl(lines))[1].error)
    "[E203] Line 2, field 'conversation_id': must be a string, got an integer."
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            yield from read_jsonl(fh, limits=limits)
        return
    if not isinstance(source, (io.IOBase, Iterable)) or isinstance(source, (bytes, bytearray)):
        raise InputTypeError(Errors.E005.format(
            name="read_jsonl's source", expected="a path, an open file or an iterable of "
            "lines", got=type(source).__name__))
    seen: dict[bytes, int] = {}
    if isinstance(source, io.TextIOWrapper):
        source = source.buffer  # read bytes: invalid UTF-8 is then an error of its line
    lines: Iterable[tuple[int, str | bytes | None]]
    if isinstance(source, (io.BufferedIOBase, io.RawIOBase)):
        lines = _binary_lines(source, limits.max_line_bytes)  # type: ignore[arg-type]
    else:
        lines = enumerate(source, start=1)  # type: ignore[arg-type]
    for line_no, raw in lines:
        if raw is None:
            yield _failed(line_no, Errors.E212.format(line=line_no, limit=limits.max_line_bytes))
            continue
        if not raw.strip():
            continue
        result = parse_line(raw, line_no, limits)
        conv = result.conversation
        if conv is not None:
            key = hashlib.blake2b(conv.conversation_id.encode("utf-8"), digest_size=12).digest()
            first = seen.get(key)
            if first is not None:
                result = RecordResult(line_no, None, RecordError(
                    Errors.E215.format(line=line_no, first=first), line=line_no,
                    field="conversation_id"))
            elif len(seen) < limits.track_ids:
                seen[key] = line_no
        yield result


def sample_path() -> Path:
    """The bundled sample conversations (synthetic, non-explicit; interchange format)."""
    from importlib import resources

    return Path(str(resources.files("classifier") / "data" / "sample.jsonl"))


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
