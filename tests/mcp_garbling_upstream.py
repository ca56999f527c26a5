"""An upstream that breaks the protocol on purpose, written by hand (a real server would not).

It answers ``initialize`` and ``tools/list`` properly; on ``tools/call`` of
``garble`` it first writes a line that is not JSON, then a response whose
result is not a ``CallToolResult``; ``echo`` answers properly, so a test
can see that the proxy still serves after the garbage.
"""

from __future__ import annotations

import json
import sys
from typing import Any

TOOLS = [
    {"name": name, "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}}
    for name in ("garble", "echo")
]


def send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict[str, Any]) -> None:
    method, ident = request.get("method"), request.get("id")
    if method == "initialize":
        result: Any = {
            "protocolVersion": request["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "garbling", "version": "0"},
        }
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call" and request["params"]["name"] == "garble":
        sys.stdout.write("}}} this is not JSON-RPC {{{\n")
        result = {"content": "not a list of blocks"}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "echo"}]}
    else:
        send({"jsonrpc": "2.0", "id": ident, "error": {"code": -32601, "message": method}})
        return
    send({"jsonrpc": "2.0", "id": ident, "result": result})


for line in sys.stdin:
    message = json.loads(line)
    if "id" in message and "method" in message:
        answer(message)
