"""What the console's test files share: a real console (uvicorn in a thread on a free
port) on a real store, signed-up people with passwords and TOTP secrets, and an HTTP
client that keeps the session cookie as a browser does.

The fixtures are registered in ``conftest.py``; this file holds no test itself."""

from __future__ import annotations

import html
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pyotp
import pytest
from test_guard_common import CANARY, PEOPLE, fresh_store

from classifier.console import ConsoleSettings, create_app, running
from classifier.guard import Guard, Keys

MASTER = b"k" * 32
PASSWORD = "correct-horse-battery"  # every test person's chosen password
# message text with markup and script: it must reach the page as inert text
HOSTILE = f'<script>document.title="owned"</script><img src=x onerror=alert(1)> {CANARY}'
SUBJECT = "adult-real-id-7731"
OTHER = "child-real-id-7731"


@dataclass
class Person:
    """A test person: account, role, password, TOTP secret and the last code step used
    (each code is accepted once, so the next sign-in takes the next step)."""

    name: str
    role: str
    password: str
    secret: str | None
    token: str = ""
    last_step: int = field(default=0)

    def code(self) -> str:
        """A TOTP code the guard accepts now and has not seen."""
        if not self.secret:
            return ""
        totp = pyotp.TOTP(self.secret)
        while True:
            now = totp.timecode(datetime.now(UTC))
            step = max(self.last_step + 1, now)
            if step <= now + 1:
                break
            time.sleep(1.0)
        self.last_step = step
        return totp.generate_otp(step)


def enrol(guard: Guard, name: str, role: str, *, change: bool = True) -> Person:
    """An account; with ``change`` its issued password already replaced by PASSWORD."""
    e = guard.add_account(name, role)
    person = Person(e.account_id, role, e.password, e.totp_secret)
    if change:
        p = guard.sign_in(name, e.password, person.code() or None)
        p = guard.change_password(p, PASSWORD)
        person.password = PASSWORD
        person.token = guard.issue_token(p)  # the person's own token
    elif role == "auditor":
        person.token = guard.issue_token(name)  # the operator's, for an auditor
    return person


def hostile_case(guard: Guard, *, text: str = HOSTILE) -> str:
    """A case whose evidence holds ``text`` (markup, script and the canary)."""
    import json

    from classifier._pipeline import ScoreResult
    from classifier._text import EvidenceExcerpt

    conversation = "conv-" + os.urandom(6).hex()
    lines = ["hey ur drawings are cool", "how old r u", text, "dont tell anyone we talk"]
    plain = json.dumps({"conversation_id": conversation, "subject": SUBJECT,
                        "participants": [SUBJECT, OTHER],
                        "messages": [{"index": i, "sender": SUBJECT if i % 2 == 0 else OTHER,
                                      "text": t, "ts": f"2026-09-01T18:0{i}:00+00:00"}
                                     for i, t in enumerate(lines)]}).encode()
    result = ScoreResult(conversation, 0.91, True,
                         {"older_secrecy": 0.21, "adult_minor_dyad": 0.34,
                          "age_gap": 0.12, "family_context": -0.03}, "test-model", 0.5, 3,
                         subject=SUBJECT)
    case_id = guard.triage(result, EvidenceExcerpt(plain, len(lines), None))
    assert case_id
    return case_id


class Web:
    """An HTTP client that keeps cookies itself: the session cookie is ``Secure`` and
    httpx, unlike a browser, does not send those to http://127.0.0.1."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
        self.jar: dict[str, str] = {}

    def _keep(self, r: httpx.Response) -> httpx.Response:
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";")[0]
            if not value or value == '""' or "max-age=0" in header.lower():
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return r

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items())} if self.jar else {}
        return {**h, **(extra or {})}

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self._keep(self.http.get(url, headers=self._headers(kw.pop("headers", None)),
                                        **kw))

    def post(self, url: str, data: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return self._keep(self.http.post(url, data=data or {},
                                         headers=self._headers(kw.pop("headers", None)), **kw))

    def token(self, page: str, action: str) -> str:
        """The CSRF token of the form posting to ``action`` on ``page``."""
        return form_token(self.get(page).text, action)

    def submit(self, page: str, action: str, **fields: str) -> httpx.Response:
        """Load ``page``, then post its form for ``action`` with its CSRF token."""
        return self.post(action, {"csrf": self.token(page, action), **fields})

    def sign_in(self, person: Person) -> httpx.Response:
        r = self.submit("/login", "/login", name=person.name, password=person.password,
                        code=person.code())
        assert r.status_code == 303, r.text[:500]
        return r

    def close(self) -> None:
        self.http.close()


def form_token(page: str, action: str) -> str:
    """The CSRF token inside the form whose action is ``action``."""
    at = page.find(f'action="{html.escape(action)}"')
    assert at >= 0, f"no form posting to {action}"
    m = re.compile(r'name="csrf" value="([^"]+)"').search(page, at)
    assert m, "a form without a CSRF token"
    return m.group(1)


@pytest.fixture
def console_guard(backend, tmp_path, quick_argon2):
    store = fresh_store(backend, tmp_path)
    yield Guard(store, Keys(MASTER))
    store.engine.dispose()


@pytest.fixture
def staff(console_guard):
    """Signed-up people (passwords changed, tokens issued): ann and bob reviewers, cat
    and dan supervisors, eve auditor."""
    return {name: enrol(console_guard, name, role) for name, role in PEOPLE.items()}


@pytest.fixture
def console_url(console_guard, staff):
    """A running console on the test's store; stopped after the test, also on failure."""
    app = create_app(console_guard, ConsoleSettings(verify_every_seconds=3600))
    with running(app) as base:
        yield base


@pytest.fixture
def web(console_url):
    client = Web(console_url)
    yield client
    client.close()
