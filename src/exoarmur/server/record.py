"""The ledger over HTTP: events page by page, signed checkpoints, Merkle proofs.

What an auditor needs to check the record without trusting this server:
proofs come with the root they prove against, checkpoints are the signed
notes themselves. Admins may also read the system log as tenant ``_system``
(principals, refused access, global controls); no other role can name it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from ..errors import InputError, NotFound
from ..model.intent import TENANT_PATTERN
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .intents import ULID_PATTERN
from .limits import read_slot
from .schemas import (
    CheckpointRecord,
    ConsistencyProofRecord,
    EventPage,
    EventRecord,
    InclusionProofRecord,
    problems,
)

router = APIRouter(prefix="/v1", tags=["ledger"], route_class=JSONBodyRoute)

#: a tenant, or the system log (``_system``: tenant names cannot start with "_")
LOG_PATTERN = r"^(_system|" + TENANT_PATTERN.removeprefix("^").removesuffix("$") + r")$"
#: far beyond any real log, and within what SQLite can bind
MAX_POSITION = 2**53
MAX_PAGE = 1000

LogPath = Annotated[
    str,
    Path(pattern=LOG_PATTERN, max_length=63, description="A tenant (or `_system`, admin only)."),
]


@router.get(
    "/tenants/{tenant}/events",
    summary="A page of a tenant's events",
    response_model=EventPage,
    responses=problems(401, 403, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def events(
    tenant: LogPath,
    caller: CallerDep,
    after_seq: Annotated[
        int | None,
        Query(ge=0, le=MAX_POSITION, description="Only events after this seq (a cursor)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many.")] = 100,
) -> EventPage:
    """Events in log order; follow `next_after_seq` until it is null."""
    caller.require(Right.READ_LEDGER, tenant)
    ledger = caller.governor.ledger
    size = ledger.size(tenant)
    start = 0 if after_seq is None else after_seq + 1
    stop = min(start + limit, size)
    page = [EventRecord.of(event) for event in ledger.store.events(tenant, start, stop)]
    more = bool(page) and page[-1].seq < size - 1
    return EventPage(
        tenant=tenant,
        tree_size=size,
        events=page,
        next_after_seq=page[-1].seq if more else None,
    )


@router.get(
    "/tenants/{tenant}/checkpoint",
    summary="The latest signed checkpoint",
    response_model=CheckpointRecord,
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def checkpoint(tenant: LogPath, caller: CallerDep) -> CheckpointRecord:
    """A signed tree head covering the whole log (signed now if the log grew since the last)."""
    caller.require(Right.READ_LEDGER, tenant)
    ledger = caller.governor.ledger
    if ledger.size(tenant) == 0:
        raise NotFound(f"tenant {tenant!r} has no events to sign")
    signed = ledger.current_checkpoint(tenant)
    return CheckpointRecord(
        tenant=tenant,
        origin=signed.checkpoint.origin,
        tree_size=signed.checkpoint.size,
        root_hash=signed.checkpoint.root_hash.hex(),
        note=signed.note,
        verifier_key=ledger.key.verifier_key(),
    )


@router.get(
    "/tenants/{tenant}/proofs/inclusion",
    summary="Prove an event is in the log",
    response_model=InclusionProofRecord,
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def inclusion(
    tenant: LogPath,
    caller: CallerDep,
    event_id: Annotated[str, Query(pattern=ULID_PATTERN, description="The event to prove.")],
) -> InclusionProofRecord:
    """RFC 9162 inclusion proof against the current checkpoint (as `exoarmur prove inclusion`)."""
    caller.require(Right.READ_LEDGER, tenant)
    ledger = caller.governor.ledger
    event = ledger.event(tenant, event_id)
    signed = ledger.current_checkpoint(tenant)
    proof = ledger.inclusion(tenant, event.seq, signed.checkpoint.size)
    return InclusionProofRecord.model_validate(
        proof.to_json() | {"root_hash": signed.checkpoint.root_hash.hex()}
    )


@router.get(
    "/tenants/{tenant}/proofs/consistency",
    summary="Prove a log extends an older one",
    response_model=ConsistencyProofRecord,
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def consistency(
    tenant: LogPath,
    caller: CallerDep,
    from_size: Annotated[int, Query(ge=0, le=MAX_POSITION, description="The older tree size.")],
    to_size: Annotated[int, Query(ge=0, le=MAX_POSITION, description="The newer tree size.")],
) -> ConsistencyProofRecord:
    """RFC 9162 consistency proof between two sizes (as `exoarmur prove consistency`)."""
    caller.require(Right.READ_LEDGER, tenant)
    if from_size > to_size:
        raise InputError(f"from_size: {from_size} must not exceed to_size ({to_size})")
    ledger = caller.governor.ledger
    proof = ledger.consistency(tenant, from_size, to_size)
    return ConsistencyProofRecord.model_validate(
        proof.to_json()
        | {
            "old_root": ledger.root(tenant, from_size).hex(),
            "new_root": ledger.root(tenant, to_size).hex(),
        }
    )
