"""Memory at the edge: snapshots read from the ledger, advice recorded, advice applied by a person.

The only writes are ``memory.recommendation`` (advice, which changes no
decision, posture or control) and, through :func:`apply_recommendation`,
a posture change made by the governed posture path under an authenticated
principal's name, then ``memory.recommendation.applied``. That function has
one caller, the ``exoarmur memory apply`` command; a test holds it so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import DuplicateIntent, InputError, NotFound
from ..gate import parse_scope
from ..governor.drafts import operator
from ..governor.switches import required_reason
from ..ledger.store import LedgerStore
from ..model.event import (
    MEMORY_RECOMMENDATION,
    MEMORY_RECOMMENDATION_APPLIED,
    POSTURE_SET,
    SYSTEM_LOG,
    Event,
)
from ..pipeline import Governor
from ..principals import Principal
from .advice import Recommendation, parse_recorded, raises, recommend
from .snapshot import MemorySnapshotV1, fold


def snapshot_at(store: LedgerStore, tenant: str, at: int | None = None) -> MemorySnapshotV1:
    """The memory of ``tenant``'s first ``at`` events (all of them when None)."""
    if tenant == SYSTEM_LOG or tenant not in store.tenants():
        raise NotFound(f"tenant: no log for tenant {tenant!r}")
    size = store.size(tenant)
    if at is not None and not 0 <= at <= size:
        raise InputError(f"at: must be a position from 0 to {size} (the log's size), not {at}")
    return fold(tenant, store.events(tenant, 0, size if at is None else at)).snapshot()


@dataclass(frozen=True)
class Recorded:
    """A recorded recommendation and, if a person applied it, that record."""

    event: Event
    recommendation: dict[str, Any]
    applied: Event | None

    def to_json(self) -> dict[str, Any]:
        return self.recommendation | {
            "event_id": self.event.event_id,
            "recorded_at": self.event.to_json()["process_time"],
            "applied": None if self.applied is None else self.applied.payload,
        }


def recorded(store: LedgerStore, tenant: str) -> list[Recorded]:
    """Every recommendation recorded in ``tenant``'s log, oldest first, with its application."""
    found: dict[str, Event] = {}
    applied: dict[str, Event] = {}
    for event in store.events(tenant, 0, store.size(tenant)):
        if event.type == MEMORY_RECOMMENDATION:
            found.setdefault(event.payload["recommendation"]["recommendation_id"], event)
        elif event.type == MEMORY_RECOMMENDATION_APPLIED:
            applied.setdefault(event.payload["recommendation_id"], event)
    return [
        Recorded(event, event.payload["recommendation"], applied.get(rec_id))
        for rec_id, event in found.items()
    ]


def _authorize(governor: Governor, principal: Principal, tenant: str, what: str) -> None:
    governor.switches.authorize(principal, parse_scope(f"tenant:{tenant}"), what)


def record_recommendations(
    governor: Governor, tenant: str, principal: Principal
) -> tuple[MemorySnapshotV1, list[Recommendation], list[Event]]:
    """Draw advice from the tenant's memory now and record what is not recorded yet.

    Idempotent per snapshot: recommendation ids derive from the snapshot hash,
    and the store keeps one record per id, so running it again (or twice at
    once) records nothing new.
    """
    _authorize(governor, principal, tenant, "record memory recommendations for")
    store = governor.ledger.store
    snapshot = snapshot_at(store, tenant)
    made = recommend(snapshot)
    known = {r.recommendation["recommendation_id"] for r in recorded(store, tenant)}
    events = []
    for rec in made:
        if rec.recommendation_id in known:
            continue
        draft = governor.drafts.for_log(
            tenant,
            MEMORY_RECOMMENDATION,
            {"recommendation": rec.to_json()},
            operator(principal.name),
            idempotency_key=f"memory recommendation {rec.recommendation_id}",
        )
        try:
            events.append(governor.state.append_one(tenant, draft))
        except DuplicateIntent:
            continue  # another writer recorded it first: one record is all there is
    return snapshot, made, events


def apply_recommendation(
    governor: Governor, tenant: str, recommendation_id: str, principal: Principal, reason: str
) -> tuple[Event, Event]:
    """Apply one recorded recommendation as ``principal``: the governed change, then its record.

    Only posture recommendations can be applied, and only while they still
    raise the posture in force: advice never lowers anything. A TTL is chosen
    per action, so a TTL recommendation is for the person writing the next
    plan or policy, and applying it is refused. Returns (change, applied).
    """
    reason = required_reason(reason)
    store = governor.ledger.store
    if tenant == SYSTEM_LOG or tenant not in store.tenants():
        raise NotFound(f"tenant: no log for tenant {tenant!r}")
    entry = next(
        (
            r
            for r in recorded(store, tenant)
            if r.recommendation["recommendation_id"] == recommendation_id
        ),
        None,
    )
    if entry is None:
        raise NotFound(f"recommendation: no {recommendation_id!r} recorded in tenant {tenant!r}")
    rec = parse_recorded(entry.event.payload)
    if entry.applied is not None:
        raise InputError(
            f"recommendation: {recommendation_id} was applied already "
            f"(event {entry.applied.event_id})"
        )
    if rec["kind"] != "posture":
        raise InputError(
            f"recommendation: {recommendation_id} is advice for whoever writes the next plan "
            "or policy (a TTL is chosen per action); there is nothing to apply"
        )
    _authorize(governor, principal, tenant, "apply memory recommendations for")
    marker = f"memory recommendation {recommendation_id}"
    change = _earlier_change(store, tenant, marker)
    if change is None:
        suggested = str(rec["suggestion"]["posture"])
        current = governor.posture(tenant)["posture"]
        if not raises(current, suggested):
            raise InputError(
                f"recommendation: {recommendation_id} suggests {suggested}, which would not "
                f"raise tenant {tenant}'s posture ({current}); nothing applied"
            )
        change = governor.set_posture(
            tenant,
            suggested,
            f"{marker}: {reason}",
            principal,
            int(rec["suggestion"]["ttl_seconds"]),
        )
    payload = {
        "recommendation_id": recommendation_id,
        "principal": principal.name,
        "reason": reason,
        "applied_as": {"type": change.type, "event_id": change.event_id},
    }
    draft = governor.drafts.for_log(
        tenant,
        MEMORY_RECOMMENDATION_APPLIED,
        payload,
        operator(principal.name),
        idempotency_key=f"memory applied {recommendation_id}",
    )
    # the application joins the recommendation's audit stream
    draft = replace(draft, correlation_id=entry.event.correlation_id)
    return change, governor.state.append_one(tenant, draft)


def _earlier_change(store: LedgerStore, tenant: str, marker: str) -> Event | None:
    """A posture change a cut-short earlier apply made (its reason names the recommendation)."""
    for event in store.events(tenant, 0, store.size(tenant)):
        if event.type == POSTURE_SET and str(event.payload.get("reason", "")).startswith(
            marker + ":"
        ):
            return event
    return None
