"""Audit stream ids on the command line: find the tenant of a stream, refuse an unknown one.

An audit stream id is a correlation id. A command given one without
``--tenant`` finds the one tenant whose log holds it; an id that no log (or
not the tenant named) holds is bad input that names the flag, never an
empty answer that reads as verified.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError
from ..ledger.store import LedgerStore
from ..model.event import SYSTEM_LOG


def stream_tenants(
    store: LedgerStore, stream_id: str, among: Sequence[str] | None = None
) -> list[str]:
    """The tenants whose log holds events of ``stream_id`` (indexed reads, one per tenant)."""
    names = list(among) if among is not None else store.tenants()
    return [t for t in names if t != SYSTEM_LOG and store.events_for_correlation(t, stream_id)]


def tenant_of_stream(
    store: LedgerStore, tenant: str | None, stream_id: str, flag: str = "--audit-stream-id"
) -> str:
    """``tenant`` if its log holds the stream, else the one tenant that does; InputError if none."""
    if tenant is not None:
        if tenant not in store.tenants():
            raise InputError(f"--tenant: no log for tenant {tenant!r} in this ledger")
        if not store.events_for_correlation(tenant, stream_id):
            raise InputError(f"{flag}: no events of correlation {stream_id!r} in tenant {tenant!r}")
        return tenant
    found = stream_tenants(store, stream_id)
    if not found:
        raise InputError(f"{flag}: no events of correlation {stream_id!r} in any tenant")
    if len(found) > 1:
        raise InputError(
            f"{flag}: stream {stream_id!r} is in tenants {', '.join(found)}; name one with --tenant"
        )
    return found[0]
