"""A small on-disk cache for what is costly to build and never changes for a given input.

Used for the compiled indicator catalogue and the prefilter's Hyperscan database, keyed
by the catalogue's sha256 and the versions of everything that shapes them, so that a
command starts in a fraction of a second instead of recompiling. Nothing derived from
message text is ever cached.

Location: ``$SOLICITATION_CACHE_DIR``, else ``$XDG_CACHE_HOME/solicitation-classifier``,
else ``~/.cache/solicitation-classifier``; ``SOLICITATION_CACHE_DIR=off`` disables it.
The package ships the entries of its bundled catalogues as built for the versions it was
released with (``classifier/data/seed/``, written by ``scripts/update_seed_cache.py``):
when the user's cache has no entry, the seed of the same name is used, so that even the
first run after installing does not compile. A seed whose name (its versions) differs is
simply not used.
The directory is created 0700 and an entry is used only if it and its directory belong to
the current user and are not writable by others (a deserialised Hyperscan database must
be trusted), and if its content digest matches. Writes are atomic. Every failure simply
means a cache miss: the cache never makes a run fail.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_dir", "read_entry", "write_entry"]

CACHE_ENV = "SOLICITATION_CACHE_DIR"
_MAGIC = b"SCC1"


def cache_dir() -> Path | None:
    """The cache directory, or None when caching is off."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return None if env.lower() in ("off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "solicitation-classifier"


def _trusted(path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read_entry(name: str) -> bytes | None:
    """The bytes stored under ``name``, or None (missing, untrusted or damaged): from the
    user's cache, else from the package's seed."""
    directory = cache_dir()
    if directory is None:
        return None
    path = directory / name
    raw = None
    if _trusted(directory) and _trusted(path):
        try:
            raw = path.read_bytes()
        except OSError:
            raw = None
    body = _body(raw)
    return body if body is not None else _body(_seed(name))


def _seed(name: str) -> bytes | None:
    """The package's own entry ``name`` (as trusted as the package's code), or None."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    try:
        return (resources.files("classifier") / "data" / "seed" / name).read_bytes()
    except (OSError, ValueError):
        return None


def _body(raw: bytes | None) -> bytes | None:
    if raw is None or len(raw) < 36 or raw[:4] != _MAGIC:
        return None
    digest, body = raw[4:36], raw[36:]
    return body if hashlib.sha256(body).digest() == digest else None


def write_entry(name: str, data: bytes) -> bool:
    """Store ``data`` under ``name`` atomically; False if the cache cannot be written."""
    directory = cache_dir()
    if directory is None:
        return False
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted(directory):
            return False
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + hashlib.sha256(data).digest() + data)
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return False
    return True
