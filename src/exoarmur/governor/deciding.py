"""Deciding: policy, then the gate, on control state at recorded positions.

:func:`decide` and :func:`engine_in_force` are pure: they take the folds,
the engine and the time as arguments and return a value. The governor calls
them on the folds it holds under its decide lock; replay calls the very same
functions on folds rebuilt at the positions a decision recorded, so live and
replay cannot drift apart. This module must never read a clock, a store or
the environment; the live caller (``intake.Decider``) hands it all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..evidence_levels import InfluenceSource
from ..gate import Controls, GateConfig, Posture
from ..gate import check as gate_check
from ..model.decision import Decision
from ..model.event import SYSTEM_LOG
from ..model.intent import ActionIntent
from ..policy import PolicyEngine

#: ``load(log, policy_hash, activation_event_id)``: the engine an activation holds
EngineLoader = Callable[[str, str, str], PolicyEngine | None]


@dataclass(frozen=True)
class Deliberation:
    """A decision and what it was made on besides the folds' positions."""

    decision: Decision
    #: the posture policy saw (an evidence bundle re-decides from it)
    posture: str
    #: the posture event whose TTL ran out by ``at``, to be recorded as expired
    lapsed: str | None


def engine_in_force(system: Controls, tenant: Controls, load: EngineLoader) -> PolicyEngine | None:
    """The tenant's own activation, else the global one; None when neither exists."""
    log, activation = (tenant.log, tenant.policy) if tenant.policy else (SYSTEM_LOG, system.policy)
    if activation is None:
        return None
    policy_hash, event_id = activation
    return load(log, policy_hash, event_id)


def decide(
    intent: ActionIntent,
    engine: PolicyEngine,
    system: Controls,
    tenant: Controls,
    gate: GateConfig,
    at: datetime,
    config_hash: str | None,
    influences: Sequence[InfluenceSource] = (),
) -> Deliberation:
    """Policy on the posture in force at ``at`` and what it tightens, then the gate.

    ``at`` is the intent's recorded process time: the gate's only notion of now.
    ``influences`` may only raise the evidence required (the merge point for
    the identity shadow's fold; replay must pass the same ones).
    """
    state = tenant.posture_at(at)
    lapsed = tenant.posture.event_id if state is not tenant.posture else None
    tightened = gate.policy_context(state.posture)
    decision = engine.decide(intent, state.posture, tightened).model_copy(
        update={"config_hash": config_hash}
    )
    decision = gate_check(
        intent, decision, system=system, tenant=tenant, config=gate, now=at, influences=influences
    )
    return Deliberation(decision, state.posture, lapsed)


def decide_many(
    cases: Sequence[tuple[ActionIntent, datetime]],
    engine: PolicyEngine,
    system: Controls,
    tenant: Controls,
    gate: GateConfig,
    config_hash: str | None,
    influences: Sequence[InfluenceSource] = (),
) -> list[Deliberation]:
    """:func:`decide` for each ``(intent, at)`` on the same folds, in one Cedar call per posture.

    Gives exactly what :func:`decide` gives for each case alone (Cedar's batch
    decides each request on its own); only the cost is shared. It is
    :func:`policy_many` then :func:`gate_many`, which the live caller times apart.
    """
    ruled = policy_many(cases, engine, tenant, gate, config_hash)
    return gate_many(cases, ruled, system, tenant, gate, influences)


def policy_many(
    cases: Sequence[tuple[ActionIntent, datetime]],
    engine: PolicyEngine,
    tenant: Controls,
    gate: GateConfig,
    config_hash: str | None,
) -> list[tuple[Decision, Posture]]:
    """Policy's decision for each case, on the posture in force at its ``at``."""
    states = [tenant.posture_at(at) for _, at in cases]
    by_posture: dict[str, list[int]] = {}
    for number, state in enumerate(states):
        by_posture.setdefault(state.posture, []).append(number)
    decisions: dict[int, Decision] = {}
    for posture, numbers in by_posture.items():
        tightened = gate.policy_context(posture)
        batch = engine.decide_batch([cases[n][0] for n in numbers], posture, tightened)
        decisions.update(zip(numbers, batch, strict=True))
    return [
        (decisions[number].model_copy(update={"config_hash": config_hash}), state)
        for number, state in enumerate(states)
    ]


def gate_many(
    cases: Sequence[tuple[ActionIntent, datetime]],
    ruled: Sequence[tuple[Decision, Posture]],
    system: Controls,
    tenant: Controls,
    gate: GateConfig,
    influences: Sequence[InfluenceSource] = (),
) -> list[Deliberation]:
    """The gate on each of :func:`policy_many`'s decisions (it only tightens)."""
    found = []
    for (intent, at), (decision, state) in zip(cases, ruled, strict=True):
        lapsed = tenant.posture.event_id if state is not tenant.posture else None
        gated = gate_check(
            intent,
            decision,
            system=system,
            tenant=tenant,
            config=gate,
            now=at,
            influences=influences,
        )
        found.append(Deliberation(gated, state.posture, lapsed))
    return found
