"""Principals over HTTP (admins only): list, add, revoke, and rotate API keys.

What ``exoarmur principal`` does, recorded as the same system-log events
with the calling admin as their actor. A new key is in the answer once and
nowhere else: the ledger holds its id and the hash of its secret. Rotating
gives a principal a new key and records when the old one stops (now plus a
grace, by the service's clock); from then on it is answered 401.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from ..governor.principals import MAX_ROTATION_GRACE_SECONDS
from ..principals import NAME_PATTERN
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .limits import read_slot, write_slot
from .schemas import EventRecord, problems

router = APIRouter(prefix="/v1/principals", tags=["principals"], route_class=JSONBodyRoute)

NamePath = Annotated[
    str, Path(pattern=NAME_PATTERN.pattern, max_length=128, description="A principal's name.")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrincipalRecord(BaseModel):
    """A principal as the ledger holds it (never its key)."""

    name: str
    role: str
    tenants: list[str]
    key_id: str
    active: bool


class PrincipalList(BaseModel):
    principals: list[PrincipalRecord]


class NewPrincipal(_Request):
    name: StrictStr = Field(pattern=NAME_PATTERN.pattern, max_length=128)
    role: StrictStr = Field(description="agent, operator, auditor or admin.")
    tenants: list[StrictStr] = Field(
        default_factory=list, max_length=256, description="Tenants it acts for (none for admins)."
    )


class CreatedPrincipal(BaseModel):
    """The new principal and its API key: shown here once, stored only hashed."""

    name: str
    role: str
    tenants: list[str]
    key_id: str
    api_key: str


class RevokedPrincipal(BaseModel):
    revoked: str


class RotateRequest(_Request):
    # Strict: JSON true is not one second, nor "600" six hundred.
    grace_seconds: StrictInt = Field(
        default=0,
        ge=0,
        le=MAX_ROTATION_GRACE_SECONDS,
        description="How long the old key keeps working; 0 (default): it stops now.",
    )


class RotatedKey(BaseModel):
    """The new API key (shown here once) and when the old one stops."""

    name: str
    key_id: str
    old_key_id: str
    old_key_stops_at: str
    api_key: str
    event: EventRecord


@router.get(
    "",
    summary="Every principal (never its key)",
    response_model=PrincipalList,
    responses=problems(401, 403, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def list_principals(caller: CallerDep) -> PrincipalList:
    caller.require(Right.MANAGE_PRINCIPALS, None)
    return PrincipalList(
        principals=[
            PrincipalRecord(
                name=p.name, role=p.role, tenants=list(p.tenants), key_id=p.key_id, active=active
            )
            for p, active in caller.governor.principals().all()
        ]
    )


@router.post(
    "",
    summary="Add a principal",
    status_code=201,
    response_model=CreatedPrincipal,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def add_principal(body: NewPrincipal, caller: CallerDep) -> CreatedPrincipal:
    """Create a principal and answer its API key once (names are never reused)."""
    caller.require(Right.MANAGE_PRINCIPALS, None)
    principal, api_key = caller.governor.add_principal(
        body.name, body.role, body.tenants, actor=caller.principal.name
    )
    return CreatedPrincipal(
        name=principal.name,
        role=principal.role,
        tenants=list(principal.tenants),
        key_id=principal.key_id,
        api_key=api_key,
    )


@router.post(
    "/{name}/revoke",
    summary="Revoke a principal",
    response_model=RevokedPrincipal,
    responses=problems(400, 401, 403, 404, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def revoke_principal(name: NamePath, caller: CallerDep) -> RevokedPrincipal:
    """Its key (and any key still in a rotation's grace) stops working at once."""
    caller.require(Right.MANAGE_PRINCIPALS, None)
    caller.governor.revoke_principal(name, actor=caller.principal.name)
    return RevokedPrincipal(revoked=name)


@router.post(
    "/{name}/rotate",
    summary="Rotate a principal's API key",
    response_model=RotatedKey,
    responses=problems(400, 401, 403, 404, 413, 415, 422, 429, 500, 503),
    dependencies=[Depends(write_slot)],
)
def rotate_key(name: NamePath, body: RotateRequest, caller: CallerDep) -> RotatedKey:
    """A new key, answered once; the old key stops `grace_seconds` from now (recorded)."""
    caller.require(Right.MANAGE_PRINCIPALS, None)
    event, api_key = caller.governor.rotate_principal_key(
        name, grace_seconds=body.grace_seconds, actor=caller.principal.name
    )
    payload = event.payload
    return RotatedKey(
        name=name,
        key_id=payload["key_id"],
        old_key_id=payload["old_key_id"],
        old_key_stops_at=payload["old_key_stops_at"],
        api_key=api_key,
        event=EventRecord.of(event),
    )
