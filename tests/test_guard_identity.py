"""Identities: canonical ids, Argon2id, TOTP, lockout, tokens, audited sign-ins, and a
Principal that nobody can make, copy, pickle or replace outside the guard."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import time
import types

import pyotp
import pytest
from sqlalchemy import select, update
from test_guard_common import MASTER, fresh_store

from classifier.guard import Guard, Keys, Principal, StoreError, canonical_id
from classifier.guard import _identity as identity
from classifier.guard._store import accounts, audit_log

pytestmark = pytest.mark.obligation("art3-1-g-ii", "audit-log")


def actions(store, action):
    with store.engine.connect() as conn:
        return conn.execute(select(audit_log.c.actor, audit_log.c.detail)
                            .where(audit_log.c.action == action).order_by(audit_log.c.seq)).all()


def test_canonical_ids_make_one_person_of_every_spelling(guard):
    assert {canonical_id(n) for n in ("Ann", "ann ", "ANN", " ann", "Ａｎｎ", "ANN\t")} == {"ann"}
    assert canonical_id("Ann  Lee") == canonical_id("ann lee")
    for bad in ("", "   ", "x" * 65, "a\x00b", None, 7):
        with pytest.raises(StoreError, match=r"\[G129\]"):
            canonical_id(bad)
    guard.add_account("Ann", "reviewer")
    for again in ("ann ", "ANN", "Ａｎｎ"):
        with pytest.raises(StoreError, match=r"\[G132\]"):
            guard.add_account(again, "supervisor")
    with pytest.raises(StoreError, match=r"\[G129\]"):
        guard.add_account("zed", "admin")


def test_real_argon2id_and_totp_enrolment(tmp_path):
    store = fresh_store("sqlite", tmp_path)
    guard = Guard(store, Keys(MASTER))  # the shipped Argon2id profile, not the quick one
    e = guard.add_account("Ann", "reviewer")
    assert "password" not in repr(e) and e.password not in repr(e)
    assert e.otpauth_uri.startswith("otpauth://totp/") and "secret=" in e.otpauth_uri
    with store.engine.connect() as conn:
        row = conn.execute(select(accounts)).first()
    assert row.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    raw = b"".join(p.read_bytes() for p in store.files())
    for secret in (e.password, e.totp_secret):
        assert secret.encode() not in raw  # hashed, and encrypted
    p = guard.sign_in("ANN", e.password, pyotp.TOTP(e.totp_secret).now())
    assert p.account_id == "ann" and p.method == "password+totp" and p.must_change_password


def test_sign_in_needs_the_second_factor_once_and_a_changed_password(guard):
    e = guard.add_account("ann", "reviewer")
    totp = pyotp.TOTP(e.totp_secret)
    with pytest.raises(StoreError, match=r"\[G130\]"):
        guard.sign_in("ann", e.password)  # no code
    with pytest.raises(StoreError, match=r"\[G130\]"):
        guard.sign_in("ann", e.password, "000000" if totp.now() != "000000" else "111111")
    code = totp.now()
    first = guard.sign_in("ann", e.password, code)
    with pytest.raises(StoreError, match=r"\[G130\]"):
        guard.sign_in("ann", e.password, code)  # a code is accepted once
    with pytest.raises(StoreError, match=r"\[G134\]"):
        guard.claim("0" * 32, first)  # the issued password must be changed first
    with pytest.raises(StoreError, match=r"\[G135\]"):
        guard.change_password(first, "short")
    with pytest.raises(StoreError, match=r"\[G135\]"):
        guard.change_password(first, e.password)
    ready = guard.change_password(first, "a long new passphrase")
    assert guard.claim("0" * 32, ready) is False  # acts now (no such case)
    auditor = guard.add_account("eve", "auditor")
    assert guard.sign_in("Eve", auditor.password).method == "password"  # no TOTP


def test_lockout_and_every_attempt_audited(guard, store):
    e = guard.add_account("ann", "auditor")
    for _ in range(identity.MAX_FAILURES):
        with pytest.raises(StoreError, match=r"\[G130\]"):
            guard.sign_in("ann", "wrong password")
    with pytest.raises(StoreError, match=r"\[G130\]"):
        guard.sign_in("ann", e.password)  # locked, even with the right password
    assert guard.list_accounts()[0].locked
    with pytest.raises(StoreError, match=r"\[G130\]"):
        guard.sign_in("nobody-here-7781", "x")
    failed = actions(store, "sign_in_failed")
    reasons = [d for _, d in failed]
    assert len(failed) == identity.MAX_FAILURES + 2
    assert '"locked":true' in reasons[identity.MAX_FAILURES - 1]
    assert '"reason":"locked"' in reasons[-2] and failed[-1][0] == "unknown"
    with store.engine.connect() as conn:  # an unknown name is never stored
        assert "nobody-here-7781" not in str(conn.execute(select(audit_log)).all())
    with store.engine.begin() as conn:  # the lock runs out
        conn.execute(update(accounts).values(locked_until=1.0))
    assert guard.sign_in("ann", e.password).account_id == "ann"
    assert len(actions(store, "signed_in")) == 1
    guard.reset_account("ann")
    with pytest.raises(StoreError, match=r"\[G130\]"):
        guard.sign_in("ann", e.password)  # the old password is gone


def test_tokens_are_hashed_shown_once_and_revoked(guard, store):
    import pyotp

    e = guard.add_account("cat", "supervisor")
    with pytest.raises(StoreError, match=r"\[G141\]"):
        guard.issue_token("CAT")  # the operator cannot make a supervisor's token
    signed = guard.sign_in("CAT", e.password, pyotp.TOTP(e.totp_secret).now())
    with pytest.raises(StoreError, match=r"\[G134\]"):
        guard.issue_token(signed)  # nor the holder before replacing the issued password
    token = guard.issue_token(guard.change_password(signed, "a long new passphrase"))
    p = guard.authenticate(token)
    assert (p.account_id, p.role, p.method) == ("cat", "supervisor", "token")
    with pytest.raises(StoreError, match=r"\[G142\]"):
        guard.issue_token(p)  # a token does not make another
    with store.engine.connect() as conn:
        issued = conn.execute(select(audit_log.c.actor, audit_log.c.detail)
                              .where(audit_log.c.action == "token_issued")).all()
    assert [actor for actor, _ in issued] == ["cat"]  # made by its holder, audited so
    guard.add_account("eve", "auditor")  # the operator's token for an auditor account
    auditor = guard.authenticate(guard.issue_token("eve"))
    assert auditor.must_change_password  # a token does not skip the password's change
    with pytest.raises(StoreError, match=r"\[G134\]"):
        guard.aggregates(auditor)
    with pytest.raises(StoreError, match=r"\[G143\]"):  # nor can its holder take the
        guard.change_password(auditor, "the operator's own passphrase")  # account over
    raw = b"".join(path.read_bytes() for path in store.files()) if store.files() else b""
    with store.engine.connect() as conn:
        raw += str(conn.execute(select(audit_log)).all()).encode()
    secret = token.split("_", 2)[2]  # the secret itself may hold "_"
    assert len(secret) == 43
    assert token.encode() not in raw and secret.encode() not in raw
    for bad in ("", "sct_", token[:-1] + ("A" if token[-1] != "A" else "B"), 42):
        with pytest.raises(StoreError, match=r"\[G131\]"):
            guard.authenticate(bad)
    guard.disable_account("cat")
    with pytest.raises(StoreError, match=r"\[G131\]"):
        guard.authenticate(token)
    with pytest.raises(StoreError, match=r"\[G118\]"):
        guard.queue(p)  # a principal of a disabled account stops at once
    with pytest.raises(StoreError, match=r"\[G133\]"):
        guard.issue_token("cat")


def test_a_principal_cannot_be_made_copied_pickled_or_replaced(guard, people, store):
    ann = people["ann"]
    with pytest.raises(StoreError, match=r"\[G118\]"):
        Principal("ann", "supervisor", "token", 0.0, guard.store_id)
    with pytest.raises(StoreError, match=r"\[G118\]"):
        dataclasses.replace(ann, role="supervisor")
    for attempt in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(StoreError, match=r"\[G118\]"):
            attempt(ann)
    forged = object.__new__(Principal)
    for name, value in (("account_id", "cat"), ("role", "supervisor"), ("method", "token"),
                        ("signed_in_at", ann.signed_in_at), ("store_id", guard.store_id),
                        ("must_change_password", False), ("_grant", ann._grant)):
        object.__setattr__(forged, name, value)
    with pytest.raises(StoreError, match=r"\[G118\]"):
        guard.queue(forged)
    object.__setattr__(ann, "role", "supervisor")  # a genuine one, its role edited
    with pytest.raises(StoreError, match=r"\[G118\]"):
        guard.queue(ann)
    bob = people["bob"]
    object.__setattr__(bob, "signed_in_at", 0.0)  # its sign-in time edited
    with pytest.raises(StoreError, match=r"\[G118\]"):
        guard.queue(bob)
    later = time.time() + identity.PRINCIPAL_HOURS * 3600.0 + 60.0
    with pytest.MonkeyPatch.context() as mp:  # 12 hours later: expired
        mp.setattr(identity, "time", types.SimpleNamespace(time=lambda: later))
        with pytest.raises(StoreError, match=r"\[G136\]"):
            guard.queue(people["cat"])
    other = Guard(fresh_store("sqlite", store.key_store.path.parent, "other"), Keys(MASTER))
    with pytest.raises(StoreError, match=r"\[G118\]"):
        other.queue(people["cat"])  # a principal of another store
    with store.engine.begin() as conn:  # the account's role edited in the database
        conn.execute(update(accounts).where(accounts.c.id == "dan").values(role="reviewer"))
    with pytest.raises(StoreError, match=r"\[G118\]"):
        guard.queue(people["dan"])


def test_a_schema_4_store_is_upgraded_and_its_accounts_must_be_reset(guard, store):
    """Schema 5 seals accounts and tokens with the audit key: an older store's tokens are
    revoked by the upgrade and its accounts refused (G140) until the operator resets them."""
    from sqlalchemy import text

    from classifier.guard._store import SCHEMA_VERSION, schema_version

    guard.add_account("ann", "auditor")
    token = guard.issue_token("ann")
    with store.write() as conn:  # back to schema 4: no account MAC, the old token digest
        conn.execute(text("DROP INDEX ix_audit_actor_action"))
        for table, column in (("accounts", "mac"), ("accounts", "generation"),
                              ("accounts", "tokens_from"), ("api_tokens", "generation")):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(update(schema_version).values(version=4))
    assert store.migrate() == SCHEMA_VERSION == 5
    for refused in (lambda: guard.authenticate(token), lambda: guard.issue_token("ann"),
                    lambda: guard.sign_in("ann", "whatever-it-was")):
        with pytest.raises(StoreError, match=r"\[G140\]"):
            refused()
    enrolment = guard.reset_account("ann")
    with pytest.raises(StoreError, match=r"\[G131\]"):
        guard.authenticate(token)  # revoked by the upgrade, and by the reset
    p = guard.sign_in("ann", enrolment.password)
    assert (p.account_id, p.role) == ("ann", "auditor")
    assert guard.authenticate(guard.issue_token("ann")).account_id == "ann"


def test_an_older_sealed_account_row_put_back_is_refused(guard, store):
    """Someone who can write the database saved the sealed row before a sign-in (or a
    reset) and puts it back, to use the same TOTP code again or the old password: the
    row's MAC holds, but its generation is not the one the account's last audit entry
    recorded (G140)."""
    e = guard.add_account("ann", "reviewer")
    with store.engine.connect() as conn:
        saved = dict(conn.execute(select(accounts).where(accounts.c.id == "ann")).first()
                     ._mapping)
    code = pyotp.TOTP(e.totp_secret).now()
    guard.sign_in("ann", e.password, code)
    with store.write() as conn:
        conn.execute(update(accounts).where(accounts.c.id == "ann").values(**saved))
    with pytest.raises(StoreError, match=r"\[G140\]"):
        guard.sign_in("ann", e.password, code)  # the code again, on the old row
    guard.reset_account("ann")
    with store.write() as conn:
        conn.execute(update(accounts).where(accounts.c.id == "ann").values(**saved))
    with pytest.raises(StoreError, match=r"\[G140\]"):
        guard.sign_in("ann", e.password, pyotp.TOTP(e.totp_secret).now())  # pre-reset
