"""Synthetic tenant logs for the memory tests: events with real canonical bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from exoarmur.containment.fold import change_for
from exoarmur.containment.model import ContainmentSpec, Scope
from exoarmur.ledger.merkle import leaf_hash
from exoarmur.model.event import Event, EventDraft, event_bytes

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
TENANT = "acme"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def log(items: list[tuple[Any, ...]]) -> list[Event]:
    """Events in order from ``(type, payload, intent_id, seconds after T0[, event_id])``."""
    found = []
    for seq, (kind, payload, intent_id, seconds, *named) in enumerate(items):
        when = at(seconds)
        draft = EventDraft(
            event_id=named[0] if named else f"01KDVD{seq:020d}",
            tenant=TENANT,
            type=kind,
            correlation_id=intent_id or f"c{seq}",
            event_time=when,
            process_time=when,
            actor={"id": "ops", "kind": "operator"},
            payload=payload,
            intent_id=intent_id,
        )
        canonical = event_bytes(draft, seq)
        found.append(Event.at(draft, seq, canonical, leaf_hash(canonical)))
    return found


def intent(intent_id: str, action: str, beliefs: list[str] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if beliefs is not None:
        params["evidence_refs"] = {"beliefs": beliefs}
    return {
        "intent": {
            "intent_id": intent_id,
            "tenant": TENANT,
            "actor": {"id": "soc-agent", "kind": "agent"},
            "action": action,
            "params": params,
        }
    }


def change(
    effector: str, scope: str, ttl: int, seconds: float, current: Any = None
) -> dict[str, Any]:
    kind, _, ident = scope.partition(":")
    spec = ContainmentSpec(effector, Scope(kind, ident), ttl, "standard")
    return change_for(current, spec, at(seconds))


def finished(effector: str, scope: str, ttl: int, seconds: float) -> dict[str, Any]:
    return {
        "executor": effector,
        "status": "succeeded",
        "result": {"containment": change(effector, scope, ttl, seconds)},
    }


def belief(belief_id: str, detector: str) -> dict[str, Any]:
    return {
        "belief": {
            "belief_id": belief_id,
            "detector": detector,
            "detector_version": "1",
            "kind": "suspicious_login",
            "subject": {"kind": "identity", "id": "alice"},
            "observation_ids": ["o1"],
            "sources": ["idp"],
        }
    }
