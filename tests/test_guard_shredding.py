"""Shredding that leaves nothing to carve, keys that never enter PostgreSQL, rotation, and
secrets that cannot leave the process.

The carver reads every file the store and the key store wrote (the database, ``-wal``,
``-shm``, journals, key files; on PostgreSQL its data directory, heap and ``pg_wal``),
searches them for each case's wrapped key, raw data key and ciphertext, and decrypts what
it can with the master key. It must find every live case and no shredded one."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text
from test_guard_common import (
    CANARY,
    MASTER,
    PG_URL,
    clock_at,
    confirmed_case,
    fresh_store,
    open_case,
    own_token,
    tokens,
)

from classifier import ClassifierError
from classifier.guard import (
    AuditKey,
    CheckpointSigner,
    Guard,
    Keys,
    LocalKeyStore,
    MasterKeySource,
    _cases,
    decide_complaint,
    file_complaint,
    re_review,
    rotate_master_key,
    view_complaint_evidence,
)
from classifier.guard._crypto import StoreKeys, unseal
from classifier.guard._store import cases, evidence

pytestmark = pytest.mark.obligation("art3-1-h", "art3-1-i", "audit-log")


def capture(guard, ids):
    """What an attacker would look for: each case's wrapped key, data key, ciphertext."""
    keys = Keys(MASTER)
    out = {}
    with guard.store.engine.connect() as conn:
        blobs = dict(conn.execute(select(evidence.c.case_id, evidence.c.ciphertext)
                                  .where(evidence.c.case_id.in_(ids))).all())
    for case_id in ids:
        wrapped = guard.store.key_store.get(case_id)
        out[case_id] = (wrapped, keys.unwrap(wrapped, case_id.encode()), blobs[case_id])
    return out


def carve(files, captured):
    """The cases decryptable from ``files``: key material found and ciphertext found."""
    data = [Path(f).read_bytes() for f in files if Path(f).is_file()]
    keys = Keys(MASTER)
    found = set()
    for case_id, (wrapped, data_key, ciphertext) in captured.items():
        key = (keys.unwrap(wrapped, case_id.encode()) if any(wrapped in d for d in data)
               else data_key if any(data_key in d for d in data) else None)
        if key is not None and any(ciphertext in d for d in data):
            plain = unseal(key, ciphertext, case_id.encode())
            assert CANARY.encode() in plain
            found.add(case_id)
    return found


def written_files(tmp_path):
    return [p for p in Path(tmp_path).rglob("*") if p.is_file()]


def traces(files, captured, ids):
    """Which of the cases ``ids`` left key material, and which ciphertext, in ``files``
    (each layer on its own: the key store's erasure and SQLite's)."""
    data = [Path(f).read_bytes() for f in files if Path(f).is_file()]
    keys = {c for c in ids if any(captured[c][0] in d or captured[c][1] in d for d in data)}
    texts = {c for c in ids if any(captured[c][2] in d for d in data)}
    return keys, texts


def test_nothing_of_a_shredded_case_can_be_carved_in_a_live_process(tmp_path, quick_argon2,
                                                                     monkeypatch):
    store = fresh_store("sqlite", tmp_path)
    guard = Guard(store, Keys(MASTER))
    p = {name: guard.authenticate(t) for name, t in tokens(guard).items()}
    dismissed = [open_case(guard) for _ in range(6)]
    complained = [confirmed_case(guard, p["ann"]) for _ in range(3)]
    kept = [open_case(guard) for _ in range(4)]
    captured = capture(guard, dismissed + complained + kept)
    assert carve(written_files(tmp_path), captured) == set(captured)  # the carver works
    for case_id in dismissed:
        guard.claim(case_id, p["bob"])
        guard.decide(case_id, p["bob"], "dismiss", "no_solicitation")
    assert carve(written_files(tmp_path), captured) == set(complained + kept)
    assert traces(written_files(tmp_path), captured, dismissed) == (set(), set())
    for case_id in complained:
        c = file_complaint(guard, case_id, channel="in_app")
        view_complaint_evidence(guard, c, p["bob"])
        re_review(guard, c, p["bob"], "dismiss")
        assert decide_complaint(guard, c, p["cat"]) == "upheld"
    assert carve(written_files(tmp_path), captured) == set(kept)
    clock_at(monkeypatch, _cases, time.time() + 366 * 86400)
    assert guard.purge_expired() == 13
    assert carve(written_files(tmp_path), captured) == set()
    assert traces(written_files(tmp_path), captured, captured) == (set(), set())
    assert store.sqlite_path.with_name("guard.db-wal").stat().st_size == 0  # truncated
    assert guard.verify().intact


def test_a_reader_that_holds_the_wal_delays_its_truncation_but_not_for_ever(
        tmp_path, quick_argon2, monkeypatch):
    """A dismissal while another connection reads: SQLite refuses to truncate the WAL
    (busy); the store says so (wal_pending) and the next write after the reader has gone
    truncates it, so the dismissed case's ciphertext does not stay in -wal."""
    import functools
    import sqlite3

    store = fresh_store("sqlite", tmp_path)
    guard = Guard(store, Keys(MASTER))
    p = {name: guard.authenticate(t) for name, t in tokens(guard).items()}
    case_id, other = open_case(guard), open_case(guard)
    captured = capture(guard, [case_id])
    reader = sqlite3.connect(store.sqlite_path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM cases").fetchone()  # a read snapshot held open
    guard.claim(case_id, p["bob"])
    monkeypatch.setattr(store, "truncate_wal", functools.partial(store.truncate_wal, wait=0.1))
    guard.decide(case_id, p["bob"], "dismiss", "no_solicitation")
    assert store.wal_pending and store.truncate_wal(wait=0.05) is False
    reader.rollback()
    reader.close()
    assert guard.claim(other, p["bob"])  # any later write retries the truncation
    assert not store.wal_pending
    assert traces(written_files(tmp_path), captured, [case_id]) == (set(), set())


def test_a_wal_left_by_an_earlier_process_is_truncated_by_the_next(tmp_path, quick_argon2):
    """A process that ended while a reader held the WAL left the dismissed case's frames
    in -wal; the next Guard on the store truncates it once its keys are checked."""
    import sqlite3

    store = fresh_store("sqlite", tmp_path)
    guard = Guard(store, Keys(MASTER))
    p = {name: guard.authenticate(t) for name, t in tokens(guard).items()}
    case_id = open_case(guard)
    captured = capture(guard, [case_id])
    reader = sqlite3.connect(store.sqlite_path)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM cases").fetchone()
    store.truncate_wal = lambda wait=30.0: False  # this process cannot truncate, and exits
    guard.claim(case_id, p["bob"])
    guard.decide(case_id, p["bob"], "dismiss", "no_solicitation")
    reader.rollback()
    reader.close()
    wal = store.sqlite_path.with_name("guard.db-wal")
    assert wal.stat().st_size > 0
    Guard(type(store)(store.url, key_store=store.key_store), Keys(MASTER))  # the next one
    assert wal.stat().st_size == 0
    assert traces(written_files(tmp_path), captured, [case_id]) == (set(), set())


KILLED_WRITER = """
import sys
from classifier.guard import Guard, Keys, LocalKeyStore, Store

guard = Guard(Store(sys.argv[1], key_store=LocalKeyStore(sys.argv[2])), Keys(b"k" * 32))
bob = guard.authenticate(sys.argv[3])
for case_id in sys.argv[4:]:
    guard.claim(case_id, bob)
    guard.decide(case_id, bob, "dismiss", "no_solicitation")
    print(case_id, flush=True)
"""


@pytest.mark.parametrize("after", [2, 5, 9])
def test_nothing_of_a_shredded_case_can_be_carved_after_sigkill(tmp_path, quick_argon2,
                                                               after):
    store = fresh_store("sqlite", tmp_path)
    guard = Guard(store, Keys(MASTER))
    token = tokens(guard)["bob"]
    ids = [open_case(guard) for _ in range(12)]
    captured = capture(guard, ids)
    store.engine.dispose()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, store.url,
                             str(store.key_store.path), token, *ids], stdout=subprocess.PIPE,
                            text=True)
    done = []
    for line in proc.stdout:  # type: ignore[union-attr]
        done.append(line.strip())
        if len(done) == after:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    files = written_files(tmp_path)  # as the kill left them: no recovery has run
    carved = carve(files, captured)
    with store.engine.connect() as conn:
        status = dict(conn.execute(select(cases.c.id, cases.c.status)).all())
    shredded = {c for c, s in status.items() if s == "dismissed"}
    assert set(done) <= shredded
    assert not carved & shredded
    assert not traces(files, captured, shredded)[0]  # no key of a dismissed case survives
    assert carved == set(ids) - shredded  # every case not dismissed is still readable


KILLED_PURGER = """
import sys, time, types
from sqlalchemy import select
from classifier.guard import Guard, Keys, LocalKeyStore, Store
from classifier.guard import _cases

guard = Guard(Store(sys.argv[1], key_store=LocalKeyStore(sys.argv[2])), Keys(b"k" * 32))
with guard.store.engine.connect() as conn:
    held = _cases._deadlines(conn)
    deadlines = sorted(conn.execute(select(held.c.deadline)).scalars())
for n, deadline in enumerate(deadlines, 1):  # the clock at one case's deadline per call
    _cases.time = types.SimpleNamespace(**{**vars(time), "time": lambda d=deadline: d})
    guard.purge_expired()
    print(n, flush=True)
"""


def test_nothing_of_a_purged_case_can_be_carved_after_sigkill(tmp_path, quick_argon2):
    """The purge killed part way (one case reaches its deadline per call): every purged
    case is gone from the files as the kill left them, every other one still readable but
    the one being purged when the kill came (its key is destroyed before its row is
    deleted, so a kill between the two leaves a due row without a key: the next purge
    deletes it)."""
    store = fresh_store("sqlite", tmp_path)
    guard = Guard(store, Keys(MASTER))
    ids = [open_case(guard) for _ in range(10)]
    captured = capture(guard, ids)
    with store.engine.connect() as conn:
        by_deadline = [r.id for r in conn.execute(select(cases.c.id)
                                                  .order_by(cases.c.expires_at))]
    store.engine.dispose()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PURGER, store.url,
                             str(store.key_store.path), str(len(ids))],
                            stdout=subprocess.PIPE, text=True)
    for n, _ in enumerate(proc.stdout, 1):  # type: ignore[union-attr]
        if n == 4:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    files = written_files(tmp_path)
    with store.engine.connect() as conn:
        left = {r.id for r in conn.execute(select(cases.c.id))}
    purged = set(ids) - left
    assert len(purged) >= 4 and not carve(files, captured) & purged
    assert traces(files, captured, purged) == (set(), set())
    in_flight = set(by_deadline[len(purged):len(purged) + 1])
    assert left - in_flight <= carve(files, captured) <= left


@pytest.mark.skipif(not PG_URL, reason="needs SOLICITATION_TEST_POSTGRES_URL")
def test_keys_never_enter_postgresql(tmp_path, quick_argon2):
    store = fresh_store("postgresql", tmp_path)
    guard = Guard(store, Keys(MASTER))
    bob = guard.authenticate(tokens(guard)["bob"])
    ids = [open_case(guard) for _ in range(6)]
    captured = capture(guard, ids)
    for case_id in ids[:3]:
        guard.claim(case_id, bob)
        guard.decide(case_id, bob, "dismiss", "no_solicitation")
    with store.engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        data_dir = Path(conn.execute(text("SHOW data_directory")).scalar())
    try:
        pg_files = written_files(data_dir)
        sample = pg_files[0].read_bytes()
    except (PermissionError, IndexError):
        pytest.skip("the PostgreSQL data directory is not readable here (run as root)")
    assert sample is not None
    blobs = [p.read_bytes() for p in pg_files if p.is_file()]
    for wrapped, data_key, _ in captured.values():
        assert not any(wrapped in b or data_key in b for b in blobs)
    # the ciphertext of a dismissed case may survive in heap pages or pg_wal (MVCC), but
    # with the key store's files next to them nothing of it can be decrypted
    carved = carve(pg_files + written_files(tmp_path), captured)
    assert carved == set(ids[3:])


def test_rotation_rewraps_every_key_and_resumes_after_an_interruption(guard, people, store):
    old, new = Keys(MASTER), Keys(b"n" * 32)
    ids = [confirmed_case(guard, people["ann"]) for _ in range(4)]
    ks = store.key_store
    before = {n: ks.get(n) for n in ks.names()}
    # an interrupted rotation: two keys rewrapped already, the fingerprint not yet changed
    for name in ids[:2]:
        ks.replace(name, new.wrap(old.unwrap(before[name], name.encode()), name.encode()))
    assert rotate_master_key(store, old, new) == 3  # two cases and the store secret
    assert rotate_master_key(store, old, new) == 0  # idempotent
    after = {n: ks.get(n) for n in ks.names()}
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    if isinstance(ks, LocalKeyStore):
        raw = b"".join(p.read_bytes() for p in ks.files())
        assert not any(blob in raw for blob in before.values())  # the old blobs are erased
    with pytest.raises(ClassifierError, match=r"\[G004\]"):
        Guard(store, old)
    rotated = Guard(store, new)
    cat = rotated.authenticate(own_token(rotated, "cat"))
    from classifier.guard import export_report

    assert export_report(rotated, ids[0], cat).fields["reported_account"] == "adult-real-id"
    result = rotated.verify()
    assert result.intact  # the audit key did not change with the master key
    with store.engine.connect() as conn:
        assert "master_key_rotated" in str(conn.execute(text(
            "SELECT action FROM audit_log")).all())


def test_secrets_cannot_be_pickled_copied_or_shown(guard, tmp_path):
    signer_path, _ = CheckpointSigner.generate(tmp_path / "ckpt.key")
    secrets = [Keys(MASTER), AuditKey(b"a" * 32), StoreKeys(b"s" * 32),
               CheckpointSigner.load(signer_path), guard]
    for obj in secrets:
        for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(ClassifierError, match=r"\[G007\]"):
                attempt(obj)
        assert "k" * 8 not in repr(obj) and "a" * 8 not in repr(obj)
    with pytest.raises(ClassifierError, match=r"\[G007\]"):
        Keys(MASTER)._master = b"x" * 32  # type: ignore[misc]
    assert oct(signer_path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ClassifierError, match=r"\[G005\]"):
        os.chmod(signer_path, 0o644) or CheckpointSigner.load(signer_path)


def test_master_key_from_a_kms_source_and_a_checked_file(tmp_path, monkeypatch):
    class FakeKms:  # the adapter shape: returns the raw master key
        def load_master_key(self) -> bytes:
            return MASTER

    assert isinstance(FakeKms(), MasterKeySource)
    assert Keys.load(FakeKms()).fingerprint == Keys(MASTER).fingerprint
    path = tmp_path / "master.key"
    path.write_text(Keys.generate())
    path.chmod(0o640)
    with pytest.raises(ClassifierError, match=r"\[G005\].*chmod 600"):
        Keys.load(path)
    path.chmod(0o600)
    assert Keys.load(path).fingerprint


def test_store_and_key_files_are_private_from_creation(tmp_path, guard):
    store = fresh_store("sqlite", tmp_path, "private")
    g = Guard(store, Keys(MASTER))
    open_case(g)
    for p in store.files():
        assert oct(p.stat().st_mode & 0o777) == "0o600", p.name
    ks = store.key_store
    assert oct(ks.path.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in ks.files())
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with pytest.raises(ClassifierError, match=r"\[G006\]"):
        LocalKeyStore(loose)


def test_the_key_store_erases_what_a_crash_left_half_written(tmp_path):
    ks = LocalKeyStore(tmp_path / "keys")
    stale, young = ks.path / ".case.1.tmp", ks.path / ".other.2.tmp"
    for p in (stale, young):
        p.write_bytes(b"half-written wrapped key")
    os.utime(stale, (1.0, 1.0))
    LocalKeyStore(ks.path)  # recovers at start
    assert not stale.exists() and young.exists()  # another process may be writing it
    ks.put("case-a", b"one")
    ks.replace("case-a", b"two")
    assert ks.get("case-a") == b"two" and ks.names() == ["case-a"]
    assert [p.name for p in ks.files() if p.name.endswith(".old")] == []
    assert ks.destroy("case-a") and not ks.destroy("case-a")
