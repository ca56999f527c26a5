"""Event drafts: the one place that stamps events with a time and an id.

Every time comes from the injected clock and every id from the injected
generator, so a deterministic run (``StepClock`` + ``SeededIds``) writes the
same bytes every time. Nothing here appends or reads the ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..clock import Clock
from ..ids import IdGenerator
from ..model.event import EventDraft
from ..model.intent import SYSTEM_ACTOR, ActionIntent


def operator(name: str) -> dict[str, str]:
    return {"id": name, "kind": "operator"}


class Drafts:
    """Builds event drafts from the clock and the id generator it holds."""

    def __init__(self, clock: Clock, ids: IdGenerator) -> None:
        self.clock = clock
        self.ids = ids

    def now(self) -> datetime:
        return self.clock.now()

    def for_intent(
        self,
        intent: ActionIntent,
        event_type: str,
        payload: dict[str, Any],
        *,
        actor: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        event_time: datetime | None = None,
        at: datetime | None = None,
    ) -> EventDraft:
        """An event of one intent, in the intent's tenant and correlation."""
        now = at or self.clock.now()
        return EventDraft(
            event_id=self.ids.new(now),
            tenant=intent.tenant,
            type=event_type,
            correlation_id=intent.correlation_id,
            event_time=event_time or now,
            process_time=now,
            actor=actor or SYSTEM_ACTOR.to_canonical(),
            payload=payload,
            intent_id=intent.intent_id,
            idempotency_key=idempotency_key,
        )

    def for_log(
        self,
        log: str,
        event_type: str,
        payload: dict[str, Any],
        actor: dict[str, str],
        *,
        idempotency_key: str | None = None,
        at: datetime | None = None,
    ) -> EventDraft:
        """An event of no intent (a control, a principal, a run): its own correlation."""
        now = at or self.clock.now()
        event_id = self.ids.new(now)
        return EventDraft(
            event_id=event_id,
            tenant=log,
            type=event_type,
            correlation_id=event_id,
            event_time=now,
            process_time=now,
            actor=actor,
            payload=payload,
            idempotency_key=idempotency_key,
        )
