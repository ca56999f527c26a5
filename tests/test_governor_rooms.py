"""The governor's rooms: one decide path for live and replay, and the executor guard."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from exoarmur.clock import StepClock
from exoarmur.errors import InputError
from exoarmur.executors import EchoExecutor, ExecutionFailed, ExecutorRegistry
from exoarmur.gate import Controls, GateConfig
from exoarmur.governor.deciding import decide, engine_in_force
from exoarmur.governor.drafts import operator
from exoarmur.model.decision import Decision, OutcomeStatus
from exoarmur.model.event import (
    DECISION_RECORDED,
    INTENT_RECORDED,
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POSTURE_SET,
    SYSTEM_LOG,
)
from exoarmur.model.intent import ActionIntent
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.policy.engine import engine_from_activation
from exoarmur.replay import replay
from samples import intent


class Raising:
    kind = "raising"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def execute(self, intent: ActionIntent) -> Any:
        raise self.error


class Unrecordable:
    kind = "unrecordable"

    def execute(self, intent: ActionIntent) -> Any:
        return {"when": object()}


class HoldingItself:
    kind = "holding-itself"

    def execute(self, intent: ActionIntent) -> Any:
        result: dict[str, Any] = {"rows": []}
        result["rows"].append(result)  # a walk over it would never end
        return result


def _failure(executor: Any, action: str = "x.y") -> ExecutionFailed:
    registry = ExecutorRegistry()
    registry.bind("x.*", executor, retries=2)
    binding = registry.binding_for(action)
    assert binding is not None
    assert (binding.pattern, binding.retries, binding.executor.kind) == ("x.*", 2, executor.kind)
    with pytest.raises(ExecutionFailed) as caught:
        binding.executor.execute(ActionIntent.from_canonical(_recorded_intent()))
    return caught.value


def _recorded_intent() -> dict[str, Any]:
    return {
        "intent_id": "01J00000000000000000000000",
        "tenant": "acme",
        "actor": {"id": "agent-1", "kind": "agent"},
        "action": "x.y",
        "target": "t",
        "params": {},
        "safety_class": "A0",
        "idempotency_key": "k",
        "correlation_id": "c",
        "event_time": "2026-01-01T00:00:00Z",
    }


@pytest.mark.parametrize(
    ("executor", "message", "retryable"),
    [
        pytest.param(Raising(RuntimeError("boom")), "RuntimeError: boom", False, id="any-error"),
        pytest.param(
            Raising(ExecutionFailed("503", retryable=True)), "503", True, id="retryable-kept"
        ),
        pytest.param(Raising(ExecutionFailed("404")), "404", False, id="not-retryable-kept"),
        pytest.param(
            Unrecordable(), "executor returned a result that is not JSON", False, id="not-json"
        ),
        pytest.param(
            HoldingItself(),
            "executor returned a result that is not JSON: value cannot be canonicalized as "
            "JSON (RFC 8785): it holds itself",
            False,
            id="holds-itself",
        ),
    ],
)
def test_the_registry_guard_turns_every_failure_into_execution_failed(
    executor: Any, message: str, retryable: bool
) -> None:
    failure = _failure(executor)
    assert str(failure).startswith(message)
    assert failure.retryable is retryable


def test_an_unbound_action_has_no_guarded_binding() -> None:
    registry = ExecutorRegistry()
    registry.bind("fs.read", EchoExecutor())
    assert registry.binding_for("fs.write") is None


def test_an_executor_raising_bad_input_is_recorded_as_its_own_error(governor: Governor) -> None:
    # An InputError raised by the action itself is not a result "that is not JSON".
    def refuses(_: ActionIntent) -> Any:
        raise InputError("params.path: outside the share")

    outcome = governor.run(intent(action="ticket.create"), refuses)
    assert outcome.status == OutcomeStatus.FAILED
    assert outcome.error == "InputError: params.path: outside the share"


def test_the_recorded_decision_is_what_the_shared_decide_returns(governor: Governor) -> None:
    outcomes = [
        governor.submit(intent(params={"n": n}, safety_class=c))
        for n, c in enumerate(["A0", "A2", "A1"])
    ]
    store = governor.ledger.store
    gate = GateConfig.from_recorded(governor.config["gate"])
    for outcome in outcomes:
        story = governor.story("acme", outcome.intent_id)
        recorded = next(e for e in story if e.type == INTENT_RECORDED)
        decided = next(e for e in story if e.type == DECISION_RECORDED)
        positions = decided.payload["controls"]
        system, tenant = Controls(SYSTEM_LOG), Controls("acme")
        for event in store.events(SYSTEM_LOG, 0, positions["system"]):
            system.apply(event)
        for event in store.events("acme", 0, positions["tenant"]):
            tenant.apply(event)

        def load(log: str, _hash: str, event_id: str) -> Any:
            found = store.event_by_id(log, event_id)
            return None if found is None else engine_from_activation(found)

        engine = engine_in_force(system, tenant, load)
        assert engine is not None
        again = decide(
            ActionIntent.from_canonical(recorded.payload["intent"]),
            engine,
            system,
            tenant,
            gate,
            recorded.process_time,
            governor.config_hash,
        )
        assert again.decision == Decision.from_canonical(decided.payload["decision"])
        assert again.posture == decided.payload["posture"]
    assert replay(store, "acme").verified


def test_no_policy_in_force_is_none_for_the_shared_lookup() -> None:
    def load(*_: str) -> Any:
        raise AssertionError("nothing to load")

    assert engine_in_force(Controls(SYSTEM_LOG), Controls("acme"), load) is None


def test_the_governor_exposes_its_rooms_and_shares_one_clock(governor: Governor) -> None:
    for room in ("intake", "runner", "votes", "switches", "principal_book", "access"):
        assert getattr(governor, room) is not None
    clock = StepClock()
    governor.clock = clock
    assert governor.drafts.clock is clock
    registry = ExecutorRegistry()
    governor.executors = registry
    assert governor.runner.executors is registry


def test_replay_loads_no_executor() -> None:
    # Replay imports the governor's pure deciding module, never the facade.
    probe = (
        "import sys, exoarmur.replay; "
        "loaded = sorted(m for m in sys.modules if m.startswith('exoarmur.executors')); "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_and_the_old_module_export_the_same_names() -> None:
    import exoarmur.governor as package
    from exoarmur import pipeline

    for name in package.__all__:
        assert getattr(package, name) is getattr(pipeline, name)
    assert sorted(package.__all__) == sorted(pipeline.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = package.Nothing


def _folds(governor: Governor) -> tuple[Controls, Controls]:
    with governor.state.lock:
        return governor.state.fold(SYSTEM_LOG), governor.state.fold("acme")


def test_deciding_many_at_once_is_deciding_each_alone(governor: Governor) -> None:
    from datetime import timedelta

    from exoarmur.governor.deciding import decide_many

    governor.set_posture("acme", "heightened", "drill", LOCAL_ADMIN, ttl_seconds=5)
    system, tenant = _folds(governor)
    engine = governor.policy_for("acme")
    gate = governor.gate
    now = governor.clock.now()
    cases = [
        (ActionIntent.from_canonical(_recorded_intent() | changes), now + timedelta(seconds=s))
        for changes, s in [
            (dict[str, Any](), 0),
            ({"action": "ticket.create", "safety_class": "A1"}, 0),
            ({"target": "db/prod"}, 60),  # after the posture's TTL: another posture
            ({"actor": {"id": "svc", "kind": "service"}}, 60),
        ]
    ]
    together = decide_many(cases, engine, system, tenant, gate, "sha256:c")
    alone = [decide(i, engine, system, tenant, gate, at, "sha256:c") for i, at in cases]
    assert together == alone
    assert {d.posture for d in together} == {"heightened", "normal"}


def test_intents_waiting_for_a_batch_are_decided_together(governor: Governor) -> None:
    import threading
    import time

    decider = governor.intake.decider
    outcomes: list[Any] = []
    with governor.state.lock:  # the first leader waits here, so the others queue
        threads = [
            threading.Thread(
                target=lambda n=n: outcomes.append(governor.submit(intent(params={"n": n})))
            )
            for n in range(6)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while decider.waiting < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert decider.waiting == 5
    for thread in threads:
        thread.join()
    assert (decider.batches, decider.decided) == (2, 6)
    assert {o.status for o in outcomes} == {OutcomeStatus.EXECUTED}
    positions = {str(governor.story("acme", o.intent_id)[1].payload["controls"]) for o in outcomes}
    assert len(positions) <= 2  # one set of positions per batch
    assert replay(governor.ledger.store, "acme").verified


def test_a_failure_to_decide_reaches_every_intent_of_its_batch(
    governor: Governor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exoarmur.errors import PolicyError, StoreError

    def no_policy(*_: object) -> Any:
        raise PolicyError("no policy is active")

    monkeypatch.setattr(governor.policies, "engine", no_policy)
    with pytest.raises(PolicyError):
        governor.submit(intent())
    monkeypatch.undo()

    def unreadable(log: str, _size: int | None = None) -> Any:
        raise StoreError(f"cannot read {log}")

    monkeypatch.setattr(governor.state, "fold", unreadable)
    with pytest.raises(StoreError, match="cannot read"):
        governor.submit(intent(params={"again": True}))
    monkeypatch.undo()
    assert governor.submit(intent(params={"after": 1})).status == OutcomeStatus.EXECUTED


def test_a_read_of_another_tenant_is_refused_and_recorded(governor: Governor) -> None:
    from exoarmur.errors import PermissionDenied

    reader, _ = governor.add_principal("reader-beta", "auditor", ["beta"])
    governor.authorize_read(reader, "beta", "intents")  # its own tenant: nothing recorded
    before = governor.ledger.size(SYSTEM_LOG)
    with pytest.raises(PermissionDenied, match="does not act for tenant acme"):
        governor.authorize_read(reader, "acme", "intents")
    (refused,) = governor.ledger.store.events(SYSTEM_LOG, before)
    assert refused.type == "access.refused"
    assert refused.payload == {
        "principal": "reader-beta",
        "tenant": "acme",
        "attempted": "read intents",
    }


def test_appends_returning_out_of_order_are_folded_without_reading_them_back(
    governor: Governor,
) -> None:
    """A group commit hands its appends back in any order; none is read back from the store."""
    state = governor.state
    reads: list[tuple[str, int, int | None]] = []
    store = state.ledger.store
    read = store.events

    def counted(log: str, start: int = 0, stop: int | None = None) -> Any:
        reads.append((log, start, stop))
        return read(log, start, stop)

    with state.lock:
        before = state.fold("acme").position
    first = governor.drafts.for_log(
        "acme", KILLSWITCH_ENGAGED, {"scope": "tenant:acme", "reason": "first"}, operator("op")
    )
    second = governor.drafts.for_log(
        "acme", KILLSWITCH_ENGAGED, {"scope": "action:x.*", "reason": "second"}, operator("op")
    )
    # The first append's events are committed but not yet handed to the state.
    (early,) = state.ledger.append("acme", [first])
    store.events = counted  # type: ignore[method-assign]
    try:
        (late,) = state.append("acme", [second])
        assert (early.seq, late.seq) == (before, before + 1)
        assert reads == []
        with state.lock:
            # the size read before the late append returned: the event held is folded too
            controls = state.fold("acme", before + 1)
        # only the one event nobody handed over is read
        assert reads == [("acme", before, before + 1)]
        assert controls.position == before + 2
        assert state._ahead["acme"] == {}
        assert set(controls.switches) == {"tenant:acme", "action:x.*"}
        reads.clear()
        # handed over in order: folded at once, nothing read
        (third,) = state.append(
            "acme",
            [
                governor.drafts.for_log(
                    "acme",
                    KILLSWITCH_RELEASED,
                    {"scope": "action:x.*", "reason": "done"},
                    operator("op"),
                )
            ],
        )
        assert state._folds["acme"].position == third.seq + 1  # folded by the append itself
        with state.lock:
            assert state.fold("acme", third.seq + 1).position == third.seq + 1
        assert reads == []
        assert set(state.fold("acme").switches) == {"tenant:acme"}
    finally:
        del store.events


def test_a_gap_nobody_fills_is_read_from_the_store(governor: Governor) -> None:
    """Events held ahead of a gap are dropped past a bound; the fold still ends exact."""
    from exoarmur.governor import state as state_module

    state = governor.state
    with state.lock:
        state.fold("acme")
    gap = governor.drafts.for_log(
        "acme", KILLSWITCH_ENGAGED, {"scope": "tenant:acme", "reason": "gap"}, operator("op")
    )
    state.ledger.append("acme", [gap])
    limit = state_module._AHEAD_LIMIT
    state_module._AHEAD_LIMIT = 1
    held: list[int] = []
    try:
        for n, posture in enumerate(("lockdown", "heightened", "lockdown")):
            draft = governor.drafts.for_log(
                "acme",
                POSTURE_SET,
                {"posture": posture, "until": None, "reason": f"r{n}"},
                operator("op"),
            )
            state.append("acme", [draft])
            held.append(len(state._ahead["acme"]))
    finally:
        state_module._AHEAD_LIMIT = limit
    # past the bound, what is held is dropped: the store is read instead
    assert held == [1, 2, 1]
    with state.lock:
        controls = state.fold("acme")
    assert controls.position == state.ledger.size("acme")
    assert "tenant:acme" in controls.switches
    with state.lock:
        # a size past what the store holds (a reader ahead of it) folds what there is
        assert state.fold("acme", controls.position + 5).position == controls.position
    now = controls.posture_at(governor.drafts.now())
    assert (now.posture, now.reason) == ("lockdown", "r2")


def test_a_fold_to_a_size_reads_no_further_than_it(governor: Governor) -> None:
    """Two events nobody handed over, then one handed over: each fold reads only its own."""
    state = governor.state
    reads: list[tuple[str, int, int | None]] = []
    store = state.ledger.store
    read = store.events

    def counted(log: str, start: int = 0, stop: int | None = None) -> Any:
        reads.append((log, start, stop))
        return read(log, start, stop)

    def engaged(scope: str) -> Any:
        reason = {"scope": scope, "reason": "r"}
        return governor.drafts.for_log("acme", KILLSWITCH_ENGAGED, reason, operator("op"))

    with state.lock:
        before = state.fold("acme").position
    state.ledger.append("acme", [engaged("action:a.*")])
    state.ledger.append("acme", [engaged("action:b.*")])
    store.events = counted  # type: ignore[method-assign]
    try:
        state.append("acme", [engaged("action:c.*")])
        with state.lock:
            assert state.fold("acme", before + 1).position == before + 1
            assert reads == [("acme", before, before + 1)]
            controls = state.fold("acme")
        assert reads[1:] == [("acme", before + 1, before + 2)]
        assert controls.position == before + 3
        assert set(controls.switches) == {"action:a.*", "action:b.*", "action:c.*"}
    finally:
        del store.events
