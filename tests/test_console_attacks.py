"""The attack script against the review console, over real HTTP on real stores.

Every route of the application (the test fails if a route has no entry in ROUTES, the
roles allowed on it) is tried without sign-in and with every wrong role, with a valid
CSRF token of that role's own session, so that only the role can refuse it. The
auditor's answers are searched for message text (a canary), participant ids and case
and complaint ids; every evidence answer is matched to an audit entry; CSRF tokens are
forged, replayed, taken from another session and sent from another origin. The figures
are printed."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from test_console_common import OTHER, SUBJECT, Web, form_token, hostile_case
from test_guard_common import CANARY

from classifier.console import ConsoleSettings, create_app, running
from classifier.guard import file_complaint
from classifier.guard._store import audit_log

pytestmark = pytest.mark.obligation("art3-1-g-ii", "audit-log")

ALL = ("reviewer", "supervisor", "auditor")
STAFF, FIGURES = ("reviewer", "supervisor"), ("auditor", "supervisor")
PUBLIC = None
# (method, route) -> the roles that may use it (PUBLIC: anyone, signed in or not)
ROUTES = {
    ("GET", "/"): ALL,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): ALL,
    ("GET", "/password"): ALL,
    ("POST", "/password"): ALL,
    ("GET", "/queue"): STAFF,
    ("GET", "/cases/{case_id}"): STAFF,
    ("POST", "/cases/{case_id}/claim"): ("reviewer",),
    ("POST", "/cases/{case_id}/evidence"): ("reviewer",),
    ("POST", "/cases/{case_id}/decision"): ("reviewer",),
    ("POST", "/cases/{case_id}/release"): ("reviewer",),
    ("POST", "/cases/{case_id}/release-claim"): ("supervisor",),
    ("GET", "/reports"): ("supervisor",),
    ("POST", "/reports/{case_id}"): ("supervisor",),
    ("GET", "/complaints"): STAFF,
    ("POST", "/complaints"): STAFF,
    ("GET", "/complaints/{complaint_id}"): ("reviewer",),
    ("POST", "/complaints/{complaint_id}/evidence"): ("reviewer",),
    ("POST", "/complaints/{complaint_id}/re-review"): ("reviewer",),
    ("POST", "/complaints/{complaint_id}/decision"): ("supervisor",),
    ("GET", "/audit"): FIGURES,
    ("POST", "/audit/verify"): FIGURES,
    ("GET", "/audit/transparency"): FIGURES,
    ("GET", "/audit/transparency/{year}.{kind}"): FIGURES,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/queue"): STAFF,
    ("GET", "/api/cases/{case_id}"): STAFF,
    ("POST", "/api/cases/{case_id}/claim"): ("reviewer",),
    ("POST", "/api/cases/{case_id}/release"): ("reviewer",),
    ("POST", "/api/cases/{case_id}/release-claim"): ("supervisor",),
    ("POST", "/api/cases/{case_id}/evidence"): ("reviewer",),
    ("POST", "/api/cases/{case_id}/decision"): ("reviewer",),
    ("GET", "/api/reports"): ("supervisor",),
    ("POST", "/api/reports/{case_id}"): ("supervisor",),
    ("GET", "/api/complaints"): STAFF,
    ("POST", "/api/complaints"): STAFF,
    ("POST", "/api/complaints/{complaint_id}/evidence"): ("reviewer",),
    ("POST", "/api/complaints/{complaint_id}/re-review"): ("reviewer",),
    ("POST", "/api/complaints/{complaint_id}/decision"): ("supervisor",),
    ("GET", "/api/aggregates"): FIGURES,
    ("GET", "/api/transparency/{year}"): FIGURES,
}
ROLE_OF = {"reviewer": "ann", "supervisor": "cat", "auditor": "eve"}


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the application answers (static files aside)."""
    out = set()

    def walk(routes) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)  # an included router
            if inner is not None:
                walk(inner.routes)
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    out.add((method, route.path))
    walk(app.app.routes)
    return out


def counts(guard) -> dict[str, int]:
    """Audit entries by action, sign-ins aside."""
    with guard.store.engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.action, func.count())
                            .where(audit_log.c.action.notin_(("signed_in", "sign_in_failed")))
                            .group_by(audit_log.c.action)).all()
    return dict(rows)


def body_for(path: str, case_id: str) -> dict:
    if path.endswith("/decision") and "/cases/" in path:
        return {"decision": "dismiss", "reason": "no_solicitation"}
    if path.endswith("/decision"):
        return {"outcome": "upheld"}
    if path.endswith("/re-review"):
        return {"outcome": "dismiss"}
    if path == "/api/complaints":
        return {"case_id": case_id, "channel": "in_app"}
    return {}


def form_for(path: str, case_id: str) -> dict[str, str]:
    fields = {k: str(v) for k, v in body_for(path.replace("/api", ""), case_id).items()}
    if "decision" in fields:
        fields["decision"] = "dismiss:no_solicitation"
    if path == "/complaints":
        fields = {"case_id": case_id, "channel": "in_app"}
    if path == "/password":
        fields = {"new": "attacker-chosen-pw", "again": "attacker-chosen-pw"}
    return fields


def test_the_attack_script(console_guard, staff, capsys):
    g = console_guard
    p = {n: g.authenticate(person.token) for n, person in staff.items()}
    confirmed = hostile_case(g)
    assert g.claim(confirmed, p["ann"])
    g.view_evidence(confirmed, p["ann"])  # 1 view (guard, audited)
    g.decide(confirmed, p["ann"], "confirm", "solicitation_of_a_child")
    complaint = file_complaint(g, confirmed, channel="in_app", principal=p["dan"])
    target = hostile_case(g)  # open: what a wrong role would claim or decide
    held = hostile_case(g)
    assert g.claim(held, p["ann"])
    ids = {"case_id": target, "complaint_id": complaint, "year": "2026", "kind": "json"}
    app = create_app(g, ConsoleSettings(verify_every_seconds=3600,
                                        login_attempts_per_minute=1000))
    assert app_routes(app) == set(ROUTES), "a route without an entry in ROUTES"

    with running(app) as base:
        before = counts(g)
        # 1. every route without sign-in
        reachable, tried = [], 0
        for (method, route), roles in ROUTES.items():
            if roles is PUBLIC:
                continue
            path = route.format(**ids)
            anon = Web(base)
            anon.get("/login")  # an anonymous session and its sign-in token, even
            token = form_token(anon.get("/login").text, "/login")
            r = anon.http.request(method, path, headers=anon._headers(),
                                  data={"csrf": token, **form_for(route, target)}
                                  if not route.startswith("/api") else None,
                                  json=body_for(route, target) if route.startswith("/api")
                                  and method == "POST" else None)
            tried += 1
            if r.status_code < 300 or (route.startswith("/api") and r.status_code != 401):
                reachable.append((method, route, r.status_code))
            anon.close()
        assert reachable == []
        assert counts(g) == before  # nothing happened

        # 2. every route with every wrong role (a valid CSRF token of their own session)
        sessions = {}
        for role, name in ROLE_OF.items():
            sessions[role] = Web(base)
            sessions[role].sign_in(staff[name])
        escalations, attempts = [], 0
        auditor_text: list[str] = []
        api = httpx.Client(base_url=base, timeout=30)
        for (method, route), roles in ROUTES.items():
            if roles is PUBLIC:
                continue
            for role in ALL:
                if role in roles:
                    continue
                attempts += 1
                path = route.format(**ids)
                if route.startswith("/api"):
                    r = api.request(method, path, json=body_for(route, target)
                                    if method == "POST" else None,
                                    headers={"authorization":
                                             f"Bearer {staff[ROLE_OF[role]].token}"})
                else:
                    web = sessions[role]
                    csrf = form_token(web.get("/password").text, "/password")
                    r = (web.get(path) if method == "GET" else
                         web.post(path, {"csrf": csrf, **form_for(route, target)}))
                if r.status_code != 403:
                    escalations.append((method, route, role, r.status_code))
                if role == "auditor":
                    auditor_text.append(r.text)
        assert escalations == []
        assert counts(g) == before

        # 3. what the auditor may see: searched for content and ids
        eve = sessions["auditor"]
        for page in ("/audit", "/audit/transparency", "/audit/transparency/2026.json",
                     "/audit/transparency/2026.md"):
            r = eve.get(page)
            assert r.status_code == 200
            auditor_text.append(r.text)
        for route in ("/api/aggregates", "/api/transparency/2026"):
            r = api.get(route, headers={"authorization": f"Bearer {staff['eve'].token}"})
            assert r.status_code == 200
            auditor_text.append(r.text)
        secrets = (CANARY, SUBJECT, OTHER, confirmed, target, held, complaint,
                   "how old r u")
        found = [s for s in secrets for t in auditor_text if s in t]
        assert found == []

        # 4. every evidence answer has its audit entry (plus the guard's own view above)
        ann = sessions["reviewer"]
        shown = 0
        r = ann.submit(f"/cases/{held}", f"/cases/{held}/evidence")
        shown += r.status_code == 200 and CANARY in r.text
        r = api.post(f"/api/cases/{held}/evidence",
                     headers={"authorization": f"Bearer {staff['ann'].token}"})
        shown += r.status_code == 200 and CANARY in r.text
        r = api.post(f"/api/complaints/{complaint}/evidence",
                     headers={"authorization": f"Bearer {staff['bob'].token}"})
        shown += r.status_code == 200 and CANARY in r.text
        r = api.post(f"/api/complaints/{complaint}/evidence",  # the case's own reviewer
                     headers={"authorization": f"Bearer {staff['ann'].token}"})
        assert r.status_code == 403 and CANARY not in r.text
        views = counts(g).get("evidence_viewed", 0)
        assert shown == 3 and views == shown + 1

        # 5. CSRF: forged, replayed, another session's, another origin
        csrf_refused = 0
        bob = Web(base)
        bob.sign_in(staff["bob"])
        foreign = form_token(bob.get("/password").text, "/password")
        for token, headers in (("forged" * 6, {}), (foreign, {}),
                               (form_token(ann.get("/password").text, "/password"),
                                {"origin": "https://attacker.example"})):
            r = ann.post(f"/cases/{target}/claim", {"csrf": token}, headers=headers)
            csrf_refused += r.status_code == 403
        used = form_token(ann.get("/queue").text, f"/cases/{target}/claim")
        assert ann.post(f"/cases/{target}/claim", {"csrf": used}).status_code == 303
        r = ann.post(f"/cases/{target}/release", {"csrf": used})  # replayed
        csrf_refused += r.status_code == 403
        assert csrf_refused == 4
        after = counts(g)
        assert after["case_claimed"] == before["case_claimed"] + 1
        assert after.get("case_released", 0) == before.get("case_released", 0)
        for client in (*sessions.values(), bob):
            client.close()
        api.close()

    with capsys.disabled():
        print(f"\nattack script ({g.store.engine.dialect.name}): {len(ROUTES)} routes; "
              f"without sign-in {tried} tried, {len(reachable)} reachable; wrong roles "
              f"{attempts} tried, {len(escalations)} escalations; auditor answers "
              f"{len(auditor_text)} searched, {len(found)} hits of content or ids; "
              f"evidence answers {shown + 1}, audit entries {views}; CSRF {csrf_refused} "
              f"of 4 refused")
