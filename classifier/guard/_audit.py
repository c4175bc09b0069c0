"""The audit log's integrity: a keyed hash chain, signed checkpoints, one verification.

Every entry covers all its fields (sequence number, time, actor, role, action, case,
detail) and the previous entry's hash::

    hash_n = sha256(hash_{n-1} "\\n" canonical(seq, ts, actor, role, action, case, detail))
    mac_n  = HMAC-SHA256(audit key, "entry\\n" hash_n)

The hash chain can be recomputed by anyone who reads the log; the MAC only by the holder
of the audit key (derived from the store secret, never in the database), so that an
attacker with write access to the database cannot edit, insert, reorder or delete an
entry and recompute what follows. The head (last sequence number and hash) carries a MAC
too. Counters change only inside audited entries, whose detail names the change; the
verification adds the changes up and compares them with the counters table.

A **checkpoint** is the head signed with an Ed25519 key the provider keeps apart (as
Certificate Transparency's signed tree heads): JSON written outside the database. Checked
against an exported checkpoint, a truncated log or a log rewritten wholesale (even by
someone holding the audit key) is detected, by an auditor who holds only the public key.
Entries after the last checkpoint are proven by their MACs alone: deleting the newest of
them is detected only by the next checkpoint, so the provider checkpoints often.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .._errors import Errors, MasterKeyError, StoreError
from ._crypto import AuditKey, Sealed, write_secret_file

__all__ = ["GENESIS", "AuditVerification", "Checkpoint", "CheckpointCheck", "CheckpointSigner",
           "entry_hash", "head_mac_input", "load_public_key"]

GENESIS = "0" * 64
CHECKPOINT_FORMAT = "solicitation-guard-checkpoint/1"


def canonical(seq: int, ts: float, actor: str, role: str, action: str, case_id: str | None,
              detail: str) -> bytes:
    """The bytes an entry's hash covers: every field, the sequence number too."""
    return json.dumps([seq, ts, actor, role, action, case_id, detail], ensure_ascii=True,
                      separators=(",", ":")).encode()


def entry_hash(prev: str, body: bytes) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()


def entry_mac_input(digest: str) -> bytes:
    return b"entry\n" + digest.encode()


def entry_problem(row: Any, key: AuditKey | None) -> str | None:
    """Why one stored entry is not what the guard wrote (its fields against its hash,
    with ``key`` its MAC), or None; the link to the entry before is the caller's."""
    body = canonical(row.seq, row.ts, row.actor, row.role, row.action, row.case_id,
                     row.detail)
    if entry_hash(row.prev_hash, body) != row.hash:
        return "its fields differ from its hash"
    if key is not None and not key.check(entry_mac_input(row.hash), row.mac):
        return "its MAC is wrong (written without the audit key)"
    return None


def head_mac_input(seq: int, digest: str) -> bytes:
    return f"head\n{seq}\n{digest}".encode()


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """An Ed25519 public key (PEM) from a file; G009 when it is not one."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise MasterKeyError(Errors.G009.format(path=path))
    return key


class CheckpointSigner(Sealed):
    """The Ed25519 key that signs checkpoints (a PEM file, 0600, kept by the provider).

    >>> signer = CheckpointSigner(Ed25519PrivateKey.generate())
    >>> cp = signer.sign("store-1", 7, "ab" * 32)
    >>> cp.signature_valid(signer.public_key)
    True
    """

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        object.__setattr__(self, "_key", key)

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id})"

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def key_id(self) -> str:
        return _key_id(self.public_key)

    @classmethod
    def generate(cls, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """A new key: ``path`` (private, 0600, created exclusively) and ``path.pub``."""
        key = Ed25519PrivateKey.generate()
        private = Path(path)
        public = private.with_name(private.name + ".pub")
        write_secret_file(private, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return private, public

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CheckpointSigner:
        """The signing key from a PEM file only its owner can read (G005, G009)."""
        from ._crypto import check_private_file

        raw = check_private_file(path)
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, Ed25519PrivateKey):
            raise MasterKeyError(Errors.G009.format(path=path))
        return cls(key)

    def sign(self, store_id: str, seq: int, digest: str, when: datetime | None = None
             ) -> Checkpoint:
        fields = {"format": CHECKPOINT_FORMAT, "store_id": store_id, "seq": seq,
                  "hash": digest, "key_id": self.key_id,
                  "signed_at": (when or datetime.now(UTC)).isoformat(timespec="seconds")}
        signature = self._key.sign(_signed_bytes(fields))
        return Checkpoint(**fields, signature=base64.b64encode(signature).decode())


def _signed_bytes(fields: Mapping[str, Any]) -> bytes:
    return json.dumps({k: fields[k] for k in sorted(fields) if k != "signature"},
                      separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Checkpoint:
    """A signed head of the audit log, kept outside the database."""

    format: str
    store_id: str
    seq: int
    hash: str
    key_id: str
    signed_at: str
    signature: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, name: str = "checkpoint") -> Checkpoint:
        """A checkpoint from its JSON (G010 names the file when it is not one)."""
        try:
            data = json.loads(text)
            cp = cls(**{k: data[k] for k in cls.__dataclass_fields__})
            ok = (cp.format == CHECKPOINT_FORMAT and isinstance(cp.seq, int)
                  and all(isinstance(getattr(cp, k), str) for k in
                          ("store_id", "hash", "key_id", "signed_at", "signature")))
        except (ValueError, TypeError, KeyError):
            ok = False
        if not ok:
            raise StoreError(Errors.G010.format(name=name))
        return cp

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Checkpoint:
        if not Path(path).is_file():
            raise StoreError(Errors.G145.format(name=path))
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise StoreError(Errors.G010.format(name=path)) from None
        return cls.from_json(text, str(path))

    def signature_valid(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(self.signature, validate=True),
                          _signed_bytes(self.__dict__))
        except (InvalidSignature, ValueError):
            return False
        return self.key_id == _key_id(public)


@dataclass(frozen=True)
class CheckpointCheck:
    """What one checkpoint proved."""

    name: str
    seq: int
    signature: str  # "valid", "INVALID", "not checked (no public key)"
    status: str  # "matches", "TRUNCATED", "REWRITTEN", "OTHER STORE"

    @property
    def ok(self) -> bool:
        return self.status == "matches" and self.signature != "INVALID"


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of :meth:`Store.verify_audit_log`, and what it could not prove.

    ``intact`` is True only if everything that was checked passed.
    """

    entries: int
    head_seq: int
    chain_ok: bool
    broken_at: int | None = None
    problem: str | None = None
    macs_checked: bool = False
    head_ok: bool | None = None
    counters_ok: bool | None = None
    stats_ok: bool | None = None
    checkpoints: tuple[CheckpointCheck, ...] = field(default=())
    head_hash: str = GENESIS  # the hash of the last entry checked (what a checkpoint signs)

    @property
    def intact(self) -> bool:
        return (self.chain_ok and self.head_ok is not False and self.counters_ok is not False
                and self.stats_ok is not False and all(c.ok for c in self.checkpoints))

    @property
    def proven_through(self) -> int:
        """The last entry proven by a valid, matching checkpoint (0: none)."""
        good = [c.seq for c in self.checkpoints if c.ok and c.signature == "valid"]
        return max(good, default=0)

    def __iter__(self) -> Any:  # (intact, entries, first broken entry), as before
        return iter((self.intact, self.entries, self.broken_at))

    def lines(self) -> list[str]:
        """What was proven and what was not, one line each (no ids, no content)."""
        out = [f"audit log {'intact' if self.intact else 'BROKEN'}: {self.entries} entries"]
        if self.chain_ok:
            out.append("hash chain: every entry links to the one before (sequence numbers "
                       "1.." f"{self.entries} without a gap)")
        else:
            out.append(f"hash chain: BROKEN at entry {self.broken_at} ({self.problem})")
        if self.macs_checked:
            out.append("MACs: checked with the audit key" + (
                "" if self.chain_ok else f" up to entry {self.broken_at}"))
            out.append("head anchor: " + {True: "matches the last entry",
                                          False: "DIFFERS (entries removed or head edited)",
                                          None: "none"}[self.head_ok])
        else:
            out.append("MACs: NOT checked (no audit key): an attacker who can write the "
                       "database could have rewritten the chain; only the checkpoints below "
                       "prove anything")
        out.append("counters: " + {True: "equal to the changes the entries record",
                                   False: "DIFFER from the changes the entries record",
                                   None: "not checked"}[self.counters_ok])
        out.append("error-rate statistics: " + {
            True: "each row's MAC and each year's sums agree with the audited changes"
                  if self.macs_checked else "each year's sums agree with the audited changes "
                  "(rows' MACs not checked)",
            False: "ALTERED (a row's MAC is wrong, or a year's sums differ from the audited "
                   "changes)",
            None: "not checked"}[self.stats_ok])
        if not self.checkpoints:
            out.append("checkpoints: none given: a truncated or wholly rewritten log cannot "
                       "be told from an intact one")
        for c in self.checkpoints:
            out.append(f"checkpoint {c.name}: entry {c.seq}, signature {c.signature}, "
                       f"{c.status}")
        last = self.proven_through
        if last:
            rest = self.entries - last
            out.append(f"entries 1..{last}: proven by a signed checkpoint; {max(rest, 0)} "
                       "after it: " + ("proven by MACs only (a removal of the newest is "
                                       "seen only by the next checkpoint)"
                                       if self.macs_checked else "NOT proven"))
        return out


def check_checkpoints(checkpoints: Iterable[tuple[str, Checkpoint]], store_id: str,
                      hashes: Mapping[int, str], public: Ed25519PublicKey | None
                      ) -> tuple[CheckpointCheck, ...]:
    """Each checkpoint against the chain recomputed from the rows as they are
    (``hashes[seq]``): a signed head the rows no longer reproduce was rewritten, one
    beyond the last row was cut off."""
    last = max(hashes, default=0)
    out = []
    for name, cp in checkpoints:
        signature = ("not checked (no public key)" if public is None
                     else "valid" if cp.signature_valid(public) else "INVALID")
        if cp.store_id != store_id:
            status = "OTHER STORE"
        elif cp.seq > last:
            status = f"TRUNCATED (the log ends at entry {last})"
        elif hashes.get(cp.seq, GENESIS if cp.seq == 0 else None) != cp.hash:
            status = "REWRITTEN (the entries differ from the signed head)"
        else:
            status = "matches"
        out.append(CheckpointCheck(name, cp.seq, signature, status))
    return tuple(out)


def sum_counters(details: Iterable[str]) -> dict[str, int]:
    total: dict[str, int] = {}
    for text in details:
        changes = json.loads(text).get("counters") if text else None
        for name, delta in (changes or {}).items():
            total[name] = total.get(name, 0) + int(delta)
    return total
