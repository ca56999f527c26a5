"""Each tenant's tree as tiles (c2sp.org/tlog-tiles), under ``/tiles/<tenant>/``.

The same files ``exoarmur tiles export`` writes, served from the store:
``checkpoint`` (mutable: ``no-cache``), ``tile/<L>/<N>`` and
``tile/entries/<N>`` (full tiles never change: cached for a year, as
immutable), and partial tiles ``.p/<W>`` (``no-cache``: a client should
move on to the full tile once it exists). Reading them takes the same right
as reading the ledger, in the tenant named. Full tiles are marked
``private``: an authenticated answer must not be handed by a shared cache to
someone who did not authenticate; a public log hosts the exported files.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from ..errors import InputError, NotFound
from ..ledger.tiles import parse_tile_path, tile_bytes
from .access import Right
from .auth import CallerDep
from .limits import read_slot
from .record import LogPath
from .schemas import problems

router = APIRouter(prefix="/tiles", tags=["tiles"])

IMMUTABLE: Final = "private, max-age=31536000, immutable"
MUTABLE: Final = "no-cache"

_TilePath = Annotated[
    str, Path(max_length=200, description="`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`.")
]


@router.get(
    "/{tenant}/checkpoint",
    summary="The tenant's signed checkpoint (c2sp.org/tlog-checkpoint)",
    response_class=Response,
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def checkpoint(tenant: LogPath, caller: CallerDep) -> Response:
    """The signed note over the whole tree (signed now if the log grew since the last)."""
    caller.require(Right.READ_LEDGER, tenant)
    ledger = caller.governor.ledger
    if ledger.size(tenant) == 0:
        raise NotFound(f"tenant {tenant!r} has no events to sign")
    note = ledger.current_checkpoint(tenant).note
    return Response(
        note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": MUTABLE}
    )


@router.get(
    "/{tenant}/tile/{path:path}",
    summary="A hash tile or an entry bundle (c2sp.org/tlog-tiles)",
    response_class=Response,
    responses=problems(401, 403, 404, 422, 429, 500, 503),
    dependencies=[Depends(read_slot)],
)
def tile(tenant: LogPath, path: _TilePath, caller: CallerDep) -> Response:
    """256 hashes (or `W` for a partial tile) of 32 bytes, or length-prefixed entries."""
    caller.require(Right.READ_LEDGER, tenant)
    try:
        wanted = parse_tile_path(f"tile/{path}")
    except InputError as exc:
        raise NotFound(str(exc)) from None
    ledger = caller.governor.ledger
    data = tile_bytes(ledger, tenant, wanted, ledger.size(tenant))
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Cache-Control": IMMUTABLE if wanted.full else MUTABLE},
    )
