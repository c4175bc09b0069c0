"""Cases, human review and the report gate.

- :meth:`Guard.triage`: a flagged conversation becomes a case (pseudonymous ids, score,
  explanation, model version) with a minimal evidence excerpt (the messages that carried
  indicators and at most three before each), encrypted under a per-case data key. An
  unflagged conversation leaves nothing but counters.
- Review: a reviewer claims a case (never two at once, across processes), views the
  evidence (every view is audited) and confirms or dismisses it with a coded reason. A
  dismissal destroys the evidence at once (the wrapped key and the rows).
- :func:`export_report` is the only way to a :class:`Report`: it loads the case from the
  store, requires a supervisor, and re-checks the recorded human confirmation in the
  hash-chained audit log before it re-identifies the reported account.
- :meth:`Guard.purge_expired` deletes every case at its deadline (at most 12 months).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from .._errors import ConfigError, Errors, StoreError
from .._pipeline import ScoreResult
from .._text import EvidenceExcerpt
from ._crypto import Keys
from ._store import Store, audit_log, case_keys, cases, evidence, flag_accounts

__all__ = ["ROLES", "Actor", "Guard", "Report", "export_report"]

ROLES = ("reviewer", "supervisor", "auditor")
DISMISS_REASONS = ("no_solicitation", "peer_conversation", "adult_conversation",
                   "family_or_professional", "insufficient_evidence")
CONFIRM_REASONS = ("solicitation_of_a_child",)
MAX_RETENTION_DAYS = 365  # Art 3(1)(i): at most 12 months from identification
_EXPORT_GATE = object()


@dataclass(frozen=True)
class Actor:
    """A person acting on the guard: name (or staff id) and role."""

    name: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(Errors.E005.format(name="role", expected=f"one of {ROLES}",
                                                 got=repr(self.role)))


@dataclass(frozen=True)
class Report:
    """A report for law enforcement or a public-interest organisation (NCMEC-like fields).

    Only :func:`export_report` can make one."""

    fields: dict[str, Any]
    _gate: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self._gate is not _EXPORT_GATE:
            raise StoreError(Errors.G101)

    def __repr__(self) -> str:
        return f"Report(case_id={self.fields.get('case_id')!r})"

    def to_json(self) -> str:
        return json.dumps(self.fields, ensure_ascii=False, indent=2)


class Guard:
    """Triage, review and retention on a :class:`Store`.

    Parameters
    ----------
    store : Store
    keys : Keys
        The provider's master key; without one no evidence is ever stored.
    retention_days : int, default 365
        Deadline from identification; more than 365 is refused.
    """

    def __init__(self, store: Store, keys: Keys, *, retention_days: int = MAX_RETENTION_DAYS,
                 excerpt_before: int = 3) -> None:
        if not 0 < retention_days <= MAX_RETENTION_DAYS:
            raise StoreError(Errors.G102.format(limit=MAX_RETENTION_DAYS))
        if not isinstance(keys, Keys):
            raise StoreError(Errors.G001)
        self.store = store
        self.keys = keys
        self.retention_days = retention_days
        self.excerpt_before = excerpt_before

    # -- triage ----------------------------------------------------------------------
    def triage(self, result: ScoreResult, excerpt: EvidenceExcerpt, *,
               region: str = "EU") -> str | None:
        """Open a case for a flagged result, with its evidence excerpt encrypted (the
        pipeline's text boundary cut the excerpt). Returns the case id."""
        if not result.flagged:
            return None
        with self.store.write() as conn:
            case_id = uuid.uuid4().hex
            subject = result.subject or ""
            keep = range(excerpt.n_messages)
            wrapped, ciphertext = self.keys.seal(excerpt.plaintext, case_id.encode())
            now = time.time()
            conn.execute(insert(cases).values(
                id=case_id,
                conversation_pseudonym=self.keys.pseudonym(result.conversation_id),
                subject_pseudonym=self.keys.pseudonym(subject), region=region,
                created_at=now, expires_at=now + self.retention_days * 86400.0, status="open",
                score=float(result.score or 0.0), threshold=float(result.threshold or 0.0),
                model_version=str(result.model_version),
                explanation=json.dumps(dict(result.risk_factors)), minor_to_minor=False))
            conn.execute(insert(case_keys).values(case_id=case_id, wrapped_key=wrapped))
            conn.execute(insert(evidence).values(case_id=case_id, ciphertext=ciphertext))
            self.store.bump(conn, "cases.opened")
            _account_stat(conn, self.keys.pseudonym(subject), now, flags=1)
            self.store.audit(conn, actor="system", role="system", action="case_opened",
                             case_id=case_id, detail={"score": round(float(result.score or 0),
                                                                      6),
                                                      "excerpt_messages": len(keep)})
            return case_id

    # -- review ----------------------------------------------------------------------
    def claim(self, case_id: str, actor: Actor) -> bool:
        """Claim an open case; False if someone else holds it or it is not open."""
        _require(actor, "reviewer")
        with self.store.write() as conn:
            got = conn.execute(update(cases).where(cases.c.id == case_id,
                                                   cases.c.status == "open",
                                                   cases.c.claimed_by.is_(None))
                               .values(status="claimed", claimed_by=actor.name,
                                       claimed_at=time.time())).rowcount
            if got:
                self.store.audit(conn, actor=actor.name, role=actor.role, action="case_claimed",
                                 case_id=case_id)
            return bool(got)

    def _held(self, conn: Any, case_id: str, actor: Actor) -> Any:
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        if row is None:
            raise StoreError(Errors.G103.format(case_id=case_id))
        if row.status not in ("open", "claimed"):
            raise StoreError(Errors.G112.format(case_id=case_id, status=row.status))
        if row.status != "claimed" or row.claimed_by != actor.name:
            raise StoreError(Errors.G104.format(case_id=case_id))
        return row

    def view_evidence(self, case_id: str, actor: Actor) -> dict[str, Any]:
        """Decrypt the evidence for the reviewer holding the case; the view is audited."""
        _require(actor, "reviewer")
        with self.store.write() as conn:
            self._held(conn, case_id, actor)
            plain = self._open(conn, case_id)
            self.store.audit(conn, actor=actor.name, role=actor.role, action="evidence_viewed",
                             case_id=case_id)
        return plain

    def _open(self, conn: Any, case_id: str) -> dict[str, Any]:
        key = conn.execute(select(case_keys.c.wrapped_key)
                           .where(case_keys.c.case_id == case_id)).scalar()
        blob = conn.execute(select(evidence.c.ciphertext)
                            .where(evidence.c.case_id == case_id)).scalar()
        if key is None or blob is None:
            raise StoreError(Errors.G105.format(case_id=case_id))
        return json.loads(self.keys.open(key, blob, case_id.encode()))

    def decide(self, case_id: str, actor: Actor, decision: str, reason: str, *,
               minor_to_minor: bool = False) -> None:
        """Confirm or dismiss a claimed case. A dismissal destroys its evidence at once."""
        _require(actor, "reviewer")
        allowed = CONFIRM_REASONS if decision == "confirm" else DISMISS_REASONS
        if decision not in ("confirm", "dismiss") or reason not in allowed:
            raise StoreError(Errors.G106.format(confirm=", ".join(CONFIRM_REASONS),
                                                dismiss=", ".join(DISMISS_REASONS)))
        with self.store.write() as conn:
            row = self._held(conn, case_id, actor)
            status = "confirmed" if decision == "confirm" else "dismissed"
            values: dict[str, Any] = {"status": status, "decided_by": actor.name,
                                      "decided_at": time.time(), "decision_reason": reason,
                                      "minor_to_minor": bool(minor_to_minor)}
            if decision == "dismiss":
                _shred(conn, case_id)
                values["explanation"] = None
                self.store.bump(conn, "cases.dismissed")
            else:
                self.store.bump(conn, "cases.confirmed")
            _account_stat(conn, row.subject_pseudonym, row.created_at,
                          **{"confirmed" if decision == "confirm" else "dismissed": 1})
            conn.execute(update(cases).where(cases.c.id == case_id).values(**values))
            self.store.audit(conn, actor=actor.name, role=actor.role, action=f"case_{status}",
                             case_id=case_id, detail={"reason": reason,
                                                      "minor_to_minor": bool(minor_to_minor)})

    # -- retention -------------------------------------------------------------------
    def purge_expired(self, now: float | None = None) -> int:
        """Delete every case whose deadline has passed (evidence, key and row)."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            ids = [r.id for r in conn.execute(select(cases.c.id)
                                              .where(cases.c.expires_at <= now))]
            for case_id in ids:
                _shred(conn, case_id)
                conn.execute(delete(cases).where(cases.c.id == case_id))
                self.store.audit(conn, actor="system", role="system", action="case_purged",
                                 case_id=case_id)
            if ids:
                self.store.bump(conn, "cases.purged", len(ids))
        return len(ids)


def _account_stat(conn: Any, pseudonym: str, ts: float, *, flags: int = 0, confirmed: int = 0,
                  dismissed: int = 0) -> None:
    year = datetime.fromtimestamp(ts, UTC).year
    key = (flag_accounts.c.year == year) & (flag_accounts.c.subject_pseudonym == pseudonym)
    done = conn.execute(update(flag_accounts).where(key).values(
        flags=flag_accounts.c.flags + flags, confirmed=flag_accounts.c.confirmed + confirmed,
        dismissed=flag_accounts.c.dismissed + dismissed)).rowcount
    if not done:
        conn.execute(insert(flag_accounts).values(year=year, subject_pseudonym=pseudonym,
                                                  flags=flags, confirmed=confirmed,
                                                  dismissed=dismissed))


def _shred(conn: Any, case_id: str) -> None:
    conn.execute(delete(case_keys).where(case_keys.c.case_id == case_id))
    conn.execute(delete(evidence).where(evidence.c.case_id == case_id))


def _require(actor: Actor, role: str) -> None:
    if not isinstance(actor, Actor) or actor.role != role:
        raise StoreError(Errors.G107.format(role=role))


def export_report(guard: Guard, case_id: str, actor: Actor) -> Report:
    """Export a report for a confirmed case: the one path to a :class:`Report`.

    Requires a supervisor; loads the case from the store; re-checks that the audit log is
    intact and holds the reviewer's confirmation of this case (a status edited in the
    database alone is not enough); then re-identifies the reported account.
    """
    _require(actor, "supervisor")
    store = guard.store
    intact, _, broken = store.verify_audit_log()
    if not intact:
        raise StoreError(Errors.G108.format(entry=broken))
    with store.write() as conn:
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        if row is None:
            raise StoreError(Errors.G103.format(case_id=case_id))
        if row.status != "confirmed" or not row.decided_by:
            raise StoreError(Errors.G109.format(case_id=case_id, status=row.status))
        confirmed = conn.execute(select(audit_log.c.seq).where(
            audit_log.c.case_id == case_id, audit_log.c.action == "case_confirmed",
            audit_log.c.actor == row.decided_by, audit_log.c.role == "reviewer")).first()
        if confirmed is None:
            raise StoreError(Errors.G110.format(case_id=case_id))
        if row.decided_by == actor.name:
            raise StoreError(Errors.G111)
        plain = guard._open(conn, case_id)
        last = plain["messages"][-1]["ts"] if plain["messages"] else None
        fields = {
            "case_id": case_id,
            "incident_type": "Online Enticement of Children",
            "incident_time": last,
            "reported_account": plain["subject"],
            "annotations": {"minor_to_minor_interaction": bool(row.minor_to_minor),
                            "human_reviewed_content": True},
            "human_review": {"decision": "confirmed", "reason": row.decision_reason,
                             "decided_at": datetime.fromtimestamp(row.decided_at, UTC)
                             .isoformat()},
            "detection": {"model_version": row.model_version, "score": row.score,
                          "threshold": row.threshold},
            "evidence_excerpt": plain["messages"],
            "exported_at": datetime.now(UTC).isoformat(),
        }
        conn.execute(update(cases).where(cases.c.id == case_id).values(status="reported"))
        store.bump(conn, "reports.exported")
        store.audit(conn, actor=actor.name, role=actor.role, action="report_exported",
                    case_id=case_id)
    return Report(fields, _EXPORT_GATE)
