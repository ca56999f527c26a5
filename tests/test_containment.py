"""Containment: actions with scope and TTL, effectors, the TTL engine, plans, recovery, demos."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from containment_kit import action, governor
from exoarmur.approvals.book import Vote
from exoarmur.containment.audit import ContainmentAudit
from exoarmur.containment.effectors import Effector
from exoarmur.containment.fold import CONTAINMENT_EXPIRED, CONTAINMENT_REVERTED
from exoarmur.containment.plans import door_net, parse_plan
from exoarmur.containment.room import plan_intent
from exoarmur.encoding import format_time
from exoarmur.errors import ContainmentError
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.event import Event
from exoarmur.pipeline import Governor
from exoarmur.replay import replay

if TYPE_CHECKING:
    from backends import Backend

pytest_plugins = ["backends"]

TARGETS = ["identity:alice", "endpoint:laptop-7", "workload:api"]
T_ZERO = datetime(2026, 1, 1, tzinfo=UTC)


_KEY = SigningKey.generate("t/log")


def _open(path: Path, fail_on: dict[str, list[str]] | None = None, seed: int = 7) -> Governor:
    return governor(Ledger(SqliteStore(path / "l.db"), _KEY), fail_on, seed)


def _approve(g: Governor, intent_id: str, count: int = 1) -> None:
    for n in range(count):
        principal, _ = g.add_principal(f"op-{n}", "operator", ["acme"])
        g.vote("acme", intent_id, principal, Vote.APPROVE, "ok")


def _verified(g: Governor) -> bool:
    g.ledger.checkpoint("acme")
    return replay(g.ledger.store, "acme", verifier=g.ledger.verifier).verified


def test_applying_twice_says_unchanged_and_a_longer_ttl_extends(tmp_path: Path) -> None:
    g = _open(tmp_path)
    first = g.submit(action("revoke_sessions", "identity:alice", ttl=600))
    assert first.result["containment"]["change"] == "applied"
    g.clock.advance(timedelta(seconds=-1))  # type: ignore[attr-defined]
    same = g.submit(action("revoke_sessions", "identity:alice", ttl=1, idempotency_key="b"))
    assert same.result["containment"]["change"] == "unchanged"
    longer = g.submit(action("revoke_sessions", "identity:alice", ttl=3600, idempotency_key="c"))
    assert longer.result["containment"]["change"] == "extended"
    (control,) = g.containment.status("acme")
    assert control.intent_id == first.intent_id
    assert _verified(g)


def test_two_concurrent_submits_of_one_control_apply_it_once(backend: Backend) -> None:
    g = governor(Ledger(backend.open(), _KEY))
    binding = g.runner.binding_for("containment.revoke_sessions")
    assert binding is not None
    effector = binding.executor.inner
    assert isinstance(effector, Effector)
    both_read = threading.Barrier(2)
    unsettled = effector.apply

    def apply_then_wait(tenant: str, spec: Any) -> dict[str, Any]:
        # both read the fold before either records: the race, made certain
        change = unsettled(tenant, spec)
        both_read.wait()
        return change

    effector.apply = apply_then_wait  # type: ignore[method-assign]
    outcomes: list[Any] = []

    def submit(key: str) -> None:
        outcomes.append(g.submit(action("revoke_sessions", "identity:alice", idempotency_key=key)))

    threads = [threading.Thread(target=submit, args=(key,)) for key in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    changes = sorted(o.result["containment"]["change"] for o in outcomes)
    assert changes[0] == "applied"
    assert changes[1] in ("extended", "unchanged")
    assert len(g.containment.status("acme")) == 1
    assert _verified(g)  # replay re-derives each change at the position it was recorded


def test_a_ttl_above_policy_ttl_max_is_denied_naming_the_bound(tmp_path: Path) -> None:
    g = _open(tmp_path)
    outcome = g.submit(action("revoke_sessions", "identity:alice", ttl=7201))
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.gate is not None
    assert outcome.decision.gate["controls"] == ["ttl_max:7200"]
    assert "7200" in outcome.decision.gate["reason"]
    assert g.containment.status("acme") == []


def test_expiry_happens_once_and_a_cut_expiry_is_reverted_once(tmp_path: Path) -> None:
    g = _open(tmp_path)
    g.submit(action("revoke_sessions", "identity:alice", ttl=60))
    g.submit(action("rate_limit", "identity:alice", ttl=60, idempotency_key="r"))
    later = g.clock.now() + timedelta(seconds=61)
    # a process cut between containment.expired and its revert: only the expiry is recorded
    (control, _) = g.containment.view("acme").due(later)
    cut = {"control": control.key, "due": format_time(control.expires_at)}
    g.containment._record("acme", CONTAINMENT_EXPIRED, cut, at=later)
    events = g.containment.tick(later)
    kinds = [(e.type, e.payload["control"]) for e in events]
    assert kinds.count((CONTAINMENT_EXPIRED, control.key)) == 0
    assert kinds.count((CONTAINMENT_REVERTED, control.key)) == 1
    assert len(events) == 3
    assert g.containment.tick(later + timedelta(hours=1)) == []
    assert g.containment.status("acme") == []
    assert _verified(g)


def test_an_expiry_due_while_down_records_due_and_done(tmp_path: Path) -> None:
    g = _open(tmp_path)
    g.submit(action("revoke_sessions", "identity:alice", ttl=60))
    g.close()
    g = _open(tmp_path, seed=8)
    done = g.clock.now() + timedelta(days=1)
    expired = g.containment.tick(done)[0]
    assert expired.type == CONTAINMENT_EXPIRED
    assert expired.payload["due"] < expired.process_time.isoformat()


def test_door_net_runs_in_order_after_approval(tmp_path: Path) -> None:
    g = _open(tmp_path)
    plan = door_net("acme", TARGETS)
    outcome = g.submit(plan_intent(plan, "acme", "soc"))
    assert outcome.status == OutcomeStatus.PENDING_APPROVAL
    _approve(g, outcome.intent_id)
    assert g.outcome("acme", outcome.intent_id).status == OutcomeStatus.EXECUTED
    assert [c.step for c in g.containment.status("acme")] == [1, 2, 3, 4]
    assert _verified(g)


class _CountingStore:
    """A store that counts the events its reads hand back: what a lookup really reads."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def events(self, tenant: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        for event in self.inner.events(tenant, start, stop):
            self.read += 1
            yield event

    def events_for_intent(self, tenant: str, intent_id: str) -> list[Event]:
        found = self.inner.events_for_intent(tenant, intent_id)
        self.read += len(found)
        return found

    def events_for_correlation(self, tenant: str, correlation_id: str) -> list[Event]:
        found = self.inner.events_for_correlation(tenant, correlation_id)
        self.read += len(found)
        return found


def test_plan_show_and_list_read_the_plan_not_the_log(tmp_path: Path) -> None:
    store = _CountingStore(SqliteStore(tmp_path / "l.db"))
    g = governor(Ledger(store, _KEY))  # type: ignore[arg-type]
    plan = g.submit(plan_intent(door_net("acme", TARGETS), "acme", "soc"))
    _approve(g, plan.intent_id)
    for n in range(60):
        g.submit(action("rate_limit", f"identity:u{n}", idempotency_key=f"k{n}"))
    size = g.ledger.size("acme")
    assert size > 250
    story = len(store.inner.events_for_intent("acme", plan.intent_id))
    store.read = 0
    summary = g.containment.plan_summary("acme", plan.intent_id)
    assert summary is not None
    assert summary["status"] == "executed"
    assert len(summary["events"]) == 10  # started, 4 x (step started, finished), completed
    assert store.read == story + story + 10  # its story, then its correlation: story and plan
    store.read = 0
    assert g.containment.plan_ids("acme") == [plan.intent_id]
    assert store.read < 5  # the fold is caught up; at most what the last submit appended
    for n in range(7):
        g.containment._record("acme", "test.note", {"n": n})
    store.read = 0
    assert g.containment.plan_ids("acme") == [plan.intent_id]
    assert store.read == 7  # only what was appended since


def test_compensation_reads_a_plan_s_events_from_the_log_whatever_the_index_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = _open(tmp_path)
    plan = g.submit(plan_intent(door_net("acme", TARGETS), "acme", "soc"))
    _approve(g, plan.intent_id)
    events = g.containment.plan_events("acme", plan.intent_id)
    assert len(events) == 10
    store = g.ledger.store
    honest = store.events_for_intent
    # an index edited to hide the plan's recording: its first entry is now a late event
    monkeypatch.setattr(store, "events_for_intent", lambda t, i: honest(t, i)[-1:])
    assert g.containment.plan_events("acme", plan.intent_id) == events


def test_a_failing_step_compensates_the_completed_ones_in_reverse(tmp_path: Path) -> None:
    g = _open(tmp_path, {"rate_limit": ["identity:alice"]})
    outcome = g.submit(plan_intent(door_net("acme", TARGETS), "acme", "soc"))
    _approve(g, outcome.intent_id)
    final = g.outcome("acme", outcome.intent_id)
    assert final.status == OutcomeStatus.FAILED
    events = g.containment.plan_events("acme", outcome.intent_id)
    reverted = [e.payload["step"] for e in events if e.type == CONTAINMENT_REVERTED]
    assert reverted == [2, 1]
    assert events[-1].type == "plan.compensated"
    assert g.containment.status("acme") == []
    assert _verified(g)


class _Killed(BaseException):
    """Stands for SIGKILL inside an effector: nothing after it runs."""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_a_plan_killed_inside_a_step_is_compensated_once_on_recovery(
    tmp_path: Path, kill_at: int
) -> None:
    g = _open(tmp_path)
    plan = door_net("acme", TARGETS)
    victim = g.executors.binding_for(f"containment.{plan.steps[kill_at - 1].effector}")
    assert victim is not None
    effector = victim.executor.inner
    assert isinstance(effector, Effector)

    def die(*_: object) -> None:
        raise _Killed

    effector.apply = die  # type: ignore[method-assign]
    outcome = g.submit(plan_intent(plan, "acme", "soc"))
    with pytest.raises(_Killed):
        _approve(g, outcome.intent_id)
    g.close()
    g = _open(tmp_path, seed=8)
    g.clock.advance(timedelta(seconds=5))  # type: ignore[attr-defined]
    g.recover()
    g.recover()  # a second start finds nothing left to do
    events = g.containment.plan_events("acme", outcome.intent_id)
    reverts = [e.payload["step"] for e in events if e.type == CONTAINMENT_REVERTED]
    assert reverts == list(range(kill_at - 1, 0, -1))
    assert [e.type for e in events].count("plan.compensated") == 1
    assert g.outcome("acme", outcome.intent_id).status == OutcomeStatus.FAILED
    assert g.containment.status("acme") == []


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"steps": []}, "at least one step"),
        (
            {"steps": [{"effector": "nuke", "scope": "identity:a", "ttl_seconds": 1}]},
            r"steps\[1\].effector: unknown effector",
        ),
        (
            {"steps": [{"effector": "rate_limit", "scope": "identity:a", "ttl_seconds": 0}]},
            r"steps\[1\].ttl_seconds: must be positive",
        ),
        (
            {"steps": [{"effector": "rate_limit", "scope": "identity:a", "ttl_seconds": -5}]},
            "must be positive",
        ),
        (
            {
                "steps": [
                    {"effector": "rate_limit", "scope": "identity:a", "ttl_seconds": 5},
                    {"effector": "rate_limit", "scope": "identity:a", "ttl_seconds": 9},
                ]
            },
            r"steps\[2\]: duplicate step",
        ),
        (
            {
                "steps": [
                    {
                        "effector": "rate_limit",
                        "scope": {"kind": "identity", "id": "a", "tenant": "globex"},
                        "ttl_seconds": 5,
                    }
                ]
            },
            "names tenant 'globex'",
        ),
    ],
)
def test_bad_plans_name_the_step_and_the_rule(plan: dict[str, object], message: str) -> None:
    with pytest.raises(ContainmentError, match=message):
        parse_plan(plan, "acme")


def test_plan_hash_is_content_only() -> None:
    assert door_net("acme", TARGETS).plan_hash == door_net("acme", TARGETS).plan_hash
    assert door_net("acme", TARGETS).plan_hash != door_net("acme", TARGETS[:1]).plan_hash


def test_demos_print_stable_markers_in_two_fresh_homes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from exoarmur.cli import app

    runner = CliRunner()
    seen = []
    for home in ("a", "b"):
        result = runner.invoke(
            app,
            [
                "--home",
                str(tmp_path / home),
                "demo",
                "dominance_plan",
                "--deterministic",
                "--fail-at",
                "3",
            ],
        )
        assert result.exit_code == 0, result.output
        seen.append(result.output)
    assert seen[0] == seen[1]
    assert "COMPENSATION_APPLIED=true" in seen[0]
    assert "ACTIONS_EXECUTED=2" in seen[0]
    assert "REPLAY_VERIFIED=true" in seen[0]
    denied = runner.invoke(
        app, ["--home", str(tmp_path / "c"), "demo", "primitives", "--deny", "--deterministic"]
    )
    assert "ACTIONS_EXECUTED=0" in denied.output
    assert "REPLAY_VERIFIED=true" in denied.output
    lockdown = runner.invoke(
        app, ["--home", str(tmp_path / "d"), "demo", "posture_lockdown", "--deterministic"]
    )
    assert "POSTURE=lockdown" in lockdown.output
    assert "REPLAY_VERIFIED=true" in lockdown.output
    rejected = runner.invoke(
        app, ["--home", str(tmp_path / "e"), "demo", "dominance_plan", "--deny", "--deterministic"]
    )
    assert "ACTIONS_EXECUTED=0" in rejected.output
    assert "COMPENSATION_APPLIED=false" in rejected.output
    approved = runner.invoke(
        app, ["--home", str(tmp_path / "f"), "demo", "primitives", "--approve"]
    )
    assert "ACTIONS_EXECUTED=3" in approved.output
    assert "CONTROLS_IN_FORCE_AFTER_EXPIRY=0" in approved.output
    status = runner.invoke(
        app, ["--home", str(tmp_path / "a"), "containment", "status", "-t", "acme", "--json"]
    )
    assert status.exit_code == 0
    assert status.output.strip() == "[]"
    listed = runner.invoke(app, ["--home", str(tmp_path / "a"), "plan", "list", "-t", "acme"])
    assert "door-net" not in listed.output
    assert "sha256:" in listed.output
    ticked = runner.invoke(app, ["--home", str(tmp_path / "a"), "tick"])
    assert "0 event(s) recorded" in ticked.output


def test_the_serving_loop_expires_what_fell_due_and_survives_a_failed_tick(
    tmp_path: Path,
) -> None:
    import time

    from exoarmur.clock import FixedClock
    from exoarmur.server.expiry import ExpiryLoop

    g = _open(tmp_path)
    g.submit(action("revoke_sessions", "identity:alice", ttl=60))
    g.clock = FixedClock(g.clock.now() + timedelta(hours=1))
    loop = ExpiryLoop(g, every=0.01)
    loop.start()
    deadline = time.monotonic() + 30
    while g.containment.status("acme") and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert g.containment.status("acme") == []
    g.close()
    assert loop.tick() == 0  # a closed ledger: logged, not raised


def test_replay_catches_an_early_expiry(tmp_path: Path) -> None:
    g = _open(tmp_path)
    g.submit(action("revoke_sessions", "identity:alice", ttl=600))
    (control,) = g.containment.status("acme")
    early = {"control": control.key, "due": format_time(g.clock.now())}
    g.containment._record("acme", CONTAINMENT_EXPIRED, early)
    g.ledger.checkpoint("acme")
    report = replay(g.ledger.store, "acme", verifier=g.ledger.verifier)
    assert not report.verified
    assert report.divergences[0].reason == "expired early"


def _doctored(events: list[Event], seq: int, **payload: object) -> list[Event]:
    return [
        dataclasses.replace(e, payload=e.payload | payload) if e.seq == seq else e for e in events
    ]


def test_the_audit_rederives_plan_hash_order_and_compensation(tmp_path: Path) -> None:
    g = _open(tmp_path, {"disable_workload": ["workload:api"]})
    outcome = g.submit(plan_intent(door_net("acme", TARGETS), "acme", "soc"))
    _approve(g, outcome.intent_id)
    store = g.ledger.store
    events = list(store.events("acme", 0, store.size("acme")))

    def findings(stream: list[Event]) -> list[str]:
        audit = ContainmentAudit("acme")
        return [f[3] for e in stream for f in audit.check(e)]

    assert findings(events) == []
    started = next(e for e in events if e.type == "plan.started")
    assert "the plan's hash or step order differs" in findings(
        _doctored(events, started.seq, plan_hash="sha256:" + "0" * 64)
    )
    step = next(e for e in events if e.type == "plan.step.started")
    assert "steps ran out of order" in findings(_doctored(events, step.seq, step=2))
    compensated = next(e for e in events if e.type == "plan.compensated")
    assert "compensation is not the reverse" in findings(
        _doctored(events, compensated.seq, reverted=[1, 2, 3])
    )
    first, second = (e for e in events if e.type == CONTAINMENT_REVERTED and e.payload["step"] > 1)
    swapped = _doctored(_doctored(events, first.seq, **second.payload), second.seq, **first.payload)
    assert "compensation out of reverse order" in findings(swapped)


def test_an_evidence_bundle_of_a_plan_verifies_and_catches_an_early_expiry(
    tmp_path: Path,
) -> None:
    from exoarmur.evidence import export_bundle, verify_bundle_text

    g = _open(tmp_path, {"disable_workload": ["workload:api"]})
    outcome = g.submit(plan_intent(door_net("acme", TARGETS), "acme", "soc"))
    _approve(g, outcome.intent_id)
    g.submit(action("rate_limit", "identity:zed", ttl=600, correlation_id="zed"))
    g.ledger.checkpoint("acme")
    bundle = export_bundle(g.ledger, "acme", outcome.correlation_id)
    types = {json.loads(e["event"])["type"] for e in bundle["events"]}
    assert {"plan.started", "plan.compensated", CONTAINMENT_REVERTED} <= types
    assert verify_bundle_text(json.dumps(bundle)).failures == []
    (control,) = g.containment.status("acme")
    early = {"control": control.key, "due": format_time(control.expires_at)}
    g.containment._record("acme", CONTAINMENT_EXPIRED, early, "zed")
    g.ledger.checkpoint("acme")
    doctored = verify_bundle_text(json.dumps(export_bundle(g.ledger, "acme", "zed")))
    assert any("expired early" in f for f in doctored.failures)


def test_the_audit_names_each_kind_of_doctored_record(tmp_path: Path) -> None:
    g = _open(tmp_path)
    g.submit(action("revoke_sessions", "identity:alice", ttl=60))
    outcome = g.submit(plan_intent(door_net("acme", TARGETS[:1]), "acme", "soc"))
    assert outcome.status == OutcomeStatus.EXECUTED
    g.containment.tick(g.clock.now() + timedelta(days=1))
    events = _events(g)

    def findings(stream: list[Event]) -> list[str]:
        audit = ContainmentAudit("acme")
        return [f[3] for e in stream for f in audit.check(e)]

    def first(kind: str) -> Event:
        return next(e for e in events if e.type == kind)

    assert findings(events) == []
    applied = next(e for e in events if e.type == "execution.finished")
    claimed = applied.payload["result"]["containment"] | {"change": "extended"}
    assert "the control's change differs" in findings(
        _doctored(events, applied.seq, result={"containment": claimed})
    )
    assert any(
        "cannot re-derive" in f
        for f in findings(_doctored(events, applied.seq, result={"containment": 1}))
    )
    assert "no plan intent was recorded" in findings(
        _doctored(events, first("plan.started").seq, plan_id="nope")
    )
    assert "finished a step not started" in findings(
        _doctored(events, first("plan.step.finished").seq, step=7)
    )
    assert "expired a control not in force" in findings(
        _doctored(events, first(CONTAINMENT_EXPIRED).seq, control="x/identity:y")
    )
    assert "reverted a control not in force" in findings(
        _doctored(events, first(CONTAINMENT_REVERTED).seq, control="x/identity:y")
    )
    no_expiry = [e for e in events if e.type != CONTAINMENT_EXPIRED]
    assert "reverted by expiry before its expiry was recorded" in findings(no_expiry)
    no_steps = [e for e in events if e.type != "plan.step.finished"]
    assert "completed with steps not done" in findings(no_steps)


def _events(g: Governor) -> list[Event]:
    store = g.ledger.store
    return list(store.events("acme", 0, store.size("acme")))


def test_an_unattached_or_misbound_effector_fails_closed() -> None:
    from exoarmur.containment.effectors import PlanRunner, rate_limit
    from exoarmur.errors import ConfigError
    from exoarmur.executors import ExecutionFailed
    from exoarmur.model.intent import parse_intent

    intent = parse_intent(action("rate_limit", "identity:a"))
    with pytest.raises(ExecutionFailed, match="not attached"):
        rate_limit({}).execute(intent)
    with pytest.raises(ExecutionFailed, match="not attached"):
        PlanRunner().execute(intent)
    with pytest.raises(ConfigError, match="fail_on"):
        rate_limit({"fail_on": "identity:a"})
    misbound = Effector("revoke_sessions")
    misbound.attach((lambda _: ContainmentAudit("acme").fold, lambda: T_ZERO))
    with pytest.raises(ExecutionFailed, match="does not apply"):
        misbound.execute(intent)
