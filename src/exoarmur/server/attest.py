"""Evidence attestation over HTTP: an operator vouches for an intent's evidence."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from ..model.decision import Outcome
from ..pipeline import MAX_REASON_CHARS
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .intents import IntentIdPath, TenantPath
from .limits import write_slot
from .schemas import _Body, _Request, problems
from .tracing import stage

router = APIRouter(prefix="/v1", tags=["evidence"], route_class=JSONBodyRoute)


class AttestRequest(_Request):
    note: str = Field(min_length=1, max_length=MAX_REASON_CHARS, description="What you checked.")


class AttestAnswer(_Body):
    event_id: str
    #: intents the attestation released (approval requested, or run)
    released: list[Outcome]


@router.post(
    "/tenants/{tenant}/intents/{intent_id}/attest",
    summary="Attest an intent's evidence",
    response_model=AttestAnswer,
    responses=problems(400, 401, 403, 404, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def attest(
    tenant: TenantPath,
    intent_id: IntentIdPath,
    body: AttestRequest,
    request: Request,
    caller: CallerDep,
) -> AttestAnswer:
    """Record ``evidence.attested`` as the key's principal (an operator of the tenant).

    The attester comes from the credentials, never from the body; an
    intent's own actor cannot attest it (400). Attested evidence then
    releases what waited for it: it never approves or runs anything else.
    """
    caller.require(Right.VOTE, tenant)
    with stage(request, "attest", tenant=tenant, intent_id=intent_id):
        event, released = caller.governor.attest_evidence(
            tenant, intent_id, caller.principal, body.note
        )
    return AttestAnswer(event_id=event.event_id, released=released)
