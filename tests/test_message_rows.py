"""Message rows (one message per row) and scoring that continues from a prior state."""

from __future__ import annotations

import itertools
from decimal import Decimal

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


def test_a_protected_participant_named_on_rows_refuses_before_it_writes(scorer):
    """A child's rows to a helpline that has not answered yet: ``protected_roles`` (a
    mapping, or the pairs a table's map column gives) names it, the conversation is
    refused, and a conversation read back from its rows keeps a protected participant
    who never wrote."""
    from classifier import Conversation, Message, Participant
    from classifier._conversation import parse_timestamp

    for named in ({"h-1": "helpline"}, [("h-1", "helpline")], [("h-1", None), ("h-2", "legal")]):
        rows = [MessageRow("row 0", "kid", 1.0e9, CANARY, protected_roles=named),
                MessageRow("row 1", "kid", 1.0e9 + 5, "are you there")]
        out = score_rows(scorer, "c-1", rows)
        assert (out.result.status, out.result.reason, out.prior) == (
            "refused", "protected_participant", None)
    # a null role protects nobody: the same rows are scored
    out = score_rows(scorer, "c-2", [MessageRow("row 0", "kid", 1.0e9, "hi",
                                                protected_roles={"h-1": None})])
    assert out.result.status == "scored"
    conv = Conversation("c-3", (Participant("kid", 12), Participant("h-1", None, "helpline")),
                        (Message("kid", parse_timestamp(1.0e9), "hello"),))
    back, rejected = conversation_from_rows("c-3", [MessageRow(**{
        k: v for k, v in r.items() if k not in ("conversation_id", "message_id")},
        record=r["message_id"]) for r in conversation_rows(conv)])
    assert rejected == [] and {p.id: p.protected_role for p in back.participants} == {
        "kid": None, "h-1": "helpline"}
    assert scorer.score(back).reason == "protected_participant"


@pytest.mark.parametrize("named", [{"h-1": "wizard"}, {"": "helpline"}, {7: "helpline"},
                                   [("h-1",)], "helpline", 3])
def test_bad_protected_roles_on_a_row_are_rejected_by_field(named):
    good = MessageRow("row 0", "v", 1.0e9, "hello")
    bad = MessageRow("row 1", "u", 1.0e9, CANARY, protected_roles=named)
    conv, rejected = conversation_from_rows("c-1", [good, bad])
    assert [(r.record, r.field) for r in rejected] == [("row 1", "protected_roles")]
    assert rejected[0].reason.startswith("[E211]") and CANARY not in rejected[0].reason
    assert "wizard" not in rejected[0].reason and len(conv.messages) == 1


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


def _with_provider_metadata(conv):
    """The conversation as a provider that verified ages and links the pair would send it."""
    from dataclasses import replace

    from classifier import Relationship

    people = tuple(replace(p, age_assurance="verified") for p in conv.participants)
    return replace(conv, participants=people,
                   relationship=Relationship(family_link=True, contact_age_days=900,
                                             mutual_contacts=12))


def test_age_assurance_and_relationship_on_rows_score_as_in_the_interchange_format(
        scorer, conversations):
    """Rows carry what a JSONL line carries: the same score, in one batch or in several
    (what the provider said in the first batch still counts in the later ones)."""
    changed = 0
    for conv in conversations[:12]:
        rich = _with_provider_metadata(conv)
        rows = [MessageRow(r["message_id"], r["sender"], r["ts"], r["text"], r["modality"],
                           r["declared_age"], r["protected_role"], r["e2ee"],
                           r["age_assurance"], r["family_link"], r["contact_age_days"],
                           r["mutual_contacts"])
                for r in conversation_rows(rich)]
        back, rejected = conversation_from_rows(rich.conversation_id, rows)
        assert rejected == [] and back.relationship == rich.relationship
        assert {p.id: p.age_assurance for p in back.participants} == {
            p.id: "verified" for p in back.participants}
        whole = scorer.score(rich)
        if whole.status != "scored":
            continue
        assert score_rows(scorer, rich.conversation_id, rows).result.score == \
            pytest.approx(whole.score, abs=1e-6)
        # the metadata only on the first batch's rows: kept in the prior state
        cut = len(rows) // 2
        bare = [MessageRow(r.record, r.sender, r.ts, r.text, r.modality, r.declared_age,
                           r.protected_role, r.e2ee) for r in rows[cut:]]
        first = score_rows(scorer, rich.conversation_id, rows[:cut])
        assert first.prior.relationship == rich.relationship
        second = score_rows(scorer, rich.conversation_id, bare, first.prior)
        # a flagged batch reports its highest score, an unflagged one its score at the end
        got = (max(s for s in (first.result.score, second.result.score) if s is not None)
               if whole.flagged else second.result.score)
        assert got == pytest.approx(whole.score, abs=1e-6)
        assert second.prior.age_assurance == {p.id: "verified" for p in back.participants}
        changed += scorer.score(conv).score != pytest.approx(whole.score, abs=1e-6)
    assert changed >= 3  # the metadata moved scores: a path that ignored it would fail


@pytest.mark.parametrize("extra, field_name", [
    ({"age_assurance": "passport"}, "age_assurance"),
    ({"age_assurance": 1}, "age_assurance"),
    ({"family_link": "yes"}, "family_link"),
    ({"family_link": 1}, "family_link"),
    ({"contact_age_days": -1}, "contact_age_days"),
    ({"contact_age_days": 2.5}, "contact_age_days"),
    ({"mutual_contacts": True}, "mutual_contacts"),
    ({"mutual_contacts": 10**12}, "mutual_contacts"),
    ({"contact_age_days": Decimal("2.5")}, "contact_age_days"),
    ({"mutual_contacts": Decimal("-1")}, "mutual_contacts"),
])
def test_bad_provider_metadata_on_a_row_is_rejected_by_field(extra, field_name):
    import numpy as np

    good = MessageRow("row 0", "v", 1.0e9, "hello", family_link=np.bool_(True),
                      contact_age_days=3.0, mutual_contacts=np.int64(2))
    bad = MessageRow("row 1", "u", 1.0e9, CANARY, **extra)
    conv, rejected = conversation_from_rows("c-1", [good, bad])
    assert [(r.record, r.field) for r in rejected] == [("row 1", field_name)]
    assert rejected[0].reason.startswith("[E211]") and CANARY not in rejected[0].reason
    assert len(conv.messages) == 1 and conv.relationship.contact_age_days == 3


def test_whole_decimals_are_counts_and_ages_alike():
    # Spark's DecimalType reaches Python as decimal.Decimal: a whole one is read as the
    # integer it is, for the provider's counts as for declared ages
    row = MessageRow("row 0", "v", 1.0e9, "hello", declared_age=Decimal("14"),
                     contact_age_days=Decimal("30"), mutual_contacts=Decimal("2.0"))
    conv, rejected = conversation_from_rows("c-1", [row])
    assert rejected == [] and conv.participants[0].declared_age == 14
    assert (conv.relationship.contact_age_days, conv.relationship.mutual_contacts) == (30, 2)
    assert type(conv.relationship.contact_age_days) is int


def test_a_prior_state_with_values_the_reader_would_refuse_rejects_its_conversation_only(
        scorer, conversations):
    """A prior table written by hand or edited: its conversation is rejected (record
    'prior state', naming the field), the others in the same call are scored."""
    from dataclasses import replace

    from classifier import Relationship

    conv = conversations[0]
    rows = rows_of(conv)
    good = score_rows(scorer, conv.conversation_id, rows[:3]).prior
    for bad, field_name in [
            (replace(good, relationship=Relationship(contact_age_days=-5)),
             "relationship.contact_age_days"),
            (replace(good, relationship=Relationship(family_link="no")),
             "relationship.family_link"),
            (replace(good, relationship={"family_link": True}), "relationship"),
            (replace(good, age_assurance={"u-1": "passport"}), "age_assurance"),
            (replace(good, age_assurance=None), "age_assurance"),
            (replace(good, declared_ages=None), "declared_ages"),
            (replace(good, declared_ages={"u-1": 12.5}), "declared_ages"),
            (replace(good, flagged_at_message=-1), "flagged_at_message")]:
        other = conversations[1]
        bad_out, other_out = score_rows_many(scorer, [
            (conv.conversation_id, rows[3:], bad),
            (other.conversation_id, rows_of(other), None)])
        assert bad_out.result is None and bad_out.prior is bad
        assert [(r.record, r.field) for r in bad_out.rejected] == [("prior state", field_name)]
        assert bad_out.rejected[0].reason.startswith("[E211]")
        assert other_out.result.score == pytest.approx(scorer.score(other).score, abs=1e-6)


@pytest.mark.parametrize("row, field_name", [
    (MessageRow("row 1", "u", 1.0e9, CANARY, declared_age=float("inf")), "declared_age"),
    (MessageRow("row 1", "u", 10**400, CANARY), "ts"),
    (MessageRow("row 1", "u", 1.0e9, CANARY, declared_age=__import__("numpy").True_),
     "declared_age"),
])
def test_values_that_raised_raw_errors_are_rejected_by_field(row, field_name):
    good = MessageRow("row 0", "v", 1.0e9, "hello")
    conv, rejected = conversation_from_rows("c-1", [good, row])
    assert [(r.record, r.field) for r in rejected] == [("row 1", field_name)]
    assert len(conv.messages) == 1 and CANARY not in rejected[0].reason


def test_table_forms_of_numbers_and_missing_values_are_taken():
    """numpy's numbers as timestamps and counts, and pandas' NA as a missing value."""
    import numpy as np
    import pandas as pd

    rows = [MessageRow("row 0", "u", np.int64(1_000_000_000), "hi", declared_age=pd.NA,
                       family_link=pd.NA, contact_age_days=np.float32(3.0),
                       mutual_contacts=pd.NA),
            MessageRow("row 1", "v", np.float32(1.0e9), "hey", age_assurance=pd.NA)]
    conv, rejected = conversation_from_rows("c-1", rows)
    assert rejected == [] and len(conv.messages) == 2
    assert conv.relationship.contact_age_days == 3 and conv.relationship.family_link is None
