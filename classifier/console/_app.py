"""The console's application: settings, security middleware, errors, sign-in checks and the
background audit-log verification. Pages are in :mod:`._web`, the API in :mod:`._api`."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errors import ClassifierError, Errors
from ._sessions import RateLimiter, Session, SessionStore

__all__ = ["AuditMonitor", "Console", "ConsoleSettings", "Refusal", "create_app",
           "is_loopback"]

ACCESS_LOG = logging.getLogger("classifier.console.access")
LOG = logging.getLogger("classifier.console")
HERE = Path(__file__).parent
MAX_BODY = 64 * 1024

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; "
     b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]

# how a coded error answers over HTTP
_STATUS = {"W001": 401, "W002": 401, "W003": 403, "W004": 403, "W005": 429, "W006": 403,
           "W007": 422, "W008": 401, "W009": 404, "W010": 422, "W013": 500,
           "W014": 413, "G103": 404, "G104": 409, "G107": 403, "G111": 403, "G112": 409,
           "G113": 409, "G114": 409, "G115": 403, "G116": 409, "G117": 409, "G118": 403,
           "G120": 409, "G122": 404, "G123": 403, "G124": 409, "G130": 401, "G131": 401,
           "G134": 403, "G135": 422, "G136": 401, "G138": 409}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ConsoleSettings:
    """How the console runs.

    Parameters
    ----------
    secure_cookies : bool, default True
        Mark the session cookie ``Secure`` (sent over HTTPS only; browsers also accept it
        on http://localhost and http://127.0.0.1). Off only for tests on a loopback
        address (:func:`classifier.console.serve` refuses it elsewhere, W012).
    idle_minutes, absolute_hours : float
        A session ends after this long without a request, or this long after sign-in.
    login_attempts_per_minute : int
        Sign-in attempts per client address per minute (the guard also locks an account
        after 5 failures in a row).
    api_recheck_seconds : float
        How long the API trusts an API token it checked (each check is an audit entry):
        a revoked token stops within this time, a disabled account at once.
    verify_every_seconds : float
        How often the background job verifies the audit log for the auditor's page.
    checkpoint_dir, public_key : Path, optional
        Where the exported checkpoints are (``audit checkpoint -o DIR/...json``) and the
        checkpoint key's public half: the newest checkpoint is verified with the log.
    page_size : int
        Cases per page of the queue.
    organisations : tuple of str
        Organisations reports go to, for the transparency report.
    """

    secure_cookies: bool = True
    idle_minutes: float = 15.0
    absolute_hours: float = 8.0
    login_attempts_per_minute: int = 10
    api_recheck_seconds: float = 60.0
    verify_every_seconds: float = 300.0
    checkpoint_dir: Path | None = None
    public_key: Path | None = None
    page_size: int = 50
    organisations: tuple[str, ...] = ()

    @property
    def cookie_name(self) -> str:
        # the __Host- prefix: Secure, Path=/, no Domain (a sibling host cannot set it)
        return "__Host-review" if self.secure_cookies else "review"


class Refusal(ClassifierError):
    """A request the console refuses (a coded W0xx error), answered with ``status``."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status or _STATUS.get(self.code or "", 400)


def status_of(err: ClassifierError) -> int:
    if isinstance(err, Refusal):
        return err.status
    return _STATUS.get(err.code or "", 400)


class AuditMonitor:
    """Verifies the audit log in the background (a full verification reads every entry
    and checks every MAC: too slow to repeat on each page view) with the newest exported
    checkpoint, if a folder of them is configured."""

    def __init__(self, guard: Any, settings: ConsoleSettings) -> None:
        self.guard, self.settings = guard, settings
        self.result: Any = None
        self.verified_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _checkpoints(self) -> tuple[list[tuple[str, Any]], Any]:
        from ..guard import Checkpoint, load_public_key

        folder = self.settings.checkpoint_dir
        pub = load_public_key(self.settings.public_key) if self.settings.public_key else None
        if folder is None or not folder.is_dir():
            return [], pub
        files = sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))
        return ([(files[-1].name, Checkpoint.read(files[-1]))] if files else []), pub

    def refresh(self) -> Any:
        """Verify now; returns the result."""
        cps, pub = self._checkpoints()
        result = self.guard.verify(cps, pub)
        with self._lock:
            self.result, self.verified_at = result, time.time()
        return result

    def latest(self) -> tuple[Any, float | None]:
        """The newest result and when it was made (verifying now if there is none)."""
        with self._lock:
            result, at = self.result, self.verified_at
        if result is None:
            result = self.refresh()
            at = self.verified_at
        return result, at

    def _run(self, sessions: SessionStore) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                sessions.sweep()
            except Exception as exc:  # keep going; never log a message (it may hold input)
                LOG.warning("audit verification failed (%s)", type(exc).__name__)
            self._stop.wait(self.settings.verify_every_seconds)

    def start(self, sessions: SessionStore) -> None:
        self._thread = threading.Thread(target=self._run, args=(sessions,),
                                        name="audit-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


class Console:
    """What every request handler shares: the guard, the settings, the sessions."""

    def __init__(self, guard: Any, settings: ConsoleSettings) -> None:
        self.guard, self.settings = guard, settings
        self.sessions = SessionStore(settings.idle_minutes * 60.0,
                                     settings.absolute_hours * 3600.0)
        self.login_limit = RateLimiter(settings.login_attempts_per_minute)
        self.monitor = AuditMonitor(guard, settings)

    # -- browser sessions --------------------------------------------------------------
    def session(self, request: Any) -> Session | None:
        """The request's live session, if any; W002 if a signed-in one just expired."""
        cached = request.scope.get("console.session", False)
        if cached is not False:
            return cached
        s, expired = self.sessions.get(request.cookies.get(self.settings.cookie_name))
        request.scope["console.session"] = s
        if expired:
            raise Refusal(Errors.W002.format(idle=int(self.settings.idle_minutes),
                                             hours=int(self.settings.absolute_hours)))
        return s

    def page(self, request: Any, *roles: str, password_page: bool = False) -> Session:
        """The signed-in session of a page for ``roles`` (W001, W004 otherwise)."""
        s = self.session(request)
        if s is None or s.principal is None:
            raise Refusal(Errors.W001)
        if s.principal.must_change_password and not password_page:
            raise Refusal(Errors.G134)
        if roles and s.principal.role not in roles:
            raise Refusal(Errors.W004.format(roles=" or ".join(roles)))
        return s

    def form(self, request: Any, csrf: object, *roles: str, signed_in: bool = True,
             password_page: bool = False) -> Session:
        """The session of a form post: same origin, a CSRF token it issued (spent now)."""
        self.same_origin(request)
        s = self.page(request, *roles, password_page=password_page) if signed_in \
            else self.session(request)
        if s is None or not s.use_csrf(csrf):
            raise Refusal(Errors.W003)
        return s

    @staticmethod
    def same_origin(request: Any) -> None:
        """Refuse a post whose Origin (or Referer) names another host (W006)."""
        origin = request.headers.get("origin")
        if request.headers.get("sec-fetch-site") == "cross-site":
            raise Refusal(Errors.W006)
        if origin and origin != "null" and \
                urlsplit(origin).netloc != request.headers.get("host", ""):
            raise Refusal(Errors.W006)

    def set_cookie(self, response: Any, session: Session) -> None:
        response.set_cookie(self.settings.cookie_name, self.sessions.cookie_value(session),
                            httponly=True, secure=self.settings.secure_cookies,
                            samesite="strict", path="/")

    def clear_cookie(self, response: Any) -> None:
        response.delete_cookie(self.settings.cookie_name, path="/", httponly=True,
                               secure=self.settings.secure_cookies, samesite="strict")

    def anonymous(self, request: Any) -> Session:
        """The sign-in form's session (for its CSRF token), made if there is none."""
        try:
            s = self.session(request)
        except Refusal:
            s = None
        return s if s is not None and s.principal is None else self.sessions.new()

    # -- the API -----------------------------------------------------------------------
    def api_principal(self, authorization: str | None, *roles: str) -> Any:
        """The principal of the request's API token (never of a cookie)."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Refusal(Errors.W008)
        token = authorization[len("Bearer "):].strip()
        s = self.sessions.api_session(token, self.guard.authenticate,
                                      self.settings.api_recheck_seconds)
        if s.principal.must_change_password:
            raise Refusal(Errors.G134)
        if roles and s.principal.role not in roles:
            raise Refusal(Errors.W004.format(roles=" or ".join(roles)))
        return s.principal


def _route_of(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    path = scope.get("path", "")
    if path == "/api/openapi.json":  # FastAPI's own route carries no template
        return path
    return "/static/..." if path.startswith("/static/") else "(no route)"


class Guarded:
    """ASGI middleware: security headers on every answer, a body size limit, and one
    access-log line per request with the route's template (never a path's ids, a query
    string, a form's content or a cookie)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, started = [500], [False]
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"),
                      b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            await _plain(send, 413, Errors.W014.format(limit=MAX_BODY))
            ACCESS_LOG.info("%s %s 413 0ms", scope.get("method"), "(too large)")
            return
        seen = [0]

        async def limited() -> Any:
            message = await receive()
            if message.get("type") == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > MAX_BODY:
                    raise Refusal(Errors.W014.format(limit=MAX_BODY))
            return message

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
                names = {k for k, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in names]
                message["headers"] = headers + SECURITY_HEADERS
            await send(message)

        try:
            await self.app(scope, limited, with_headers)
        except Exception as exc:  # never a traceback: it could carry a value from input
            LOG.error("internal error (%s)", type(exc).__name__)
            if not started[0]:
                with contextlib.suppress(Exception):
                    await _plain(send, 500, Errors.W013.format(type_name=type(exc).__name__))
        finally:
            ms = (time.perf_counter() - start) * 1000.0
            ACCESS_LOG.info("%s %s %d %.0fms", scope.get("method"), _route_of(scope),
                            status[0], ms)


async def _plain(send: Any, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": text.encode()})


def create_app(guard: Any, settings: ConsoleSettings | None = None) -> Any:
    """The review console as an ASGI application (FastAPI).

    Parameters
    ----------
    guard : classifier.guard.Guard
        A guard with the master key (evidence, pseudonyms and TOTP sign-in need it).
    settings : ConsoleSettings, optional

    Returns
    -------
    fastapi.FastAPI
        The application wrapped in the security middleware; ``app.state.console`` is
        the :class:`Console`. Run it in one process (the guard's principals live in the
        process that issued them), for example with :func:`classifier.console.serve`.
    """
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from . import _api, _web

    settings = settings or ConsoleSettings()
    console = Console(guard, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        console.monitor.start(console.sessions)
        try:
            yield
        finally:
            console.monitor.stop()

    app = FastAPI(title="solicitation-classifier review console", version="1",
                  summary="Human review under Regulation (EU) 2021/1232: the queue, cases, "
                          "reports, complaints and the auditor's figures.",
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.console = console
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _web.install(app, console)
    _api.install(app, console)
    outer = Guarded(app)
    outer.state = app.state  # type: ignore[attr-defined]
    return outer


@contextlib.contextmanager
def running(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields its base URL; stops it on exit.

    For tests and benchmarks (a free port when ``port`` is 0)."""
    import socket

    import uvicorn

    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on such sockets (else every answer
    # waits ~40 ms for a delayed ACK between its head and its body)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started:
            if not thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the console did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
