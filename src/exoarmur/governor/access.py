"""Who may read, and the record of who was refused.

Every refusal of an authenticated principal is recorded in the system log;
unauthenticated requests are recorded too, with the HTTP API bounding how
many (``server.audit`` calls the hooks here).
"""

from __future__ import annotations

from typing import Any

from ..errors import PermissionDenied
from ..model.event import ACCESS_REFUSED, ACCESS_REFUSED_COUNTED, SYSTEM_LOG, Event
from ..principals import Principal
from .drafts import Drafts, operator
from .state import ControlState


class Access:
    """Authorises reads and records refusals."""

    def __init__(self, state: ControlState, drafts: Drafts) -> None:
        self.state = state
        self.drafts = drafts

    def _record(self, payload: dict[str, Any], actor: str) -> Event:
        draft = self.drafts.for_log(SYSTEM_LOG, ACCESS_REFUSED, payload, operator(actor))
        return self.state.append_one(SYSTEM_LOG, draft)

    def refuse(self, principal: Principal, tenant: str, what: str) -> None:
        """Record that ``principal`` attempted ``what`` on ``tenant`` and was refused."""
        payload = {"principal": principal.name, "tenant": tenant, "attempted": what}
        self._record(payload, principal.name)

    def authorize_read(self, principal: Principal, tenant: str, what: str) -> None:
        """Refuse (and record) a read of ``tenant`` by a principal not acting for it.

        Agents may read only their own intents: callers that return intents
        check ``intent.actor.id`` against the principal themselves.
        """
        if principal.acts_for(tenant):
            return
        self.refuse(principal, tenant, f"read {what}")
        raise PermissionDenied(f"principal {principal.name} does not act for tenant {tenant}")

    def record_access_refused(
        self, principal: Principal, tenant: str | None, attempted: str, detail: str
    ) -> None:
        """Record that an authenticated principal was refused (an HTTP 403)."""
        payload = {
            "principal": principal.name,
            "tenant": tenant,
            "attempted": attempted,
            "detail": detail,
        }
        self._record(payload, principal.name)

    def record_unauthenticated(
        self, attempted: str, detail: str, *, source: str | None = None
    ) -> Event:
        """Record a request that presented no valid credentials (an HTTP 401).

        ``source`` is where it came from (the peer address), when known. The
        HTTP API bounds how many of these it records (``server.audit``).
        """
        payload: dict[str, Any] = {
            "principal": None,
            "tenant": None,
            "attempted": attempted,
            "detail": detail,
        }
        if source is not None:
            payload["source"] = source
        return self._record(payload, "anonymous")

    def record_refusals_counted(self, summary: dict[str, Any]) -> Event:
        """Record refusals counted but not recorded one by one (``access.refused.counted``)."""
        draft = self.drafts.for_log(
            SYSTEM_LOG, ACCESS_REFUSED_COUNTED, summary, operator("exoarmur")
        )
        return self.state.append_one(SYSTEM_LOG, draft)
