"""A tenant's defensive memory over HTTP: read only, for whoever may read its controls.

The tenant comes from the caller's credentials: the one tenant its key acts
for, or, for a key acting for several, the ``tenant`` it names among them.
Nothing here records or applies a recommendation (only ``exoarmur memory
apply`` applies one).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ..errors import InputError
from ..memory.room import snapshot_at
from ..model.intent import TENANT_PATTERN
from ..principals import ALL_TENANTS
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .limits import read_slot
from .schemas import problems

router = APIRouter(prefix="/v1", tags=["memory"], route_class=JSONBodyRoute)


@router.get(
    "/memory/snapshot",
    summary="A tenant's memory snapshot (MemorySnapshotV1)",
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def memory_snapshot(
    caller: CallerDep,
    tenant: Annotated[
        str | None,
        Query(
            pattern=TENANT_PATTERN,
            max_length=63,
            description="Only for a key that acts for several tenants: which one.",
        ),
    ] = None,
    at: Annotated[
        int | None, Query(ge=0, description="Remember only the first AT events of the log.")
    ] = None,
) -> dict[str, Any]:
    """Outcome rates, reversals, approval latency, posture drift, detector precision."""
    own = caller.principal.tenants
    if tenant is None:
        if len(own) != 1 or own[0] == ALL_TENANTS:
            raise InputError("tenant: your key acts for several tenants; name one")
        tenant = own[0]
    caller.require(Right.READ_CONTROLS, tenant)
    return snapshot_at(caller.governor.ledger.store, tenant, at).to_json()
