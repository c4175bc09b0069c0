"""What the guard's test files share: real stores on SQLite and PostgreSQL, a key store in
the test's folder, signed-in people, cases with a canary in their evidence.

The fixtures are registered in ``conftest.py``; the helpers are imported by the
``test_guard*`` files (this file holds no test itself)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from classifier import Conversation, Message, Participant, Pipeline
from classifier._pipeline import ScoreResult
from classifier._text import EvidenceExcerpt
from classifier.guard import Guard, Keys, LocalKeyStore, Store
from classifier.guard import _identity as identity
from classifier.guard._store import SCHEMA_VERSION, metadata

CANARY = "qqguardcanary5521"
MASTER = b"k" * 32
T0 = datetime(2026, 9, 1, 18, 0, tzinfo=UTC)
LINES = ["hey ur drawings are cool", "thx", "how old r u", f"im 12 {CANARY}",
         "im 34, just got off work", "ok", "ur so mature for ur age", "lol",
         "are your parents home", "no", "dont tell anyone we talk", "ok",
         "add me on snap", "ok", "send me a pic", "maybe", "we should meet up", "idk"]
PG_URL = os.environ.get("SOLICITATION_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
PEOPLE = {"ann": "reviewer", "bob": "reviewer", "cat": "supervisor", "dan": "supervisor",
          "eve": "auditor"}


def grooming(cid: str = "conv-real-id-1") -> Conversation:
    msgs = tuple(Message("adult-real-id" if i % 2 == 0 else "child-real-id",
                         T0 + timedelta(minutes=3 * i), t) for i, t in enumerate(LINES))
    return Conversation(cid, (Participant("adult-real-id"), Participant("child-real-id", 12)),
                        msgs)


def benign() -> Conversation:
    msgs = tuple(Message("a" if i % 2 == 0 else "b", T0 + timedelta(minutes=i), t)
                 for i, t in enumerate(["want to grab lunch", "sure", "noon?", "ok"]))
    return Conversation("lunch", (Participant("a", 40), Participant("b", 41)), msgs)


def flagged(conversation_id: str, subject: str = "adult-real-id",
            model_version: str = "test-model") -> tuple[ScoreResult, EvidenceExcerpt]:
    """A flagged result and its excerpt without running the model (fast, for many cases);
    the excerpt's messages are the early-stage test lines."""
    plain = json.dumps({"conversation_id": conversation_id, "subject": subject,
                        "participants": [subject, "child-real-id"],
                        "messages": [{"index": i, "sender": subject, "text": t,
                                      "ts": (T0 + timedelta(minutes=i)).isoformat()}
                                     for i, t in enumerate(LINES[2:5])]}).encode()
    result = ScoreResult(conversation_id, 0.91, True, {"secrecy": 0.2, "age_gap": 0.3},
                         model_version, 0.5, 4, subject=subject)
    return result, EvidenceExcerpt(plain, 3, None)


def fresh_store(backend: str, tmp_path, name: str = "guard") -> Store:
    """An empty store with its key store in ``tmp_path``."""
    keys = LocalKeyStore(tmp_path / f"{name}.keys")
    if backend == "sqlite":
        return Store(f"sqlite:///{tmp_path / (name + '.db')}", create=True, key_store=keys)
    store = Store(PG_URL, key_store=keys)  # type: ignore[arg-type]
    with store.engine.begin() as conn:
        metadata.drop_all(conn)
        for old in ("case_keys",):
            conn.execute(text(f"DROP TABLE IF EXISTS {old}"))
    store.migrate()
    return store


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def store(backend, tmp_path):
    s = fresh_store(backend, tmp_path)
    assert s.migrate() == SCHEMA_VERSION and s.migrate() == SCHEMA_VERSION  # idempotent
    yield s
    s.engine.dispose()


@pytest.fixture
def quick_argon2(monkeypatch):
    """Argon2id with small costs, so that tests sign many people in quickly (the real
    profile is checked in test_guard_identity)."""
    monkeypatch.setattr(identity, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                            parallelism=1))


@pytest.fixture
def guard(store, quick_argon2):
    return Guard(store, Keys(MASTER))


def clock_at(monkeypatch, module, at: float) -> None:
    """Set the clock of one guard module (``_cases``: deadlines; ``_redress``: the
    complaint window) to ``at``; the guard's API takes no time from its callers."""
    fake = SimpleNamespace(**vars(time))
    fake.time = lambda: at
    monkeypatch.setattr(module, "time", fake)


def tokens(guard: Guard) -> dict[str, str]:
    """An account, signed in once to replace its issued password, and an API token for
    each of PEOPLE."""
    return {name: account_token(guard, name, role) for name, role in PEOPLE.items()}


def account_token(guard: Guard, name: str, role: str) -> str:
    """A new account, signed in once to replace its issued password (G134 until then,
    for its tokens too), and the API token its holder makes."""
    import pyotp

    e = guard.add_account(name, role)
    code = pyotp.TOTP(e.totp_secret).now() if e.totp_secret else None
    p = guard.change_password(guard.sign_in(name, e.password, code), "a long new passphrase")
    SIGNED_IN.setdefault(guard.store_id, {})[ident_of(name)] = p
    return guard.issue_token(p)  # the person's own (the operator's: auditors only, G141)


SIGNED_IN: dict[str, dict[str, object]] = {}  # store id -> account -> its password sign-in


def ident_of(name: str) -> str:
    return identity.canonical_id(name)


def own_token(guard: Guard, name: str) -> str:
    """Another token, made by the account's holder from the sign-in of :func:`account_token`
    (a second TOTP sign-in would wait for the next step)."""
    return guard.issue_token(SIGNED_IN[guard.store_id][ident_of(name)])


@pytest.fixture
def people(guard):
    """Signed-in principals (by token) of ann, bob (reviewers), cat, dan (supervisors),
    eve (auditor)."""
    return {name: guard.authenticate(tok) for name, tok in tokens(guard).items()}


@pytest.fixture(scope="module")
def scorer(extractor):
    return Pipeline(extractor=extractor)


def open_case(guard: Guard, scorer: Pipeline | None = None, cid: str | None = None) -> str:
    """A case through the pipeline (``scorer``) or from :func:`flagged` (fast)."""
    if scorer is not None:
        scorer.guard = guard
        try:
            result = scorer.score(grooming(cid or "conv-real-id-1"))
        finally:
            scorer.guard = None
        assert result.flagged and result.case_id
        return result.case_id
    case_id = guard.triage(*flagged(cid or os.urandom(8).hex()))
    assert case_id
    return case_id


def confirmed_case(guard: Guard, reviewer, cid: str | None = None) -> str:
    case_id = open_case(guard, cid=cid)
    assert guard.claim(case_id, reviewer)
    guard.view_evidence(case_id, reviewer)
    guard.decide(case_id, reviewer, "confirm", "solicitation_of_a_child")
    return case_id


def store_bytes(store: Store) -> list[bytes]:
    """The bytes of every file the store and its key store wrote (SQLite)."""
    files = list(store.files())
    ks = store.key_store
    if isinstance(ks, LocalKeyStore):
        files += list(ks.files())
    return [p.read_bytes() for p in files]
