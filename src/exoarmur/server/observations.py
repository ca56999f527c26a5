"""Telemetry observations over HTTP: ``POST /v1/observations``.

Authenticated like intents: the recording principal is the key's, never a
name in the body, and the tenant is one the key acts for (the ``tenant``
query parameter chooses among several; a key of one tenant needs none). A
batch is checked whole before anything is recorded; a redelivered
observation is answered with ``recorded: false`` and records nothing new.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from ..errors import InputError
from ..model.intent import TENANT_PATTERN
from ..observations.intake import desk_of, recording_actor
from ..observations.model import MAX_BATCH, MAX_DOCUMENT_BYTES, parse_batch
from ..principals import ALL_TENANTS
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .limits import write_slot
from .schemas import _Body, problems

router = APIRouter(prefix="/v1", tags=["observations"], route_class=JSONBodyRoute)


_OBSERVATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source", "subject", "kind", "event_time"],
    "properties": {
        "observation_id": {"type": "string", "description": "Derived from the content if absent."},
        "source": {"type": "string"},
        "subject": {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "id"],
            "properties": {
                "kind": {"enum": ["identity", "endpoint", "workload", "service"]},
                "id": {"type": "string"},
            },
        },
        "kind": {"type": "string", "pattern": "^[a-z0-9._-]+$"},
        "attributes": {"type": "object"},
        "event_time": {"type": "string", "format": "date-time"},
    },
}
OBSERVATIONS_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    _OBSERVATION_SCHEMA,
                    {"type": "array", "items": _OBSERVATION_SCHEMA, "maxItems": MAX_BATCH},
                ]
            }
        }
    },
}


class RecordedObservation(_Body):
    observation_id: str
    recorded: bool = Field(description="false: it was already recorded; nothing new was written")
    seq: int
    beliefs: list[str] = Field(description="Beliefs this observation formed.")
    shadows: list[dict[str, str]] = Field(description="Shadows it created or updated.")


class ObservationsAnswer(_Body):
    tenant: str
    observations: list[RecordedObservation]
    released: list[str] = Field(
        description="Intents that waited for evidence (pending_evidence) and went on now."
    )


async def observation_document(request: Request) -> bytes:
    """Dependency: the raw body, size-checked (the route already refused non-JSON)."""
    raw = await request.body()
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InputError(f"observation: document of {len(raw)} bytes exceeds {MAX_DOCUMENT_BYTES}")
    return raw


@router.post(
    "/observations",
    summary="Record telemetry observations",
    response_model=ObservationsAnswer,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    openapi_extra={"requestBody": OBSERVATIONS_BODY},
    dependencies=[Depends(write_slot)],
)
def record_observations(
    caller: CallerDep,
    raw: Annotated[bytes, Depends(observation_document)],
    tenant: Annotated[
        str | None,
        Query(pattern=TENANT_PATTERN, max_length=63, description="Needed if the key has several."),
    ] = None,
) -> Any:
    """One observation or a JSON list of them, recorded in the tenant's log in order.

    Unknown fields, oversized documents and repeated keys are refused (422)
    naming the field and the rule; nothing of the batch is recorded then.
    """
    principal = caller.principal
    caller.has_role_for(Right.SUBMIT)
    if tenant is None:
        if len(principal.tenants) != 1 or principal.tenants[0] == ALL_TENANTS:
            raise InputError("tenant: this key acts for several tenants; name one (?tenant=)")
        tenant = principal.tenants[0]
    caller.require(Right.SUBMIT, tenant)
    observations = parse_batch(raw)
    actor = recording_actor(principal, tenant)
    done = desk_of(caller.governor).record(tenant, observations, actor)
    return ObservationsAnswer(
        tenant=tenant,
        observations=[RecordedObservation(**d.to_json()) for d in done],
        released=done.released,
    )
