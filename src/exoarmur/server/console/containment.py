"""The console's containment page: controls in force with their TTL left, and plans.

Read from the same folds the HTTP API answers from (``governor.containment``):
each control in force with the seconds left on the server's clock (the one
the TTL engine expires by, never the browser's), and the latest plans with
every step and where it stands. Read-only: changing containment is an
intent, submitted and approved like any other.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import Request
from fastapi.responses import Response

from ...containment.fold import (
    CONTAINMENT_REVERTED,
    PLAN_STEP_FINISHED,
    PLAN_STEP_STARTED,
)
from ...pipeline import Governor
from ..access import Right
from .pages import _caller, _page, _run, _session, _tenant, router
from .sessions import Session

#: plans shown, newest first
RECENT_PLANS: Final = 20


def _scope(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value.get('kind')}:{value.get('id')}"
    return str(value)


def _steps(recorded: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each step as planned, with what the plan's events say happened to it."""
    steps = []
    for number, step in enumerate(recorded, start=1):
        mine = [e for e in events if e.get("step") == number]
        status, error = "not started", None
        for event in mine:
            if event["type"] == PLAN_STEP_STARTED:
                status = "running"
            elif event["type"] == PLAN_STEP_FINISHED:
                status, error = event["status"], event.get("error")
            elif event["type"] == CONTAINMENT_REVERTED:
                status = "compensated" if event.get("cause") == "compensation" else "expired"
        steps.append(
            {
                "number": number,
                "effector": step.get("effector"),
                "scope": _scope(step.get("scope")),
                "ttl_seconds": step.get("ttl_seconds"),
                "status": status,
                "error": error,
            }
        )
    return steps


def _containment_context(request: Request, session: Session, tenant: str | None) -> dict[str, Any]:
    if tenant is None:
        return {"tenant": None, "controls": [], "plans": []}
    caller = _caller(request, session)
    caller.require(Right.READ_CONTROLS, tenant)
    governor: Governor = caller.governor
    room = governor.containment
    now = governor.clock.now()
    controls = [
        {"control": c, "seconds_left": max(0, int((c.expires_at - now).total_seconds()))}
        for c in room.status(tenant)
    ]
    plans = []
    for plan_id in reversed(room.plan_ids(tenant)[-RECENT_PLANS:]):
        summary = room.plan_summary(tenant, plan_id)
        if summary is None:  # pragma: no cover - plan_ids lists plan intents only
            continue
        intent = governor.story(tenant, plan_id)[0].payload["intent"]
        plan = intent["params"]["plan"]
        summary["name"] = plan.get("name")
        summary["actor"] = intent["actor"]["id"]
        summary["steps"] = _steps(plan.get("steps", []), summary["events"])
        plans.append(summary)
    return {"tenant": tenant, "controls": controls, "plans": plans, "now": now}


@router.get("/containment")
async def containment(request: Request, tenant: str | None = None) -> Response:
    session = _session(request)
    chosen = _tenant(request, session, tenant)
    context = await _run(lambda: _containment_context(request, session, chosen))
    return _page(request, "containment.html", session, **context)
