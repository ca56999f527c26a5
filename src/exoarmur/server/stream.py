"""One intent's events as they land, pushed as server-sent events until it settles.

A caller that got a 202 waits here instead of polling: each ledger event of
the intent is one SSE message (``id`` its seq, ``event`` its type, ``data``
its record), and the stream ends with an ``outcome`` message once the intent
no longer waits on ExoArmur (decided, denied, executed, rejected…; not while
pending approval or while its executor runs). ``Last-Event-ID`` resumes after
a seq. Who may read it is exactly who may read the intent's story.

The stream reads the store (any backend, any number of service processes
writing it), so the only clock here is the one between two reads: decisions
never wait on it. Open streams are bounded apart from ordinary reads, and a
stopping service ends them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..approvals import intent_state, is_due
from ..model.decision import Outcome, OutcomeStatus
from ..model.event import EXECUTION_OUTCOME_UNKNOWN, Event
from ..pipeline import Governor, outcome_from_events
from .access import Right, sees_intent
from .auth import CallerDep
from .bodies import JSONBodyRoute
from .intents import IntentIdPath, TenantPath
from .limits import InFlight
from .schemas import EventRecord, problems

router = APIRouter(prefix="/v1", tags=["intents"], route_class=JSONBodyRoute)

#: seconds between two reads of the store while an intent is unsettled
READ_INTERVAL: Final = 0.05
#: seconds between keep-alive comments, so proxies do not cut an idle stream
KEEP_ALIVE: Final = 15.0
#: open streams at once (each holds a connection, not a thread)
MAX_STREAMS: Final = 256


def settled(governor: Governor, events: list[Event]) -> Outcome | None:
    """The outcome once the intent no longer waits on ExoArmur; None while it does."""
    outcome = outcome_from_events(events)
    if outcome.status == OutcomeStatus.PENDING_APPROVAL:
        return None
    if outcome.status == OutcomeStatus.OUTCOME_UNKNOWN and not any(
        e.type == EXECUTION_OUTCOME_UNKNOWN for e in events
    ):
        return None  # started and not finished: it runs now
    if outcome.status == OutcomeStatus.APPROVED:
        action = events[0].payload["intent"]["action"]
        if governor.executors.executor_for(action) is not None:
            return None  # approved a moment ago; its executor starts next
    return outcome


def _streams(request: Request) -> InFlight:
    state = request.app.state
    slots: InFlight | None = getattr(state, "stream_slots", None)
    if slots is None:
        slots = state.stream_slots = InFlight(MAX_STREAMS, "event streams")
    return slots


def _message(event: Event) -> str:
    data = EventRecord.of(event).model_dump_json()
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"


def _resume_after(last_event_id: str | None) -> int:
    if last_event_id is not None and last_event_id.isdigit() and len(last_event_id) < 19:
        return int(last_event_id)
    return -1


def _read(governor: Governor, tenant: str, intent_id: str) -> list[Event]:
    events = governor.story(tenant, intent_id)
    state = intent_state(events)
    if is_due(state, governor.clock.now()):
        governor.expire_due(tenant)  # as listing pending approvals does
        events = governor.story(tenant, intent_id)
    return events


@router.get(
    "/tenants/{tenant}/intents/{intent_id}/events",
    summary="Follow one intent's events (server-sent events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: one message per ledger event "
            "(`id` seq, `event` type, `data` the event record), then `event: outcome` "
            "with the outcome once the intent settles.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **problems(401, 403, 404, 422, 429, 500, 503),
    },
)
def follow(
    tenant: TenantPath,
    intent_id: IntentIdPath,
    caller: CallerDep,
    request: Request,
    last_event_id: Annotated[
        str | None,
        Header(max_length=32, description="Resume after this seq (from a message's `id`)."),
    ] = None,
) -> StreamingResponse:
    """Events of one intent as they land; ends with its outcome once it settles.

    Agents follow only their own intents; another's answers 404, like a missing one.
    """
    caller.require(Right.READ_INTENTS, tenant)
    governor = caller.governor
    events = _read(governor, tenant, intent_id)
    if not sees_intent(caller.principal, intent_state(events).intent.actor.id):
        caller.hide(tenant, intent_id)
    slots = _streams(request)
    slots.enter()
    after = _resume_after(last_event_id)

    async def messages() -> AsyncIterator[str]:
        nonlocal events
        sent = after
        quiet = 0.0
        try:
            while True:
                for event in events:
                    if event.seq > sent:
                        yield _message(event)
                        sent = event.seq
                        quiet = 0.0
                outcome = settled(governor, events)
                if outcome is not None:
                    yield f"event: outcome\ndata: {outcome.model_dump_json()}\n\n"
                    return
                if request.app.state.stopping or await request.is_disconnected():
                    return
                await asyncio.sleep(READ_INTERVAL)
                quiet += READ_INTERVAL
                if quiet >= KEEP_ALIVE:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                events = await run_in_threadpool(_read, governor, tenant, intent_id)
        finally:
            slots.leave()

    return StreamingResponse(
        messages(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
