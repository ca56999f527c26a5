"""The one path from intent to side effect.

    ingest ─ duplicate? ─► the first outcome, nothing new written
    decide   (policy, pure)
    record   intent.recorded + decision.recorded [+ execution.started]   one durable append
    execute  only when allowed and an executor is bound; the side effect
             happens strictly after execution.started is durable
    record   execution.finished (status, result hash)

Every event's time comes from the injected clock and every id from the
injected generator, so a deterministic run (``StepClock`` + ``SeededIds``)
writes the same bytes every time. An execution that was started and never
finished (the process died) is reported as ``outcome_unknown`` by
:meth:`Governor.recover`, never silently run again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from .clock import Clock
from .encoding import canonical_bytes, content_hash
from .errors import DuplicateIntent, InputError, NotFound
from .executors import CallableExecutor, ExecutionFailed, Executor, ExecutorRegistry
from .ids import IdGenerator
from .ledger.log import Ledger
from .model.decision import Decision, Outcome, OutcomeStatus, Verdict
from .model.event import (
    DECISION_RECORDED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_STARTED,
    INTENT_RECORDED,
    RUN_STARTED,
    SYSTEM_LOG,
    Event,
    EventDraft,
)
from .model.intent import (
    SYSTEM_ACTOR,
    ActionIntent,
    IntentRequest,
    derive_idempotency_key,
    parse_intent,
)
from .policy.engine import PolicyEngine

_ERROR_TEXT_LIMIT = 2000


class Governor:
    """Governs intents: decide, record, execute, record. Thread-safe.

    Build one with :func:`exoarmur.home.open_governor` for a data directory,
    or directly from its parts (tests, embedding).
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: PolicyEngine,
        executors: ExecutorRegistry | None = None,
        clock: Clock,
        ids: IdGenerator,
    ) -> None:
        self.ledger = ledger
        self.policy = policy
        self.executors = executors if executors is not None else ExecutorRegistry()
        self.clock = clock
        self.ids = ids
        self._close_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- public API -------------------------------------------------------

    def submit(self, intent: IntentRequest | Mapping[str, Any]) -> Outcome:
        """Govern one intent with the executor bound to its action (if any)."""
        request = intent if isinstance(intent, IntentRequest) else parse_intent(dict(intent))
        return self._govern(request, None)

    def run(
        self, intent: IntentRequest | Mapping[str, Any], fn: Callable[[ActionIntent], Any]
    ) -> Outcome:
        """Govern a Python call: ``fn(intent)`` runs only if the intent is allowed."""
        request = intent if isinstance(intent, IntentRequest) else parse_intent(dict(intent))
        return self._govern(request, ("python-call", CallableExecutor(fn)))

    def outcome(self, tenant: str, intent_id: str, *, duplicate: bool = False) -> Outcome:
        """An intent's outcome as the ledger tells it."""
        return outcome_from_events(
            self.ledger.store.events_for_intent(tenant, intent_id), duplicate
        )

    def recover(self) -> list[Outcome]:
        """Record ``outcome_unknown`` for executions started and never finished.

        Only safe when no other process is executing on this ledger; the data
        directory's run lock (see ``home``) ensures that.
        """
        recovered = []
        for tenant in self.ledger.store.tenants():
            for intent_id in self.ledger.store.unfinished_executions(tenant):
                events = self.ledger.store.events_for_intent(tenant, intent_id)
                started = next(e for e in events if e.type == EXECUTION_STARTED)
                now = self.clock.now()
                self.ledger.append(
                    tenant,
                    [
                        EventDraft(
                            event_id=self.ids.new(now),
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
                recovered.append(self.outcome(tenant, intent_id))
        return recovered

    def record_run(self, settings: Mapping[str, Any]) -> Event | None:
        """Record how this run makes time and ids (e.g. a deterministic seed).

        Goes to the system log, once per distinct settings: running the same
        deterministic scenario again records nothing new.
        """
        key = "run:" + content_hash(dict(settings))
        if self.ledger.store.intent_for_key(SYSTEM_LOG, key) is not None:
            return None
        now = self.clock.now()
        event_id = self.ids.new(now)
        try:
            (event,) = self.ledger.append(
                SYSTEM_LOG,
                [
                    EventDraft(
                        event_id=event_id,
                        tenant=SYSTEM_LOG,
                        type=RUN_STARTED,
                        correlation_id=event_id,
                        event_time=now,
                        process_time=now,
                        actor=SYSTEM_ACTOR.to_canonical(),
                        payload=dict(settings),
                        idempotency_key=key,
                    )
                ],
            )
        except DuplicateIntent:
            return None
        return event

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        self._close_hooks.append(hook)

    def close(self) -> None:
        self.ledger.store.close()
        for hook in reversed(self._close_hooks):
            hook()
        self._close_hooks.clear()

    def __enter__(self) -> Governor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the path ---------------------------------------------------------

    def _govern(self, request: IntentRequest, override: tuple[str, Executor] | None) -> Outcome:
        now = self.clock.now()
        event_time = request.event_time or now
        key = request.idempotency_key or derive_idempotency_key(request, event_time)
        tenant = request.tenant

        existing = self.ledger.store.intent_for_key(tenant, key)
        if existing is not None:
            return self.outcome(tenant, existing, duplicate=True)

        intent_id = request.intent_id or self.ids.new(now)
        intent = ActionIntent(
            intent_id=intent_id,
            tenant=tenant,
            actor=request.actor,
            action=request.action,
            target=request.target,
            params=request.params,
            safety_class=request.safety_class,
            idempotency_key=key,
            correlation_id=request.correlation_id or intent_id,
            event_time=event_time,
        )
        intent_hash = intent.intent_hash()
        decision = self.policy.decide(intent)

        binding = override or (
            self.executors.executor_for(intent.action)
            if decision.verdict == Verdict.ALLOW
            else None
        )
        drafts = [
            self._draft(
                intent,
                INTENT_RECORDED,
                {"intent": intent.to_canonical(), "intent_hash": intent_hash},
                actor=intent.actor.to_canonical(),
                idempotency_key=key,
                event_time=event_time,
            ),
            self._draft(
                intent,
                DECISION_RECORDED,
                {"decision": decision.to_canonical(), "intent_hash": intent_hash},
            ),
        ]
        if decision.verdict == Verdict.ALLOW and binding is not None:
            pattern, executor = binding
            drafts.append(
                self._draft(
                    intent,
                    EXECUTION_STARTED,
                    {"executor": executor.kind, "binding": pattern, "intent_hash": intent_hash},
                )
            )
        try:
            self.ledger.append(tenant, drafts)
        except DuplicateIntent as dup:
            # Another submitter recorded the same key between our check and our append.
            return self.outcome(tenant, dup.intent_id, duplicate=True)

        if decision.verdict != Verdict.ALLOW or binding is None:
            status = {
                Verdict.ALLOW: OutcomeStatus.DECIDED,
                Verdict.DENY: OutcomeStatus.DENIED,
                Verdict.REQUIRE_APPROVAL: OutcomeStatus.PENDING_APPROVAL,
            }[decision.verdict]
            return Outcome(
                intent_id=intent_id,
                tenant=tenant,
                correlation_id=intent.correlation_id,
                status=status,
                decision=decision,
            )
        return self._execute(intent, intent_hash, decision, binding[1])

    def _execute(
        self, intent: ActionIntent, intent_hash: str, decision: Decision, executor: Executor
    ) -> Outcome:
        result: Any = None
        error: str | None = None
        try:
            result = executor.execute(intent)
            canonical_bytes(result)  # a result we cannot hash is a failed execution
        except ExecutionFailed as exc:
            error = str(exc)
        except InputError as exc:
            error = f"executor returned a result that is not JSON: {exc}"
            result = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        payload: dict[str, Any] = {"executor": executor.kind, "intent_hash": intent_hash}
        if error is None:
            payload.update(status="succeeded", result=result, result_hash=content_hash(result))
        else:
            payload.update(status="failed", error=error[:_ERROR_TEXT_LIMIT])
        self.ledger.append(intent.tenant, [self._draft(intent, EXECUTION_FINISHED, payload)])
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

    def _draft(
        self,
        intent: ActionIntent,
        event_type: str,
        payload: dict[str, Any],
        *,
        actor: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        event_time: Any = None,
    ) -> EventDraft:
        now = self.clock.now()
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


def outcome_from_events(events: list[Event], duplicate: bool = False) -> Outcome:
    """Rebuild an intent's outcome from its ledger events."""
    by_type = {event.type: event for event in events}
    recorded = by_type.get(INTENT_RECORDED)
    decided = by_type.get(DECISION_RECORDED)
    if recorded is None or decided is None:
        raise NotFound("intent has no recorded decision")
    intent = recorded.payload["intent"]
    raw = decided.payload["decision"]
    decision = Decision(
        verdict=Verdict(raw["verdict"]),
        reasons=tuple(raw["reasons"]),
        obligations=raw["obligations"],
        policy_hash=raw["policy_hash"],
        errors=tuple(raw["errors"]),
    )
    fields: dict[str, Any] = {}
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
    else:
        fields = {
            "status": {
                Verdict.ALLOW: OutcomeStatus.DECIDED,
                Verdict.DENY: OutcomeStatus.DENIED,
                Verdict.REQUIRE_APPROVAL: OutcomeStatus.PENDING_APPROVAL,
            }[decision.verdict]
        }
    return Outcome(
        intent_id=intent["intent_id"],
        tenant=intent["tenant"],
        correlation_id=intent["correlation_id"],
        decision=decision,
        duplicate=duplicate,
        **fields,
    )
