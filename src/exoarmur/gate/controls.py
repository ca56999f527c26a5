"""Control state: a fold over one log's control events, at a known position.

Kill switches, posture and the recorded times that rate limits count are
all derived from ledger events, never from a live store or the wall clock.
Each ``Controls`` knows the position (number of events) it has folded, and
every decision records those positions, so a replay folds exactly the same
prefix and reaches exactly the same gate verdict.

If an event cannot be folded the state is marked unreadable and the gate
blocks everything (fail closed) until it is repaired.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..encoding import format_time, parse_time
from ..errors import ExoArmurError
from ..evidence_levels import EvidenceFold
from ..model.event import (
    APPROVAL_GRANTED,
    APPROVAL_REJECTED,
    INTENT_RECORDED,
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POLICY_ACTIVATED,
    POSTURE_EXPIRED,
    POSTURE_SET,
    Event,
)
from .scope import Scope, parse_scope

POSTURES = ("normal", "heightened", "lockdown")
#: recorded times kept when the caller names no horizon (longer than any sane window)
DEFAULT_HORIZON_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Switch:
    scope: Scope
    reason: str
    engaged_by: str
    event_id: str
    engaged_at: str


@dataclass(frozen=True)
class Posture:
    posture: str = "normal"
    until: datetime | None = None
    set_by: str | None = None
    reason: str | None = None
    event_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "posture": self.posture,
            "until": format_time(self.until) if self.until else None,
            "set_by": self.set_by,
            "reason": self.reason,
            "event_id": self.event_id,
        }


class Controls:
    """Control state folded from one log (the system log or a tenant's)."""

    def __init__(
        self,
        log: str,
        horizon_seconds: int = DEFAULT_HORIZON_SECONDS,
        retention: dict[str, int] | None = None,
    ) -> None:
        self.log = log
        #: recorded times kept per key kind (None: all within the horizon)
        self.retention = retention
        #: how long recorded times are kept: at least the longest rate window counted on
        #: this fold, so forgetting older ones never changes a count (memory stays flat)
        self.horizon_seconds = horizon_seconds
        self.position = 0
        self.switches: dict[str, Switch] = {}
        self.posture = Posture()
        self.unreadable: str | None = None
        #: (policy hash, event id) of the latest policy activation in this log
        self.policy: tuple[str, str] | None = None
        self._times: dict[tuple[str, str], deque[datetime]] = {}
        #: the tenant's evidence (observations, beliefs, attestations, trust tallies)
        self.evidence = EvidenceFold()

    def apply(self, event: Event) -> None:
        if event.seq != self.position:
            self.unreadable = (
                f"{self.log}: folded {self.position} events, next event has seq {event.seq}"
            )
        self.position = event.seq + 1
        try:
            self._apply(event)
        except (KeyError, TypeError, ValueError, ExoArmurError) as exc:
            self.unreadable = f"{self.log} event {event.seq} ({event.type}) is unreadable: {exc}"

    def _apply(self, event: Event) -> None:
        kind, payload = event.type, event.payload
        self.evidence.apply(kind, payload, event.intent_id)
        if kind == KILLSWITCH_ENGAGED:
            scope = parse_scope(payload["scope"])
            self.switches[scope.text] = Switch(
                scope,
                str(payload["reason"]),
                str(event.actor["id"]),
                event.event_id,
                format_time(event.process_time),
            )
        elif kind == KILLSWITCH_RELEASED:
            self.switches.pop(parse_scope(payload["scope"]).text, None)
        elif kind == POSTURE_SET:
            posture = payload["posture"]
            if posture not in POSTURES:
                raise ValueError(f"unknown posture {posture!r}")
            until = payload.get("until")
            self.posture = Posture(
                posture,
                parse_time(until) if until else None,
                str(event.actor["id"]),
                str(payload["reason"]),
                event.event_id,
            )
        elif kind == POSTURE_EXPIRED:
            if payload["set_event_id"] == self.posture.event_id:
                self.posture = Posture()
        elif kind == POLICY_ACTIVATED:
            self.policy = (str(payload["policy_hash"]), event.event_id)
        elif kind == INTENT_RECORDED:
            intent = payload["intent"]
            at = event.process_time
            self._remember(("tenant", ""), at)
            self._remember(("actor", intent["actor"]["id"]), at)
            self._remember(("action", intent["action"]), at)
        elif kind in (APPROVAL_GRANTED, APPROVAL_REJECTED):
            self._remember(("approver", payload["approver"]), event.process_time)

    def _remember(self, key: tuple[str, str], at: datetime) -> None:
        keep = None if self.retention is None else self.retention.get(key[0], 0)
        if keep == 0:
            return  # no limit counts this kind of key
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=keep)
        times.append(at)
        while times and (at - times[0]).total_seconds() > self.horizon_seconds:
            times.popleft()

    def count(self, key: tuple[str, str], now: datetime, seconds: int, stop_above: int) -> int:
        """Recorded times in (now - seconds, now], counting no further than ``stop_above + 1``.

        Scans newest first and never prunes by ``now``, so the answer is the
        same whatever order decisions asked in: a replay gets the same count.
        """
        found = 0
        for at in reversed(self._times.get(key, ())):
            if at > now:
                continue
            if (now - at).total_seconds() >= seconds:
                break
            found += 1
            if found > stop_above:
                break
        return found

    def posture_at(self, now: datetime) -> Posture:
        """The posture in force at ``now`` (a TTL that has run out means normal)."""
        if self.posture.until is not None and now >= self.posture.until:
            return Posture()
        return self.posture
