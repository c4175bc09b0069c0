"""Real benign chat: the ``chitchat-dataset`` package (BYU PCC lab, MIT licence).

7,168 real one-to-one open-domain chats between adults, shipped inside the PyPI package
(no download at run time). Each becomes an interchange-format conversation with
``label=0`` and ``subgroup="real_benign"``. The train/test split is fixed by a hash of the
conversation id, so it never depends on order or on a random seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from classifier import Conversation, Message, Participant, RecordError

__all__ = ["SUBGROUP", "benign_split_of", "load_chitchat"]

SUBGROUP = "real_benign"


def benign_split_of(conversation_id: str) -> str:
    """Fixed split: the first byte of sha256(id) below 128 is train, else test."""
    return "train" if hashlib.sha256(conversation_id.encode()).digest()[0] < 128 else "test"


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def convert(cid: str, raw: Mapping[str, Any], index: int = 0) -> Conversation:
    """One chitchat record as a Conversation; RecordError names the record and field."""
    try:
        turns = raw["messages"]
        messages = []
        senders: list[str] = []
        for t, turn in enumerate(turns):
            for m, msg in enumerate(turn):
                field = f"messages[{t}][{m}]"
                sender = msg.get("sender")
                if not isinstance(sender, str) or not isinstance(msg.get("text"), str):
                    raise RecordError(f"Record {cid!r} (#{index}), field {field!r}: sender and "
                                      "text must be strings", line=index, field=field)
                try:
                    ts = _parse_ts(msg["timestamp"])
                except (KeyError, TypeError, ValueError):
                    raise RecordError(f"Record {cid!r} (#{index}), field {field}.timestamp: "
                                      "not an ISO 8601 time", line=index,
                                      field=f"{field}.timestamp") from None
                if sender not in senders:
                    senders.append(sender)
                messages.append(Message(sender, ts, msg["text"]))
    except (KeyError, TypeError):
        raise RecordError(f"Record {cid!r} (#{index}), field 'messages': missing or not a list "
                          "of turns", line=index, field="messages") from None
    return Conversation(
        conversation_id=f"chitchat-{cid}",
        participants=tuple(Participant(s) for s in senders),
        messages=tuple(messages),
        label=0,
        subgroup=SUBGROUP,
    )


def load_chitchat(split: str | None = None, *, errors: list[RecordError] | None = None,
                  dataset: Mapping[str, Any] | None = None) -> Iterator[Conversation]:
    """Yield the chitchat conversations of one split (or all with ``split=None``).

    Parameters
    ----------
    split : {"train", "test"} or None
    errors : list, optional
        Bad records are appended here (and skipped) instead of stopping the load.
    dataset : mapping, optional
        Records to convert instead of the installed package's (for tests).
    """
    if dataset is None:
        try:
            import chitchat_dataset
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("The real benign chat needs the [eval] extra: "
                              "pip install 'solicitation-classifier[eval]'") from exc
        dataset = chitchat_dataset.Dataset()
    for index, (cid, raw) in enumerate(dataset.items()):
        if split is not None and benign_split_of(f"chitchat-{cid}") != split:
            continue
        try:
            yield convert(cid, raw, index)
        except RecordError as err:
            if errors is None:
                raise
            errors.append(err)
