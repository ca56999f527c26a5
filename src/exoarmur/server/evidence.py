"""Evidence bundles over HTTP: what ``exoarmur evidence export`` writes, for one correlation.

The bundle is self-contained (events, inclusion proofs, signed checkpoints,
the policy and configuration its decisions name, the public key), so whoever
fetches it verifies it offline with ``exoarmur verify-bundle`` and trusts
nothing this server says about it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from ..errors import InputError
from ..evidence import export_bundle, export_pack, pack_bytes
from ..model.intent import TENANT_PATTERN, TOKEN_PATTERN
from .access import Right
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .limits import read_slot
from .schemas import problems

router = APIRouter(prefix="/v1", tags=["ledger"], route_class=JSONBodyRoute)


@router.get(
    "/evidence",
    summary="Export the evidence bundle of one correlation",
    response_model=dict[str, Any],
    responses={
        200: {"description": "The bundle (see docs/evidence-bundle.md)."},
        **problems(401, 403, 404, 422, 429, 500, 503),
    },
    dependencies=[Depends(read_slot)],
)
def evidence(
    caller: CallerDep,
    tenant: Annotated[str, Query(pattern=TENANT_PATTERN, max_length=63, description="A tenant.")],
    correlation_id: Annotated[
        str | None,
        Query(pattern=TOKEN_PATTERN, min_length=1, max_length=256, description="The correlation."),
    ] = None,
    audit_stream_id: Annotated[
        str | None,
        Query(
            pattern=TOKEN_PATTERN,
            min_length=1,
            max_length=256,
            description="The same id under its audit-stream name (give one of the two).",
        ),
    ] = None,
) -> dict[str, Any]:
    """Every event of the correlation with proofs, checkpoints and what its decisions name."""
    if correlation_id is None and audit_stream_id is None:
        raise InputError("correlation_id: required (or audit_stream_id, the same id)")
    if None not in (correlation_id, audit_stream_id) and correlation_id != audit_stream_id:
        raise InputError("audit_stream_id: names another stream than correlation_id; give one")
    stream = correlation_id if correlation_id is not None else audit_stream_id
    assert stream is not None
    caller.require(Right.READ_LEDGER, tenant)
    return export_bundle(caller.governor.ledger, tenant, stream)


@router.get(
    "/evidence/pack",
    summary="Export the evidence pack of one audit stream",
    response_class=Response,
    responses={
        200: {
            "description": "The pack's canonical bytes (see docs/evidence-bundle.md); "
            "save them as they are and verify with `exoarmur verify-bundle`.",
            "content": {"application/json": {}},
        },
        **problems(401, 403, 404, 422, 429, 500, 503),
    },
    dependencies=[Depends(read_slot)],
)
def evidence_pack(
    caller: CallerDep,
    tenant: Annotated[str, Query(pattern=TENANT_PATTERN, max_length=63, description="A tenant.")],
    audit_stream_id: Annotated[
        str,
        Query(
            pattern=TOKEN_PATTERN,
            min_length=1,
            max_length=256,
            description="The audit stream (correlation) id.",
        ),
    ],
) -> Response:
    """The stream's events, what they rest on, and the proofs, as one canonical document."""
    caller.require(Right.READ_LEDGER, tenant)
    pack = export_pack(caller.governor.ledger, tenant, audit_stream_id)
    # the bytes are the artifact: a re-serialised body would no longer verify
    return Response(pack_bytes(pack), media_type="application/json")
