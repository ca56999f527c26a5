"""What a containment action asks for: an effector, a scope, a TTL, an evidence level.

Pure: parses and checks values, reads nothing. The containment object lives
in an intent's params under the reserved key ``containment``, so it is part
of the intent's canonical form and its hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ContainmentError
from ..evidence_levels import level_of
from ..model.intent import ActionIntent, SafetyClass

#: the params key that holds a containment action's object
PARAMS_KEY = "containment"
#: the action prefix of every containment action
ACTION_PREFIX = "containment."
#: the action a whole plan is governed as
PLAN_ACTION = "containment.plan"
SCOPE_KINDS = ("identity", "endpoint", "workload", "service")
#: the legacy names; the enforced levels (and how these map) are in ``evidence_levels``
EVIDENCE_LEVELS = ("low", "standard", "high")
#: longest TTL anything may ask for whatever policy says (30 days)
MAX_TTL_SECONDS = 30 * 24 * 3600
_SCOPE_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")


@dataclass(frozen=True)
class Effector:
    """A kind of control: which scopes it constrains and how much harm it can do."""

    name: str
    scopes: tuple[str, ...]
    safety_class: SafetyClass

    @property
    def action(self) -> str:
        return ACTION_PREFIX + self.name


EFFECTORS: dict[str, Effector] = {
    e.name: e
    for e in (
        Effector("revoke_sessions", ("identity",), SafetyClass.A1),
        Effector("rate_limit", ("identity", "service", "workload", "endpoint"), SafetyClass.A1),
        Effector("isolate_endpoint", ("endpoint",), SafetyClass.A2),
        Effector("freeze_identity", ("identity",), SafetyClass.A2),
        Effector("disable_workload", ("workload",), SafetyClass.A2),
    )
}


@dataclass(frozen=True, order=True)
class Scope:
    """What a control constrains, inside one tenant."""

    kind: str
    id: str

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.id}"

    def to_canonical(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}


@dataclass(frozen=True)
class ContainmentSpec:
    """A containment action's own fields (the rest is the intent)."""

    effector: str
    scope: Scope
    ttl_seconds: int
    evidence: str

    @property
    def control(self) -> str:
        """The key of the control this action sets: one per effector and scope."""
        return f"{self.effector}/{self.scope.text}"

    def to_params(self) -> dict[str, Any]:
        return {
            PARAMS_KEY: {
                "scope": self.scope.to_canonical(),
                "ttl_seconds": self.ttl_seconds,
                "evidence": self.evidence,
            }
        }


def effector_of(action: str) -> Effector | None:
    if not action.startswith(ACTION_PREFIX):
        return None
    return EFFECTORS.get(action[len(ACTION_PREFIX) :])


def is_containment(action: str) -> bool:
    return action.startswith(ACTION_PREFIX) and action != PLAN_ACTION


def parse_scope(value: Any, tenant: str, where: str) -> Scope:
    if isinstance(value, str):
        head, _, tail = value.partition(":")
        value = {"kind": head, "id": tail}
    if not isinstance(value, Mapping):
        raise ContainmentError(f"{where}.scope: must be an object with kind and id")
    extra = set(value) - {"kind", "id", "tenant"}
    if extra:
        raise ContainmentError(f"{where}.scope: unknown field {sorted(extra)[0]!r}")
    if "tenant" in value and value["tenant"] != tenant:
        raise ContainmentError(
            f"{where}.scope: names tenant {value['tenant']!r}; a control may only "
            f"constrain its own tenant {tenant!r}"
        )
    kind: Any = value.get("kind")
    ident: Any = value.get("id")
    if kind not in SCOPE_KINDS:
        raise ContainmentError(f"{where}.scope.kind: must be one of {', '.join(SCOPE_KINDS)}")
    if not isinstance(ident, str) or not _SCOPE_ID.match(ident):
        raise ContainmentError(f"{where}.scope.id: must be 1-256 printable characters, no spaces")
    return Scope(kind, ident)


def parse_ttl(value: Any, where: str, bound: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContainmentError(f"{where}.ttl_seconds: must be a whole number of seconds")
    if value <= 0:
        raise ContainmentError(f"{where}.ttl_seconds: must be positive, not {value}")
    limit = MAX_TTL_SECONDS if bound is None else min(bound, MAX_TTL_SECONDS)
    if value > limit:
        raise ContainmentError(f"{where}.ttl_seconds: {value} exceeds the bound {limit}s in force")
    return value


def parse_spec(
    effector: str, raw: Any, tenant: str, where: str, ttl_bound: int | None = None
) -> ContainmentSpec:
    known = EFFECTORS.get(effector)
    if known is None:
        raise ContainmentError(
            f"{where}.effector: unknown effector {effector!r} "
            f"(known: {', '.join(sorted(EFFECTORS))})"
        )
    if not isinstance(raw, Mapping):
        raise ContainmentError(f"{where}: must be an object with scope and ttl_seconds")
    extra = set(raw) - {"scope", "ttl_seconds", "evidence"}
    if extra:
        raise ContainmentError(f"{where}: unknown field {sorted(extra)[0]!r}")
    scope = parse_scope(raw.get("scope"), tenant, where)
    if scope.kind not in known.scopes:
        raise ContainmentError(
            f"{where}.scope.kind: {effector} constrains {', '.join(known.scopes)}, not {scope.kind}"
        )
    ttl = parse_ttl(raw.get("ttl_seconds"), where, ttl_bound)
    evidence = raw.get("evidence", "standard")
    try:
        level_of(evidence)
    except (ValueError, TypeError) as exc:
        raise ContainmentError(f"{where}.evidence: {exc}") from None
    return ContainmentSpec(effector, scope, ttl, evidence)


def containment_spec(intent: ActionIntent) -> ContainmentSpec:
    """The containment fields of a ``containment.<effector>`` intent (ContainmentError if bad)."""
    return requested_spec(intent.action, intent.params, intent.tenant, intent.safety_class)


def requested_spec(
    action: str, params: Mapping[str, Any], tenant: str, safety_class: SafetyClass
) -> ContainmentSpec:
    """:func:`containment_spec` of an intent not yet made (what intake refuses before recording)."""
    effector = action[len(ACTION_PREFIX) :] if is_containment(action) else ""
    spec = parse_spec(effector, params.get(PARAMS_KEY), tenant, "params.containment")
    floor = EFFECTORS[effector].safety_class
    if list(SafetyClass).index(safety_class) < list(SafetyClass).index(floor):
        raise ContainmentError(
            f"safety_class: {effector} is at least {floor.value}, not {safety_class.value}"
        )
    return spec
