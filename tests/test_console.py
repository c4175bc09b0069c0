"""The review console over real HTTP on real stores (SQLite and PostgreSQL), without a
browser: headers, cookies, CSRF, sign-in limits, the pages' flow, the API, the access
log, the demo's account. The browser tests are in test_console_browser.py, the attack
script in test_console_attacks.py."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from test_console_common import (
    HOSTILE,
    OTHER,
    PASSWORD,
    SUBJECT,
    Web,
    enrol,
    form_token,
    hostile_case,
)
from test_guard_common import CANARY

from classifier._errors import ClassifierError
from classifier.console import ConsoleSettings, create_app, running, serve
from classifier.guard import StoreError
from classifier.guard._store import audit_log

pytestmark = pytest.mark.obligation("art3-1-g-ii", "audit-log")


def audit_actions(guard, action: str) -> list:
    with guard.store.engine.connect() as conn:
        return list(conn.execute(select(audit_log).where(audit_log.c.action == action)))


def api(client, method: str, url: str, token: str, **kw):
    return client.request(method, url, headers={"authorization": f"Bearer {token}"}, **kw)


def test_every_answer_carries_the_security_headers(web):
    answers = [web.get("/login"), web.get("/static/console.css"), web.get("/queue"),
               web.get("/no/such/page"), web.get("/api/queue"), web.post("/login")]
    for r in answers:
        csp = r.headers["content-security-policy"]
        assert "script-src" not in csp and "'unsafe-inline'" not in csp  # no script at all
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
    assert answers[2].status_code == 303 and answers[2].headers["location"] == "/login"
    assert answers[3].status_code == 404 and "W009" in answers[3].text


def test_session_cookie_is_signed_httponly_secure_strict_and_new_at_sign_in(web, staff):
    web.get("/login")
    before = web.jar["__Host-review"]
    r = web.sign_in(staff["ann"])
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("__Host-review="))
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert web.jar["__Host-review"] != before  # a sign-in never keeps the old session id
    assert web.get("/queue").status_code == 200
    sid, sig = web.jar["__Host-review"].split(".")
    web.jar["__Host-review"] = f"{sid}.{sig[:-2]}AA"  # a forged signature
    assert web.get("/queue").headers["location"] == "/login"


def test_review_flow_over_http_and_every_view_audited(web, console_url, console_guard, staff):
    case_id = hostile_case(console_guard)
    web.sign_in(staff["ann"])
    r = web.submit("/queue", f"/cases/{case_id}/claim")
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{case_id}"
    page = web.get(f"/cases/{case_id}").text
    assert "An adult with a minor" in page and "Older party: requests for secrecy" in page
    assert CANARY not in page  # nothing of the evidence before the explicit view
    # confirming before the view is refused by the guard (G113)
    r = web.submit(f"/cases/{case_id}", f"/cases/{case_id}/decision",
                   decision="confirm:solicitation_of_a_child")
    assert r.status_code == 409 and "G113" in r.text
    r = web.submit(f"/cases/{case_id}", f"/cases/{case_id}/evidence")
    assert r.status_code == 200 and CANARY in r.text
    assert len(audit_actions(console_guard, "evidence_viewed")) == 1
    # escaped text: the markup arrives as characters, never as elements
    assert "<script>" not in r.text and "<img" not in r.text
    assert "&lt;script&gt;" in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
    r = web.post(f"/cases/{case_id}/decision",
                 {"csrf": form_token(r.text, f"/cases/{case_id}/decision"),
                  "decision": "confirm:solicitation_of_a_child", "minor_to_minor": ""})
    assert r.status_code == 303 and "Case confirmed" in web.get("/queue").text

    sup = Web(console_url)
    sup.sign_in(staff["cat"])
    assert case_id in sup.get("/reports").text
    r = sup.submit("/reports", f"/reports/{case_id}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"] == f'attachment; filename="report-{case_id}.json"'
    report = r.json()
    assert report["case_id"] == case_id and report["reported_account"] == SUBJECT
    assert any(m["text"] == HOSTILE for m in report["evidence_excerpt"])
    sup.close()


def test_csrf_forged_replayed_foreign_or_cross_origin_is_refused(web, console_url,
                                                                 console_guard, staff):
    case_id = hostile_case(console_guard)
    web.sign_in(staff["ann"])
    other = Web(console_url)
    other.sign_in(staff["bob"])
    foreign = other.token("/queue", f"/cases/{case_id}/claim")
    for token in ("", "forged-" + "a" * 32, foreign):
        r = web.post(f"/cases/{case_id}/claim", {"csrf": token})
        assert r.status_code == 403 and "W003" in r.text
    token = web.token("/queue", f"/cases/{case_id}/claim")
    r = web.post(f"/cases/{case_id}/claim", {"csrf": web.token("/queue", "/logout")},
                 headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and "W006" in r.text
    assert web.post(f"/cases/{case_id}/claim", {"csrf": token}).status_code == 303
    r = web.post(f"/cases/{case_id}/release", {"csrf": token})  # the same token again
    assert r.status_code == 403 and "W003" in r.text
    assert len(audit_actions(console_guard, "case_claimed")) == 1
    assert not audit_actions(console_guard, "case_released")
    other.close()


def test_sign_in_failures_lock_the_account_and_the_address_is_rate_limited(
        web, console_guard, staff):
    bob = staff["bob"]
    for _ in range(5):
        r = web.submit("/login", "/login", name="bob", password="wrong-password-x",
                       code="000000")
        assert r.status_code == 401 and "G130" in r.text
    r = web.submit("/login", "/login", name="bob", password=bob.password, code=bob.code())
    assert r.status_code == 401 and "G130" in r.text  # locked: the same error
    failed = audit_actions(console_guard, "sign_in_failed")
    assert len(failed) == 6 and json.loads(failed[-1].detail)["reason"] == "locked"
    codes = [web.submit("/login", "/login", name="nobody", password="x").status_code
             for _ in range(6)]
    assert codes == [401] * 4 + [429] * 2  # 10 attempts a minute from one address


def test_the_issued_password_is_changed_first(console_url, console_guard, staff):
    new = enrol(console_guard, "fay", "reviewer", change=False)
    client = Web(console_url)
    r = client.sign_in(new)
    assert r.headers["location"] == "/password"
    assert client.get("/queue").headers["location"] == "/password"
    r = client.submit("/password", "/password", new="too-short", again="too-short")
    assert r.status_code == 422 and "G135" in r.text
    r = client.submit("/password", "/password", new=PASSWORD + "!", again=PASSWORD)
    assert "W010" in r.text
    r = client.submit("/password", "/password", new=PASSWORD + "!", again=PASSWORD + "!")
    assert r.status_code == 303 and client.get("/queue").status_code == 200
    client.close()


def test_idle_timeout_ends_the_session(console_guard, staff):
    app = create_app(console_guard, ConsoleSettings(idle_minutes=1 / 60))
    with running(app) as base:
        client = Web(base)
        client.sign_in(staff["ann"])
        assert client.get("/queue").status_code == 200
        time.sleep(1.5)
        r = client.get("/queue")
        assert r.headers["location"] == "/login"
        assert "W002" in client.get("/login").text  # says why
        client.close()


def test_absolute_timeout_ends_a_busy_session(console_guard, staff):
    """A session in constant use still ends after ``absolute_hours``."""
    app = create_app(console_guard, ConsoleSettings(idle_minutes=10,
                                                    absolute_hours=2 / 3600))
    with running(app) as base:
        client = Web(base)
        client.sign_in(staff["eve"])
        assert client.get("/audit").status_code == 200
        for _ in range(5):  # busy: never idle for more than half a second
            time.sleep(0.5)
            last = client.get("/audit")
        assert last.status_code == 303 and last.headers["location"] == "/login"
        client.close()


def test_sign_out_makes_the_cookie_worthless(web, staff):
    web.sign_in(staff["eve"])
    old = dict(web.jar)
    assert web.get("/audit").status_code == 200
    r = web.submit("/audit", "/logout")
    assert r.headers["location"] == "/login"
    web.jar = old
    assert web.get("/audit").headers["location"] == "/login"


def test_api_flow_with_tokens(console_url, console_guard, staff):
    import httpx

    case_id = hostile_case(console_guard)
    t = {n: p.token for n, p in staff.items()}
    with httpx.Client(base_url=console_url) as c:
        assert c.get("/api/queue").status_code == 401
        assert api(c, "GET", "/api/queue", "sct_0000000000000000_" + "x" * 43).status_code == 401
        queue = api(c, "GET", "/api/queue", t["ann"]).json()
        assert [q["case_id"] for q in queue] == [case_id]
        assert api(c, "POST", f"/api/cases/{case_id}/claim", t["ann"]).json() == {
            "claimed": True}
        r = api(c, "POST", f"/api/cases/{case_id}/decision", t["ann"],
                json={"decision": "confirm", "reason": "solicitation_of_a_child"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "G113"
        r = api(c, "POST", f"/api/cases/{case_id}/decision", t["ann"],
                json={"decision": "confirm", "reason": CANARY})
        assert r.status_code == 422 and CANARY not in r.text  # no input echoed
        ev = api(c, "POST", f"/api/cases/{case_id}/evidence", t["ann"])
        assert ev.headers["cache-control"] == "no-store"
        assert any(m["text"] == HOSTILE for m in ev.json()["messages"])
        assert api(c, "POST", f"/api/cases/{case_id}/decision", t["ann"], json={
            "decision": "confirm", "reason": "solicitation_of_a_child"}).status_code == 200
        assert api(c, "POST", f"/api/reports/{case_id}", t["ann"]).status_code == 403
        report = api(c, "POST", f"/api/reports/{case_id}", t["cat"])
        assert report.status_code == 200 and report.json()["case_id"] == case_id
        assert report.headers["cache-control"] == "no-store"
        cid = api(c, "POST", "/api/complaints", t["dan"],
                  json={"case_id": case_id, "channel": "in_app"}).json()["complaint_id"]
        assert api(c, "POST", f"/api/complaints/{cid}/evidence", t["ann"]).status_code == 403
        assert api(c, "POST", f"/api/complaints/{cid}/evidence", t["bob"]).status_code == 200
        assert api(c, "POST", f"/api/complaints/{cid}/re-review", t["bob"],
                   json={"outcome": "dismiss"}).status_code == 200
        r = api(c, "POST", f"/api/complaints/{cid}/decision", t["dan"],
                json={"outcome": "maybe"})
        assert r.status_code == 422
        assert api(c, "POST", f"/api/complaints/{cid}/decision", t["dan"],
                   json={"outcome": "upheld"}).json() == {"outcome": "upheld"}
        figures = api(c, "GET", "/api/aggregates", t["eve"])
        assert figures.json()["cases_by_status"] == {"reinstated": 1}
        assert figures.json()["audit_log"]["intact"] is True
        text = figures.text + api(c, "GET", "/api/transparency/2026", t["eve"]).text
        for secret in (CANARY, SUBJECT, OTHER, case_id, cid):
            assert secret not in text
        # the API never takes a cookie for a token
        assert c.get("/api/queue", headers={"cookie": "__Host-review=x.y"}).status_code == 401
    # each token was checked once (one audit entry), not once per request
    tokens = [r for r in audit_actions(console_guard, "signed_in")
              if json.loads(r.detail)["method"] == "token"]
    assert sorted(r.actor for r in tokens) == ["ann", "bob", "cat", "dan", "eve"]


def test_openapi_describes_the_api(web):
    spec = web.get("/api/openapi.json").json()
    assert {"/api/queue", "/api/cases/{case_id}/evidence", "/api/reports/{case_id}",
            "/api/complaints/{complaint_id}/decision", "/api/aggregates"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert not any(p.startswith(("/cases", "/queue")) for p in spec["paths"])  # pages


def test_access_log_names_routes_never_ids_or_content(web, console_guard, staff, caplog):
    case_id = hostile_case(console_guard)
    with caplog.at_level(logging.INFO, logger="classifier.console.access"):
        web.sign_in(staff["ann"])
        web.submit("/queue", f"/cases/{case_id}/claim")
        web.submit(f"/cases/{case_id}", f"/cases/{case_id}/evidence")
        web.get(f"/queue?page=2&note={CANARY}")
    lines = [r.getMessage() for r in caplog.records if r.name == "classifier.console.access"]
    assert "POST /cases/{case_id}/evidence 200" in " ".join(lines)
    for line in lines:
        assert case_id not in line and CANARY not in line and "?" not in line
        assert re.match(r"^(GET|POST) \S+ \d{3} \d+ms$", line)


def test_guard_pages_the_queue_and_checks_roles_for_figures(console_guard, staff):
    g = console_guard
    ids = [hostile_case(g) for _ in range(5)]
    ann, cat = g.authenticate(staff["ann"].token), g.authenticate(staff["cat"].token)
    eve = g.authenticate(staff["eve"].token)
    assert [c["case_id"] for c in g.queue(ann, limit=2, offset=1)] == ids[1:3]
    assert g.claim(ids[3], ann)
    assert [c["case_id"] for c in g.queue(ann, mine=True)] == [ids[3]]
    assert g.queue(cat, mine=True) == []
    v = g.verify()
    assert g.aggregates(eve, verification=v)["audit_log"]["entries"] == v.entries
    assert g.transparency(eve, 2026)["year"] == 2026
    with pytest.raises(StoreError, match="G107"):
        g.transparency(ann, 2026)


def test_insecure_cookies_only_on_loopback(console_guard):
    with pytest.raises(ClassifierError, match="W012"):
        serve(console_guard, ConsoleSettings(secure_cookies=False), host="0.0.0.0")


def test_the_demo_account_is_printed_once_and_kept_hashed(tmp_path, capsys, quick_argon2):
    import pyotp

    from classifier._cli import _demo_console
    from classifier.guard import Guard, Keys, Store

    key = tmp_path / "master.key"
    key.write_text(Keys.generate() + "\n")
    key.chmod(0o600)
    store = f"sqlite:///{tmp_path / 'guard.db'}"
    Store(store, create=True)
    _demo_console(store, key)
    err = capsys.readouterr().err
    assert f"solicitation-classifier console --store {store}" in err
    password = re.search(r"first sign-in\): (\S+)", err).group(1)
    secret = re.search(r"authenticator app: ([A-Z2-7]+)", err).group(1)
    assert password.encode() not in (tmp_path / "guard.db").read_bytes()
    assert secret.encode() not in (tmp_path / "guard.db").read_bytes()
    guard = Guard(Store(store), Keys.from_file(key))
    p = guard.sign_in("demo-reviewer", password, pyotp.TOTP(secret).now())
    assert p.role == "reviewer" and p.must_change_password


def test_the_benchmark_runs_on_a_tiny_store(tmp_path):
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_console.py"
    proc = subprocess.run([sys.executable, str(bench), "--cases", "30", "--requests", "3",
                           "--dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "GET /queue" in proc.stdout and "p95" in proc.stdout


def test_every_risk_factor_has_a_reviewers_label_and_description():
    from classifier import FEATURE_NAMES
    from classifier.console._present import factor_rows

    rows = factor_rows(dict.fromkeys(FEATURE_NAMES, 0.1))
    assert [r["name"] for r in rows] == list(FEATURE_NAMES)
    for row in rows:
        assert row["label"] != row["name"].replace("_", " "), row["name"]  # a written label
        assert "does not describe" not in row["description"], row["name"]
    assert len({r["label"] for r in rows}) == len(rows)  # none shown twice
