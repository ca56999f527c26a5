"""What a tenant's log remembers: a pure fold and the MemorySnapshotV1 it yields.

The fold reads recorded events only (their recorded times, never a clock),
so the same ledger prefix gives the same snapshot bytes in any home. Memory's
own events (``memory.*``) are not remembered: recording or applying advice
leaves the snapshot of the log before it unchanged, which is what makes
``memory recommend`` idempotent per snapshot hash. Nothing here writes,
decides or approves anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..containment.fold import (
    CONTAINMENT_EXPIRED,
    CONTAINMENT_REVERTED,
    PLAN_COMPENSATED,
    PLAN_COMPLETED,
    PLAN_STARTED,
    PLAN_STEP_FINISHED,
)
from ..encoding import canonical_bytes, content_hash, format_time, parse_time
from ..gate.controls import POSTURES
from ..model.event import (
    APPROVAL_REQUESTED,
    DECISION_RECORDED,
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    INTENT_APPROVED,
    INTENT_RECORDED,
    INTENT_REJECTED,
    POSTURE_EXPIRED,
    POSTURE_SET,
    Event,
)

SNAPSHOT_FORMAT = "exoarmur.memory-snapshot/v1"
#: the kind observe records a detector's belief under (CONTRACT13)
BELIEF_FORMED = "belief.formed"
#: every event type memory itself writes starts so; none of them is remembered
MEMORY_PREFIX = "memory."
OUTCOMES = ("intents", "denied", "rejected", "succeeded", "failed", "blocked")
_EFFECTORS_APPLY = ("applied", "extended")


def rate(part: int, whole: int) -> str | None:
    """``part/whole`` as a decimal string, rounded down to 4 places; None when ``whole`` is 0.

    A string from integer arithmetic: the bytes are the same on every platform.
    """
    if whole <= 0:
        return None
    scaled = part * 10_000 // whole
    return f"{scaled // 10_000}.{scaled % 10_000:04d}"


def _millis(start: datetime, end: datetime) -> int:
    delta = end - start
    return max(0, delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000)


@dataclass
class _Effector:
    applied: int = 0
    expired: int = 0
    released_early: int = 0
    reapplied_after_expiry: int = 0
    max_ttl_seconds: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "applied": self.applied,
            "expired": self.expired,
            "released_early": self.released_early,
            "reapplied_after_expiry": self.reapplied_after_expiry,
            "max_ttl_seconds": self.max_ttl_seconds,
        }


@dataclass
class _PostureClock:
    """Time spent in each posture, from recorded times (a TTL that runs out means normal)."""

    current: str = "normal"
    since: datetime | None = None
    until: datetime | None = None
    event_id: str | None = None
    changes: int = 0
    millis: Counter[str] = field(default_factory=Counter)

    def advance(self, at: datetime) -> None:
        if self.since is None:
            self.since = at
            return
        if self.until is not None and self.until <= at:
            self.millis[self.current] += _millis(self.since, self.until)
            self.changes += self.current != "normal"
            self.current, self.since, self.until, self.event_id = "normal", self.until, None, None
        self.millis[self.current] += _millis(self.since, at)
        # a record made ahead of time (an expiry run for a later time) is followed by
        # earlier ones: each gap between consecutive records counts, a backward one as 0
        self.since = at

    def set(self, posture: str, until: datetime | None, event_id: str) -> None:
        self.changes += posture != self.current
        self.current, self.until, self.event_id = posture, until, event_id

    def lapse(self, event_id: str) -> None:
        if event_id == self.event_id:
            self.changes += self.current != "normal"
            self.current, self.until, self.event_id = "normal", None, None


class MemoryFold:
    """Outcomes, reversals, approval latency, posture drift and detectors of one tenant's log."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        #: events folded (memory's own included)
        self.position = 0
        #: the last event remembered (memory's own excluded): the snapshot's position
        self.through: Event | None = None
        self.first: datetime | None = None
        self.by_action: dict[str, Counter[str]] = {}
        self.action_of: dict[str, str] = {}
        self.beliefs_of: dict[str, list[str]] = {}
        self.requested_at: dict[str, datetime] = {}
        self.latencies: dict[str, list[int]] = {}
        self.succeeded: set[str] = set()
        self.rejected: set[str] = set()
        self.reverted: set[str] = set()
        self.plans: Counter[str] = Counter()
        self.effectors: dict[str, _Effector] = {}
        self.control_ttl: dict[str, int] = {}
        self.expired_at: dict[str, tuple[datetime, int]] = {}
        self.detector_of: dict[str, str] = {}
        self.posture = _PostureClock()

    def apply(self, event: Event) -> None:
        self.position = event.seq + 1
        if event.type.startswith(MEMORY_PREFIX):
            return
        self.through = event
        at = event.process_time
        if self.first is None:
            self.first = at
        self.posture.advance(at)
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)

    # -- intents ---------------------------------------------------------------------

    def _count(self, intent_id: str | None, outcome: str) -> str | None:
        action = self.action_of.get(intent_id or "")
        if action is not None:
            self.by_action.setdefault(action, Counter())[outcome] += 1
        return action

    def _recorded(self, event: Event) -> None:
        intent = event.payload["intent"]
        intent_id, action = str(intent["intent_id"]), str(intent["action"])
        self.action_of[intent_id] = action
        self._count(intent_id, "intents")
        params = intent.get("params")
        refs = params.get("evidence_refs") if isinstance(params, dict) else None
        beliefs = refs.get("beliefs") if isinstance(refs, dict) else None
        if isinstance(beliefs, list):
            self.beliefs_of[intent_id] = sorted({b for b in beliefs if isinstance(b, str)})

    def _decided(self, event: Event) -> None:
        if event.payload["decision"].get("verdict") == "deny":
            self._count(event.intent_id, "denied")

    def _requested(self, event: Event) -> None:
        self.requested_at.setdefault(event.intent_id or "", event.process_time)

    def _settled(self, event: Event) -> None:
        intent_id = event.intent_id or ""
        if event.type == INTENT_REJECTED:
            self.rejected.add(intent_id)
            self._count(intent_id, "rejected")
        asked = self.requested_at.pop(intent_id, None)
        action = self.action_of.get(intent_id)
        if asked is not None and action is not None:
            self.latencies.setdefault(action, []).append(_millis(asked, event.process_time))

    def _finished(self, event: Event) -> None:
        payload = event.payload
        if payload.get("status") == "succeeded":
            self.succeeded.add(event.intent_id or "")
            self._count(event.intent_id, "succeeded")
            result = payload.get("result")
            if isinstance(result, dict) and isinstance(result.get("containment"), dict):
                self._applied(result["containment"], event.process_time)
        else:
            self._count(event.intent_id, "failed")

    def _blocked(self, event: Event) -> None:
        self._count(event.intent_id, "blocked")

    # -- containment -----------------------------------------------------------------

    def _effector(self, name: Any) -> _Effector:
        return self.effectors.setdefault(str(name), _Effector())

    def _applied(self, change: dict[str, Any], at: datetime) -> None:
        if change.get("change") not in _EFFECTORS_APPLY:
            return
        key, ttl = str(change["control"]), int(change.get("ttl_seconds") or 0)
        effector = self._effector(change["effector"])
        effector.applied += 1
        effector.max_ttl_seconds = max(effector.max_ttl_seconds, ttl)
        expired = self.expired_at.pop(key, None)
        # the same control needed again within its own TTL of expiring: the TTL was short
        if expired is not None and _millis(expired[0], at) <= expired[1] * 1000:
            effector.reapplied_after_expiry += 1
        self.control_ttl[key] = ttl

    def _plan_event(self, event: Event) -> None:
        self.plans[event.type] += 1
        if event.type == PLAN_COMPENSATED:
            self.reverted.add(str(event.payload.get("plan_id")))
        elif event.type == PLAN_STEP_FINISHED and event.payload.get("status") == "succeeded":
            self._applied(event.payload["containment"], event.process_time)

    def _expired(self, event: Event) -> None:
        key = str(event.payload["control"])
        self._effector(event.payload["effector"]).expired += 1
        self.expired_at[key] = (event.process_time, self.control_ttl.get(key, 0))

    def _reverted(self, event: Event) -> None:
        if event.payload.get("cause") == "expired":
            return
        self._effector(event.payload["effector"]).released_early += 1
        self.reverted.add(str(event.payload.get("intent_id")))

    # -- posture and beliefs -----------------------------------------------------------

    def _posture_set(self, event: Event) -> None:
        until = event.payload.get("until")
        posture = str(event.payload["posture"])
        self.posture.set(posture, parse_time(until) if until else None, event.event_id)

    def _posture_expired(self, event: Event) -> None:
        self.posture.lapse(str(event.payload["set_event_id"]))

    def _belief(self, event: Event) -> None:
        belief = event.payload.get("belief")
        if isinstance(belief, dict) and isinstance(belief.get("belief_id"), str):
            self.detector_of.setdefault(belief["belief_id"], str(belief.get("detector")))

    # -- the snapshot ------------------------------------------------------------------

    def snapshot(self) -> MemorySnapshotV1:
        return MemorySnapshotV1(self._body())

    def _body(self) -> dict[str, Any]:
        last = self.through
        as_of = last.process_time if last is not None else None
        totals: Counter[str] = Counter()
        for counts in self.by_action.values():
            totals.update(counts)
        ran = totals["succeeded"] + totals["failed"] + totals["blocked"]
        applied = sum(e.applied for e in self.effectors.values())
        released = sum(e.released_early for e in self.effectors.values())
        # every event advanced the posture clock to its own time: it stands at ``as_of``
        posture = self.posture
        return {
            "format": SNAPSHOT_FORMAT,
            "tenant": self.tenant,
            "position": last.seq + 1 if last is not None else 0,
            "through_event_id": last.event_id if last is not None else None,
            "since": format_time(self.first) if self.first is not None else None,
            "as_of": format_time(as_of) if as_of is not None else None,
            "outcomes": {k: totals[k] for k in OUTCOMES}
            | {"rates": {k: rate(totals[k], ran) for k in ("succeeded", "failed", "blocked")}},
            "actions": {
                action: {k: counts[k] for k in OUTCOMES}
                for action, counts in sorted(self.by_action.items())
            },
            "containment": {
                "plans": self.plans[PLAN_STARTED],
                "plans_completed": self.plans[PLAN_COMPLETED],
                "plans_compensated": self.plans[PLAN_COMPENSATED],
                "compensation_rate": rate(self.plans[PLAN_COMPENSATED], self.plans[PLAN_STARTED]),
                "controls_applied": applied,
                "controls_expired": sum(e.expired for e in self.effectors.values()),
                "controls_released_early": released,
                "reversal_rate": rate(released, applied),
                "effectors": {name: e.to_json() for name, e in sorted(self.effectors.items())},
            },
            "approvals": {
                action: _latency(values) for action, values in sorted(self.latencies.items())
            },
            "posture": {
                "current": posture.current,
                "until": format_time(posture.until) if posture.until else None,
                "changes": posture.changes,
                "millis_in": {name: posture.millis[name] for name in POSTURES},
            },
            "detectors": self._detectors(),
        }

    def _detectors(self) -> dict[str, dict[str, Any]]:
        found: dict[str, Counter[str]] = {}
        acted: dict[str, set[str]] = {}
        for intent_id, beliefs in self.beliefs_of.items():
            for belief in beliefs:
                if belief not in self.detector_of:
                    continue  # a reference to no belief of this log: nothing to judge
                seen = acted.setdefault(belief, set())
                seen.add(intent_id)
        for belief, detector in self.detector_of.items():
            counts = found.setdefault(detector, Counter())
            counts["beliefs"] += 1
            intents = acted.get(belief, set())
            if intents & self.succeeded:
                counts["acted_on"] += 1
                if intents & self.succeeded & self.reverted:
                    counts["reverted"] += 1
            if intents & self.rejected:
                counts["rejected"] += 1
        return {
            detector: {
                "beliefs": c["beliefs"],
                "acted_on": c["acted_on"],
                "reverted": c["reverted"],
                "rejected": c["rejected"],
                "precision": rate(c["acted_on"] - c["reverted"], c["acted_on"]),
            }
            for detector, c in sorted(found.items())
        }


def _latency(values: list[int]) -> dict[str, int]:
    ordered = sorted(values)
    return {
        "settled": len(ordered),
        "p50_ms": ordered[(len(ordered) - 1) // 2],
        "max_ms": ordered[-1],
    }


_HANDLERS = {
    INTENT_RECORDED: MemoryFold._recorded,
    DECISION_RECORDED: MemoryFold._decided,
    APPROVAL_REQUESTED: MemoryFold._requested,
    INTENT_APPROVED: MemoryFold._settled,
    INTENT_REJECTED: MemoryFold._settled,
    EXECUTION_FINISHED: MemoryFold._finished,
    EXECUTION_BLOCKED: MemoryFold._blocked,
    PLAN_STARTED: MemoryFold._plan_event,
    PLAN_COMPLETED: MemoryFold._plan_event,
    PLAN_COMPENSATED: MemoryFold._plan_event,
    PLAN_STEP_FINISHED: MemoryFold._plan_event,
    CONTAINMENT_EXPIRED: MemoryFold._expired,
    CONTAINMENT_REVERTED: MemoryFold._reverted,
    POSTURE_SET: MemoryFold._posture_set,
    POSTURE_EXPIRED: MemoryFold._posture_expired,
    BELIEF_FORMED: MemoryFold._belief,
}


@dataclass(frozen=True)
class MemorySnapshotV1:
    """A snapshot's body and its ``memory_hash`` (sha256 of the body's canonical bytes)."""

    body: dict[str, Any]

    @property
    def memory_hash(self) -> str:
        return content_hash(self.body)

    @property
    def position(self) -> int:
        return int(self.body["position"])

    def to_json(self) -> dict[str, Any]:
        return self.body | {"memory_hash": self.memory_hash}

    def canonical(self) -> bytes:
        return canonical_bytes(self.to_json())


def fold(tenant: str, events: Any) -> MemoryFold:
    """The memory of ``events`` (one tenant's log, in order)."""
    memory = MemoryFold(tenant)
    for event in events:
        memory.apply(event)
    return memory
