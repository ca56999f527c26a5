"""The containment room: the TTL engine, the plan executor and plan recovery.

Wired by the Governor beside its other rooms. Every change it makes is an
event appended before the next one is attempted, so a process killed at any
boundary leaves a record the next start finishes: an expiry recorded and not
yet reverted is reverted (once); a plan cut anywhere is compensated (or, if
it had completed, its outcome recorded), never re-run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..encoding import content_hash, format_time, parse_time
from ..errors import NotFound
from ..executors import ExecutionFailed, ExecutorRegistry
from ..governor.drafts import Drafts, operator
from ..governor.outcomes import outcome_from_events, read_story
from ..governor.running import Runner
from ..governor.state import ControlState
from ..model.decision import Outcome
from ..model.event import (
    EXECUTION_FINISHED,
    EXECUTION_STARTED,
    INTENT_RECORDED,
    SYSTEM_LOG,
    Event,
)
from ..model.intent import ActionIntent
from .effectors import Effector, PlanRunner
from .fold import (
    CONTAINMENT_EXPIRED,
    CONTAINMENT_REVERTED,
    PLAN_COMPENSATED,
    PLAN_COMPLETED,
    PLAN_STARTED,
    PLAN_STEP_FINISHED,
    PLAN_STEP_STARTED,
    Control,
    ControlsInForce,
    change_for,
)
from .model import EFFECTORS, PLAN_ACTION, containment_spec, is_containment
from .plans import Plan, parse_plan

ENGINE = operator("exoarmur")


class Containment:
    """Controls in force, their expiry, and plans of them, for every tenant."""

    def __init__(self, state: ControlState, drafts: Drafts, runner: Runner) -> None:
        self.state = state
        self.drafts = drafts
        self.runner = runner
        #: held while a control is classified and its change recorded
        self.lock = threading.RLock()
        self._views: dict[str, ControlsInForce] = {}
        self.attach(runner.executors)
        runner.settle = self.settle

    def attach(self, executors: ExecutorRegistry) -> None:
        """Give the effectors and the plan runner bound in ``executors`` their world."""
        for action in [*(e.action for e in EFFECTORS.values()), PLAN_ACTION]:
            binding = executors.binding_for(action)
            inner = binding.executor.inner if binding is not None else None
            if isinstance(inner, Effector):
                inner.attach((self.view, self.drafts.now))
            elif isinstance(inner, PlanRunner):
                inner.run = self.run_plan

    @contextmanager
    def settle(self, intent: ActionIntent, result: Any) -> Iterator[Any]:
        """Hold the controls still until a simulated effector's change is recorded.

        The effector read the fold before the runner records its outcome; a
        concurrent submit of the same control may have recorded its own in
        between, and both would then say ``applied``. Under the lock, the
        change is derived again at the position it is recorded at (with the
        time the effector applied it), which is what replay re-derives: one
        says ``applied``, the other ``unchanged`` or ``extended``. Only
        results of a simulated effector are settled; a real one reports what
        it did.
        """
        binding = self.runner.binding_for(intent.action)
        inner = binding.executor.inner if binding is not None else None
        if not (is_containment(intent.action) and isinstance(inner, Effector)):
            yield result
            return
        with self.lock:
            change = result["containment"]
            spec = containment_spec(intent)
            current = self.view(intent.tenant).controls.get(spec.control)
            settled = change_for(current, spec, parse_time(change["at"]))
            yield result if settled == change else result | {"containment": settled}

    # -- the fold ----------------------------------------------------------------

    def view(self, tenant: str) -> ControlsInForce:
        """The tenant's controls in force, caught up with its log."""
        with self.lock:
            fold = self._views.setdefault(tenant, ControlsInForce(tenant))
            size = self.state.ledger.size(tenant)
            if fold.position < size:
                for event in self.state.ledger.store.events(tenant, fold.position, size):
                    fold.apply(event)
            return fold

    def status(self, tenant: str) -> list[Control]:
        return self.view(tenant).in_force()

    def tenants(self) -> list[str]:
        return [t for t in self.state.ledger.store.tenants() if t != SYSTEM_LOG]

    def _record(
        self,
        tenant: str,
        kind: str,
        payload: dict[str, Any],
        correlation: str | None = None,
        at: datetime | None = None,
    ) -> Event:
        draft = self.drafts.for_log(tenant, kind, payload, ENGINE, at=at)
        if correlation is not None:
            draft = replace(draft, correlation_id=correlation)
        return self.state.append_one(tenant, draft)

    # -- the TTL engine ------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[Event]:
        """Expire and revert every control whose TTL ``now`` has passed (the clock's if None)."""
        at = now or self.drafts.now()
        recorded: list[Event] = []
        for tenant in self.tenants():
            with self.lock:
                for control in self.view(tenant).due(at):
                    recorded.extend(self._expire(tenant, control, at))
        return recorded

    def _expire(self, tenant: str, control: Control, at: datetime) -> list[Event]:
        what = {
            "control": control.key,
            "effector": control.effector,
            "scope": control.scope,
            "intent_id": control.intent_id,
            "plan_id": control.plan_id,
            "step": control.step,
        }
        events = []
        if not control.expiring:
            due = format_time(control.expires_at)
            expired = what | {"due": due}
            events.append(
                self._record(tenant, CONTAINMENT_EXPIRED, expired, control.correlation, at)
            )
        # the inverse of a simulated effector is the record itself
        events.append(
            self._record(
                tenant, CONTAINMENT_REVERTED, what | {"cause": "expired"}, control.correlation, at
            )
        )
        return events

    # -- plans -----------------------------------------------------------------------

    def run_plan(self, intent: ActionIntent) -> dict[str, Any]:
        """Run a governed plan step by step; compensate in reverse if a step fails."""
        plan = parse_plan(intent.params.get("plan"), intent.tenant)
        tenant, plan_id = intent.tenant, intent.intent_id
        head = {"plan_id": plan_id, "plan_hash": plan.plan_hash}
        self._record(
            tenant, PLAN_STARTED, head | {"sequence": plan.sequence}, intent.correlation_id
        )
        changes = []
        for number, spec in enumerate(plan.steps, start=1):
            step = intent.model_copy(
                update={
                    "action": EFFECTORS[spec.effector].action,
                    "target": spec.scope.text,
                    "params": spec.to_params(),
                    "safety_class": EFFECTORS[spec.effector].safety_class,
                }
            )
            blocked, positions = self.runner.blocked_now(step)
            where = head | {"step": number, "control": spec.control, "intent_id": plan_id}
            self._record(
                tenant, PLAN_STEP_STARTED, where | {"controls": positions}, intent.correlation_id
            )
            failure = None
            with self.lock:
                binding = self.runner.binding_for(step.action)
                if blocked is not None:
                    failure = f"blocked by {blocked[0]}: {blocked[1]}"
                elif binding is None:
                    failure = f"no effector is bound to {step.action}"
                else:
                    try:
                        result, _ = binding.executor.call(step)
                        change = result["containment"]
                    except (ExecutionFailed, KeyError, TypeError) as exc:
                        failure = str(exc)
                finished = where | (
                    {"status": "failed", "error": failure}
                    if failure is not None
                    else {"status": "succeeded", "containment": change}
                )
                self._record(tenant, PLAN_STEP_FINISHED, finished, intent.correlation_id)
            if failure is not None:
                reverted = self.compensate(tenant, plan_id, intent.correlation_id, number)
                raise ExecutionFailed(
                    f"plan step {number} ({spec.effector} on {spec.scope.text}) failed: "
                    f"{failure}; compensated steps {reverted or 'none'}"
                )
            changes.append(change)
        done = head | {"sequence": plan.sequence, "steps": len(plan.steps)}
        self._record(tenant, PLAN_COMPLETED, done, intent.correlation_id)
        return {"plan": done, "changes": changes}

    def plan_events(self, tenant: str, plan_id: str) -> list[Event]:
        """A plan's events, read from the log itself: what compensation and recovery act on.

        From the plan's ``intent.recorded`` to the end of the log (nothing of
        a plan comes before it), not through an index: these readers act on
        what is absent (a step not yet reverted), and an index outside the
        hashed bytes could hide it. The index only says where to start, and
        only when what it points at is the plan's recording (its bytes name
        the plan, and an intent is recorded once); otherwise from the start.
        """
        store = self.state.ledger.store
        story = store.events_for_intent(tenant, plan_id)
        start = story[0].seq if story and story[0].type == INTENT_RECORDED else 0
        return [
            e
            for e in store.events(tenant, start, store.size(tenant))
            if e.intent_id is None and e.payload.get("plan_id") == plan_id
        ]

    def plan_ids(self, tenant: str) -> list[str]:
        """Every plan of a tenant (its plan intent's id), oldest first, from the caught-up fold."""
        with self.lock:
            return list(self.view(tenant).plans)

    def plan_summary(
        self, tenant: str, plan_id: str, *, with_events: bool = True
    ) -> dict[str, Any] | None:
        """A plan's hash, steps, status and every plan event; None if there is no such plan.

        Read through the store's indexes (the plan's intent, then its
        correlation, which every plan event and expiry of its controls
        carries), never by scanning the log.
        """
        try:
            story = read_story(self.state.ledger, tenant, plan_id)
        except NotFound:
            return None
        if not story or story[0].payload["intent"]["action"] != PLAN_ACTION:
            return None
        outcome = outcome_from_events(story)
        params = story[0].payload["intent"]["params"]
        events = []
        if with_events:
            store = self.state.ledger.store
            related = store.events_for_correlation(tenant, story[0].correlation_id)
            events = [
                {"type": e.type, "seq": e.seq, **e.payload}
                for e in related
                if e.intent_id is None and e.payload.get("plan_id") == plan_id
            ]
        return {
            "plan_id": plan_id,
            "plan_hash": params.get("plan_hash"),
            "sequence": [s["effector"] for s in params["plan"]["steps"]],
            "status": outcome.status.value,
            "error": outcome.error,
            "events": events,
        }

    def compensate(
        self, tenant: str, plan_id: str, correlation: str, failed_step: int | None
    ) -> list[int]:
        """Revert this plan's applied steps, last first, each once; record ``plan.compensated``."""
        events = self.plan_events(tenant, plan_id)
        plan_hash = events[0].payload["plan_hash"] if events else None
        done = {
            e.payload["step"]
            for e in events
            if e.type == CONTAINMENT_REVERTED and e.payload.get("cause") == "compensation"
        }
        applied = [
            e.payload
            for e in events
            if e.type == PLAN_STEP_FINISHED
            and e.payload["status"] == "succeeded"
            and e.payload["containment"]["change"] != "unchanged"
        ]
        reverted = []
        with self.lock:
            view = self.view(tenant)
            for step in reversed(applied):
                change = step["containment"]
                reverted.append(step["step"])
                if step["step"] in done or change["control"] not in view.controls:
                    continue  # reverted before a restart, or expired meanwhile
                payload = {
                    "control": change["control"],
                    "effector": change["effector"],
                    "scope": change["scope"],
                    "intent_id": plan_id,
                    "plan_id": plan_id,
                    "step": step["step"],
                    "cause": "compensation",
                }
                if change["change"] == "extended":
                    payload["restore_expires_at"] = change["previous_expires_at"]
                self._record(tenant, CONTAINMENT_REVERTED, payload, correlation)
            summary = {
                "plan_id": plan_id,
                "plan_hash": plan_hash,
                "failed_step": failed_step,
                "reverted": reverted,
            }
            self._record(tenant, PLAN_COMPENSATED, summary, correlation)
        return reverted

    def recover(self) -> list[Outcome]:
        """Finish plans a stopped process cut: record a completed one, compensate the rest."""
        outcomes = []
        store = self.state.ledger.store
        for tenant in self.tenants():
            for intent_id in store.unfinished_executions(tenant):
                story = read_story(self.state.ledger, tenant, intent_id)
                intent = ActionIntent.from_canonical(story[0].payload["intent"])
                if intent.action != PLAN_ACTION:
                    continue
                outcomes.append(self._finish_cut_plan(tenant, intent, story))
        return outcomes

    def _finish_cut_plan(self, tenant: str, intent: ActionIntent, story: list[Event]) -> Outcome:
        started = next(e for e in story if e.type == EXECUTION_STARTED)
        events = self.plan_events(tenant, intent.intent_id)
        kinds = {e.type for e in events}
        payload: dict[str, Any] = {
            "executor": started.payload["executor"],
            "intent_hash": started.payload["intent_hash"],
            "attempt": 1,
            "controls": None,
            "recovered": True,
        }
        completed = next((e for e in events if e.type == PLAN_COMPLETED), None)
        if completed is not None:
            changes = [
                e.payload["containment"]
                for e in events
                if e.type == PLAN_STEP_FINISHED and e.payload["status"] == "succeeded"
            ]
            result = {"plan": completed.payload, "changes": changes}
            payload.update(status="succeeded", result=result, result_hash=content_hash(result))
        else:
            if PLAN_COMPENSATED not in kinds:
                self.compensate(tenant, intent.intent_id, intent.correlation_id, None)
            payload.update(
                status="failed",
                error="the plan was interrupted (the process stopped); its applied steps "
                "were compensated, none re-run",
            )
        self.state.append_one(tenant, self.drafts.for_intent(intent, EXECUTION_FINISHED, payload))
        return outcome_from_events(read_story(self.state.ledger, tenant, intent.intent_id))


def plan_intent(
    plan: Plan, tenant: str, actor: str, idempotency_key: str | None = None
) -> dict[str, Any]:
    """The intent a plan is governed as: policy sees every step, approvals bind to its hash."""
    return {
        "tenant": tenant,
        "actor": {"id": actor, "kind": "operator"},
        "action": PLAN_ACTION,
        "target": f"plan:{plan.plan_hash}",
        "params": {"plan": plan.to_canonical(), "plan_hash": plan.plan_hash},
        "safety_class": plan.safety_class.value,
        "idempotency_key": idempotency_key or f"plan-{plan.plan_hash[7:39]}",
    }
