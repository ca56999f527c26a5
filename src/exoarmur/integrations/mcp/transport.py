"""Wires the governed handlers to the client (stdio or streamable HTTP) and to the upstream.

The upstream is reached with the proxy's own credentials, from environment
variables the configuration names; nothing the client sends is forwarded
but the tool call itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpx2
import mcp_types as types
import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import AuthenticationError
from ...pipeline import Governor
from ...principals import Principal
from .mapping import ProxySettings
from .proxy import CALLER_SCOPE_KEY, GovernedTools, may_submit

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upstream:
    """Where the real server is: a command to run, or a streamable HTTP URL."""

    command: Sequence[str] = ()
    url: str | None = None


@asynccontextmanager
async def upstream_session(
    upstream: Upstream, settings: ProxySettings
) -> AsyncIterator[ClientSession]:
    if upstream.url is not None:
        headers = settings.upstream_header_values()
        async with (
            httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http,
            streamable_http_client(upstream.url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session
        return
    parameters = StdioServerParameters(
        command=upstream.command[0],
        args=list(upstream.command[1:]),
        env=settings.upstream_environment(),
    )
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def serve_stdio(
    governor: Governor, principal: Principal, settings: ProxySettings, upstream: Upstream
) -> None:
    async with upstream_session(upstream, settings) as session:
        server = GovernedTools(governor, principal, settings, session).server()
        async with stdio_server() as (read, write), anyio.create_task_group() as tasks:
            checked_send, checked = anyio.create_memory_object_stream[SessionMessage | Exception](0)
            tasks.start_soon(_answer_malformed, read, checked_send, write)
            await server.run(checked, write, server.create_initialization_options())
            tasks.cancel_scope.cancel()


async def _answer_malformed(
    read: ReadStream[SessionMessage | Exception],
    forward: MemoryObjectSendStream[SessionMessage | Exception],
    write: WriteStream[SessionMessage],
) -> None:
    """Answer a line that is not a JSON-RPC message with a JSON-RPC error, and go on serving.

    The SDK's stdio transport hands such lines on as exceptions, which the
    server only logs: the client would wait for an answer that never comes.
    """
    async with forward:
        async for item in read:
            if not isinstance(item, Exception):
                await forward.send(item)
                continue
            invalid_json = isinstance(item, ValidationError) and any(
                e.get("type") == "json_invalid" for e in item.errors()
            )
            code, what = (
                (types.PARSE_ERROR, "not JSON")
                if invalid_json
                else (types.INVALID_REQUEST, "not a JSON-RPC request, notification or response")
            )
            error = types.JSONRPCError(
                jsonrpc="2.0",
                id=None,
                error=types.ErrorData(
                    code=code, message=f"exoarmur mcp proxy: the message is {what}"
                ),
            )
            logger.warning("refused a malformed message from the client: %s", what)
            await write.send(SessionMessage(error))


async def serve_http(
    governor: Governor,
    settings: ProxySettings,
    upstream: Upstream,
    *,
    host: str,
    port: int,
    stateless: bool,
) -> None:
    async with upstream_session(upstream, settings) as session:
        server = GovernedTools(governor, None, settings, session).server()
        app = ClientKeys(
            server.streamable_http_app(stateless_http=stateless, host=host),
            governor,
            settings.tenant,
        )
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        await uvicorn.Server(config).serve()


class ClientKeys:
    """ASGI: every HTTP client authenticates with its own API key, and its principal is the actor.

    ``Authorization: Bearer <api key>``, checked by the governor (hashed,
    constant time); a missing or bad key is 401, a principal that may not
    propose actions in the tenant 403. Nothing reaches the MCP server before.
    """

    def __init__(self, app: ASGIApp, governor: Governor, tenant: str) -> None:
        self.app = app
        self.governor = governor
        self.tenant = tenant

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            await _refuse(
                scope, receive, send, 401, "no credentials: send Authorization: Bearer <api key>"
            )
            return
        try:
            principal = await anyio.to_thread.run_sync(self.governor.authenticate, key.strip())
        except AuthenticationError as exc:
            await _refuse(scope, receive, send, 401, str(exc))
            return
        if not may_submit(principal, self.tenant):
            why = f"principal {principal.name} may not submit intents in tenant {self.tenant}"
            await _refuse(scope, receive, send, 403, why)
            return
        scope[CALLER_SCOPE_KEY] = principal
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    error = "unauthenticated" if status == 401 else "forbidden"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    answer = JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)
    await answer(scope, receive, send)
