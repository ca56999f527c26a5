"""The runner: write before execute, re-check the gate, retry, record the outcome.

``execution.started`` is durable before the executor is called; the gate is
checked again right before the side effect and whatever it cannot check
blocks (fail closed). The executor comes out of the registry inside its
guard (:mod:`exoarmur.executors.guard`), so every failure arrives here as
one :class:`ExecutionFailed`: this room never inspects a foreign exception.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ..approvals.book import IntentState, intent_state
from ..encoding import content_hash
from ..errors import Conflict
from ..executors import ExecutionFailed, ExecutorRegistry
from ..executors.registry import Binding
from ..gate import recheck as gate_recheck
from ..model.decision import Decision, Outcome, OutcomeStatus
from ..model.event import (
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_RETRY,
    EXECUTION_STARTED,
    SYSTEM_LOG,
    EventDraft,
)
from ..model.intent import ActionIntent
from .drafts import Drafts
from .outcomes import read_story
from .state import ControlState

ERROR_TEXT_LIMIT = 2000
#: the control an execution.blocked names when the re-check itself failed
INTERNAL_ERROR = "internal:error"
#: how often a start is tried again when the intent moved on meanwhile
MAX_ATTEMPTS = 20

#: ``(intent, result)`` -> held until the outcome is recorded, giving the result as it
#: stands then (a room whose results derive from the ledger re-derives it at that position)
Settle = Callable[[ActionIntent, Any], AbstractContextManager[Any]]


class Runner:
    """Carries out allowed or approved intents through their bound executors."""

    def __init__(self, state: ControlState, drafts: Drafts, executors: ExecutorRegistry) -> None:
        self.state = state
        self.drafts = drafts
        self.executors = executors
        #: results are recorded as the executor gave them unless a room settles them
        self.settle: Settle = lambda _intent, result: nullcontext(result)

    def binding_for(self, action: str) -> Binding | None:
        return self.executors.binding_for(action)

    def blocked_now(
        self, intent: ActionIntent
    ) -> tuple[tuple[str, str] | None, dict[str, int] | None]:
        """The gate again, right before a side effect: kill switches, unreadable controls.

        Returns the verdict and the positions it read (recorded with the outcome).
        Never raises: if the control state cannot even be read, that is a block
        (with no positions, since none were read), never a start.
        """
        try:
            with self.state.lock:
                system, tenant = self.state.folds(SYSTEM_LOG, intent.tenant)
                positions = {"system": system.position, "tenant": tenant.position}
                return gate_recheck(intent, system, tenant), positions
        except Exception as exc:  # fail closed: what we cannot check does not run
            failure = f"the re-check failed ({type(exc).__name__}: {exc})"[:ERROR_TEXT_LIMIT]
            return (INTERNAL_ERROR, failure), None

    def start_draft(self, intent: ActionIntent, intent_hash: str, binding: Binding) -> EventDraft:
        return self.drafts.for_intent(
            intent,
            EXECUTION_STARTED,
            {
                "executor": binding.executor.kind,
                "binding": binding.pattern,
                "intent_hash": intent_hash,
            },
        )

    def blocked_draft(
        self,
        intent: ActionIntent,
        intent_hash: str,
        blocked: tuple[str, str],
        checked_at: dict[str, int] | None,
    ) -> EventDraft:
        control, reason = blocked
        payload: dict[str, Any] = {
            "control": control,
            "reason": reason,
            "intent_hash": intent_hash,
        }
        if checked_at is not None:
            payload["controls"] = checked_at
        return self.drafts.for_intent(intent, EXECUTION_BLOCKED, payload)

    @staticmethod
    def blocked_outcome(
        intent: ActionIntent, decision: Decision, executor: str, blocked: tuple[str, str]
    ) -> Outcome:
        control, reason = blocked
        return Outcome(
            intent_id=intent.intent_id,
            tenant=intent.tenant,
            correlation_id=intent.correlation_id,
            status=OutcomeStatus.BLOCKED,
            decision=decision,
            executor=executor,
            error=f"blocked by {control}: {reason}",
        )

    def execute(
        self, intent: ActionIntent, intent_hash: str, decision: Decision, binding: Binding
    ) -> Outcome:
        """Run a started intent: attempts until one is recorded as its outcome."""
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(intent, intent_hash, decision, binding, attempt)
            if outcome is not None:
                return outcome

    def _attempt(
        self,
        intent: ActionIntent,
        intent_hash: str,
        decision: Decision,
        binding: Binding,
        attempt: int,
    ) -> Outcome | None:
        """One attempt at the side effect; None means: record done, try again."""
        executor = binding.executor
        blocked, checked_at = self.blocked_now(intent)
        if blocked is not None:
            self.state.append(
                intent.tenant, [self.blocked_draft(intent, intent_hash, blocked, checked_at)]
            )
            return self.blocked_outcome(intent, decision, executor.kind, blocked)
        result: Any = None
        result_hash = ""
        error: str | None = None
        try:
            with self.state.observers.timed("execute"):
                result, result_hash = executor.call(intent)
        except ExecutionFailed as exc:
            error = str(exc)
            if exc.retryable and attempt <= binding.retries:
                retry = {
                    "attempt": attempt,
                    "of": binding.retries + 1,
                    "error": error[:ERROR_TEXT_LIMIT],
                    "intent_hash": intent_hash,
                    "controls": checked_at,
                }
                self.state.append(
                    intent.tenant, [self.drafts.for_intent(intent, EXECUTION_RETRY, retry)]
                )
                return None
            result = None
        payload: dict[str, Any] = {
            "executor": executor.kind,
            "intent_hash": intent_hash,
            "attempt": attempt,
            "controls": checked_at,
        }
        with self.settle(intent, result) if error is None else nullcontext(None) as settled:
            if error is None:
                if settled is not result:
                    result, result_hash = settled, content_hash(settled)
                payload.update(status="succeeded", result=result, result_hash=result_hash)
            else:
                payload.update(status="failed", error=error[:ERROR_TEXT_LIMIT])
            self.state.append(
                intent.tenant, [self.drafts.for_intent(intent, EXECUTION_FINISHED, payload)]
            )
        return Outcome(
            intent_id=intent.intent_id,
            tenant=intent.tenant,
            correlation_id=intent.correlation_id,
            status=OutcomeStatus.EXECUTED if error is None else OutcomeStatus.FAILED,
            decision=decision,
            executor=executor.kind,
            result=result if error is None else None,
            result_hash=payload.get("result_hash"),
            error=payload.get("error"),
        )

    def start_approved(self, state: IntentState) -> Outcome | None:
        """Start and run an approved intent, at most once whoever calls.

        Returns None when there is nothing to run here: no executor is bound
        (the caller carries it out), or someone else already started it.
        """
        binding = self.binding_for(state.intent.action)
        if binding is None:
            return None
        intent = state.intent
        for _ in range(MAX_ATTEMPTS):
            # Re-check before the start is written, so that a block (or an error
            # in the check) is recorded as what happened: never a start for an
            # action nobody attempted.
            blocked, checked_at = self.blocked_now(intent)
            draft = (
                self.start_draft(intent, state.intent_hash, binding)
                if blocked is None
                else self.blocked_draft(intent, state.intent_hash, blocked, checked_at)
            )
            try:
                self.state.append(intent.tenant, [draft], expect=(intent.intent_id, state.last_seq))
            except Conflict:
                # Something was recorded meanwhile (a late vote's refusal, or
                # another process's start): start only if nobody has.
                events = read_story(self.state.ledger, intent.tenant, intent.intent_id)
                if any(e.type in (EXECUTION_STARTED, EXECUTION_BLOCKED) for e in events):
                    return None
                state = intent_state(events)
                continue
            if blocked is not None:
                return self.blocked_outcome(intent, state.decision, binding.executor.kind, blocked)
            return self.execute(intent, state.intent_hash, state.decision, binding)
        raise Conflict(f"intent {intent.intent_id} kept changing; recovery will start it")
