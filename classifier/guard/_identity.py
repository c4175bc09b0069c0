"""Identities: accounts, sign-in, API tokens and the :class:`Principal` they yield.

- An account has one canonical id (the name NFKC-normalised, casefolded, stripped and with
  inner whitespace collapsed: "Ann", "ann " and "ANN" are one person) and one role:
  reviewer, supervisor or auditor. Accounts are kept in the guard store; the operator who
  holds the master key adds, disables and resets them.
- Passwords are hashed with Argon2id (argon2-cffi); reviewers and supervisors also need a
  TOTP code (pyotp, RFC 6238), each code accepted once. The issued password must be
  changed before the account acts on cases. After ``MAX_FAILURES`` failed sign-ins in a
  row the account is locked for ``LOCKOUT_SECONDS``. Every sign-in and every failure is an
  audit entry.
- API tokens (``sct_<id>_<secret>``) are shown once and stored as an HMAC (under the
  audit key) of their id, account, the account's generation at issue and secret part;
  a reset or a disabling voids every token issued before it. Each account row carries an
  HMAC too, over its id, role, status, password hash, TOTP secret, last TOTP step and
  generation, which the guard counts up at every change and records in the change's
  audit entry: someone who can write the database but holds no key can neither add or
  revive a token, nor change a role, nor put back an older copy of a row (G131, G140).
- A :class:`Principal` is what the guard's methods take instead of a name and a role. Only
  the sign-in and the token check make one: it cannot be constructed, copied, pickled or
  ``dataclasses.replace``-d elsewhere, a forged one (``object.__new__``) is not
  recognised, and every use re-reads its account (a disabled account stops at once).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import unicodedata
import weakref
from dataclasses import dataclass, field
from typing import Any

from .._errors import Errors, StoreError
from ._crypto import AuditKey, Sealed

__all__ = ["LOCKOUT_SECONDS", "MAX_FAILURES", "ROLES", "SECOND_FACTOR_ROLES", "AccountInfo",
           "Enrolment", "Principal", "canonical_id"]

ROLES = ("reviewer", "supervisor", "auditor")
SECOND_FACTOR_ROLES = ("reviewer", "supervisor")
MAX_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60
PRINCIPAL_HOURS = 12  # a sign-in lasts at most this long (absolute)
MIN_PASSWORD = 12
TOKEN_PREFIX = "sct"
_TOKEN = re.compile(r"^sct_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_SPACE = re.compile(r"\s+")

# one-time grants: a Principal can be made only with a grant the sign-in just created
_GRANTS: set[int] = set()
_ISSUED: weakref.WeakValueDictionary[int, Principal] = weakref.WeakValueDictionary()
_AS_ISSUED: dict[int, tuple[Any, ...]] = {}  # each issued principal's fields, to compare


def canonical_id(name: object) -> str:
    """The canonical id of an account name: NFKC, casefolded, stripped, one space.

    >>> canonical_id("  ANN ") == canonical_id("ann") == canonical_id("Ａｎｎ")
    True
    """
    if not isinstance(name, str):
        raise StoreError(Errors.G129.format(what="An account name",
                                            expected="1 to 64 printable characters"))
    value = _SPACE.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()
    value = unicodedata.normalize("NFKC", value)  # casefolding can denormalise
    if not 0 < len(value) <= 64 or not value.isprintable():
        raise StoreError(Errors.G129.format(what="An account name",
                                            expected="1 to 64 printable characters"))
    return value


def check_role(role: object) -> str:
    if role not in ROLES:
        raise StoreError(Errors.G129.format(what="role", expected=f"one of {', '.join(ROLES)}"))
    return str(role)


@dataclass(frozen=True, eq=False)
class Principal(Sealed):
    """A signed-in person: the canonical account id and its role.

    Made only by :meth:`Guard.sign_in` and :meth:`Guard.authenticate`; no other way to
    make, copy, pickle or replace one succeeds (G118).
    """

    account_id: str
    role: str
    method: str  # "password+totp", "password" or "token"
    signed_in_at: float
    store_id: str
    must_change_password: bool = False
    _grant: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self._grant not in _GRANTS:
            raise StoreError(Errors.G118)
        _GRANTS.discard(self._grant)
        _ISSUED[id(self)] = self
        _AS_ISSUED[id(self)] = self._fields()
        weakref.finalize(self, _AS_ISSUED.pop, id(self), None)

    def _fields(self) -> tuple[Any, ...]:
        return (self.account_id, self.role, self.method, self.signed_in_at, self.store_id,
                self.must_change_password)

    def _refusal(self) -> Exception:
        return StoreError(Errors.G118)

    @property
    def expires_at(self) -> float:
        return self.signed_in_at + PRINCIPAL_HOURS * 3600.0


def issue(account_id: str, role: str, method: str, store_id: str,
          must_change: bool = False) -> Principal:
    """A new Principal (called by the guard's sign-in and token check only)."""
    grant = secrets.randbits(62) | 1
    _GRANTS.add(grant)
    return Principal(account_id, role, method, time.time(), store_id, must_change, grant)


def genuine(principal: object, store_id: str) -> Principal:
    """``principal`` if the guard issued it for this store and it has not expired."""
    if (not isinstance(principal, Principal) or _ISSUED.get(id(principal)) is not principal
            or _AS_ISSUED.get(id(principal)) != principal._fields()  # object.__setattr__
            or principal.store_id != store_id):
        raise StoreError(Errors.G118)
    if time.time() > principal.expires_at:
        raise StoreError(Errors.G136.format(hours=PRINCIPAL_HOURS))
    return principal


@dataclass(frozen=True)
class Enrolment(Sealed):
    """What a new or reset account is told once: a password and, for reviewers and
    supervisors, a TOTP secret and its ``otpauth://`` URI (for an authenticator app)."""

    account_id: str
    role: str
    password: str = field(repr=False)
    totp_secret: str | None = field(default=None, repr=False)
    otpauth_uri: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AccountInfo:
    """An account as ``users list`` shows it (no secret)."""

    account_id: str
    role: str
    status: str
    locked: bool
    second_factor: bool
    tokens: int
    created_at: float


def new_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def new_token(key: AuditKey, account_id: str, generation: int) -> tuple[str, str, str]:
    """(token id, the token shown once, the digest stored)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return (token_id, f"{TOKEN_PREFIX}_{token_id}_{secret}",
            token_digest(key, token_id, account_id, generation, secret))


def token_digest(key: AuditKey, token_id: str, account_id: str, generation: int,
                 secret: str) -> str:
    """The HMAC a token is kept as: without the key nobody can make a row that matches,
    nor move a token to another account or generation."""
    return key.mac(f"api_token\n{token_id}\n{account_id}\n{int(generation)}\n{secret}"
                   .encode())


def parse_token(token: object) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    m = _TOKEN.match(token) if isinstance(token, str) else None
    return (m.group(1), m.group(2)) if m else None


def digest_matches(key: AuditKey, token_id: str, account_id: str, generation: int,
                   secret: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(key, token_id, account_id, generation, secret),
                               digest)


def account_mac_input(row: Any) -> bytes:
    """What an account row's HMAC covers (the lockout counters are left out: they change on
    every failure, and resetting them gains nothing without the password)."""
    totp = hashlib.sha256(row.totp_secret).hexdigest() if row.totp_secret else "-"
    return (f"account\n{row.id}\n{row.role}\n{row.status}\n{row.password_hash}\n"
            f"{int(bool(row.must_change_password))}\n{totp}\n{int(row.totp_last_step or 0)}\n"
            f"{int(row.generation or 0)}\n{int(row.tokens_from or 0)}").encode()


def account_intact(key: AuditKey, row: Any) -> bool:
    return key.check(account_mac_input(row), row.mac)


def totp_step(secret: str, code: object, last_step: int, now: float) -> int | None:
    """The time step a TOTP code belongs to (one step of clock drift either way), if it is
    valid and newer than ``last_step`` (a code is never accepted twice)."""
    import pyotp

    if not isinstance(code, str) or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    step = totp.timecode(_utc(now))
    for candidate in (step, step - 1, step + 1):
        if candidate > last_step and hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def _utc(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


_HASHER: Any = None


def hasher() -> Any:
    """The Argon2id hasher (argon2-cffi's RFC 9106 low-memory profile)."""
    global _HASHER
    if _HASHER is None:
        from argon2 import PasswordHasher, profiles

        _HASHER = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
    return _HASHER


def password_matches(stored_hash: str | None, password: object) -> bool:
    """Argon2id verification; without a stored hash it still spends the same time."""
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    ph = hasher()
    if not isinstance(password, str):
        password = ""
    try:
        return ph.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hasher().hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]
