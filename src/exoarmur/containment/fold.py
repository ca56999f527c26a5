"""Controls in force: a fold over a tenant's log, and what the TTL engine owes.

Pure: :class:`ControlsInForce` applies recorded events one by one and
answers questions given an explicit ``now``. It is the only source of the
containment state: the effectors, ``containment status``, the TTL engine and
replay all read it, so a restart or a replay sees exactly what was recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..encoding import format_time, parse_time
from ..model.event import EXECUTION_FINISHED, INTENT_RECORDED, Event
from .model import EFFECTORS, PLAN_ACTION, ContainmentSpec

CONTAINMENT_EXPIRED = "containment.expired"
CONTAINMENT_REVERTED = "containment.reverted"
PLAN_STARTED = "plan.started"
PLAN_STEP_STARTED = "plan.step.started"
PLAN_STEP_FINISHED = "plan.step.finished"
PLAN_COMPLETED = "plan.completed"
PLAN_COMPENSATED = "plan.compensated"
PLAN_EVENTS = (
    PLAN_STARTED,
    PLAN_STEP_STARTED,
    PLAN_STEP_FINISHED,
    PLAN_COMPLETED,
    PLAN_COMPENSATED,
)
CONTAINMENT_EVENTS = (*PLAN_EVENTS, CONTAINMENT_EXPIRED, CONTAINMENT_REVERTED)


@dataclass(frozen=True)
class Control:
    """One control in force: what, on what, since when, until when, by which intent."""

    key: str
    effector: str
    scope: dict[str, str]
    since: datetime
    expires_at: datetime
    intent_id: str
    plan_id: str | None = None
    step: int | None = None
    #: ``containment.expired`` is recorded; the revert is owed
    expiring: bool = False
    #: the correlation of what applied it: its expiry joins the same audit stream
    correlation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "control": self.key,
            "effector": self.effector,
            "scope": self.scope,
            "since": format_time(self.since),
            "until": format_time(self.expires_at),
            "intent_id": self.intent_id,
            "plan_id": self.plan_id,
            "step": self.step,
            "expiring": self.expiring,
        }


def change_for(current: Control | None, spec: ContainmentSpec, now: datetime) -> dict[str, Any]:
    """What applying ``spec`` at ``now`` does: applied, extended or unchanged (and says so)."""
    expires = now + timedelta(seconds=spec.ttl_seconds)
    found: dict[str, Any] = {
        "control": spec.control,
        "effector": spec.effector,
        "scope": spec.scope.to_canonical(),
        "ttl_seconds": spec.ttl_seconds,
        "at": format_time(now),
    }
    if current is None:
        return found | {"change": "applied", "expires_at": format_time(expires)}
    if expires > current.expires_at:
        return found | {
            "change": "extended",
            "expires_at": format_time(expires),
            "previous_expires_at": format_time(current.expires_at),
        }
    return found | {
        "change": "unchanged",
        "expires_at": format_time(current.expires_at),
        "note": "already in force until then; nothing changed",
    }


class ControlsInForce:
    """The containment controls of one tenant's log, up to :attr:`position`."""

    def __init__(self, log: str) -> None:
        self.log = log
        self.position = 0
        self.controls: dict[str, Control] = {}
        #: the tenant's plans (their intents' ids), oldest first: ``plan list`` reads
        #: them here, caught up with the log, instead of scanning it
        self.plans: list[str] = []

    def apply(self, event: Event) -> None:
        self.position = event.seq + 1
        kind, payload = event.type, event.payload
        if kind == EXECUTION_FINISHED:
            if payload.get("executor") in EFFECTORS and payload.get("status") == "succeeded":
                result = payload.get("result")
                if isinstance(result, dict) and isinstance(result.get("containment"), dict):
                    self._applied(result["containment"], event.intent_id or "", None, None, event)
        elif kind == PLAN_STEP_FINISHED and payload.get("status") == "succeeded":
            self._applied(
                payload["containment"],
                payload["intent_id"],
                payload["plan_id"],
                payload["step"],
                event,
            )
        elif kind == CONTAINMENT_EXPIRED:
            current = self.controls.get(payload["control"])
            if current is not None:
                self.controls[current.key] = replace(current, expiring=True)
        elif kind == CONTAINMENT_REVERTED:
            current = self.controls.get(payload["control"])
            restore = payload.get("restore_expires_at")
            if current is not None and restore is not None:
                self.controls[current.key] = replace(current, expires_at=parse_time(restore))
            else:
                self.controls.pop(payload["control"], None)
        elif (
            kind == INTENT_RECORDED
            and event.intent_id is not None
            and payload["intent"]["action"] == PLAN_ACTION
        ):
            self.plans.append(event.intent_id)

    def _applied(
        self,
        change: dict[str, Any],
        intent_id: str,
        plan_id: str | None,
        step: int | None,
        event: Event,
    ) -> None:
        if change["change"] == "unchanged":
            return
        key = change["control"]
        current = self.controls.get(key)
        expires = parse_time(change["expires_at"])
        if current is not None:
            self.controls[key] = replace(current, expires_at=max(expires, current.expires_at))
            return
        self.controls[key] = Control(
            key,
            change["effector"],
            dict(change["scope"]),
            parse_time(change["at"]),
            expires,
            intent_id,
            plan_id,
            step,
            correlation=event.correlation_id,
        )

    def due(self, now: datetime) -> list[Control]:
        """Controls whose expiry ``now`` has reached (or whose revert is owed), by expiry."""
        found = [c for c in self.controls.values() if c.expiring or c.expires_at <= now]
        return sorted(found, key=lambda c: (c.expires_at, c.key))

    def in_force(self) -> list[Control]:
        return sorted(self.controls.values(), key=lambda c: (c.since, c.key))
