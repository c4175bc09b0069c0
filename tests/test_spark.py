"""The Spark integration on a real local Spark (local[2]): batch, incremental, streaming.

One session serves the module (starting Spark takes tens of seconds here).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from classifier.evaluation.synth import generate

from classifier import read_jsonl
from classifier._cli import sample_path
from classifier._message_rows import conversation_rows
from classifier.integrations import scorer_for

if not os.environ.get("SOLICITATION_TEST_REQUIRE_SPARK"):  # CI sets it: no silent skip
    pytest.importorskip("pyspark", reason="the [spark] extra is not installed")
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (scripts/test.sh installs one as root)",
                    allow_module_level=True)
import classifier.integrations.spark as spark_mod

pytestmark = pytest.mark.obligation("art3-1-b")

CANARY = "qqsparkcanary4417"
SCHEMA = ("conversation_id string, message_id string, sender string, ts double, "
          "text string, modality string, declared_age long, protected_role string, "
          "e2ee boolean")


@pytest.fixture(scope="module")
def spark():
    session = spark_mod.local_session("solicitation-classifier-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def conversations():
    convs = [r.conversation for r in read_jsonl(sample_path())]
    return convs + list(generate(40, seed=23, split="test"))


@pytest.fixture(scope="module")
def scorer():
    return scorer_for()


SCHEMA_METADATA = (SCHEMA + ", age_assurance string, family_link boolean, "
                   "contact_age_days long, mutual_contacts long")
_METADATA = ("age_assurance", "family_link", "contact_age_days", "mutual_contacts")


def rows_of(convs):
    return [r for c in convs for r in conversation_rows(c)]


def with_metadata(convs):
    """Every other conversation as a provider that checks ages and knows the pair sends
    it: verified ages, a new contact with no shared contacts."""
    from dataclasses import replace

    from classifier import Relationship

    return [replace(c, participants=tuple(replace(p, age_assurance="verified")
                                          for p in c.participants),
                    relationship=Relationship(family_link=False, contact_age_days=0,
                                              mutual_contacts=0)) if i % 2 else c
            for i, c in enumerate(convs)]


def by_id(rows):
    return {r.conversation_id: r for r in rows}


def assert_same_as_in_process(got, conv, scorer):
    want = scorer.score(conv)
    assert got.status == want.status, conv.conversation_id
    if want.status != "scored":
        assert got.reason == want.reason
        return
    assert got.score == pytest.approx(want.score, abs=1e-6)
    assert got.flagged == want.flagged
    assert got.flagged_at_message == want.flagged_at_message
    assert got.subject == want.subject
    assert got.n_messages == len(conv.messages)
    assert got.risk_factors == pytest.approx(dict(want.risk_factors), abs=1e-6)


def test_scores_equal_the_in_process_scorer(spark, conversations, scorer):
    df = spark.createDataFrame(rows_of(conversations), SCHEMA)
    out = by_id(spark_mod.score_messages(df).collect())
    assert set(out) == {c.conversation_id for c in conversations}
    for conv in conversations:
        assert_same_as_in_process(out[conv.conversation_id], conv, scorer)
    assert sum(r.flagged or False for r in out.values()) >= 3


def test_bad_rows_are_reported_and_the_good_ones_scored(spark, conversations, scorer):
    conv = conversations[0]  # sample-001, flagged
    bad = [
        {"conversation_id": conv.conversation_id, "message_id": "bad-sender", "sender": None,
         "ts": 1.0e9, "text": CANARY},
        {"conversation_id": conv.conversation_id, "message_id": "bad-age", "sender": "u-x",
         "ts": 1.0e9, "text": CANARY, "declared_age": 400},
        {"conversation_id": None, "message_id": "no-conversation", "sender": "u-y",
         "ts": 1.0e9, "text": CANARY},
        {"conversation_id": "only-bad", "message_id": "no-text", "sender": "u-z",
         "ts": 1.0e9, "text": None},
    ]
    df = spark.createDataFrame(rows_of([conv]) + bad, SCHEMA)
    out = spark_mod.score_messages(df).collect()
    rejected = {r.record: r for r in out if r.status == "rejected"}
    assert {k: (r.conversation_id, r.field) for k, r in rejected.items()} == {
        "message_id bad-sender": (conv.conversation_id, "sender"),
        "message_id bad-age": (conv.conversation_id, "declared_age"),
        "message_id no-conversation": (None, "conversation_id"),
        "message_id no-text": ("only-bad", "text"),
    }
    assert all(CANARY not in r.reason for r in rejected.values())
    scored = [r for r in out if r.status == "scored"]
    assert [r.conversation_id for r in scored] == [conv.conversation_id]
    assert_same_as_in_process(scored[0], conv, scorer)


def test_protected_roles_refuse_a_conversation_whose_helpline_has_not_written(
        spark, conversations):
    """A child's rows to a helpline that has not answered: ``protected_roles`` (a map
    column) names it, and the conversation is refused; a bad map is rejected by field,
    and the conversation beside it is scored."""
    conv = conversations[0]
    rows = [{**r, "protected_roles": None} for r in rows_of([conv])]
    rows += [{"conversation_id": "to-helpline", "message_id": f"k{i}", "sender": "kid",
              "ts": 1.0e9 + i, "text": CANARY, "protected_roles": {"h-1": "helpline"}}
             for i in range(3)]
    rows += [{"conversation_id": "bad-map", "message_id": "b0", "sender": "kid",
              "ts": 1.0e9, "text": CANARY, "protected_roles": {"h-1": "wizard"}}]
    df = spark.createDataFrame(rows, SCHEMA + ", protected_roles map<string,string>")
    out = spark_mod.score_messages(df).collect()
    status = {(r.conversation_id, r.status): r for r in out}
    assert status[("to-helpline", "refused")].reason == "protected_participant"
    assert status[("bad-map", "rejected")].field == "protected_roles"
    assert all(CANARY not in (r.reason or "") for r in out)
    assert (conv.conversation_id, "scored") in status
    wrong = spark.createDataFrame([("c", "u", 1.0, "hi", "helpline")],
                                  "conversation_id string, sender string, ts double, "
                                  "text string, protected_roles string")
    with pytest.raises(ValueError, match=r"\[E221\].*'protected_roles'"):
        spark_mod.score_messages(wrong)


def test_schema_problems_are_raised_at_once(spark):
    df = spark.createDataFrame([("c", "u", 1.0)],
                               "conversation_id string, sender string, ts double")
    with pytest.raises(ValueError, match=r"\[E220\].*'text'"):
        spark_mod.score_messages(df)
    df = spark.createDataFrame([("c", "u", "2026-01-01", "hi", "old")],
                               "conversation_id string, sender string, ts string, text string, "
                               "declared_age string")
    with pytest.raises(ValueError, match=r"\[E221\].*'declared_age'"):
        spark_mod.score_messages(df)


def test_incremental_batches_merge_into_the_whole(spark, conversations, scorer):
    rows = rows_of(conversations)
    position = {r["message_id"]: int(r["message_id"].rsplit("/", 1)[1]) for r in rows}
    first = [r for r in rows if position[r["message_id"]] < 5]
    second = [r for r in rows if position[r["message_id"]] >= 5]
    before = spark_mod.score_messages(spark.createDataFrame(first, SCHEMA)).cache()
    after = by_id(spark_mod.score_messages(spark.createDataFrame(second, SCHEMA),
                                           prior=before).collect())
    for conv in conversations:
        if len(conv.messages) > 5:
            assert_same_as_in_process(after[conv.conversation_id], conv, scorer)
    # the prior state holds numbers and pseudonymous ids only
    states = b"".join(r.state for r in before.collect() if r.state is not None)
    assert states and CANARY.encode() not in states
    assert all(m.text.encode() not in states for m in conversations[0].messages
               if len(m.text) > 12)
    before.unpersist()


def test_provider_metadata_on_rows_score_as_in_process_and_carry_over(spark, conversations,
                                                                       scorer):
    """age_assurance and the relationship columns count as in the JSONL format, also when
    only the first batch's rows carry them (the prior state keeps them)."""
    convs = with_metadata(conversations)
    assert sum(scorer.score(a).score != scorer.score(b).score
               for a, b in zip(convs, conversations, strict=True)) >= 3  # they matter
    rows = rows_of(convs)
    out = by_id(spark_mod.score_messages(spark.createDataFrame(rows, SCHEMA_METADATA))
                .collect())
    for conv in convs:
        assert_same_as_in_process(out[conv.conversation_id], conv, scorer)
    rich = out[convs[1].conversation_id]
    assert rich.relationship.asDict() == {"family_link": False, "contact_age_days": 0,
                                          "mutual_contacts": 0}
    assert set(rich.age_assurance.values()) == {"verified"}
    position = {r["message_id"]: int(r["message_id"].rsplit("/", 1)[1]) for r in rows}
    first = [r for r in rows if position[r["message_id"]] < 5]
    second = [{**r, **dict.fromkeys(_METADATA)} for r in rows if position[r["message_id"]] >= 5]
    before = spark_mod.score_messages(spark.createDataFrame(first, SCHEMA_METADATA)).cache()
    after = by_id(spark_mod.score_messages(spark.createDataFrame(second, SCHEMA_METADATA),
                                           prior=before).collect())
    for conv in convs:
        if len(conv.messages) > 5:
            assert_same_as_in_process(after[conv.conversation_id], conv, scorer)
    # a prior written by a release before these columns: still read (without them)
    older = spark_mod.score_messages(spark.createDataFrame(second, SCHEMA_METADATA),
                                     prior=before.drop("age_assurance", "relationship"))
    assert "scored" in {r.status for r in older.collect()} and not any(
        r.status == "rejected" for r in older.collect())
    before.unpersist()


def write_jsonl(path: Path, rows, mtime: float) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    os.utime(path, (mtime, mtime))  # the file source takes files oldest first


# the synthetic conversations span months: a long idle timeout keeps every row on time
@pytest.mark.parametrize("idle_timeout", [None, 3650 * 86400.0])
def test_stream_flags_once_at_the_first_crossing(spark, conversations, scorer, tmp_path,
                                                 idle_timeout):
    convs = with_metadata(conversations[:12])
    rows = rows_of(convs)
    for r in rows:
        r["text"] = f"{r['text']} {CANARY}" if r["text"] else r["text"]
    position = {r["message_id"]: int(r["message_id"].rsplit("/", 1)[1]) for r in rows}
    for r in rows:  # the provider's metadata on the first micro-batch only: kept in state
        if position[r["message_id"]] >= 3:
            r.update(dict.fromkeys(_METADATA))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for k, (low, high) in enumerate([(0, 3), (3, 8), (8, 10**6)]):
        part = [r for r in rows if low <= position[r["message_id"]] < high]
        if k == 1:
            part.append({"conversation_id": convs[0].conversation_id, "message_id": "bad-ts",
                         "sender": "u-1", "ts": None, "text": CANARY})
        write_jsonl(inbox / f"part-{k}.jsonl", part, 1_700_000_000 + k)
    schema = (SCHEMA_METADATA if idle_timeout is None
              else SCHEMA_METADATA.replace("ts double", "ts timestamp"))
    if idle_timeout is not None:
        for f in inbox.iterdir():  # timestamps as ISO strings, read as a timestamp column
            lines = [json.loads(x) for x in f.read_text().splitlines()]
            for r in lines:
                if r["ts"] is not None:
                    r["ts"] = datetime.fromtimestamp(r["ts"], UTC).isoformat()
            mtime = f.stat().st_mtime
            write_jsonl(f, lines, mtime)
    source = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).json(str(inbox))
    name = f"flags_{'idle' if idle_timeout else 'plain'}"
    query = (spark_mod.flag_stream(source, idle_timeout=idle_timeout).writeStream
             .format("memory").queryName(name).outputMode("append")
             .option("checkpointLocation", str(tmp_path / "checkpoint"))
             .trigger(availableNow=True).start())
    query.awaitTermination(timeout=300)
    assert not query.isActive
    out = spark.sql(f"select * from {name}").collect()
    flags = {r.conversation_id: r.flagged_at_message for r in out if r.status == "flagged"}
    want = {c.conversation_id: scorer.first_crossing(c) for c in convs
            if scorer.score(c).flagged}
    assert want and flags == want
    rejected = [r for r in out if r.status == "rejected"]
    assert [(r.record, r.field) for r in rejected] == [("message_id bad-ts", "ts")]
    # Spark's state store and checkpoint keep no text
    for path in (tmp_path / "checkpoint").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_streaming_example_runs_and_continues_from_its_checkpoint(spark, scorer, tmp_path,
                                                                  capsys):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "spark_streaming.py"
    spec = importlib.util.spec_from_file_location("spark_streaming_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    inbox, out, ck = tmp_path / "inbox", tmp_path / "out", tmp_path / "ck"
    example.demo_inbox(inbox, files=2)
    args = ["--inbox", str(inbox), "--out", str(out), "--checkpoint", str(ck)]
    assert example.main(args) == 0
    first = capsys.readouterr().out
    conv = next(iter(read_jsonl(sample_path()))).conversation
    assert f"flagged {conv.conversation_id} at message {scorer.first_crossing(conv)}" in first
    # a new file later: only it is read, and no conversation is flagged twice
    write_jsonl(inbox / "messages-late.jsonl", list(conversation_rows(conv))[-2:],
                2_000_000_000)
    assert example.main(args) == 0
    second = capsys.readouterr().out
    assert second.count(f"flagged {conv.conversation_id}") == 1
