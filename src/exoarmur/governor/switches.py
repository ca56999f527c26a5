"""Kill switches and posture: the controls operators set, and who may set them.

A switch or a posture is an event in the log it governs (a tenant's, or the
system log for every tenant); the gate reads them through the folds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..encoding import format_time
from ..errors import InputError, LedgerCorrupt, PermissionDenied
from ..gate import Scope, parse_scope
from ..gate.controls import POSTURES
from ..model.event import (
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POSTURE_EXPIRED,
    POSTURE_SET,
    SYSTEM_LOG,
    Event,
)
from ..model.intent import SYSTEM_ACTOR
from ..principals import Principal
from .drafts import Drafts, operator
from .state import ControlState

MAX_POSTURE_TTL = 30 * 24 * 3600
MAX_REASON_CHARS = 2000


def required_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InputError("reason: is required (say why)")
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(f"reason: longer than {MAX_REASON_CHARS} characters")
    return reason


class Switches:
    """Engages and releases kill switches; sets and expires postures."""

    def __init__(
        self,
        state: ControlState,
        drafts: Drafts,
        refuse: Callable[[Principal, str, str], None],
    ) -> None:
        self.state = state
        self.drafts = drafts
        #: records a refused attempt (principal, tenant, what)
        self.refuse = refuse

    def authorize(self, principal: Principal, scope: Scope, what: str) -> None:
        if principal.role == "admin":
            return
        allowed = (
            principal.role == "operator"
            and scope.tenant is not None
            and principal.acts_for(scope.tenant)
        )
        if not allowed:
            self.refuse(principal, scope.tenant or "*", f"{what} {scope.text}")
            where = "every tenant" if scope.all_tenants else f"tenant {scope.tenant}"
            raise PermissionDenied(
                f"principal {principal.name} (role {principal.role}) may not {what} "
                f"controls for {where}"
            )

    def engage(self, scope: str, reason: str, principal: Principal) -> Event:
        """Stop every matching action, including ones approved and not yet run."""
        parsed = parse_scope(scope)
        reason = required_reason(reason)
        self.authorize(principal, parsed, "engage")
        log = parsed.tenant or SYSTEM_LOG
        with self.state.lock:
            engaged = self.state.fold(log).switches.get(parsed.text)
        if engaged is not None:
            found = self.state.ledger.store.event_by_id(log, engaged.event_id)
            if found is not None:
                return found  # already engaged: nothing new to record
        return self.record(
            log, KILLSWITCH_ENGAGED, {"scope": parsed.text, "reason": reason}, principal
        )

    def release(self, scope: str, reason: str, principal: Principal) -> Event:
        parsed = parse_scope(scope)
        reason = required_reason(reason)
        self.authorize(principal, parsed, "release")
        log = parsed.tenant or SYSTEM_LOG
        with self.state.lock:
            engaged = parsed.text in self.state.fold(log).switches
        if not engaged:
            raise InputError(f"scope: no kill switch is engaged for {parsed.text}")
        return self.record(
            log, KILLSWITCH_RELEASED, {"scope": parsed.text, "reason": reason}, principal
        )

    def engaged(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Engaged switches: those affecting ``tenant``, or every one when None.

        Unreadable kill-switch state raises: a status that cannot be known is
        not reported as "nothing engaged".
        """
        with self.state.lock:
            logs = [SYSTEM_LOG]
            if tenant is not None:
                logs.append(tenant)
            else:
                logs.extend(t for t in self.state.ledger.store.tenants() if t != SYSTEM_LOG)
            found = []
            for log in logs:
                controls = self.state.fold(log)
                if controls.unreadable:
                    raise LedgerCorrupt(f"kill-switch state unreadable: {controls.unreadable}")
                for switch in controls.switches.values():
                    found.append(
                        {
                            "scope": switch.scope.text,
                            "reason": switch.reason,
                            "engaged_by": switch.engaged_by,
                            "engaged_at": switch.engaged_at,
                            "event_id": switch.event_id,
                        }
                    )
        return sorted(found, key=lambda s: str(s["scope"]))

    def set_posture(
        self,
        tenant: str,
        posture: str,
        reason: str,
        principal: Principal,
        ttl_seconds: int | None = None,
    ) -> Event:
        """Set a tenant's posture; with a TTL it returns to normal by itself."""
        if posture not in POSTURES:
            raise InputError(f"posture: must be one of {', '.join(POSTURES)}, not {posture!r}")
        if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_POSTURE_TTL:
            raise InputError(f"ttl_seconds: must be between 1 and {MAX_POSTURE_TTL}")
        reason = required_reason(reason)
        self.authorize(principal, parse_scope(f"tenant:{tenant}"), "set posture of")
        now = self.drafts.now()
        until = None if ttl_seconds is None else format_time(now + timedelta(seconds=ttl_seconds))
        return self.record(
            tenant,
            POSTURE_SET,
            {"posture": posture, "until": until, "reason": reason},
            principal,
            at=now,
        )

    def posture(self, tenant: str) -> dict[str, Any]:
        with self.state.lock:
            return self.state.fold(tenant).posture_at(self.drafts.now()).to_json()

    def posture_lapsed(self, tenant: str, set_event_id: str) -> Event:
        """Record that the posture set by ``set_event_id`` ran out (back to normal)."""
        return self.record(
            tenant, POSTURE_EXPIRED, {"set_event_id": set_event_id, "posture": "normal"}, None
        )

    def record(
        self,
        log: str,
        event_type: str,
        payload: dict[str, Any],
        principal: Principal | None,
        at: datetime | None = None,
    ) -> Event:
        actor = operator(principal.name) if principal is not None else SYSTEM_ACTOR.to_canonical()
        draft = self.drafts.for_log(log, event_type, payload, actor, at=at)
        return self.state.append_one(log, draft)
