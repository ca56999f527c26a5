"""Intake: idempotency, the decision, one durable record, then the runner.

ingest ─ duplicate? ─► the first outcome, nothing new written
decide   policy bundle in force (from the ledger), then the gate
record   intent.recorded + decision.recorded
         [+ gate.blocked] [+ approval.requested | execution.started]   one durable append
run      only when allowed and an executor is bound, strictly after
         execution.started is durable (the runner)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..approvals.book import approval_request
from ..containment.model import PLAN_ACTION, is_containment, requested_spec
from ..containment.plans import parse_plan
from ..errors import DuplicateIntent, IntentIdTaken
from ..evidence_levels import parse_refs
from ..executors.registry import Binding
from ..gate import GateConfig
from ..model.decision import Outcome, Verdict
from ..model.event import (
    APPROVAL_REQUESTED,
    DECISION_RECORDED,
    GATE_BLOCKED,
    INTENT_RECORDED,
    SYSTEM_LOG,
    intent_id_key,
    intent_key,
)
from ..model.intent import ActionIntent, IntentRequest, derive_idempotency_key
from ..model.trace import checked_trace_id
from .deciding import Deliberation, gate_many, policy_many
from .drafts import Drafts
from .outcomes import VERDICT_STATUS, outcome_from_events, read_story
from .policies import Policies
from .running import Runner
from .state import ControlState

#: how far into a log :meth:`Intake.keys_scoped` looks for its first intent
_FIRST_LOOK = 64


def id_taken(intent_id: str, tenant: str) -> str:
    return (
        f"intent_id: {intent_id} is already recorded in tenant {tenant}; "
        "an intent id is used once (omit it and ExoArmur assigns one)"
    )


@dataclass
class _Waiting:
    """One submitter's intent, waiting for the batch it is decided in."""

    intent: ActionIntent
    at: datetime
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    result: tuple[Deliberation, dict[str, int]] | None = None
    error: BaseException | None = None


class Decider:
    """The live caller of the pure deciding functions: the folds as they are now.

    Intents that arrive while a batch is being decided wait and are decided
    together in the next one: one fold of each log and one Cedar call per
    tenant and posture for the whole batch, under the decide lock. Each
    decision records the positions of the folds it read, which are the same
    for its whole batch; replay re-decides each one alone at those positions.
    """

    def __init__(
        self,
        state: ControlState,
        policies: Policies,
        gate: GateConfig,
        config_hash: str,
        *,
        max_batch: int = 256,
    ) -> None:
        self.state = state
        self.policies = policies
        self.gate = gate
        self.config_hash = config_hash
        self.max_batch = max_batch
        self._queue: list[_Waiting] = []
        self._queue_lock = threading.Lock()
        self._leading = False
        #: batches decided and intents in them (the mean batch is intents / batches)
        self.batches = 0
        self.decided = 0

    @property
    def waiting(self) -> int:
        """Intents queued for the next batch."""
        with self._queue_lock:
            return len(self._queue)

    def deliberate(self, intent: ActionIntent, at: datetime) -> tuple[Deliberation, dict[str, int]]:
        """The decision and the positions of the control state it read (replay folds those)."""
        mine = _Waiting(intent, at)
        with self._queue_lock:
            self._queue.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            mine.done.wait()
            lead = mine.lead
        if lead:
            self._lead()
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _lead(self) -> None:
        """Decide one batch (the leader's own intent is in it), then hand the lead on."""
        with self._queue_lock:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
        try:
            self._decide(batch)
        finally:
            with self._queue_lock:
                if self._queue:
                    # The first waiter leads the next batch; it was already queued.
                    self._queue[0].lead = True
                    self._queue[0].done.set()
                else:
                    self._leading = False
            for waiting in batch:
                waiting.done.set()

    def _decide(self, batch: list[_Waiting]) -> None:
        by_tenant: dict[str, list[_Waiting]] = {}
        for waiting in batch:
            by_tenant.setdefault(waiting.intent.tenant, []).append(waiting)
        with self.state.lock:
            try:
                # one read of every log's size for the whole batch
                sizes = self.state.ledger.sizes([SYSTEM_LOG, *by_tenant])
                system = self.state.fold(SYSTEM_LOG, sizes[SYSTEM_LOG])
            except BaseException as exc:
                for waiting in batch:
                    waiting.error = exc
                return
            for tenant_id, group in by_tenant.items():
                try:
                    cases = [(w.intent, w.at) for w in group]
                    # Timed around the pure functions: the clock never reaches them.
                    with self.state.observers.timed("decide"):
                        tenant = self.state.fold(tenant_id, sizes[tenant_id])
                        engine = self.policies.engine(system, tenant)
                        ruled = policy_many(cases, engine, tenant, self.gate, self.config_hash)
                    with self.state.observers.timed("gate"):
                        decided = gate_many(cases, ruled, system, tenant, self.gate)
                except BaseException as exc:
                    for waiting in group:
                        waiting.error = exc
                    continue
                positions = {"system": system.position, "tenant": tenant.position}
                lapsed: set[str] = set()
                for waiting, deliberation in zip(group, decided, strict=True):
                    if deliberation.lapsed in lapsed:
                        # one posture.expired per lapsed posture, not one per intent
                        deliberation = replace(deliberation, lapsed=None)
                    elif deliberation.lapsed is not None:
                        lapsed.add(deliberation.lapsed)
                    waiting.result = (deliberation, dict(positions))
        self.batches += 1
        self.decided += len(batch)


def refuse_malformed_containment(request: IntentRequest) -> None:
    """Malformed containment input is refused before anything is recorded.

    The gate re-parses it too, but only after the intent is recorded; a
    malformed one is bad input (ContainmentError naming the field and the
    rule), not a decision. The TTL bound in force is the gate's to apply.
    """
    parse_refs(request.params)
    if request.action == PLAN_ACTION:
        parse_plan(request.params.get("plan"), request.tenant)
    elif is_containment(request.action):
        requested_spec(request.action, request.params, request.tenant, request.safety_class)


class Intake:
    """Takes one intent request from arrival to its outcome."""

    def __init__(
        self,
        state: ControlState,
        drafts: Drafts,
        decider: Decider,
        runner: Runner,
        *,
        approval_window: Callable[[], int],
        posture_lapsed: Callable[[str, str], object],
    ) -> None:
        self.state = state
        self.drafts = drafts
        self.decider = decider
        self.runner = runner
        self.approval_window = approval_window
        #: records a posture whose TTL ran out (tenant, posture event id)
        self.posture_lapsed = posture_lapsed
        #: tenants whose logs index no intent by a bare key (see :meth:`keys_scoped`)
        self._scoped: set[str] = set()

    def govern(
        self, request: IntentRequest, override: Binding | None, trace_id: str | None = None
    ) -> Outcome:
        refuse_malformed_containment(request)
        trace_id = checked_trace_id(trace_id)
        store = self.state.ledger.store
        now = self.drafts.now()
        event_time = request.event_time or now
        key = request.idempotency_key or derive_idempotency_key(request, event_time)
        tenant = request.tenant

        existing = self.earlier(tenant, request.actor.id, key)
        if existing is not None:
            return outcome_from_events(read_story(self.state.ledger, tenant, existing), True)
        if request.intent_id is not None and store.events_for_intent(tenant, request.intent_id):
            raise IntentIdTaken(id_taken(request.intent_id, tenant))

        intent_id = request.intent_id or self.drafts.ids.new(now)
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
        recorded_payload = {"intent": intent.to_canonical(), "intent_hash": intent_hash}
        if trace_id is not None:
            # Beside the intent, not in it: its hash and its approvals stay the trace's own.
            recorded_payload["trace_id"] = trace_id
        recorded = self.drafts.for_intent(
            intent,
            INTENT_RECORDED,
            recorded_payload,
            actor=intent.actor.to_canonical(),
            idempotency_key=intent_key(intent.actor.id, key),
            event_time=event_time,
        )
        decided, positions = self.decider.deliberate(intent, recorded.process_time)
        decision = decided.decision
        if decided.lapsed is not None:
            self.posture_lapsed(tenant, decided.lapsed)

        binding = override or self.runner.binding_for(intent.action)
        drafts = [
            recorded,
            self.drafts.for_intent(
                intent,
                DECISION_RECORDED,
                {
                    "decision": decision.to_canonical(),
                    "intent_hash": intent_hash,
                    "controls": positions,
                    "posture": decided.posture,
                },
                idempotency_key=intent_id_key(intent_id),
            ),
        ]
        if decision.gate is not None:
            drafts.append(
                self.drafts.for_intent(
                    intent,
                    GATE_BLOCKED,
                    decision.gate | {"verdict": decision.verdict.value, "intent_hash": intent_hash},
                )
            )
        if decision.verdict == Verdict.REQUIRE_APPROVAL:
            decided_at = drafts[1].process_time  # the decision.recorded event's time
            drafts.append(
                self.drafts.for_intent(
                    intent,
                    APPROVAL_REQUESTED,
                    approval_request(decision, decided_at, self.approval_window())
                    | {"intent_hash": intent_hash},
                )
            )
        if decision.verdict == Verdict.ALLOW and binding is not None:
            drafts.append(self.runner.start_draft(intent, intent_hash, binding))
        try:
            self.state.append(tenant, drafts)
        except DuplicateIntent as dup:
            if dup.idempotency_key == intent_id_key(intent_id):
                raise IntentIdTaken(id_taken(intent_id, tenant)) from None
            # The same actor recorded the same key between our check and our append.
            story = read_story(self.state.ledger, tenant, dup.intent_id)
            return outcome_from_events(story, True)

        if decision.verdict == Verdict.ALLOW and binding is not None:
            return self.runner.execute(intent, intent_hash, decision, binding)
        return Outcome(
            intent_id=intent_id,
            tenant=tenant,
            correlation_id=intent.correlation_id,
            status=VERDICT_STATUS[decision.verdict],
            decision=decision,
        )

    def earlier(self, tenant: str, actor: str, key: str) -> str | None:
        """The intent this actor already recorded under ``key``, if any.

        Keys are scoped to the actor; ledgers written before that indexed the
        bare key, and such an intent counts only when this actor recorded it
        (another actor's intent under the same key is never reached).
        """
        store = self.state.ledger.store
        found = store.intent_for_key(tenant, intent_key(actor, key))
        if found is not None or self.keys_scoped(tenant):
            return found
        legacy = store.intent_for_key(tenant, key)
        if legacy is None:
            return None
        first = store.events_for_intent(tenant, legacy)
        if first and first[0].type == INTENT_RECORDED and first[0].actor.get("id") == actor:
            return legacy
        return None

    def keys_scoped(self, tenant: str) -> bool:
        """Whether no intent of ``tenant``'s log is indexed by a bare key (no legacy lookup).

        Bare keys were written only before keys were scoped to actors, and a
        log is written in order: when its first intent is indexed by its
        scoped key, every later one is too. Looked up once per tenant (among
        its first events); until the log has an intent, both keys are tried.
        """
        if tenant in self._scoped:
            return True
        store = self.state.ledger.store
        first = next(
            (e for e in store.events(tenant, 0, _FIRST_LOOK) if e.type == INTENT_RECORDED), None
        )
        if first is None or first.intent_id is None:
            return False
        recorded = first.payload["intent"]
        scoped = intent_key(str(recorded["actor"]["id"]), str(recorded["idempotency_key"]))
        if store.intent_for_key(tenant, scoped) != first.intent_id:
            return False
        self._scoped.add(tenant)
        return True
