"""The HTTP API: the governor behind authenticated, authorised, bounded endpoints.

This room decides nothing about intents: policy, the gate and the approval
book do, inside the governor. It authenticates (API keys), authorises
(roles × tenants, before any lookup), bounds the work it takes on, maps
errors to answers, and records every refusal. Needs the ``server`` extra
(FastAPI, uvicorn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .limits import Limits
    from .run import serve

__all__ = ["Limits", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    # Lazily, so that the wire schemas (``server.schemas``, which the client
    # shares) import without FastAPI or uvicorn installed.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Limits":
        from .limits import Limits

        return Limits
    if name == "serve":
        from .run import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
