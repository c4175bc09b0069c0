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
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update

from .._errors import Errors, StoreError
from .._scope import ScanPolicy
from ._cases import (
    FORGET,
    MAX_RETENTION_DAYS,
    Guard,
    account_stat,
    case_entries,
    case_key,
    shown,
)
from ._identity import Principal
from ._store import (
    STATS_COLUMNS,
    Store,
    accounts,
    audit_log,
    cases,
    complaints,
    flag_accounts,
    stats_counter,
)

__all__ = ["close_year", "complaint_queue", "decide_complaint", "file_complaint", "re_review",
           "record_scan", "report_markdown", "transparency_report", "user_notice",
           "view_complaint_evidence"]

NOTICES = Path(__file__).parent / "data" / "notices.json"
COMPLAINT_WINDOW_DAYS = 183  # at least six months after the decision (Art 3(1)(g)(iv))
_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def file_complaint(guard: Guard, case_id: str, *, user_id: str | None = None,
                   channel: str | None = None, principal: Principal | None = None,
                   window_days: int = COMPLAINT_WINDOW_DAYS) -> str:
    """Register a complaint about a confirmed or reported case; returns its id.

    Who lodged it is recorded: the affected user's id (kept as a pseudonym) or the channel
    it came through (``in_app``, ``email``, ...); ``principal`` is the staff member who
    entered it, if any. One complaint per case is open at a time (G116), accepted for at
    least six months after the decision, by this host's clock (no caller can move it).
    """
    case_id = case_key(case_id)
    if window_days < COMPLAINT_WINDOW_DAYS:
        raise StoreError(Errors.G126.format(days=COMPLAINT_WINDOW_DAYS))
    if (user_id is None) == (channel is None):
        raise StoreError(Errors.G137)
    if channel is not None and not (isinstance(channel, str) and _CHANNEL.match(channel)):
        raise StoreError(Errors.G129.format(what="A channel",
                                            expected="1 to 32 lower-case letters, digits, _"))
    if user_id is not None:
        _, skeys = guard._need_keys()
        lodged_by = "user:" + skeys.pseudonym(str(user_id))
    else:
        lodged_by = f"channel:{channel}"
    cid = uuid.uuid4().hex
    with guard.store.write() as conn:
        who = (guard._principal(conn, principal, "reviewer", "supervisor")
               if principal is not None else ("user", "user"))
        row = conn.execute(select(cases.c.status, cases.c.decided_at, cases.c.open_complaint)
                           .where(cases.c.id == case_id).with_for_update()).first()
        if row is None or row.status not in ("confirmed", "reported"):
            raise StoreError(Errors.G120.format(case_id=shown(case_id)))
        if row.open_complaint is not None:
            raise StoreError(Errors.G116.format(case_id=shown(case_id),
                                                complaint_id=row.open_complaint))
        now = time.time()
        if now - row.decided_at > window_days * 86400.0:
            raise StoreError(Errors.G127.format(days=window_days, case_id=shown(case_id)))
        if conn.execute(update(cases).where(cases.c.id == case_id,
                                            cases.c.open_complaint.is_(None))
                        .values(open_complaint=cid)).rowcount != 1:
            raise StoreError(Errors.G117.format(case_id=shown(case_id), status=row.status))
        conn.execute(insert(complaints).values(
            id=cid, case_id=case_id, received_at=now, status="open",
            lodged_by=lodged_by,
            registered_by=who.account_id if isinstance(who, Principal) else None))
        guard._log(conn, who, "complaint_received", case_id,
                   {"complaint": cid, "lodged_by": lodged_by.split(":")[0]},
                   counters={"complaints.received": 1})
    return cid


def complaint_queue(guard: Guard, principal: Principal) -> list[dict[str, Any]]:
    """Complaints awaiting a re-review (for reviewers) or a decision (for supervisors),
    oldest first, without content, and whether this person may act on each."""
    with guard.store.engine.connect() as conn:
        p = guard._principal(conn, principal, "reviewer", "supervisor")
        wanted = "open" if p.role == "reviewer" else "re_reviewed"
        rows = conn.execute(select(complaints, cases.c.decided_by.label("case_decider"))
                            .join(cases, cases.c.id == complaints.c.case_id)
                            .where(complaints.c.status == wanted)
                            .order_by(complaints.c.received_at)).all()

    def may(r: Any) -> bool:
        if p.role == "reviewer":
            return r.case_decider != p.account_id and r.viewed_by in (None, p.account_id)
        return p.account_id not in (r.case_decider, r.re_reviewed_by)
    return [{"complaint_id": r.id, "case_id": r.case_id, "received_at": r.received_at,
             "status": r.status, "lodged_by": r.lodged_by.split(":")[0],
             "re_review_outcome": r.re_review_outcome, "may_act": may(r)} for r in rows]


def _complaint(conn: Any, complaint_id: str, status: str, error: str) -> Any:
    c = conn.execute(select(complaints).where(complaints.c.id == complaint_id)
                     .with_for_update()).first()
    if c is None or c.status != status:
        raise StoreError(getattr(Errors, error).format(complaint_id=shown(complaint_id)))
    return c


def _decider(conn: Any, case_id: str) -> str | None:
    return conn.execute(select(cases.c.decided_by).where(cases.c.id == case_id)).scalar()


def view_complaint_evidence(guard: Guard, complaint_id: str, principal: Principal
                            ) -> dict[str, Any]:
    """The evidence of a complained-about case, for its re-reviewer (another reviewer
    than the one who decided); audited in the transaction that decrypts it."""
    with guard.store.write() as conn:
        p = guard._principal(conn, principal, "reviewer")
        c = _complaint(conn, complaint_id, "open", "G122")
        if _decider(conn, c.case_id) == p.account_id:
            raise StoreError(Errors.G123)
        holder = c.viewed_by
        gone = holder not in (None, p.account_id) and conn.execute(
            select(accounts.c.status).where(accounts.c.id == holder)).scalar() != "active"
        if holder not in (None, p.account_id) and not gone:
            raise StoreError(Errors.G117.format(case_id=shown(c.case_id), status="open"))
        if conn.execute(update(complaints).where(
                complaints.c.id == complaint_id, complaints.c.status == "open",
                complaints.c.viewed_by.is_(None) | (complaints.c.viewed_by == holder))
                .values(viewed_by=p.account_id)).rowcount != 1:
            raise StoreError(Errors.G117.format(case_id=shown(c.case_id), status="open"))
        plain = guard._decrypt(conn, c.case_id)
        detail = {"complaint": complaint_id} | ({"taken_over_from": holder} if gone else {})
        guard._log(conn, p, "evidence_viewed", c.case_id, detail)
    return plain


def re_review(guard: Guard, complaint_id: str, principal: Principal, outcome: str) -> None:
    """Another reviewer (never the one who decided), having viewed the evidence, reviews
    the case again: ``confirm`` or ``dismiss``."""
    if outcome not in ("confirm", "dismiss"):
        raise StoreError(Errors.G121)
    with guard.store.write() as conn:
        p = guard._principal(conn, principal, "reviewer")
        c = _complaint(conn, complaint_id, "open", "G122")
        if _decider(conn, c.case_id) == p.account_id:
            raise StoreError(Errors.G123)
        rows = case_entries(conn, guard._akey(), c.case_id) or []
        viewed_in_log = any(
            r.action == "evidence_viewed" and r.actor == p.account_id
            and json.loads(r.detail or "{}").get("complaint") == complaint_id for r in rows)
        if c.viewed_by != p.account_id or not viewed_in_log:
            raise StoreError(Errors.G138.format(complaint_id=shown(complaint_id)))
        if conn.execute(update(complaints).where(complaints.c.id == complaint_id,
                                                 complaints.c.status == "open")
                        .values(status="re_reviewed", re_reviewed_by=p.account_id,
                                re_review_outcome=outcome)).rowcount != 1:
            raise StoreError(Errors.G122.format(complaint_id=shown(complaint_id)))
        guard._log(conn, p, "complaint_re_reviewed", c.case_id,
                   {"complaint": complaint_id, "outcome": outcome})


def decide_complaint(guard: Guard, complaint_id: str, principal: Principal,
                     outcome: str | None = None) -> str:
    """A supervisor (neither the case's reviewer nor the re-reviewer) decides the complaint
    after its re-review: ``upheld`` (the user is reinstated; the evidence, pseudonyms,
    score and explanation are destroyed, and so is the complainant's pseudonym) or
    ``rejected`` (the decision stands). ``outcome`` None follows the re-review (a
    dismissal upholds, a confirmation rejects); a supervisor may decide against it, and
    the audit entry then records both."""
    if outcome not in (None, "upheld", "rejected"):
        raise StoreError(Errors.G129.format(what="outcome", expected="upheld or rejected"))
    with guard.store.write() as conn:
        p = guard._principal(conn, principal, "supervisor")
        c = _complaint(conn, complaint_id, "re_reviewed", "G124")
        case = conn.execute(select(cases).where(cases.c.id == c.case_id)
                            .with_for_update()).first()
        if case is None:
            raise StoreError(Errors.G103.format(case_id=shown(c.case_id)))
        if p.account_id in (case.decided_by, c.re_reviewed_by):
            raise StoreError(Errors.G115)
        advised = "upheld" if c.re_review_outcome == "dismiss" else "rejected"
        status = outcome or advised
        upheld = status == "upheld"
        values_c: dict[str, Any] = {"status": status, "decided_by": p.account_id,
                                    "decided_at": time.time()}
        if conn.execute(update(complaints).where(complaints.c.id == complaint_id,
                                                 complaints.c.status == "re_reviewed")
                        .values(**values_c)).rowcount != 1:
            raise StoreError(Errors.G124.format(complaint_id=shown(complaint_id)))
        if upheld:  # no suspicion remains: nor does any complainant's pseudonym, in this
            conn.execute(update(complaints).where(  # complaint or an earlier one
                complaints.c.case_id == c.case_id, complaints.c.lodged_by.like("user:%"))
                .values(lodged_by="user:-"))
        values: dict[str, Any] = {"open_complaint": None}
        stats: dict[str, int] = {}
        if upheld:
            values |= {"status": "reinstated", **FORGET}
            guard._shred(conn, c.case_id)
            stats = account_stat(guard, conn, case.stats_ref, case.created_at, confirmed=-1,
                                 dismissed=1)
        conn.execute(update(cases).where(cases.c.id == c.case_id).values(**values))
        detail: dict[str, Any] = {"complaint": complaint_id}
        if status != advised:
            detail["re_review"] = c.re_review_outcome  # decided against the re-review
        guard._log(conn, p, f"complaint_{status}", c.case_id, detail,
                   counters={f"complaints.{status}": 1, **stats})
    if upheld:
        guard.store.truncate_wal()
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


def record_scan(guard: Guard, policy: ScanPolicy, *, year: int | None = None) -> None:
    """Persist a scan policy's counters (bytes scanned by region, refusals) for a year, as
    one audited entry."""
    year = year or datetime.now(UTC).year
    changes = {f"{year}.{name}": int(value) for name, value in policy.counters().items()
               if value}
    if changes:
        with guard.store.write() as conn:
            guard._log(conn, ("system", "system"), "scan_recorded", counters=changes)
    policy.reset()


def transparency_report(store: Store, year: int, *, organisations: tuple[str, ...] = (),
                        retention_days: int = MAX_RETENTION_DAYS) -> dict[str, Any]:
    """The annual report's figures for ``year`` (aggregates only)."""
    start = datetime(year, 1, 1, tzinfo=UTC).timestamp()
    end = datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()
    counters = store.counters()
    fa = flag_accounts.c
    with store.engine.connect() as conn:  # counted in the database
        actions = {a: int(n) for a, n in conn.execute(
            select(audit_log.c.action, func.count())
            .where(audit_log.c.ts >= start, audit_log.c.ts < end)
            .group_by(audit_log.c.action))}
        a3, b3, c3 = conn.execute(select(
            func.count(),
            func.sum(case(((fa.dismissed > 0) & (fa.confirmed <= 0), 1), else_=0)),
            func.sum(case((fa.dismissed + fa.confirmed > 0, 1), else_=0)))
            .where(fa.year == year)).one()
    a3, b3, c3 = int(a3), int(b3 or 0), int(c3 or 0)
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


def close_year(guard: Guard, year: int) -> int:
    """After the year's report: delete its per-account statistics (pseudonyms), as one
    audited entry; returns how many accounts' rows were deleted."""
    guard._akey()
    with guard.store.write() as conn:
        rows = conn.execute(select(flag_accounts).where(flag_accounts.c.year == year)
                            .with_for_update()).all()
        conn.execute(delete(flag_accounts).where(flag_accounts.c.year == year))
        sums = {stats_counter(year, c): -sum(getattr(r, c) for r in rows)
                for c in STATS_COLUMNS}
        guard._log(conn, ("system", "system"), "year_closed",
                   detail={"year": year, "accounts": len(rows)}, counters=sums)
    return len(rows)
