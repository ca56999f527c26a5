"""Records observations (and the beliefs detectors form on them) for the evidence tests.

Everything goes through the governor's observation desk, as ``exoarmur observe``
does: replay re-derives every belief from its observations, so a test never
appends a ``belief.formed`` of its own.
"""

from __future__ import annotations

from typing import Any

from exoarmur.clock import StepClock
from exoarmur.gate import GateConfig
from exoarmur.ids import SeededIds
from exoarmur.ledger.log import Ledger
from exoarmur.observations import parse_observation
from exoarmur.observations.intake import Batch, desk_of
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


def observation(observation_id: str, source: str, kind: str) -> dict[str, Any]:
    return {
        "observation_id": observation_id,
        "source": source,
        "subject": {"kind": "identity", "id": "carol"},
        "kind": kind,
        "attributes": {},
        "event_time": "2026-11-30T08:00:00Z",
    }


def observe(
    g: Governor, tenant: str, observation_id: str, source: str, kind: str = "login.failed"
) -> Batch:
    """Record one observation about identity carol (no shipped detector forms a belief on one).

    The batch's ``released`` names the intents this evidence released.
    """
    return desk_of(g).record(
        tenant, [parse_observation(observation(observation_id, source, kind))], SENSOR
    )


def believe(g: Governor, tenant: str, detector: str, observations: dict[str, str]) -> str:
    """Record ``observations`` (id -> source); ``detector`` forms one belief on them all.

    The detector is a configured threshold rule that fires on exactly this many
    ``credential.probe`` observations; returns the belief id it derived.
    """
    rule = {
        "name": detector,
        "type": "threshold",
        "match": "credential.probe",
        "threshold": len(observations),
        "window_seconds": 3600,
        "belief": "credential.stuffing",
    }
    batch = [
        parse_observation(observation(oid, source, "credential.probe"))
        for oid, source in sorted(observations.items())
    ]
    done = desk_of(g).record(tenant, batch, SENSOR, detectors={"rules": [rule]})
    (belief_id,) = done[-1].beliefs
    return belief_id


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
