"""Cases, identities, human review, the report gate and retention.

- :meth:`Guard.triage`: a flagged conversation becomes a case (pseudonymous ids, score,
  explanation, model version) with its evidence excerpt encrypted under a fresh data key,
  which is wrapped under the master key and kept in the key store. Re-scoring the same
  conversation with the same model returns the case it opened.
- People act as a :class:`~classifier.guard._identity.Principal` from :meth:`Guard.sign_in`
  or :meth:`Guard.authenticate`, never as a name and a role they choose.
- Review: a reviewer claims a case (never two at once, on both backends), views the
  evidence (audited, in the same transaction that decrypts it) and confirms (only after
  that view, in that claim) or dismisses it with a coded reason. Every transition is one
  conditional update under a row lock: of concurrent decisions exactly one wins. A
  dismissal destroys the data key and the ciphertext and deletes the case's pseudonyms,
  score and explanation at once.
- :func:`export_report` is the only way to a :class:`Report`: a supervisor who is not the
  confirming reviewer, no open complaint, an intact audit log (MACs checked) holding the
  reviewer's view and confirmation; ``confirmed -> reported`` happens once.
- :meth:`Guard.purge_expired` deletes every case at its deadline (at most 12 months); it
  needs the audit key, not the master key.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType, SimpleNamespace
from typing import Any

from sqlalchemy import (
    Float,
    Numeric,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from .._errors import Errors, MasterKeyError, StoreError
from .._pipeline import ScoreResult
from .._text import EvidenceExcerpt
from . import _identity as ident
from ._audit import AuditVerification, Checkpoint, CheckpointSigner, entry_problem
from ._crypto import AuditKey, Keys, Sealed, StoreKeys, new_data_key, seal, unseal
from ._identity import ROLES, SECOND_FACTOR_ROLES, AccountInfo, Enrolment, Principal
from ._store import (
    STATS_COLUMNS,
    Store,
    accounts,
    api_tokens,
    audit_log,
    cases,
    complaints,
    evidence,
    flag_accounts,
    meta,
    stats_counter,
    stats_mac_input,
)

__all__ = ["ROLES", "Guard", "Report", "export_report", "is_genuine", "rotate_master_key"]

DISMISS_REASONS = ("no_solicitation", "peer_conversation", "adult_conversation",
                   "family_or_professional", "insufficient_evidence")
CONFIRM_REASONS = ("solicitation_of_a_child",)
MAX_RETENTION_DAYS = 365  # Art 3(1)(i): at most 12 months from identification
# the audit entries that record an account's generation (see Guard._account_intact)
ACCOUNT_ACTIONS = ("account_added", "account_reset", "account_disabled", "password_changed",
                   "signed_in")
CLAIM_HOURS = ident.PRINCIPAL_HOURS  # after this a claim may be taken over: its holder's
# sign-in has expired
STORE_SECRET = "store-secret"
SYSTEM, OPERATOR = ("system", "system"), ("operator", "operator")
_ID = re.compile(r"^[0-9a-f]{32}$")


def shown(identifier: object) -> str:
    """An id for a message: one of ours (32 hex digits), else a placeholder (never input)."""
    return identifier if isinstance(identifier, str) and _ID.match(identifier) else "(not an id)"


def case_key(case_id: object) -> str:
    """A case id as the store holds it (a string); anything else is G103, no case, rather
    than a database error (a caller passing a whole queue entry, say)."""
    if not isinstance(case_id, str):
        raise StoreError(Errors.G103.format(case_id=shown(case_id)))
    return case_id


# -- the report ----------------------------------------------------------------------
_REPORT_GRANTS: set[int] = set()
_REPORTS: weakref.WeakValueDictionary[int, Report] = weakref.WeakValueDictionary()
_REPORT_TEXT: dict[int, str] = {}  # each genuine report as made, to compare


@dataclass(frozen=True, eq=False)
class Report(Sealed):
    """A report for law enforcement or a public-interest organisation (NCMEC-like fields).

    Only :func:`export_report` can make one; it cannot be copied, pickled or replaced, and
    a forged one serialises to nothing (G101)."""

    fields: Mapping[str, Any]
    _grant: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self._grant not in _REPORT_GRANTS:
            raise StoreError(Errors.G101)
        _REPORT_GRANTS.discard(self._grant)
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        _REPORTS[id(self)] = self
        _REPORT_TEXT[id(self)] = self._text()
        weakref.finalize(self, _REPORT_TEXT.pop, id(self), None)

    def _text(self) -> str:
        return json.dumps(dict(self.fields), ensure_ascii=False, indent=2)

    def __repr__(self) -> str:
        return f"Report(case_id={self.fields.get('case_id')!r})"

    def _refusal(self) -> Exception:
        return StoreError(Errors.G101)

    def to_json(self) -> str:
        """The report as JSON (G101 for anything export_report did not make)."""
        if not is_genuine(self):
            raise StoreError(Errors.G101)
        return self._text()


def is_genuine(report: object) -> bool:
    """True only for a :class:`Report` that :func:`export_report` made in this process."""
    return (isinstance(report, Report) and _REPORTS.get(id(report)) is report
            and _REPORT_TEXT.get(id(report)) == report._text())  # fields not replaced


def _new_report(fields: dict[str, Any]) -> Report:
    grant = int.from_bytes(os.urandom(8), "big") | 1
    _REPORT_GRANTS.add(grant)
    return Report(fields, grant)


# -- the guard -----------------------------------------------------------------------
class Guard(Sealed):
    """Triage, identities, review and retention on a :class:`Store`.

    Parameters
    ----------
    store : Store
    keys : Keys, optional
        The provider's master key: needed to store or read evidence, to pseudonymise, to
        manage accounts and to sign people in with a TOTP code. Checked against the
        store's fingerprint before anything is written (G004).
    audit_key : AuditKey, optional
        Without the master key, the audit key alone lets a guard purge, check tokens and
        verify MACs.
    retention_days : int, default 365
        Deadline from identification; more than 365 is refused.

    Examples
    --------
    >>> guard = Guard(Store("sqlite://", create=True), Keys(b"k" * 32))
    >>> enrolment = guard.add_account("Auditor One", "auditor")
    >>> token = guard.issue_token("auditor one")
    >>> guard.authenticate(token).role
    'auditor'
    """

    def __init__(self, store: Store, keys: Keys | None = None, *,
                 audit_key: AuditKey | None = None,
                 retention_days: int = MAX_RETENTION_DAYS, excerpt_before: int = 3) -> None:
        if not 0 < retention_days <= MAX_RETENTION_DAYS:
            raise StoreError(Errors.G102.format(limit=MAX_RETENTION_DAYS))
        if keys is not None and not isinstance(keys, Keys):
            raise StoreError(Errors.G001)
        if audit_key is not None and not isinstance(audit_key, AuditKey):
            raise StoreError(Errors.G001)
        self.store = store
        self.retention_days = retention_days
        self.excerpt_before = excerpt_before
        if keys is not None:
            store.key_store  # noqa: B018  (G015 before anything is created or written)
        store.migrate()
        self.store_id = store.store_id
        self._keys = keys
        self._skeys: StoreKeys | None = None
        self._audit: AuditKey | None = audit_key
        if keys is not None:
            self._skeys = self._bind(keys)
            self._audit = self._skeys.audit
        elif audit_key is not None:
            with store.engine.connect() as conn:
                expected = store.meta(conn, "audit_fingerprint")
            if expected != audit_key.fingerprint:
                raise MasterKeyError(Errors.G013.format(got=audit_key.fingerprint,
                                                        expected=expected or "(unbound)"))
        if store.wal_at_open:  # left by a process that could not truncate it
            store.wal_at_open = False
            store.truncate_wal(wait=0.0)

    def __repr__(self) -> str:
        return f"Guard({self.store!r})"

    # -- keys ------------------------------------------------------------------------
    def _context(self, name: str) -> bytes:
        return f"{STORE_SECRET}:{self.store_id}".encode() if name == STORE_SECRET \
            else name.encode()

    def _bind(self, keys: Keys) -> StoreKeys:
        """Check the master key against the store's fingerprint; bind a new store."""
        ks = self.store.key_store
        for _attempt in range(50):
            try:
                with self.store.write() as conn:
                    expected = self.store.meta(conn, "key_fingerprint")
                    if expected is not None and expected != keys.fingerprint:
                        raise MasterKeyError(Errors.G004.format(got=keys.fingerprint,
                                                                expected=expected))
                    blob = ks.get(STORE_SECRET)
                    if expected is not None:
                        if blob is None:
                            raise MasterKeyError(Errors.G014.format(path=ks))
                        return StoreKeys(keys.unwrap(blob, self._context(STORE_SECRET)))
                    # a new store (or one whose binding a crash cut short)
                    if blob is None:
                        secret = os.urandom(32)
                        ks.put(STORE_SECRET, keys.wrap(secret, self._context(STORE_SECRET)))
                    else:
                        secret = keys.unwrap(blob, self._context(STORE_SECRET))
                    skeys = StoreKeys(secret)
                    conn.execute(insert(meta).values(name="key_fingerprint",
                                                     value=keys.fingerprint))
                    conn.execute(insert(meta).values(name="audit_fingerprint",
                                                     value=skeys.audit.fingerprint))
                    self.store._append(conn, skeys.audit, actor="system", role="system",
                                       action="store_bound",
                                       detail={"key_fingerprint": keys.fingerprint})
                    return skeys
            except IntegrityError:  # another process bound it first (PostgreSQL)
                time.sleep(0.02)
            except MasterKeyError as err:
                if err.code != "G006":  # G006: the secret's file appeared meanwhile
                    raise
                time.sleep(0.02)
        raise MasterKeyError(Errors.G014.format(path=ks))

    def _need_keys(self) -> tuple[Keys, StoreKeys]:
        if self._keys is None or self._skeys is None:
            raise MasterKeyError(Errors.G011)
        return self._keys, self._skeys

    def _akey(self) -> AuditKey:
        if self._audit is None:
            raise MasterKeyError(Errors.G012)
        return self._audit

    def export_audit_key(self) -> str:
        """The audit key (base64) for a host that purges or checks tokens without the
        master key; needs the master key. Audited."""
        _, skeys = self._need_keys()
        with self.store.write() as conn:
            self.store._append(conn, skeys.audit, actor="operator", role="operator",
                               action="audit_key_exported")
        return skeys.audit.export()

    def _log(self, conn: Any, who: Principal | tuple[str, str], action: str,
             case_id: str | None = None, detail: Mapping[str, Any] | None = None,
             counters: Mapping[str, int] | None = None) -> int:
        actor, role = (who.account_id, who.role) if isinstance(who, Principal) else who
        return self.store._append(conn, self._akey(), actor=actor, role=role, action=action,
                                  case_id=case_id, detail=detail, counters=counters)

    # -- identities ------------------------------------------------------------------
    def _principal(self, conn: Any, principal: object, *roles: str,
                   allow_password_change: bool = False) -> Principal:
        """The principal, if genuine, of one of ``roles``, and its account still active
        with that role (re-read in the caller's transaction)."""
        p = ident.genuine(principal, self.store_id)
        if p.role not in roles:
            raise StoreError(Errors.G107.format(role=" or ".join(roles)))
        row = conn.execute(select(accounts).where(accounts.c.id == p.account_id)).first()
        if row is None or row.status != "active" or row.role != p.role:
            raise StoreError(Errors.G118)
        if not self._account_intact(conn, row):
            raise StoreError(Errors.G140.format(account=p.account_id))
        # the row decides: a token's principal (or one issued before a reset) must change
        # the issued password too
        if (p.must_change_password or row.must_change_password) and not allow_password_change:
            raise StoreError(Errors.G134)
        return p

    def add_account(self, name: str, role: str) -> Enrolment:
        """A new account (operator; needs the master key): its password and, for reviewers
        and supervisors, its TOTP secret, shown once."""
        _, skeys = self._need_keys()
        account_id, role = ident.canonical_id(name), ident.check_role(role)
        enrolment, values = self._credentials(skeys, account_id, role)
        try:
            with self.store.write() as conn:
                conn.execute(insert(accounts).values(id=account_id, role=role, status="active",
                                                     created_at=time.time(), **values))
                generation = self._seal_account(conn, account_id, revoke=True)
                self._log(conn, OPERATOR, "account_added", detail={
                    "account": account_id, "role": role, "generation": generation})
        except IntegrityError:
            raise StoreError(Errors.G132) from None
        return enrolment

    def _credentials(self, skeys: StoreKeys, account_id: str, role: str
                     ) -> tuple[Enrolment, dict[str, Any]]:
        import pyotp

        password = ident.new_password()
        values: dict[str, Any] = {"password_hash": ident.hasher().hash(password),
                                  "must_change_password": True, "totp_secret": None,
                                  "totp_last_step": 0, "failed_attempts": 0,
                                  "locked_until": None}
        secret = uri = None
        if role in SECOND_FACTOR_ROLES:
            secret = pyotp.random_base32()
            uri = pyotp.TOTP(secret).provisioning_uri(name=account_id,
                                                      issuer_name="solicitation-classifier")
            values["totp_secret"] = skeys.seal_secret(secret.encode(), account_id.encode())
        return Enrolment(account_id, role, password, secret, uri), values

    def reset_account(self, name: str) -> Enrolment:
        """New password and TOTP secret, unlocked, every token revoked (operator)."""
        _, skeys = self._need_keys()
        account_id = ident.canonical_id(name)
        with self.store.write() as conn:
            row = conn.execute(select(accounts.c.role).where(accounts.c.id == account_id)
                               .with_for_update()).first()
            if row is None:
                raise StoreError(Errors.G133)
            enrolment, values = self._credentials(skeys, account_id, row.role)
            conn.execute(update(accounts).where(accounts.c.id == account_id)
                         .values(status="active", **values))
            generation = self._seal_account(conn, account_id, revoke=True)
            revoked = self._revoke_tokens(conn, account_id)
            self._log(conn, OPERATOR, "account_reset", detail={
                "account": account_id, "tokens_revoked": revoked, "generation": generation})
        return enrolment

    def disable_account(self, name: str) -> None:
        """Disable an account and revoke its tokens; its principals stop at once."""
        self._akey()
        account_id = ident.canonical_id(name)
        with self.store.write() as conn:
            if not conn.execute(update(accounts).where(accounts.c.id == account_id)
                                .values(status="disabled")).rowcount:
                raise StoreError(Errors.G133)
            generation = self._seal_account(conn, account_id, revoke=True)
            revoked = self._revoke_tokens(conn, account_id)
            self._log(conn, OPERATOR, "account_disabled", detail={
                "account": account_id, "tokens_revoked": revoked, "generation": generation})

    def _seal_account(self, conn: Any, account_id: str, *, revoke: bool = False) -> int:
        """After the guard changed an account row: count its generation up (``revoke``:
        every token issued before is void), renew its HMAC, and return the generation,
        which the caller's audit entry records (:meth:`_account_intact`)."""
        row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        generation = int(row.generation or 0) + 1
        values = {"generation": generation,
                  "tokens_from": generation if revoke else int(row.tokens_from or 0)}
        sealed = SimpleNamespace(**{**row._mapping, **values})
        conn.execute(update(accounts).where(accounts.c.id == account_id).values(
            mac=self._akey().mac(ident.account_mac_input(sealed)), **values))
        return generation

    def _account_intact(self, conn: Any, row: Any) -> bool:
        """The row's HMAC holds, and it is the latest the guard wrote: its generation is
        the one the account's last audit entry recorded (an older sealed copy of the row
        put back in the database, to undo a disabling, a reset or a used TOTP code, is
        refused). Every sign-in records the generation too, so the latest entry of the
        account answers (no walk back through its sign-ins)."""
        key = self._akey()
        if not ident.account_intact(key, row):
            return False
        for entry in conn.execute(
                select(audit_log).where(audit_log.c.actor.in_((row.id, OPERATOR[0])),
                                        audit_log.c.action.in_(ACCOUNT_ACTIONS))
                .order_by(audit_log.c.seq.desc())):
            detail = json.loads(entry.detail or "{}")
            if detail.get("account") == row.id and "generation" in detail:
                if entry_problem(entry, key) is not None:  # the log itself was written
                    raise StoreError(Errors.G108.format(entry=entry.seq))
                return int(detail["generation"]) == int(row.generation or 0)
        return False

    @staticmethod
    def _revoke_tokens(conn: Any, account_id: str) -> int:
        return conn.execute(update(api_tokens).where(api_tokens.c.account_id == account_id,
                                                     api_tokens.c.revoked_at.is_(None))
                            .values(revoked_at=time.time())).rowcount

    def list_accounts(self) -> list[AccountInfo]:
        """Every account, without any secret."""
        now = time.time()
        with self.store.engine.connect() as conn:
            tokens = dict(conn.execute(select(api_tokens.c.account_id, func.count())
                                       .where(api_tokens.c.revoked_at.is_(None))
                                       .group_by(api_tokens.c.account_id)).all())
            rows = list(conn.execute(select(accounts).order_by(accounts.c.id)))
        return [AccountInfo(r.id, r.role, r.status, bool(r.locked_until and r.locked_until > now),
                            r.totp_secret is not None, int(tokens.get(r.id, 0)), r.created_at)
                for r in rows]

    def issue_token(self, who: str | Principal) -> str:
        """A new API token, shown once, kept as an HMAC.

        ``who`` is a principal signed in with a password (and TOTP code): a token for
        the person's own account, audited as theirs. ``who`` is a name: the operator's
        token for an auditor account (a script that reads the aggregates). A reviewer or
        supervisor makes their own token, so that whoever holds the operator's keys cannot
        act as them without a reset the person would notice (G141); a principal of a
        token cannot make another (G142)."""
        key = self._akey()
        with self.store.write() as conn:
            if isinstance(who, str):
                account_id, actor = ident.canonical_id(who), OPERATOR
            else:
                p = self._principal(conn, who, *ROLES)
                if p.method == "token":
                    raise StoreError(Errors.G142)
                account_id, actor = p.account_id, (p.account_id, p.role)
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
            if row is None or row.status != "active":
                raise StoreError(Errors.G133)
            if not self._account_intact(conn, row):
                raise StoreError(Errors.G140.format(account=account_id))
            if actor == OPERATOR and row.role in SECOND_FACTOR_ROLES:
                raise StoreError(Errors.G141.format(role=row.role))
            generation = int(row.generation)
            token_id, token, digest = ident.new_token(key, account_id, generation)
            conn.execute(insert(api_tokens).values(id=token_id, account_id=account_id,
                                                   digest=digest, generation=generation,
                                                   created_at=time.time()))
            self._log(conn, actor, "token_issued", detail={"account": account_id})
        return token

    def sign_in(self, name: str, password: str, code: str | None = None) -> Principal:
        """Sign in with a password and, for reviewers and supervisors, a TOTP code.

        Every attempt is audited; ``MAX_FAILURES`` failures in a row lock the account for
        ``LOCKOUT_SECONDS``. Every failure is the same error (G130)."""
        self._akey()
        try:
            account_id: str | None = ident.canonical_id(name)
        except StoreError:
            account_id = None
        now = time.time()
        failure: str | None = None
        with self.store.write() as conn:
            row = None if account_id is None else conn.execute(
                select(accounts).where(accounts.c.id == account_id).with_for_update()).first()
            password_ok = ident.password_matches(row.password_hash if row else None, password)
            if row is None:
                failure = "unknown_account"
            elif not self._account_intact(conn, row):
                failure = "account_integrity"
            elif row.status != "active":
                failure = "disabled"
            elif row.locked_until and row.locked_until > now:
                failure = "locked"
            elif not password_ok:
                failure = "wrong_password"
            step = None
            if failure is None and row.totp_secret is not None:
                secret = self._totp_secret(row)
                step = ident.totp_step(secret, code, row.totp_last_step, now)
                if step is None:
                    failure = "wrong_code"
            if failure is None and row.role in SECOND_FACTOR_ROLES and row.totp_secret is None:
                failure = "no_second_factor"
            if failure is not None:
                self._failed(conn, row, failure, now)
            else:
                conn.execute(update(accounts).where(accounts.c.id == row.id).values(
                    failed_attempts=0, locked_until=None,
                    totp_last_step=step if step is not None else row.totp_last_step))
                method = "password+totp" if step is not None else "password"
                # a code used is sealed in the row (no replay): a new generation
                generation = (self._seal_account(conn, row.id) if step is not None
                              else int(row.generation))
                self._log(conn, (row.id, row.role), "signed_in", detail={
                    "method": method, "account": row.id, "generation": generation})
                principal = ident.issue(row.id, row.role, method, self.store_id,
                                        bool(row.must_change_password))
        if failure == "account_integrity":
            raise StoreError(Errors.G140.format(account=account_id))
        if failure is not None:
            raise StoreError(Errors.G130)
        return principal

    def _totp_secret(self, row: Any) -> str:
        _, skeys = self._need_keys()
        try:
            return skeys.open_secret(row.totp_secret, row.id.encode()).decode()
        except Exception:
            raise MasterKeyError(Errors.G008) from None

    def _failed(self, conn: Any, row: Any, reason: str, now: float) -> None:
        if row is None:
            self._log(conn, ("unknown", "none"), "sign_in_failed", detail={"reason": reason})
            return
        failed = int(row.failed_attempts or 0) + (reason != "locked")
        locked = failed >= ident.MAX_FAILURES
        conn.execute(update(accounts).where(accounts.c.id == row.id).values(
            failed_attempts=0 if locked else failed,
            locked_until=now + ident.LOCKOUT_SECONDS if locked else row.locked_until))
        self._log(conn, (row.id, row.role), "sign_in_failed",
                  detail={"reason": reason, "failures": failed, "locked": locked})

    def change_password(self, principal: Principal, new_password: str) -> Principal:
        """Replace the issued password (required before acting); a new Principal."""
        if not isinstance(new_password, str) or len(new_password) < ident.MIN_PASSWORD:
            raise StoreError(Errors.G135.format(n=ident.MIN_PASSWORD))
        with self.store.write() as conn:
            p = self._principal(conn, principal, *ROLES, allow_password_change=True)
            if p.method == "token":  # whoever holds a token cannot take over the account
                raise StoreError(Errors.G143)
            old = conn.execute(select(accounts.c.password_hash)
                               .where(accounts.c.id == p.account_id)).scalar()
            if ident.password_matches(old, new_password):
                raise StoreError(Errors.G135.format(n=ident.MIN_PASSWORD))
            conn.execute(update(accounts).where(accounts.c.id == p.account_id).values(
                password_hash=ident.hasher().hash(new_password), must_change_password=False))
            generation = self._seal_account(conn, p.account_id)
            self._log(conn, p, "password_changed",
                      detail={"account": p.account_id, "generation": generation})
        return ident.issue(p.account_id, p.role, p.method, self.store_id)

    def authenticate(self, token: str) -> Principal:
        """The principal of an API token (audited; a failure is G131)."""
        key = self._akey()
        parsed = ident.parse_token(token)
        principal = None
        tampered = False
        with self.store.write() as conn:
            row = account = None
            if parsed is not None:
                row = conn.execute(select(api_tokens).where(api_tokens.c.id == parsed[0])
                                   ).first()
            if row is not None:
                account = conn.execute(select(accounts).where(
                    accounts.c.id == row.account_id)).first()
                tampered = account is not None and not self._account_intact(conn, account)
            if (row is not None and account is not None and not tampered
                    and row.revoked_at is None and account.status == "active"
                    and int(row.generation) >= int(account.tokens_from)  # not revoked since
                    and ident.digest_matches(key, row.id, row.account_id, int(row.generation),
                                             parsed[1], row.digest)):  # type: ignore[index]
                self._log(conn, (account.id, account.role), "signed_in", detail={
                    "method": "token", "account": account.id,
                    "generation": int(account.generation)})
                principal = ident.issue(account.id, account.role, "token", self.store_id,
                                        bool(account.must_change_password))
            else:
                who = (account.id, account.role) if account is not None else ("unknown",
                                                                              "none")
                self._log(conn, who, "sign_in_failed", detail={
                    "reason": "account_integrity" if tampered else "bad_token"})
        if tampered:
            raise StoreError(Errors.G140.format(account=account.id))  # type: ignore[union-attr]
        if principal is None:
            raise StoreError(Errors.G131)
        return principal

    # -- triage ----------------------------------------------------------------------
    def triage(self, result: ScoreResult, excerpt: EvidenceExcerpt, *,
               region: str = "EU") -> str | None:
        """Open a case for a flagged result, with its evidence excerpt encrypted (the
        pipeline's text boundary cut the excerpt). Returns the case id; the same
        conversation scored again by the same model returns the same case."""
        if not result.flagged:
            return None
        keys, skeys = self._need_keys()
        conversation = skeys.pseudonym(result.conversation_id)
        model_version = str(result.model_version)
        found = self._case_of(conversation, model_version)
        if found is not None:
            return found
        case_id = uuid.uuid4().hex
        ks = self.store.key_store
        key_written = False
        try:
            with self.store.write() as conn:
                self.store.lock_head(conn)  # no orphan-key sweep can run past this key
                if self.store.meta(conn, "key_fingerprint") != keys.fingerprint:
                    raise MasterKeyError(Errors.G004.format(
                        got=keys.fingerprint, expected=self.store.meta(conn, "key_fingerprint")))
                found = conn.execute(select(cases.c.id).where(
                    cases.c.conversation_pseudonym == conversation,
                    cases.c.model_version == model_version)).scalar()
                if found is not None:
                    return str(found)
                now = time.time()
                expires_at = round(now + self.retention_days * 86400.0, 6)
                subject = result.subject or ""
                stats_ref = skeys.stats_pseudonym(subject)
                data_key = new_data_key()
                conn.execute(insert(cases).values(
                    id=case_id, conversation_pseudonym=conversation,
                    subject_pseudonym=skeys.pseudonym(subject), stats_ref=stats_ref,
                    region=region, created_at=now,
                    expires_at=expires_at, status="open",
                    score=float(result.score or 0.0), threshold=float(result.threshold or 0.0),
                    model_version=model_version, explanation=json.dumps(dict(result.risk_factors)),
                    excerpt_messages=int(excerpt.n_messages), minor_to_minor=False,
                    viewed_in_claim=False))
                conn.execute(insert(evidence).values(
                    case_id=case_id, ciphertext=seal(data_key, excerpt.plaintext,
                                                     case_id.encode())))
                stats = account_stat(self, conn, stats_ref, now, flags=1)
                ks.put(case_id, keys.wrap(data_key, case_id.encode()))
                key_written = True
                # no score in the log: the case row's score is erased at a dismissal, and
                # the audit log is never rewritten
                # the deadline is kept in the log as well: one changed in the row later
                # neither keeps a case longer nor deletes it earlier (purge_expired)
                self._log(conn, SYSTEM, "case_opened", case_id,
                          {"excerpt_messages": int(excerpt.n_messages),
                           "expires_at": expires_at},
                          counters={"cases.opened": 1, **stats})
        except IntegrityError:  # the same conversation, triaged at once elsewhere
            if key_written:
                ks.destroy(case_id)
            found = self._case_of(conversation, model_version)
            if found is None:
                raise
            return found
        except BaseException:
            if key_written:
                ks.destroy(case_id)
            raise
        return case_id

    def _case_of(self, conversation: str, model_version: str) -> str | None:
        with self.store.engine.connect() as conn:
            found = conn.execute(select(cases.c.id).where(
                cases.c.conversation_pseudonym == conversation,
                cases.c.model_version == model_version)).scalar()
        return str(found) if found is not None else None

    # -- review ----------------------------------------------------------------------
    def queue(self, principal: Principal, *, limit: int | None = None, offset: int = 0,
              mine: bool = False) -> list[dict[str, Any]]:
        """Open and claimed cases, oldest first (no content): id, status, score, model
        version, opened and deadline (epoch seconds), and whether you hold it.

        ``limit`` and ``offset`` page through the queue; ``mine`` keeps only the cases
        this person holds."""
        with self.store.engine.connect() as conn:
            p = self._principal(conn, principal, "reviewer", "supervisor")
            page = (select(cases.c.id, cases.c.status, cases.c.score, cases.c.model_version,
                           cases.c.created_at, cases.c.expires_at, cases.c.claimed_by)
                    .where(cases.c.status.in_(("open", "claimed")))
                    .order_by(cases.c.created_at, cases.c.id))
            if mine:
                page = page.where(cases.c.status == "claimed",
                                  cases.c.claimed_by == p.account_id)
            if limit is not None:
                page = page.limit(max(0, int(limit))).offset(max(0, int(offset)))
            # the recorded deadline read for the page's cases only, not for those skipped
            held = page.subquery()
            with _log_read():
                rows = conn.execute(select(*held.c, _recorded_deadline(
                    conn, held.c.id, held.c.expires_at).label("deadline"))
                    .order_by(held.c.created_at, held.c.id)).all()
            return [{"case_id": r.id, "status": r.status, "score": r.score,
                     "model_version": r.model_version, "opened_at": r.created_at,
                     "expires_at": r.deadline, "mine": r.claimed_by == p.account_id}
                    for r in rows]

    def confirmed_cases(self, principal: Principal) -> list[dict[str, Any]]:
        """For supervisors: confirmed cases awaiting export, oldest decision first (no
        content), and whether this supervisor may export each (not their own decision,
        no open complaint)."""
        with self.store.engine.connect() as conn:
            p = self._principal(conn, principal, "supervisor")
            with _log_read():
                rows = conn.execute(select(cases.c.id, cases.c.decided_at, cases.c.decided_by,
                                           cases.c.decision_reason,
                                           _recorded_deadline(conn).label("deadline"),
                                           cases.c.open_complaint)
                                    .where(cases.c.status == "confirmed")
                                    .order_by(cases.c.decided_at)).all()
            return [{"case_id": r.id, "decided_at": r.decided_at, "reason": r.decision_reason,
                     "expires_at": r.deadline, "open_complaint": r.open_complaint is not None,
                     "may_export": r.decided_by != p.account_id and r.open_complaint is None}
                    for r in rows]

    def case_summary(self, case_id: str, principal: Principal) -> dict[str, Any]:
        """A case without its evidence: score, threshold, model version, risk-factor
        contributions, status, deadline (reviewers and supervisors)."""
        case_id = case_key(case_id)
        with self.store.engine.connect() as conn:
            self._principal(conn, principal, "reviewer", "supervisor")
            with _log_read():
                row = conn.execute(select(cases, _recorded_deadline(conn).label("deadline"))
                                   .where(cases.c.id == case_id)).first()
        if row is None:
            raise StoreError(Errors.G103.format(case_id=shown(case_id)))
        return {"case_id": row.id, "status": row.status, "score": row.score,
                "threshold": row.threshold, "model_version": row.model_version,
                "risk_factors": json.loads(row.explanation) if row.explanation else {},
                "excerpt_messages": row.excerpt_messages, "opened_at": row.created_at,
                "expires_at": row.deadline, "decision_reason": row.decision_reason,
                "minor_to_minor": bool(row.minor_to_minor)}

    def claim(self, case_id: str, principal: Principal) -> bool:
        """Claim an open case; False if someone else holds it or it is not open.

        A claim older than ``CLAIM_HOURS`` (a reviewer who left without releasing it) may
        be taken over: the new claim views the evidence again, and the audit entry names
        the former holder."""
        case_id = case_key(case_id)
        now = time.time()
        with self.store.write() as conn:
            p = self._principal(conn, principal, "reviewer")
            row = conn.execute(select(cases.c.status, cases.c.claimed_by, cases.c.claimed_at)
                               .where(cases.c.id == case_id).with_for_update()).first()
            stale = (row is not None and row.status == "claimed" and row.claimed_at is not None
                     and row.claimed_at < now - CLAIM_HOURS * 3600.0
                     and row.claimed_by != p.account_id)
            free = cases.c.claimed_by.is_(None) & (cases.c.status == "open")
            if stale:
                free = (cases.c.status == "claimed") & (cases.c.claimed_by == row.claimed_by)
            got = conn.execute(update(cases).where(cases.c.id == case_id, free)
                               .values(status="claimed", claimed_by=p.account_id,
                                       claimed_at=now, viewed_in_claim=False)).rowcount
            if got:
                self._log(conn, p, "case_claimed", case_id,
                          {"taken_over_from": row.claimed_by} if stale else None)
            return bool(got)

    def release_claim(self, case_id: str, principal: Principal) -> None:
        """A supervisor gives back to the queue a case another reviewer holds (one who
        left, or is away); audited with the former holder."""
        case_id = case_key(case_id)
        with self.store.write() as conn:
            p = self._principal(conn, principal, "supervisor")
            row = conn.execute(select(cases.c.status, cases.c.claimed_by)
                               .where(cases.c.id == case_id).with_for_update()).first()
            if row is None:
                raise StoreError(Errors.G103.format(case_id=shown(case_id)))
            if row.status != "claimed":
                raise StoreError(Errors.G112.format(case_id=shown(case_id), status=row.status))
            conn.execute(update(cases).where(cases.c.id == case_id,
                                             cases.c.claimed_by == row.claimed_by)
                         .values(status="open", claimed_by=None, claimed_at=None,
                                 viewed_in_claim=False))
            self._log(conn, p, "claim_released", case_id, {"holder": row.claimed_by})

    def release_all(self, principal: Principal) -> int:
        """Release every case this reviewer holds (at sign-out); returns how many. A
        sign-in that has expired, or an account disabled meanwhile, releases nothing (its
        claims may be taken over after ``CLAIM_HOURS``) and does not stop the sign-out."""
        try:
            if ident.genuine(principal, self.store_id).role != "reviewer":
                return 0
            held = [c["case_id"] for c in self.queue(principal, mine=True)]
        except StoreError:
            return 0
        for case_id in held:
            self.release(case_id, principal)
        return len(held)

    def release(self, case_id: str, principal: Principal) -> None:
        """Give a claimed case back to the queue (a new claim views the evidence again)."""
        case_id = case_key(case_id)
        with self.store.write() as conn:
            p = self._principal(conn, principal, "reviewer")
            self._held(conn, case_id, p)
            self._transition(conn, case_id, p, status="open", claimed_by=None,
                             claimed_at=None, viewed_in_claim=False)
            self._log(conn, p, "case_released", case_id)

    def _held(self, conn: Any, case_id: str, p: Principal) -> Any:
        """The case row, locked, if ``p`` holds its claim; else the coded reason why not."""
        row = conn.execute(select(cases).where(cases.c.id == case_id).with_for_update()).first()
        if row is None:
            raise StoreError(Errors.G103.format(case_id=shown(case_id)))
        if row.status not in ("open", "claimed"):
            raise StoreError(Errors.G112.format(case_id=shown(case_id), status=row.status))
        if row.status != "claimed" or row.claimed_by != p.account_id:
            raise StoreError(Errors.G104.format(case_id=shown(case_id)))
        return row

    @staticmethod
    def _transition(conn: Any, case_id: str, p: Principal, *, viewed: bool | None = None,
                    **values: Any) -> None:
        """One conditional update from "claimed by p"; exactly one row or G117."""
        where = [cases.c.id == case_id, cases.c.status == "claimed",
                 cases.c.claimed_by == p.account_id]
        if viewed:
            where.append(cases.c.viewed_in_claim.is_(True))
        if conn.execute(update(cases).where(*where).values(**values)).rowcount != 1:
            now = conn.execute(select(cases.c.status).where(cases.c.id == case_id)).scalar()
            raise StoreError(Errors.G117.format(case_id=shown(case_id), status=now))

    def view_evidence(self, case_id: str, principal: Principal) -> dict[str, Any]:
        """Decrypt the evidence for the reviewer holding the case: the decryption and its
        audit entry are one transaction (no view without its entry)."""
        case_id = case_key(case_id)
        with self.store.write() as conn:
            p = self._principal(conn, principal, "reviewer")
            self._held(conn, case_id, p)
            self._transition(conn, case_id, p, viewed_in_claim=True)
            plain = self._decrypt(conn, case_id)
            self._log(conn, p, "evidence_viewed", case_id)
        return plain

    def _decrypt(self, conn: Any, case_id: str) -> dict[str, Any]:
        keys, _ = self._need_keys()
        wrapped = self.store.key_store.get(case_id)
        blob = conn.execute(select(evidence.c.ciphertext)
                            .where(evidence.c.case_id == case_id)).scalar()
        if wrapped is None or blob is None:
            raise StoreError(Errors.G105.format(case_id=shown(case_id)))
        data_key = keys.unwrap(wrapped, case_id.encode())
        return json.loads(unseal(data_key, blob, case_id.encode()))

    def _shred(self, conn: Any, case_id: str) -> None:
        """Destroy a case's evidence: its data key (erased in the key store, before the
        transaction commits) and its ciphertext row."""
        conn.execute(delete(evidence).where(evidence.c.case_id == case_id))
        self.store.key_store.destroy(case_id)

    def decide(self, case_id: str, principal: Principal, decision: str, reason: str, *,
               minor_to_minor: bool = False) -> None:
        """Confirm (only after viewing the evidence in this claim) or dismiss a claimed
        case. A dismissal destroys its evidence and deletes its pseudonyms, score and
        explanation at once."""
        case_id = case_key(case_id)
        allowed = CONFIRM_REASONS if decision == "confirm" else DISMISS_REASONS
        if decision not in ("confirm", "dismiss") or reason not in allowed:
            raise StoreError(Errors.G106.format(confirm=", ".join(CONFIRM_REASONS),
                                                dismiss=", ".join(DISMISS_REASONS)))
        confirm = decision == "confirm"
        with self.store.write() as conn:
            p = self._principal(conn, principal, "reviewer")
            row = self._held(conn, case_id, p)
            if confirm and not row.viewed_in_claim:
                raise StoreError(Errors.G113.format(case_id=shown(case_id)))
            status = "confirmed" if confirm else "dismissed"
            values: dict[str, Any] = {"status": status, "decided_by": p.account_id,
                                      "decided_at": time.time(), "decision_reason": reason,
                                      "minor_to_minor": bool(minor_to_minor)}
            if not confirm:
                values |= FORGET
            self._transition(conn, case_id, p, viewed=confirm, **values)
            if not confirm:
                self._shred(conn, case_id)
            stats = account_stat(self, conn, row.stats_ref, row.created_at, **{status: 1})
            self._log(conn, p, f"case_{status}", case_id,
                      {"reason": reason, "minor_to_minor": bool(minor_to_minor)},
                      counters={f"cases.{status}": 1, **stats})
        if not confirm:
            self.store.truncate_wal()

    # -- retention -------------------------------------------------------------------
    def purge_expired(self) -> int:
        """Delete every case whose deadline has passed (evidence, key, complaints, row),
        then every key no case holds (left by a crash). Needs the audit key only.

        The deadline is the one recorded in the case's ``case_opened`` audit entry (the
        row's copy only for a case opened before it was recorded there), and the time is
        this host's clock: neither a caller nor an edit of the row moves it."""
        self._akey()
        now = time.time()
        with self.store.write() as conn:
            held = _deadlines(conn)
            with _log_read():
                due = [r.id for r in conn.execute(select(held.c.id)
                                                  .where(held.c.deadline <= now)).all()]
            ids = [r.id for r in conn.execute(select(cases.c.id).where(cases.c.id.in_(due))
                                              .with_for_update())] if due else []
            for case_id in ids:
                self._shred(conn, case_id)
                conn.execute(delete(complaints).where(complaints.c.case_id == case_id))
                conn.execute(delete(cases).where(cases.c.id == case_id))
                self._log(conn, SYSTEM, "case_purged", case_id, counters={"cases.purged": 1})
        self.sweep_orphan_keys()
        self.store.truncate_wal()
        return len(ids)

    def sweep_orphan_keys(self) -> int:
        """Erase every key in the key store that no case's evidence needs (a crash between
        writing a key and committing its case leaves one); audited."""
        ks = self.store.key_store
        with self.store.write() as conn:
            self.store.lock_head(conn)  # a triage holds it from before its key is written
            live = {r for (r,) in conn.execute(select(evidence.c.case_id))}
            orphans = [n for n in ks.names() if n != STORE_SECRET and n not in live]
            for name in orphans:
                ks.destroy(name)
            if orphans:
                self._log(conn, SYSTEM, "orphan_keys_destroyed", detail={"keys": len(orphans)})
        return len(orphans)

    # -- the audit log ---------------------------------------------------------------
    def verify(self, checkpoints: Any = (), public_key: Any = None) -> Any:
        """:meth:`Store.verify_audit_log` with this guard's audit key (if it has one)."""
        return self.store.verify_audit_log(self._audit, checkpoints=checkpoints,
                                           public_key=public_key)

    def checkpoint(self, signer: CheckpointSigner) -> Checkpoint:
        """Sign the head of a verified audit log (the caller writes it outside the
        database): the last entry that verification checked, never one appended after it;
        the export is itself an audit entry, after the signed head."""
        result = self.verify()
        if not result.intact:
            raise StoreError(Errors.G108.format(entry=result.broken_at))
        seq, digest = result.entries, result.head_hash
        with self.store.write() as conn:
            cp = signer.sign(self.store_id, seq, digest)
            self._log(conn, SYSTEM, "audit_checkpoint",
                      detail={"seq": seq, "hash": digest, "key_id": signer.key_id})
        return cp

    def aggregates(self, principal: Principal, *,
                   verification: AuditVerification | None = None) -> dict[str, Any]:
        """Figures for auditors and supervisors: counters, cases by status, retention,
        decision latency, error rate by year and the audit log's state. Never content,
        never an id.

        ``verification``: a result of :meth:`verify` made earlier (a console verifies in
        the background, as a full verification reads the whole log); by default the log
        is verified now."""
        with self.store.engine.connect() as conn:
            self._principal(conn, principal, "auditor", "supervisor")
        return aggregates(self, verification)

    def transparency(self, principal: Principal, year: int, *,
                     organisations: tuple[str, ...] = ()) -> dict[str, Any]:
        """The annual transparency report's figures for ``year`` (auditors and
        supervisors; aggregates only)."""
        from ._redress import transparency_report

        with self.store.engine.connect() as conn:
            self._principal(conn, principal, "auditor", "supervisor")
        return transparency_report(self.store, int(year), organisations=organisations,
                                   retention_days=self.retention_days)


def _recorded_deadline(conn: Any, case_id: Any = None, row_deadline: Any = None) -> Any:
    """The deadline each case's first ``case_opened`` audit entry recorded, as a column of
    a query on ``cases`` (or on ``case_id`` and ``row_deadline`` of a subquery of it; the
    row's copy for a case opened before the entry recorded it). Computed in the database,
    which reads the entry's JSON: one changed in the row is neither believed nor shown; a
    second entry appended for a case changes nothing."""
    logged = _logged_deadline(conn)
    case_id = cases.c.id if case_id is None else case_id
    first = (select(logged)
             .where(audit_log.c.case_id == case_id, audit_log.c.action == "case_opened")
             .order_by(audit_log.c.seq).limit(1).correlate_except(audit_log).scalar_subquery())
    return func.coalesce(first, cases.c.expires_at if row_deadline is None else row_deadline)


_MAX_DEADLINE = 1e11  # epoch seconds (the year 5138): beyond it, not a deadline


def _logged_deadline(conn: Any) -> Any:
    """The deadline a ``case_opened`` entry recorded, read in the database: a finite
    number, or NULL for an entry written before deadlines were recorded (a JSON object
    without ``expires_at``: the row's copy applies). Any other detail (not JSON, not an
    object, a deadline that is no number or out of range) was edited in the database:
    the expression then fails the query (division by zero, or malformed JSON on SQLite),
    which :func:`_log_read` turns into G144; never a silent 0, 1 or infinity."""
    detail = audit_log.c.detail
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        j = cast(detail, JSONB)  # text that is not JSON: an error here already
        value = j["expires_at"]
        legacy = (func.jsonb_typeof(j) == "object") & ~j.has_key("expires_at")
        number = (func.jsonb_typeof(value) == "number") & (
            func.abs(cast(value.astext, Numeric)) <= _MAX_DEADLINE)
        damaged = literal(1) / (func.length(detail) * 0)
        return case((number, cast(value.astext, Float)), (legacy, null()), else_=damaged)
    # (SQLite 3.40 parses the JSON once per call: the common entry, a number, is read
    # with three calls, the number's branch first)
    kind = func.json_type(detail, "$.expires_at")  # malformed JSON: an error already
    value = func.json_extract(detail, "$.expires_at")
    number = kind.in_(("integer", "real")) & (func.abs(value) <= _MAX_DEADLINE)
    legacy = (func.json_type(detail) == "object") & kind.is_(None)
    damaged = func.json(detail.concat("!"))  # malformed JSON, whatever the detail
    return case((number, cast(value, Float)), (legacy, null()), else_=damaged)


@contextlib.contextmanager
def _log_read() -> Iterator[None]:
    """A query that reads audit entries' JSON in the database: an entry edited into
    something else than what the guard writes fails it with G144 (naming no value), not
    with the database's error (which may quote the value)."""
    try:
        yield
    except DataError:  # PostgreSQL: not JSON, a deadline that is no number (the guard
        raise StoreError(Errors.G144) from None  # writes only numbers), out of range
    except DBAPIError as exc:
        if "json" not in str(exc.orig).lower():
            raise
        raise StoreError(Errors.G144) from None


def _deadlines(conn: Any) -> Any:
    """Every case held, as a common table expression: ``id``, ``row_deadline`` (the row's
    copy) and ``deadline``, the one recorded in its audit entry (see
    :func:`_recorded_deadline`). Materialised: read three times by the aggregates, an
    inlined subquery looked each deadline up three times (385 against 130 ms at 10,000
    cases on PostgreSQL)."""
    return (select(cases.c.id, cases.c.expires_at.label("row_deadline"),
                   _recorded_deadline(conn).label("deadline"))
            .cte("held_deadlines").prefix_with("MATERIALIZED"))


FORGET = {"conversation_pseudonym": None, "subject_pseudonym": None, "stats_ref": None,
          "score": None, "threshold": None, "explanation": None}


def aggregates(guard: Guard, verification: AuditVerification | None = None
               ) -> dict[str, Any]:
    store = guard.store
    now = time.time()
    with store.snapshot() as conn:
        by_status = dict(conn.execute(select(cases.c.status, func.count())
                                      .group_by(cases.c.status)).all())
        held = conn.execute(select(func.count(), func.min(cases.c.created_at))).first()
        d = _deadlines(conn)
        with _log_read():
            deadlines = conn.execute(select(
                func.min(d.c.deadline), func.count().filter(d.c.deadline <= now),
                # a row whose deadline differs from the one its case_opened entry recorded
                # was edited in the database (the entry's applies)
                func.count().filter(func.abs(d.c.row_deadline - d.c.deadline) > 1e-3))).first()
        # counted in the database: a store holds tens of thousands of cases and accounts
        opened, decided = audit_log.alias("opened"), audit_log.alias("decided")
        latency = sorted((ts or 0.0) / 3600.0 for (ts,) in conn.execute(
            select(decided.c.ts - opened.c.ts)
            .select_from(decided.join(opened, (opened.c.case_id == decided.c.case_id)
                                      & (opened.c.action == "case_opened")))
            .where(decided.c.action.in_(("case_confirmed", "case_dismissed")))))
        stats = conn.execute(select(flag_accounts.c.year, func.count(), func.sum(
            case(((flag_accounts.c.dismissed > 0) & (flag_accounts.c.confirmed <= 0), 1),
                 else_=0))).group_by(flag_accounts.c.year)).all()
        last_cp = conn.execute(select(audit_log.c.seq, audit_log.c.ts)
                               .where(audit_log.c.action == "audit_checkpoint")
                               .order_by(audit_log.c.seq.desc()).limit(1)).first()
    years: dict[int, dict[str, Any]] = {
        int(year): {"A3": int(a3), "B3": int(b3 or 0)} for year, a3, b3 in stats}
    for y in years.values():
        y["B3_over_A3"] = y["B3"] / y["A3"] if y["A3"] else None
    verification = verification if verification is not None else guard.verify()
    return {
        "counters": store.counters(),
        "cases_by_status": by_status,
        "retention": {"retention_days": guard.retention_days, "cases_held": held[0],
                      "oldest_case_age_days": (now - held[1]) / 86400.0 if held[1] else None,
                      "next_deadline_in_days": (deadlines[0] - now) / 86400.0
                      if deadlines[0] is not None else None,
                      "past_deadline": deadlines[1], "deadlines_altered": deadlines[2]},
        "decision_latency_hours": {
            "decisions": len(latency),
            "median": latency[len(latency) // 2] if latency else None,
            "p90": latency[min(len(latency) - 1, int(0.9 * len(latency)))] if latency else None,
            "max": latency[-1] if latency else None},
        "error_rate_by_year": years,
        "audit_log": {"intact": verification.intact, "entries": verification.entries,
                      "macs_checked": verification.macs_checked,
                      "last_checkpoint_entry": last_cp.seq if last_cp else None,
                      "last_checkpoint_at": datetime.fromtimestamp(last_cp.ts, UTC).isoformat()
                      if last_cp else None,
                      "entries_since_checkpoint": verification.entries - last_cp.seq
                      if last_cp else verification.entries},
    }


def account_stat(guard: Guard, conn: Any, pseudonym: str | None, ts: float, *,
                 flags: int = 0, confirmed: int = 0, dismissed: int = 0) -> dict[str, int]:
    """Change a flagged account's tallies for the year of ``ts`` (its row's MAC renewed);
    returns the counter changes for the caller's audit entry."""
    if pseudonym is None:
        return {}
    year = datetime.fromtimestamp(ts, UTC).year
    deltas = {"flags": flags, "confirmed": confirmed, "dismissed": dismissed}
    key = (flag_accounts.c.year == year) & (flag_accounts.c.subject_pseudonym == pseudonym)
    row = conn.execute(select(flag_accounts).where(key).with_for_update()).first()
    values = {c: (getattr(row, c) if row is not None else 0) + deltas[c] for c in STATS_COLUMNS}
    mac = guard._akey().mac(stats_mac_input(year, pseudonym, values.values()))
    if row is None:
        conn.execute(insert(flag_accounts).values(year=year, subject_pseudonym=pseudonym,
                                                  mac=mac, **values))
    else:
        conn.execute(update(flag_accounts).where(key).values(mac=mac, **values))
    return {stats_counter(year, c): d for c, d in deltas.items() if d}


def case_entries(conn: Any, key: AuditKey, case_id: str) -> list[Any] | None:
    """A case's audit entries in order, each one's hash and MAC checked in the caller's
    transaction (None if any fails: written without the key). The log, not the case
    row, is what a state change without the guard cannot fake."""
    rows = conn.execute(select(audit_log).where(audit_log.c.case_id == case_id)
                        .order_by(audit_log.c.seq)).all()
    return None if any(entry_problem(r, key) for r in rows) else list(rows)


def _open_complaints(rows: list[Any]) -> set[str]:
    """Complaints the log shows lodged and not yet decided."""
    open_: set[str] = set()
    for r in rows:
        complaint = json.loads(r.detail or "{}").get("complaint")
        if r.action == "complaint_received":
            open_.add(complaint)
        elif r.action in ("complaint_upheld", "complaint_rejected"):
            open_.discard(complaint)
    return open_


def _confirmation_in_log(rows: list[Any], reviewer: str) -> bool:
    """The log holds the reviewer's claim, evidence view and confirmation of the case,
    in that order, with no other claim in between (``rows``: :func:`case_entries`, read
    in the export's own transaction, so an entry written after the verification without
    the key does not count)."""
    claimed = viewed = False
    for action, actor, role in ((r.action, r.actor, r.role) for r in rows):
        if action == "case_claimed":
            claimed, viewed = actor == reviewer and role == "reviewer", False
        elif action == "evidence_viewed" and claimed and actor == reviewer:
            viewed = True
        elif action == "case_confirmed" and claimed and viewed and actor == reviewer \
                and role == "reviewer":
            return True
    return False


def export_report(guard: Guard, case_id: str, principal: Principal) -> Report:
    """Export a report for a confirmed case: the one path to a :class:`Report`.

    A supervisor who is not the confirming reviewer; no open complaint; the audit log
    intact with every MAC checked, holding that reviewer's claim, evidence view and
    confirmation of this case (a status edited in the database alone is not enough); the
    case moves ``confirmed -> reported`` once (concurrent exports: one report). Then the
    evidence is decrypted and the reported account re-identified.
    """
    case_id = case_key(case_id)
    guard._need_keys()
    with guard.store.engine.connect() as conn:
        guard._principal(conn, principal, "supervisor")
    result = guard.verify()
    if not result.intact:
        raise StoreError(Errors.G108.format(entry=result.broken_at))
    with guard.store.write() as conn:
        p = guard._principal(conn, principal, "supervisor")
        row = conn.execute(select(cases).where(cases.c.id == case_id).with_for_update()).first()
        if row is None:
            raise StoreError(Errors.G103.format(case_id=shown(case_id)))
        if row.status != "confirmed" or not row.decided_by:
            raise StoreError(Errors.G109.format(case_id=shown(case_id), status=row.status))
        if row.open_complaint is not None:
            raise StoreError(Errors.G114.format(case_id=shown(case_id)))
        if row.decided_by == p.account_id:
            raise StoreError(Errors.G111)
        rows = case_entries(conn, guard._akey(), case_id)
        if rows is None or not _confirmation_in_log(rows, row.decided_by):
            raise StoreError(Errors.G110.format(case_id=shown(case_id)))
        if any(r.action == "report_exported" for r in rows):  # the status was reset
            raise StoreError(Errors.G109.format(case_id=shown(case_id), status="reported"))
        if _open_complaints(rows):  # the row's open_complaint was cleared by hand
            raise StoreError(Errors.G114.format(case_id=shown(case_id)))
        done = conn.execute(update(cases).where(cases.c.id == case_id,
                                                cases.c.status == "confirmed",
                                                cases.c.open_complaint.is_(None))
                            .values(status="reported")).rowcount
        if done != 1:
            raise StoreError(Errors.G117.format(case_id=shown(case_id), status="reported"))
        plain = guard._decrypt(conn, case_id)
        guard._log(conn, p, "report_exported", case_id, counters={"reports.exported": 1})
    last = plain["messages"][-1]["ts"] if plain["messages"] else None
    return _new_report({
        "case_id": case_id,
        "incident_type": "Online Enticement of Children",
        "incident_time": last,
        "reported_account": plain["subject"],
        "annotations": {"minor_to_minor_interaction": bool(row.minor_to_minor),
                        "human_reviewed_content": True},
        "human_review": {"decision": "confirmed", "reason": row.decision_reason,
                         "decided_at": datetime.fromtimestamp(row.decided_at, UTC).isoformat()},
        "detection": {"model_version": row.model_version, "score": row.score,
                      "threshold": row.threshold},
        "evidence_excerpt": plain["messages"],
        "exported_at": datetime.now(UTC).isoformat(),
    })


def rotate_master_key(store: Store, old: Keys, new: Keys) -> int:
    """Rewrap every key in the key store (each case's data key, the store secret last)
    under ``new``, then record the new fingerprint; audited. Returns how many keys were
    rewrapped. Resumable: after an interruption, run it again with the same two keys
    (a key already under ``new`` is left as it is)."""
    if not isinstance(old, Keys) or not isinstance(new, Keys):
        raise StoreError(Errors.G001)
    store.migrate()
    ks = store.key_store
    with store.write() as conn:
        store.lock_head(conn)
        store_id = store.meta(conn, "store_id") or ""
        expected = store.meta(conn, "key_fingerprint")
        if expected not in (old.fingerprint, new.fingerprint):
            raise MasterKeyError(Errors.G004.format(got=old.fingerprint, expected=expected))
        names = [n for n in ks.names() if n != STORE_SECRET] + [STORE_SECRET]
        moved, secret = 0, None
        for name in names:
            context = (f"{STORE_SECRET}:{store_id}" if name == STORE_SECRET else name).encode()
            blob = ks.get(name)
            if blob is None:
                continue
            try:
                raw = new.unwrap(blob, context)
            except MasterKeyError:
                raw = old.unwrap(blob, context)
                ks.replace(name, new.wrap(raw, context))
                moved += 1
            if name == STORE_SECRET:
                secret = raw
        if secret is None:
            raise MasterKeyError(Errors.G014.format(path=ks))
        conn.execute(update(meta).where(meta.c.name == "key_fingerprint")
                     .values(value=new.fingerprint))
        store._append(conn, StoreKeys(secret).audit, actor="operator", role="operator",
                      action="master_key_rotated",
                      detail={"keys": moved, "from": old.fingerprint, "to": new.fingerprint})
    return moved
