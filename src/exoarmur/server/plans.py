"""Containment plans and controls in force over HTTP (operators and admins, tenant-scoped).

A plan submitted here is governed exactly as from the command line: one
intent whose params carry the plan and its hash, decided by policy and the
gate, approved through ``/v1/tenants/{tenant}/approvals`` like any intent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import Field

from ..containment.plans import door_net, parse_plan
from ..containment.room import plan_intent
from ..errors import ContainmentError, NotFound
from ..model.trace import trace_id_of
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .intents import ULID_PATTERN, TenantPath
from .limits import read_slot, write_slot
from .schemas import _Body, problems

router = APIRouter(prefix="/v1", tags=["containment"], route_class=JSONBodyRoute)
PlanIdPath = Annotated[str, Path(pattern=ULID_PATTERN, description="The plan's id (a ULID).")]


class PlanRequest(_Body):
    """A plan (ordered steps), or a preset with its targets."""

    plan: dict[str, Any] | None = Field(
        default=None,
        description='`{"name", "steps": [{"effector", "scope", "ttl_seconds"}]}`; see '
        "docs/containment.md.",
    )
    preset: Literal["door-net"] | None = None
    targets: list[str] = Field(
        default_factory=list, max_length=8, description="`kind:id` scopes for a preset."
    )


class PlanAnswer(_Body):
    """A plan's hash, its steps and where it stands."""

    plan_id: str
    plan_hash: str | None
    sequence: list[str]
    status: str
    error: str | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)


class PlanList(_Body):
    tenant: str
    plans: list[PlanAnswer]


class ControlsInForceAnswer(_Body):
    tenant: str
    controls: list[dict[str, Any]]


@router.post(
    "/tenants/{tenant}/plans",
    summary="Submit a containment plan",
    response_model=PlanAnswer,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def submit_plan(
    tenant: TenantPath, body: PlanRequest, request: Request, caller: CallerDep
) -> PlanAnswer:
    """Govern a plan as a whole; bad plans are refused (422) naming the step and the rule."""
    caller.require(Right.CONTROL, tenant)
    if (body.plan is None) == (body.preset is None):
        raise ContainmentError("plan: give either plan or preset")
    plan = (
        door_net(tenant, body.targets) if body.preset is not None else parse_plan(body.plan, tenant)
    )
    governor = caller.governor
    trace_id = trace_id_of(request.headers.get("traceparent"))  # malformed: ignored
    outcome = governor.submit(plan_intent(plan, tenant, caller.principal.name), trace_id=trace_id)
    summary = governor.containment.plan_summary(tenant, outcome.intent_id)
    assert summary is not None
    return PlanAnswer(**summary)


@router.get(
    "/tenants/{tenant}/plans",
    summary="A tenant's containment plans",
    response_model=PlanList,
    responses=problems(401, 403, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def list_plans(tenant: TenantPath, caller: CallerDep) -> PlanList:
    caller.require(Right.READ_CONTROLS, tenant)
    room = caller.governor.containment
    found = [room.plan_summary(tenant, i, with_events=False) for i in room.plan_ids(tenant)]
    return PlanList(
        tenant=tenant,
        plans=[PlanAnswer(**(s | {"events": []})) for s in found if s is not None],
    )


@router.get(
    "/tenants/{tenant}/plans/{plan_id}",
    summary="One containment plan and its events",
    response_model=PlanAnswer,
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def show_plan(tenant: TenantPath, plan_id: PlanIdPath, caller: CallerDep) -> PlanAnswer:
    caller.require(Right.READ_CONTROLS, tenant)
    summary = caller.governor.containment.plan_summary(tenant, plan_id)
    if summary is None:
        raise NotFound(f"no plan {plan_id} in tenant {tenant}")
    return PlanAnswer(**summary)


@router.get(
    "/tenants/{tenant}/containment",
    summary="Containment controls in force",
    response_model=ControlsInForceAnswer,
    responses=problems(401, 403, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def controls_in_force(tenant: TenantPath, caller: CallerDep) -> ControlsInForceAnswer:
    caller.require(Right.READ_CONTROLS, tenant)
    controls = caller.governor.containment.status(tenant)
    return ControlsInForceAnswer(tenant=tenant, controls=[c.to_json() for c in controls])
