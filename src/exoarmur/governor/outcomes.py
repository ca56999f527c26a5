"""An intent's outcome and story, as the ledger tells them (reads only)."""

from __future__ import annotations

from typing import Any

from ..errors import NotFound
from ..evidence_levels import EVIDENCE_SATISFIED
from ..ledger.log import Ledger
from ..model.decision import Decision, Outcome, OutcomeStatus, Verdict
from ..model.event import (
    DECISION_RECORDED,
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_STARTED,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    INTENT_RECORDED,
    INTENT_REJECTED,
    Event,
)

#: the outcome of a decision nothing happened after yet
VERDICT_STATUS = {
    Verdict.ALLOW: OutcomeStatus.DECIDED,
    Verdict.DENY: OutcomeStatus.DENIED,
    Verdict.REQUIRE_APPROVAL: OutcomeStatus.PENDING_APPROVAL,
    Verdict.PENDING_EVIDENCE: OutcomeStatus.PENDING_EVIDENCE,
}


def read_story(ledger: Ledger, tenant: str, intent_id: str) -> list[Event]:
    """Every event of one intent, in order; an unknown intent is :class:`NotFound`."""
    events = ledger.store.events_for_intent(tenant, intent_id)
    if not events:
        raise NotFound(f"no intent {intent_id!r} in tenant {tenant!r}")
    return events


def outcome_from_events(events: list[Event], duplicate: bool = False) -> Outcome:
    """Rebuild an intent's outcome from its ledger events."""
    by_type = {event.type: event for event in events}
    recorded = by_type.get(INTENT_RECORDED)
    decided = by_type.get(DECISION_RECORDED)
    if recorded is None or decided is None:
        raise NotFound("intent has no recorded decision")
    intent = recorded.payload["intent"]
    decision = Decision.from_canonical(decided.payload["decision"])
    fields: dict[str, Any]
    if EXECUTION_FINISHED in by_type:
        finished = by_type[EXECUTION_FINISHED].payload
        succeeded = finished["status"] == "succeeded"
        fields = {
            "status": OutcomeStatus.EXECUTED if succeeded else OutcomeStatus.FAILED,
            "executor": finished["executor"],
            "result": finished.get("result"),
            "result_hash": finished.get("result_hash"),
            "error": finished.get("error"),
        }
    elif EXECUTION_BLOCKED in by_type:
        blocked = by_type[EXECUTION_BLOCKED].payload
        fields = {
            "status": OutcomeStatus.BLOCKED,
            "error": f"blocked by {blocked['control']}: {blocked['reason']}",
        }
    elif EXECUTION_OUTCOME_UNKNOWN in by_type:
        fields = {
            "status": OutcomeStatus.OUTCOME_UNKNOWN,
            "executor": by_type[EXECUTION_OUTCOME_UNKNOWN].payload.get("executor"),
            "error": by_type[EXECUTION_OUTCOME_UNKNOWN].payload["reason"],
        }
    elif EXECUTION_STARTED in by_type:
        # Started and not finished: running now, or the process died and
        # recovery has not run yet. Either way: not known.
        fields = {
            "status": OutcomeStatus.OUTCOME_UNKNOWN,
            "executor": by_type[EXECUTION_STARTED].payload["executor"],
        }
    elif INTENT_APPROVED in by_type:
        fields = {"status": OutcomeStatus.APPROVED}
    elif INTENT_REJECTED in by_type:
        fields = {
            "status": OutcomeStatus.REJECTED,
            "error": by_type[INTENT_REJECTED].payload["reason"],
        }
    elif INTENT_EXPIRED in by_type:
        fields = {"status": OutcomeStatus.EXPIRED}
    elif EVIDENCE_SATISFIED in by_type:
        then = Verdict(by_type[EVIDENCE_SATISFIED].payload["verdict"])
        fields = {"status": VERDICT_STATUS[then]}
    else:
        fields = {"status": VERDICT_STATUS[decision.verdict]}
    return Outcome(
        intent_id=intent["intent_id"],
        tenant=intent["tenant"],
        correlation_id=intent["correlation_id"],
        decision=decision,
        duplicate=duplicate,
        **fields,
    )
