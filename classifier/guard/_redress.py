"""Complaints and re-review, user notices, and the annual transparency report.

- Art 3(1)(g)(iv), Art 5: a user affected by a confirmed case can complain; another
  reviewer re-reviews, a supervisor decides; an upheld complaint reinstates the user and
  destroys the evidence.
- Users are told of the decision and of every redress avenue (notices modelled on the
  DSA's statement of reasons, Art 17); notices carry no message content.
- Art 3(1)(g)(vii), Implementing Regulation 2024/2916: the annual report, built from
  counters, the audit log and per-account flag statistics (error rate = B3/A3, accounts
  flagged automatically then cleared by human review over accounts flagged).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from .._errors import Errors, StoreError
from .._scope import ScanPolicy
from ._cases import MAX_RETENTION_DAYS, Actor, Guard, _account_stat, _require, _shred
from ._store import Store, audit_log, cases, complaints, flag_accounts

__all__ = ["close_year", "decide_complaint", "file_complaint", "re_review", "record_scan",
           "report_markdown", "transparency_report", "user_notice"]

NOTICES = Path(__file__).parent / "data" / "notices.json"


COMPLAINT_WINDOW_DAYS = 183  # at least six months after the decision (Art 3(1)(g)(iv))


def file_complaint(guard: Guard, case_id: str, *, now: float | None = None,
                   window_days: int = COMPLAINT_WINDOW_DAYS) -> str:
    """Register a complaint about a confirmed or reported case; returns its id.

    Complaints are accepted for at least six months after the decision."""
    if window_days < COMPLAINT_WINDOW_DAYS:
        raise StoreError(Errors.G126.format(days=COMPLAINT_WINDOW_DAYS))
    now = time.time() if now is None else now
    with guard.store.write() as conn:
        row = conn.execute(select(cases.c.status, cases.c.decided_at)
                           .where(cases.c.id == case_id)).first()
        if row is None or row.status not in ("confirmed", "reported"):
            raise StoreError(Errors.G120.format(case_id=case_id))
        if now - row.decided_at > window_days * 86400.0:
            raise StoreError(Errors.G127.format(days=window_days, case_id=case_id))
        cid = uuid.uuid4().hex
        conn.execute(insert(complaints).values(id=cid, case_id=case_id, received_at=time.time(),
                                               status="open"))
        guard.store.bump(conn, "complaints.received")
        guard.store.audit(conn, actor="user", role="user", action="complaint_received",
                          case_id=case_id, detail={"complaint": cid})
    return cid


def re_review(guard: Guard, complaint_id: str, reviewer: Actor, outcome: str) -> None:
    """Another reviewer (never the one who decided) reviews the case again."""
    _require(reviewer, "reviewer")
    if outcome not in ("confirm", "dismiss"):
        raise StoreError(Errors.G121)
    with guard.store.write() as conn:
        c = conn.execute(select(complaints).where(complaints.c.id == complaint_id)).first()
        if c is None or c.status != "open":
            raise StoreError(Errors.G122.format(complaint_id=complaint_id))
        decided_by = conn.execute(select(cases.c.decided_by)
                                  .where(cases.c.id == c.case_id)).scalar()
        if decided_by == reviewer.name:
            raise StoreError(Errors.G123)
        conn.execute(update(complaints).where(complaints.c.id == complaint_id).values(
            status="re_reviewed", re_reviewed_by=reviewer.name, re_review_outcome=outcome))
        guard.store.audit(conn, actor=reviewer.name, role=reviewer.role,
                          action="complaint_re_reviewed", case_id=c.case_id,
                          detail={"complaint": complaint_id, "outcome": outcome})


def decide_complaint(guard: Guard, complaint_id: str, supervisor: Actor) -> str:
    """A supervisor decides on the re-review: ``upheld`` (reinstated, evidence destroyed)
    or ``rejected``."""
    _require(supervisor, "supervisor")
    with guard.store.write() as conn:
        c = conn.execute(select(complaints).where(complaints.c.id == complaint_id)).first()
        if c is None or c.status != "re_reviewed":
            raise StoreError(Errors.G124.format(complaint_id=complaint_id))
        upheld = c.re_review_outcome == "dismiss"
        status = "upheld" if upheld else "rejected"
        conn.execute(update(complaints).where(complaints.c.id == complaint_id).values(
            status=status, decided_by=supervisor.name, decided_at=time.time()))
        if upheld:
            case = conn.execute(select(cases).where(cases.c.id == c.case_id)).first()
            _shred(conn, c.case_id)
            conn.execute(update(cases).where(cases.c.id == c.case_id)
                         .values(status="reinstated", explanation=None))
            _account_stat(conn, case.subject_pseudonym, case.created_at, confirmed=-1,
                          dismissed=1)
        guard.store.bump(conn, f"complaints.{status}")
        guard.store.audit(conn, actor=supervisor.name, role=supervisor.role,
                          action=f"complaint_{status}", case_id=c.case_id,
                          detail={"complaint": complaint_id})
    return status


def user_notice(kind: str, *, language: str = "en", **fields: str) -> str:
    """The notice to a user (decision, legal basis, redress avenues); no message content."""
    templates = json.loads(NOTICES.read_text(encoding="utf-8"))
    try:
        template = templates[language][kind]
    except KeyError:
        template = None
    if template is None:
        raise StoreError(Errors.G125.format(kind=kind, language=language))
    return "\n".join(template).format(**fields)


def record_scan(store: Store, policy: ScanPolicy, *, year: int | None = None) -> None:
    """Persist a scan policy's counters (bytes scanned by region, refusals) for a year."""
    year = year or datetime.now(UTC).year
    with store.write() as conn:
        for name, value in policy.counters().items():
            if value:
                store.bump(conn, f"{year}.{name}", int(value))
    policy.reset()


def transparency_report(store: Store, year: int, *, organisations: tuple[str, ...] = (),
                        retention_days: int = MAX_RETENTION_DAYS) -> dict[str, Any]:
    """The annual report's figures for ``year`` (aggregates only)."""
    start = datetime(year, 1, 1, tzinfo=UTC).timestamp()
    end = datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()
    counters = store.counters()
    with store.engine.connect() as conn:
        actions: dict[str, int] = {}
        for row in conn.execute(select(audit_log.c.action).where(audit_log.c.ts >= start,
                                                                 audit_log.c.ts < end)):
            actions[row.action] = actions.get(row.action, 0) + 1
        accounts = list(conn.execute(select(flag_accounts)
                                     .where(flag_accounts.c.year == year)))
    a3 = len(accounts)
    b3 = sum(1 for r in accounts if r.dismissed > 0 and r.confirmed <= 0)
    c3 = sum(1 for r in accounts if r.dismissed + r.confirmed > 0)
    prefix = f"{year}."
    scan = {k[len(prefix):]: v for k, v in counters.items() if k.startswith(prefix)}
    na = "N/A: no scan counters were recorded for this year (record_scan)"

    def scanned(key: str) -> Any:
        return scan.get(key, 0) if scan else na

    return {
        "year": year,
        "data_processed": {
            "bytes_of_text_scanned_eu": scanned("bytes_scanned.EU"),
            "bytes_of_text_scanned_non_eu": scanned("bytes_scanned.non-EU"),
            "conversations_scanned": scanned("conversations_scanned"),
            "refusals": {k[len("refused."):]: v for k, v in scan.items()
                         if k.startswith("refused.")},
            "messages_not_scanned_not_text": scanned("messages_not_scanned"),
        },
        "cases": {"identified": actions.get("case_opened", 0),
                  "confirmed_by_human_review": actions.get("case_confirmed", 0),
                  "dismissed_by_human_review": actions.get("case_dismissed", 0),
                  "reported": actions.get("report_exported", 0),
                  "deleted_at_retention_deadline": actions.get("case_purged", 0)},
        "complaints": {"received": actions.get("complaint_received", 0),
                       "upheld_reinstated": actions.get("complaint_upheld", 0),
                       "rejected": actions.get("complaint_rejected", 0)},
        "error_rate": {"accounts_flagged_A3": a3, "accounts_cleared_B3": b3,
                       "accounts_human_reviewed_C3": c3,
                       "B3_over_A3": b3 / a3 if a3 else "N/A: no account was flagged"},
        "retention_period_days": retention_days,
        "organisations_reported_to": (list(organisations) if organisations else
                                      "N/A: no organisation recorded"),
    }


def report_markdown(report: Mapping[str, Any]) -> str:
    """The annual report as Markdown (same figures as the JSON)."""
    lines = [f"# Transparency report {report['year']}", "",
             "Regulation (EU) 2021/1232 Art 3(1)(g)(vii); standard form of Implementing "
             "Regulation (EU) 2024/2916.", ""]
    for section, values in report.items():
        if section == "year":
            continue
        lines += [f"## {section.replace('_', ' ').capitalize()}", ""]
        if isinstance(values, Mapping):
            lines += ["| item | value |", "|---|---|"]
            for k, v in values.items():
                shown = json.dumps(v) if isinstance(v, Mapping) else v
                lines.append(f"| {k.replace('_', ' ')} | {shown} |")
        else:
            lines.append(str(values))
        lines.append("")
    return "\n".join(lines)


def close_year(store: Store, year: int) -> int:
    """After the report: delete the year's per-account statistics (pseudonyms)."""
    with store.write() as conn:
        return conn.execute(delete(flag_accounts).where(flag_accounts.c.year == year)).rowcount
