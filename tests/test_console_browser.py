"""The review console in a real browser: Debian's Chromium driven by Playwright, against a
console served by uvicorn on a real store (SQLite and PostgreSQL).

One person per browser profile (an empty user-data folder each). Screenshots of the
queue, a case and the auditor's page go to ``$SOLICITATION_SCREENSHOTS`` (default: a
pytest temporary folder); the run prints where."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_console_common import HOSTILE, OTHER, SUBJECT, hostile_case
from test_guard_common import CANARY

from classifier.guard._store import audit_log

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("SOLICITATION_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
pytestmark = [pytest.mark.obligation("art3-1-g-ii", "audit-log"),
              pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                 reason="no system Chromium (apt-get install chromium)")]


@pytest.fixture(scope="module")
def pw():
    with playwright.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def shots(tmp_path_factory, request):
    folder = Path(os.environ.get("SOLICITATION_SCREENSHOTS")
                  or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"console screenshots: {folder}")


@pytest.fixture
def browser(pw):
    """Opens one browser profile per person; closes them all, also on failure."""
    opened: list[tuple[object, str]] = []

    def open_as() -> object:
        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900}, accept_downloads=True)
        opened.append((ctx, profile))
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        return page

    yield open_as
    for ctx, profile in opened:
        ctx.close()
        shutil.rmtree(profile, ignore_errors=True)


def sign_in(page, base: str, person) -> None:
    page.goto(f"{base}/login")
    page.fill("#name", person.name)
    page.fill("#password", person.password)
    if person.secret:
        page.fill("#code", person.code())
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url, page.inner_text("main")


def flash(page) -> str:
    return page.inner_text(".flash") if page.locator(".flash").count() else ""


def test_review_export_and_complaint_in_the_browser(browser, console_url, console_guard,
                                                    staff, shots):
    for _ in range(3):
        hostile_case(console_guard, text="see you after school")
    case_id = hostile_case(console_guard)  # the newest: markup, script and the canary
    ann = browser()
    sign_in(ann, console_url, staff["ann"])
    assert ann.url.endswith("/queue") and "Review queue" in ann.inner_text("h1")
    ann.screenshot(path=str(shots / "queue.png"), full_page=True)
    ann.click(f"form[action='/cases/{case_id}/claim'] button")
    assert ann.url.endswith(f"/cases/{case_id}") and "held by you" in ann.inner_text("main")
    assert CANARY not in ann.content()  # the evidence stays hidden until asked for
    assert ann.locator("input[value='confirm:solicitation_of_a_child']").is_disabled()
    ann.click(f"form[action='/cases/{case_id}/evidence'] button")
    text = ann.inner_text(".evidence")
    assert HOSTILE in text  # shown as the characters it is
    assert ann.title() != "owned" and ann.dialogs == []  # and never run
    assert ann.locator(".evidence img, .evidence script").count() == 0
    assert SUBJECT not in ann.content() and OTHER not in ann.content()
    ann.screenshot(path=str(shots / "case.png"), full_page=True)
    ann.check("input[value='confirm:solicitation_of_a_child']")
    ann.click(f"form[action='/cases/{case_id}/decision'] button[type=submit]")
    assert ann.url.endswith("/queue") and "Case confirmed" in flash(ann)

    cat = browser()
    sign_in(cat, console_url, staff["cat"])
    assert cat.url.endswith("/reports")
    with cat.expect_download() as download:
        cat.click(f"form[action='/reports/{case_id}'] button")
    report = json.loads(Path(download.value.path()).read_text())
    assert report["case_id"] == case_id and report["reported_account"] == SUBJECT
    assert report["human_review"]["decision"] == "confirmed"
    # the complaint: lodged (here by the supervisor, from the user's notice)
    cat.goto(f"{console_url}/complaints")
    cat.fill("#case_id", case_id)
    cat.select_option("#channel", "in_app")
    cat.click("form[action='/complaints'] button")
    assert "Complaint" in flash(cat) and "registered" in flash(cat)

    ann.goto(f"{console_url}/complaints")  # the deciding reviewer may not re-review
    assert ann.locator("a.button:has-text('Re-review')").count() == 0
    assert "you decided this case" in ann.inner_text("table")

    bob = browser()
    sign_in(bob, console_url, staff["bob"])
    bob.goto(f"{console_url}/complaints")
    bob.click("a.button:has-text('Re-review')")
    bob.click("form[action$='/evidence'] button")
    assert HOSTILE in bob.inner_text(".evidence") and bob.dialogs == []
    bob.check("input[value='dismiss']")
    bob.click("form[action$='/re-review'] button")
    assert "Re-review recorded" in flash(bob)

    dan = browser()
    sign_in(dan, console_url, staff["dan"])
    dan.goto(f"{console_url}/complaints")
    dan.click("text=Uphold: reinstate the user and destroy the evidence")
    assert "Complaint upheld" in flash(dan)
    status = console_guard.case_summary(case_id, console_guard.authenticate(staff["dan"].token))
    assert status["status"] == "reinstated" and status["risk_factors"] == {}


def test_the_auditor_sees_figures_and_no_content(browser, console_url, console_guard,
                                                 staff, shots):
    case_id = hostile_case(console_guard)
    ann = console_guard.authenticate(staff["ann"].token)
    assert console_guard.claim(case_id, ann)
    console_guard.view_evidence(case_id, ann)
    console_guard.decide(case_id, ann, "confirm", "solicitation_of_a_child")
    other = hostile_case(console_guard)
    console_guard.claim(other, ann)
    console_guard.decide(other, ann, "dismiss", "peer_conversation")
    eve = browser()
    sign_in(eve, console_url, staff["eve"])  # an auditor has no second factor
    assert eve.url.endswith("/audit")
    body = eve.content()
    assert "intact" in eve.inner_text("main") and "Error rate by year" in body
    eve.screenshot(path=str(shots / "audit.png"), full_page=True)
    eve.click("a.button:has-text('Transparency report')")
    body += eve.content()
    with eve.expect_download() as download:
        eve.click("a:has-text('Download JSON')")
    figures = json.loads(Path(download.value.path()).read_text())
    assert figures["cases"]["confirmed_by_human_review"] == 1
    assert figures["cases"]["dismissed_by_human_review"] == 1
    for secret in (CANARY, SUBJECT, OTHER, case_id, other, "how old r u"):
        assert secret not in body and secret not in json.dumps(figures)
    for page in ("/queue", f"/cases/{case_id}", "/reports", "/complaints"):
        eve.goto(f"{console_url}{page}")
        assert "This page is for the" in eve.inner_text("main")
        assert CANARY not in eve.content() and case_id not in eve.inner_text("main")


def test_a_reviewer_cannot_reach_supervisor_or_auditor_pages(browser, console_url, staff):
    ann = browser()
    sign_in(ann, console_url, staff["ann"])
    nav = ann.inner_text("nav")
    assert "Reports" not in nav and "Audit" not in nav
    for page, role in (("/reports", "supervisor"), ("/audit", "auditor or supervisor"),
                       ("/audit/transparency", "auditor or supervisor")):
        response = ann.goto(f"{console_url}{page}")
        assert response.status == 403
        assert f"This page is for the {role} role" in ann.inner_text("main")


def test_a_forged_or_replayed_csrf_token_is_refused_in_the_browser(browser, console_url,
                                                                   console_guard, staff):
    case_id = hostile_case(console_guard)
    ann = browser()
    sign_in(ann, console_url, staff["ann"])
    form = f"form[action='/cases/{case_id}/claim']"
    ann.locator(f"{form} input[name=csrf]").evaluate("e => e.value = 'forged-token'")
    ann.click(f"{form} button")
    assert "W003" in ann.inner_text("main")
    ann.goto(f"{console_url}/queue")
    used = ann.locator(f"{form} input[name=csrf]").get_attribute("value")
    ann.click(f"{form} button")
    assert ann.url.endswith(f"/cases/{case_id}")
    ann.click(f"form[action='/cases/{case_id}/release'] button")
    ann.goto(f"{console_url}/queue")
    ann.locator(f"{form} input[name=csrf]").evaluate("(e, v) => e.value = v", used)
    ann.click(f"{form} button")
    assert "W003" in ann.inner_text("main")
    actions = ("case_claimed", "case_released")
    with console_guard.store.engine.connect() as conn:
        n = dict(conn.execute(select(audit_log.c.action, func.count())
                              .where(audit_log.c.action.in_(actions))
                              .group_by(audit_log.c.action)).all())
    assert n == {"case_claimed": 1, "case_released": 1}  # the refused posts did nothing
