"""The guard's store: SQLAlchemy Core on SQLite (default) or PostgreSQL.

Tables hold numbers, pseudonyms, decisions and encrypted evidence; never clear text.
A SQLite file runs with WAL and ``secure_delete`` (deleted evidence is overwritten on
disk) and takes its write lock at the start of each transaction, so that concurrent
processes serialise cleanly. Schema changes are numbered migrations recorded in
``schema_version``. The audit log is hash-chained: each entry stores the sha256 of the
previous entry and of itself, and :meth:`Store.verify_audit_log` recomputes the chain.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from .._errors import Errors, StoreError

__all__ = ["GENESIS", "Store", "StoreError"]

GENESIS = "0" * 64
metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
# (schema_version belongs to the same metadata, so drop_all() in tests clears it too)
cases = Table(
    "cases", metadata,
    Column("id", String(32), primary_key=True),
    Column("conversation_pseudonym", String(32), nullable=False),
    Column("subject_pseudonym", String(32)),
    Column("region", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("status", String(16), nullable=False),  # open claimed confirmed dismissed reported
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("explanation", Text),  # JSON: risk factor -> contribution (numbers only)
    Column("minor_to_minor", Boolean, nullable=False, default=False),
    Column("claimed_by", String(64)),
    Column("claimed_at", Float),
    Column("decided_by", String(64)),
    Column("decided_at", Float),
    Column("decision_reason", String(64)),
)
evidence = Table(
    "evidence", metadata,
    Column("case_id", String(32), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
)
case_keys = Table(
    "case_keys", metadata,
    Column("case_id", String(32), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
)
audit_log = Table(
    "audit_log", metadata,
    Column("seq", Integer, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(32), nullable=False),
    Column("case_id", String(32)),
    Column("detail", Text, nullable=False),  # JSON: numbers, codes, pseudonyms
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
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
    Column("re_reviewed_by", String(64)),
    Column("re_review_outcome", String(16)),  # confirm / dismiss
    Column("decided_by", String(64)),
    Column("decided_at", Float),
)
# Per year and pseudonymous account: flags and confirmations, for the annual report's
# error rate (B3/A3). Rows of a year are deleted once its report is closed.
flag_accounts = Table(
    "flag_accounts", metadata,
    Column("year", Integer, primary_key=True),
    Column("subject_pseudonym", String(32), primary_key=True),
    Column("flags", Integer, nullable=False),
    Column("confirmed", Integer, nullable=False),
    Column("dismissed", Integer, nullable=False),
)


# The chain's head (last seq and hash): deleting the newest entries is detected too.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
)


def _migration_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[cases, evidence, case_keys, audit_log, counters])


def _migration_2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[complaints, flag_accounts])


def _migration_3(conn: Connection) -> None:
    metadata.create_all(conn, tables=[audit_head])
    last = conn.execute(select(audit_log.c.seq, audit_log.c.hash)
                        .order_by(audit_log.c.seq.desc()).limit(1)).first()
    conn.execute(insert(audit_head).values(id=1, seq=last.seq if last else 0,
                                           hash=last.hash if last else GENESIS))


MIGRATIONS: tuple[tuple[int, Callable[[Connection], None]], ...] = (
    (1, _migration_1), (2, _migration_2), (3, _migration_3))


def _entry_hash(prev: str, entry: Mapping[str, Any]) -> str:
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode()).hexdigest()


class Store:
    """A guard store at a SQLAlchemy URL (default: a SQLite file).

    >>> store = Store("sqlite://")
    >>> store.migrate()  # the schema version
    3
    """

    def __init__(self, url: str = "sqlite:///guard.db", *, engine: Engine | None = None,
                 create: bool = False) -> None:
        self.url = url
        if engine is None and not create and url.startswith("sqlite:///"):
            from pathlib import Path

            path = url[len("sqlite:///"):]
            if path and not Path(path).exists():
                raise StoreError(Errors.G128.format(url=url))
        self.engine = engine or self._make_engine(url)
        if create:
            self.migrate()

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                if ":memory:" not in url and url != "sqlite://":
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

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it holds the write lock from its start)."""
        with self.engine.connect() as conn:
            conn.execution_options(guard_write=True)
            with conn.begin():
                yield conn

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        with self.write() as conn:
            metadata.create_all(conn, tables=[schema_version])
            current = conn.execute(select(schema_version.c.version)).scalar() or 0
            for version, step in MIGRATIONS:
                if version > current:
                    step(conn)
                    current = version
            conn.execute(schema_version.delete())
            conn.execute(insert(schema_version).values(version=current))
        return current

    # -- audit log -------------------------------------------------------------------
    def audit(self, conn: Connection, *, actor: str, role: str, action: str,
              case_id: str | None = None, detail: Mapping[str, Any] | None = None) -> str:
        """Append one entry to the hash chain (inside the caller's transaction)."""
        head = conn.execute(select(audit_head).where(audit_head.c.id == 1)
                            .with_for_update()).first()  # serialises appenders
        prev = head.hash if head else GENESIS
        entry = {"ts": round(time.time(), 6), "actor": actor, "role": role, "action": action,
                 "case_id": case_id, "detail": json.dumps(dict(detail or {}), sort_keys=True)}
        digest = _entry_hash(prev, entry)
        seq = conn.execute(insert(audit_log).values(**entry, prev_hash=prev, hash=digest)
                           ).inserted_primary_key[0]
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq,
                                                                          hash=digest))
        return digest

    def verify_audit_log(self) -> tuple[bool, int, int | None]:
        """Recompute the chain: (intact, entries, first broken seq or None)."""
        prev = GENESIS
        n = last_seq = 0
        with self.engine.connect() as conn:
            for row in conn.execute(select(audit_log).order_by(audit_log.c.seq)):
                entry = {"ts": row.ts, "actor": row.actor, "role": row.role,
                         "action": row.action, "case_id": row.case_id, "detail": row.detail}
                if row.prev_hash != prev or _entry_hash(prev, entry) != row.hash:
                    return False, n, row.seq
                prev = row.hash
                last_seq = row.seq
                n += 1
            head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        if head is not None and (head.hash != prev or (n and head.seq != last_seq)):
            return False, n, (last_seq + 1) if n else 1  # newest entries were removed
        return True, n, None

    # -- counters --------------------------------------------------------------------
    def bump(self, conn: Connection, name: str, by: int = 1) -> None:
        done = conn.execute(update(counters).where(counters.c.name == name)
                            .values(value=counters.c.value + by)).rowcount
        if not done:
            conn.execute(insert(counters).values(name=name, value=by))

    def counters(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r.name: r.value for r in conn.execute(select(counters))}
