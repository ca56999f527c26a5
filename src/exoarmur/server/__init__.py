"""The HTTP API: the governor behind authenticated, authorised, bounded endpoints.

This room decides nothing about intents: policy, the gate and the approval
book do, inside the governor. It authenticates (API keys), authorises
(roles × tenants, before any lookup), bounds the work it takes on, maps
errors to answers, and records every refusal. Needs the ``server`` extra
(FastAPI, uvicorn).
"""

from .app import create_app
from .limits import Limits
from .run import serve

__all__ = ["Limits", "create_app", "serve"]
