from __future__ import annotations

import io
import json
import pickle

import pytest

from classifier import (
    Conversation,
    RecordError,
    conversation_from_dict,
    conversation_to_dict,
    read_jsonl,
    write_jsonl,
)
from classifier._cli import sample_path

pytestmark = pytest.mark.obligation("art1-2")

CANARY = "zq-canary-7f3a9"


def record(**over):
    base = {
        "conversation_id": "c-1",
        "participants": [{"id": "a", "declared_age": 30, "protected_role": None},
                         {"id": "b", "declared_age": None, "protected_role": None}],
        "messages": [
            {"sender": "a", "ts": "2026-03-01T10:00:00Z", "text": f"hello {CANARY}"},
            {"sender": "b", "ts": "2026-03-01T10:01:00+01:00", "text": "hi", "modality": "text"},
            {"sender": "b", "ts": "2026-03-01T10:02:00Z", "modality": "audio"},
        ],
    }
    base.update(over)
    return base


def test_round_trip_through_jsonl():
    conv = conversation_from_dict(record(label=1, subgroup="grooming", offender="a"))
    buf = io.StringIO()
    assert write_jsonl([conv], buf) == 1
    (result,) = list(read_jsonl(buf.getvalue().splitlines()))
    assert result.ok
    again = result.conversation
    assert conversation_to_dict(again) == conversation_to_dict(conv)
    assert again.messages[1].ts == conv.messages[1].ts
    assert [m.is_text for m in again.messages] == [True, True, False]
    assert again.label == 1 and again.offender == "a"


@pytest.mark.parametrize(
    ("mutate", "field", "code"),
    [
        (lambda r: r.pop("conversation_id"), "conversation_id", "E202"),
        (lambda r: r.update(conversation_id=7), "conversation_id", "E203"),
        (lambda r: r.update(region="Mars"), "region", "E204"),
        (lambda r: r.update(e2ee="yes"), "e2ee", "E203"),
        (lambda r: r["participants"][1].update(declared_age="13"), "participants[1].declared_age",
         "E203"),
        (lambda r: r["participants"][1].update(declared_age=True), "participants[1].declared_age",
         "E203"),
        (lambda r: r["participants"][0].update(declared_age=400), "participants[0].declared_age",
         "E204"),
        (lambda r: r["participants"][1].update(id="a"), "participants[1].id", "E206"),
        (lambda r: r["participants"][0].update(protected_role="priest"),
         "participants[0].protected_role", "E204"),
        (lambda r: r["messages"][0].update(sender="zz"), "messages[0].sender", "E205"),
        (lambda r: r["messages"][0].update(ts="yesterday"), "messages[0].ts", "E207"),
        (lambda r: r["messages"][0].update(ts="2026-03-01T10:00:00"), "messages[0].ts", "E207"),
        (lambda r: r["messages"][0].update(text=None), "messages[0].text", "E203"),
        (lambda r: r["messages"][0].pop("text"), "messages[0].text", "E202"),
        (lambda r: r["messages"][0].update(colour="red"), "messages[0]", "E208"),
        (lambda r: r.update(label=2), "label", "E204"),
        (lambda r: r.update(offender="nobody"), "offender", "E217"),
        (lambda r: r.update(relationship="close"), "relationship", "E203"),
        (lambda r: r.update(relationship={"family_link": "yes"}), "relationship.family_link",
         "E204"),
        (lambda r: r.update(relationship={"contact_age_days": -1}),
         "relationship.contact_age_days", "E204"),
        (lambda r: r.update(relationship={"contact_age_days": 3.0}),
         "relationship.contact_age_days", "E204"),
        (lambda r: r.update(relationship={"mutual_contacts": True}),
         "relationship.mutual_contacts", "E204"),
        (lambda r: r.update(relationship={"mutual_contacts": 10**10}),
         "relationship.mutual_contacts", "E204"),
    ],
)
def test_invalid_field_is_named_without_text(mutate, field, code):
    rec = record()
    mutate(rec)
    with pytest.raises(RecordError) as err:
        conversation_from_dict(rec, line=7)
    assert err.value.field == field
    assert err.value.line == 7
    assert code in str(err.value) and "Line 7" in str(err.value)
    assert CANARY not in str(err.value)


def test_bad_lines_do_not_stop_the_batch():
    good = json.dumps(record())
    bad_json = '{"conversation_id": "x", "messages": [' + CANARY
    bad_field = json.dumps(record(region="Atlantis"))
    other = json.dumps(record(conversation_id="c-2"))
    lines = [good, bad_json, "", "[1, 2]", bad_field, other, good]
    results = list(read_jsonl(lines))
    assert [(r.line, r.ok) for r in results] == [
        (1, True), (2, False), (4, False), (5, False), (6, True), (7, False)]
    for r in results:
        if not r.ok:
            assert CANARY not in str(r.error)
    assert "E200" in str(results[1].error) and "E201" in str(results[2].error)
    # the same conversation id twice: the later record is reported, not silently kept
    assert results[-1].error.code == "E215" and "line 1" in str(results[-1].error)


def test_message_text_cannot_be_pickled_or_shown():
    conv = conversation_from_dict(record())
    assert CANARY not in repr(conv)
    with pytest.raises(TypeError):
        pickle.dumps(conv.messages[0])
    with pytest.raises(TypeError):
        pickle.dumps(conv)


def test_bundled_sample_is_valid():
    results = list(read_jsonl(sample_path()))
    assert results and all(r.ok for r in results)
    assert any(not m.is_text for r in results for m in r.conversation.messages)
    assert isinstance(results[0].conversation, Conversation)


def test_wrong_argument_types_are_coded_errors():
    from classifier import ConfigError, InputTypeError, Pipeline, read_jsonl

    for source in (12, b"raw bytes", None):
        with pytest.raises(InputTypeError, match=r"\[E005\]"):
            list(read_jsonl(source))
    for threshold in ("x", 1.5, -0.1, True):
        with pytest.raises(ConfigError, match=r"\[E005\]"):
            Pipeline(threshold=threshold)
    assert Pipeline(threshold=0.5).threshold == 0.5
