"""The review console: a web application for reviewers, supervisors and auditors.

Server-rendered pages (the queue, a case with its risk factors and the audited evidence
view, reports, complaints, the auditor's figures and the transparency report) and a JSON
API under ``/api/`` for the same actions, on the guard (:mod:`classifier.guard`): every
action is taken by a signed-in :class:`~classifier.guard.Principal`, whose role comes from
its account. Needs the ``[console]`` extra (FastAPI, Jinja2, uvicorn, python-multipart).

>>> from classifier.console import ConsoleSettings
>>> ConsoleSettings().cookie_name
'__Host-review'
"""

from __future__ import annotations

from typing import Any

from .._errors import Errors
from ._app import Console, ConsoleSettings, Refusal, create_app, is_loopback, running

__all__ = ["Console", "ConsoleSettings", "create_app", "is_loopback", "running", "serve"]


def serve(guard: Any, settings: ConsoleSettings | None = None, *, host: str = "127.0.0.1",
          port: int = 8080, tls_cert: str | None = None, tls_key: str | None = None) -> None:
    """Run the console with uvicorn in this process until interrupted.

    One process only: the guard's principals work only in the process that issued them.
    uvicorn's own access log is off; the console writes one line per request with the
    route's template (``GET /cases/{case_id} 200 12ms``), never an id or content.

    Raises
    ------
    Refusal
        W012 when cookies without ``Secure`` are asked for on an address other than
        loopback.
    """
    import logging

    import uvicorn

    settings = settings or ConsoleSettings()
    if not settings.secure_cookies and not is_loopback(host):
        raise Refusal(Errors.W012)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(create_app(guard, settings), host=host, port=port, access_log=False,
                log_level="info", ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                server_header=False, proxy_headers=False)
