"""Refused access, recorded: every 401 and 403 the API answers leaves an event.

The event is ``access.refused`` in the system log. A request with no or a
bad API key is recorded by the governor's ``record_unauthenticated``; the
secret of a presented key is never recorded, only its public key id.

A refusal of an authenticated principal has the shape the governor writes
when a vote reaches into another tenant (principal, tenant, attempted),
plus ``detail``, written by the governor's ``record_access_refused``.
"""

from __future__ import annotations

import re

from ..pipeline import Governor
from ..principals import Principal

#: what a refusal records of the request line, at most (the path is the caller's text)
MAX_ATTEMPT_CHARS = 300
_KEY_ID = re.compile(r"^exo_([0-9a-f]{16})_")


def presented_key_id(api_key: str) -> str | None:
    """The public key id of a presented key, if it has one (never the secret)."""
    match = _KEY_ID.match(api_key.strip())
    return match.group(1) if match else None


def record_unauthenticated(governor: Governor, attempted: str, detail: str) -> None:
    governor.record_unauthenticated(attempted[:MAX_ATTEMPT_CHARS], detail)


def record_refusal(
    governor: Governor, principal: Principal, tenant: str | None, attempted: str, detail: str
) -> None:
    """Append one ``access.refused`` event to the system log (durable on return).

    ``tenant`` is a validated path parameter (or None): never raw request text.
    """
    governor.record_access_refused(principal, tenant, attempted[:MAX_ATTEMPT_CHARS], detail)
