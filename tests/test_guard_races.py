"""Races between real processes, on SQLite and PostgreSQL: of concurrent decisions on one
claimed case exactly one wins; of concurrent exports of one confirmed case exactly one
report is made; verification never reports a false break while others append.

Each test keeps a few worker processes alive (spawned once) and starts them together at a
barrier for every trial, so that a trial costs milliseconds."""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections import Counter

import pytest
from sqlalchemy import select
from test_guard_common import (
    MASTER,
    account_token,
    confirmed_case,
    fresh_store,
    open_case,
    tokens,
)

from classifier.guard import Guard, Keys
from classifier.guard._store import audit_log, cases

pytestmark = pytest.mark.obligation("art3-1-g-ii", "audit-log")

WORKERS = 3
TRIALS = 100
REASONS = {"confirm": "solicitation_of_a_child", "dismiss": "no_solicitation"}


def _worker(url, key_dir, token, inbox, outbox, barrier):  # pragma: no cover - a child
    from classifier import ClassifierError
    from classifier.guard import Guard, Keys, LocalKeyStore, Store, export_report

    guard = Guard(Store(url, key_store=LocalKeyStore(key_dir)), Keys(b"k" * 32))
    principal = guard.authenticate(token)
    outbox.put("ready")
    while (job := inbox.get()) is not None:
        kind, case_id, arg = job
        barrier.wait()
        try:
            if kind == "decide":
                guard.decide(case_id, principal, arg, REASONS[arg])
            elif kind == "export":
                export_report(guard, case_id, principal)
            else:  # "churn": claim and release ``arg`` times, appending to the log
                for _ in range(arg):
                    guard.claim(case_id, principal)
                    guard.release(case_id, principal)
            outbox.put("won")
        except ClassifierError as err:
            outbox.put(err.code)
        except Exception as exc:
            outbox.put(f"crashed: {type(exc).__name__}")


class Racers:
    """Worker processes, each signed in with its own token."""

    def __init__(self, store, toks):
        ctx = mp.get_context("spawn")
        self.barrier = ctx.Barrier(len(toks))
        self.inboxes = [ctx.Queue() for _ in toks]
        self.outbox = ctx.Queue()
        self.procs = [ctx.Process(target=_worker, daemon=True, args=(
            store.url, str(store.key_store.path), tok, box, self.outbox, self.barrier))
            for tok, box in zip(toks, self.inboxes, strict=True)]
        for p in self.procs:
            p.start()
        assert [self.outbox.get(timeout=120) for _ in self.procs] == ["ready"] * len(toks)

    def start(self, jobs):
        for box, job in zip(self.inboxes, jobs, strict=True):
            box.put(job)

    def results(self, n):
        return [self.outbox.get(timeout=120) for _ in range(n)]

    def race(self, jobs):
        self.start(jobs)
        return self.results(len(jobs))

    def close(self):
        for box in self.inboxes:
            box.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


@pytest.fixture
def racing(backend, tmp_path, quick_argon2):
    store = fresh_store(backend, tmp_path)
    guard = Guard(store, Keys(MASTER))
    toks = tokens(guard)
    toks["fay"] = account_token(guard, "fay", "supervisor")
    yield guard, toks
    store.engine.dispose()


def entries(store, case_id):
    with store.engine.connect() as conn:
        return [a for (a,) in conn.execute(select(audit_log.c.action)
                                           .where(audit_log.c.case_id == case_id))]


def test_of_concurrent_decisions_exactly_one_wins(racing):
    guard, toks = racing
    ann = guard.authenticate(toks["ann"])
    racers = Racers(guard.store, [toks["ann"]] * WORKERS)  # the claim holder, at once
    outcomes, doubles, ids = Counter(), 0, []
    try:
        for trial in range(TRIALS):
            case_id = open_case(guard)
            assert guard.claim(case_id, ann)
            guard.view_evidence(case_id, ann)
            got = racers.race([("decide", case_id, "confirm" if (i + trial) % 2 else "dismiss")
                               for i in range(WORKERS)])
            outcomes.update(got)
            doubles += got.count("won") != 1
            ids.append(case_id)
    finally:
        racers.close()
    print(f"{TRIALS} trials of {WORKERS} concurrent decisions: {doubles} doubles, {outcomes}")
    assert doubles == 0, outcomes
    assert set(outcomes) <= {"won", "G112", "G117"}, outcomes
    with guard.store.engine.connect() as conn:
        status = dict(conn.execute(select(cases.c.id, cases.c.status)).all())
    for case_id in ids:  # the status, the log and the key agree on the one decision
        decided = [a for a in entries(guard.store, case_id)
                   if a in ("case_confirmed", "case_dismissed")]
        assert decided == [f"case_{status[case_id]}"]
        assert (guard.store.key_store.get(case_id) is None) == (status[case_id] == "dismissed")
    c = guard.store.counters()
    assert c.get("cases.confirmed", 0) + c.get("cases.dismissed", 0) == TRIALS
    assert guard.verify().intact


def test_of_concurrent_exports_exactly_one_report(racing):
    guard, toks = racing
    ann = guard.authenticate(toks["ann"])
    racers = Racers(guard.store, [toks["cat"], toks["dan"], toks["fay"]])
    outcomes, doubles = Counter(), 0
    try:
        for _ in range(TRIALS):
            case_id = confirmed_case(guard, ann)
            got = racers.race([("export", case_id, None)] * WORKERS)
            outcomes.update(got)
            doubles += got.count("won") != 1
            assert entries(guard.store, case_id).count("report_exported") == 1
    finally:
        racers.close()
    print(f"{TRIALS} trials of {WORKERS} concurrent exports: {doubles} doubles, {outcomes}")
    assert doubles == 0, outcomes
    assert set(outcomes) <= {"won", "G109", "G117"}, outcomes
    assert guard.store.counters()["reports.exported"] == TRIALS
    assert guard.verify().intact


def test_verification_never_breaks_under_concurrent_appends(racing):
    guard, toks = racing
    racers = Racers(guard.store, [toks["ann"], toks["bob"]])
    case_ids = [open_case(guard), open_case(guard)]
    verified = false_broken = 0
    outcomes = []
    try:
        while verified < 100:  # every verification below overlaps the appenders' work
            racers.start([("churn", case_ids[0], 100), ("churn", case_ids[1], 100)])
            finished = 0
            while finished < 2:
                false_broken += not guard.verify().intact
                verified += 1
                try:
                    outcomes.append(racers.outbox.get_nowait())
                    finished += 1
                except queue.Empty:
                    pass
    finally:
        racers.close()
    print(f"{verified} verifications during concurrent appends, {false_broken} broken")
    assert set(outcomes) == {"won"}
    assert verified >= 100 and false_broken == 0
    assert guard.verify().entries > 400
