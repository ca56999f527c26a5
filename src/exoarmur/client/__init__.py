"""A Python client for ExoArmur's HTTP API: ``Client`` (blocking) and ``AsyncClient``.

Results are the server's own schemas (:mod:`exoarmur.server.schemas`,
:class:`exoarmur.model.decision.Outcome`), errors one tree
(:mod:`exoarmur.client.errors`). Needs only ``httpx``, not the server extra.
"""

from ._async import AsyncClient
from ._sync import Client
from ._wire import Retrying
from .errors import (
    APIError,
    ClientError,
    ConflictError,
    Forbidden,
    InvalidRequest,
    NotFoundError,
    ProtocolViolation,
    ServerError,
    ServiceUnreachable,
    TooBusy,
    Unauthenticated,
    Unavailable,
    WaitTimedOut,
)

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "ClientError",
    "ConflictError",
    "Forbidden",
    "InvalidRequest",
    "NotFoundError",
    "ProtocolViolation",
    "Retrying",
    "ServerError",
    "ServiceUnreachable",
    "TooBusy",
    "Unauthenticated",
    "Unavailable",
    "WaitTimedOut",
]
