"""The governed-action path: nothing runs without an allow; every step is recorded."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exoarmur.clock import StepClock
from exoarmur.errors import IntentError
from exoarmur.executors import EchoExecutor, ExecutionFailed, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus, Verdict
from exoarmur.model.event import EXECUTION_STARTED, EventDraft, draft_of
from exoarmur.model.intent import ActionIntent
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.replay import replay
from samples import POLICY, intent


class Recorder:
    """An executor that remembers every call (a side effect we can count)."""

    kind = "recorder"

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.calls: list[ActionIntent] = []
        self.result = result if result is not None else {"ok": True}
        self.error = error

    def execute(self, action: ActionIntent) -> Any:
        self.calls.append(action)
        if self.error is not None:
            raise self.error
        return self.result

    __call__ = execute  # also usable as the function of Governor.run


def types(governor: Governor, tenant: str = "acme") -> list[str]:
    return [e.type for e in governor.ledger.store.events(tenant)]


def test_allowed_intent_executes_after_start_is_recorded(governor: Governor) -> None:
    seen_before_side_effect: list[list[str]] = []

    def side_effect(action: ActionIntent) -> dict[str, str]:
        seen_before_side_effect.append(types(governor))
        return {"read": action.target}

    outcome = governor.run(intent(), side_effect)
    assert outcome.status == OutcomeStatus.EXECUTED
    assert outcome.decision.reasons == ("allow-read-only",)
    assert outcome.result == {"read": "reports/q3.txt"}
    assert outcome.result_hash is not None
    assert outcome.result_hash.startswith("sha256:")
    assert seen_before_side_effect == [
        ["intent.recorded", "decision.recorded", "execution.started"]
    ]
    assert types(governor)[-1] == "execution.finished"
    assert governor.outcome("acme", outcome.intent_id) == outcome


def test_denied_intent_never_reaches_the_executor(governor: Governor) -> None:
    recorder = Recorder()
    outcome = governor.run(intent(action="fs.delete", safety_class="A2"), recorder)
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.verdict == Verdict.DENY
    assert outcome.decision.reasons == ()
    assert recorder.calls == []
    assert types(governor) == ["intent.recorded", "decision.recorded"]


def test_forbid_beats_permit(governor: Governor) -> None:
    recorder = Recorder()
    outcome = governor.run(intent(target="db/prod"), recorder)
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.reasons == ("never-prod-db",)
    assert recorder.calls == []


def test_allowed_intent_without_executor_is_handed_back(governor: Governor) -> None:
    outcome = governor.submit(intent(action="ticket.create", safety_class="A1"))
    assert outcome.status == OutcomeStatus.DECIDED
    assert types(governor) == ["intent.recorded", "decision.recorded"]


def test_bound_executor_runs_on_submit(governor: Governor) -> None:
    outcome = governor.submit(intent())
    assert outcome.status == OutcomeStatus.EXECUTED
    assert outcome.executor == "echo"


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        (Recorder(error=ExecutionFailed("HTTP 500 from x")), "HTTP 500 from x"),
        (Recorder(error=RuntimeError("boom")), "RuntimeError: boom"),
        (Recorder(result={"bad": float("inf")}), "as JSON"),
    ],
)
def test_executor_failures_are_recorded_not_raised(
    governor: Governor, executor: Recorder, message: str
) -> None:
    outcome = governor.run(intent(), executor)
    assert outcome.status == OutcomeStatus.FAILED
    assert outcome.error is not None
    assert message in outcome.error
    finished = list(governor.ledger.store.events("acme"))[-1]
    assert finished.payload["status"] == "failed"
    assert governor.outcome("acme", outcome.intent_id).status == OutcomeStatus.FAILED


def test_a_duplicate_returns_the_first_outcome_and_writes_nothing(governor: Governor) -> None:
    recorder = Recorder()
    first = governor.run(intent(idempotency_key="call-1"), recorder)
    size = governor.ledger.size("acme")
    again = governor.run(intent(idempotency_key="call-1", target="other"), recorder)
    assert again.duplicate
    assert again.intent_id == first.intent_id
    assert again.status == first.status
    assert again.result_hash == first.result_hash
    assert governor.ledger.size("acme") == size
    assert len(recorder.calls) == 1


def test_a_redelivery_with_the_same_source_event_is_a_duplicate(governor: Governor) -> None:
    sent = intent(event_time="2026-03-01T10:00:00Z")
    first = governor.submit(sent)
    again = governor.submit(sent)
    assert again.duplicate
    assert again.intent_id == first.intent_id


def test_concurrent_duplicates_execute_once(governor: Governor) -> None:
    recorder = Recorder()
    barrier = threading.Barrier(8)
    outcomes = []

    def deliver() -> None:
        barrier.wait()
        outcomes.append(governor.run(intent(idempotency_key="same"), recorder))

    pool = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(recorder.calls) == 1
    assert len({o.intent_id for o in outcomes}) == 1
    assert sum(not o.duplicate for o in outcomes) == 1
    assert types(governor).count("intent.recorded") == 1


def test_policy_evaluation_errors_deny_and_are_recorded(ledger: Ledger) -> None:
    policy = '@id("big") permit (principal, action, resource) when { context.params.size > 10 };'
    governor = Governor(
        ledger=ledger,
        policy=PolicyEngine(PolicyBundle.from_text(policy)),
        clock=StepClock(),
        ids=SeededIds(1),
    )
    outcome = governor.submit(intent(params={}))
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.errors
    assert governor.submit(intent(params={"size": 11})).status == OutcomeStatus.DECIDED


def test_bad_input_raises_and_writes_nothing(governor: Governor) -> None:
    with pytest.raises(IntentError, match="safety_class"):
        governor.submit(intent(safety_class="A7"))
    assert governor.ledger.store.tenants() == ["_system"]  # only the policy activation


def test_started_but_unfinished_execution_becomes_outcome_unknown(governor: Governor) -> None:
    recorder = Recorder()
    outcome = governor.submit(intent(action="ticket.create", safety_class="A1"))
    # What a crash leaves: execution.started durable, no execution.finished.
    now = governor.clock.now()
    governor.ledger.append(
        "acme",
        [
            EventDraft(
                event_id="crash-start",
                tenant="acme",
                type=EXECUTION_STARTED,
                correlation_id=outcome.correlation_id,
                event_time=now,
                process_time=now,
                actor={"id": "exoarmur", "kind": "system"},
                payload={"executor": "recorder", "binding": "x", "intent_hash": "h"},
                intent_id=outcome.intent_id,
            )
        ],
    )
    assert governor.outcome("acme", outcome.intent_id).status == OutcomeStatus.OUTCOME_UNKNOWN
    recovered = governor.recover()
    assert [o.intent_id for o in recovered] == [outcome.intent_id]
    assert recovered[0].status == OutcomeStatus.OUTCOME_UNKNOWN
    assert governor.recover() == []  # recorded once
    assert recorder.calls == []
    assert types(governor)[-1] == "execution.outcome_unknown"


def test_decide_batch_agrees_with_decide(governor: Governor) -> None:
    from exoarmur.model.intent import parse_intent

    intents = [
        ActionIntent(
            intent_id="01KDVDNA00E9J26YC765WVR3F0",
            idempotency_key=f"k{i}",
            correlation_id="c",
            event_time=governor.clock.now(),
            **parse_intent(intent(action=a, target=t, safety_class=s)).model_dump(
                exclude={"intent_id", "idempotency_key", "correlation_id", "event_time"}
            ),
        )
        for i, (a, t, s) in enumerate(
            [("fs.read", "x", "A0"), ("fs.rm", "x", "A2"), ("fs.read", "db/prod", "A0")]
        )
    ]
    engine = governor.policy_for("acme")
    assert engine.decide_batch(intents) == [engine.decide(i) for i in intents]
    assert engine.decide_batch([]) == []


@settings(
    max_examples=60,
    deadline=None,  # a loaded machine is slow, not wrong
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["fs.read", "fs.delete", "ticket.create", "db.drop"]),
            st.sampled_from(["A0", "A1", "A2", "A3"]),
            st.sampled_from(["reports/a", "db/prod"]),
            st.sampled_from(["k1", "k2", "k3", None]),
        ),
        max_size=8,
    )
)
def test_nothing_executes_without_an_allow_decision(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str, str, str | None]]
) -> None:
    from exoarmur.ledger.keys import SigningKey
    from exoarmur.ledger.sqlite import SqliteStore

    with SqliteStore(tmp_path_factory.mktemp("p") / "l.db") as store:
        recorder = Recorder()
        registry = ExecutorRegistry()
        registry.bind("*", recorder)
        governor = Governor(
            ledger=Ledger(store, SigningKey.generate("p/q")),
            policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
            executors=registry,
            clock=StepClock(),
            ids=SeededIds(3),
        )
        for action, klass, target, key in steps:
            governor.submit(
                intent(action=action, safety_class=klass, target=target, idempotency_key=key)
            )
        executed = {call.intent_id for call in recorder.calls}
        for intent_id in executed:
            assert governor.outcome("acme", intent_id).decision.verdict == Verdict.ALLOW
        for call in recorder.calls:
            assert call.target != "db/prod"
            assert call.safety_class.value == "A0" or call.action == "ticket.create"
        assert len(recorder.calls) == len(executed)


def test_a_key_recorded_before_keys_were_scoped_reaches_only_its_own_actor(
    tmp_path: Path,
) -> None:
    def governor(store: SqliteStore) -> Governor:
        executors = ExecutorRegistry()
        executors.bind("*", EchoExecutor())
        return Governor(
            ledger=Ledger(store, SigningKey.from_seed("t/legacy", bytes(32))),
            policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
            executors=executors,
            clock=StepClock(),
            ids=SeededIds(3),
        )

    body = {
        "tenant": "acme",
        "actor": {"id": "agent-7", "kind": "agent"},
        "action": "fs.read",
        "target": "reports/q3.txt",
        "safety_class": "A0",
        "params": {"token": "s3cret-7"},
        "idempotency_key": "job-1",
    }
    with governor(SqliteStore(tmp_path / "new.db")) as first:
        recorded = first.submit(body)
        events = {log: list(first.ledger.store.events(log)) for log in ("_system", "acme")}
    # the same events as an older ExoArmur indexed them: by the bare key
    old = SqliteStore(tmp_path / "old.db")
    for log, logged in events.items():
        drafts = [draft_of(e) for e in logged]
        old.append(
            log,
            [
                replace(d, idempotency_key=e.payload["intent"]["idempotency_key"])
                if e.type == "intent.recorded"
                else replace(d, idempotency_key=None)
                for d, e in zip(drafts, logged, strict=True)
            ],
        )
    with governor(old) as upgraded:
        again = upgraded.submit(body | {"params": {}})
        assert (again.intent_id, again.duplicate) == (recorded.intent_id, True)
        other = upgraded.submit(body | {"actor": {"id": "agent-8", "kind": "agent"}, "params": {}})
        assert other.intent_id != recorded.intent_id
        assert not other.duplicate
        assert "s3cret-7" not in other.model_dump_json()
        assert replay(upgraded.ledger.store, "acme").verified
