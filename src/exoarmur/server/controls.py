"""Kill switches and posture over HTTP: an operator's brakes, recorded as control events.

The governor rules on every change, before it reads anything: the scope's
syntax, then who may switch it (operators: scopes of their tenants; admins:
anything, including ``global`` and every-tenant ``action:`` scopes), and it
records its own refusals. Reading switches and posture is checked here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..model.intent import TENANT_PATTERN
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .intents import TenantPath
from .limits import read_slot, write_slot
from .schemas import (
    ControlAnswer,
    EventRecord,
    KillSwitchList,
    KillSwitchRequest,
    PostureAnswer,
    PostureRequest,
    problems,
)

router = APIRouter(prefix="/v1", tags=["controls"], route_class=JSONBodyRoute)


@router.post(
    "/killswitches",
    summary="Engage or release a kill switch",
    response_model=ControlAnswer,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def switch(body: KillSwitchRequest, caller: CallerDep) -> ControlAnswer:
    """Engage or release a kill switch; an engaged switch stops what it covers at once.

    Engaging an engaged switch records nothing new and answers its event;
    releasing one that is not engaged is refused (422).
    """
    governor = caller.governor
    change = governor.engage_killswitch if body.action == "engage" else governor.release_killswitch
    event = change(body.scope, body.reason, caller.principal)
    return ControlAnswer(event=EventRecord.of(event))


@router.get(
    "/killswitches",
    summary="Engaged kill switches",
    response_model=KillSwitchList,
    responses=problems(401, 403, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def engaged(
    caller: CallerDep,
    tenant: Annotated[
        str | None,
        Query(
            pattern=TENANT_PATTERN,
            max_length=63,
            description="Only switches affecting this tenant (global ones included); "
            "omit for every switch (admin only).",
        ),
    ] = None,
) -> KillSwitchList:
    caller.require(Right.READ_CONTROLS, tenant)
    return KillSwitchList(tenant=tenant, killswitches=caller.governor.killswitches(tenant))


@router.put(
    "/tenants/{tenant}/posture",
    summary="Set a tenant's posture",
    response_model=PostureAnswer,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def set_posture(tenant: TenantPath, body: PostureRequest, caller: CallerDep) -> PostureAnswer:
    """Set normal, heightened or lockdown, optionally for a time; policy sees it in context."""
    governor = caller.governor
    event = governor.set_posture(
        tenant, body.posture, body.reason, caller.principal, ttl_seconds=body.ttl_seconds
    )
    return PostureAnswer(
        tenant=tenant, posture=governor.posture(tenant), event=EventRecord.of(event)
    )


@router.get(
    "/tenants/{tenant}/posture",
    summary="A tenant's posture",
    response_model=PostureAnswer,
    responses=problems(401, 403, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def posture(tenant: TenantPath, caller: CallerDep) -> PostureAnswer:
    caller.require(Right.READ_CONTROLS, tenant)
    return PostureAnswer(tenant=tenant, posture=caller.governor.posture(tenant))
