"""The safety gate: tightens a policy decision, never loosens it.

Runs after the policy decision, on control state folded from the ledger at
recorded positions and a recorded time, and again right before any side
effect (kill switches only: a switch engaged after approval still stops the
action). Pure: same inputs, same verdict, so replay reproduces every one.

Checks, in order (the first blocking one decides; tightenings accumulate):

1. control state unreadable        → deny       (fail closed)
2. a kill switch covers the action → deny
3. a rate limit is exhausted       → deny       (tenant, actor, action)
4. policy said deny                → deny, nothing more to tighten
5. class floor                     → A2 needs 1 approval, A3 needs 2 (configurable,
                                     recorded; policy and posture only raise it)
6. protected target or principal   → require approval, quorum ≥ configured
7. posture lockdown                → classes above the configured one need approval
8. posture heightened or lockdown  → listed classes need extra approvals (lockdown
                                     includes heightened, so it never asks fewer)
9. evidence below the level required → pending_evidence (or deny, ``@evidence_unmet``),
                                     only where the recorded configuration enforces it

The gate never raises: anything unexpected inside it (a value it cannot
compare, an obligation it cannot read) is a deny naming ``gate:error``, so a
defect in the gate can only stop actions, never crash a submit or a vote
between a decision and its side effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..containment.model import PLAN_ACTION, is_containment, parse_spec
from ..containment.plans import parse_plan
from ..errors import ContainmentError
from ..evidence_levels import (
    STANDING,
    Influence,
    InfluenceSource,
    level_met,
    parse_refs,
    rank,
    required_level,
    strictest,
)
from ..model.decision import Decision, Verdict
from ..model.intent import ActionIntent, SafetyClass
from .config import GateConfig
from .controls import Controls, Switch

_ORDER = list(SafetyClass)


def _blocking_switch(tenant: str, action: str, *controls: Controls) -> Switch | None:
    for state in controls:
        for switch in sorted(state.switches.values(), key=lambda s: s.scope.sort_key):
            if switch.scope.covers(tenant, action):
                return switch
    return None


def _deny(decision: Decision, control: str, reason: str) -> Decision:
    return decision.model_copy(
        update={
            "verdict": Verdict.DENY,
            "obligations": {},
            "gate": {
                "policy_verdict": decision.verdict.value,
                "controls": [control],
                "reason": reason,
            },
        }
    )


def vote_over_limit(
    tenant: Controls, config: GateConfig, approver: str, now: datetime
) -> str | None:
    """Why ``approver`` may not vote now under the approvals-per-operator limit, if so."""
    limit = config.rate_limits.get("approvals_per_operator")
    if limit is None:
        return None
    seen = tenant.count(("approver", approver), now, limit.seconds, limit.count)
    if seen < limit.count:
        return None
    return f"{approver} cast {seen} votes in the last {limit.seconds}s; the limit is {limit.text}"


def revoked(approver: str) -> str:
    return f"principal {approver} is revoked or has changed"


def unreadable(system: Controls, tenant: Controls) -> str | None:
    return system.unreadable or tenant.unreadable


GATE_ERROR = "gate:error"


def _failure(exc: Exception) -> str:
    return f"the gate could not decide ({type(exc).__name__}: {exc}); failing closed"


def recheck(intent: ActionIntent, system: Controls, tenant: Controls) -> tuple[str, str] | None:
    """Right before a side effect: (control, reason) if it must not happen now."""
    try:
        return _recheck(intent, system, tenant)
    except Exception as exc:  # fail closed: an error is a block, never a start
        return GATE_ERROR, _failure(exc)


def _recheck(intent: ActionIntent, system: Controls, tenant: Controls) -> tuple[str, str] | None:
    broken = unreadable(system, tenant)
    if broken:
        return "controls:unreadable", broken
    switch = _blocking_switch(intent.tenant, intent.action, system, tenant)
    if switch is not None:
        return f"killswitch:{switch.scope.text}", switch.reason
    return None


def _ttl_over_bound(
    intent: ActionIntent, decision: Decision, posture_bound: int | None
) -> tuple[str, str] | None:
    """A containment action (or plan step) asking for more TTL than the bound in force.

    The bound is policy's ``@ttl_max`` and the posture's ``ttl_max_seconds``,
    whichever is smaller.
    """
    if not (is_containment(intent.action) or intent.action == PLAN_ACTION):
        return None
    bound = decision.obligations.get("ttl_max")
    bounds = [b for b in (int(bound) if bound else None, posture_bound) if b is not None]
    limit = min(bounds) if bounds else None
    try:
        if intent.action == PLAN_ACTION:
            parse_plan(intent.params.get("plan"), intent.tenant, limit)
        else:
            effector = intent.action.removeprefix("containment.")
            raw = intent.params.get("containment")
            parse_spec(effector, raw, intent.tenant, "params.containment", limit)
    except ContainmentError as exc:
        control = f"ttl_max:{limit}" if limit is not None and "bound" in str(exc) else "containment"
        return control, str(exc)
    return None


def check(
    intent: ActionIntent,
    decision: Decision,
    *,
    system: Controls,
    tenant: Controls,
    config: GateConfig,
    now: datetime,
    influences: Sequence[InfluenceSource] = (),
) -> Decision:
    """The decision, tightened by the gate (``decision.gate`` says how, if at all).

    ``influences`` (the identity shadow, say) may only raise the evidence an
    intent needs; trust in what it rests on and the open identity shadows are
    always among them (:data:`~exoarmur.evidence_levels.STANDING`).
    """
    try:
        tightened = _check(intent, decision, system=system, tenant=tenant, config=config, now=now)
        if config.evidence_enforced and tightened.verdict != Verdict.DENY:
            return _evidence(intent, tightened, tenant, influences)
        return tightened
    except Exception as exc:  # fail closed: an error in the gate is a deny
        return _deny(decision, GATE_ERROR, _failure(exc))


def own_evidence(intent: ActionIntent) -> str:
    """The level a containment action asks for itself (only when it names one)."""
    raw = intent.params.get("containment") if is_containment(intent.action) else None
    named = raw.get("evidence") if isinstance(raw, dict) else None
    return named if isinstance(named, str) else "none"


def _evidence(
    intent: ActionIntent,
    decision: Decision,
    tenant: Controls,
    extra: Sequence[InfluenceSource],
) -> Decision:
    """Hold (or deny) an action whose referenced evidence is below the level required."""
    refs = parse_refs(intent.params)
    minimum = strictest([decision.obligations.get("evidence", "none"), own_evidence(intent)])
    found = [
        i
        for source in (*STANDING, *extra)
        for i in source.influences(intent, refs, tenant.evidence, tenant.position)
    ]
    required = required_level(minimum, found)
    met = level_met(refs, tenant.evidence, intent.intent_id, intent.intent_hash())
    if rank(met) >= rank(required):
        return decision
    return held_for_evidence(decision, required, met, found)


def held_for_evidence(
    decision: Decision, required: str, met: str, found: Sequence[Influence]
) -> Decision:
    """What a decision becomes when its evidence (``met``) is below ``required``.

    Pure; the evidence bundle's check builds the same record from a
    decision's recorded requirement, level and influences.
    """
    control = f"evidence:{required}"
    reason = f"evidence: {required} required, {met} met"
    if decision.obligations.get("evidence_unmet") == "deny":
        return _deny(decision, control, reason)
    gate = decision.gate or {"policy_verdict": decision.verdict.value, "controls": [], "reason": ""}
    return decision.model_copy(
        update={
            "verdict": Verdict.PENDING_EVIDENCE,
            "gate": gate
            | {
                "controls": [*gate["controls"], control],
                "reason": "; ".join(r for r in (gate["reason"], reason) if r),
                "held": decision.verdict.value,
                "evidence": {
                    "required": required,
                    "met": met,
                    "influences": [i.to_canonical() for i in found],
                },
            },
        }
    )


def _check(
    intent: ActionIntent,
    decision: Decision,
    *,
    system: Controls,
    tenant: Controls,
    config: GateConfig,
    now: datetime,
) -> Decision:
    blocked = _recheck(intent, system, tenant)
    if blocked is not None:
        return _deny(decision, *blocked)
    posture = tenant.posture_at(now).posture
    tightenings = config.tightenings(posture)
    limits = [("", config.rate_limits)] + [(f":{posture}", t.rate_limits) for t in tightenings]
    for key, scope_key in (
        ("tenant", ("tenant", "")),
        ("actor", ("actor", intent.actor.id)),
        ("action", ("action", intent.action)),
    ):
        for suffix, table in limits:
            limit = table.get(key)
            if limit is None:
                continue
            seen = tenant.count(scope_key, now, limit.seconds, limit.count)
            if seen >= limit.count:
                return _deny(
                    decision,
                    f"rate_limit:{key}{suffix}",
                    f"{seen} intents in the last {limit.seconds}s reached the {key} limit "
                    f"{limit.text}" + (f" in force under {posture}" if suffix else ""),
                )
    if decision.verdict == Verdict.DENY:
        return decision
    posture_ttl = [t.ttl_max_seconds for t in tightenings if t.ttl_max_seconds is not None]
    over = _ttl_over_bound(intent, decision, min(posture_ttl, default=None))
    if over is not None:
        return _deny(decision, *over)

    controls: list[str] = []
    reasons: list[str] = []
    quorum = int(decision.obligations.get("approval", "0"))
    floor = config.class_floor.get(intent.safety_class, 0)
    if quorum < floor:
        controls.append(f"class_floor:{intent.safety_class.value}")
        reasons.append(
            f"{intent.safety_class.value} actions need {floor} approval(s) whatever policy says"
        )
        quorum = floor
    principals = set(config.protected_principals)
    principals.update(p for t in tightenings for p in t.protected_principals)
    if intent.target in config.protected_targets or intent.actor.id in principals:
        which = "target" if intent.target in config.protected_targets else "principal"
        controls.append(f"protected:{which}")
        reasons.append(f"protected {which} needs a quorum of {config.protected_quorum}")
        quorum = max(quorum, config.protected_quorum)
    klass = _ORDER.index(intent.safety_class)
    if posture == "lockdown" and klass > _ORDER.index(config.lockdown_approval_above):
        controls.append("posture:lockdown")
        reasons.append(f"lockdown: {intent.safety_class.value} actions need approval")
        quorum = max(quorum, 1)
    if config.adds_heightened(posture) and intent.safety_class in config.heightened_classes:
        controls.append("posture:heightened")
        reasons.append(
            f"heightened: {intent.safety_class.value} actions need "
            f"{config.heightened_extra_approvals} more approval(s)"
        )
        quorum += config.heightened_extra_approvals
    if not controls:
        return decision
    obligations = dict(decision.obligations)
    obligations["approval"] = str(quorum)
    return decision.model_copy(
        update={
            "verdict": Verdict.REQUIRE_APPROVAL,
            "obligations": dict(sorted(obligations.items())),
            "gate": {
                "policy_verdict": decision.verdict.value,
                "controls": controls,
                "reason": "; ".join(reasons),
            },
        }
    )
