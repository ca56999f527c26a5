"""The HTTP application: routes, bounds and error mapping around one governor.

``create_app(governor)`` wires a governor someone else opened (and will
close) into a FastAPI app. Endpoints are plain functions: FastAPI runs them
in its thread pool, where the blocking, thread-safe governor belongs; what
must answer under load (health, the 429 and 413 refusals, error handlers)
runs on the event loop and never waits for a thread.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI

from .. import __version__
from ..pipeline import Governor
from . import attest, console, controls, intents, memory, metrics, plans, record, service, tiles
from . import evidence as evidence_export
from . import hooks as tool_hooks
from . import observations as telemetry
from . import policy as policy_tools
from . import principals as principal_admin
from . import reported as reported_actions
from . import slack as slack_approvals
from . import stream as intent_stream
from .audit import RefusalAudit
from .errors import LastResort, install_error_handlers
from .limits import BodyLimit, InFlight, Limits
from .requestlog import RequestIds
from .schemas import intent_submission_schema
from .settings import RefusalBudget
from .tracing import StageSpans

DESCRIPTION: Final = """\
The governance layer between AI agents and the systems they change, over HTTP.

Every call but `/v1/health` and `/v1/ready` needs `Authorization: Bearer <api key>`
(keys from `exoarmur principal add`). The caller's identity is its key's principal,
never a name in the body. Errors share one shape: `{"error", "message", "detail":
[{"field", "rule"}]}`. See docs/http.md.
"""


def _application(limits: Limits) -> FastAPI:
    app = FastAPI(
        title="ExoArmur",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    for module in (service, intents, controls, record, tiles, metrics, plans, memory):
        app.include_router(module.router)
    app.include_router(intent_stream.router)
    app.include_router(attest.router)
    app.include_router(evidence_export.router)
    app.include_router(reported_actions.router)
    app.include_router(tool_hooks.router)
    app.include_router(policy_tools.router)
    app.include_router(principal_admin.router)
    app.include_router(telemetry.router)
    app.include_router(slack_approvals.router)
    console.install(app)
    # Added last is outermost: LastResort sees everything, BodyLimit runs before parsing,
    # and every answer (even LastResort's) carries its request id.
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    app.add_middleware(LastResort)
    app.add_middleware(RequestIds)
    app.state.limits = limits
    #: set when the service begins to stop: new submissions and votes are refused 503
    app.state.stopping = False
    app.state.write_slots = InFlight(limits.max_in_flight_writes, "submissions and votes")
    app.state.read_slots = InFlight(limits.max_in_flight_reads, "reads")
    document = app.openapi()  # generated once and cached by FastAPI; complete it in place
    document["components"]["schemas"]["IntentSubmission"] = intent_submission_schema()
    return app


def create_app(
    governor: Governor,
    *,
    limits: Limits | None = None,
    refusals: RefusalBudget | None = None,
    tls: bool = False,
) -> FastAPI:
    """The HTTP API over ``governor``. The app does not own it: whoever opened it closes it.

    ``tls``: the service is reached over HTTPS (the console's cookies are then ``Secure``).

    Before closing it, call ``app.state.refusals.flush()`` to record the
    refusals counted in the current window.
    """
    app = _application(limits or Limits())
    app.state.governor = governor
    app.state.refusals = RefusalAudit(governor, refusals)
    app.state.tls = tls
    app.state.metrics = metrics.Metrics(governor, app.state)
    governor.observe(app.state.metrics)
    governor.observe(StageSpans(app.state))
    slack_approvals.install(app, None)
    #: set by ``exoarmur serve`` from ``[server] public_url``: links in pending answers
    app.state.public_url = None
    return app
