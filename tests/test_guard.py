"""Guard layer on real SQLite and PostgreSQL: policy, encrypted evidence, review, the
report gate (every other path refused), retention, and the audit log."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select, text, update
from test_guard_common import (
    CANARY,
    LINES,
    MASTER,
    account_token,
    benign,
    clock_at,
    confirmed_case,
    fresh_store,
    grooming,
    open_case,
    tokens,
)

from classifier import Conversation, Message, Participant, Pipeline
from classifier.guard import (
    Guard,
    Keys,
    LegalBasis,
    MasterKeyError,
    Report,
    ScanPolicy,
    Store,
    StoreError,
    export_report,
)
from classifier.guard._store import audit_log, cases

pytestmark = pytest.mark.obligation(
    "art3-1-g-ii", "art3-1-g-iv", "art3-1-g-vi", "art3-1-g-vii", "art3-1-h", "art3-1-i",
    "art3-1-j", "audit-log", "reg2026-scope", "recital-26-27", "art1-2")
T0 = datetime(2026, 9, 1, 18, 0, tzinfo=UTC)


def test_policy_calendar_scope_and_metering():
    policy = ScanPolicy()
    conv = grooming()
    assert policy.decide(conv, date(2022, 5, 1)).basis == "reg-2021-1232"
    assert policy.decide(conv, date(2025, 1, 1)).basis == "reg-2024-1307"
    assert policy.decide(conv, date(2026, 9, 1)).basis == "reg-2026-1881"
    assert policy.decide(conv, date(2026, 5, 1)).reason == "no_legal_basis"  # the gap
    assert policy.decide(conv, date(2028, 4, 4)).reason == "no_legal_basis"
    e2ee = Conversation("x", conv.participants, conv.messages, e2ee=True)
    assert policy.decide(e2ee, date(2026, 9, 1)).reason == "e2ee"
    helpline = Conversation("h", (Participant("a", None, "helpline"),), conv.messages[:1])
    assert policy.decide(helpline, date(2026, 9, 1)).reason == "protected_participant"
    other = ScanPolicy(extra_bases=(LegalBasis("national", "a national law", date(2026, 4, 4),
                                               date(2026, 7, 30)),))
    assert other.decide(conv, date(2026, 5, 1)).allowed
    voice = Conversation("v", conv.participants, (*conv.messages[:2],
                         Message("child-real-id", T0, "", "audio")), region="non-EU")
    Pipeline(policy=policy).score(voice)
    counts = policy.counters()
    assert counts["bytes_scanned.non-EU"] == len(LINES[0].encode()) + len(LINES[1].encode())
    assert counts["messages_not_scanned"] == 1 and counts["refused.no_legal_basis"] == 2
    assert counts["conversations_scanned"] == 1


def test_calendar_file_errors_name_the_entry(tmp_path):
    from classifier.guard import load_legal_bases

    bad = tmp_path / "cal.json"
    bad.write_text(json.dumps({"windows": [{"id": "x", "instrument": "y", "start": "2026-13-01",
                                            "end": "2027-01-01"}]}))
    with pytest.raises(ValueError, match=r"windows\[0\]"):
        load_legal_bases(bad)


def test_no_evidence_without_a_master_key(monkeypatch, store):
    monkeypatch.delenv("SOLICITATION_MASTER_KEY", raising=False)
    monkeypatch.delenv("SOLICITATION_MASTER_KEY_FILE", raising=False)
    with pytest.raises(MasterKeyError, match=r"\[G00[12]\]"):
        Keys.load()
    with pytest.raises(MasterKeyError):
        Keys(b"short")
    with pytest.raises(StoreError, match=r"\[G001\]"):
        Guard(store, "not keys")  # type: ignore[arg-type]
    keyless = Guard(store)  # reads and verifies; stores nothing
    with pytest.raises(MasterKeyError, match=r"\[G011\]"):
        open_case(keyless)
    monkeypatch.setenv("SOLICITATION_MASTER_KEY", Keys.generate())
    keys = Keys.load()
    assert keys.fingerprint in repr(keys) and "master" not in repr(keys)


def test_unflagged_leaves_only_counters(guard, scorer):
    scorer.guard = guard
    try:
        result = scorer.score(benign())
    finally:
        scorer.guard = None
    assert not result.flagged and result.case_id is None
    with guard.store.engine.connect() as conn:
        assert conn.execute(select(cases)).first() is None


def test_case_review_confirm_and_export(guard, scorer, store, people):
    ann, bob, cat = people["ann"], people["bob"], people["cat"]
    case_id = open_case(guard, scorer)
    assert open_case(guard, scorer) == case_id  # the same conversation: the same case
    assert guard.claim(case_id, ann) and not guard.claim(case_id, bob)
    with pytest.raises(StoreError, match=r"\[G104\]"):
        guard.view_evidence(case_id, bob)
    with pytest.raises(StoreError, match=r"\[G113\]"):  # never confirmed unseen
        guard.decide(case_id, ann, "confirm", "solicitation_of_a_child")
    seen = guard.view_evidence(case_id, ann)
    assert seen["subject"] == "adult-real-id"
    assert any(CANARY in m["text"] for m in seen["messages"])
    guard.decide(case_id, ann, "confirm", "solicitation_of_a_child")
    report = export_report(guard, case_id, cat)
    assert report.fields["reported_account"] == "adult-real-id"
    assert report.fields["annotations"]["human_reviewed_content"] is True
    assert "adult-real-id" not in repr(report)
    with pytest.raises(StoreError, match=r"\[G109\]"):  # reported once
        export_report(guard, case_id, people["dan"])
    with store.engine.connect() as conn:
        actions = [r.action for r in conn.execute(
            select(audit_log.c.action).where(audit_log.c.case_id == case_id)
            .order_by(audit_log.c.seq))]
    assert actions == ["case_opened", "case_claimed", "evidence_viewed", "case_confirmed",
                       "report_exported"]
    result = store.verify_audit_log(guard._audit)
    assert result.intact and result.macs_checked and result.counters_ok


def test_every_other_path_to_a_report_is_refused(guard, scorer, store, people):
    ann, cat = people["ann"], people["cat"]
    with pytest.raises(StoreError, match=r"\[G101\]"):
        Report({"reported_account": "x"})
    case_id = open_case(guard, scorer)
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, cat)  # open, never reviewed
    guard.claim(case_id, ann)
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, cat)  # claimed, not decided
    with pytest.raises(StoreError, match=r"\[G107\]"):
        export_report(guard, case_id, ann)  # wrong role
    with store.engine.begin() as conn:  # a status edited in the database alone
        conn.execute(update(cases).where(cases.c.id == case_id)
                     .values(status="confirmed", decided_by="ann"))
    with pytest.raises(StoreError, match=r"\[G110\]"):
        export_report(guard, case_id, cat)
    with pytest.raises(StoreError, match=r"\[G107\]"):
        guard.decide(case_id, cat, "confirm", "solicitation_of_a_child")
    with pytest.raises(StoreError, match=r"\[G106\]"):
        guard.decide(case_id, ann, "confirm", "free text reason")
    with pytest.raises(StoreError, match=r"\[G103\]"):
        export_report(guard, "nope", cat)
    # a whole queue entry (a dict) or any other non-string as the id: no case, coded
    from classifier.guard import file_complaint

    entry = {"case_id": case_id}
    for call in (lambda: guard.case_summary(entry, ann), lambda: guard.claim(entry, ann),
                 lambda: guard.view_evidence(7, ann), lambda: guard.release(None, ann),
                 lambda: guard.release_claim(b"x", ann), lambda: export_report(guard, entry, cat),
                 lambda: guard.decide(entry, ann, "dismiss", "no_solicitation"),
                 lambda: file_complaint(guard, entry, channel="email")):
        with pytest.raises(StoreError, match=r"\[G103\] No case '\(not an id\)'"):
            call()


def test_dismissal_destroys_evidence_and_forgets_the_case_at_once(guard, scorer, store, people):
    ann = people["ann"]
    case_id = open_case(guard, scorer)
    assert store.key_store.get(case_id) is not None
    guard.claim(case_id, ann)
    guard.decide(case_id, ann, "dismiss", "peer_conversation", minor_to_minor=True)
    assert store.key_store.get(case_id) is None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM evidence")).scalar() == 0
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
    assert row.status == "dismissed" and row.minor_to_minor
    for gone in ("conversation_pseudonym", "subject_pseudonym", "stats_ref", "score",
                 "threshold", "explanation"):
        assert getattr(row, gone) is None, gone
    with pytest.raises(StoreError, match=r"\[G112\]"):  # replayed / conflicting decision
        guard.decide(case_id, ann, "confirm", "solicitation_of_a_child")
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, people["cat"])
    assert store.counters()["cases.dismissed"] == 1


def test_release_returns_the_case_and_a_new_claim_views_again(guard, people):
    ann, bob = people["ann"], people["bob"]
    case_id = open_case(guard)
    guard.claim(case_id, ann)
    guard.view_evidence(case_id, ann)
    guard.release(case_id, ann)
    assert guard.claim(case_id, bob)
    with pytest.raises(StoreError, match=r"\[G113\]"):  # ann's view was another claim
        guard.decide(case_id, bob, "confirm", "solicitation_of_a_child")
    assert [c["mine"] for c in guard.queue(bob)] == [True]
    summary = guard.case_summary(case_id, bob)
    assert summary["risk_factors"] and "messages" not in summary


def test_retention_purges_at_the_deadline_without_the_master_key(guard, scorer, store,
                                                                 monkeypatch):
    from classifier.guard import _cases

    case_id = open_case(guard, scorer)
    purger = Guard(store, audit_key=guard._audit)  # the audit key alone
    assert purger.purge_expired() == 0
    clock_at(monkeypatch, _cases, time.time() + 366 * 86400)
    assert purger.purge_expired() == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(cases).where(cases.c.id == case_id)).first() is None
        assert conn.execute(text("SELECT count(*) FROM evidence")).scalar() == 0
    assert store.key_store.get(case_id) is None
    with pytest.raises(StoreError, match=r"\[G102\]"):
        Guard(store, Keys(MASTER), retention_days=400)
    with pytest.raises(MasterKeyError, match=r"\[G012\]"):
        Guard(store).purge_expired()


def test_two_reviewers_never_hold_the_same_case(guard, store):
    from concurrent.futures import ThreadPoolExecutor

    case_id = open_case(guard)
    toks = []
    for i in range(8):
        toks.append(account_token(guard, f"rev-{i}", "reviewer"))

    def attempt(token):
        other = Guard(Store(store.url, key_store=store.key_store), Keys(MASTER))
        try:
            return other.claim(case_id, other.authenticate(token))
        finally:
            other.store.engine.dispose()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, toks))
    assert results.count(True) == 1


def test_complaints_are_accepted_for_six_months(guard, people, monkeypatch):
    from classifier.guard import file_complaint

    case_id = confirmed_case(guard, people["ann"])
    from classifier.guard import _redress

    later = time.time() + 180 * 86400
    clock_at(monkeypatch, _redress, later + 10 * 86400)
    with pytest.raises(StoreError, match=r"\[G127\]"):
        file_complaint(guard, case_id, channel="in_app")
    clock_at(monkeypatch, _redress, later)
    with pytest.raises(StoreError, match=r"\[G126\]"):
        file_complaint(guard, case_id, channel="in_app", window_days=90)
    with pytest.raises(StoreError, match=r"\[G137\]"):
        file_complaint(guard, case_id)  # who lodged it is recorded
    assert file_complaint(guard, case_id, user_id="adult-real-id")
    with pytest.raises(StoreError, match=r"\[G116\]"):  # one open complaint per case
        file_complaint(guard, case_id, channel="email")


def test_store_holds_no_clear_text_or_real_ids(tmp_path, scorer):
    path = tmp_path / "plain.db"
    store = Store(f"sqlite:///{path}", create=True)
    guard = Guard(store, Keys(MASTER))
    ann = guard.authenticate(account_token(guard, "ann", "reviewer"))
    case_id = open_case(guard, scorer)
    guard.claim(case_id, ann)
    guard.view_evidence(case_id, ann)
    guard.store.engine.dispose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for needle in (CANARY, "adult-real-id", "child-real-id", "conv-real-id-1",
                   "dont tell anyone"):
        assert needle.encode() not in blob, needle


def test_complaint_upheld_reinstates_and_shreds(guard, store, people):
    from classifier.guard import (
        decide_complaint,
        file_complaint,
        re_review,
        view_complaint_evidence,
    )

    ann, bob, cat = people["ann"], people["bob"], people["cat"]
    case_id = confirmed_case(guard, ann)
    complaint = file_complaint(guard, case_id, channel="in_app", principal=cat)
    with pytest.raises(StoreError, match=r"\[G123\]"):
        view_complaint_evidence(guard, complaint, ann)  # not the same reviewer
    with pytest.raises(StoreError, match=r"\[G138\]"):
        re_review(guard, complaint, bob, "dismiss")  # not without viewing
    with pytest.raises(StoreError, match=r"\[G124\]"):
        decide_complaint(guard, complaint, cat)  # not re-reviewed yet
    with pytest.raises(StoreError, match=r"\[G114\]"):
        export_report(guard, case_id, cat)  # not while a complaint is open
    assert CANARY in json.dumps(view_complaint_evidence(guard, complaint, bob))
    re_review(guard, complaint, bob, "dismiss")
    assert decide_complaint(guard, complaint, cat) == "upheld"
    with store.engine.connect() as conn:
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        assert conn.execute(text("SELECT count(*) FROM evidence")).scalar() == 0
    assert row.status == "reinstated" and row.subject_pseudonym is None and row.score is None
    assert store.key_store.get(case_id) is None
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, cat)
    assert guard.verify().intact


def test_supervisor_and_complaint_queues_say_who_may_act(guard, people):
    from classifier.guard import complaint_queue, file_complaint, re_review, view_complaint_evidence

    case_id = confirmed_case(guard, people["ann"])
    assert [c["may_export"] for c in guard.confirmed_cases(people["cat"])] == [True]
    complaint = file_complaint(guard, case_id, channel="email")
    assert guard.confirmed_cases(people["cat"])[0]["may_export"] is False  # open complaint
    mine = {c["complaint_id"]: c["may_act"] for c in complaint_queue(guard, people["ann"])}
    assert mine == {complaint: False}  # ann decided the case
    assert complaint_queue(guard, people["bob"])[0]["may_act"] is True
    view_complaint_evidence(guard, complaint, people["bob"])
    re_review(guard, complaint, people["bob"], "confirm")
    waiting = complaint_queue(guard, people["cat"])
    assert [(c["complaint_id"], c["may_act"], c["lodged_by"]) for c in waiting] == [
        (complaint, True, "channel")]
    with pytest.raises(StoreError, match=r"\[G107\]"):
        guard.confirmed_cases(people["ann"])
    with pytest.raises(StoreError, match=r"\[G107\]"):
        complaint_queue(guard, people["eve"])


def test_complaint_rejected_keeps_the_case(guard, people):
    from classifier.guard import (
        decide_complaint,
        file_complaint,
        re_review,
        view_complaint_evidence,
    )

    case_id = confirmed_case(guard, people["ann"])
    complaint = file_complaint(guard, case_id, user_id="adult-real-id")
    view_complaint_evidence(guard, complaint, people["bob"])
    re_review(guard, complaint, people["bob"], "confirm")
    assert decide_complaint(guard, complaint, people["cat"]) == "rejected"
    assert export_report(guard, case_id, people["dan"]).fields["reported_account"]
    with pytest.raises(StoreError, match=r"\[G120\]"):
        file_complaint(guard, open_case(guard), channel="in_app")  # nothing decided yet


def test_notices_name_every_redress_avenue_and_no_content():
    from classifier.guard import user_notice

    notice = user_notice("account_restricted", account_ref="A-17", decided_on="2026-09-02",
                         legal_basis="Regulation (EU) 2026/1881", complaint_channel="in-app form",
                         dpa="the data protection authority of your country")
    for avenue in ("Complain to us", "out-of-court", "court", "data protection authority",
                   "a person took the decision"):
        assert avenue in notice
    with pytest.raises(StoreError, match=r"\[G125\]"):
        user_notice("account_restricted", language="xx")


def test_annual_transparency_report(guard, scorer, store, people):
    from classifier.guard import close_year, record_scan, transparency_report

    policy = ScanPolicy(clock=lambda: datetime(2026, 9, 1, tzinfo=UTC))
    Pipeline(policy=policy).score_many(
        [grooming(), benign(),
         Conversation("e", benign().participants, benign().messages, e2ee=True)])
    year = datetime.now(UTC).year
    record_scan(guard, policy, year=year)
    confirmed = confirmed_case(guard, people["ann"], cid="conv-a")
    export_report(guard, confirmed, people["cat"])
    dismissed = open_case(guard, cid="conv-b")
    guard.claim(dismissed, people["bob"])
    guard.decide(dismissed, people["bob"], "dismiss", "insufficient_evidence")
    report = transparency_report(store, year, organisations=("NCMEC",))
    assert report["data_processed"]["bytes_of_text_scanned_eu"] == sum(
        len(m.text.encode()) for c in (grooming(), benign()) for m in c.messages)
    assert report["data_processed"]["refusals"] == {"e2ee": 1}
    assert report["cases"] == {"identified": 2, "confirmed_by_human_review": 1,
                               "dismissed_by_human_review": 1, "reported": 1,
                               "deleted_at_retention_deadline": 0}
    # both cases were about the same (pseudonymous) account, and one flag was confirmed
    assert report["error_rate"] == {"accounts_flagged_A3": 1, "accounts_cleared_B3": 0,
                                    "accounts_human_reviewed_C3": 1, "B3_over_A3": 0.0}
    assert report["organisations_reported_to"] == ["NCMEC"]
    assert guard.verify().counters_ok  # the scan counters came through an audited entry
    assert close_year(guard, year) == 1
    assert guard.verify().intact  # the statistics' removal is audited too
    empty = transparency_report(store, year + 1)
    assert empty["error_rate"]["B3_over_A3"].startswith("N/A")  # never a silent zero
    assert empty["data_processed"]["bytes_of_text_scanned_eu"].startswith("N/A")
    from classifier.guard._redress import report_markdown
    assert "| accounts flagged A3 | 1 |" in report_markdown(report)


def test_auditor_aggregates_hold_no_content_and_no_ids(guard, people):
    case_id = confirmed_case(guard, people["ann"])
    summary = guard.aggregates(people["eve"])
    assert summary["cases_by_status"] == {"confirmed": 1}
    assert summary["decision_latency_hours"]["decisions"] == 1
    assert summary["audit_log"]["intact"] and summary["audit_log"]["macs_checked"]
    shown = json.dumps(summary)
    for needle in (case_id, CANARY, "adult-real-id", "ann"):
        assert needle not in shown
    with pytest.raises(StoreError, match=r"\[G107\]"):
        guard.aggregates(people["ann"])
    with pytest.raises(StoreError, match=r"\[G107\]"):
        guard.view_evidence(case_id, people["eve"])


KILL_SCRIPT = """
import sys
from classifier.guard import Guard, Keys, LocalKeyStore, Store

store = Store(sys.argv[1], key_store=LocalKeyStore(sys.argv[2]))
guard = Guard(store, Keys(b"k" * 32))
ann = guard.authenticate(sys.argv[3])
for case_id in sys.argv[4:]:
    guard.claim(case_id, ann)
    guard.decide(case_id, ann, "dismiss", "insufficient_evidence")
    print(case_id, flush=True)  # committed
"""


# SOLICITATION_KILL_ROUNDS=150 for a longer campaign (the suite runs 5)
@pytest.mark.parametrize("round_", range(int(os.environ.get("SOLICITATION_KILL_ROUNDS", "5"))))
def test_sigkill_mid_decisions_loses_no_committed_decision(tmp_path, quick_argon2, round_):
    """Killed after 3-7 committed decisions and a delay of 0-30 ms that differs by round
    (so the kill lands anywhere in the next claim or decision): no committed decision is
    lost, no key of a dismissed case survives, the log verifies."""
    import random
    import signal
    import subprocess
    import sys
    import time as _time

    store = fresh_store("sqlite", tmp_path)
    guard = Guard(store, Keys(MASTER))
    token = tokens(guard)["ann"]
    ids = [open_case(guard) for _ in range(12)]
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, store.url,
                             str(store.key_store.path), token, *ids],
                            stdout=subprocess.PIPE, text=True)
    committed = []
    assert proc.stdout is not None
    for line in proc.stdout:  # kill it after a few decisions, mid-run
        committed.append(line.strip())
        if len(committed) == 3 + round_ % 5:
            _time.sleep(random.Random(round_).uniform(0.0, 0.03))
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    with guard.store.engine.connect() as conn:
        status = dict(conn.execute(select(cases.c.id, cases.c.status)).all())
    for case_id in committed:
        assert status[case_id] == "dismissed"
        assert store.key_store.get(case_id) is None
    assert all(s in ("open", "claimed", "dismissed") for s in status.values())
    assert not [c for c, s in status.items() if s == "dismissed" and store.key_store.get(c)]
    assert guard.verify().intact


def test_a_supervisor_may_decide_against_the_re_review_and_upholding_forgets_the_user(
        guard, people, store):
    from classifier.guard import (
        decide_complaint,
        file_complaint,
        re_review,
        view_complaint_evidence,
    )
    from classifier.guard._store import audit_log, complaints

    case_id = confirmed_case(guard, people["ann"])
    complaint = file_complaint(guard, case_id, user_id="adult-real-id")
    with store.engine.connect() as conn:
        lodged = conn.execute(select(complaints.c.lodged_by)).scalar()
    assert lodged.startswith("user:") and len(lodged) > 10  # the user's pseudonym
    view_complaint_evidence(guard, complaint, people["bob"])
    re_review(guard, complaint, people["bob"], "confirm")  # advises: reject
    with pytest.raises(StoreError, match=r"\[G129\]"):
        decide_complaint(guard, complaint, people["cat"], "maybe")
    assert decide_complaint(guard, complaint, people["cat"], "upheld") == "upheld"
    with store.engine.connect() as conn:
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        assert conn.execute(select(complaints.c.lodged_by)).scalar() == "user:-"
        detail = conn.execute(select(audit_log.c.detail).where(
            audit_log.c.action == "complaint_upheld")).scalar()
    assert row.status == "reinstated" and row.subject_pseudonym is None
    assert json.loads(detail)["re_review"] == "confirm"  # decided against the advice
    assert lodged.encode() not in b"".join(p.read_bytes() for p in store.files())
    assert guard.verify().intact


def test_a_claim_left_behind_is_given_back(guard, people, store):
    """A reviewer who leaves does not block a case: a supervisor gives it back, a claim
    older than CLAIM_HOURS may be taken over, and signing out releases every held case
    (each audited with the former holder)."""
    from classifier.guard import _cases
    from classifier.guard._store import audit_log

    ann, bob, cat = people["ann"], people["bob"], people["cat"]
    case_id = open_case(guard)
    assert guard.claim(case_id, ann) and not guard.claim(case_id, bob)
    with pytest.raises(StoreError, match=r"\[G107\]"):
        guard.release_claim(case_id, bob)  # a reviewer cannot take a colleague's case
    guard.release_claim(case_id, cat)
    assert guard.claim(case_id, bob)
    with pytest.raises(StoreError, match=r"\[G104\]"):
        guard.view_evidence(case_id, ann)  # ann's claim is gone
    assert not guard.claim(case_id, ann)
    with store.write() as conn:  # CLAIM_HOURS later
        conn.execute(update(cases).where(cases.c.id == case_id).values(
            claimed_at=time.time() - _cases.CLAIM_HOURS * 3600.0 - 60.0))
    assert guard.claim(case_id, ann)  # bob's claim had gone stale: taken over
    other = open_case(guard, cid="second")
    assert guard.claim(other, bob)
    assert guard.release_all(bob) == 1 and guard.release_all(cat) == 0
    with store.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.action, audit_log.c.detail).where(
            audit_log.c.action.in_(("claim_released", "case_claimed", "case_released")))
        ).all()
    details = [json.loads(d) for a, d in rows if d and d != "{}"]
    assert {"holder": "ann"} in details and {"taken_over_from": "bob"} in details
    assert [a for a, _ in rows].count("case_released") == 1
    assert guard.verify().intact


def test_upholding_erases_the_user_from_earlier_complaints_too(guard, people, store):
    """A user complained twice about the same case: rejected, then upheld. Both rows lose
    the user's pseudonym, which equals the case's (erased) subject pseudonym."""
    from classifier.guard import (
        decide_complaint,
        file_complaint,
        re_review,
        view_complaint_evidence,
    )
    from classifier.guard._store import complaints

    case_id = confirmed_case(guard, people["ann"])
    for outcome in ("rejected", "upheld"):
        c = file_complaint(guard, case_id, user_id="adult-real-id")
        view_complaint_evidence(guard, c, people["bob"])
        re_review(guard, c, people["bob"], "confirm")
        assert decide_complaint(guard, c, people["cat"], outcome) == outcome
    with store.engine.connect() as conn:
        assert [r for (r,) in conn.execute(select(complaints.c.lodged_by))] == ["user:-"] * 2


def test_a_complaint_whose_case_row_is_gone_is_a_coded_error(guard, people, store):
    from classifier.guard import (
        decide_complaint,
        file_complaint,
        re_review,
        view_complaint_evidence,
    )

    case_id = confirmed_case(guard, people["ann"])
    c = file_complaint(guard, case_id, channel="in_app")
    view_complaint_evidence(guard, c, people["bob"])
    re_review(guard, c, people["bob"], "dismiss")
    with store.write() as conn:
        conn.execute(cases.delete().where(cases.c.id == case_id))
    with pytest.raises(StoreError, match=r"\[G103\]"):
        decide_complaint(guard, c, people["cat"])


def test_a_complaint_whose_re_reviewer_left_can_be_taken_over(guard, people, store):
    """The reviewer who viewed a complaint's evidence is disabled before re-reviewing it:
    another reviewer may view it and re-review (audited with the former holder); while
    that reviewer is active nobody else may."""
    from classifier.guard import (
        decide_complaint,
        file_complaint,
        re_review,
        view_complaint_evidence,
    )
    from classifier.guard._store import audit_log

    fay = guard.authenticate(account_token(guard, "fay", "reviewer"))
    case_id = confirmed_case(guard, people["ann"])
    c = file_complaint(guard, case_id, channel="in_app")
    view_complaint_evidence(guard, c, people["bob"])
    with pytest.raises(StoreError, match=r"\[G117\]"):
        view_complaint_evidence(guard, c, fay)  # bob holds it
    guard.disable_account("bob")
    assert CANARY in json.dumps(view_complaint_evidence(guard, c, fay))
    re_review(guard, c, fay, "dismiss")
    assert decide_complaint(guard, c, people["cat"]) == "upheld"
    with store.engine.connect() as conn:
        details = [json.loads(d) for (d,) in conn.execute(
            select(audit_log.c.detail).where(audit_log.c.action == "evidence_viewed"))]
    assert {"complaint": c, "taken_over_from": "bob"} in details


def test_sign_out_with_an_expired_or_disabled_sign_in_releases_nothing_and_raises_nothing(
        guard, people, monkeypatch):
    from types import SimpleNamespace

    from classifier.guard import _identity

    case_id = open_case(guard)
    assert guard.claim(case_id, people["bob"])
    later = time.time() + _identity.PRINCIPAL_HOURS * 3600.0 + 60.0
    with monkeypatch.context() as mp:
        mp.setattr(_identity, "time", SimpleNamespace(time=lambda: later))
        assert guard.release_all(people["bob"]) == 0  # expired: nothing, no error
    guard.disable_account("bob")
    assert guard.release_all(people["bob"]) == 0
