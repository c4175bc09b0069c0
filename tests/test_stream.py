"""The bounded stream scorer: first-crossing flags, eviction, checkpoint and restore."""

from __future__ import annotations

import functools
import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from classifier import Scorer, StateError, StreamMessage, StreamScorer, read_jsonl, sample_path

CANARY = "qqstreamcanary301"


@pytest.fixture(scope="module")
def scorer(extractor):
    return Scorer(extractor=extractor)


def sample():
    return {r.conversation.conversation_id: r.conversation for r in read_jsonl(sample_path())}


def feed(stream, conv, messages=None):
    declared = {p.id: p.declared_age for p in conv.participants}
    flags = []
    for m in messages if messages is not None else conv.messages:
        flag = stream.add(conv.conversation_id, m.sender, m.ts,
                          m.text if m.is_text else None, declared_ages=declared)
        if flag:
            flags.append(flag)
    return flags


def test_flags_once_at_the_first_crossing(scorer):
    conv = sample()["sample-001"]
    stream = StreamScorer(scorer)
    flags = feed(stream, conv)
    assert len(flags) == 1
    assert flags[0].message_index == scorer.first_crossing(conv)
    assert flags[0].subject == conv.offender
    assert not feed(StreamScorer(scorer), sample()["sample-002"])  # teen peers


def test_interleaved_conversations_and_bounded_memory(scorer):
    convs = sample()
    stream = StreamScorer(scorer, max_open=2)
    events = sorted(((m.ts, c.conversation_id, i) for c in convs.values()
                     for i, m in enumerate(c.messages)), key=lambda e: (e[0], e[1], e[2]))
    for _ts, cid, i in events:
        m = convs[cid].messages[i]
        stream.add(cid, m.sender, m.ts, m.text if m.is_text else None)
        assert len(stream) <= 2
    assert stream.evicted >= len(convs) - 2


def test_idle_conversations_are_evicted(scorer):
    conv = sample()["sample-005"]
    stream = StreamScorer(scorer, idle_timeout=3600)
    feed(stream, conv, conv.messages[:2])
    later = conv.messages[0].ts + timedelta(hours=5)
    stream.add("other", "x", later, "hello")
    assert len(stream) == 1 and stream.evicted == 1


def test_checkpoint_and_restore_continue_exactly(scorer, tmp_path):
    from classifier.evaluation.synth import generate

    def flags_of(conv):
        return feed(StreamScorer(scorer), conv)

    # a conversation flagged once, after the cut of two messages
    conv, expected = next((c, f) for c in [*sample().values(), *generate(60, seed=5)]
                          if len(f := flags_of(c)) == 1 and f[0].message_index >= 2)
    first = StreamScorer(scorer)
    feed(first, conv, conv.messages[:2])
    first.add("c-canary", "a", conv.messages[0].ts, f"hello {CANARY}")
    path = tmp_path / "checkpoint.jsonl"
    assert first.checkpoint(path) == 2
    assert CANARY not in path.read_text()
    second = StreamScorer(scorer)
    assert second.restore(path) == 2
    rest = feed(second, conv, conv.messages[2:])
    assert [(f.message_index, round(f.score, 9)) for f in rest] == \
        [(f.message_index, round(f.score, 9)) for f in expected]


def test_the_providers_metadata_counts_and_survives_a_checkpoint(scorer, tmp_path):
    """Age assurance and the relationship, given on any message, reach the risk factors as
    in batch scoring, stay across a checkpoint, and a bad value is rejected by name."""
    from dataclasses import replace

    from classifier import Pipeline, Relationship, StateError

    conv = sample()["sample-001"]
    child = next(p.id for p in conv.participants if p.id != conv.offender)
    family = Relationship(family_link=True, contact_age_days=3000, mutual_contacts=40)
    assurance = {conv.offender: "verified", child: "estimated"}

    def stream_of(messages, stream=None):
        stream = stream or StreamScorer(scorer, skip_plain=False)
        for k, m in enumerate(messages):
            stream.add(conv.conversation_id, m.sender, m.ts, m.text,
                       declared_ages={p.id: p.declared_age for p in conv.participants},
                       age_assurance=assurance if k == 0 else None,
                       relationship=family if k == 0 else None)
        return stream

    half = len(conv.messages) // 2
    first = stream_of(conv.messages[:half])
    first.checkpoint(tmp_path / "cp.jsonl")
    second = StreamScorer(scorer, skip_plain=False)
    second.restore(tmp_path / "cp.jsonl")
    stream_of(conv.messages[half:], second)
    state = second._open[conv.conversation_id]
    with_meta = Pipeline(model=scorer.model, extractor=scorer.extractor, early=False)
    batch_conv = replace(conv, relationship=family, participants=tuple(
        replace(p, age_assurance=assurance[p.id]) for p in conv.participants))
    expected = with_meta.score_many([batch_conv])[0]
    mat = scorer.pipeline.factors.pair_matrix(state.state, state.context())
    assert with_meta.score_matrices([mat])[0][0] == pytest.approx(expected.score, abs=1e-9)
    assert expected.score != with_meta.score_many([conv])[0].score  # the metadata counts
    with pytest.raises(StateError, match=r"field 'age_assurance'"):
        StreamScorer(scorer).add("c-1", "u-1", conv.messages[0].ts, "hi",
                                 age_assurance={"u-1": "passport"})
    with pytest.raises(StateError, match=r"field 'relationship'"):
        StreamScorer(scorer).add("c-1", "u-1", conv.messages[0].ts, "hi",
                                 relationship={"family_link": True})


@pytest.mark.parametrize("bad, field", [
    ({"age_assurance": {1: "verified"}}, "age_assurance"),  # not a participant id
    ({"age_assurance": {"u-1": "passport"}}, "age_assurance"),
    ({"declared_ages": {"u-1": CANARY}}, "declared_ages"),  # kept, it broke every later add
    ({"declared_ages": {"u-1": -4}}, "declared_ages"),  # what batch scoring refuses (E204)
    ({"declared_ages": {"u-1": 5000}}, "declared_ages"),
    ({"declared_ages": {"u-1": 13.5}}, "declared_ages"),
    ({"declared_ages": {"u-1": True}}, "declared_ages"),
    ({"declared_ages": ["u-1"]}, "declared_ages"),
    ({"declared_ages": {"": 13}}, "declared_ages"),
    ({"relationship": "family"}, "relationship"),
    ({"relationship": "family_link=str"}, "relationship.family_link"),
    ({"relationship": "contact_age_days=-1"}, "relationship.contact_age_days"),
    ({"relationship": "contact_age_days=nan"}, "relationship.contact_age_days"),
    ({"relationship": "contact_age_days=str"}, "relationship.contact_age_days"),
    ({"relationship": "contact_age_days=huge"}, "relationship.contact_age_days"),
    ({"relationship": "mutual_contacts=numpy"}, "relationship.mutual_contacts"),
])
def test_bad_metadata_is_rejected_by_name_and_the_micro_batch_goes_on(scorer, bad, field):
    """What the interchange reader refuses in a relationship, a stream refuses too, with a
    coded rejection naming the row and field; the good messages around it are scored."""
    import numpy as np

    from classifier import Relationship

    values = {"str": "false", "-1": -1, "nan": float("nan"), "huge": 10**400,
              "numpy": np.int64(4)}
    kw = dict(bad)
    if isinstance(kw.get("relationship"), str) and "=" in kw["relationship"]:
        name, value = kw["relationship"].split("=")
        kw["relationship"] = Relationship(**{name: values[value]})
    conv = sample()["sample-001"]
    items = [StreamMessage(conv.conversation_id, m.sender, m.ts, m.text,
                           {p.id: p.declared_age for p in conv.participants})
             for m in conv.messages]
    stream = StreamScorer(scorer)
    flags = stream.add_many([items[0], StreamMessage("c-bad", "u-1", items[0].ts, CANARY, **kw),
                             *items[1:]])
    assert [f.message_index for f in flags] == [scorer.first_crossing(conv)]
    assert [(r.record, r.field) for r in stream.rejected] == [("micro-batch row 1", field)]
    assert "c-bad" not in stream._open and CANARY not in stream.rejected[0].reason


def test_a_checkpoint_is_replaced_whole_and_a_hand_edited_one_is_refused(scorer, tmp_path):
    import json

    from classifier import StateError

    conv = sample()["sample-001"]
    stream = StreamScorer(scorer)
    feed(stream, conv)
    path = tmp_path / "cp.jsonl"
    assert stream.checkpoint(path) == 1
    good = path.read_text()
    stream._open[conv.conversation_id].assurance = {("u", 1): "verified"}  # unwritable
    with pytest.raises(TypeError):
        stream.checkpoint(path)
    assert path.read_text() == good and [p.name for p in tmp_path.iterdir()] == ["cp.jsonl"]
    record = json.loads(good)
    for key, value in (("assurance", {"u-1": "passport"}),
                       ("relationship", {"family_link": "yes"}),
                       ("relationship", {"family_link": True, "extra": 1}),
                       ("declared", {"u-1": CANARY}), ("declared", {"u-1": -1}),
                       ("n_messages", -1), ("n_messages", "3"), ("flagged_at", 10**6),
                       ("last_seen", None), ("refused", CANARY), ("state", "%%%"),
                       ("conversation_id", 7)):
        path.write_text(json.dumps({**record, key: value}) + "\n")
        restored = StreamScorer(scorer)
        restored.add("c-open", "u-1", conv.messages[0].ts, "hi")
        with pytest.raises(StateError, match=rf"\[E301\].*line 1, field '{key}") as caught:
            restored.restore(path)
        assert CANARY not in str(caught.value)
        assert list(restored._open) == ["c-open"]  # nothing replaced by half a file
    for text in ("zzz\n", good[: len(good) // 2], "[1]\n"):  # garbage, cut short, no object
        path.write_text(text)
        with pytest.raises(StateError, match=r"\[E301\].*line 1"):
            StreamScorer(scorer).restore(path)
    path.write_bytes(b"\xff\xfe\n")
    with pytest.raises(StateError, match=r"\[E301\].*not UTF-8"):
        StreamScorer(scorer).restore(path)


def test_micro_batches_equal_a_message_at_a_time(scorer):
    from classifier.evaluation.synth import generate

    convs = list(generate(30, seed=41, split="test"))
    # interleave the conversations by time, as a provider's stream would
    stream = sorted(((m.ts, c, m) for c in convs for m in c.messages),
                    key=lambda x: (x[0], x[1].conversation_id))
    items = [StreamMessage(c.conversation_id, m.sender, m.ts, m.text if m.is_text else None,
                           {p.id: p.declared_age for p in c.participants})
             for _, c, m in stream]
    one = StreamScorer(scorer, max_open=12)
    singles = [f for it in items
               if (f := one.add(it.conversation_id, it.sender, it.ts, it.text,
                                declared_ages=it.declared_ages,
                                age_assurance=it.age_assurance, relationship=it.relationship,
                                protected_roles=it.protected_roles))]
    many = StreamScorer(scorer, max_open=12)
    batched = [f for k in range(0, len(items), 97) for f in many.add_many(items[k:k + 97])]
    assert len(singles) >= 3 and batched == singles
    assert many.evicted == one.evicted > 0


def test_a_bad_message_is_rejected_by_name_and_the_batch_goes_on(scorer):
    from datetime import datetime

    from classifier import StateError

    conv = sample()["sample-001"]
    declared = {p.id: p.declared_age for p in conv.participants}
    items = [StreamMessage(conv.conversation_id, m.sender, m.ts, m.text, declared)
             for m in conv.messages]
    bad = [StreamMessage(conv.conversation_id, "u-9", datetime(2026, 1, 1), CANARY),  # naive
           StreamMessage(conv.conversation_id, None, conv.messages[0].ts, CANARY),
           StreamMessage("", "u-9", conv.messages[0].ts, CANARY)]
    stream = StreamScorer(scorer)
    flags = stream.add_many(items[:2] + bad + items[2:])
    assert [f.message_index for f in flags] == [scorer.first_crossing(conv)]
    assert [(r.record, r.field) for r in stream.rejected] == [
        ("micro-batch row 2", "ts"), ("micro-batch row 3", "sender"),
        ("micro-batch row 4", "conversation_id")]
    assert all(CANARY not in r.reason for r in stream.rejected)
    with pytest.raises(StateError, match=r"\[E211\].*field 'ts'") as info:
        StreamScorer(scorer).add("c-1", "u-1", datetime(2026, 1, 1), CANARY)
    assert CANARY not in str(info.value)


def test_timestamps_as_epoch_seconds_or_iso_strings_score_as_datetimes(scorer):
    """A stream reading JSON passes ISO 8601 strings or epoch seconds: the same flag as
    datetimes; a string without a zone is a coded rejection, not a raw ValueError."""
    from classifier import StateError

    conv = sample()["sample-001"]

    def flags_with(as_ts):
        stream = StreamScorer(scorer)
        declared = {p.id: p.declared_age for p in conv.participants}
        return [(f.message_index, f.score, f.subject) for m in conv.messages
                if (f := stream.add(conv.conversation_id, m.sender, as_ts(m.ts),
                                    m.text if m.is_text else None, declared_ages=declared))]

    expected = flags_with(lambda ts: ts)
    assert expected and flags_with(lambda ts: ts.isoformat()) == expected
    assert flags_with(lambda ts: ts.timestamp()) == expected
    with pytest.raises(StateError, match=r"\[E211\].*field 'ts'") as info:
        StreamScorer(scorer).add("c-1", "u-1", "2026-01-01T10:00:00", CANARY)
    assert CANARY not in str(info.value)


def _interleaved(convs):
    """Every message of ``convs`` in time order, each carrying what the provider knows of
    its conversation (profile ages, age assurance, the relationship)."""
    stream = sorted(((m.ts, c, m) for c in convs for m in c.messages),
                    key=lambda x: (x[0], x[1].conversation_id))
    return [StreamMessage(c.conversation_id, m.sender, m.ts, m.text if m.is_text else None,
                          {p.id: p.declared_age for p in c.participants},
                          age_assurance={p.id: p.age_assurance for p in c.participants},
                          relationship=c.relationship,
                          protected_roles={p.id: p.protected_role for p in c.participants})
            for _, c, m in stream]


@pytest.mark.parametrize("author", ["a01_sms", "a06_groups", "generator"])
def test_skipping_plain_messages_raises_the_same_flags(scorer, author):
    """The model runs only after messages that changed the risk-relevant state; the flags
    equal scoring after every message, on authors' conversations (groups included)."""
    from classifier.evaluation.authors import load_author

    convs = load_author(author, generator_n=120)[:120]
    items = _interleaved(convs)
    every = StreamScorer(scorer, skip_plain=False)
    skipping = StreamScorer(scorer)
    want = [f for k in range(0, len(items), 500) for f in every.add_many(items[k:k + 500])]
    got = [f for k in range(0, len(items), 500) for f in skipping.add_many(items[k:k + 500])]
    assert [(f.conversation_id, f.message_index, f.subject) for f in got] == \
        [(f.conversation_id, f.message_index, f.subject) for f in want]
    assert len(want) >= 10 and skipping.skipped > len(items) // 3


def test_a_stream_meters_the_bytes_it_scans_as_the_batch_path_does(extractor):
    """Bytes scanned per region, conversations (once each) and non-text messages: the
    annual report's counters are the same whether a conversation came as a batch or one
    message at a time, also with regions mixed in one micro-batch."""
    from dataclasses import replace

    convs = [replace(c, region="EU" if i % 2 else "non-EU")
             for i, c in enumerate(sample().values())]
    batch = Scorer(extractor=extractor)
    batch.score_many(convs)
    stream = StreamScorer(Scorer(extractor=extractor))
    items = sorted((StreamMessage(c.conversation_id, m.sender, m.ts,
                                  m.text if m.is_text else None, region=c.region)
                    for c in convs for m in c.messages), key=lambda m: m.ts)
    stream.add_many(items[:7])  # a micro-batch of both regions
    for m in items[7:]:
        stream.add(m.conversation_id, m.sender, m.ts, m.text) if m.region == "EU" else \
            stream.add_many([m])
    expected = batch.pipeline.policy.counters()
    got = stream.pipeline.policy.counters()
    assert expected["bytes_scanned.EU"] > 0 and expected["bytes_scanned.non-EU"] > 0
    assert {k: got.get(k) for k in expected} == expected


def test_a_stream_message_with_an_unknown_region_is_rejected_by_name(scorer):
    stream = StreamScorer(scorer)
    assert stream.add_many([StreamMessage("c-1", "u-1", 1_790_000_000.0, "hi",
                                          region="mars")]) == []
    assert stream.rejected[-1].field == "region" and "mars" not in stream.rejected[-1].reason


@functools.cache
def _author_conversations(author):
    """An author's conversations, each cut to its first 40 messages (so that scoring every
    prefix stays quick)."""
    from dataclasses import replace

    from classifier.evaluation.authors import load_author

    return tuple(replace(c, messages=c.messages[:40])
                 for c in load_author(author, generator_n=120))


@settings(max_examples=20, deadline=None, phases=[Phase.explicit, Phase.generate],  # no shrinking:
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # an example takes 1 s
@given(author=st.sampled_from(["a01_sms", "a06_groups", "generator"]),
       seed=st.integers(0, 2**16), size=st.integers(2, 200))
@example(author="a06_groups", seed=3055, size=140)  # a helpline the stream had not known of
def test_one_at_a_time_equals_micro_batches_and_scoring_every_prefix(scorer, author, seed,
                                                                      size):
    """The single-message path (add) and micro-batches (add_many) give the same flags,
    scores, subjects and states; each flag is at the first prefix whose batch score reaches
    the threshold, with that prefix's score and subject, and each state is the batch state
    of the whole conversation (bundled evaluation data, flagged and unflagged, with the
    provider's age assurance and relationship metadata; nothing evicted)."""
    from dataclasses import replace

    from classifier import Pipeline, conversation_state

    pool = list(_author_conversations(author))
    rng = random.Random(seed)
    flagged = [c for c in pool if c.label == 1]
    convs = rng.sample(flagged, min(3, len(flagged))) + rng.sample(pool, 3)
    convs = list({c.conversation_id: c for c in convs}.values())
    items = _interleaved(convs)
    one, many = StreamScorer(scorer, idle_timeout=1e12), StreamScorer(scorer, idle_timeout=1e12)
    singles = [f for it in items
               if (f := one.add(it.conversation_id, it.sender, it.ts, it.text,
                                declared_ages=it.declared_ages,
                                age_assurance=it.age_assurance, relationship=it.relationship,
                                protected_roles=it.protected_roles))]
    batched = [f for k in range(0, len(items), size) for f in many.add_many(items[k:k + size])]
    assert singles == batched
    # every prefix of every conversation scored as a batch
    batch = Pipeline(model=scorer.model, extractor=scorer.extractor, early=False)
    prefixes = [replace(c, messages=c.messages[:k + 1]) for c in convs
                for k in range(len(c.messages))]
    results = iter(batch.score_many(prefixes))
    by_id = {f.conversation_id: f for f in singles}
    for conv in convs:
        mine = [next(results) for _ in conv.messages]
        first = next((k for k, r in enumerate(mine) if r.flagged), None)
        flag = by_id.get(conv.conversation_id)
        assert (flag.message_index if flag else None) == first
        if flag is not None:
            assert (flag.score, flag.subject) == (mine[first].score, mine[first].subject)
        mine_one, mine_many = one._open[conv.conversation_id], many._open[conv.conversation_id]
        if mine[-1].status == "refused":  # a protected participant: refused, nothing kept
            assert mine_one.refused == mine_many.refused == mine[-1].reason
            assert mine_one.state.n_messages == mine_many.state.n_messages == 0
        else:
            assert mine_one.state == mine_many.state == conversation_state(conv,
                                                                           scorer.extractor)


def test_a_message_dated_far_after_the_clock_is_rejected_and_evicts_nothing(scorer):
    from datetime import UTC, datetime

    from classifier import Pipeline, ScanPolicy, StateError

    now = datetime(2026, 9, 1, tzinfo=UTC)  # (inside a legal window)
    pipeline = Pipeline(extractor=scorer.extractor,
                        policy=ScanPolicy(clock=lambda: now))
    stream = StreamScorer(pipeline, idle_timeout=2 * 86400)
    stream.add("c-1", "u-1", now, "hi")
    stream.add("c-2", "u-2", now + timedelta(hours=23), "hello")  # within a day: kept
    assert len(stream) == 2
    far = [StreamMessage("c-3", "u-3", now + timedelta(days=400), f"hey {CANARY}"),
           StreamMessage("c-4", "u-4", now + timedelta(minutes=1), "hey")]
    stream.add_many(far)
    assert len(stream) == 3 and stream.evicted == 0  # the good one kept, nothing evicted
    bad = stream.rejected[-1]
    assert (bad.conversation_id, bad.record, bad.field) == ("c-3", "micro-batch row 0", "ts")
    assert bad.reason.startswith("[E211]") and CANARY not in bad.reason
    with pytest.raises(StateError, match="E304"):
        stream.add("c-5", "u-5", (now + timedelta(days=2)).isoformat(), "hey")
    replay = StreamScorer(pipeline, idle_timeout=2 * 86400, max_ahead=None)  # data dated ahead
    replay.add("c-1", "u-1", now + timedelta(days=400), "hi")
    assert len(replay) == 1 and not replay.rejected


def test_a_message_ahead_of_the_clock_does_not_make_the_others_idle(scorer):
    from datetime import UTC, datetime

    from classifier import ConfigError, Pipeline, ScanPolicy

    now = datetime(2026, 9, 1, tzinfo=UTC)
    pipeline = Pipeline(extractor=scorer.extractor, policy=ScanPolicy(clock=lambda: now))
    stream = StreamScorer(pipeline, idle_timeout=3600)
    for i in range(5):
        stream.add(f"c-{i}", f"u-{i}", now, "hello")
    stream.add("c-x", "u-9", now + timedelta(hours=23), "hello")  # within max_ahead
    assert (len(stream), stream.evicted) == (6, 0)
    later = StreamScorer(pipeline, idle_timeout=3600)
    later.add("c-0", "u-0", now - timedelta(hours=3), "hello")  # replayed, hours old
    later.add("c-1", "u-1", now - timedelta(minutes=5), "hello")
    assert (len(later), later.evicted) == (1, 1)  # idle by the messages' own time
    for bad in ("5", [1], True, -1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="E005"):
            StreamScorer(pipeline, max_ahead=bad)


def test_a_zone_that_gives_no_offset_is_rejected_not_raised(scorer):
    from datetime import datetime, tzinfo

    class NoOffset(tzinfo):
        def utcoffset(self, dt):
            return None

    stream = StreamScorer(scorer)
    good = StreamMessage("c-2", "u-2", 1_790_000_000.0, "hey")
    stream.add_many([StreamMessage("c-1", "u-1", datetime(2026, 9, 1, tzinfo=NoOffset()),
                                   CANARY), good,
                     StreamMessage("c-3", "u-3", 10**400, CANARY)])
    assert [(r.record, r.field) for r in stream.rejected] == [
        ("micro-batch row 0", "ts"), ("micro-batch row 2", "ts")]
    assert len(stream) == 1


def test_a_first_message_to_a_protected_participant_is_refused_before_it_is_read(scorer):
    """``protected_roles`` names a helpline that has not written yet: the child's first
    message is refused (not scanned, no bytes metered), and so is the rest; a bad role is
    rejected by field name, never by value."""
    stream = StreamScorer(Scorer(model=scorer.model, extractor=scorer.extractor))
    before = stream.pipeline.policy.counters()
    t = 1_790_000_000.0
    roles = {"u-line": "helpline", "u-kid": None}
    assert stream.add("c-help", "u-kid", t, "im 13 and alone, can i talk to someone",
                      protected_roles=roles) is None
    assert stream.add("c-help", "u-line", t + 60, "yes, you can tell me anything") is None
    after = stream.pipeline.policy.counters()
    assert after.get("bytes_scanned.EU", 0) == before.get("bytes_scanned.EU", 0)
    assert stream._open["c-help"].refused == "protected_participant"
    assert stream._open["c-help"].state.n_messages == 0
    with pytest.raises(StateError) as err:
        stream.add("c-2", "u-kid", t, "hi", protected_roles={"u-x": "wizard"})
    assert "protected_roles" in str(err.value) and "wizard" not in str(err.value)
