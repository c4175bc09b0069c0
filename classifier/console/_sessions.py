"""Sessions, one-time CSRF tokens and sign-in rate limits, all held in the console's process.

A session is a random id in a signed cookie (HMAC-SHA256 under a key made at start-up:
a restart signs everyone out, as the guard's principals live in the process that issued
them). The session keeps the :class:`~classifier.guard.Principal`, its idle and absolute
deadlines and the CSRF tokens of the forms it was shown: each token is accepted once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RateLimiter", "Session", "SessionStore"]

MAX_FORMS = 64  # CSRF tokens kept per session (the oldest forms expire first)
MAX_ANONYMOUS = 10_000  # sessions without a sign-in (the sign-in form's CSRF tokens)


@dataclass
class Session:
    """One browser's (or one API token's) session."""

    sid: str
    created: float
    seen: float
    principal: Any = None
    forms: OrderedDict[str, None] = field(default_factory=OrderedDict)
    flash: list[tuple[str, str]] = field(default_factory=list)
    api: bool = False

    def new_csrf(self) -> str:
        """A CSRF token for one form, accepted once."""
        token = secrets.token_urlsafe(24)
        self.forms[token] = None
        while len(self.forms) > MAX_FORMS:
            self.forms.popitem(last=False)
        return token

    def use_csrf(self, token: object) -> bool:
        """True once for a token this session issued (then it is spent)."""
        if not isinstance(token, str) or token not in self.forms:
            return False
        del self.forms[token]
        return True


class SessionStore:
    """Sessions by id, with idle and absolute timeouts; thread-safe.

    Parameters
    ----------
    idle_seconds, absolute_seconds : float
        A session ends after this long without a request, or this long after sign-in.
    """

    def __init__(self, idle_seconds: float, absolute_seconds: float) -> None:
        self.idle = float(idle_seconds)
        self.absolute = float(absolute_seconds)
        self._key = secrets.token_bytes(32)
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    # -- cookies -----------------------------------------------------------------------
    def _sign(self, sid: str) -> str:
        mac = hmac.new(self._key, sid.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def cookie_value(self, session: Session) -> str:
        """``<id>.<signature>``."""
        return f"{session.sid}.{self._sign(session.sid)}"

    def _unsigned(self, value: object) -> str | None:
        if not isinstance(value, str) or value.count(".") != 1:
            return None
        sid, sig = value.split(".")
        return sid if hmac.compare_digest(sig, self._sign(sid)) else None

    # -- sessions ----------------------------------------------------------------------
    def new(self, principal: Any = None, *, api: bool = False) -> Session:
        """A new session (a sign-in always starts a new one: no fixation)."""
        now = time.time()
        s = Session(secrets.token_urlsafe(32), now, now, principal, api=api)
        with self._lock:
            self._sessions[s.sid] = s
            self._evict_anonymous()
        return s

    def _evict_anonymous(self) -> None:
        anonymous = [k for k, v in self._sessions.items() if v.principal is None]
        for sid in anonymous[:max(0, len(anonymous) - MAX_ANONYMOUS)]:
            del self._sessions[sid]

    def get(self, cookie: object) -> tuple[Session | None, bool]:
        """The live session of a cookie, and whether a signed-in one just expired."""
        sid = self._unsigned(cookie)
        if sid is None:
            return None, False
        now = time.time()
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None, False
            if now - s.seen > self.idle or now - s.created > self.absolute:
                del self._sessions[sid]
                return None, s.principal is not None
            s.seen = now
            self._sessions.move_to_end(sid)
            return s, False

    def end(self, session: Session | None) -> None:
        """Sign out: the session is forgotten (its cookie is worthless from now on)."""
        if session is not None:
            with self._lock:
                self._sessions.pop(session.sid, None)

    def sweep(self) -> int:
        """Forget every expired session; returns how many."""
        now = time.time()
        with self._lock:
            dead = [k for k, s in self._sessions.items()
                    if now - s.seen > self.idle or now - s.created > self.absolute]
            for k in dead:
                del self._sessions[k]
        return len(dead)

    def api_session(self, token: str, authenticate: Any, recheck_seconds: float) -> Session:
        """The session of an API token: the token is checked by the guard (an audit
        entry) once per ``recheck_seconds``, not on every request."""
        sid = "api:" + hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()
        now = time.time()
        with self._lock:
            s = self._sessions.get(sid)
            if s is not None and now - s.created <= recheck_seconds:
                s.seen = now
                return s
        principal = authenticate(token)  # raises G131 for a bad token
        s = Session(sid, now, now, principal, api=True)
        with self._lock:
            self._sessions[sid] = s
        return s

    def __len__(self) -> int:
        return len(self._sessions)


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = int(limit), float(window)
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Record an event for ``key``; False if it is over the limit."""
        now = time.time()
        with self._lock:
            q = self._events.setdefault(key, deque())
            while q and now - q[0] > self.window:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            if len(self._events) > MAX_ANONYMOUS:
                self._events = {k: v for k, v in self._events.items()
                                if v and now - v[-1] <= self.window}
            return True
