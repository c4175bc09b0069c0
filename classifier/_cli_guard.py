"""The guard's commands: review, report, complaint, purge, audit, transparency, users, keys.

People act through an identity the guard verifies: an API token (``--token`` or
``$SOLICITATION_TOKEN``) or, on a terminal, a sign-in with password and TOTP code. The
role of every action comes from the account, never from an option. Account and key
administration (``users``, ``keys``) is the operator's: it needs the master key.

Keys: the master key (``--master-key-file``, ``$SOLICITATION_MASTER_KEY_FILE`` or
``$SOLICITATION_MASTER_KEY``) for evidence, pseudonyms and accounts; the audit key alone
(``--audit-key-file``, ``$SOLICITATION_AUDIT_KEY_FILE``) is enough to purge, check tokens
and verify MACs. The key store (``--key-store``, ``$SOLICITATION_KEY_STORE``) defaults to
a folder beside a SQLite store. SQLAlchemy is imported only when one of them runs.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ._cli_base import EXIT_FAILED, EXIT_OK, open_output, say, typer_app, write_private
from ._errors import Errors

DEFAULT_STORE = "sqlite:///guard.db"
TOKEN_ENV = "SOLICITATION_TOKEN"

StoreOpt = Annotated[str, typer.Option("--store", help="SQLAlchemy URL of the guard store")]
KeyOpt = Annotated[Path | None, typer.Option("--master-key-file", help=(
    "file holding the master key (default: $SOLICITATION_MASTER_KEY_FILE or "
    "$SOLICITATION_MASTER_KEY)"))]
AuditKeyOpt = Annotated[Path | None, typer.Option("--audit-key-file", help=(
    "file holding the audit key alone, where the master key is not kept "
    "(default: $SOLICITATION_AUDIT_KEY_FILE)"))]
KeyStoreOpt = Annotated[Path | None, typer.Option("--key-store", help=(
    "folder of the key store (default: $SOLICITATION_KEY_STORE, else beside a SQLite "
    "store)"))]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar=TOKEN_ENV, show_envvar=True,
                                              help="your API token (users token NAME)")]

review_app = typer_app(help="The human review queue.")
report_app = typer_app(help="Export a report of a confirmed case.")
complaint_app = typer_app(help="Complaints and re-review.")
audit_app = typer_app(help="The audit log: verify, checkpoint, summary.")
users_app = typer_app(help="Accounts (operator: needs the master key).")
keys_app = typer_app(help="Key administration (operator: needs the master key).")


def register(app: Any) -> None:
    """Add the guard's commands to the main application."""
    app.add_typer(review_app, name="review")
    app.add_typer(report_app, name="report")
    app.add_typer(complaint_app, name="complaint")
    app.add_typer(audit_app, name="audit")
    app.add_typer(users_app, name="users")
    app.add_typer(keys_app, name="keys")
    app.command("purge")(purge)
    app.command("transparency")(transparency)
    app.command("console")(console_command)


# -- building blocks -----------------------------------------------------------------
def _store(url: str, key_store: Path | None = None) -> Any:
    from .guard import LocalKeyStore, Store

    store = Store(url, key_store=LocalKeyStore(key_store) if key_store else None)
    store.migrate()
    return store


def _keys(key_file: Path | None, *, required: bool) -> Any:
    from .guard import Keys, MasterKeyError

    try:
        return Keys.load(key_file)
    except MasterKeyError as err:
        if required or err.code != "G002":  # G002: no master key configured at all
            raise
        return None


def _guard(url: str, key_file: Path | None = None, audit_key_file: Path | None = None,
           key_store: Path | None = None, *, need: str = "audit") -> Any:
    """A guard with the master key (``need="master"``), or at least the audit key."""
    from .guard import AuditKey, Guard, MasterKeyError

    keys = _keys(key_file, required=need == "master")
    audit = None if keys is not None else AuditKey.load(audit_key_file)
    if keys is None and audit is None and need != "none":
        raise MasterKeyError(Errors.G012)
    return Guard(_store(url, key_store), keys, audit_key=audit)


def _signed_in(guard: Any, token: str | None, *, from_stdin: bool = False) -> Any:
    """The principal of a token or of a sign-in: on a terminal, interactive; with
    ``from_stdin``, the answers read from standard input, one per line."""
    if token:
        return guard.authenticate(token.strip())
    if from_stdin:
        answers = iter(sys.stdin.read().splitlines())

        def ask(_prompt: str) -> str:
            return next(answers, "")
        secret = ask
    elif sys.stdin.isatty():
        import getpass

        ask, secret = input, getpass.getpass
    else:
        from .guard import StoreError

        raise StoreError(Errors.G139)
    name = ask("account: ")
    password = secret("password: ")
    code = ask("TOTP code (empty if your account has none): ").strip() or None
    principal = guard.sign_in(name, password, code)
    if principal.must_change_password:
        say("your password was issued once: choose a new one")
        principal = guard.change_password(principal, secret("new password: "))
    return principal


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="minutes") if ts else "-"


# -- review --------------------------------------------------------------------------
@review_app.command("list")
def review_list(token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                key_store: KeyStoreOpt = None) -> int:
    """Open and claimed cases, oldest first (no content)."""
    guard = _guard(store, master_key_file, audit_key_file, key_store)
    for c in guard.queue(_signed_in(guard, token)):
        print(f"{c['case_id']}  {c['status']:<8} score {c['score']:.4f}  "
              f"opened {_when(c['opened_at'])}  deadline {_when(c['expires_at'])}"
              f"{'  (yours)' if c['mine'] else ''}")
    return EXIT_OK


@review_app.command("claim")
def review_claim(case: str, token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                 master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                 key_store: KeyStoreOpt = None) -> int:
    """Claim an open case."""
    guard = _guard(store, master_key_file, audit_key_file, key_store)
    ok = guard.claim(case, _signed_in(guard, token))
    say("claimed" if ok else "not claimed: held by someone else or not open")
    return EXIT_OK if ok else EXIT_FAILED


@review_app.command("release")
def review_release(case: str, token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                   master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                   key_store: KeyStoreOpt = None) -> int:
    """Give a case you hold back to the queue."""
    guard = _guard(store, master_key_file, audit_key_file, key_store)
    guard.release(case, _signed_in(guard, token))
    say("released")
    return EXIT_OK


@review_app.command("release-claim")
def review_release_claim(case: str, token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                         master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                         key_store: KeyStoreOpt = None) -> int:
    """A supervisor gives back to the queue a case another reviewer holds."""
    guard = _guard(store, master_key_file, audit_key_file, key_store)
    guard.release_claim(case, _signed_in(guard, token))
    say("released")
    return EXIT_OK


@review_app.command("show")
def review_show(case: str, token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                master_key_file: KeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Show the evidence of a case you hold (audited)."""
    guard = _guard(store, master_key_file, key_store=key_store, need="master")
    evidence = guard.view_evidence(case, _signed_in(guard, token))
    print(json.dumps(evidence, indent=2, ensure_ascii=False))
    return EXIT_OK


@review_app.command("decide")
def review_decide(case: str, decision: Annotated[str, typer.Argument(help="confirm or dismiss")],
                  reason: Annotated[str, typer.Option(help=(
                      "a coded reason (a wrong one is refused with the list of reasons, "
                      "G106)"))],
                  token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                  minor_to_minor: Annotated[bool, typer.Option(help=(
                      "the conversation is between minors (recital 6: recorded with the "
                      "decision)"))] = False, master_key_file: KeyOpt = None,
                  audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Confirm (after viewing the evidence) or dismiss a case you hold."""
    guard = _guard(store, master_key_file, audit_key_file, key_store)
    guard.decide(case, _signed_in(guard, token), decision, reason,
                 minor_to_minor=minor_to_minor)
    say(f"case {case}: {'confirmed' if decision == 'confirm' else 'dismissed'}")
    return EXIT_OK


# -- report --------------------------------------------------------------------------
@report_app.command("export")
def report_export(case: str, output: Annotated[Path, typer.Option("-o", "--output")],
                  token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                  master_key_file: KeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Export the report of a confirmed case (written 0600)."""
    from .guard import export_report

    guard = _guard(store, master_key_file, key_store=key_store, need="master")
    report = export_report(guard, case, _signed_in(guard, token))
    write_private(output, report.to_json() + "\n")
    say(f"report of case {case} written to {output}")
    return EXIT_OK


# -- complaints ----------------------------------------------------------------------
@complaint_app.command("lodge")
def complaint_lodge(case: str,
                    user_id: Annotated[str | None, typer.Option(help=(
                        "the complaining user's account id (stored as a pseudonym)"))] = None,
                    channel: Annotated[str | None, typer.Option(help=(
                        "or the channel it came through (in_app, email, post, ...)"))] = None,
                    token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                    master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                    key_store: KeyStoreOpt = None) -> int:
    """Register a user's complaint about a case (prints the complaint id)."""
    from .guard import file_complaint

    guard = _guard(store, master_key_file, audit_key_file, key_store,
                   need="master" if user_id is not None else "audit")
    print(file_complaint(guard, case, user_id=user_id, channel=channel,
                         principal=_signed_in(guard, token)))
    return EXIT_OK


@complaint_app.command("show")
def complaint_show(complaint: str, token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                   master_key_file: KeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """The evidence of a complained-about case, for its re-reviewer (audited)."""
    from .guard import view_complaint_evidence

    guard = _guard(store, master_key_file, key_store=key_store, need="master")
    print(json.dumps(view_complaint_evidence(guard, complaint, _signed_in(guard, token)),
                     indent=2, ensure_ascii=False))
    return EXIT_OK


@complaint_app.command("review")
def complaint_review(complaint: str,
                     outcome: Annotated[str, typer.Argument(help="confirm or dismiss")],
                     token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                     master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                     key_store: KeyStoreOpt = None) -> int:
    """Re-review by another reviewer (after complaint show)."""
    from .guard import re_review

    guard = _guard(store, master_key_file, audit_key_file, key_store)
    re_review(guard, complaint, _signed_in(guard, token), outcome)
    return EXIT_OK


@complaint_app.command("decide")
def complaint_decide(complaint: str,
                     outcome: Annotated[str | None, typer.Option(
                         help="upheld or rejected (default: as the re-review advises)")
                     ] = None,
                     token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                     master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                     key_store: KeyStoreOpt = None) -> int:
    """A supervisor decides the complaint: upheld or rejected (printed)."""
    from .guard import decide_complaint

    guard = _guard(store, master_key_file, audit_key_file, key_store)
    print(decide_complaint(guard, complaint, _signed_in(guard, token), outcome))
    return EXIT_OK


# -- retention -----------------------------------------------------------------------
def purge(store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
          audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Delete every case past its retention deadline (the audit key is enough)."""
    n = _guard(store, master_key_file, audit_key_file, key_store).purge_expired()
    say(f"{n} cases past their retention deadline purged")
    return EXIT_OK


# -- audit ---------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(checkpoint: Annotated[list[Path] | None, typer.Option(help=(
                     "a checkpoint exported by `audit checkpoint` (repeatable)"))] = None,
                 public_key: Annotated[Path | None, typer.Option(help=(
                     "the checkpoint key's public half (PEM), to check signatures"))] = None,
                 store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                 audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Verify the chain, the MACs (with a key), the counters and the checkpoints, and say
    what could and could not be proven."""
    from .guard import Checkpoint, load_public_key

    guard = _guard(store, master_key_file, audit_key_file, key_store, need="none")
    cps = [(p.name, Checkpoint.read(p)) for p in checkpoint or []]
    pub = load_public_key(public_key) if public_key else None
    result = guard.verify(cps, pub)
    for line in result.lines():
        say(line)
    return EXIT_OK if result.intact else EXIT_FAILED


@audit_app.command("keygen")
def audit_keygen(output: Annotated[Path, typer.Option("-o", "--output", help=(
        "the private key file (created 0600; the public key goes to OUTPUT.pub)"))]) -> int:
    """A new Ed25519 checkpoint signing key."""
    from .guard import CheckpointSigner

    private, public = CheckpointSigner.generate(output)
    say(f"checkpoint signing key {private} (keep it apart from the store), public key "
        f"{public} (give it to auditors)")
    return EXIT_OK


@audit_app.command("checkpoint")
def audit_checkpoint(signing_key: Annotated[Path, typer.Option(help=(
                         "the Ed25519 private key (audit keygen)"))],
                     output: Annotated[Path, typer.Option("-o", "--output", help=(
                         "where the signed head (JSON) goes: outside the database"))],
                     store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                     audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Sign the verified head of the audit log and write it outside the database."""
    from .guard import CheckpointSigner

    signer = CheckpointSigner.load(signing_key)
    cp = _guard(store, master_key_file, audit_key_file, key_store).checkpoint(signer)
    write_private(output, cp.to_json())
    say(f"checkpoint of entry {cp.seq} written to {output}")
    return EXIT_OK


@audit_app.command("summary")
def audit_summary(token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                  master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                  key_store: KeyStoreOpt = None) -> int:
    """Aggregates for auditors and supervisors (JSON; no content, no ids)."""
    guard = _guard(store, master_key_file, audit_key_file, key_store)
    print(json.dumps(guard.aggregates(_signed_in(guard, token)), indent=2, default=str))
    return EXIT_OK


def transparency(year: Annotated[int, typer.Option(help="the calendar year reported on")],
                 output: Annotated[str, typer.Option("-o", "--output", help=(
                     "path prefix: PREFIX.md, PREFIX.json"))],
                 organisation: Annotated[list[str] | None, typer.Option(help=(
                     "an organisation the reports went to (repeat the option for "
                     "several)"))] = None,
                 token: TokenOpt = None, store: StoreOpt = DEFAULT_STORE,
                 master_key_file: KeyOpt = None, audit_key_file: AuditKeyOpt = None,
                 key_store: KeyStoreOpt = None) -> int:
    """The annual transparency report (Markdown and JSON; auditors and supervisors)."""
    from .guard import report_markdown, transparency_report

    guard = _guard(store, master_key_file, audit_key_file, key_store)
    guard.aggregates(_signed_in(guard, token))  # the role check: auditor or supervisor
    report = transparency_report(guard.store, year, organisations=tuple(organisation or ()))
    for suffix, text in ((".json", json.dumps(report, indent=2) + "\n"),
                         (".md", report_markdown(report))):
        with open_output(f"{output}{suffix}") as fh:
            fh.write(text)  # type: ignore[union-attr]
    say(f"transparency report {year}: {output}.md, {output}.json")
    return EXIT_OK


# -- users ---------------------------------------------------------------------------
JsonOpt = Annotated[bool, typer.Option("--json", help=(
    "print the enrolment as one JSON object (account_id, role, password, totp_secret, "
    "otpauth_uri) for a script that hands it over"))]


def _print_enrolment(e: Any, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"account_id": e.account_id, "role": e.role, "password": e.password,
                          "totp_secret": e.totp_secret, "otpauth_uri": e.otpauth_uri}))
        return
    print(f"account: {e.account_id} ({e.role})")
    print(f"password (shown once; to be changed at the first sign-in): {e.password}")
    if e.totp_secret:
        print(f"TOTP secret (shown once): {e.totp_secret}")
        print(f"otpauth URI (for an authenticator app): {e.otpauth_uri}")


@users_app.command("add")
def users_add(name: str, role: Annotated[str, typer.Option(help=(
                  "reviewer, supervisor or auditor"))],
              store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
              key_store: KeyStoreOpt = None, as_json: JsonOpt = False) -> int:
    """Add an account; prints its one-time password (and TOTP secret) once."""
    _print_enrolment(_guard(store, master_key_file, key_store=key_store,
                            need="master").add_account(name, role), as_json)
    return EXIT_OK


@users_app.command("reset")
def users_reset(name: str, store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                key_store: KeyStoreOpt = None, as_json: JsonOpt = False) -> int:
    """New password and TOTP secret, unlocked, tokens revoked; printed once."""
    _print_enrolment(_guard(store, master_key_file, key_store=key_store,
                            need="master").reset_account(name), as_json)
    return EXIT_OK


@users_app.command("disable")
def users_disable(name: str, store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                  audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Disable an account and revoke its tokens."""
    _guard(store, master_key_file, audit_key_file, key_store).disable_account(name)
    say("disabled")
    return EXIT_OK


@users_app.command("list")
def users_list(store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
               audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """Every account: id, role, status, lock, second factor, tokens (no secret)."""
    for a in _guard(store, master_key_file, audit_key_file, key_store,
                    need="none").list_accounts():
        print(f"{a.account_id}\t{a.role}\t{a.status}{' locked' if a.locked else ''}\t"
              f"totp {'yes' if a.second_factor else 'no'}\ttokens {a.tokens}")
    return EXIT_OK


@users_app.command("token")
def users_token(name: str, store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None) -> int:
    """The operator: a new API token for an auditor account, printed once (kept as a
    hash). Reviewers and supervisors make their own with `users sign-in`."""
    print(_guard(store, master_key_file, audit_key_file, key_store).issue_token(name))
    return EXIT_OK


@users_app.command("sign-in")
def users_sign_in(store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                  audit_key_file: AuditKeyOpt = None, key_store: KeyStoreOpt = None,
                  stdin: Annotated[bool, typer.Option(
                      "--stdin", help=("read the account, password, TOTP code (an empty "
                                       "line if none) and, the first time, the new "
                                       "password from standard input, one per line"))] = False,
                  ) -> int:
    """Sign in (the first time, replacing the issued password) and print a new API
    token for your own account, once (kept as a hash)."""
    guard = _guard(store, master_key_file, audit_key_file, key_store)
    print(guard.issue_token(_signed_in(guard, None, from_stdin=stdin)))
    return EXIT_OK


# -- keys ----------------------------------------------------------------------------
@keys_app.command("rotate")
def keys_rotate(new_master_key_file: Annotated[Path, typer.Option(help=(
                    "file holding the new master key (0600)"))],
                store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                key_store: KeyStoreOpt = None) -> int:
    """Rewrap every key under a new master key (audited; rerun it if interrupted)."""
    from .guard import Keys, rotate_master_key

    old = _keys(master_key_file, required=True)
    new = Keys.from_file(new_master_key_file)
    n = rotate_master_key(_store(store, key_store), old, new)
    say(f"{n} keys rewrapped under the master key {new.fingerprint}")
    return EXIT_OK


@keys_app.command("audit-key")
def keys_audit_key(output: Annotated[Path, typer.Option("-o", "--output", help=(
                       "the audit key file (created 0600)"))],
                   store: StoreOpt = DEFAULT_STORE, master_key_file: KeyOpt = None,
                   key_store: KeyStoreOpt = None) -> int:
    """Write the audit key alone, for a host that purges or checks tokens without the
    master key (audited)."""
    from .guard import write_secret_file

    guard = _guard(store, master_key_file, key_store=key_store, need="master")
    if os.path.exists(output):
        from ._cli_base import CommandError

        raise CommandError(Errors.C002.format(path=output, problem="it exists"))
    write_secret_file(output, (guard.export_audit_key() + "\n").encode())
    say(f"audit key written to {output}")
    return EXIT_OK


# -- the review console --------------------------------------------------------------
def console_command(store: StoreOpt = DEFAULT_STORE,
                    host: Annotated[str, typer.Option(help=(
                        "address to listen on (a loopback address unless behind TLS)"))
                    ] = "127.0.0.1",
                    port: Annotated[int, typer.Option(min=1, max=65535,
                                                      help="port to listen on")] = 8080,
                    master_key_file: KeyOpt = None, key_store: KeyStoreOpt = None,
                    checkpoint_dir: Annotated[Path | None, typer.Option(help=(
                        "folder of exported checkpoints: the newest is verified with the "
                        "log on the auditor's page"))] = None,
                    public_key: Annotated[Path | None, typer.Option(help=(
                        "the checkpoint key's public half (PEM)"))] = None,
                    idle_minutes: Annotated[float, typer.Option(help=(
                        "a session ends after this long without a request"))] = 15.0,
                    absolute_hours: Annotated[float, typer.Option(help=(
                        "a session ends this long after sign-in"))] = 8.0,
                    tls_cert: Annotated[Path | None, typer.Option(help=(
                        "TLS certificate (PEM), to serve HTTPS directly"))] = None,
                    tls_key: Annotated[Path | None, typer.Option(help=(
                        "TLS private key (PEM)"))] = None,
                    insecure_cookies: Annotated[bool, typer.Option(help=(
                        "session cookie without the Secure flag: only on a loopback "
                        "address, for tools that refuse Secure cookies over http"))] = False,
                    ) -> int:
    """The review console: a web application for reviewers, supervisors and auditors
    (sign in with the accounts of `users add`; the API under /api/ takes `users token`)."""
    try:
        from .console import ConsoleSettings, serve
    except ImportError:
        from ._errors import MissingDependencyError

        raise MissingDependencyError(Errors.E006.format(what="The review console",
                                                        extra="console")) from None
    guard = _guard(store, master_key_file, key_store=key_store, need="master")
    settings = ConsoleSettings(secure_cookies=not insecure_cookies, idle_minutes=idle_minutes,
                               absolute_hours=absolute_hours, checkpoint_dir=checkpoint_dir,
                               public_key=public_key)
    scheme = "https" if tls_cert else "http"
    say(f"review console: {scheme}://{host}:{port}/ (one process; Ctrl-C stops it)")
    serve(guard, settings, host=host, port=port, tls_cert=str(tls_cert) if tls_cert else None,
          tls_key=str(tls_key) if tls_key else None)
    return EXIT_OK
