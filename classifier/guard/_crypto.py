"""Evidence encryption and pseudonymisation.

Evidence is encrypted with AES-256-GCM under a fresh data key per case; the data key is
wrapped (AES-256-GCM) under the provider's master key. Destroying the wrapped key
destroys the evidence (crypto-shredding), even in a backup. Participant ids are
pseudonymised with a keyed HMAC-SHA256 before they are stored; the HMAC key is derived
from the master key (HKDF), so one secret serves both.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._errors import Errors, FirewallError, MasterKeyError

__all__ = ["MASTER_KEY_ENV", "MASTER_KEY_FILE_ENV", "Keys", "MasterKeyError"]

MASTER_KEY_ENV = "SOLICITATION_MASTER_KEY"
MASTER_KEY_FILE_ENV = "SOLICITATION_MASTER_KEY_FILE"


@dataclass(frozen=True)
class Keys:
    """The provider's master key (32 bytes). Never logged; repr shows nothing."""

    master: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.master, bytes) or len(self.master) != 32:
            raise MasterKeyError(Errors.G001)

    def __repr__(self) -> str:
        return "Keys(master=<hidden>)"

    def __reduce__(self) -> object:
        raise FirewallError(Errors.G007)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Keys:
        """The master key from ``path``, else ``$SOLICITATION_MASTER_KEY_FILE``, else
        ``$SOLICITATION_MASTER_KEY`` (G002 when none is given)."""
        path = path or os.environ.get(MASTER_KEY_FILE_ENV)
        return cls.from_file(path) if path else cls.from_env()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keys:
        """The master key (base64 of 32 bytes) from a file only its owner can read."""
        import stat

        try:
            st = os.stat(path)
            with open(path, encoding="ascii") as fh:
                value = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or "not ASCII"
        else:
            problem = ("readable or writable by others than its owner (chmod 600)"
                       if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) else None)
        if problem:
            raise MasterKeyError(Errors.G005.format(path=path, problem=problem))
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 32:
            raise MasterKeyError(Errors.G005.format(path=path, problem="not base64 of 32 bytes"))
        return cls(raw)

    @property
    def fingerprint(self) -> str:
        """A short, one-way fingerprint of the master key (safe to store and show)."""
        key = HKDF(hashes.SHA256(), 32, salt=None, info=b"fingerprint").derive(self.master)
        return key.hex()[:16]

    @classmethod
    def from_env(cls) -> Keys:
        value = os.environ.get(MASTER_KEY_ENV)
        if not value:
            raise MasterKeyError(Errors.G002.format(env=MASTER_KEY_ENV))
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raw = b""
        if len(raw) != 32:
            raise MasterKeyError(Errors.G003.format(env=MASTER_KEY_ENV))
        return cls(raw)

    @staticmethod
    def generate() -> str:
        """A new master key, base64 (for configuration)."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    def pseudonym(self, identifier: str) -> str:
        key = HKDF(hashes.SHA256(), 32, salt=None, info=b"pseudonym").derive(self.master)
        return hmac.new(key, identifier.encode("utf-8"), sha256).hexdigest()[:32]

    def seal(self, plaintext: bytes, context: bytes) -> tuple[bytes, bytes]:
        """Encrypt under a fresh data key; returns (wrapped key, ciphertext)."""
        data_key = AESGCM.generate_key(bit_length=256)
        n1, n2 = os.urandom(12), os.urandom(12)
        ciphertext = n1 + AESGCM(data_key).encrypt(n1, plaintext, context)
        wrapped = n2 + AESGCM(self.master).encrypt(n2, data_key, context)
        return wrapped, ciphertext

    def open(self, wrapped: bytes, ciphertext: bytes, context: bytes) -> bytes:
        data_key = AESGCM(self.master).decrypt(wrapped[:12], wrapped[12:], context)
        return AESGCM(data_key).decrypt(ciphertext[:12], ciphertext[12:], context)
