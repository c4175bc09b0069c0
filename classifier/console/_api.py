"""The console's JSON API under ``/api/``: the same actions as the pages, for providers who
integrate their own case tools (OpenAPI at ``/api/openapi.json``).

Every request carries an API token (``Authorization: Bearer sct_...``, from ``users token
NAME``); cookies are never accepted here, so no request can be forged from another site.
The role of every action comes from the token's account.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from .._errors import ClassifierError, Errors
from ..guard import (
    CONFIRM_REASONS,
    DISMISS_REASONS,
    complaint_queue,
    decide_complaint,
    export_report,
    file_complaint,
    re_review,
    shown,
    view_complaint_evidence,
)
from ._app import Console, Refusal, status_of

__all__ = ["install"]

STAFF, FIGURES = ("reviewer", "supervisor"), ("auditor", "supervisor")
BEARER = HTTPBearer(auto_error=False, description="An API token: users token NAME")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def _signed_in(request: Request, creds: HTTPAuthorizationCredentials | None,
               *roles: str) -> Any:
    header = f"Bearer {creds.credentials}" if creds is not None else None
    return request.app.state.console.api_principal(header, *roles)


def _reviewer(request: Request, creds: Credentials) -> Any:
    return _signed_in(request, creds, "reviewer")


def _supervisor(request: Request, creds: Credentials) -> Any:
    return _signed_in(request, creds, "supervisor")


def _staff(request: Request, creds: Credentials) -> Any:
    return _signed_in(request, creds, *STAFF)


def _figures(request: Request, creds: Credentials) -> Any:
    return _signed_in(request, creds, *FIGURES)


Reviewer = Annotated[Any, Depends(_reviewer)]
Supervisor = Annotated[Any, Depends(_supervisor)]
Staff = Annotated[Any, Depends(_staff)]
Figures = Annotated[Any, Depends(_figures)]


class Decision(BaseModel):
    """A reviewer's decision on a case they hold."""

    decision: Literal["confirm", "dismiss"]
    reason: Literal[CONFIRM_REASONS + DISMISS_REASONS] = Field(  # type: ignore[valid-type]
        description="confirm: solicitation_of_a_child; dismiss: one of the other codes")
    minor_to_minor: bool = False


class Complaint(BaseModel):
    """Who lodged a complaint: the user's account id (kept as a pseudonym) or a channel."""

    case_id: str
    user_id: str | None = None
    channel: str | None = Field(None, description="in_app, email, post, ...")


class ReReview(BaseModel):
    outcome: Literal["confirm", "dismiss"]


class ComplaintDecision(BaseModel):
    """The supervisor's decision. The re-review advises it (a dismissal upholds the
    complaint, a confirmation rejects it); a decision against the advice is recorded as
    such in the audit log."""

    outcome: Literal["upheld", "rejected"]


def install(app: Any, console: Console) -> None:
    """Add the API routes to ``app``."""
    guard = console.guard
    api = APIRouter(prefix="/api")

    def api_refused(_request: Any, err: ClassifierError) -> Any:
        return JSONResponse({"error": {"code": err.code, "message": str(err)}},
                            status_code=status_of(err))

    app.state.api_refused = api_refused

    def private_json(data: Any, filename: str) -> Any:
        return Response(data if isinstance(data, str) else json.dumps(data, indent=2),
                        media_type="application/json",
                        headers={"content-disposition": f'attachment; filename="{filename}"'})

    @api.get("/queue", tags=["review"], summary="Open and claimed cases, oldest first")
    def queue(p: Staff, limit: int = 50, offset: int = 0,
              mine: bool = False) -> list[dict[str, Any]]:
        return guard.queue(p, limit=max(1, min(limit, 500)), offset=max(0, offset), mine=mine)

    @api.get("/cases/{case_id}", tags=["review"], summary="A case without its evidence")
    def case(case_id: str, p: Staff) -> dict[str, Any]:
        return guard.case_summary(case_id, p)

    @api.post("/cases/{case_id}/claim", tags=["review"], summary="Claim an open case")
    def claim(case_id: str, p: Reviewer) -> dict[str, Any]:
        return {"claimed": guard.claim(case_id, p)}

    @api.post("/cases/{case_id}/release", tags=["review"], summary="Release a case you hold")
    def release(case_id: str, p: Reviewer) -> dict[str, Any]:
        guard.release(case_id, p)
        return {"released": True}

    @api.post("/cases/{case_id}/release-claim", tags=["review"],
              summary="A supervisor gives back a case another reviewer holds")
    def release_claim(case_id: str, p: Supervisor) -> dict[str, Any]:
        guard.release_claim(case_id, p)
        return {"released": True}

    @api.post("/cases/{case_id}/evidence", tags=["review"],
              summary="View the evidence of a case you hold (audited)")
    def evidence(case_id: str, p: Reviewer) -> dict[str, Any]:
        plain = guard.view_evidence(case_id, p)
        return {"messages": plain.get("messages", []), "subject": plain.get("subject")}

    @api.post("/cases/{case_id}/decision", tags=["review"],
              summary="Confirm (after viewing the evidence) or dismiss a case you hold")
    def decide(case_id: str, body: Decision, p: Reviewer) -> dict[str, Any]:
        guard.decide(case_id, p, body.decision, body.reason, minor_to_minor=body.minor_to_minor)
        return {"status": "confirmed" if body.decision == "confirm" else "dismissed"}

    @api.get("/reports", tags=["reports"], summary="Confirmed cases awaiting export")
    def reports(p: Supervisor) -> list[dict[str, Any]]:
        return guard.confirmed_cases(p)

    @api.post("/reports/{case_id}", tags=["reports"],
              summary="Export the report of a case someone else confirmed (four eyes)")
    def export(case_id: str, p: Supervisor) -> Any:
        report = export_report(guard, case_id, p)
        return private_json(report.to_json() + "\n", f"report-{shown(case_id)}.json")

    @api.get("/complaints", tags=["complaints"],
             summary="Complaints awaiting your re-review or decision")
    def complaints(p: Staff) -> list[dict[str, Any]]:
        return complaint_queue(guard, p)

    @api.post("/complaints", tags=["complaints"], summary="Lodge a complaint about a case")
    def lodge(body: Complaint, p: Staff) -> dict[str, Any]:
        return {"complaint_id": file_complaint(guard, body.case_id, user_id=body.user_id,
                                               channel=body.channel, principal=p)}

    @api.post("/complaints/{complaint_id}/evidence", tags=["complaints"],
              summary="View the evidence of a complained-about case (audited)")
    def complaint_evidence(complaint_id: str, p: Reviewer) -> dict[str, Any]:
        plain = view_complaint_evidence(guard, complaint_id, p)
        return {"messages": plain.get("messages", []), "subject": plain.get("subject")}

    @api.post("/complaints/{complaint_id}/re-review", tags=["complaints"],
              summary="Re-review by another reviewer than the one who decided")
    def complaint_review(complaint_id: str, body: ReReview,
                         p: Reviewer) -> dict[str, Any]:
        re_review(guard, complaint_id, p, body.outcome)
        return {"re_reviewed": True}

    @api.post("/complaints/{complaint_id}/decision", tags=["complaints"],
              summary="A supervisor decides the complaint: upheld or rejected")
    def complaint_decision(complaint_id: str, body: ComplaintDecision,
                           p: Supervisor) -> dict[str, Any]:
        if not any(c["complaint_id"] == complaint_id for c in complaint_queue(guard, p)):
            raise Refusal(Errors.G124.format(complaint_id=shown(complaint_id)))
        return {"outcome": decide_complaint(guard, complaint_id, p, body.outcome)}

    @api.get("/aggregates", tags=["audit"],
             summary="Counters, retention, latency, error rate, the audit log's state")
    def aggregates(p: Figures) -> dict[str, Any]:
        verification, at = console.monitor.latest()
        figures = guard.aggregates(p, verification=verification)
        figures["audit_log"]["verified_at"] = (datetime.fromtimestamp(at, UTC).isoformat()
                                               if at else None)
        figures["audit_log"]["verification"] = verification.lines()
        return figures

    @api.get("/transparency/{year}", tags=["audit"], summary="The annual transparency report")
    def transparency(year: int, p: Figures) -> Any:
        if not 2021 <= year <= 2100:
            raise Refusal(Errors.W007.format(field="year"))
        report = guard.transparency(p, year, organisations=console.settings.organisations)
        return private_json(report, f"transparency-{year}.json")

    app.include_router(api)
