"""The guard's commands: review, report, complaint, purge, audit verify, transparency.

Every command acts as ``--actor NAME --role ROLE`` (roles are enforced in the library;
the auditor sees aggregates and the audit log, never content). Evidence needs the
provider's master key (``--master-key-file``, ``$SOLICITATION_MASTER_KEY_FILE`` or
``$SOLICITATION_MASTER_KEY``). SQLAlchemy is imported only when one of them runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ._cli_base import EXIT_FAILED, EXIT_OK, open_output, say, typer_app, write_private
from ._errors import Errors

DEFAULT_STORE = "sqlite:///guard.db"

StoreOpt = Annotated[str, typer.Option("--store", help="SQLAlchemy URL of the guard store")]
ActorOpt = Annotated[str, typer.Option("--actor", help="your name or staff id")]
RoleOpt = Annotated[str, typer.Option("--role", help="reviewer, supervisor or auditor")]
KeyOpt = Annotated[Path | None, typer.Option("--master-key-file", help=(
    "file holding the master key (default: $SOLICITATION_MASTER_KEY_FILE or "
    "$SOLICITATION_MASTER_KEY)"))]

review_app = typer_app(help="The human review queue.")
report_app = typer_app(help="Export a report of a confirmed case.")
complaint_app = typer_app(help="Complaints and re-review.")
audit_app = typer_app(help="The audit log.")


def register(app: Any) -> None:
    """Add the guard's commands to the main application."""
    app.add_typer(review_app, name="review")
    app.add_typer(report_app, name="report")
    app.add_typer(complaint_app, name="complaint")
    app.add_typer(audit_app, name="audit")
    app.command("purge")(purge)
    app.command("transparency")(transparency)


def _store(url: str) -> Any:
    from .guard import Store

    store = Store(url)
    store.migrate()
    return store


def _guard(url: str, key_file: Path | None) -> Any:
    from .guard import Guard, Keys

    keys = Keys.load(key_file)
    return Guard(_store(url), keys)


def _actor(name: str, role: str) -> Any:
    from .guard import Actor

    return Actor(name, role)


@review_app.command("list")
def review_list(actor: ActorOpt, role: RoleOpt, store: StoreOpt = DEFAULT_STORE) -> int:
    """Open and claimed cases (no content)."""
    from sqlalchemy import select

    from .guard import StoreError
    from .guard._store import cases

    who = _actor(actor, role)
    if who.role == "auditor":
        raise StoreError(Errors.G107.format(role="reviewer or supervisor"))
    s = _store(store)
    with s.engine.connect() as conn:
        rows = conn.execute(select(cases.c.id, cases.c.status, cases.c.score,
                                   cases.c.created_at, cases.c.claimed_by)
                            .where(cases.c.status.in_(("open", "claimed")))
                            .order_by(cases.c.created_at))
        for r in rows:
            when = datetime.fromtimestamp(r.created_at, UTC).isoformat(timespec="minutes")
            print(f"{r.id}  {r.status:<8} score {r.score:.4f}  opened {when}  "
                  f"{r.claimed_by or ''}")
    return EXIT_OK


@review_app.command("claim")
def review_claim(case: str, actor: ActorOpt, role: RoleOpt, store: StoreOpt = DEFAULT_STORE,
                 master_key_file: KeyOpt = None) -> int:
    """Claim an open case."""
    ok = _guard(store, master_key_file).claim(case, _actor(actor, role))
    say("claimed" if ok else "not claimed: held by someone else or not open")
    return EXIT_OK if ok else EXIT_FAILED


@review_app.command("show")
def review_show(case: str, actor: ActorOpt, role: RoleOpt, store: StoreOpt = DEFAULT_STORE,
                master_key_file: KeyOpt = None) -> int:
    """Show the evidence of a case you hold (audited)."""
    evidence = _guard(store, master_key_file).view_evidence(case, _actor(actor, role))
    print(json.dumps(evidence, indent=2, ensure_ascii=False))
    return EXIT_OK


@review_app.command("decide")
def review_decide(case: str, decision: Annotated[str, typer.Argument(help="confirm or dismiss")],
                  reason: Annotated[str, typer.Option(help="a coded reason")],
                  actor: ActorOpt, role: RoleOpt, store: StoreOpt = DEFAULT_STORE,
                  minor_to_minor: bool = False, master_key_file: KeyOpt = None) -> int:
    """Confirm or dismiss a claimed case."""
    _guard(store, master_key_file).decide(case, _actor(actor, role), decision, reason,
                                          minor_to_minor=minor_to_minor)
    say(f"case {case}: {decision}ed")
    return EXIT_OK


@report_app.command("export")
def report_export(case: str, output: Annotated[Path, typer.Option("-o", "--output")],
                  actor: ActorOpt, role: RoleOpt, store: StoreOpt = DEFAULT_STORE,
                  master_key_file: KeyOpt = None) -> int:
    """Export the report of a confirmed case (written 0600)."""
    from .guard import export_report

    report = export_report(_guard(store, master_key_file), case, _actor(actor, role))
    write_private(output, report.to_json() + "\n")
    say(f"report of case {case} written to {output}")
    return EXIT_OK


@complaint_app.command("lodge")
def complaint_lodge(case: str, store: StoreOpt = DEFAULT_STORE,
                    master_key_file: KeyOpt = None) -> int:
    """Register a user's complaint about a case."""
    from .guard import file_complaint

    print(file_complaint(_guard(store, master_key_file), case))
    return EXIT_OK


@complaint_app.command("review")
def complaint_review(complaint: str,
                     outcome: Annotated[str, typer.Argument(help="confirm or dismiss")],
                     actor: ActorOpt, role: RoleOpt, store: StoreOpt = DEFAULT_STORE,
                     master_key_file: KeyOpt = None) -> int:
    """Re-review by another reviewer."""
    from .guard import re_review

    re_review(_guard(store, master_key_file), complaint, _actor(actor, role), outcome)
    return EXIT_OK


@complaint_app.command("decide")
def complaint_decide(complaint: str, actor: ActorOpt, role: RoleOpt,
                     store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None) -> int:
    """A supervisor decides the complaint."""
    from .guard import decide_complaint

    print(decide_complaint(_guard(store, master_key_file), complaint, _actor(actor, role)))
    return EXIT_OK


def purge(store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None) -> int:
    """Delete every case past its retention deadline."""
    n = _guard(store, master_key_file).purge_expired()
    say(f"{n} cases past their retention deadline purged")
    return EXIT_OK


@audit_app.command("verify")
def audit_verify(store: StoreOpt = DEFAULT_STORE) -> int:
    """Recompute the audit log's chain."""
    ok, n, broken = _store(store).verify_audit_log()
    say(f"audit log {'intact' if ok else f'BROKEN at entry {broken}'}: {n} entries verified")
    return EXIT_OK if ok else EXIT_FAILED


def transparency(year: Annotated[int, typer.Option()],
                 output: Annotated[str, typer.Option("-o", "--output", help=(
                     "path prefix: PREFIX.md, PREFIX.json"))],
                 organisation: Annotated[list[str] | None, typer.Option()] = None,
                 store: StoreOpt = DEFAULT_STORE) -> int:
    """The annual transparency report (Markdown and JSON)."""
    from .guard import transparency_report
    from .guard._redress import report_markdown

    report = transparency_report(_store(store), year,
                                 organisations=tuple(organisation or ()))
    for suffix, text in ((".json", json.dumps(report, indent=2) + "\n"),
                         (".md", report_markdown(report))):
        with open_output(f"{output}{suffix}") as fh:
            fh.write(text)  # type: ignore[union-attr]
    say(f"transparency report {year}: {output}.md, {output}.json")
    return EXIT_OK
