"""Message rows (one message per row) and scoring that continues from a prior state."""

from __future__ import annotations

import itertools

import pytest
from classifier.evaluation.synth import generate

from classifier._message_rows import MessageRow, conversation_from_rows, conversation_rows
from classifier._scoring import Scorer
from classifier.integrations import PriorState, score_rows, score_rows_many

pytestmark = pytest.mark.obligation("art3-1-b", "recital-26-27")

CANARY = "qqrowcanary77"


@pytest.fixture(scope="module")
def scorer(extractor):
    return Scorer(extractor=extractor)


def rows_of(conv):
    return [MessageRow(r["message_id"], r["sender"], r["ts"], r["text"], r["modality"],
                       r["declared_age"], r["protected_role"], r["e2ee"])
            for r in conversation_rows(conv)]


@pytest.fixture(scope="module")
def conversations():
    return list(generate(40, seed=11, split="test"))


def test_rows_round_trip_to_the_same_conversation(conversations):
    for conv in conversations:
        back, rejected = conversation_from_rows(conv.conversation_id, rows_of(conv)[::-1])
        assert rejected == []
        assert back.messages == conv.messages  # re-sorted by time
        assert {p.id: p.declared_age for p in back.participants} == {
            p.id: p.declared_age for p in conv.participants
            if any(m.sender == p.id for m in conv.messages)}


@pytest.mark.parametrize("row, field_name, code", [
    (MessageRow("row 1", None, 1.0e9, CANARY), "sender", "E210"),
    (MessageRow("row 1", "", 1.0e9, CANARY), "sender", "E211"),
    (MessageRow("row 1", "u", None, CANARY), "ts", "E210"),
    (MessageRow("row 1", "u", "2026-03-01T10:00:00", CANARY), "ts", "E211"),  # no zone
    (MessageRow("row 1", "u", float("nan"), CANARY), "ts", "E210"),
    (MessageRow("row 1", "u", 1.0e9, None), "text", "E210"),
    (MessageRow("row 1", "u", 1.0e9, 17), "text", "E211"),
    (MessageRow("row 1", "u", 1.0e9, CANARY, declared_age=300), "declared_age", "E211"),
    (MessageRow("row 1", "u", 1.0e9, CANARY, declared_age=12.5), "declared_age", "E211"),
    (MessageRow("row 1", "u", 1.0e9, CANARY, protected_role="friend"), "protected_role",
     "E211"),
    (MessageRow("row 1", "u", 1.0e9, CANARY, e2ee="yes"), "e2ee", "E211"),
])
def test_a_bad_row_is_rejected_by_name_and_the_good_ones_kept(row, field_name, code):
    good = MessageRow("row 0", "v", 1.0e9, "hello")
    conv, rejected = conversation_from_rows("c-9", [good, row])
    assert [m.sender for m in conv.messages] == ["v"]
    assert len(rejected) == 1
    bad = rejected[0]
    assert (bad.conversation_id, bad.record, bad.field) == ("c-9", "row 1", field_name)
    assert bad.reason.startswith(f"[{code}] Message row, field {field_name!r}")
    assert 'c-9' not in bad.reason
    assert CANARY not in bad.reason


def test_rows_without_a_conversation_id_are_all_rejected():
    conv, rejected = conversation_from_rows(None, [MessageRow("row 3", "u", 1.0e9, "hi")])
    assert conv is None and rejected[0].field == "conversation_id"


def test_protected_role_or_e2ee_on_any_row_refuses_the_conversation(scorer):
    rows = [MessageRow("row 0", "u", 1.0e9, "hi"),
            MessageRow("row 1", "h", 1.0e9 + 5, "hello", protected_role="helpline")]
    out = score_rows(scorer, "c-1", rows)
    assert (out.result.status, out.result.reason, out.prior) == (
        "refused", "protected_participant", None)
    prior = score_rows(scorer, "c-2", rows[:1]).prior
    out = score_rows(scorer, "c-2", [MessageRow("row 2", "u", 1.0e9 + 9, "x", e2ee=True)],
                     prior)
    assert out.result.reason == "e2ee" and out.prior is None  # the prior numbers are dropped


def test_consecutive_batches_score_as_the_whole_conversation(scorer, conversations):
    checked_flags = 0
    for conv in conversations:
        rows = rows_of(conv)
        whole = scorer.score(conv)
        prior: PriorState | None = None
        cuts = [0, len(rows) // 3, 2 * len(rows) // 3, len(rows)]
        peaks = []
        for a, b in itertools.pairwise(cuts):
            if a == b:
                continue
            out = score_rows(scorer, conv.conversation_id, rows[a:b], prior)
            prior = out.prior
            if out.result is not None and out.result.score is not None:
                peaks.append(out.result.score)
        if whole.status == "refused":
            assert (out.result.status, out.result.reason) == ("refused", whole.reason)
            continue
        assert out.n_messages == len(conv.messages)
        # a flagged batch reports its highest score (together: the whole's peak); an
        # unflagged one its score at the end
        got = max(peaks) if whole.flagged else out.result.score
        assert got == pytest.approx(whole.score, abs=1e-6)
        assert out.result.flagged == whole.flagged
        assert out.result.flagged_at_message == whole.flagged_at_message
        assert out.result.subject == whole.subject
        checked_flags += whole.flagged
    assert checked_flags >= 3  # the comparison covered flagged conversations


def test_late_messages_are_counted_not_lost(scorer, conversations):
    conv = max(conversations, key=lambda c: len(c.messages))
    rows = rows_of(conv)
    early, late = rows[::2], rows[1::2]  # the second batch goes back in time
    first = score_rows(scorer, conv.conversation_id, early)
    second = score_rows(scorer, conv.conversation_id, late, first.prior)
    assert second.n_messages == len(rows)
    whole = scorer.score(conv)
    assert abs(second.result.score - whole.score) < 0.5  # timing is approximate, counts exact


def test_message_rows_cannot_be_pickled():
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(MessageRow("row 0", "u", 1.0e9, CANARY))


def test_a_damaged_prior_state_rejects_its_conversation_only(scorer, conversations):
    good = conversations[0]
    damaged = PriorState(b"CS1 not a state", {})
    out = score_rows_many(scorer, [("c-damaged", [MessageRow("row 0", "u", 1.0e9, "hi")],
                                    damaged),
                                   (good.conversation_id, rows_of(good), None)])
    assert out[0].result is None and out[0].prior is damaged
    assert [(r.record, r.field) for r in out[0].rejected] == [("prior state", "state")]
    assert out[0].rejected[0].reason.startswith("[E30")
    assert out[1].result.score == pytest.approx(scorer.score(good).score, abs=1e-6)
