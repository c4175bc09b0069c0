"""The guard's store: SQLAlchemy Core on SQLite (default) or PostgreSQL, and a key store.

Tables hold numbers, pseudonyms, decisions, accounts (hashed secrets) and encrypted
evidence; never clear text, never a key. The per-case data keys live in a
:class:`~classifier.guard._keystore.KeyStore` apart from the database.

A SQLite file is created 0600 (its ``-wal``, ``-shm`` and journals inherit the mode), runs
with WAL and ``secure_delete`` and takes its write lock at the start of each write
transaction, so that concurrent processes serialise cleanly; after evidence is destroyed
its WAL is checkpointed and truncated. On PostgreSQL every state change is a conditional
update under a row lock. Schema versions are recorded in ``schema_version``.

The audit log (:mod:`classifier.guard._audit`) is written only by the guard's own actions
through :meth:`Store._append`, which needs the audit key.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .._errors import Errors, MasterKeyError, StoreError
from ._audit import (
    GENESIS,
    AuditVerification,
    Checkpoint,
    canonical,
    check_checkpoints,
    entry_hash,
    entry_mac_input,
    entry_problem,
    head_mac_input,
    sum_counters,
)
from ._crypto import AuditKey
from ._keystore import KeyStore, default_key_store

__all__ = ["GENESIS", "SCHEMA_VERSION", "Store", "StoreError"]

SCHEMA_VERSION = 5
metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
meta = Table(
    "guard_meta", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)
cases = Table(
    "cases", metadata,
    Column("id", String(32), primary_key=True),
    # pseudonyms, score and explanation are deleted at a dismissal or an upheld complaint
    Column("conversation_pseudonym", String(32)),
    Column("subject_pseudonym", String(32)),
    Column("stats_ref", String(32)),  # the subject's pseudonym in flag_accounts
    Column("region", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    # open claimed confirmed dismissed reported reinstated
    Column("status", String(16), nullable=False),
    Column("score", Float),
    Column("threshold", Float),
    Column("model_version", String(64), nullable=False),
    Column("explanation", Text),  # JSON: risk factor -> contribution (numbers only)
    Column("excerpt_messages", Integer, nullable=False, default=0),
    Column("minor_to_minor", Boolean, nullable=False, default=False),
    Column("claimed_by", String(64)),
    Column("claimed_at", Float),
    Column("viewed_in_claim", Boolean, nullable=False, default=False),
    Column("decided_by", String(64)),
    Column("decided_at", Float),
    Column("decision_reason", String(64)),
    Column("open_complaint", String(32)),
    # triage is idempotent per conversation and model version
    UniqueConstraint("conversation_pseudonym", "model_version", name="one_case_per_conversation"),
)
evidence = Table(
    "evidence", metadata,
    Column("case_id", String(32), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
)
audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("case_id", String(32)),
    Column("detail", Text, nullable=False),  # JSON: numbers, codes, counter changes
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
)
# an account's audit entries are found by actor (the account, or the operator) and action
_AUDIT_ACTOR_INDEX = Index("ix_audit_actor_action", audit_log.c.actor, audit_log.c.action)
# and a case's entries by case and action (its deadline, decision latency, the export)
_AUDIT_CASE_INDEX = Index("ix_audit_case_action", audit_log.c.case_id, audit_log.c.action)
# The chain's head (last seq, hash and a MAC of both): appenders lock this row, so the log
# grows one entry at a time on both backends.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64)),
)
counters = Table(
    "counters", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)
complaints = Table(
    "complaints", metadata,
    Column("id", String(32), primary_key=True),
    Column("case_id", String(32), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("status", String(16), nullable=False),  # open re_reviewed upheld rejected
    Column("lodged_by", String(48), nullable=False),  # user:<pseudonym> or channel:<name>
    Column("registered_by", String(64)),  # the signed-in person who entered it, if any
    Column("viewed_by", String(64)),  # the re-reviewer who viewed the evidence
    Column("re_reviewed_by", String(64)),
    Column("re_review_outcome", String(16)),  # confirm / dismiss
    Column("decided_by", String(64)),
    Column("decided_at", Float),
)
# Per year and pseudonymous account (a pseudonym of its own, not the case's): flags and
# human decisions, for the annual report's error rate (B3/A3); deleted by close_year. Each
# row carries a MAC, and each year's sums are counters changed in audited entries.
flag_accounts = Table(
    "flag_accounts", metadata,
    Column("year", Integer, primary_key=True),
    Column("subject_pseudonym", String(32), primary_key=True),
    Column("flags", Integer, nullable=False),
    Column("confirmed", Integer, nullable=False),
    Column("dismissed", Integer, nullable=False),
    Column("mac", String(64), nullable=False),
)
STATS_COLUMNS = ("flags", "confirmed", "dismissed")


def stats_mac_input(year: int, pseudonym: str, values: Iterable[int]) -> bytes:
    return f"flag_accounts\n{year}\n{pseudonym}\n{','.join(map(str, values))}".encode()


def stats_counter(year: int, column: str) -> str:
    return f"stats.{year}.{column}"
accounts = Table(
    "accounts", metadata,
    Column("id", String(64), primary_key=True),  # canonical: NFKC, casefolded, one space
    Column("role", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # active disabled
    Column("password_hash", String(256), nullable=False),  # Argon2id
    Column("must_change_password", Boolean, nullable=False),
    Column("totp_secret", LargeBinary),  # encrypted under a key from the store secret
    Column("totp_last_step", Integer, nullable=False, default=0),  # no code used twice
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", Float),
    Column("created_at", Float, nullable=False),
    Column("mac", String(64)),  # HMAC under the audit key (_identity.account_mac_input)
    # every change by the guard counts up; the audit entry of the change records it
    Column("generation", Integer, nullable=False, default=0),
    Column("tokens_from", Integer, nullable=False, default=0),  # older tokens are void
)
api_tokens = Table(
    "api_tokens", metadata,
    Column("id", String(16), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("digest", String(64), nullable=False),  # HMAC of id, account, generation, secret
    Column("generation", Integer, nullable=False, default=0),  # the account's, at issue
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

_OLD_TABLES = ("cases", "evidence", "case_keys", "audit_log", "counters", "complaints",
               "flag_accounts", "audit_head")


def _create_private_file(path: str) -> None:
    """Create the SQLite file 0600 before SQLite opens it (no window of another mode)."""
    if not path or path == ":memory:" or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Store:
    """A guard store at a SQLAlchemy URL (default: a SQLite file) and its key store.

    Parameters
    ----------
    url : str
        ``sqlite:///path`` or ``postgresql+psycopg://...``.
    create : bool
        Create the SQLite file (0600) and the schema if they do not exist.
    key_store : KeyStore, optional
        Where the wrapped keys live; default ``$SOLICITATION_KEY_STORE``, else a folder
        beside a SQLite file (``guard.db.keys``). A PostgreSQL store needs one given.

    >>> store = Store("sqlite://", create=True)
    >>> store.migrate()  # the schema version
    5
    """

    def __init__(self, url: str = "sqlite:///guard.db", *, engine: Engine | None = None,
                 create: bool = False, key_store: KeyStore | None = None) -> None:
        self.url = url
        self._shown_url = url.split("@")[-1] if "@" in url else url  # no password shown
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        self.sqlite_path = Path(path) if path and path != ":memory:" else None
        self.wal_pending = False  # destroyed rows may still be in -wal (see truncate_wal)
        # a process that ended while a reader held the WAL could not truncate it: a Guard
        # that finds frames in it at open truncates it once its keys are checked
        wal = Path(f"{self.sqlite_path}-wal") if self.sqlite_path else None
        self.wal_at_open = bool(wal and wal.is_file() and wal.stat().st_size > 0)
        if engine is None and self.sqlite_path is not None:
            if not create and not self.sqlite_path.exists():
                raise StoreError(Errors.G128.format(url=url))
            if not self.sqlite_path.exists() and not self.sqlite_path.parent.is_dir():
                raise StoreError(Errors.G100.format(url=self._shown_url, problem=(
                    "its folder does not exist")))
            try:
                _create_private_file(path)
            except OSError as exc:
                raise StoreError(Errors.G100.format(url=self._shown_url,
                                                    problem=exc.strerror)) from None
        if engine is None:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(url)
            except ArgumentError:
                raise StoreError(Errors.G100.format(url="(given)", problem=(
                    "not a database URL (sqlite:///path or postgresql+psycopg://...)"))) from None
        self.engine = engine or self._make_engine(url)
        self._key_store = key_store
        self._key_store_default = key_store is None
        if create:
            self.migrate()

    def __repr__(self) -> str:
        return f"Store({self._shown_url!r})"

    @property
    def key_store(self) -> KeyStore:
        """The key store (G015 when a store outside SQLite has none)."""
        if self._key_store is None:
            self._key_store = default_key_store(self.url)
            if self._key_store is None:
                raise MasterKeyError(Errors.G015.format(url=self._shown_url))
        return self._key_store

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            from sqlalchemy.pool import StaticPool

            memory = ":memory:" in url or url == "sqlite://"
            engine = create_engine(url, connect_args={"timeout": 30},
                                   **({"poolclass": StaticPool} if memory else {}))

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                if not memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA secure_delete=ON")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                # writers take the write lock up front (no upgrade deadlocks); readers don't
                immediate = conn.get_execution_options().get("guard_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine
        return create_engine(url, pool_pre_ping=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it holds the write lock from its start)."""
        with self.engine.connect() as conn:
            conn.execution_options(guard_write=True)
            with conn.begin():
                yield conn
        if self.wal_pending:  # a truncation a reader held off: try again, without waiting
            self.truncate_wal(wait=0.0)

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one consistent state of the whole store."""
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def migrate(self) -> int:
        """Create or upgrade the schema; returns its version.

        A store of schema 1-3 (an unkeyed audit log) is upgraded only while it holds no
        audit entry; one that does is refused (G100): its entries cannot be proven. A
        store whose tables do not match the version it records (a hand-edited
        ``schema_version``) is refused too (G100)."""
        with self.write() as conn:
            if not self.is_sqlite:  # processes opening one store at once migrate in turn
                conn.execute(text("SELECT pg_advisory_xact_lock(7283459012)"))
            metadata.create_all(conn, tables=[schema_version])
            current = conn.execute(select(schema_version.c.version)).scalar() or 0
            if current == SCHEMA_VERSION:
                _AUDIT_CASE_INDEX.create(conn, checkfirst=True)  # added within schema 5
                return current
            if current > SCHEMA_VERSION:
                raise StoreError(Errors.G100.format(
                    url=self._shown_url, problem=f"schema {current} is newer than this "
                                                 f"library's {SCHEMA_VERSION}"))
            try:
                self._upgrade(conn, current)
            except DBAPIError as exc:  # the tables are not those of schema `current`
                raise StoreError(Errors.G100.format(
                    url=self._shown_url, problem=f"its tables do not match the schema "
                    f"{current} it records ({type(exc.orig).__name__}); restore it from a "
                    "backup")) from None
        return SCHEMA_VERSION

    def _upgrade(self, conn: Connection, current: int) -> None:
        """From schema ``current`` (0: none) to SCHEMA_VERSION, in the caller's transaction."""
        if current == 4:  # schema 5 seals accounts and tokens with the audit key
            conn.execute(text("ALTER TABLE accounts ADD COLUMN mac VARCHAR(64)"))
            for table, column in (("accounts", "generation"), ("accounts", "tokens_from"),
                                  ("api_tokens", "generation")):
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER "
                                  "NOT NULL DEFAULT 0"))
            _AUDIT_ACTOR_INDEX.create(conn, checkfirst=True)
            _AUDIT_CASE_INDEX.create(conn, checkfirst=True)
            conn.execute(update(api_tokens).where(api_tokens.c.revoked_at.is_(None))
                         .values(revoked_at=time.time()))
        else:
            if current:
                entries = conn.execute(text("SELECT count(*) FROM audit_log")).scalar()
                if entries:
                    raise StoreError(Errors.G100.format(
                        url=self._shown_url, problem=f"schema {current} has an unkeyed audit "
                        "log with entries; it cannot be upgraded in place (keep it read-only "
                        "until its retention deadline and start a new store)"))
                for name in _OLD_TABLES:
                    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            metadata.create_all(conn)
            conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS, mac=None))
            conn.execute(insert(meta).values(name="store_id", value=uuid.uuid4().hex))
        conn.execute(schema_version.delete())
        conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))

    # -- metadata --------------------------------------------------------------------
    def meta(self, conn: Connection, name: str) -> str | None:
        return conn.execute(select(meta.c.value).where(meta.c.name == name)).scalar()

    @property
    def store_id(self) -> str:
        """A random id of this store, named in its checkpoints."""
        with self.engine.connect() as conn:
            value = self.meta(conn, "store_id")
        if value is None:
            raise StoreError(Errors.G100.format(url=self._shown_url, problem="no schema"))
        return value

    # -- audit log -------------------------------------------------------------------
    def _append(self, conn: Connection, key: AuditKey, *, actor: str, role: str, action: str,
                case_id: str | None = None, detail: Mapping[str, Any] | None = None,
                counters: Mapping[str, int] | None = None) -> int:
        """Append one entry (inside the caller's transaction); returns its seq.

        Private: only the guard's actions call it, with the audit key. ``counters`` are
        applied here and recorded in the entry, so that no counter changes unaudited."""
        if not isinstance(key, AuditKey):
            raise StoreError(Errors.G119)
        head = conn.execute(select(audit_head).where(audit_head.c.id == 1)
                            .with_for_update()).first()  # serialises appenders
        prev, seq = (head.hash, head.seq + 1) if head else (GENESIS, 1)
        body = dict(detail or {})
        if counters:
            body["counters"] = {k: int(v) for k, v in sorted(counters.items()) if v}
            for name, by in body["counters"].items():
                self._bump(conn, name, by)
        ts = round(time.time(), 6)
        detail_text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        digest = entry_hash(prev, canonical(seq, ts, actor, role, action, case_id, detail_text))
        conn.execute(insert(audit_log).values(
            seq=seq, ts=ts, actor=actor, role=role, action=action, case_id=case_id,
            detail=detail_text, prev_hash=prev, hash=digest,
            mac=key.mac(entry_mac_input(digest))))
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(
            seq=seq, hash=digest, mac=key.mac(head_mac_input(seq, digest))))
        return seq

    def lock_head(self, conn: Connection) -> None:
        """Take the appenders' lock now (before a key store change that must not
        interleave with a sweep of orphan keys)."""
        conn.execute(select(audit_head.c.seq).where(audit_head.c.id == 1).with_for_update())

    def verify_audit_log(self, key: AuditKey | None = None, *,
                         checkpoints: Iterable[tuple[str, Checkpoint]] = (),
                         public_key: Any = None) -> AuditVerification:
        """Verify the audit log as one consistent snapshot (concurrent appends never make
        it fail): the hash chain, with ``key`` every MAC and the head, the counters, and
        each checkpoint (with ``public_key``, its signature).

        >>> store = Store("sqlite://", create=True)
        >>> store.verify_audit_log().intact
        True
        """
        prev, chain, seq, broken, problem = GENESIS, GENESIS, 0, None, None
        hashes: dict[int, str] = {}  # seq -> the hash recomputed from the rows as they are
        details: list[str] = []
        with self.snapshot() as conn:
            store_id = self.meta(conn, "store_id") or ""
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
            for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)):
                seq += 1
                body = canonical(row.seq, row.ts, row.actor, row.role, row.action,
                                 row.case_id, row.detail)
                chain = entry_hash(chain, body)
                hashes[row.seq] = chain
                if broken is not None:
                    continue
                if row.seq != seq:
                    problem = "a sequence number is missing or repeated"
                elif row.prev_hash != prev:
                    problem = "it does not link to the entry before"
                else:
                    problem = entry_problem(row, key)
                if problem:
                    broken = seq
                    continue
                prev = row.hash
                details.append(row.detail)
            table = {r.name: r.value for r in conn.execute(select(counters))}
            stats = conn.execute(select(flag_accounts)).all()
        n = seq
        head_ok = None
        if broken is None:
            if head is None or head.seq != n or head.hash != prev:
                head_ok, broken = False, n + 1
                problem = "the head anchor differs from the last entry"
            elif key is not None and n == 0:
                head_ok, broken = False, 1
                problem = "the log is empty, yet a bound store holds its binding entry"
            elif key is not None:
                head_ok = key.check(head_mac_input(n, prev), head.mac)
                if not head_ok:
                    broken, problem = n, "the head anchor's MAC is wrong"
            else:
                head_ok = True
        counters_ok = stats_ok = None
        if broken is None:
            audited = {k: v for k, v in sum_counters(details).items() if v}
            counters_ok = audited == {k: v for k, v in table.items() if v}
            sums: dict[str, int] = {}
            stats_ok = True
            for r in stats:
                values = [getattr(r, c) for c in STATS_COLUMNS]
                for column, value in zip(STATS_COLUMNS, values, strict=True):
                    name = stats_counter(r.year, column)
                    sums[name] = sums.get(name, 0) + value
                if key is not None and not key.check(
                        stats_mac_input(r.year, r.subject_pseudonym, values), r.mac):
                    stats_ok = False
            expected = {k: v for k, v in table.items() if k.startswith("stats.") and v}
            stats_ok = stats_ok and {k: v for k, v in sums.items() if v} == expected
        return AuditVerification(
            entries=n, head_seq=head.seq if head is not None else 0,
            chain_ok=broken is None, broken_at=broken, problem=problem,
            macs_checked=key is not None, head_ok=head_ok, counters_ok=counters_ok,
            stats_ok=stats_ok,
            checkpoints=check_checkpoints(checkpoints, store_id, hashes, public_key),
            head_hash=prev)

    def head(self) -> tuple[int, str]:
        """The last entry's sequence number and hash."""
        with self.engine.connect() as conn:
            row = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        return (row.seq, row.hash) if row else (0, GENESIS)

    # -- counters --------------------------------------------------------------------
    def _bump(self, conn: Connection, name: str, by: int = 1) -> None:
        done = conn.execute(update(counters).where(counters.c.name == name)
                            .values(value=counters.c.value + by)).rowcount
        if not done:
            conn.execute(insert(counters).values(name=name, value=by))

    def counters(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r.name: r.value for r in conn.execute(select(counters))}

    # -- erasure ---------------------------------------------------------------------
    def truncate_wal(self, *, wait: float = 30.0) -> bool:
        """SQLite: move the WAL into the database and truncate it to zero bytes, so that
        destroyed rows leave no copy in ``-wal`` (the database overwrites them itself:
        ``secure_delete``); True when done (always on PostgreSQL, where it does nothing).

        A reader that holds the WAL open makes SQLite wait (up to ``wait`` seconds), then
        refuse: :attr:`wal_pending` is then set, and every later write transaction of this
        store tries again when it ends, until one succeeds."""
        if not self.is_sqlite or self.sqlite_path is None:
            return True
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={int(wait * 1000)}")
            try:
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()[0]
            finally:
                conn.exec_driver_sql("PRAGMA busy_timeout=30000")
        self.wal_pending = bool(busy)
        return not busy

    def files(self) -> list[Path]:
        """Every file of the SQLite store (main, ``-wal``, ``-shm``, ``-journal``)."""
        if self.sqlite_path is None:
            return []
        return [p for p in (self.sqlite_path, *(Path(f"{self.sqlite_path}{s}") for s in
                                                ("-wal", "-shm", "-journal"))) if p.exists()]
