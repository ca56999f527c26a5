"""Writes observations and beliefs for the evidence tests (tests/ is on sys.path).

They go through the governor's normal append path with the contract's payload
shapes. When the observe room is merged, these should call its API instead
(``exoarmur.observations``), which records the same events.
"""

from __future__ import annotations

from typing import Any

from exoarmur.clock import StepClock
from exoarmur.evidence_levels import BELIEF_FORMED, OBSERVATION_RECORDED
from exoarmur.gate import GateConfig
from exoarmur.ids import SeededIds
from exoarmur.ledger.log import Ledger
from exoarmur.model.event import Event
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.principals import Principal

SENSOR = {"id": "sensor", "kind": "service"}

#: allows ticket.create once its evidence is corroborated, waits otherwise
CORROBORATED = """
@id("tickets-with-evidence") @evidence("standard")
permit (principal, action == Action::"ticket.create", resource);
"""


def governor(
    ledger: Ledger, policy: str = CORROBORATED, *, enforced: bool = True, seed: int = 3
) -> Governor:
    """A governor whose principal book holds operators alice and bob (acme), mallory (globex)."""
    g = Governor(
        ledger=ledger,
        policy=PolicyEngine(PolicyBundle.from_text(policy)),
        clock=StepClock(),
        ids=SeededIds(seed),
        gate=GateConfig(evidence_enforced=enforced),
    )
    for name, tenant in (("alice", "acme"), ("bob", "acme"), ("mallory", "globex")):
        if g.principals().get(name) is None:
            g.add_principal(name, "operator", [tenant])
    return g


def person(g: Governor, name: str) -> Principal:
    found = g.principals().get(name)
    assert found is not None
    return found


def observe(g: Governor, tenant: str, observation_id: str, source: str) -> Event:
    payload: dict[str, Any] = {
        "observation": {
            "observation_id": observation_id,
            "source": source,
            "subject": {"kind": "identity", "id": "carol"},
            "kind": "login.failed",
            "attributes": {},
            "event_time": "2026-11-30T08:00:00Z",
        }
    }
    return g.state.append_one(
        tenant, g.drafts.for_log(tenant, OBSERVATION_RECORDED, payload, SENSOR)
    )


def believe(
    g: Governor, tenant: str, belief_id: str, detector: str, observations: dict[str, str]
) -> Event:
    payload = {
        "belief": {
            "belief_id": belief_id,
            "detector": detector,
            "detector_version": "1",
            "kind": "credential.stuffing",
            "subject": {"kind": "identity", "id": "carol"},
            "observation_ids": sorted(observations),
            "sources": sorted(set(observations.values())),
        }
    }
    return g.state.append_one(tenant, g.drafts.for_log(tenant, BELIEF_FORMED, payload, SENSOR))


def ticket(refs: dict[str, list[str]] | None = None, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant": "acme",
        "actor": {"id": "agent-1", "kind": "agent"},
        "action": "ticket.create",
        "target": "queue/soc",
        "safety_class": "A1",
        "params": {} if refs is None else {"evidence_refs": refs},
    }
    base.update(overrides)
    return base
