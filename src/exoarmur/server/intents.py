"""Intents over HTTP: submit, read the story, list pending approvals, vote."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from ..approvals import Vote, intent_state
from ..errors import Conflict, IntentError, PermissionDenied
from ..integrations.console_link import console_link
from ..model.decision import Outcome, OutcomeStatus
from ..model.intent import MAX_INTENT_BYTES, TENANT_PATTERN, parse_intent
from ..model.trace import trace_id_of
from ..pipeline import outcome_from_events
from .access import SUBMIT_KINDS, Right, sees_intent
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .limits import read_slot, write_slot
from .metrics import metrics_of
from .schemas import (
    INTENT_SUBMISSION,
    ApprovalRecord,
    EventRecord,
    PendingIntent,
    PendingList,
    Story,
    VoteAnswer,
    VoteRequest,
    intent_record,
    problems,
)
from .tracing import stage

router = APIRouter(prefix="/v1", tags=["intents"], route_class=JSONBodyRoute)

ULID_PATTERN = r"^[0-9A-HJKMNP-TV-Z]{26}$"
TenantPath = Annotated[str, Path(pattern=TENANT_PATTERN, max_length=63, description="A tenant.")]
IntentIdPath = Annotated[str, Path(pattern=ULID_PATTERN, description="The intent's id (a ULID).")]


async def intent_document(request: Request) -> Any:
    """Dependency: the body as JSON, read by the route's strict reader, size-checked."""
    raw = await request.body()
    if len(raw) > MAX_INTENT_BYTES:
        raise IntentError([("intent", f"document of {len(raw)} bytes exceeds {MAX_INTENT_BYTES}")])
    return await request.json()


@router.post(
    "/intents",
    summary="Submit an intent",
    response_model=Outcome,
    responses={
        200: {
            "description": "Handled: the outcome (executed, decided for the caller, denied, "
            "failed, blocked…); a duplicate answers the first outcome."
        },
        202: {
            "model": PendingIntent,
            "description": "Recorded, waiting for approval: vote on it with the intent hash. "
            "With `[server] public_url` configured, `console_url` links the console's inbox.",
            "headers": {
                "Location": {
                    "description": "The intent's story.",
                    "schema": {"type": "string"},
                }
            },
        },
        **problems(400, 401, 403, 409, 413, 415, 422, 429, 500, 503),
    },
    openapi_extra={"requestBody": INTENT_SUBMISSION},
    dependencies=[Depends(write_slot)],
)
def submit_intent(
    request: Request, caller: CallerDep, document: Annotated[Any, Depends(intent_document)]
) -> Response | Outcome:
    """Govern one intent as the authenticated principal.

    The actor is the key's principal: `actor` may be omitted, and an
    `actor.id` naming anyone else is refused. A denial is an answer, not an
    error: 200 with status `denied`. An `idempotency_key` is scoped to the
    actor; an `intent_id` already recorded in the tenant is 409.
    """
    principal = caller.principal
    caller.has_role_for(Right.SUBMIT)
    if isinstance(document, dict) and "actor" not in document:
        document["actor"] = {"id": principal.name, "kind": "agent"}
    intent = parse_intent(document)
    if intent.actor.id != principal.name:
        caller.refuse(intent.tenant, f"may not submit as {intent.actor.id!r}")
    if intent.actor.kind not in SUBMIT_KINDS.get(principal.role, frozenset()):
        caller.refuse(intent.tenant, f"may not submit as actor kind {intent.actor.kind!r}")
    caller.require(Right.SUBMIT, intent.tenant)
    metrics = metrics_of(request)
    with stage(request, "submit", tenant=intent.tenant, action=intent.action) as span:
        with metrics.timed("submit"):
            # A malformed traceparent is ignored, as Trace Context asks (the span ignores it too).
            trace_id = trace_id_of(request.headers.get("traceparent"))
            outcome = caller.governor.submit(intent, trace_id=trace_id)
        span.note(
            intent_id=outcome.intent_id,
            verdict=outcome.decision.verdict.value,
            status=outcome.status.value,
        )
    metrics.decided(outcome)
    if outcome.status != OutcomeStatus.PENDING_APPROVAL:
        return outcome
    state = intent_state(caller.governor.story(outcome.tenant, outcome.intent_id))
    body = PendingIntent.of(state).model_dump(mode="json")
    link = console_link(request.app.state.public_url, outcome.tenant, outcome.intent_id)
    if link is not None:  # only when `[server] public_url` says where operators reach us
        body["console_url"] = link
    return JSONResponse(
        body,
        status_code=202,
        headers={"Location": f"/v1/tenants/{outcome.tenant}/intents/{outcome.intent_id}"},
    )


@router.get(
    "/tenants/{tenant}/intents/{intent_id}",
    summary="The story of one intent",
    response_model=Story,
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def intent_story(tenant: TenantPath, intent_id: IntentIdPath, caller: CallerDep) -> Story:
    """Outcome, approval state and every event of one intent, from the ledger.

    Agents read only their own intents; another's answers 404, like a missing one.
    """
    caller.require(Right.READ_INTENTS, tenant)
    events = caller.governor.story(tenant, intent_id)
    state = intent_state(events)
    if not sees_intent(caller.principal, state.intent.actor.id):
        caller.hide(tenant, intent_id)
    return Story(
        intent=intent_record(state),
        intent_hash=state.intent_hash,
        outcome=outcome_from_events(events),
        approval=ApprovalRecord.of(state),
        events=[EventRecord.of(event) for event in events],
    )


@router.get(
    "/tenants/{tenant}/approvals",
    summary="Intents waiting for approval",
    response_model=PendingList,
    responses=problems(401, 403, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def pending_approvals(tenant: TenantPath, request: Request, caller: CallerDep) -> PendingList:
    """Pending intents, oldest first; overdue ones are recorded as expired on the way."""
    caller.require(Right.READ_APPROVALS, tenant)
    metrics_of(request).expired(tenant, len(caller.governor.expire_due(tenant)))
    states = caller.governor.pending(tenant)
    return PendingList(tenant=tenant, pending=[PendingIntent.of(state) for state in states])


_VOTE_RESPONSES = problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503)


def _vote(
    request: Request,
    caller: CallerDep,
    tenant: str,
    intent_id: str,
    vote: Vote,
    body: VoteRequest,
) -> VoteAnswer:
    caller.require(Right.VOTE, tenant)
    with (
        stage(request, "vote", tenant=tenant, intent_id=intent_id, vote=vote.value) as span,
        metrics_of(request).timed("vote"),
    ):
        result = caller.governor.vote(
            tenant, intent_id, caller.principal, vote, body.reason, body.intent_hash
        )
        span.note(status=result.outcome.status.value, approval=result.status.value)
    if not result.accepted:
        # Recorded as approval.refused in the tenant's log by the governor.
        if result.forbidden:
            raise PermissionDenied(result.message)
        raise Conflict(result.message)
    return VoteAnswer(
        accepted=True,
        message=result.message,
        approval_status=result.status,
        outcome=result.outcome,
    )


@router.post(
    "/tenants/{tenant}/intents/{intent_id}/approve",
    summary="Approve a pending intent",
    response_model=VoteAnswer,
    responses=_VOTE_RESPONSES,
    dependencies=[Depends(write_slot)],
)
def approve(
    tenant: TenantPath,
    intent_id: IntentIdPath,
    body: VoteRequest,
    request: Request,
    caller: CallerDep,
) -> VoteAnswer:
    """Vote to approve, as the key's principal; the vote that completes the quorum runs it.

    409 when the intent's state refuses the vote (already voted, not pending,
    expired, another hash); 403 when you may not vote on it (your own intent).
    """
    return _vote(request, caller, tenant, intent_id, Vote.APPROVE, body)


@router.post(
    "/tenants/{tenant}/intents/{intent_id}/reject",
    summary="Reject a pending intent",
    response_model=VoteAnswer,
    responses=_VOTE_RESPONSES,
    dependencies=[Depends(write_slot)],
)
def reject(
    tenant: TenantPath,
    intent_id: IntentIdPath,
    body: VoteRequest,
    request: Request,
    caller: CallerDep,
) -> VoteAnswer:
    """Reject: one rejection rejects, and the intent never runs."""
    return _vote(request, caller, tenant, intent_id, Vote.REJECT, body)
