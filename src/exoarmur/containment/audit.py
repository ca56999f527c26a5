"""Re-deriving containment from the ledger alone: what replay checks about it.

Pure. :class:`ContainmentAudit` reads a tenant's events in order, keeps its
own fold of the controls in force, and for each containment record says
how it differs from what the fold and the recorded plan imply: the change an
effector reported (applied, extended, unchanged) given the control in force
then; a plan's hash, its step order, its compensation (applied steps
reverted last first, each once) and every expiry (due when the fold says,
recorded no earlier). An empty answer means the record re-derives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..encoding import content_hash, parse_time
from ..model.event import EXECUTION_FINISHED, INTENT_RECORDED, Event
from .fold import (
    CONTAINMENT_EXPIRED,
    CONTAINMENT_REVERTED,
    PLAN_COMPENSATED,
    PLAN_COMPLETED,
    PLAN_STARTED,
    PLAN_STEP_FINISHED,
    PLAN_STEP_STARTED,
    ControlsInForce,
    change_for,
)
from .model import EFFECTORS, PLAN_ACTION, ContainmentSpec, Scope

#: (field, recorded, replayed, reason)
Finding = tuple[str, Any, Any, str]


@dataclass
class _Plan:
    canonical: dict[str, Any]
    started: int = 0
    finished: list[dict[str, Any]] = field(default_factory=list)
    reverted: list[int] = field(default_factory=list)
    failed: bool = False


def _spec(step: dict[str, Any]) -> ContainmentSpec:
    scope = step["scope"]
    return ContainmentSpec(
        step["effector"], Scope(scope["kind"], scope["id"]), step["ttl_seconds"], "standard"
    )


class ContainmentAudit:
    """A fold of one tenant's containment records that checks each as it comes."""

    def __init__(self, log: str, *, whole_log: bool = True) -> None:
        self.fold = ControlsInForce(log)
        self.plans: dict[str, _Plan] = {}
        #: False for an evidence bundle's slice: controls set by other streams are unknown,
        #: so only what the slice itself implies is checked (plans, order, expiry times)
        self.whole_log = whole_log

    def check(self, event: Event) -> list[Finding]:
        """How ``event`` differs from what the records before it imply; then fold it."""
        try:
            found = self._check(event)
            self.fold.apply(event)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            found = [("payload", None, None, f"cannot re-derive containment: {exc!r}")]
        return found

    def _change(self, change: dict[str, Any], event: Event) -> list[Finding]:
        if not self.whole_log:
            return []
        spec = ContainmentSpec(
            change["effector"],
            Scope(change["scope"]["kind"], change["scope"]["id"]),
            change["ttl_seconds"],
            "standard",
        )
        at = parse_time(change["at"])
        expected = change_for(self.fold.controls.get(spec.control), spec, at)
        found: list[Finding] = []
        if expected != change:
            found.append(("containment", change, expected, "the control's change differs"))
        if at > event.process_time:
            found.append(("containment.at", change["at"], None, "applied after it was recorded"))
        return found

    def _check(self, event: Event) -> list[Finding]:
        kind, payload = event.type, event.payload
        if kind == INTENT_RECORDED and payload["intent"]["action"] == PLAN_ACTION:
            self.plans[event.intent_id or ""] = _Plan(payload["intent"]["params"]["plan"])
        elif kind == EXECUTION_FINISHED and payload.get("executor") in EFFECTORS:
            result = payload.get("result")
            if payload.get("status") == "succeeded" and isinstance(result, dict):
                return self._change(result["containment"], event)
        elif kind == PLAN_STARTED:
            plan = self.plans.get(payload["plan_id"])
            if plan is None:
                return [("plan_id", payload["plan_id"], None, "no plan intent was recorded")]
            sequence = [s["effector"] for s in plan.canonical["steps"]]
            expected = {"plan_hash": content_hash(plan.canonical), "sequence": sequence}
            recorded = {"plan_hash": payload["plan_hash"], "sequence": payload["sequence"]}
            if expected != recorded:
                return [("plan", recorded, expected, "the plan's hash or step order differs")]
        elif kind == PLAN_STEP_STARTED:
            plan = self.plans[payload["plan_id"]]
            plan.started += 1
            step = plan.canonical["steps"][plan.started - 1]
            expected_step = {"step": plan.started, "control": _spec(step).control}
            recorded_step = {"step": payload["step"], "control": payload["control"]}
            if plan.failed or expected_step != recorded_step:
                return [("step", recorded_step, expected_step, "steps ran out of order")]
        elif kind == PLAN_STEP_FINISHED:
            plan = self.plans[payload["plan_id"]]
            if payload["step"] != plan.started:
                return [("step", payload["step"], plan.started, "finished a step not started")]
            if payload["status"] != "succeeded":
                plan.failed = True
                return []
            plan.finished.append(payload)
            return self._change(payload["containment"], event)
        elif kind == CONTAINMENT_EXPIRED:
            return self._expired(event)
        elif kind == CONTAINMENT_REVERTED:
            return self._reverted(event)
        elif kind == PLAN_COMPENSATED:
            plan = self.plans[payload["plan_id"]]
            owed = [
                f["step"]
                for f in reversed(plan.finished)
                if f["containment"]["change"] != "unchanged"
            ]
            if payload["reverted"] != owed:
                return [("reverted", payload["reverted"], owed, "compensation is not the reverse")]
        elif kind == PLAN_COMPLETED:
            plan = self.plans[payload["plan_id"]]
            if len(plan.finished) != len(plan.canonical["steps"]) or plan.failed:
                return [("steps", len(plan.finished), None, "completed with steps not done")]
        return []

    def _expired(self, event: Event) -> list[Finding]:
        if not self.whole_log:
            due = parse_time(event.payload["due"])
            early = event.process_time < due
            return [("due", event.payload["due"], None, "expired early")] if early else []
        control = self.fold.controls.get(event.payload["control"])
        if control is None or control.expiring:
            return [("control", event.payload["control"], None, "expired a control not in force")]
        due = parse_time(event.payload["due"])
        if due != control.expires_at or event.process_time < due:
            return [("due", event.payload["due"], control.expires_at.isoformat(), "expired early")]
        return []

    def _reverted(self, event: Event) -> list[Finding]:
        payload = event.payload
        control = self.fold.controls.get(payload["control"])
        if control is None and self.whole_log:
            return [("control", payload["control"], None, "reverted a control not in force")]
        if payload["cause"] == "expired" and control is not None and not control.expiring:
            return [("cause", "expired", None, "reverted by expiry before its expiry was recorded")]
        if payload["cause"] == "compensation":
            plan = self.plans[payload["plan_id"]]
            later = [s for s in plan.reverted if s < payload["step"]]
            if later or payload["step"] in plan.reverted:
                return [("step", payload["step"], None, "compensation out of reverse order")]
            plan.reverted.append(payload["step"])
        return []
