"""Actions the caller carries out: their start and their end, recorded as it reports them.

An intent allowed (or approved) with no executor bound is carried out by
whoever submitted it. Write-before-execute still holds: the caller asks to
start, the gate is checked again and ``execution.started`` is durable before
the answer says go; then the caller reports how it ended and
``execution.finished`` (status, result hash) completes the story. Each step
is appended with a precondition on the intent's last event, so two racing
reports record one start and one end.

Only the actor that submitted the intent may report on it, and only once.
Nothing here reads the wall clock for a decision: the times recorded are the
governor's clock, as for every other event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from .approvals import intent_state
from .encoding import canonical_bytes, content_hash
from .errors import Conflict, InputError, PermissionDenied
from .model.decision import Outcome, OutcomeStatus
from .model.event import (
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_STARTED,
    Event,
    EventDraft,
)
from .model.intent import ActionIntent
from .pipeline import Governor, outcome_from_events

#: the executor a caller-executed action is recorded under
CALLER: Final = "caller"
#: how long an error text may be in the record (as for executors' errors)
MAX_ERROR_CHARS: Final = 2000
_ATTEMPTS: Final = 20

ReportedStatus = Literal["succeeded", "failed"]

_WHY_NOT = {
    OutcomeStatus.DENIED: "it was denied; it never runs",
    OutcomeStatus.PENDING_APPROVAL: "it waits for approval; start it once it is approved",
    OutcomeStatus.PENDING_EVIDENCE: "it waits for evidence; start it once it is released",
    OutcomeStatus.BLOCKED: "it was blocked by the safety gate; it never runs",
    OutcomeStatus.REJECTED: "it was rejected by an approver; it never runs",
    OutcomeStatus.EXPIRED: "its approval window closed; it never runs",
    OutcomeStatus.EXECUTED: "it has already run",
    OutcomeStatus.FAILED: "it has already run",
    OutcomeStatus.OUTCOME_UNKNOWN: "it has already started",
}


@dataclass(frozen=True)
class Started:
    """What a start request did: the go-ahead, or the gate's block (recorded either way)."""

    outcome: Outcome
    #: the execution.started event when the caller may go ahead; None when blocked
    event: Event | None

    @property
    def go(self) -> bool:
        return self.event is not None


def _reporter(state_actor: str, actor: str, intent_id: str) -> None:
    if actor != state_actor:
        raise PermissionDenied(
            f"only {state_actor!r}, who submitted intent {intent_id}, may report on it"
        )


def _draft(
    governor: Governor,
    intent: ActionIntent,
    event_type: str,
    payload: dict[str, Any],
) -> EventDraft:
    now = governor.clock.now()
    return EventDraft(
        event_id=governor.ids.new(now),
        tenant=intent.tenant,
        type=event_type,
        correlation_id=intent.correlation_id,
        event_time=now,
        process_time=now,
        actor=intent.actor.to_canonical(),
        payload=payload,
        intent_id=intent.intent_id,
    )


def start(
    governor: Governor, tenant: str, intent_id: str, actor: str, *, executor: str = CALLER
) -> Started:
    """Record ``execution.started`` for a caller-executed intent, after the gate's re-check.

    Raises :class:`PermissionDenied` for anyone but the submitter and
    :class:`Conflict` (naming why) when the intent may not start: not allowed,
    not yet approved, already started, or an executor is bound to its action.
    A kill switch engaged since the decision records ``execution.blocked`` and
    answers it (``go`` is false): the caller must not act.

    ``executor`` names who acts: ``caller`` (a remote caller, whose action a
    restart of this process does not cut: recovery leaves it to be reported)
    or the in-process runner's kind (recovery marks it ``outcome_unknown``).
    """
    for _ in range(_ATTEMPTS):
        events = governor.story(tenant, intent_id)
        state = intent_state(events)
        intent = state.intent
        _reporter(intent.actor.id, actor, intent_id)
        outcome = outcome_from_events(events)
        if outcome.status not in (OutcomeStatus.DECIDED, OutcomeStatus.APPROVED):
            raise Conflict(f"intent {intent_id} may not start: {_WHY_NOT[outcome.status]}")
        if governor.executors.executor_for(intent.action) is not None:
            raise Conflict(
                f"intent {intent_id} may not start: an executor is bound to {intent.action!r}, "
                "so ExoArmur carries it out"
            )
        # The same re-check an executor gets right before its side effect.
        blocked, checked_at = governor.runner.blocked_now(intent)
        # No binding: no executor is bound; replay knows a caller's start by it.
        payload: dict[str, Any] = {
            "executor": executor,
            "binding": None,
            "intent_hash": state.intent_hash,
        }
        if checked_at is not None:
            payload["controls"] = checked_at
        if blocked is None:
            draft = _draft(governor, intent, EXECUTION_STARTED, payload)
        else:
            control, reason = blocked
            draft = _draft(
                governor,
                intent,
                EXECUTION_BLOCKED,
                payload | {"control": control, "reason": reason},
            )
        try:
            (event,) = governor.ledger.append(tenant, [draft], expect=(intent_id, events[-1].seq))
        except Conflict:
            continue  # something landed meanwhile: rule again on what is recorded now
        return Started(
            outcome=governor.outcome(tenant, intent_id), event=event if blocked is None else None
        )
    raise Conflict(f"intent {intent_id} kept changing; report its start again")


def finish(
    governor: Governor,
    tenant: str,
    intent_id: str,
    actor: str,
    status: ReportedStatus,
    *,
    result: Any = None,
    error: str | None = None,
) -> Outcome:
    """Record ``execution.finished`` for a caller-executed intent that started; once.

    ``result`` (any JSON) is recorded with its hash when it succeeded;
    ``error`` (required) says why when it failed.
    """
    if status == "succeeded":
        if error is not None:
            raise InputError("error: only a failed execution carries an error")
        try:
            canonical_bytes(result)  # refuses what cannot be hashed, before anything is read
        except InputError as exc:
            raise InputError(f"result: {exc}") from None
        ending: dict[str, Any] = {
            "status": status,
            "result": result,
            "result_hash": content_hash(result),
        }
    elif status == "failed":
        if result is not None:
            raise InputError("result: only a succeeded execution carries a result")
        text = (error or "").strip()
        if not text:
            raise InputError("error: is required when the execution failed (say why)")
        ending = {"status": status, "error": text[:MAX_ERROR_CHARS]}
    else:
        raise InputError(f"status: must be succeeded or failed, not {status!r}")
    for _ in range(_ATTEMPTS):
        events = governor.story(tenant, intent_id)
        intent = intent_state(events).intent
        _reporter(intent.actor.id, actor, intent_id)
        started = _caller_start(events, intent_id)
        payload = {
            "executor": started.payload["executor"],
            "intent_hash": started.payload["intent_hash"],
            "attempt": 1,
            "controls": started.payload.get("controls"),
        } | ending
        draft = _draft(governor, intent, EXECUTION_FINISHED, payload)
        try:
            governor.ledger.append(tenant, [draft], expect=(intent_id, events[-1].seq))
        except Conflict:
            continue
        return governor.outcome(tenant, intent_id)
    raise Conflict(f"intent {intent_id} kept changing; report its outcome again")


def _caller_start(events: list[Event], intent_id: str) -> Event:
    """The caller's recorded start, if the intent may still be reported as finished."""
    kinds: Mapping[str, Event] = {event.type: event for event in events}
    if EXECUTION_FINISHED in kinds:
        raise Conflict(f"intent {intent_id}: its outcome is already recorded")
    if EXECUTION_OUTCOME_UNKNOWN in kinds:
        raise Conflict(
            f"intent {intent_id}: recorded as outcome_unknown (the service stopped while it ran)"
        )
    started = kinds.get(EXECUTION_STARTED)
    if started is None:
        status = outcome_from_events(list(events)).status
        why = _WHY_NOT.get(status, "it has not started: report its start first")
        if status in (OutcomeStatus.DECIDED, OutcomeStatus.APPROVED):
            why = "it has not started: report its start first"
        raise Conflict(f"intent {intent_id} has no outcome to report: {why}")
    if "binding" not in started.payload or started.payload["binding"] is not None:
        raise Conflict(f"intent {intent_id} is carried out by ExoArmur, not by its caller")
    return started
