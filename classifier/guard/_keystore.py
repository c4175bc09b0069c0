"""Where the wrapped keys live: a key store apart from the case database.

The case database holds ciphertext; the key store holds the per-case data keys (each
wrapped under the master key) and the store's secret (wrapped too). Destroying a key in
the key store makes its case's ciphertext undecryptable wherever copies of the
ciphertext survive (SQLite's WAL, PostgreSQL's heap pages and ``pg_wal``, backups).
On PostgreSQL the keys therefore never enter PostgreSQL.

:class:`LocalKeyStore` is the embedded default: one file per key in a 0700 folder, each
file created 0600, written and fsynced before it is renamed into place; destroying a key
overwrites the file with random bytes, fsyncs, unlinks it and fsyncs the folder.

A provider's KMS, HSM or secret manager fits behind the same small interface
(:class:`KeyStore`); an adapter only stores opaque blobs under names::

    class VaultKeyStore:                   # HashiCorp Vault's KV v2, for example
        def __init__(self, client, mount="guard-keys"):
            self.kv, self.mount = client.secrets.kv.v2, mount

        def put(self, name, blob):
            self.kv.create_or_update_secret(name, {"b": blob.hex()}, cas=0,
                                            mount_point=self.mount)

        def get(self, name):
            try:
                got = self.kv.read_secret_version(name, mount_point=self.mount)
            except hvac.exceptions.InvalidPath:
                return None
            return bytes.fromhex(got["data"]["data"]["b"])

        def replace(self, name, blob):
            self.kv.create_or_update_secret(name, {"b": blob.hex()},
                                            mount_point=self.mount)
            # then destroy every older version (as in destroy)

        def destroy(self, name):    # "destroy" (not "delete"): the versions are erased
            meta = self.kv.read_secret_metadata(name, mount_point=self.mount)
            self.kv.destroy_secret_versions(name, list(meta["data"]["versions"]),
                                            mount_point=self.mount)
            self.kv.delete_metadata_and_all_versions(name, mount_point=self.mount)
            return True

        def names(self):
            return self.kv.list_secrets("", mount_point=self.mount)["data"]["keys"]

The rule an adapter must keep: ``destroy`` leaves no recoverable copy (no soft delete, no
version history, no backup that outlives the retention deadline).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from .._errors import Errors, MasterKeyError

__all__ = ["KEY_STORE_ENV", "KeyStore", "LocalKeyStore", "MemoryKeyStore"]

KEY_STORE_ENV = "SOLICITATION_KEY_STORE"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
SUFFIX = ".key"
STALE_SECONDS = 600.0


@runtime_checkable
class KeyStore(Protocol):
    """Opaque blobs (wrapped keys) under names: case ids and ``store-secret``."""

    def put(self, name: str, blob: bytes) -> None:
        """Store a new blob (durably, before it returns)."""

    def get(self, name: str) -> bytes | None:
        """The blob, or None when there is none."""

    def replace(self, name: str, blob: bytes) -> None:
        """Swap the blob atomically (key rotation); the old one is destroyed."""

    def destroy(self, name: str) -> bool:
        """Erase the blob beyond recovery; True if there was one."""

    def names(self) -> list[str]:
        """Every name held."""


def _check(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise MasterKeyError(Errors.G006.format(path="(key name)", problem="invalid key name"))
    return name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _erase(path: Path) -> bool:
    """Overwrite a file in place with random bytes, fsync it, unlink it."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.pwrite(fd, secrets.token_bytes(max(size, 1)), 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
    return True


class LocalKeyStore:
    """One file per key in a folder only its owner can enter (created 0700).

    >>> import tempfile
    >>> ks = LocalKeyStore(tempfile.mkdtemp() + "/keys")
    >>> ks.put("case-1", b"wrapped")
    >>> ks.get("case-1"), ks.destroy("case-1"), ks.get("case-1")
    (b'wrapped', True, None)
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory)
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = self.path.stat()
        except OSError as exc:
            raise MasterKeyError(Errors.G006.format(path=self.path,
                                                    problem=exc.strerror)) from None
        if st.st_mode & 0o077:
            raise MasterKeyError(Errors.G006.format(
                path=self.path, problem="others than its owner can enter it (chmod 700)"))
        self.recover()

    def __repr__(self) -> str:
        return f"LocalKeyStore({str(self.path)!r})"

    def _file(self, name: str) -> Path:
        return self.path / (_check(name) + SUFFIX)

    def _write_new(self, name: str, blob: bytes) -> Path:
        tmp = self.path / f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def put(self, name: str, blob: bytes) -> None:
        final = self._file(name)
        if final.exists():
            raise MasterKeyError(Errors.G006.format(path=self.path,
                                                    problem="a key of that name exists"))
        os.replace(self._write_new(name, blob), final)
        _fsync_dir(self.path)

    def get(self, name: str) -> bytes | None:
        try:
            return self._file(name).read_bytes()
        except FileNotFoundError:
            return None

    def replace(self, name: str, blob: bytes) -> None:
        final = self._file(name)
        old = self.path / f".{name}.old"
        tmp = self._write_new(name, blob)
        with contextlib.suppress(FileNotFoundError):
            _erase(old)
        os.link(final, old)        # the old inode lives on under .old until erased
        os.replace(tmp, final)     # atomic: the name holds the old or the new blob
        _fsync_dir(self.path)
        _erase(old)
        _fsync_dir(self.path)

    def destroy(self, name: str) -> bool:
        done = _erase(self._file(name))
        if done:
            _fsync_dir(self.path)
        return done

    def names(self) -> list[str]:
        return sorted(p.name[:-len(SUFFIX)] for p in self.path.iterdir()
                      if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    def files(self) -> Iterator[Path]:
        """Every file in the folder (for the carving tests and audits)."""
        return (p for p in self.path.iterdir() if p.is_file())

    def recover(self, older_than: float = STALE_SECONDS) -> None:
        """After a crash: erase what a write or a swap left half done (files untouched for
        ``older_than`` seconds: another process may be writing a younger one)."""
        import time

        for p in list(self.path.iterdir()):
            if p.name.startswith(".") and p.name.endswith((".tmp", ".old")):
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - p.stat().st_mtime >= older_than:
                        _erase(p)


class MemoryKeyStore:
    """Keys in this process only (``sqlite://`` stores, examples); gone at exit."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytearray] = {}

    def put(self, name: str, blob: bytes) -> None:
        if _check(name) in self._blobs:
            raise MasterKeyError(Errors.G006.format(path="(memory)",
                                                    problem="a key of that name exists"))
        self._blobs[name] = bytearray(blob)

    def get(self, name: str) -> bytes | None:
        blob = self._blobs.get(name)
        return bytes(blob) if blob is not None else None

    def replace(self, name: str, blob: bytes) -> None:
        self.destroy(name)
        self._blobs[name] = bytearray(blob)

    def destroy(self, name: str) -> bool:
        blob = self._blobs.pop(name, None)
        if blob is None:
            return False
        blob[:] = bytes(len(blob))
        return True

    def names(self) -> list[str]:
        return sorted(self._blobs)


def default_key_store(url: str) -> KeyStore | None:
    """The key store of a store URL: ``$SOLICITATION_KEY_STORE`` if set, else a folder
    beside a SQLite file (``guard.db.keys``), memory for ``sqlite://``, None otherwise
    (a PostgreSQL store needs one given: its keys never enter PostgreSQL)."""
    configured = os.environ.get(KEY_STORE_ENV)
    if configured:
        return LocalKeyStore(configured)
    if url in ("sqlite://", "sqlite:///:memory:"):
        return MemoryKeyStore()
    if url.startswith("sqlite:///"):
        return LocalKeyStore(url[len("sqlite:///"):] + ".keys")
    return None
