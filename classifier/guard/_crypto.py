"""The guard's keys: the master key, the store's secret and what is derived from it.

Three secrets, each kept by the provider outside the case database:

- the **master key** (32 bytes, AES-256): it wraps every per-case data key and the store's
  secret. It comes from a file only its owner can read, from ``$SOLICITATION_MASTER_KEY``,
  or from a provider's KMS through a :class:`MasterKeySource`. Its one-way fingerprint is
  kept in the store, so that a wrong key is refused (G004) before anything is written.
- the **store secret** (32 bytes, random, made when a store is first bound to a master
  key): kept wrapped under the master key in the key store, never in the database. The
  pseudonym key, the audit log's MAC key and the key that encrypts TOTP secrets are
  derived from it (HKDF-SHA256), so that rotating the master key changes none of them.
- the **checkpoint signing key** (Ed25519, :mod:`classifier.guard._audit`).

Evidence is encrypted with AES-256-GCM under a fresh data key per case; destroying the
wrapped data key destroys the evidence (crypto-shredding). No class here can be pickled or
copied, and no ``repr`` shows a key.
"""

from __future__ import annotations

import base64
import hmac
import os
import stat
from hashlib import sha256
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._errors import Errors, FirewallError, MasterKeyError

__all__ = ["AUDIT_KEY_FILE_ENV", "MASTER_KEY_ENV", "MASTER_KEY_FILE_ENV", "AuditKey", "Keys",
           "MasterKeyError", "MasterKeySource", "StoreKeys"]

MASTER_KEY_ENV = "SOLICITATION_MASTER_KEY"
MASTER_KEY_FILE_ENV = "SOLICITATION_MASTER_KEY_FILE"
AUDIT_KEY_FILE_ENV = "SOLICITATION_AUDIT_KEY_FILE"
NONCE = 12


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=purpose).derive(secret)


def _fingerprint(secret: bytes) -> str:
    return _derive(secret, b"fingerprint").hex()[:16]


def _b64_key(value: str) -> bytes | None:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (ValueError, TypeError):
        return None
    return raw if len(raw) == 32 else None


def check_private_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a file only its owner can read or write, else a G005 error."""
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise MasterKeyError(Errors.G005.format(path=path, problem=exc.strerror)) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MasterKeyError(Errors.G005.format(
            path=path, problem="readable or writable by others than its owner (chmod 600)"))
    return raw


def read_secret_file(path: str | os.PathLike[str]) -> bytes:
    """32 bytes (base64) from a file only its owner can read, else a G005 error."""
    try:
        value = check_private_file(path).decode("ascii")
    except UnicodeDecodeError:
        value = ""
    raw = _b64_key(value)
    if raw is None:
        raise MasterKeyError(Errors.G005.format(path=path, problem="not base64 of 32 bytes"))
    return raw


class Sealed:
    """Refuses pickling and copying: the object holds a key (G007) or is a proof that must
    not be duplicated (a subclass names its error in ``_refusal``)."""

    __slots__ = ()

    def _refusal(self) -> Exception:
        return FirewallError(Errors.G007)

    def __reduce_ex__(self, protocol: object) -> Any:
        raise self._refusal()

    def __reduce__(self) -> Any:
        raise self._refusal()

    def __copy__(self) -> Any:
        raise self._refusal()

    def __deepcopy__(self, memo: object) -> Any:
        raise self._refusal()


class _Secret(Sealed):
    """32 secret bytes, immutable, shown only by their one-way fingerprint."""

    __slots__ = ("_secret",)
    _secret: bytes

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != 32:
            raise MasterKeyError(Errors.G001)
        object.__setattr__(self, "_secret", secret)

    def __setattr__(self, name: str, value: object) -> None:
        raise FirewallError(Errors.G007)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fingerprint={self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        """A short, one-way fingerprint of the key (safe to store and show)."""
        return _fingerprint(self._secret)


@runtime_checkable
class MasterKeySource(Protocol):
    """Where a master key comes from, for a provider's KMS or HSM.

    An adapter returns the 32 raw bytes of the master key, for example by asking the KMS
    to decrypt a wrapped copy kept on disk (AWS KMS ``Decrypt``, Google Cloud KMS
    ``decrypt``, Azure Key Vault ``unwrapKey``, a PKCS#11 ``C_UnwrapKey``)::

        class AwsKmsMasterKey:
            def __init__(self, client, wrapped_path):
                self.client, self.wrapped_path = client, wrapped_path

            def load_master_key(self) -> bytes:
                blob = open(self.wrapped_path, "rb").read()
                return self.client.decrypt(CiphertextBlob=blob)["Plaintext"]

        keys = Keys.load(AwsKmsMasterKey(boto3.client("kms"), "/etc/guard/master.kms"))
    """

    def load_master_key(self) -> bytes: ...


class Keys(_Secret):
    """The provider's master key (32 bytes). Never logged, pickled or copied.

    >>> keys = Keys(b"k" * 32)
    >>> keys
    Keys(fingerprint=...)
    >>> blob = keys.wrap(b"d" * 32, b"case-1")
    >>> keys.unwrap(blob, b"case-1") == b"d" * 32
    True
    """

    __slots__ = ()

    # -- loading ---------------------------------------------------------------------
    @classmethod
    def load(cls, source: str | os.PathLike[str] | MasterKeySource | None = None) -> Keys:
        """The master key from ``source`` (a file path or a :class:`MasterKeySource`),
        else ``$SOLICITATION_MASTER_KEY_FILE``, else ``$SOLICITATION_MASTER_KEY`` (G002
        when none is given)."""
        if isinstance(source, MasterKeySource):
            return cls(source.load_master_key())
        path = source or os.environ.get(MASTER_KEY_FILE_ENV)
        return cls.from_file(path) if path else cls.from_env()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keys:
        """The master key (base64 of 32 bytes) from a file only its owner can read."""
        return cls(read_secret_file(path))

    @classmethod
    def from_env(cls) -> Keys:
        value = os.environ.get(MASTER_KEY_ENV)
        if not value:
            raise MasterKeyError(Errors.G002.format(env=MASTER_KEY_ENV,
                                                     file_env=MASTER_KEY_FILE_ENV))
        raw = _b64_key(value)
        if raw is None:
            raise MasterKeyError(Errors.G003.format(env=MASTER_KEY_ENV))
        return cls(raw)

    @staticmethod
    def generate() -> str:
        """A new master key, base64 (for configuration)."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    # -- wrapping --------------------------------------------------------------------
    def wrap(self, key: bytes, context: bytes) -> bytes:
        """``key`` encrypted (AES-256-GCM) under the master key, bound to ``context``."""
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(self._secret).encrypt(nonce, key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The key ``wrap`` wrapped; G008 if this master key did not wrap it."""
        try:
            return AESGCM(self._secret).decrypt(wrapped[:NONCE], wrapped[NONCE:], context)
        except (InvalidTag, ValueError):
            raise MasterKeyError(Errors.G008) from None


class AuditKey(_Secret):
    """The audit log's MAC key (HMAC-SHA256), derived from the store secret.

    The hosts that only purge or sign people in can hold this key alone (``keys
    audit-key``), without the master key.

    >>> AuditKey(b"a" * 32).mac(b"entry")[:8]
    '63ad0f42'
    """

    __slots__ = ()

    def mac(self, data: bytes) -> str:
        return hmac.new(self._secret, data, sha256).hexdigest()

    def check(self, data: bytes, tag: str | None) -> bool:
        return tag is not None and hmac.compare_digest(self.mac(data), tag)

    def export(self) -> str:
        """The key as base64, for a file only its owner can read."""
        return base64.b64encode(self._secret).decode()

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> AuditKey | None:
        """From ``path`` or ``$SOLICITATION_AUDIT_KEY_FILE``; None when neither is set."""
        path = path or os.environ.get(AUDIT_KEY_FILE_ENV)
        return cls(read_secret_file(path)) if path else None


class StoreKeys(Sealed):
    """What the store secret yields: pseudonyms, the audit key, the TOTP secrets' key."""

    __slots__ = ("_pseudonym", "_stats", "_totp", "audit")
    _pseudonym: bytes
    _stats: bytes
    _totp: bytes
    audit: AuditKey

    def __init__(self, secret: bytes) -> None:
        for name, purpose in (("_pseudonym", b"pseudonym"), ("_stats", b"flag-statistics"),
                              ("_totp", b"totp-secrets")):
            object.__setattr__(self, name, _derive(secret, purpose))
        object.__setattr__(self, "audit", AuditKey(_derive(secret, b"audit-mac")))

    def __setattr__(self, name: str, value: object) -> None:
        raise FirewallError(Errors.G007)

    def __repr__(self) -> str:
        return "StoreKeys(<hidden>)"

    def pseudonym(self, identifier: str) -> str:
        """The case pseudonym of an id (keyed HMAC; deleted with the case)."""
        return hmac.new(self._pseudonym, identifier.encode("utf-8"), sha256).hexdigest()[:32]

    def stats_pseudonym(self, identifier: str) -> str:
        """Another pseudonym of an id, for the annual error-rate statistics only: it
        cannot be matched with the case pseudonym, so a dismissed case leaves nothing that
        links it to an account."""
        return hmac.new(self._stats, identifier.encode("utf-8"), sha256).hexdigest()[:32]

    def seal_secret(self, secret: bytes, context: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + AESGCM(self._totp).encrypt(nonce, secret, context)

    def open_secret(self, blob: bytes, context: bytes) -> bytes:
        return AESGCM(self._totp).decrypt(blob[:NONCE], blob[NONCE:], context)


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(data_key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """``plaintext`` encrypted under a case's data key (AES-256-GCM)."""
    nonce = os.urandom(NONCE)
    return nonce + AESGCM(data_key).encrypt(nonce, plaintext, context)


def unseal(data_key: bytes, ciphertext: bytes, context: bytes) -> bytes:
    try:
        return AESGCM(data_key).decrypt(ciphertext[:NONCE], ciphertext[NONCE:], context)
    except (InvalidTag, ValueError):
        raise MasterKeyError(Errors.G008) from None


def write_secret_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Create a file that holds a secret: 0600 from its creation (O_EXCL), fsynced."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
