"""Guard layer on real SQLite and PostgreSQL: policy, encrypted evidence, review, the
report gate (every other path refused), retention, and the audit log."""

from __future__ import annotations

import json
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from classifier import Conversation, Message, Participant, Pipeline
from classifier.guard import (
    Actor,
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
from classifier.guard._store import audit_log, cases, metadata

pytestmark = pytest.mark.obligation(
    "art3-1-g-ii", "art3-1-g-iv", "art3-1-g-vi", "art3-1-g-vii", "art3-1-h", "art3-1-i",
    "art3-1-j", "audit-log", "reg2026-scope", "recital-26-27", "art1-2")

CANARY = "qqguardcanary5521"
T0 = datetime(2026, 9, 1, 18, 0, tzinfo=UTC)
LINES = ["hey ur drawings are cool", "thx", "how old r u", f"im 12 {CANARY}",
         "im 34, just got off work", "ok", "ur so mature for ur age", "lol",
         "are your parents home", "no", "dont tell anyone we talk", "ok",
         "add me on snap", "ok", "send me a pic", "maybe", "we should meet up", "idk"]
REVIEWER, OTHER = Actor("rev-ann", "reviewer"), Actor("rev-bob", "reviewer")
SUPERVISOR = Actor("sup-cat", "supervisor")


def grooming(cid="conv-real-id-1") -> Conversation:
    msgs = tuple(Message("adult-real-id" if i % 2 == 0 else "child-real-id",
                         T0 + timedelta(minutes=3 * i), t) for i, t in enumerate(LINES))
    return Conversation(cid, (Participant("adult-real-id"), Participant("child-real-id", 12)),
                        msgs)


def benign() -> Conversation:
    msgs = tuple(Message("a" if i % 2 == 0 else "b", T0 + timedelta(minutes=i), t)
                 for i, t in enumerate(["want to grab lunch", "sure", "noon?", "ok"]))
    return Conversation("lunch", (Participant("a", 40), Participant("b", 41)), msgs)


BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("SOLICITATION_TEST_POSTGRES_URL")
                         else [])


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'guard.db'}", create=True)
    else:
        s = Store(os.environ["SOLICITATION_TEST_POSTGRES_URL"])
        with s.engine.begin() as conn:
            metadata.drop_all(conn)
    assert s.migrate() == 3 and s.migrate() == 3  # idempotent
    yield s
    s.engine.dispose()


@pytest.fixture(scope="module")
def scorer(extractor):
    return Pipeline(extractor=extractor)


@pytest.fixture
def guard(store):
    return Guard(store, Keys(b"k" * 32))


def open_case(guard, scorer):
    scorer.guard = guard
    try:
        result = scorer.score(grooming())
    finally:
        scorer.guard = None
    assert result.flagged and result.case_id
    return result.case_id


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
    with pytest.raises(MasterKeyError, match=r"\[G00[12]\]"):
        Keys.from_env()
    with pytest.raises(MasterKeyError):
        Keys(b"short")
    with pytest.raises(StoreError, match=r"\[G001\]"):
        Guard(store, None)  # type: ignore[arg-type]
    monkeypatch.setenv("SOLICITATION_MASTER_KEY", Keys.generate())
    keys = Keys.from_env()
    assert "hidden" in repr(keys) and keys.pseudonym("u") == keys.pseudonym("u") != "u"
    assert Keys(b"x" * 32).pseudonym("u") != Keys(b"y" * 32).pseudonym("u")


def test_unflagged_leaves_only_counters(guard, scorer):
    scorer.guard = guard
    try:
        result = scorer.score(benign())
    finally:
        scorer.guard = None
    assert not result.flagged and result.case_id is None
    with guard.store.engine.connect() as conn:
        assert conn.execute(select(cases)).first() is None


def test_case_review_confirm_and_export(guard, scorer, store):
    case_id = open_case(guard, scorer)
    assert guard.claim(case_id, REVIEWER) and not guard.claim(case_id, OTHER)
    with pytest.raises(StoreError, match=r"\[G104\]"):
        guard.view_evidence(case_id, OTHER)
    seen = guard.view_evidence(case_id, REVIEWER)
    assert seen["subject"] == "adult-real-id"
    assert any(CANARY in m["text"] for m in seen["messages"])
    guard.decide(case_id, REVIEWER, "confirm", "solicitation_of_a_child")
    report = export_report(guard, case_id, SUPERVISOR)
    assert report.fields["reported_account"] == "adult-real-id"
    assert report.fields["annotations"]["human_reviewed_content"] is True
    assert "adult-real-id" not in repr(report)
    with store.engine.connect() as conn:
        actions = [r.action for r in conn.execute(
            select(audit_log.c.action).order_by(audit_log.c.seq))]
    assert actions == ["case_opened", "case_claimed", "evidence_viewed", "case_confirmed",
                       "report_exported"]
    assert store.verify_audit_log() == (True, 5, None)


def test_every_other_path_to_a_report_is_refused(guard, scorer, store):
    with pytest.raises(StoreError, match=r"\[G101\]"):
        Report({"reported_account": "x"})
    case_id = open_case(guard, scorer)
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, SUPERVISOR)  # open, never reviewed
    guard.claim(case_id, REVIEWER)
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, SUPERVISOR)  # claimed, not decided
    with pytest.raises(StoreError, match=r"\[G107\]"):
        export_report(guard, case_id, REVIEWER)  # wrong role
    with store.engine.begin() as conn:  # a status edited in the database alone
        conn.execute(update(cases).where(cases.c.id == case_id)
                     .values(status="confirmed", decided_by="rev-ann"))
    with pytest.raises(StoreError, match=r"\[G110\]"):
        export_report(guard, case_id, SUPERVISOR)
    with pytest.raises(StoreError, match=r"\[G107\]"):
        guard.decide(case_id, SUPERVISOR, "confirm", "solicitation_of_a_child")
    with pytest.raises(StoreError, match=r"\[G106\]"):
        guard.decide(case_id, REVIEWER, "confirm", "free text reason")
    with pytest.raises(StoreError, match=r"\[G103\]"):
        export_report(guard, "nope", SUPERVISOR)


def test_dismissal_destroys_evidence_at_once(guard, scorer, store):
    case_id = open_case(guard, scorer)
    guard.claim(case_id, REVIEWER)
    guard.decide(case_id, REVIEWER, "dismiss", "peer_conversation", minor_to_minor=True)
    with store.engine.connect() as conn:
        for table in ("evidence", "case_keys"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
    assert row.status == "dismissed" and row.explanation is None and row.minor_to_minor
    with pytest.raises(StoreError, match=r"\[G112\]"):  # replayed / conflicting decision
        guard.decide(case_id, REVIEWER, "confirm", "solicitation_of_a_child")
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, SUPERVISOR)
    assert store.counters()["cases.dismissed"] == 1


def test_retention_purges_at_the_deadline(guard, scorer, store):
    case_id = open_case(guard, scorer)
    assert guard.purge_expired() == 0
    assert guard.purge_expired(now=datetime.now(UTC).timestamp() + 366 * 86400) == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(cases).where(cases.c.id == case_id)).first() is None
        assert conn.execute(text("SELECT count(*) FROM evidence")).scalar() == 0
    with pytest.raises(StoreError, match=r"\[G102\]"):
        Guard(store, Keys(b"k" * 32), retention_days=400)


def test_two_reviewers_never_hold_the_same_case(guard, scorer, store):
    case_id = open_case(guard, scorer)
    reviewers = [Actor(f"rev-{i}", "reviewer") for i in range(8)]

    def attempt(actor):
        other = Guard(Store(store.url), Keys(b"k" * 32))  # its own engine and connections
        try:
            return other.claim(case_id, actor)
        finally:
            other.store.engine.dispose()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, reviewers))
    assert results.count(True) == 1


def test_deleted_or_reordered_audit_entries_are_detected(guard, scorer, store):
    case_id = open_case(guard, scorer)
    guard.claim(case_id, REVIEWER)
    with store.write() as conn:  # remove the newest entry
        conn.execute(audit_log.delete().where(audit_log.c.seq == 2))
    assert store.verify_audit_log()[0] is False
    other = open_case(guard, scorer)
    assert other and store.verify_audit_log()[0] is False  # stays broken


def test_complaints_are_accepted_for_six_months(guard, scorer):
    from classifier.guard import file_complaint

    case_id = confirmed_case(guard, scorer)
    later = datetime.now(UTC).timestamp() + 180 * 86400
    assert file_complaint(guard, case_id, now=later)
    with pytest.raises(StoreError, match=r"\[G127\]"):
        file_complaint(guard, case_id, now=later + 10 * 86400)
    with pytest.raises(StoreError, match=r"\[G126\]"):
        file_complaint(guard, case_id, window_days=90)


def test_tampered_audit_log_is_detected_and_blocks_export(guard, scorer, store):
    case_id = open_case(guard, scorer)
    guard.claim(case_id, REVIEWER)
    guard.decide(case_id, REVIEWER, "confirm", "solicitation_of_a_child")
    with store.engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(actor="rev-zed"))
    ok, _, broken = store.verify_audit_log()
    assert not ok and broken == 2
    with pytest.raises(StoreError, match=r"\[G108\]"):
        export_report(guard, case_id, SUPERVISOR)


def test_store_holds_no_clear_text_or_real_ids(tmp_path, scorer):
    path = tmp_path / "g.db"
    guard = Guard(Store(f"sqlite:///{path}", create=True), Keys(b"k" * 32))
    case_id = open_case(guard, scorer)
    guard.claim(case_id, REVIEWER)
    guard.view_evidence(case_id, REVIEWER)
    guard.store.engine.dispose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for needle in (CANARY, "adult-real-id", "child-real-id", "conv-real-id-1",
                   "dont tell anyone"):
        assert needle.encode() not in blob, needle


def confirmed_case(guard, scorer):
    case_id = open_case(guard, scorer)
    guard.claim(case_id, REVIEWER)
    guard.decide(case_id, REVIEWER, "confirm", "solicitation_of_a_child")
    return case_id


def test_complaint_upheld_reinstates_and_shreds(guard, scorer, store):
    from classifier.guard import decide_complaint, file_complaint, re_review

    case_id = confirmed_case(guard, scorer)
    complaint = file_complaint(guard, case_id)
    with pytest.raises(StoreError, match=r"\[G123\]"):
        re_review(guard, complaint, REVIEWER, "dismiss")  # not the same reviewer
    with pytest.raises(StoreError, match=r"\[G124\]"):
        decide_complaint(guard, complaint, SUPERVISOR)  # not re-reviewed yet
    re_review(guard, complaint, OTHER, "dismiss")
    assert decide_complaint(guard, complaint, SUPERVISOR) == "upheld"
    with store.engine.connect() as conn:
        assert conn.execute(select(cases.c.status).where(cases.c.id == case_id)).scalar() \
            == "reinstated"
        assert conn.execute(text("SELECT count(*) FROM evidence")).scalar() == 0
    with pytest.raises(StoreError, match=r"\[G109\]"):
        export_report(guard, case_id, SUPERVISOR)
    assert store.verify_audit_log()[0]


def test_complaint_rejected_keeps_the_case(guard, scorer):
    from classifier.guard import decide_complaint, file_complaint, re_review

    case_id = confirmed_case(guard, scorer)
    complaint = file_complaint(guard, case_id)
    re_review(guard, complaint, OTHER, "confirm")
    assert decide_complaint(guard, complaint, SUPERVISOR) == "rejected"
    assert export_report(guard, case_id, SUPERVISOR).fields["reported_account"]
    with pytest.raises(StoreError, match=r"\[G120\]"):
        file_complaint(guard, open_case(guard, scorer))  # nothing decided yet


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


def test_annual_transparency_report(guard, scorer, store):
    from classifier.guard import close_year, record_scan, transparency_report

    policy = ScanPolicy(clock=lambda: datetime(2026, 9, 1, tzinfo=UTC))
    Pipeline(policy=policy).score_many(
        [grooming(), benign(),
         Conversation("e", benign().participants, benign().messages, e2ee=True)])
    year = datetime.now(UTC).year
    record_scan(store, policy, year=year)
    confirmed = confirmed_case(guard, scorer)
    export_report(guard, confirmed, SUPERVISOR)
    dismissed = open_case(guard, scorer)
    guard.claim(dismissed, OTHER)
    guard.decide(dismissed, OTHER, "dismiss", "insufficient_evidence")
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
    assert close_year(store, year) == 1
    empty = transparency_report(store, year + 1)
    assert empty["error_rate"]["B3_over_A3"].startswith("N/A")  # never a silent zero
    assert empty["data_processed"]["bytes_of_text_scanned_eu"].startswith("N/A")
    from classifier.guard._redress import report_markdown
    assert "| accounts flagged A3 | 1 |" in report_markdown(report)


def test_guard_cli_verifies_the_audit_log(tmp_path, capsys, scorer):
    from classifier._cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    guard = Guard(Store(url, create=True), Keys(b"k" * 32))
    open_case(guard, scorer)
    assert main(["audit", "verify", "--store", url]) == 0
    assert "intact: 1 entries" in capsys.readouterr().err
    with guard.store.write() as conn:
        conn.execute(update(audit_log).values(action="case_hidden"))
    assert main(["audit", "verify", "--store", url]) == 1
    assert "BROKEN at entry 1" in capsys.readouterr().err
    with guard.store.engine.connect() as conn:  # set on every connection of ours
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_cli_review_report_complaint_purge_audit_transparency(tmp_path, capsys, monkeypatch):
    from classifier._cli import main, sample_path
    from classifier.guard import MASTER_KEY_ENV

    monkeypatch.setenv(MASTER_KEY_ENV, Keys.generate())
    url = f"sqlite:///{tmp_path / 'q.db'}"
    assert main(["score", str(sample_path()), "-o", str(tmp_path / "s.jsonl"),
                 "--queue", url]) == 0
    assert "1 cases opened for human review" in capsys.readouterr().err
    rev, sup = ["--actor", "ann", "--role", "reviewer"], ["--actor", "cat", "--role", "supervisor"]
    assert main(["review", "list", "--store", url, *rev]) == 0
    case_id = capsys.readouterr().out.split()[0]
    assert main(["review", "list", "--store", url, "--actor", "aud", "--role", "auditor"]) == 1
    assert "[G107]" in capsys.readouterr().err
    assert main(["review", "claim", case_id, "--store", url, *rev]) == 0
    assert main(["review", "claim", case_id, "--store", url, "--actor", "bob",
                 "--role", "reviewer"]) == 1
    assert main(["review", "show", case_id, "--store", url, *rev]) == 0
    assert json.loads(capsys.readouterr().out)["messages"]
    assert main(["review", "decide", case_id, "confirm", "--reason",
                 "solicitation_of_a_child", "--store", url, *rev]) == 0
    out = tmp_path / "report.json"
    assert main(["report", "export", case_id, "-o", str(out), "--store", url, *rev]) == 1
    assert main(["report", "export", case_id, "-o", str(out), "--store", url, *sup]) == 0
    assert json.loads(out.read_text())["annotations"]["human_reviewed_content"] is True
    capsys.readouterr()
    assert main(["complaint", "lodge", case_id, "--store", url]) == 0
    complaint = capsys.readouterr().out.strip()
    assert main(["complaint", "review", complaint, "confirm", "--store", url, "--actor", "bob",
                 "--role", "reviewer"]) == 0
    assert main(["complaint", "decide", complaint, "--store", url, *sup]) == 0
    assert capsys.readouterr().out.strip() == "rejected"
    assert main(["purge", "--store", url]) == 0
    assert main(["audit", "verify", "--store", url]) == 0
    assert "intact" in capsys.readouterr().err
    year = str(datetime.now(UTC).year)
    assert main(["transparency", "--year", year, "-o", str(tmp_path / "tr"), "--store", url,
                 "--organisation", "NCMEC"]) == 0
    report = json.loads((tmp_path / "tr.json").read_text())
    assert report["cases"]["reported"] == 1 and report["complaints"]["rejected"] == 1
    assert report["data_processed"]["bytes_of_text_scanned_eu"] > 0  # metered by score
    assert (tmp_path / "tr.md").read_text().startswith(f"# Transparency report {year}")


KILL_SCRIPT = """
import os, sys
from classifier.guard import Actor, Guard, Keys, Store

guard = Guard(Store(sys.argv[1]), Keys(b"k" * 32))
actor = Actor("rev-ann", "reviewer")
for case_id in sys.argv[2:]:
    guard.claim(case_id, actor)
    guard.decide(case_id, actor, "dismiss", "insufficient_evidence")
    print(case_id, flush=True)  # committed
"""


@pytest.mark.parametrize("round_", range(3))
def test_sigkill_mid_decisions_loses_no_committed_decision(tmp_path, scorer, round_):
    import signal
    import subprocess
    import sys
    import time as _time

    url = f"sqlite:///{tmp_path / 'kill.db'}"
    guard = Guard(Store(url, create=True), Keys(b"k" * 32))
    ids = [open_case(guard, scorer) for _ in range(12)]
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url, *ids],
                            stdout=subprocess.PIPE, text=True)
    committed = []
    assert proc.stdout is not None
    for line in proc.stdout:  # kill it after a few decisions, mid-run
        committed.append(line.strip())
        if len(committed) == 3 + round_:
            _time.sleep(0.01 * round_)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    with guard.store.engine.connect() as conn:
        status = dict(conn.execute(select(cases.c.id, cases.c.status)).all())
    for case_id in committed:
        assert status[case_id] == "dismissed"
    assert all(s in ("open", "claimed", "dismissed") for s in status.values())
    assert guard.store.verify_audit_log()[0]
