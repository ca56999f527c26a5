"""A real MCP server for the proxy's tests, written with the ``mcp`` SDK's low-level Server.

Tools: ``read_note`` (read-only), ``delete_note`` (destructive, with an output
schema), ``slow`` (sleeps; ``crash: true`` makes the process die mid-call).
Every call that reaches a tool appends a line to ``$UPSTREAM_LOG``, so tests
count what the upstream really did. Run: ``python tests/mcp_upstream.py`` (stdio)
or ``python tests/mcp_upstream.py --http PORT`` (streamable HTTP).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

TOOLS = [
    types.Tool(
        name="read_note",
        description="Read a note.",
        input_schema={"type": "object", "properties": {"name": {"type": "string"}}},
        annotations=types.ToolAnnotations(read_only_hint=True),
    ),
    types.Tool(
        name="delete_note",
        description="Delete a note for good.",
        input_schema={"type": "object", "properties": {"name": {"type": "string"}}},
        output_schema={
            "type": "object",
            "properties": {"deleted": {"type": "string"}},
            "required": ["deleted"],
        },
        annotations=types.ToolAnnotations(destructive_hint=True),
    ),
    types.Tool(
        name="slow",
        description="Take a while.",
        input_schema={
            "type": "object",
            "properties": {"seconds": {"type": "number"}, "crash": {"type": "boolean"}},
        },
    ),
]


def _log(tool: str, arguments: dict[str, Any]) -> None:
    with open(os.environ["UPSTREAM_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    arguments = dict(params.arguments or {})
    _log(params.name, arguments)
    if params.name == "read_note":
        token = os.environ.get("UPSTREAM_TOKEN", "")
        if ctx.request is not None:  # over HTTP: the credentials the proxy sent
            token = ctx.request.headers.get("authorization", "")
        text = f"note {arguments.get('name')}; token seen: {token}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    if params.name == "delete_note":
        deleted = {"deleted": str(arguments.get("name"))}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(deleted))],
            structured_content=deleted,
        )
    if arguments.get("crash"):
        os._exit(3)
    await anyio.sleep(float(arguments.get("seconds", 0)))
    return types.CallToolResult(content=[types.TextContent(type="text", text="done")])


async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=[types.Resource(uri="note://readme", name="readme")])


async def read_resource(
    ctx: Any, params: types.ReadResourceRequestParams
) -> types.ReadResourceResult:
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=params.uri, text="the readme")]
    )


server: Server[Any] = Server(
    "notes",
    on_list_tools=list_tools,
    on_call_tool=call_tool,
    on_list_resources=list_resources,
    on_read_resource=read_resource,
)


async def main() -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        app = server.streamable_http_app(stateless_http=True, host="127.0.0.1")
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        anyio.run(main)
