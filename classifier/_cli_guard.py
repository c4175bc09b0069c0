"""The guard's commands: review, report, complaint, purge, audit verify, transparency.

Every command acts as ``--actor NAME --role ROLE`` (roles are enforced in the library;
the auditor sees aggregates and the audit log, never content). Evidence needs the
provider's master key in ``$SOLICITATION_MASTER_KEY``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._errors import Errors

DEFAULT_STORE = "sqlite:///guard.db"


def add_parsers(sub: Any) -> None:
    def common(p: argparse.ArgumentParser, *, actor: bool = True) -> None:
        p.add_argument("--store", default=DEFAULT_STORE, help="SQLAlchemy URL of the store")
        if actor:
            p.add_argument("--actor", required=True, help="your name or staff id")
            p.add_argument("--role", required=True, choices=("reviewer", "supervisor",
                                                             "auditor"))

    review = sub.add_parser("review", help="the human review queue").add_subparsers(
        dest="action", required=True)
    common(review.add_parser("list", help="open and claimed cases (no content)"))
    for name in ("claim", "show"):
        p = review.add_parser(name, help=f"{name} a case")
        p.add_argument("case")
        common(p)
    p = review.add_parser("decide", help="confirm or dismiss a claimed case")
    p.add_argument("case")
    p.add_argument("decision", choices=("confirm", "dismiss"))
    p.add_argument("--reason", required=True)
    p.add_argument("--minor-to-minor", action="store_true")
    common(p)
    report = sub.add_parser("report", help="export a report of a confirmed case")
    report_sub = report.add_subparsers(dest="action", required=True)
    p = report_sub.add_parser("export")
    p.add_argument("case")
    p.add_argument("-o", "--output", required=True)
    common(p)
    complaint = sub.add_parser("complaint", help="complaints and re-review").add_subparsers(
        dest="action", required=True)
    p = complaint.add_parser("lodge", help="register a user's complaint about a case")
    p.add_argument("case")
    common(p, actor=False)
    p = complaint.add_parser("review", help="re-review by another reviewer")
    p.add_argument("complaint")
    p.add_argument("outcome", choices=("confirm", "dismiss"))
    common(p)
    p = complaint.add_parser("decide", help="a supervisor decides the complaint")
    p.add_argument("complaint")
    common(p)
    common(sub.add_parser("purge", help="delete every case past its retention deadline"),
           actor=False)
    audit = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="action", required=True)
    common(audit.add_parser("verify", help="recompute the chain"), actor=False)
    p = sub.add_parser("transparency", help="the annual transparency report (md + json)")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("-o", "--output", required=True, help="path prefix: PREFIX.md, PREFIX.json")
    p.add_argument("--organisation", action="append", default=[])
    common(p, actor=False)


def run(args: argparse.Namespace) -> int:
    from .guard import Actor, MasterKeyError, Store, StoreError

    store = Store(args.store)
    store.migrate()
    actor = Actor(args.actor, args.role) if getattr(args, "actor", None) else None
    try:
        return _run(args, store, actor)
    except (StoreError, MasterKeyError) as err:
        print(f"refused: {err}", file=sys.stderr)
        return 1


def _guard(store: Any) -> Any:
    from .guard import Guard, Keys

    return Guard(store, Keys.from_env())


def _run(args: argparse.Namespace, store: Any, actor: Any) -> int:
    from sqlalchemy import select

    from .guard import (
        StoreError,
        decide_complaint,
        export_report,
        file_complaint,
        re_review,
        transparency_report,
    )
    from .guard._redress import report_markdown
    from .guard._store import cases

    cmd = args.command
    if cmd == "audit":
        ok, n, broken = store.verify_audit_log()
        print(f"audit log {'intact' if ok else f'BROKEN at entry {broken}'}: {n} entries "
              "verified", file=sys.stderr)
        return 0 if ok else 1
    if cmd == "purge":
        n = _guard(store).purge_expired()
        print(f"{n} cases past their retention deadline purged", file=sys.stderr)
        return 0
    if cmd == "transparency":
        report = transparency_report(store, args.year, organisations=tuple(args.organisation))
        Path(f"{args.output}.json").write_text(json.dumps(report, indent=2) + "\n")
        Path(f"{args.output}.md").write_text(report_markdown(report))
        print(f"transparency report {args.year}: {args.output}.md, {args.output}.json",
              file=sys.stderr)
        return 0
    if cmd == "complaint" and args.action == "lodge":
        cid = file_complaint(_guard(store), args.case)
        print(cid)
        return 0
    assert actor is not None
    guard = _guard(store)
    if cmd == "review" and args.action == "list":
        if actor.role == "auditor":
            raise StoreError(Errors.G107.format(role="reviewer or supervisor"))
        with store.engine.connect() as conn:
            rows = conn.execute(select(cases.c.id, cases.c.status, cases.c.score,
                                       cases.c.created_at, cases.c.claimed_by)
                                .where(cases.c.status.in_(("open", "claimed")))
                                .order_by(cases.c.score.desc()))
            for r in rows:
                when = datetime.fromtimestamp(r.created_at, UTC).isoformat(timespec="minutes")
                print(f"{r.id}  {r.status:<8} score {r.score:.4f}  opened {when}  "
                      f"{r.claimed_by or ''}")
        return 0
    if cmd == "review" and args.action == "claim":
        ok = guard.claim(args.case, actor)
        print("claimed" if ok else "not claimed: held by someone else or not open",
              file=sys.stderr)
        return 0 if ok else 1
    if cmd == "review" and args.action == "show":
        print(json.dumps(guard.view_evidence(args.case, actor), indent=2, ensure_ascii=False))
        return 0
    if cmd == "review" and args.action == "decide":
        guard.decide(args.case, actor, args.decision, args.reason,
                     minor_to_minor=args.minor_to_minor)
        print(f"case {args.case}: {args.decision}ed", file=sys.stderr)
        return 0
    if cmd == "report":
        report = export_report(guard, args.case, actor)
        Path(args.output).write_text(report.to_json() + "\n")
        print(f"report of case {args.case} written to {args.output}", file=sys.stderr)
        return 0
    if cmd == "complaint" and args.action == "review":
        re_review(guard, args.complaint, actor, args.outcome)
        return 0
    if cmd == "complaint" and args.action == "decide":
        print(decide_complaint(guard, args.complaint, actor))
        return 0
    return 2  # pragma: no cover
