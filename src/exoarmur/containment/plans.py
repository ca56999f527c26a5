"""Plans: an ordered list of containment actions with a content-only hash.

Pure. ``plan_hash`` is the hash of the plan's canonical content (steps in
order, nothing about who, when or where), so the same plan has the same hash
in any home. Validation names the step and the rule it breaks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..encoding import content_hash
from ..errors import ContainmentError
from ..model.intent import SafetyClass
from .model import EFFECTORS, ContainmentSpec, parse_scope, parse_spec

PLAN_FORMAT = "exoarmur.plan/v1"
MAX_STEPS = 32
#: Door Net's default TTL windows (seconds), per step
DOOR_NET_TTLS = {
    "revoke_sessions": 3600,
    "isolate_endpoint": 3600,
    "rate_limit": 7200,
    "disable_workload": 1800,
}


@dataclass(frozen=True)
class Plan:
    """Steps in the order they run; compensation runs them back in reverse."""

    name: str
    steps: tuple[ContainmentSpec, ...]

    def to_canonical(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "name": self.name,
            "steps": [{"effector": s.effector, **s.to_params()["containment"]} for s in self.steps],
        }

    @property
    def plan_hash(self) -> str:
        return content_hash(self.to_canonical())

    @property
    def safety_class(self) -> SafetyClass:
        """The highest class among the steps: the plan is governed at that class."""
        order = list(SafetyClass)
        return max((EFFECTORS[s.effector].safety_class for s in self.steps), key=order.index)

    @property
    def sequence(self) -> list[str]:
        return [s.effector for s in self.steps]


def parse_plan(raw: Any, tenant: str, ttl_bound: int | None = None) -> Plan:
    """A checked plan; ContainmentError naming the step and the rule otherwise."""
    if not isinstance(raw, Mapping):
        raise ContainmentError("plan: must be an object with name and steps")
    extra = set(raw) - {"format", "name", "steps"}
    if extra:
        raise ContainmentError(f"plan: unknown field {sorted(extra)[0]!r}")
    if raw.get("format", PLAN_FORMAT) != PLAN_FORMAT:
        raise ContainmentError(f"plan.format: must be {PLAN_FORMAT!r}")
    name = raw.get("name", "plan")
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise ContainmentError("plan.name: must be 1-128 characters")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ContainmentError("plan.steps: a plan needs at least one step")
    if len(steps) > MAX_STEPS:
        raise ContainmentError(f"plan.steps: at most {MAX_STEPS} steps, not {len(steps)}")
    parsed: list[ContainmentSpec] = []
    seen: dict[str, int] = {}
    for number, step in enumerate(steps, start=1):
        where = f"plan.steps[{number}]"
        if not isinstance(step, Mapping):
            raise ContainmentError(f"{where}: must be an object with effector, scope, ttl_seconds")
        fields = {k: v for k, v in step.items() if k != "effector"}
        spec = parse_spec(str(step.get("effector")), fields, tenant, where, ttl_bound)
        if spec.control in seen:
            # the same control twice would make its compensation revert the other step's
            raise ContainmentError(
                f"{where}: duplicate step: {spec.control} is already step {seen[spec.control]}"
            )
        seen[spec.control] = number
        parsed.append(spec)
    return Plan(name, tuple(parsed))


def door_net(tenant: str, targets: Sequence[str], ttls: Mapping[str, int] | None = None) -> Plan:
    """Revoke sessions → isolate endpoint → rate limit → disable workload.

    ``targets`` are ``kind:id`` scopes: an identity (required), an endpoint
    and a workload (each step whose scope is missing is left out).
    """
    windows = {**DOOR_NET_TTLS, **(ttls or {})}
    scopes = {}
    for number, text in enumerate(targets, start=1):
        scope = parse_scope(text, tenant, f"--target[{number}]")
        scopes[scope.kind] = scope
    if "identity" not in scopes:
        raise ContainmentError("--target: Door Net needs an identity:<id> target")
    wanted = [
        ("revoke_sessions", "identity"),
        ("isolate_endpoint", "endpoint"),
        ("rate_limit", "identity"),
        ("disable_workload", "workload"),
    ]
    steps = [
        {"effector": e, "scope": scopes[k].to_canonical(), "ttl_seconds": windows[e]}
        for e, k in wanted
        if k in scopes
    ]
    return parse_plan({"name": "door-net", "steps": steps}, tenant)
