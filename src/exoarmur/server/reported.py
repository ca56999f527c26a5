"""Actions the caller carries out, over HTTP: report their start, then how they ended.

Only the principal that submitted the intent may report on it; another
agent is answered as for a missing intent, anyone else is refused (403,
recorded). The rules themselves (once, never for a denied or pending
intent, the gate's re-check before a start) are :mod:`exoarmur.reported`'s.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from .. import reported
from ..approvals import intent_state
from ..errors import Conflict
from ..model.decision import Outcome
from .access import Right, sees_intent
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .intents import IntentIdPath, TenantPath
from .limits import write_slot
from .schemas import EventRecord, OutcomeReport, StartAnswer, problems

router = APIRouter(prefix="/v1", tags=["intents"], route_class=JSONBodyRoute)


_RESPONSES = problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503)


def _as_submitter(caller: CallerDep, tenant: str, intent_id: str) -> None:
    """Refuse (recorded) anyone but the principal that submitted the intent."""
    caller.require(Right.SUBMIT, tenant)
    actor = intent_state(caller.governor.story(tenant, intent_id)).intent.actor.id
    if not sees_intent(caller.principal, actor):
        caller.hide(tenant, intent_id)
    if actor != caller.principal.name:
        caller.refuse(tenant, f"only {actor!r}, who submitted intent {intent_id}, may report it")


@router.post(
    "/tenants/{tenant}/intents/{intent_id}/start",
    summary="Start an action you carry out",
    response_model=StartAnswer,
    responses=_RESPONSES,
    dependencies=[Depends(write_slot)],
)
def start(tenant: TenantPath, intent_id: IntentIdPath, caller: CallerDep) -> StartAnswer:
    """Record `execution.started` for an allowed (or approved) intent with no executor bound.

    Call it right before the side effect, and act only on a 200. The safety
    gate is checked again first: a kill switch engaged since the decision is
    recorded as `execution.blocked` and answered 409. Also 409 (naming why)
    for an intent that was denied, waits for approval, already started, or
    whose action ExoArmur runs itself.
    """
    _as_submitter(caller, tenant, intent_id)
    started = reported.start(caller.governor, tenant, intent_id, caller.principal.name)
    if started.event is None:
        raise Conflict(f"intent {intent_id} may not start: {started.outcome.error}")
    return StartAnswer(outcome=started.outcome, event=EventRecord.of(started.event))


@router.post(
    "/tenants/{tenant}/intents/{intent_id}/outcome",
    summary="Report how an action you carried out ended",
    response_model=Outcome,
    responses=_RESPONSES,
    dependencies=[Depends(write_slot)],
)
def report_outcome(
    tenant: TenantPath, intent_id: IntentIdPath, body: OutcomeReport, caller: CallerDep
) -> Outcome:
    """Record `execution.finished` (status, result and its hash) once, after a start."""
    _as_submitter(caller, tenant, intent_id)
    return reported.finish(
        caller.governor,
        tenant,
        intent_id,
        caller.principal.name,
        body.status,
        result=body.result,
        error=body.error,
    )
