"""Stream administration: create a ledger's streams, or check that the ones there are fit."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from ...errors import StoreUnavailable
from .connection import Client, api_failure
from .layout import StreamConfig, unfit

__all__ = ["create_stream", "ensure_stream"]

_STREAM_NOT_FOUND: Final = 10059
_STREAM_NAME_IN_USE: Final = 10058

#: attempts at creating a stream while the server answers that it cannot yet
_CREATE_ATTEMPTS: Final = 6


async def create_stream(client: Client, wanted: StreamConfig) -> Any:
    """STREAM.CREATE, tried again (bounded, backing off) on a server error.

    A server still starting, or still removing a stream of that name, answers
    500 "error creating store for stream"; a create that did happen answers
    "name in use" on the next attempt, which the caller handles.
    """
    delay = 0.05
    for _ in range(_CREATE_ATTEMPTS - 1):
        info = await client.api(f"STREAM.CREATE.{wanted['name']}", wanted, what="setup")
        if "error" not in info or info["error"].get("code") not in (500, 503):
            return info
        await asyncio.sleep(delay)
        delay *= 2
    return await client.api(f"STREAM.CREATE.{wanted['name']}", wanted, what="setup")


async def ensure_stream(client: Client, wanted: StreamConfig, *, create: bool = True) -> None:
    """Create the stream ``wanted`` describes, or check that the one there is fit for it."""
    name = wanted["name"]
    info = await client.api(f"STREAM.INFO.{name}", None, what="setup")
    if "error" in info:
        if info["error"].get("err_code") != _STREAM_NOT_FOUND:
            raise api_failure(client.where, "setup", info["error"])
        if not create:
            raise StoreUnavailable(f"stream {name} is missing from {client.where}")
        info = await create_stream(client, wanted)
        if "error" in info and info["error"].get("err_code") == _STREAM_NAME_IN_USE:
            # Another process created it first; look at what it made.
            info = await client.api(f"STREAM.INFO.{name}", None, what="setup")
        if "error" in info:
            raise StoreUnavailable(
                f"cannot create stream {name} in {client.where}: "
                f"{info['error'].get('description', 'unknown error')}"
            )
    problems = unfit(info.get("config") or {}, wanted)
    if problems:
        raise StoreUnavailable(
            f"stream {name} in {client.where} cannot hold a ledger safely: "
            f"{'; '.join(problems)} (give ExoArmur a stream of its own, or fix it with "
            "`nats stream edit`)"
        )
