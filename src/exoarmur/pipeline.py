"""The one path from intent to side effect.

    ingest ─ duplicate? ─► the first outcome, nothing new written
    decide   policy bundle in force (from the ledger), pure
    record   intent.recorded + decision.recorded
             [+ approval.requested | execution.started]        one durable append
    execute  only when allowed (or approved by a quorum) and an executor is
             bound; strictly after execution.started is durable
    record   execution.finished (status, result hash)

Approvals: a vote is ruled on by the pure approval book and recorded with a
precondition on the intent's last event (optimistic concurrency), so two
approvers racing for the last vote both count and the quorum is recorded
once. ``execution.started`` is appended under the same precondition, so an
approved intent starts at most once, whoever tries.

Every event's time comes from the injected clock and every id from the
injected generator, so a deterministic run (``StepClock`` + ``SeededIds``)
writes the same bytes every time. An execution that started and never
finished (the process died) is recorded as ``outcome_unknown`` by
:meth:`Governor.recover`, never run again; an intent approved but not yet
started is started by it.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar

from .approvals.book import (
    ApprovalStatus,
    IntentState,
    Ruling,
    Vote,
    approval_request,
    expiry_record,
    intent_state,
    is_due,
    rule_on,
)
from .clock import Clock
from .encoding import canonical_bytes, content_hash, format_time
from .errors import (
    Conflict,
    DuplicateIntent,
    InputError,
    IntentIdTaken,
    LedgerCorrupt,
    NotFound,
    PermissionDenied,
    PolicyError,
    StoreUnavailable,
)
from .executors import CallableExecutor, ExecutionFailed, Executor, ExecutorRegistry
from .gate import Controls, GateConfig, Scope, parse_scope, revoked, vote_over_limit
from .gate import check as gate_check
from .gate import recheck as gate_recheck
from .gate.controls import POSTURES
from .ids import IdGenerator
from .ledger.log import Ledger
from .model.decision import Decision, Outcome, OutcomeStatus, Verdict
from .model.event import (
    ACCESS_REFUSED,
    ACCESS_REFUSED_COUNTED,
    APPROVAL_REQUESTED,
    CONFIG_SNAPSHOT,
    DECISION_RECORDED,
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_RETRY,
    EXECUTION_STARTED,
    GATE_BLOCKED,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    INTENT_RECORDED,
    INTENT_REJECTED,
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POLICY_ACTIVATED,
    POSTURE_EXPIRED,
    POSTURE_SET,
    PRINCIPAL_ADDED,
    PRINCIPAL_REVOKED,
    RUN_STARTED,
    SERVICE_CONFIGURED,
    SETTLED,
    SYSTEM_LOG,
    Event,
    EventDraft,
    idempotency_key_of,
    intent_id_key,
    intent_key,
)
from .model.intent import (
    SYSTEM_ACTOR,
    ActionIntent,
    IntentRequest,
    derive_idempotency_key,
    parse_intent,
)
from .policy import PolicyBundle, PolicyEngine
from .principals import ALL_TENANTS, Principal, PrincipalBook, new_key, validate_principal

#: who acts when the command line is used without credentials: whoever can
#: read the data directory (and its signing key) already holds every power
LOCAL_ADMIN = Principal("local-admin", "admin", (ALL_TENANTS,), "local")
MAX_POSTURE_TTL = 30 * 24 * 3600

_ERROR_TEXT_LIMIT = 2000
#: the control an execution.blocked names when the re-check itself failed
INTERNAL_ERROR = "internal:error"
_MAX_VOTE_ATTEMPTS = 20
#: approval window when neither policy nor configuration sets one (seconds)
DEFAULT_APPROVAL_WINDOW = 3600
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class VoteResult:
    """What a vote did: whether it counted, why, and the intent's outcome after it."""

    accepted: bool
    message: str
    status: ApprovalStatus
    outcome: Outcome
    forbidden: bool = False


_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def _governed(
    method: Callable[Concatenate[Governor, _Params], _Result],
) -> Callable[Concatenate[Governor, _Params], _Result]:
    """Count the call as in flight (see :meth:`Governor.drain`) from its start to its outcome."""

    @functools.wraps(method)
    def counted(self: Governor, /, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        self._enter_governed()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._leave_governed()

    return counted


class Governor:
    """Governs intents: decide, record, approve, execute, record. Thread-safe.

    Build one with :func:`exoarmur.home.open_governor` for a data directory,
    or directly from its parts (tests, embedding). ``policy``, when given, is
    activated in the ledger (if it is not already the bundle in force), so
    that every decision's bundle is recorded where replay can find it.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        policy: PolicyEngine | None = None,
        executors: ExecutorRegistry | None = None,
        clock: Clock,
        ids: IdGenerator,
        approval_window: int = DEFAULT_APPROVAL_WINDOW,
        gate: GateConfig | None = None,
        randomness: Callable[[int], bytes] | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        self.ledger = ledger
        #: the home's [evidence] settings; recorded in the config snapshot when any is set
        self.evidence = dict(evidence or {})
        self.executors = executors if executors is not None else ExecutorRegistry()
        self.clock = clock
        self.ids = ids
        self.approval_window = approval_window
        self.gate = gate or GateConfig()
        #: where API-key secrets come from: the OS, or a seed in deterministic runs
        self.randomness = randomness or os.urandom
        self._close_hooks: list[Callable[[], None]] = []
        self._engines: dict[str, PolicyEngine] = {}
        self._principals: tuple[int, PrincipalBook] = (-1, PrincipalBook())
        self._lock = threading.Lock()
        # Control state per log, folded from the ledger; guarded by _decide_lock
        # together with every decision that reads it (see _govern).
        self._controls: dict[str, Controls] = {}
        self._decide_lock = threading.RLock()
        # Governed calls in flight, so that a stopping service never closes the
        # ledger under an execution (see drain).
        self._in_flight = 0
        self._in_flight_changed = threading.Condition()
        self._draining = False
        self.config = self.effective_config()
        self.config_hash = content_hash(self.config)
        self._record_config()
        if policy is not None:
            self._engines[policy.policy_hash] = policy
            active = self._active_activation(SYSTEM_LOG)
            if active is None or active.payload["policy_hash"] != policy.policy_hash:
                self.activate_policy(policy.bundle)

    # -- configuration and control state ------------------------------------

    def effective_config(self) -> dict[str, Any]:
        """Everything configured that changes behaviour; its hash is named by every decision."""
        return {
            "format": "exoarmur.config/v1",
            "approvals": {"window_seconds": self.approval_window},
            "gate": self.gate.to_canonical(),
            "executors": self.executors.describe(),
        } | ({"evidence": self.evidence} if self.evidence else {})

    def _record_config(self) -> None:
        latest = self.ledger.store.latest_of_type(SYSTEM_LOG, CONFIG_SNAPSHOT)
        if latest is not None and latest.payload["config_hash"] == self.config_hash:
            return
        self._system_event(
            CONFIG_SNAPSHOT,
            {"config_hash": self.config_hash, "config": self.config},
            "exoarmur",
            None,
        )

    def _fold(self, log: str) -> Controls:
        """The control state of ``log``, caught up with the ledger. Hold _decide_lock."""
        controls = self._controls.get(log)
        if controls is None:
            controls = self._controls[log] = Controls(
                log, self.gate.horizon_seconds, self.gate.retention()
            )
        size = self.ledger.size(log)
        if controls.position < size:
            for event in self.ledger.store.events(log, controls.position, size):
                controls.apply(event)
        return controls

    def _append(
        self, log: str, drafts: list[EventDraft], expect: tuple[str, int] | None = None
    ) -> list[Event]:
        """Append, and fold our own events at once when nobody wrote in between."""
        events = self.ledger.append(log, drafts, expect=expect)
        with self._decide_lock:
            controls = self._controls.get(log)
            if controls is not None and events and controls.position == events[0].seq:
                for event in events:
                    controls.apply(event)
        return events

    # -- policy in force ---------------------------------------------------

    def _active_activation(self, log: str) -> Event | None:
        return self.ledger.store.latest_of_type(log, POLICY_ACTIVATED)

    def policy_for(self, tenant: str) -> PolicyEngine:
        """The bundle in force for a tenant: its own activation, else the global one."""
        with self._decide_lock:
            return self._engine_in_force(self._fold(SYSTEM_LOG), self._fold(tenant))

    def _engine_in_force(self, system: Controls, tenant: Controls) -> PolicyEngine:
        log, activation = (
            (tenant.log, tenant.policy) if tenant.policy else (SYSTEM_LOG, system.policy)
        )
        if activation is None:
            raise PolicyError(
                "no policy is active; run `exoarmur policy activate DIR` (init activates a default)"
            )
        policy_hash, event_id = activation
        engine = self._engines.get(policy_hash)
        if engine is None:
            event = self.ledger.store.event_by_id(log, event_id)
            if event is None:  # pragma: no cover - the fold just read it
                raise LedgerCorrupt(f"policy activation {event_id} vanished from {log}")
            engine = engine_from_activation(event)
            self._engines[policy_hash] = engine
        return engine

    def activate_policy(
        self, bundle: PolicyBundle, *, tenant: str | None = None, actor: str = "exoarmur"
    ) -> Event:
        """Record a bundle (full text, schema, hash) as the one in force."""
        engine = PolicyEngine(bundle)  # refuses a bundle that does not parse
        log = tenant or SYSTEM_LOG
        now = self.clock.now()
        event_id = self.ids.new(now)
        (event,) = self.ledger.append(
            log,
            [
                EventDraft(
                    event_id=event_id,
                    tenant=log,
                    type=POLICY_ACTIVATED,
                    correlation_id=event_id,
                    event_time=now,
                    process_time=now,
                    actor={"id": actor, "kind": "operator" if actor != "exoarmur" else "system"},
                    payload={
                        "policy_hash": engine.policy_hash,
                        "bundle": bundle.to_canonical(),
                        "scope": "tenant" if tenant else "global",
                    },
                )
            ],
        )
        self._engines[engine.policy_hash] = engine
        return event

    # -- governing ---------------------------------------------------------

    @_governed
    def submit(self, intent: IntentRequest | Mapping[str, Any]) -> Outcome:
        """Govern one intent with the executor bound to its action (if any)."""
        request = intent if isinstance(intent, IntentRequest) else parse_intent(dict(intent))
        return self._govern(request, None)

    @_governed
    def run(
        self, intent: IntentRequest | Mapping[str, Any], fn: Callable[[ActionIntent], Any]
    ) -> Outcome:
        """Govern a Python call: ``fn(intent)`` runs only if the intent is allowed.

        An intent that requires approval does not wait: the outcome is
        ``pending_approval`` and ``fn`` is not called.
        """
        request = intent if isinstance(intent, IntentRequest) else parse_intent(dict(intent))
        return self._govern(request, ("python-call", CallableExecutor(fn)))

    def outcome(self, tenant: str, intent_id: str, *, duplicate: bool = False) -> Outcome:
        """An intent's outcome as the ledger tells it."""
        return outcome_from_events(self._events(tenant, intent_id), duplicate)

    def story(self, tenant: str, intent_id: str) -> list[Event]:
        """Every event of one intent, in order."""
        return self._events(tenant, intent_id)

    def _events(self, tenant: str, intent_id: str) -> list[Event]:
        events = self.ledger.store.events_for_intent(tenant, intent_id)
        if not events:
            raise NotFound(f"no intent {intent_id!r} in tenant {tenant!r}")
        return events

    def _govern(self, request: IntentRequest, override: tuple[str, Executor] | None) -> Outcome:
        now = self.clock.now()
        event_time = request.event_time or now
        key = request.idempotency_key or derive_idempotency_key(request, event_time)
        tenant = request.tenant

        existing = self._earlier(tenant, request.actor.id, key)
        if existing is not None:
            return self.outcome(tenant, existing, duplicate=True)
        if request.intent_id is not None and self.ledger.store.events_for_intent(
            tenant, request.intent_id
        ):
            raise IntentIdTaken(_id_taken(request.intent_id, tenant))

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
        recorded = self._draft(
            intent,
            INTENT_RECORDED,
            {"intent": intent.to_canonical(), "intent_hash": intent_hash},
            actor=intent.actor.to_canonical(),
            idempotency_key=intent_key(intent.actor.id, key),
            event_time=event_time,
        )
        decision, positions, posture, lapsed = self._decide(intent, recorded.process_time)
        if lapsed is not None:
            self._record_posture_expiry(tenant, lapsed)

        binding = override or self.executors.executor_for(intent.action)
        drafts = [
            recorded,
            self._draft(
                intent,
                DECISION_RECORDED,
                {
                    "decision": decision.to_canonical(),
                    "intent_hash": intent_hash,
                    "controls": positions,
                    "posture": posture,
                },
                idempotency_key=intent_id_key(intent_id),
            ),
        ]
        if decision.gate is not None:
            drafts.append(
                self._draft(
                    intent,
                    GATE_BLOCKED,
                    decision.gate | {"verdict": decision.verdict.value, "intent_hash": intent_hash},
                )
            )
        if decision.verdict == Verdict.REQUIRE_APPROVAL:
            decided_at = drafts[1].process_time  # the decision.recorded event's time
            drafts.append(
                self._draft(
                    intent,
                    APPROVAL_REQUESTED,
                    approval_request(decision, decided_at, self.approval_window)
                    | {"intent_hash": intent_hash},
                )
            )
        if decision.verdict == Verdict.ALLOW and binding is not None:
            drafts.append(self._start_draft(intent, intent_hash, binding))
        try:
            self._append(tenant, drafts)
        except DuplicateIntent as dup:
            if dup.idempotency_key == intent_id_key(intent_id):
                raise IntentIdTaken(_id_taken(intent_id, tenant)) from None
            # The same actor recorded the same key between our check and our append.
            return self.outcome(tenant, dup.intent_id, duplicate=True)

        if decision.verdict == Verdict.ALLOW and binding is not None:
            return self._execute(intent, intent_hash, decision, binding[1], binding[0])
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

    def _earlier(self, tenant: str, actor: str, key: str) -> str | None:
        """The intent this actor already recorded under ``key``, if any.

        Keys are scoped to the actor; ledgers written before that indexed the
        bare key, and such an intent counts only when this actor recorded it
        (another actor's intent under the same key is never reached).
        """
        found = self.ledger.store.intent_for_key(tenant, intent_key(actor, key))
        if found is not None:
            return found
        legacy = self.ledger.store.intent_for_key(tenant, key)
        if legacy is None:
            return None
        first = self.ledger.store.events_for_intent(tenant, legacy)
        if first and first[0].type == INTENT_RECORDED and first[0].actor.get("id") == actor:
            return legacy
        return None

    def _decide(
        self, intent: ActionIntent, at: datetime
    ) -> tuple[Decision, dict[str, int], str, str | None]:
        """Policy, then the gate, on control state at recorded positions.

        Returns the decision, the positions of the control state it read
        (replay folds exactly those prefixes), the posture policy saw (an
        evidence bundle re-decides from it) and, when a posture's TTL has
        run out, the id of the posture event to record as expired. ``at`` is
        the intent's recorded process time: the gate's only notion of now.
        """
        with self._decide_lock:
            system = self._fold(SYSTEM_LOG)
            tenant = self._fold(intent.tenant)
            engine = self._engine_in_force(system, tenant)
            posture = tenant.posture_at(at)
            lapsed = tenant.posture.event_id if posture is not tenant.posture else None
            decision = engine.decide(intent, posture.posture).model_copy(
                update={"config_hash": self.config_hash}
            )
            decision = gate_check(
                intent, decision, system=system, tenant=tenant, config=self.gate, now=at
            )
            positions = {"system": system.position, "tenant": tenant.position}
            return decision, positions, posture.posture, lapsed

    def _blocked_now(
        self, intent: ActionIntent
    ) -> tuple[tuple[str, str] | None, dict[str, int] | None]:
        """The gate again, right before a side effect: kill switches, unreadable controls.

        Returns the verdict and the positions it read (recorded with the outcome).
        Never raises: if the control state cannot even be read, that is a block
        (with no positions, since none were read), never a start.
        """
        try:
            with self._decide_lock:
                system, tenant = self._fold(SYSTEM_LOG), self._fold(intent.tenant)
                positions = {"system": system.position, "tenant": tenant.position}
                return gate_recheck(intent, system, tenant), positions
        except Exception as exc:  # fail closed: what we cannot check does not run
            failure = f"the re-check failed ({type(exc).__name__}: {exc})"[:_ERROR_TEXT_LIMIT]
            return (INTERNAL_ERROR, failure), None

    def _blocked_draft(
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
        return self._draft(intent, EXECUTION_BLOCKED, payload)

    def _blocked_outcome(
        self, intent: ActionIntent, decision: Decision, executor: str, blocked: tuple[str, str]
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

    def _start_draft(
        self, intent: ActionIntent, intent_hash: str, binding: tuple[str, Executor]
    ) -> EventDraft:
        pattern, executor = binding
        return self._draft(
            intent,
            EXECUTION_STARTED,
            {"executor": executor.kind, "binding": pattern, "intent_hash": intent_hash},
        )

    def _execute(
        self,
        intent: ActionIntent,
        intent_hash: str,
        decision: Decision,
        executor: Executor,
        binding: str | None = None,
    ) -> Outcome:
        retries = self.executors.retries_for(binding) if binding is not None else 0
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(intent, intent_hash, decision, executor, attempt, retries)
            if outcome is not None:
                return outcome

    def _attempt(
        self,
        intent: ActionIntent,
        intent_hash: str,
        decision: Decision,
        executor: Executor,
        attempt: int,
        retries: int,
    ) -> Outcome | None:
        """One attempt at the side effect; None means: record done, try again."""
        blocked, checked_at = self._blocked_now(intent)
        if blocked is not None:
            self._append(
                intent.tenant, [self._blocked_draft(intent, intent_hash, blocked, checked_at)]
            )
            return self._blocked_outcome(intent, decision, executor.kind, blocked)
        result: Any = None
        error: str | None = None
        try:
            result = executor.execute(intent)
            canonical_bytes(result)  # a result we cannot hash is a failed execution
        except ExecutionFailed as exc:
            error = str(exc)
            if exc.retryable and attempt <= retries:
                self._append(
                    intent.tenant,
                    [
                        self._draft(
                            intent,
                            EXECUTION_RETRY,
                            {
                                "attempt": attempt,
                                "of": retries + 1,
                                "error": error[:_ERROR_TEXT_LIMIT],
                                "intent_hash": intent_hash,
                                "controls": checked_at,
                            },
                        )
                    ],
                )
                return None
        except InputError as exc:
            error = f"executor returned a result that is not JSON: {exc}"
            result = None
        except Exception as exc:  # any executor failure is recorded, never raised
            error = f"{type(exc).__name__}: {exc}"
        payload: dict[str, Any] = {
            "executor": executor.kind,
            "intent_hash": intent_hash,
            "attempt": attempt,
            "controls": checked_at,
        }
        if error is None:
            payload.update(status="succeeded", result=result, result_hash=content_hash(result))
        else:
            payload.update(status="failed", error=error[:_ERROR_TEXT_LIMIT])
        self._append(intent.tenant, [self._draft(intent, EXECUTION_FINISHED, payload)])
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

    def _execute_approved(self, state: IntentState) -> Outcome | None:
        """Start and run an approved intent, at most once whoever calls.

        Returns None when there is nothing to run here: no executor is bound
        (the caller carries it out), or someone else already started it.
        """
        binding = self.executors.executor_for(state.intent.action)
        if binding is None:
            return None
        intent = state.intent
        for _ in range(_MAX_VOTE_ATTEMPTS):
            # Re-check before the start is written, so that a block (or an error
            # in the check) is recorded as what happened: never a start for an
            # action nobody attempted.
            blocked, checked_at = self._blocked_now(intent)
            draft = (
                self._start_draft(intent, state.intent_hash, binding)
                if blocked is None
                else self._blocked_draft(intent, state.intent_hash, blocked, checked_at)
            )
            try:
                self._append(intent.tenant, [draft], expect=(intent.intent_id, state.last_seq))
            except Conflict:
                # Something was recorded meanwhile (a late vote's refusal, or
                # another process's start): start only if nobody has.
                events = self._events(intent.tenant, intent.intent_id)
                if any(e.type in (EXECUTION_STARTED, EXECUTION_BLOCKED) for e in events):
                    return None
                state = intent_state(events)
                continue
            if blocked is not None:
                return self._blocked_outcome(intent, state.decision, binding[1].kind, blocked)
            return self._execute(intent, state.intent_hash, state.decision, binding[1], binding[0])
        raise Conflict(f"intent {intent.intent_id} kept changing; recovery will start it")

    # -- who may read --------------------------------------------------------

    def authorize_read(self, principal: Principal, tenant: str, what: str) -> None:
        """Refuse (and record) a read of ``tenant`` by a principal not acting for it.

        Agents may read only their own intents: callers that return intents
        check ``intent.actor.id`` against the principal themselves.
        """
        if principal.acts_for(tenant):
            return
        self._record_access_refused(principal, tenant, f"read {what}")
        raise PermissionDenied(f"principal {principal.name} does not act for tenant {tenant}")

    def record_access_refused(
        self, principal: Principal, tenant: str | None, attempted: str, detail: str
    ) -> None:
        """Record that an authenticated principal was refused (an HTTP 403)."""
        self._system_event(
            ACCESS_REFUSED,
            {
                "principal": principal.name,
                "tenant": tenant,
                "attempted": attempted,
                "detail": detail,
            },
            principal.name,
            None,
        )

    def record_unauthenticated(
        self, attempted: str, detail: str, *, source: str | None = None
    ) -> Event:
        """Record a request that presented no valid credentials (an HTTP 401).

        ``source`` is where it came from (the peer address), when known. The
        HTTP API bounds how many of these it records (``server.audit``).
        """
        payload: dict[str, Any] = {
            "principal": None,
            "tenant": None,
            "attempted": attempted,
            "detail": detail,
        }
        if source is not None:
            payload["source"] = source
        return self._system_event(ACCESS_REFUSED, payload, "anonymous", None)

    def record_refusals_counted(self, summary: dict[str, Any]) -> Event:
        """Record refusals counted but not recorded one by one (``access.refused.counted``)."""
        return self._system_event(ACCESS_REFUSED_COUNTED, summary, "exoarmur", None)

    def record_service(self, settings: Mapping[str, Any]) -> Event | None:
        """Record the settings a service runs with, once per distinct settings."""
        key = idempotency_key_of(SERVICE_CONFIGURED, dict(settings))
        if key is not None and self.ledger.store.intent_for_key(SYSTEM_LOG, key) is not None:
            return None
        try:
            return self._system_event(SERVICE_CONFIGURED, dict(settings), "exoarmur", key)
        except DuplicateIntent:
            return None

    # -- controls: kill switches and posture ---------------------------------

    def _authorize_control(self, principal: Principal, scope: Scope, what: str) -> None:
        if principal.role == "admin":
            return
        allowed = (
            principal.role == "operator"
            and scope.tenant is not None
            and principal.acts_for(scope.tenant)
        )
        if not allowed:
            self._record_access_refused(principal, scope.tenant or "*", f"{what} {scope.text}")
            where = "every tenant" if scope.all_tenants else f"tenant {scope.tenant}"
            raise PermissionDenied(
                f"principal {principal.name} (role {principal.role}) may not {what} "
                f"controls for {where}"
            )

    def engage_killswitch(self, scope: str, reason: str, principal: Principal) -> Event:
        """Stop every matching action, including ones approved and not yet run."""
        parsed = parse_scope(scope)
        reason = _required_reason(reason)
        self._authorize_control(principal, parsed, "engage")
        log = parsed.tenant or SYSTEM_LOG
        with self._decide_lock:
            engaged = self._fold(log).switches.get(parsed.text)
        if engaged is not None:
            found = self.ledger.store.event_by_id(log, engaged.event_id)
            if found is not None:
                return found  # already engaged: nothing new to record
        return self._control_event(
            log, KILLSWITCH_ENGAGED, {"scope": parsed.text, "reason": reason}, principal
        )

    def release_killswitch(self, scope: str, reason: str, principal: Principal) -> Event:
        parsed = parse_scope(scope)
        reason = _required_reason(reason)
        self._authorize_control(principal, parsed, "release")
        log = parsed.tenant or SYSTEM_LOG
        with self._decide_lock:
            engaged = parsed.text in self._fold(log).switches
        if not engaged:
            raise InputError(f"scope: no kill switch is engaged for {parsed.text}")
        return self._control_event(
            log, KILLSWITCH_RELEASED, {"scope": parsed.text, "reason": reason}, principal
        )

    def killswitches(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Engaged switches: those affecting ``tenant``, or every one when None.

        Unreadable kill-switch state raises: a status that cannot be known is
        not reported as "nothing engaged".
        """
        with self._decide_lock:
            logs = [SYSTEM_LOG]
            if tenant is not None:
                logs.append(tenant)
            else:
                logs.extend(t for t in self.ledger.store.tenants() if t != SYSTEM_LOG)
            found = []
            for log in logs:
                controls = self._fold(log)
                if controls.unreadable:
                    raise LedgerCorrupt(f"kill-switch state unreadable: {controls.unreadable}")
                for switch in controls.switches.values():
                    found.append(
                        {
                            "scope": switch.scope.text,
                            "reason": switch.reason,
                            "engaged_by": switch.engaged_by,
                            "engaged_at": switch.engaged_at,
                            "event_id": switch.event_id,
                        }
                    )
        return sorted(found, key=lambda s: str(s["scope"]))

    def set_posture(
        self,
        tenant: str,
        posture: str,
        reason: str,
        principal: Principal,
        ttl_seconds: int | None = None,
    ) -> Event:
        """Set a tenant's posture; with a TTL it returns to normal by itself."""
        if posture not in POSTURES:
            raise InputError(f"posture: must be one of {', '.join(POSTURES)}, not {posture!r}")
        if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_POSTURE_TTL:
            raise InputError(f"ttl_seconds: must be between 1 and {MAX_POSTURE_TTL}")
        reason = _required_reason(reason)
        self._authorize_control(principal, parse_scope(f"tenant:{tenant}"), "set posture of")
        now = self.clock.now()
        until = None if ttl_seconds is None else format_time(now + timedelta(seconds=ttl_seconds))
        return self._control_event(
            tenant,
            POSTURE_SET,
            {"posture": posture, "until": until, "reason": reason},
            principal,
            at=now,
        )

    def posture(self, tenant: str) -> dict[str, Any]:
        with self._decide_lock:
            return self._fold(tenant).posture_at(self.clock.now()).to_json()

    def _record_posture_expiry(self, tenant: str, set_event_id: str) -> None:
        self._control_event(
            tenant, POSTURE_EXPIRED, {"set_event_id": set_event_id, "posture": "normal"}, None
        )

    def _control_event(
        self,
        log: str,
        event_type: str,
        payload: dict[str, Any],
        principal: Principal | None,
        at: datetime | None = None,
    ) -> Event:
        now = at or self.clock.now()
        event_id = self.ids.new(now)
        actor = (
            {"id": principal.name, "kind": "operator"}
            if principal is not None
            else SYSTEM_ACTOR.to_canonical()
        )
        (event,) = self._append(
            log,
            [
                EventDraft(
                    event_id=event_id,
                    tenant=log,
                    type=event_type,
                    correlation_id=event_id,
                    event_time=now,
                    process_time=now,
                    actor=actor,
                    payload=payload,
                )
            ],
        )
        return event

    def _vote_inputs(
        self, tenant: str, principal: Principal, now: datetime
    ) -> tuple[str | None, dict[str, int]]:
        """What a vote is judged on besides the intent: the voter's standing and rate.

        Returns why the vote must be refused on those grounds (or None) and the
        positions of the logs read, which the vote records for replay.
        """
        book_size, book = self._principal_book()
        current = book.get(principal.name)
        with self._decide_lock:
            controls = self._fold(tenant)
            positions = {"system": book_size, "tenant": controls.position}
            if current is None or current != principal:
                return revoked(principal.name), positions
            return vote_over_limit(controls, self.gate, principal.name, now), positions

    # -- approvals ---------------------------------------------------------

    @_governed
    def vote(
        self,
        tenant: str,
        intent_id: str,
        principal: Principal,
        vote: Vote,
        reason: str,
        intent_hash: str | None = None,
    ) -> VoteResult:
        """Record one approver's vote; run the intent if it completes the quorum.

        ``principal`` comes from authenticated credentials. ``intent_hash``
        binds the vote to exactly the intent the approver saw; when omitted,
        the vote binds to the recorded intent's hash.
        """
        reason = _required_reason(reason)
        if not principal.acts_for(tenant):
            # Say nothing about whether the intent exists in that tenant.
            self._record_access_refused(principal, tenant, f"{vote.value} {intent_id}")
            raise PermissionDenied(f"principal {principal.name} does not act for tenant {tenant}")
        for _ in range(_MAX_VOTE_ATTEMPTS):
            state = intent_state(self._events(tenant, intent_id))
            now = self.clock.now()
            refusal, positions = self._vote_inputs(tenant, principal, now)
            ruling = rule_on(
                state,
                principal,
                vote,
                reason,
                intent_hash or state.intent_hash,
                now,
                over_limit=refusal,
            )
            try:
                vote_record = {
                    "vote": vote.value,
                    "voter": principal.name,
                    "reason": reason,
                    "presented_hash": intent_hash or state.intent_hash,
                    "controls": positions,
                    "config_hash": self.config_hash,
                }
                self._record_ruling(state, principal, ruling, now, vote_record)
            except Conflict:
                continue  # the intent moved on while we ruled: rule again on the new state
            break
        else:  # pragma: no cover - needs 20 interleaved writers on one intent
            raise Conflict(f"intent {intent_id} kept changing; vote not recorded, try again")
        outcome: Outcome | None = None
        if ruling.executes:
            approved = intent_state(self._events(tenant, intent_id))
            outcome = self._execute_approved(approved)
        return VoteResult(
            accepted=ruling.accepted,
            message=ruling.message,
            status=ruling.status,
            outcome=outcome or self.outcome(tenant, intent_id),
            forbidden=ruling.forbidden,
        )

    def _record_ruling(
        self,
        state: IntentState,
        principal: Principal,
        ruling: Ruling,
        now: datetime,
        vote_record: dict[str, Any],
    ) -> None:
        intent = state.intent
        drafts = []
        for number, (event_type, payload) in enumerate(ruling.records):
            if number == 0:
                # the vote as cast and what its ruling read: replay judges it on exactly this
                payload = payload | {"cast": vote_record}
            actor = (
                SYSTEM_ACTOR.to_canonical()
                if event_type in (INTENT_EXPIRED, INTENT_APPROVED)
                else {"id": principal.name, "kind": "operator"}
            )
            drafts.append(self._draft(intent, event_type, payload, actor=actor, at=now))
        self._append(intent.tenant, drafts, expect=(intent.intent_id, state.last_seq))

    def _record_access_refused(self, principal: Principal, tenant: str, what: str) -> None:
        now = self.clock.now()
        event_id = self.ids.new(now)
        self.ledger.append(
            SYSTEM_LOG,
            [
                EventDraft(
                    event_id=event_id,
                    tenant=SYSTEM_LOG,
                    type=ACCESS_REFUSED,
                    correlation_id=event_id,
                    event_time=now,
                    process_time=now,
                    actor={"id": principal.name, "kind": "operator"},
                    payload={"principal": principal.name, "tenant": tenant, "attempted": what},
                )
            ],
        )

    def pending(self, tenant: str) -> list[IntentState]:
        """Intents waiting for approval (expiring the overdue ones on the way)."""
        self.expire_due(tenant)
        ids = self.ledger.store.intents_with(tenant, APPROVAL_REQUESTED, SETTLED)
        return [intent_state(self._events(tenant, i)) for i in ids]

    def expire_due(self, tenant: str) -> list[str]:
        """Record ``intent.expired`` for pending intents past their window."""
        expired = []
        now = self.clock.now()
        for intent_id in self.ledger.store.intents_with(tenant, APPROVAL_REQUESTED, SETTLED):
            state = intent_state(self._events(tenant, intent_id))
            if not is_due(state, now):
                continue
            event_type, payload = expiry_record(state)
            try:
                self._append(
                    tenant,
                    [self._draft(state.intent, event_type, payload, at=now)],
                    expect=(intent_id, state.last_seq),
                )
            except Conflict:
                continue  # someone voted or expired it meanwhile; look again next time
            expired.append(intent_id)
        return expired

    # -- principals --------------------------------------------------------

    def principals(self) -> PrincipalBook:
        """The principals in force (cached until the system log grows)."""
        return self._principal_book()[1]

    def _principal_book(self) -> tuple[int, PrincipalBook]:
        with self._lock:
            size = self.ledger.size(SYSTEM_LOG)
            if self._principals[0] != size:
                events = (
                    e
                    for e in self.ledger.store.events(SYSTEM_LOG, 0, size)
                    if e.type in (PRINCIPAL_ADDED, PRINCIPAL_REVOKED)
                )
                self._principals = (size, PrincipalBook.from_events(events))
            return self._principals

    def authenticate(self, api_key: str) -> Principal:
        return self.principals().authenticate(api_key)

    def add_principal(
        self, name: str, role: str, tenants: list[str], *, actor: str = "local-admin"
    ) -> tuple[Principal, str]:
        """Create a principal; returns it and its API key (shown once, stored hashed)."""
        chosen = validate_principal(name, role, tenants)
        if self.principals().known(name):
            raise InputError(
                f"name: a principal named {name!r} already exists (names are never reused)"
            )
        key = new_key(self.randomness)
        payload = {
            "name": name,
            "role": role,
            "tenants": list(chosen),
            "key_id": key.key_id,
            "key_hash": key.key_hash,
        }
        try:
            self._system_event(
                PRINCIPAL_ADDED,
                payload,
                actor,
                idempotency_key=idempotency_key_of(PRINCIPAL_ADDED, payload),
            )
        except DuplicateIntent:
            raise InputError(f"name: a principal named {name!r} already exists") from None
        principal = self.principals().get(name)
        assert principal is not None
        return principal, key.api_key

    def revoke_principal(self, name: str, *, actor: str = "local-admin") -> None:
        if self.principals().get(name) is None:
            raise NotFound(f"no active principal named {name!r}")
        self._system_event(
            PRINCIPAL_REVOKED,
            {"name": name},
            actor,
            idempotency_key=idempotency_key_of(PRINCIPAL_REVOKED, {"name": name}),
        )

    def _system_event(
        self, event_type: str, payload: dict[str, Any], actor: str, idempotency_key: str | None
    ) -> Event:
        now = self.clock.now()
        event_id = self.ids.new(now)
        (event,) = self.ledger.append(
            SYSTEM_LOG,
            [
                EventDraft(
                    event_id=event_id,
                    tenant=SYSTEM_LOG,
                    type=event_type,
                    correlation_id=event_id,
                    event_time=now,
                    process_time=now,
                    actor={"id": actor, "kind": "operator"},
                    payload=payload,
                    idempotency_key=idempotency_key,
                )
            ],
        )
        return event

    # -- runs and recovery -------------------------------------------------

    def record_run(self, settings: Mapping[str, Any]) -> Event | None:
        """Record how this run makes time and ids (e.g. a deterministic seed).

        Goes to the system log, once per distinct settings: running the same
        deterministic scenario again records nothing new.
        """
        key = idempotency_key_of(RUN_STARTED, dict(settings))
        if key is not None and self.ledger.store.intent_for_key(SYSTEM_LOG, key) is not None:
            return None
        try:
            return self._system_event(RUN_STARTED, dict(settings), "exoarmur", key)
        except DuplicateIntent:
            return None

    def recover(self) -> list[Outcome]:
        """Finish what a stopped process left: run approved intents, mark cut executions.

        An intent approved but never started is started now (at most once).
        An execution started and never finished is recorded as
        ``outcome_unknown``: its side effect may or may not have happened, so
        it is never run again. Only safe when no other process is executing
        on this ledger; the data directory's run lock (see ``home``) ensures that.
        """
        recovered = []
        for tenant in self._tenants():
            # Each acts on an event's absence: the story is read whole from the log first.
            for intent_id in self.ledger.store.intents_with(
                tenant, INTENT_APPROVED, (EXECUTION_STARTED, EXECUTION_BLOCKED)
            ):
                story = self.ledger.complete_story(tenant, intent_id)
                outcome = self._execute_approved(intent_state(story))
                if outcome is not None:
                    recovered.append(outcome)
            for intent_id in self.ledger.store.unfinished_executions(tenant):
                self.ledger.complete_story(tenant, intent_id)
                recovered.append(self._mark_unknown(tenant, intent_id))
        return recovered

    def _tenants(self) -> Iterator[str]:
        return (t for t in self.ledger.store.tenants() if t != SYSTEM_LOG)

    def _mark_unknown(self, tenant: str, intent_id: str) -> Outcome:
        events = self._events(tenant, intent_id)
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
        return self.outcome(tenant, intent_id)

    @property
    def in_flight(self) -> int:
        """Governed calls (submit, run, vote) running now."""
        return self._in_flight

    def drain(self, timeout: float) -> bool:
        """Take no new governed call; wait up to ``timeout`` s for the running ones.

        True when none runs any more: their outcomes are recorded and the
        ledger may be closed. False when some still run: closing now would
        cut their executions, which the next start records as outcome_unknown.
        A new submit, run or vote raises :class:`StoreUnavailable` from now on.
        """
        with self._in_flight_changed:
            self._draining = True
            return self._in_flight_changed.wait_for(lambda: self._in_flight == 0, timeout)

    def _enter_governed(self) -> None:
        with self._in_flight_changed:
            if self._draining:
                raise StoreUnavailable("the governor is stopping; nothing was done, retry later")
            self._in_flight += 1

    def _leave_governed(self) -> None:
        with self._in_flight_changed:
            self._in_flight -= 1
            self._in_flight_changed.notify_all()

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

    def _draft(
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


def engine_from_activation(event: Event) -> PolicyEngine:
    """The policy engine a ``policy.activated`` event holds, checked against its hash."""
    engine = PolicyEngine(PolicyBundle.from_canonical(event.payload["bundle"]))
    if engine.policy_hash != event.payload["policy_hash"]:
        raise LedgerCorrupt(f"activation {event.event_id} names a bundle it does not hold")
    return engine


def _id_taken(intent_id: str, tenant: str) -> str:
    return (
        f"intent_id: {intent_id} is already recorded in tenant {tenant}; "
        "an intent id is used once (omit it and ExoArmur assigns one)"
    )


def _required_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InputError("reason: is required (say why)")
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(f"reason: longer than {MAX_REASON_CHARS} characters")
    return reason


_VERDICT_STATUS = {
    Verdict.ALLOW: OutcomeStatus.DECIDED,
    Verdict.DENY: OutcomeStatus.DENIED,
    Verdict.REQUIRE_APPROVAL: OutcomeStatus.PENDING_APPROVAL,
}


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
    else:
        fields = {"status": _VERDICT_STATUS[decision.verdict]}
    return Outcome(
        intent_id=intent["intent_id"],
        tenant=intent["tenant"],
        correlation_id=intent["correlation_id"],
        decision=decision,
        duplicate=duplicate,
        **fields,
    )
