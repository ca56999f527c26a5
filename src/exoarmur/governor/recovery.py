"""Recovery: finish what a stopped process left, and record what a run is.

An intent approved but never started is started now (at most once, through
the runner). An execution started and never finished is recorded as
``outcome_unknown``: its side effect may or may not have happened, so it is
never run again. Recovery is only safe when no other process executes on
this ledger; the data directory's run lock (see ``home``) ensures that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..approvals.book import intent_state
from ..errors import DuplicateIntent
from ..model.decision import Outcome
from ..model.event import (
    EXECUTION_BLOCKED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_STARTED,
    INTENT_APPROVED,
    RUN_STARTED,
    SERVICE_CONFIGURED,
    SYSTEM_LOG,
    Event,
    EventDraft,
    idempotency_key_of,
)
from ..model.intent import SYSTEM_ACTOR
from .drafts import Drafts, operator
from .outcomes import outcome_from_events, read_story
from .running import Runner
from .state import ControlState


class Recovery:
    """Restarts approved intents, marks cut executions, records runs and services."""

    def __init__(self, state: ControlState, drafts: Drafts, runner: Runner) -> None:
        self.state = state
        self.drafts = drafts
        self.runner = runner

    def recover(self) -> list[Outcome]:
        store = self.state.ledger.store
        recovered = []
        ledger = self.state.ledger
        for tenant in self._tenants():
            # Each acts on an event's absence: the story is read whole from the log first.
            for intent_id in store.intents_with(
                tenant, INTENT_APPROVED, (EXECUTION_STARTED, EXECUTION_BLOCKED)
            ):
                story = ledger.complete_story(tenant, intent_id)
                outcome = self.runner.start_approved(intent_state(story))
                if outcome is not None:
                    recovered.append(outcome)
            for intent_id in store.unfinished_executions(tenant):
                if _reported_by_caller(ledger.complete_story(tenant, intent_id)):
                    continue  # its caller carries it out and reports its end, not this process
                recovered.append(self._mark_unknown(tenant, intent_id))
        return recovered

    def _tenants(self) -> Iterator[str]:
        return (t for t in self.state.ledger.store.tenants() if t != SYSTEM_LOG)

    def _mark_unknown(self, tenant: str, intent_id: str) -> Outcome:
        events = read_story(self.state.ledger, tenant, intent_id)
        started = next(e for e in events if e.type == EXECUTION_STARTED)
        now = self.drafts.now()
        self.state.ledger.append(
            tenant,
            [
                EventDraft(
                    event_id=self.drafts.ids.new(now),
                    tenant=tenant,
                    type=EXECUTION_OUTCOME_UNKNOWN,
                    correlation_id=started.correlation_id,
                    event_time=now,
                    process_time=now,
                    actor=SYSTEM_ACTOR.to_canonical(),
                    payload={
                        "reason": "execution started and never finished "
                        "(the process stopped); not re-run",
                        "started_event_id": started.event_id,
                        "executor": started.payload.get("executor"),
                    },
                    intent_id=intent_id,
                )
            ],
        )
        return outcome_from_events(read_story(self.state.ledger, tenant, intent_id))

    def record_once(self, event_type: str, settings: Mapping[str, Any]) -> Event | None:
        """Record ``settings`` in the system log once per distinct value (a run, a service)."""
        key = idempotency_key_of(event_type, dict(settings))
        store = self.state.ledger.store
        if key is not None and store.intent_for_key(SYSTEM_LOG, key) is not None:
            return None
        draft = self.drafts.for_log(
            SYSTEM_LOG, event_type, dict(settings), operator("exoarmur"), idempotency_key=key
        )
        try:
            return self.state.append_one(SYSTEM_LOG, draft)
        except DuplicateIntent:
            return None

    def record_run(self, settings: Mapping[str, Any]) -> Event | None:
        return self.record_once(RUN_STARTED, settings)

    def record_service(self, settings: Mapping[str, Any]) -> Event | None:
        return self.record_once(SERVICE_CONFIGURED, settings)


def _reported_by_caller(events: list[Event]) -> bool:
    """Whether the execution was started by its caller (``exoarmur.reported``), not here."""
    started = next(e for e in events if e.type == EXECUTION_STARTED)
    return started.payload.get("executor") == "caller"
