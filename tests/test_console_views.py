"""The console's replay/what-if and containment pages, in-process (the browser drives them too)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from containment_kit import CONTAINMENT_POLICY
from exoarmur.clock import FixedClock
from exoarmur.errors import NotFound
from exoarmur.replay.whatif import redecide
from exoarmur.server.console.containment import _steps
from test_console import _sign_in
from test_server_support import DELETE, POLICY, Deployment, deploy, submit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
#: the deployment's policy with the production delete forbidden
STRICTER = (
    POLICY + '@id("no-prod-deletes") forbid (principal, action == Action::"demo.delete", resource);'
)
DOOR_NET = {"preset": "door-net", "targets": ["identity:eve", "endpoint:pc-1"]}


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home", policy=POLICY + CONTAINMENT_POLICY)
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _sizes(dep: Deployment) -> tuple[int, int]:
    return dep.size("acme"), dep.size("system")


def test_replay_and_what_if_of_one_intent_write_nothing(dep: Deployment) -> None:
    traced = dep.auth("agent-7") | {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    answer = dep.client.post("/v1/intents", json=DELETE, headers=traced)
    intent_id = answer.json()["intent_id"]
    csrf = _sign_in(dep, "alice")
    before = _sizes(dep)
    path = f"/console/tenants/acme/intents/{intent_id}/replay"

    page = dep.client.get(path)
    assert page.status_code == 200, page.text
    assert "replay from the ledger alone reproduces the recorded decision" in page.text
    assert "Unchanged under the policy in force now." in page.text
    assert f"<code>{TRACE}</code>" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")

    candidate = {"csrf": csrf, "policy": STRICTER}
    whatif = dep.client.post(path, data=candidate)
    assert whatif.status_code == 200, whatif.text
    assert "Would change: require_approval → deny" in whatif.text
    assert "no-prod-deletes" in whatif.text
    assert _sizes(dep) == before  # read-only: not even the candidate is recorded

    assert dep.client.post(path, data={"policy": STRICTER}).status_code == 403  # no CSRF token
    broken = dep.client.post(path, data=candidate | {"policy": "permit (principal,"})
    assert broken.status_code == 400
    empty = dep.client.post(path, data=candidate | {"policy": "  "})
    assert "policy: paste the candidate" in empty.text
    assert dep.client.get("/console/tenants/acme/intents/not-an-id/replay").status_code == 400
    unknown = "/console/tenants/acme/intents/01ARZ3NDEKTSV4RRFFQ69G5FAV/replay"
    assert dep.client.get(unknown).status_code == 404
    assert _sizes(dep) == before


def test_what_if_respects_the_rights_table(dep: Deployment) -> None:
    intent_id = submit(dep, "agent-7", DELETE, 202)["intent_id"]
    path = f"/console/tenants/acme/intents/{intent_id}/replay"
    _sign_in(dep, "mallory")  # an operator of globex only
    assert dep.client.get(path).status_code == 403
    assert any("read and export the ledger" in e.payload["detail"] for e in dep.refusals())
    _sign_in(dep, "audrey")  # auditors may explain policy: the form is theirs too
    assert 'id="whatif-form"' in dep.client.get(path).text


def test_containment_shows_controls_with_ttl_left_on_the_server_clock_and_plan_steps(
    dep: Deployment,
) -> None:
    plan = dep.client.post("/v1/tenants/acme/plans", json=DOOR_NET, headers=dep.auth("alice"))
    plan_id = plan.json()["plan_id"]
    vote = {"reason": "contain eve"}
    approve = f"/v1/tenants/acme/intents/{plan_id}/approve"
    assert dep.client.post(approve, json=vote, headers=dep.auth("bob")).status_code == 200
    controls = dep.governor.containment.status("acme")
    assert len(controls) == 3
    # The server's clock, 100 s after the first control began: its TTL left comes from it.
    first = min(controls, key=lambda c: c.since)
    dep.governor.clock = FixedClock(first.since + timedelta(seconds=100))
    ttl = int((first.expires_at - first.since).total_seconds())

    _sign_in(dep, "audrey")
    page = dep.client.get("/console/containment?tenant=acme")
    assert page.status_code == 200, page.text
    assert page.text.count('<tr class="control">') == 3
    assert f'data-seconds="{ttl - 100}"' in page.text
    assert f'id="plan-{plan_id}"' in page.text
    steps = re.findall(r'<tr class="step step-(\w[\w-]*)">', page.text)
    assert steps == ["succeeded", "succeeded", "succeeded"]
    assert "revoke_sessions" in page.text
    assert "identity:eve" in page.text
    _sign_in(dep, "root")  # an admin of every tenant names one first
    assert "containment-controls" not in dep.client.get("/console/containment").text
    _sign_in(dep, "mallory")
    assert dep.client.get("/console/containment?tenant=acme").status_code == 403


def test_a_plan_step_shows_what_its_events_say_happened() -> None:
    planned = [
        {"effector": "revoke_sessions", "scope": {"kind": "identity", "id": "eve"}},
        {"effector": "isolate_endpoint", "scope": "endpoint:pc-1", "ttl_seconds": 60},
        {"effector": "rate_limit", "scope": "identity:eve", "ttl_seconds": 60},
        {"effector": "freeze_identity", "scope": "identity:eve", "ttl_seconds": 60},
        {"effector": "disable_workload", "scope": "workload:w", "ttl_seconds": 60},
    ]
    events = [
        {"type": "plan.step.started", "step": 1},
        {"type": "plan.step.finished", "step": 1, "status": "succeeded"},
        {"type": "containment.reverted", "step": 1, "cause": "compensation"},
        {"type": "plan.step.started", "step": 2},
        {"type": "plan.step.finished", "step": 2, "status": "succeeded"},
        {"type": "containment.reverted", "step": 2, "cause": "expired"},
        {"type": "plan.step.started", "step": 3},
        {"type": "plan.step.finished", "step": 3, "status": "failed", "error": "<b>no</b>"},
        {"type": "plan.step.started", "step": 4},
    ]
    steps = _steps(planned, events)
    assert [(s["status"], s["error"]) for s in steps] == [
        ("compensated", None),
        ("expired", None),
        ("failed", "<b>no</b>"),
        ("running", None),
        ("not started", None),
    ]
    assert [s["scope"] for s in steps][:2] == ["identity:eve", "endpoint:pc-1"]


def test_what_if_of_an_unknown_intent_is_not_found(dep: Deployment) -> None:
    engine = dep.governor.policy_for("acme")
    with pytest.raises(NotFound, match="no intent 01ARZ3NDEKTSV4RRFFQ69G5FAV"):
        redecide(dep.governor.ledger.store, "acme", "01ARZ3NDEKTSV4RRFFQ69G5FAV", engine)
