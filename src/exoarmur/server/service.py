"""The service itself: liveness, readiness (no credentials), and who a key belongs to."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..errors import ExoArmurError, StoreError
from ..model.event import POLICY_ACTIVATED, SYSTEM_LOG
from .auth import CallerDep, governor_of
from .bodies import JSONBodyRoute
from .errors import RETRY_UNAVAILABLE
from .limits import read_slot
from .schemas import Health, Readiness, ReadinessCheck, WhoAmI, problems

router = APIRouter(prefix="/v1", tags=["service"], route_class=JSONBodyRoute)


@router.get("/health", summary="Liveness", response_model=Health)
async def health() -> Health:
    """The process answers. Touches nothing (not even the thread pool)."""
    return Health(status="ok", version=__version__)


@router.get(
    "/ready",
    summary="Readiness",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Not ready; the checks say why.",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before asking again.",
                    "schema": {"type": "integer"},
                }
            },
        }
    },
)
def ready(request: Request) -> Readiness | JSONResponse:
    """Ready when the ledger store answers and a policy is in force."""
    governor = governor_of(request)
    checks: list[ReadinessCheck] = []

    def check(name: str, probe: Callable[[], str]) -> None:
        try:
            checks.append(ReadinessCheck(name=name, ok=True, detail=probe()))
        except StoreError:
            # The store's own message names files: readiness is unauthenticated.
            checks.append(ReadinessCheck(name=name, ok=False, detail="the store does not answer"))
        except ExoArmurError as exc:
            checks.append(ReadinessCheck(name=name, ok=False, detail=str(exc)))

    def store() -> str:
        return f"system log holds {governor.ledger.size(SYSTEM_LOG)} events"

    def policy() -> str:
        activation = governor.ledger.store.latest_of_type(SYSTEM_LOG, POLICY_ACTIVATED)
        if activation is None:
            raise ExoArmurError("no policy is in force")
        return f"bundle {activation.payload['policy_hash']}"

    check("store", store)
    check("policy", policy)
    readiness = Readiness(ready=all(c.ok for c in checks), checks=checks)
    if readiness.ready:
        return readiness
    return JSONResponse(
        readiness.model_dump(mode="json"),
        status_code=503,
        headers={"Retry-After": str(RETRY_UNAVAILABLE)},
    )


@router.get(
    "/whoami",
    summary="The principal of the presented key",
    response_model=WhoAmI,
    responses=problems(401, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def whoami(caller: CallerDep) -> WhoAmI:
    """Name, role and tenants of the key's principal: check a key before using it."""
    return WhoAmI.of(caller.principal)
