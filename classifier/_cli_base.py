"""What every command of the CLI shares: one line per error, an exit code, safe files.

Exit codes: 0 done; 1 refused or failed (a coded error, printed as one line); 2 a usage
error (wrong options); 3 done, but some input records were rejected (each named by line
and field on stderr). A broken pipe (``... | head``) ends quietly. No command ever prints a
traceback or a value taken from the input.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ._errors import ClassifierError, Errors

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "CommandError",
           "open_output", "run_guarded", "say", "write_private"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3
DEBUG_ENV = "SOLICITATION_DEBUG"


class CommandError(ClassifierError):
    """A command cannot do what it was asked (codes C0xx)."""


def say(message: str) -> None:
    """A line for the person at the terminal (stderr: stdout carries results)."""
    print(message, file=sys.stderr)


def run_guarded(call: Callable[[], int]) -> int:
    """Run a command; turn every error into one line on stderr and an exit code."""
    try:
        return call()
    except BrokenPipeError:
        # the reader went away (`... | head`): stop quietly, without a second error when
        # Python flushes stdout at exit
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except ClassifierError as err:
        say(f"error: {err}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as exc:  # a bug of ours: one line, never the (input-bearing) message
        if os.environ.get(DEBUG_ENV):
            raise
        if type(exc).__module__.startswith("sqlalchemy") and type(exc).__name__ in (
                "OperationalError", "InterfaceError"):  # (the message may hold the URL)
            problem = ("the database cannot be reached, refused the connection or failed "
                       f"({type(exc).__name__})")
            say(f"error: {Errors.G100.format(url='(given)', problem=problem)}")
            return EXIT_FAILED
        say(f"error: internal error ({type(exc).__name__}); set {DEBUG_ENV}=1 to see where")
        return EXIT_FAILED


@contextlib.contextmanager
def open_output(path: str | Path | None, *, private: bool = False,
                inputs: Sequence[Path] = ()) -> Iterator[IO[str] | None]:
    """An output file (``-`` is stdout, None is no output), or a C002 error naming it.

    The file is written beside its place and moved there when the command succeeds: a
    command that fails leaves what was there before (and an output that is also the
    command's input is read whole before it is replaced).
    ``private``: the file holds ids or content; it is created 0600 from the start.
    ``inputs``: the command's input files, which it must never overwrite.
    """
    if path is None:
        yield None
        return
    if str(path) == "-":
        yield sys.stdout
        return
    path = Path(path)
    if path.is_dir():
        raise CommandError(Errors.C002.format(path=path, problem="it is a directory"))
    if path.exists() and any(p.exists() and path.samefile(p) for p in inputs):
        raise CommandError(Errors.C002.format(path=path, problem="it is an input of this "
                                              "command: choose another output"))
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix=".partial")
        os.fchmod(fd, 0o600 if private else 0o644)
        fh = os.fdopen(fd, "w", encoding="utf-8")
    except OSError as exc:
        raise CommandError(Errors.C002.format(path=path, problem=exc.strerror)) from None
    try:
        with fh:
            yield fh
        os.replace(tmp, path)
    except OSError as exc:
        raise CommandError(Errors.C002.format(path=path, problem=exc.strerror)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_private(path: str | Path, data: str | bytes) -> None:
    """Write a file that holds content or ids: 0600 from creation, replaced atomically."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                                   prefix=f".{path.name}.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CommandError(Errors.C002.format(path=path, problem=exc.strerror)) from None


def require_file(path: Path) -> Path:
    """``path`` if it is a readable file, else a C001 error."""
    if not path.is_file():
        raise CommandError(Errors.C001.format(path=path))
    return path


def count_lines(path: Path, *, block: int = 1 << 20) -> int | None:
    """Lines of a file, for progress bars (None if it cannot be read), counted in blocks of
    ``block`` bytes so that memory stays bounded however long a line is (blank lines
    count too: the total only sizes a progress bar)."""
    try:
        n = 0
        last = b"\n"
        with open(path, "rb") as fh:
            while chunk := fh.read(block):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (last != b"\n")
    except OSError:
        return None


def typer_app(**kw: Any) -> Any:
    """A Typer application with this CLI's conventions."""
    import typer

    return typer.Typer(no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None, **kw)
