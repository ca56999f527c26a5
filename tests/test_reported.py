"""Actions the caller carries out: start and outcome reported back, over HTTP and in process.

Each row of the refusal table is a state the intent is in and what a start
(or an outcome) answers; every story that results must replay and verify.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exoarmur import reported
from exoarmur.errors import Conflict, InputError, PermissionDenied
from exoarmur.evidence import export_bundle, verify_bundle_text
from exoarmur.model.event import EXECUTION_BLOCKED, EXECUTION_FINISHED, EXECUTION_STARTED
from exoarmur.replay import replay
from test_server_support import DELETE, FORBIDDEN, Deployment, deploy, submit

#: allowed (A0), and no executor is bound to ``ticket.*``: the caller carries it out
TICKET = {"tenant": "acme", "action": "ticket.read", "target": "tickets/7", "safety_class": "A0"}


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.governor.close()


def _path(outcome: dict[str, Any], what: str) -> str:
    return f"/v1/tenants/{outcome['tenant']}/intents/{outcome['intent_id']}/{what}"


def _replays(dep: Deployment) -> None:
    report = replay(dep.governor.ledger.store, "acme", verifier=dep.governor.ledger.key.verifier())
    assert report.verified, report.divergences


def test_start_then_outcome_completes_the_story_which_replays_and_verifies(
    dep: Deployment,
) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    assert decided["status"] == "decided"
    started = dep.client.post(_path(decided, "start"), headers=dep.auth("agent-7"))
    assert started.status_code == 200, started.text
    assert started.json()["event"]["type"] == EXECUTION_STARTED
    assert started.json()["outcome"]["status"] == "outcome_unknown"  # running now
    finished = dep.client.post(
        _path(decided, "outcome"),
        json={"status": "succeeded", "result": {"title": "printer on fire"}},
        headers=dep.auth("agent-7"),
    )
    assert finished.status_code == 200, finished.text
    outcome = finished.json()
    assert outcome["status"] == "executed"
    assert outcome["executor"] == "caller"
    assert outcome["result"] == {"title": "printer on fire"}
    assert outcome["result_hash"].startswith("sha256:")
    again = dep.client.post(
        _path(decided, "outcome"),
        json={"status": "failed", "error": "no"},
        headers=dep.auth("agent-7"),
    )
    assert again.status_code == 409
    assert "already recorded" in again.json()["message"]
    second_start = dep.client.post(_path(decided, "start"), headers=dep.auth("agent-7"))
    assert second_start.status_code == 409
    assert "already run" in second_start.json()["message"]
    _replays(dep)
    bundle = export_bundle(dep.governor.ledger, "acme", decided["correlation_id"])
    verdict = verify_bundle_text(json.dumps(bundle))
    assert verdict.passed, verdict.failures


def test_a_failure_is_recorded_with_its_reason(dep: Deployment) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    assert dep.client.post(_path(decided, "start"), headers=dep.auth("agent-7")).status_code == 200
    failed = dep.client.post(
        _path(decided, "outcome"),
        json={"status": "failed", "error": "ticket system down"},
        headers=dep.auth("agent-7"),
    )
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"] == "ticket system down"
    _replays(dep)


@pytest.mark.parametrize(
    ("who", "intent", "status", "why"),
    [
        pytest.param("agent-7", FORBIDDEN, 409, "denied", id="denied"),
        pytest.param("agent-7", DELETE, 409, "waits for approval", id="pending"),
        pytest.param("agent-8", TICKET, 404, "no intent", id="another agent"),
        pytest.param("root", TICKET, 403, "who submitted", id="an admin is not the submitter"),
        pytest.param("alice", TICKET, 403, "may not submit", id="an operator cannot report"),
    ],
)
def test_a_start_is_refused_naming_why(
    dep: Deployment, who: str, intent: dict[str, Any], status: int, why: str
) -> None:
    submitted = submit(dep, "agent-7", intent, 202 if intent is DELETE else 200)
    size = dep.size("acme")
    refused = dep.client.post(_path(submitted, "start"), headers=dep.auth(who))
    assert refused.status_code == status, refused.text
    assert why in refused.json()["message"]
    assert dep.size("acme") == size  # nothing recorded in the tenant's log


def test_an_outcome_before_a_start_is_refused(dep: Deployment) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    refused = dep.client.post(
        _path(decided, "outcome"), json={"status": "succeeded"}, headers=dep.auth("agent-7")
    )
    assert refused.status_code == 409
    assert "report its start first" in refused.json()["message"]


def test_an_action_exoarmur_runs_itself_cannot_be_started_by_its_caller(dep: Deployment) -> None:
    read = {"tenant": "acme", "action": "demo.read", "target": "r", "safety_class": "A0"}
    executed = submit(dep, "agent-7", read, 200)
    refused = dep.client.post(_path(executed, "start"), headers=dep.auth("agent-7"))
    assert refused.status_code == 409
    # A decided intent whose action gained an executor since is ExoArmur's to run.
    decided = dep.governor.submit(TICKET | {"actor": {"id": "agent-7", "kind": "agent"}})
    echo = dep.governor.executors.executor_for("demo.read")
    assert echo is not None
    dep.governor.executors.bind("ticket.*", echo[1])
    with pytest.raises(Conflict, match="executor is bound"):
        reported.start(dep.governor, "acme", decided.intent_id, "agent-7")


def test_a_kill_switch_engaged_after_the_decision_blocks_the_start(dep: Deployment) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    engaged = dep.client.post(
        "/v1/killswitches",
        json={"action": "engage", "scope": "tenant:acme", "reason": "incident"},
        headers=dep.auth("alice"),
    )
    assert engaged.status_code == 200, engaged.text
    blocked = dep.client.post(_path(decided, "start"), headers=dep.auth("agent-7"))
    assert blocked.status_code == 409
    assert "killswitch" in blocked.json()["message"]
    story = dep.governor.story("acme", decided["intent_id"])
    assert [e.type for e in story][-1] == EXECUTION_BLOCKED
    assert dep.governor.outcome("acme", decided["intent_id"]).status == "blocked"
    _replays(dep)


def test_a_restart_leaves_a_caller_s_action_to_its_caller(dep: Deployment) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    assert dep.client.post(_path(decided, "start"), headers=dep.auth("agent-7")).status_code == 200
    assert dep.governor.recover() == []  # the caller still acts: not cut by this process
    late = dep.client.post(
        _path(decided, "outcome"), json={"status": "succeeded"}, headers=dep.auth("agent-7")
    )
    assert late.status_code == 200, late.text
    _replays(dep)


def test_an_in_process_start_cut_by_a_stopped_process_is_outcome_unknown(dep: Deployment) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    reported.start(dep.governor, "acme", decided["intent_id"], "agent-7", executor="python-call")
    (recovered,) = dep.governor.recover()
    assert recovered.status == "outcome_unknown"
    with pytest.raises(Conflict, match="outcome_unknown"):
        reported.finish(dep.governor, "acme", decided["intent_id"], "agent-7", "succeeded")
    _replays(dep)


def test_an_approved_intent_is_started_by_its_caller(dep: Deployment) -> None:
    review = {
        "tenant": "acme",
        "action": "ticket.delete",
        "target": "tickets/7",
        "params": {"env": "prod"},
        "safety_class": "A2",
    }
    policy = (
        '@id("t") @approval("1") permit (principal, action == Action::"ticket.delete", resource);'
    )
    from exoarmur.policy import PolicyBundle

    dep.governor.activate_policy(PolicyBundle.from_text(policy), tenant="acme")
    pending = submit(dep, "agent-7", review, 202)
    vote = dep.client.post(
        _path(pending, "approve"), json={"reason": "ok"}, headers=dep.auth("alice")
    )
    assert vote.json()["outcome"]["status"] == "approved"
    started = reported.start(dep.governor, "acme", pending["intent_id"], "agent-7")
    assert started.go
    outcome = reported.finish(dep.governor, "acme", pending["intent_id"], "agent-7", "succeeded")
    assert outcome.status == "executed"
    _replays(dep)


@pytest.mark.parametrize(
    ("status", "fields", "rule"),
    [
        ("succeeded", {"error": "x"}, "only a failed"),
        ("failed", {"result": 1}, "only a succeeded"),
        ("failed", {"error": "  "}, "is required"),
        ("maybe", {}, "must be succeeded or failed"),
        ("succeeded", {"result": float("nan")}, "result: .*not representable"),
    ],
)
def test_a_bad_report_names_the_field_and_writes_nothing(
    dep: Deployment, status: Any, fields: dict[str, Any], rule: str
) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    reported.start(dep.governor, "acme", decided["intent_id"], "agent-7")
    size = dep.size("acme")
    with pytest.raises(InputError, match=rule):
        reported.finish(dep.governor, "acme", decided["intent_id"], "agent-7", status, **fields)
    assert dep.size("acme") == size


def test_only_the_submitter_reports_in_process(dep: Deployment) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    with pytest.raises(PermissionDenied, match="agent-7"):
        reported.start(dep.governor, "acme", decided["intent_id"], "agent-8")
    reported.start(dep.governor, "acme", decided["intent_id"], "agent-7")
    with pytest.raises(PermissionDenied):
        reported.finish(dep.governor, "acme", decided["intent_id"], "agent-8", "succeeded")
    assert EXECUTION_FINISHED not in [
        e.type for e in dep.governor.story("acme", decided["intent_id"])
    ]


def test_a_report_that_races_another_write_rules_again(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    ledger = dep.governor.ledger
    append = ledger.append
    raced: list[int] = []

    def once_conflicting(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            raced.append(1)
            raise Conflict("someone wrote meanwhile")
        return append(*args, **kwargs)

    monkeypatch.setattr(ledger, "append", once_conflicting)
    assert reported.start(dep.governor, "acme", decided["intent_id"], "agent-7").go
    raced.clear()
    done = reported.finish(dep.governor, "acme", decided["intent_id"], "agent-7", "succeeded")
    assert done.status == "executed"

    def always_conflicting(*args: Any, **kwargs: Any) -> Any:
        raise Conflict("busy")

    other = submit(dep, "agent-7", TICKET | {"target": "tickets/8"}, 200)
    monkeypatch.setattr(ledger, "append", always_conflicting)
    with pytest.raises(Conflict, match="kept changing"):
        reported.start(dep.governor, "acme", other["intent_id"], "agent-7")
    monkeypatch.setattr(ledger, "append", append)
    reported.start(dep.governor, "acme", other["intent_id"], "agent-7")
    monkeypatch.setattr(ledger, "append", always_conflicting)
    with pytest.raises(Conflict, match="kept changing"):
        reported.finish(dep.governor, "acme", other["intent_id"], "agent-7", "succeeded")


def test_an_execution_exoarmur_runs_cannot_be_reported_by_its_caller(dep: Deployment) -> None:
    refused: list[str] = []

    def act(intent: Any) -> str:
        with pytest.raises(Conflict) as conflict:
            reported.finish(dep.governor, "acme", intent.intent_id, "agent-7", "succeeded")
        refused.append(str(conflict.value))
        return "done"

    outcome = dep.governor.run(TICKET | {"actor": {"id": "agent-7", "kind": "agent"}}, act)
    assert outcome.status == "executed"
    assert "carried out by ExoArmur" in refused[0]
