"""The console's pages: server-rendered (Jinja2, autoescaped), plain forms, no script.

Every page needs a signed-in session of the right role (the role comes from the account,
never from the request); every form carries a one-time CSRF token. Evidence is shown only
in the answer to an explicit, audited "view evidence" post, never at a URL of its own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from .._errors import ClassifierError, Errors, StoreError
from ..guard import (
    complaint_queue,
    decide_complaint,
    export_report,
    file_complaint,
    re_review,
    report_markdown,
    shown,
    view_complaint_evidence,
)
from . import _present as present
from ._app import HERE, Console, Refusal, status_of

__all__ = ["install"]

HOME = {"reviewer": "/queue", "supervisor": "/reports", "auditor": "/audit"}
REVIEW, STAFF, FIGURES = ("reviewer",), ("reviewer", "supervisor"), ("auditor", "supervisor")


def install(app: Any, console: Console) -> None:
    """Add the pages to ``app``."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(fmt=present, reasons=present.REASON_LABELS,
                                 decisions=present.DECISIONS, channels=present.CHANNELS,
                                 statuses=present.STATUS_LABELS)
    guard, settings = console.guard, console.settings

    def render(request: Request, session: Any, name: str, status: int = 200,
               **context: Any) -> Any:
        flashes = list(session.flash) if session is not None else []
        if session is not None:
            session.flash.clear()
        context.update(me=session.principal if session is not None else None,
                       csrf=session.new_csrf if session is not None else None,
                       flashes=flashes)
        response = templates.TemplateResponse(request, name, context, status_code=status)
        if session is not None and session.principal is None:
            console.set_cookie(response, session)
        return response

    def back(session: Any, url: str, kind: str = "", text: str = "") -> Any:
        if text:
            session.flash.append((kind, text))
        return RedirectResponse(url, status_code=303)

    def refused(request: Request, err: ClassifierError) -> Any:
        code = err.code or ""
        if code in ("W001", "W002"):
            response = RedirectResponse("/login", status_code=303)
            if code == "W002":  # say why on the sign-in page
                s = console.sessions.new()
                s.flash.append(("error", str(err)))
                console.set_cookie(response, s)
            return response
        if code == "G134":
            return RedirectResponse("/password", status_code=303)
        try:
            s = console.session(request)
        except ClassifierError:
            s = None
        return render(request, s, "error.html", status_of(err), message=str(err),
                      title="Not done")

    app.state.refused = refused

    @app.exception_handler(ClassifierError)
    def _coded(request: Request, err: ClassifierError) -> Any:
        if request.url.path.startswith("/api/"):
            return app.state.api_refused(request, err)
        return refused(request, err)

    @app.exception_handler(404)
    def _missing(request: Request, _exc: Any) -> Any:
        return _coded(request, Refusal(Errors.W009))

    @app.exception_handler(405)
    def _method(request: Request, _exc: Any) -> Any:
        return _coded(request, Refusal(Errors.W009, 405))

    @app.exception_handler(RequestValidationError)  # its own answer would echo the input
    def _invalid(request: Request, _exc: Any) -> Any:
        return _coded(request, Refusal(Errors.W007.format(field="(request)")))

    # -- sign-in ---------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Any:
        s = console.page(request)
        return RedirectResponse(HOME[s.principal.role], status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Any:
        try:
            current = console.session(request)
        except ClassifierError:
            current = None
        if current is not None and current.principal is not None:  # signed in already
            return RedirectResponse("/", status_code=303)
        s = console.anonymous(request)
        return render(request, s, "login.html", title="Sign in")

    @app.post("/login", include_in_schema=False)
    def login(request: Request, csrf: str = Form(""), name: str = Form(""),
              password: str = Form(""), code: str = Form("")) -> Any:
        s = console.form(request, csrf, signed_in=False)
        client = request.client.host if request.client else "-"
        if not console.login_limit.allow(client):
            raise Refusal(Errors.W005)
        try:
            principal = guard.sign_in(name, password, code.strip() or None)
        except StoreError as err:
            return render(request, s, "login.html", status_of(err), title="Sign in",
                          error=str(err))
        console.sessions.end(s)
        new = console.sessions.new(principal)
        url = "/password" if principal.must_change_password else HOME[principal.role]
        response = RedirectResponse(url, status_code=303)
        console.set_cookie(response, new)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, password_page=True)
        released = guard.release_all(s.principal) if s.principal is not None else 0
        console.sessions.end(s)
        new = console.sessions.new()
        new.flash.append(("ok", "You are signed out." + (
            f" The {released} case(s) you held are back in the queue." if released else "")))
        response = RedirectResponse("/login", status_code=303)
        console.set_cookie(response, new)
        return response

    @app.get("/password", include_in_schema=False)
    def password_page(request: Request) -> Any:
        s = console.page(request, password_page=True)
        return render(request, s, "password.html", title="Choose a password")

    @app.post("/password", include_in_schema=False)
    def password(request: Request, csrf: str = Form(""), new: str = Form(""),
                 again: str = Form("")) -> Any:
        s = console.form(request, csrf, password_page=True)
        if new != again:
            raise Refusal(Errors.W010)
        s.principal = guard.change_password(s.principal, new)
        return back(s, HOME[s.principal.role], "ok", "Your new password is set.")

    # -- the queue and a case ------------------------------------------------------------
    @app.get("/queue", include_in_schema=False)
    def queue(request: Request, page: int = 1) -> Any:
        s = console.page(request, *STAFF)
        p, n = s.principal, settings.page_size
        page = max(1, min(page, 10**6))
        rows = guard.queue(p, limit=n + 1, offset=(page - 1) * n)
        mine = guard.queue(p, mine=True) if p.role == "reviewer" else []
        return render(request, s, "queue.html", title="Review queue", rows=rows[:n],
                      more=len(rows) > n, page=page, mine=mine)

    def case_page(request: Request, s: Any, case_id: str, evidence: Any = None) -> Any:
        p = s.principal
        summary = guard.case_summary(case_id, p)
        held = p.role == "reviewer" and any(
            c["case_id"] == summary["case_id"] for c in guard.queue(p, mine=True))
        return render(request, s, "case.html", title="Case", case=summary, held=held,
                      factors=present.factor_rows(summary["risk_factors"]),
                      evidence=evidence)

    @app.get("/cases/{case_id}", include_in_schema=False)
    def case(request: Request, case_id: str) -> Any:
        return case_page(request, console.page(request, *STAFF), case_id)

    @app.post("/cases/{case_id}/claim", include_in_schema=False)
    def claim(request: Request, case_id: str, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, *REVIEW)
        if guard.claim(case_id, s.principal):
            return back(s, f"/cases/{shown(case_id)}", "ok",
                        "You hold this case now: nobody else can act on it until you "
                        "decide or release it.")
        return back(s, "/queue", "error", "Not claimed: someone else holds that case, or "
                                          "it is no longer open.")

    @app.post("/cases/{case_id}/evidence", include_in_schema=False)
    def evidence(request: Request, case_id: str, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, *REVIEW)
        plain = guard.view_evidence(case_id, s.principal)  # audited with the decryption
        return case_page(request, s, case_id, evidence=plain)

    @app.post("/cases/{case_id}/decision", include_in_schema=False)
    def decide(request: Request, case_id: str, csrf: str = Form(""),
               decision: str = Form(""), minor_to_minor: str = Form("")) -> Any:
        s = console.form(request, csrf, *REVIEW)
        if decision not in present.DECISIONS:
            raise Refusal(Errors.W007.format(field="decision"))
        verdict, reason = decision.split(":")
        guard.decide(case_id, s.principal, verdict, reason,
                     minor_to_minor=minor_to_minor == "on")
        text = ("Case confirmed: it now waits for a supervisor's export."
                if verdict == "confirm" else
                "Case dismissed: its evidence and pseudonyms were destroyed.")
        return back(s, "/queue", "ok", text)

    @app.post("/cases/{case_id}/release", include_in_schema=False)
    def release(request: Request, case_id: str, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, *REVIEW)
        guard.release(case_id, s.principal)
        return back(s, "/queue", "ok", "Case released: it is back in the queue.")

    @app.post("/cases/{case_id}/release-claim", include_in_schema=False)
    def release_claim(request: Request, case_id: str, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, "supervisor")
        guard.release_claim(case_id, s.principal)
        return back(s, "/queue", "ok", "The case is back in the queue: any reviewer may "
                    "claim it (and views its evidence again).")

    # -- reports -------------------------------------------------------------------------
    @app.get("/reports", include_in_schema=False)
    def reports(request: Request) -> Any:
        s = console.page(request, "supervisor")
        return render(request, s, "reports.html", title="Reports",
                      rows=guard.confirmed_cases(s.principal))

    @app.post("/reports/{case_id}", include_in_schema=False)
    def export(request: Request, case_id: str, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, "supervisor")
        report = export_report(guard, case_id, s.principal)
        return Response(report.to_json() + "\n", media_type="application/json", headers={
            "content-disposition": f'attachment; filename="report-{shown(case_id)}.json"'})

    # -- complaints ----------------------------------------------------------------------
    @app.get("/complaints", include_in_schema=False)
    def complaints(request: Request) -> Any:
        s = console.page(request, *STAFF)
        return render(request, s, "complaints.html", title="Complaints",
                      rows=complaint_queue(guard, s.principal))

    @app.post("/complaints", include_in_schema=False)
    def lodge(request: Request, csrf: str = Form(""), case_id: str = Form(""),
              channel: str = Form(""), user_id: str = Form("")) -> Any:
        s = console.form(request, csrf, *STAFF)
        if user_id.strip():
            cid = file_complaint(guard, case_id.strip(), user_id=user_id.strip(),
                                 principal=s.principal)
        elif channel in present.CHANNELS:
            cid = file_complaint(guard, case_id.strip(), channel=channel,
                                 principal=s.principal)
        else:
            raise Refusal(Errors.W007.format(field="channel"))
        return back(s, "/complaints", "ok", f"Complaint {cid} registered: it waits for a "
                    "re-review by a reviewer who did not decide the case.")

    def complaint_item(s: Any, complaint_id: str) -> dict[str, Any]:
        for item in complaint_queue(guard, s.principal):
            if item["complaint_id"] == complaint_id:
                return item
        raise StoreError(Errors.G122.format(complaint_id=shown(complaint_id)))

    def complaint_page(request: Request, s: Any, complaint_id: str,
                       evidence: Any = None) -> Any:
        item = complaint_item(s, complaint_id)
        summary = guard.case_summary(item["case_id"], s.principal)
        return render(request, s, "complaint.html", title="Complaint", item=item,
                      case=summary, factors=present.factor_rows(summary["risk_factors"]),
                      evidence=evidence)

    @app.get("/complaints/{complaint_id}", include_in_schema=False)
    def complaint(request: Request, complaint_id: str) -> Any:
        return complaint_page(request, console.page(request, *REVIEW), complaint_id)

    @app.post("/complaints/{complaint_id}/evidence", include_in_schema=False)
    def complaint_evidence(request: Request, complaint_id: str, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, *REVIEW)
        plain = view_complaint_evidence(guard, complaint_id, s.principal)  # audited
        return complaint_page(request, s, complaint_id, evidence=plain)

    @app.post("/complaints/{complaint_id}/re-review", include_in_schema=False)
    def complaint_review(request: Request, complaint_id: str, csrf: str = Form(""),
                         outcome: str = Form("")) -> Any:
        s = console.form(request, csrf, *REVIEW)
        if outcome not in ("confirm", "dismiss"):
            raise Refusal(Errors.W007.format(field="outcome"))
        re_review(guard, complaint_id, s.principal, outcome)
        return back(s, "/complaints", "ok", "Re-review recorded: a supervisor who took "
                    "no part in the case now decides the complaint.")

    @app.post("/complaints/{complaint_id}/decision", include_in_schema=False)
    def complaint_decision(request: Request, complaint_id: str, csrf: str = Form(""),
                           outcome: str = Form("")) -> Any:
        s = console.form(request, csrf, "supervisor")
        if outcome not in ("upheld", "rejected"):
            raise Refusal(Errors.W007.format(field="outcome"))
        complaint_item(s, complaint_id)  # listed for this supervisor, or refused
        status = decide_complaint(guard, complaint_id, s.principal, outcome)
        text = ("Complaint upheld: the user is reinstated and the evidence destroyed."
                if status == "upheld" else "Complaint rejected: the decision stands.")
        return back(s, "/complaints", "ok", text)

    # -- the auditor's figures -----------------------------------------------------------
    @app.get("/audit", include_in_schema=False)
    def audit(request: Request) -> Any:
        s = console.page(request, *FIGURES)
        verification, at = console.monitor.latest()
        figures = guard.aggregates(s.principal, verification=verification)
        return render(request, s, "audit.html", title="Audit", figures=figures,
                      verification=verification, verified_at=at,
                      year=datetime.now(UTC).year)

    @app.post("/audit/verify", include_in_schema=False)
    def audit_verify(request: Request, csrf: str = Form("")) -> Any:
        s = console.form(request, csrf, *FIGURES)
        result = console.monitor.refresh()
        return back(s, "/audit", "ok" if result.intact else "error",
                    "Audit log verified now: " + ("intact." if result.intact else "BROKEN."))

    def year_of(value: Any) -> int:
        try:
            year = int(value)
        except (TypeError, ValueError):
            raise Refusal(Errors.W007.format(field="year")) from None
        if not 2021 <= year <= 2100:
            raise Refusal(Errors.W007.format(field="year"))
        return year

    @app.get("/audit/transparency", include_in_schema=False)
    def transparency(request: Request, year: str = "") -> Any:
        s = console.page(request, *FIGURES)
        y = year_of(year or datetime.now(UTC).year)
        report = guard.transparency(s.principal, y, organisations=settings.organisations)
        return render(request, s, "transparency.html", title=f"Transparency report {y}",
                      report=report, year=y)

    @app.get("/audit/transparency/{year}.{kind}", include_in_schema=False)
    def transparency_file(request: Request, year: str, kind: str) -> Any:
        s = console.page(request, *FIGURES)
        y = year_of(year)
        if kind not in ("json", "md"):
            raise Refusal(Errors.W009)
        report = guard.transparency(s.principal, y, organisations=settings.organisations)
        body = json.dumps(report, indent=2) + "\n" if kind == "json" else \
            report_markdown(report)
        media = "application/json" if kind == "json" else "text/markdown; charset=utf-8"
        return Response(body, media_type=media, headers={
            "content-disposition": f'attachment; filename="transparency-{y}.{kind}"'})
