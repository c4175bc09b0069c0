"""Loaders for PAN12 Sexual Predator Identification and the eSPD datapacks (Vogt et al. 2021).

These corpora are not redistributable; users who hold them can convert them to the
interchange format and evaluate on them. The project tests these loaders on small
hand-made, non-explicit fixtures in the same formats.

PAN12 (Inches & Crestani 2012)
    ``<conversations><conversation id="..."><message line="1"><author>..</author>
    <time>HH:MM</time><text>..</text></message>...`` plus a predator id file (one author
    id a line: ``*predators*.txt`` in training, ``*problem1*.txt`` in test) and the
    problem-2 line labels (``*problem2*.txt``: ``conversation_id<TAB>line``).

    Known label traps: the training ``*diff*.txt`` marks lines whose text the organisers
    *edited*, not grooming lines, and is never read as labels here; the test problem-2
    labels cover only about 91% of the predators' lines; times are HH:MM without a date
    (we count a day forward whenever the clock goes back).

eSPD datapacks (Vogt, Leser & Akbik 2021)
    JSON: ``{"datapackID", "chats": [{"chatName", "className": "predator" |
    "non-predator", "content": [{"author", "time", "body"}]}]}``. The field names follow
    the paper's datapacks as far as we know them; common aliases (``name``, ``label``,
    ``messages``, ``text``) are accepted.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from classifier import Conversation, Message, Participant, RecordError

__all__ = ["Pan12Corpus", "load_espd", "load_pan12", "read_pan12_xml"]

_BASE = datetime(2012, 1, 1, tzinfo=UTC)
SUBGROUP = "pan12"


@dataclass
class Pan12Corpus:
    """Conversations plus the problem-2 line labels (message indices, 0-based)."""

    conversations: list[Conversation] = field(default_factory=list)
    predator_lines: dict[str, list[int]] = field(default_factory=dict)
    errors: list[RecordError] = field(default_factory=list)


def _clock(value: str | None, base: datetime, last: datetime | None) -> datetime:
    hh, mm = (int(x) for x in (value or "00:00").strip().split(":")[:2])
    ts = base.replace(hour=hh, minute=mm)
    while last is not None and ts < last:
        ts += timedelta(days=1)
    return ts


def _read_ids(paths: Iterable[Path]) -> set[str]:
    ids: set[str] = set()
    for p in paths:
        ids.update(x.strip() for x in p.read_text(encoding="utf-8").splitlines() if x.strip())
    return ids


def _read_lines(paths: Iterable[Path]) -> dict[str, set[int]]:
    labels: dict[str, set[int]] = {}
    for p in paths:
        for raw in p.read_text(encoding="utf-8").splitlines():
            parts = raw.split()
            if len(parts) >= 2 and parts[1].isdigit():
                labels.setdefault(parts[0], set()).add(int(parts[1]))
    return labels


def read_pan12_xml(path: str | Path, predators: set[str] | frozenset[str] = frozenset(),
                   line_labels: dict[str, set[int]] | None = None,
                   corpus: Pan12Corpus | None = None) -> Pan12Corpus:
    """Convert one PAN12 XML file. Bad conversations are reported (file, conversation,
    field) and skipped; an XML syntax error ends the file with an error naming its line,
    keeping every conversation read before it."""
    path = Path(path)
    corpus = corpus or Pan12Corpus()
    line_labels = line_labels or {}
    n = 0
    try:
        for _, elem in ET.iterparse(path, events=("end",)):
            if elem.tag != "conversation":
                continue
            n += 1
            cid = elem.get("id") or f"{path.name}#{n}"
            try:
                conv, lines = _conversation(path, cid, elem, predators, line_labels.get(cid, set()))
                corpus.conversations.append(conv)
                if lines:
                    corpus.predator_lines[conv.conversation_id] = lines
            except RecordError as err:
                corpus.errors.append(err)
            elem.clear()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        corpus.errors.append(RecordError(
            f"{path}: XML syntax error at line {line}; {len(corpus.conversations)} "
            "conversations before it were kept", line=line, field="xml"))
    return corpus


def _conversation(path: Path, cid: str, elem: Any, predators: set[str] | frozenset[str],
                  labelled_lines: set[int]) -> tuple[Conversation, list[int]]:
    messages: list[Message] = []
    authors: list[str] = []
    lines: list[int] = []
    last = None
    for i, msg in enumerate(elem.iter("message")):
        author = (msg.findtext("author") or "").strip()
        if not author:
            raise RecordError(f"{path}: conversation {cid!r}, message {i + 1}: field 'author' "
                              "is missing", line=i + 1, field=f"messages[{i}].sender")
        try:
            ts = _clock(msg.findtext("time"), _BASE, last)
        except ValueError:
            raise RecordError(f"{path}: conversation {cid!r}, message {i + 1}: field 'time' is "
                              "not HH:MM", line=i + 1, field=f"messages[{i}].ts") from None
        last = ts
        if author not in authors:
            authors.append(author)
        messages.append(Message(author, ts, msg.findtext("text") or ""))
        line_no = msg.get("line")
        if line_no and line_no.isdigit() and int(line_no) in labelled_lines:
            lines.append(i)
    offenders = [a for a in authors if a in predators]
    conv = Conversation(
        conversation_id=f"pan12-{cid}",
        participants=tuple(Participant(a) for a in authors),
        messages=tuple(messages),
        label=1 if offenders else 0,
        subgroup=SUBGROUP,
        offender=offenders[0] if offenders else None,
    )
    return conv, lines


def load_pan12(directory: str | Path) -> Pan12Corpus:
    """Load every PAN12 XML file in ``directory`` with its predator ids and line labels."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"PAN12 directory not found: {d}")
    xml_files = sorted(d.glob("*.xml"))
    if not xml_files:
        raise FileNotFoundError(f"No PAN12 XML file in {d}")
    predators = _read_ids([p for p in sorted(d.glob("*.txt"))
                           if "predator" in p.name or "problem1" in p.name])
    line_labels = _read_lines(sorted(d.glob("*problem2*.txt")))
    corpus = Pan12Corpus()
    for xml_file in xml_files:
        read_pan12_xml(xml_file, predators, line_labels, corpus)
    return corpus


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in obj:
            return obj[k]
    return None


def load_espd(path: str | Path, *, errors: list[RecordError] | None = None,
              ) -> Iterator[Conversation]:
    """Yield conversations from an eSPD datapack (JSON); bad chats go to ``errors``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})",
                          line=exc.lineno, field="") from None
    chats = data.get("chats") if isinstance(data, dict) else data
    if not isinstance(chats, list):
        raise RecordError(f"{path}: field 'chats' must be a list", line=0, field="chats")
    for i, chat in enumerate(chats):
        try:
            yield _espd_chat(path, i, chat)
        except RecordError as err:
            if errors is None:
                raise
            errors.append(err)


def _espd_chat(path: Path, i: int, chat: Any) -> Conversation:
    where = f"{path}: chat {i}"
    if not isinstance(chat, dict):
        raise RecordError(f"{where}: must be an object", line=i, field=f"chats[{i}]")
    name = str(_first(chat, "chatName", "name", "id") or f"{path.stem}-{i}")
    cls = _first(chat, "className", "label")
    if cls not in ("predator", "non-predator", 0, 1):
        raise RecordError(f"{where}: field 'className' must be predator or non-predator",
                          line=i, field=f"chats[{i}].className")
    content = _first(chat, "content", "messages")
    if not isinstance(content, list):
        raise RecordError(f"{where}: field 'content' must be a list", line=i,
                          field=f"chats[{i}].content")
    messages, authors, last = [], [], None
    for j, msg in enumerate(content):
        author = msg.get("author") if isinstance(msg, dict) else None
        if not isinstance(author, str) or not author:
            raise RecordError(f"{where}, message {j}: field 'author' is missing", line=i,
                              field=f"chats[{i}].content[{j}].author")
        text = _first(msg, "body", "text", "letters") or ""
        raw_time = msg.get("time")
        try:
            ts = (_clock(raw_time, _BASE, last) if isinstance(raw_time, str) and ":" in raw_time
                  and len(raw_time) <= 8 else
                  datetime.fromisoformat(raw_time) if isinstance(raw_time, str)
                  else (last or _BASE) + timedelta(seconds=30))
        except ValueError:
            raise RecordError(f"{where}, message {j}: field 'time' is not a time", line=i,
                              field=f"chats[{i}].content[{j}].time") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        last = ts
        if author not in authors:
            authors.append(author)
        messages.append(Message(author, ts, str(text)))
    label = 1 if cls in ("predator", 1) else 0
    offender = _first(chat, "predatorID", "predator")
    if label and offender not in authors:
        offender = None
    return Conversation(
        conversation_id=f"espd-{name}",
        participants=tuple(Participant(a) for a in authors),
        messages=tuple(messages),
        label=label,
        subgroup="espd",
        offender=offender,
    )
