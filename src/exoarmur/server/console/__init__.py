"""The operator console: server-rendered pages over the governor, at ``/console``.

Sign in with an operator's or auditor's API key; approve or reject pending
intents, switch kill switches and posture, browse the ledger with each
event's inclusion proof checked, replay one intent and decide it again under
another policy (what-if), and see containment controls and plans. See
docs/console.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..limits import InFlight
from . import containment, whatif  # noqa: F401 - their pages join the router
from .pages import HERE, MAX_STREAMS, SECURITY_HEADERS, router
from .sessions import Sessions

__all__ = ["SECURITY_HEADERS", "install"]


def install(app: FastAPI, *, tls: bool = False) -> None:
    """Serve the console on ``app``: its pages, its static files, its sessions."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.state.console_sessions = Sessions()
    app.state.console_streams = InFlight(MAX_STREAMS, "live console streams")
    app.state.tls = tls
