"""Containment plans over HTTP: operators submit and read, tenant-scoped, bad plans are 422."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from containment_kit import CONTAINMENT_POLICY
from test_server_support import Deployment, deploy

DOOR_NET = {"preset": "door-net", "targets": ["identity:eve", "endpoint:pc-1"]}


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home", policy=CONTAINMENT_POLICY)
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def test_an_operator_submits_door_net_and_approvals_run_it(dep: Deployment) -> None:
    answer = dep.client.post("/v1/tenants/acme/plans", json=DOOR_NET, headers=dep.auth("alice"))
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["status"] == "pending_approval"
    assert plan["sequence"] == ["revoke_sessions", "isolate_endpoint", "rate_limit"]
    vote = dep.client.post(
        f"/v1/tenants/acme/intents/{plan['plan_id']}/approve",
        json={"reason": "contain eve"},
        headers=dep.auth("bob"),
    )
    assert vote.status_code == 200, vote.text
    shown = dep.client.get(f"/v1/tenants/acme/plans/{plan['plan_id']}", headers=dep.auth("audrey"))
    assert shown.json()["status"] == "executed"
    assert [e["type"] for e in shown.json()["events"]][-1] == "plan.completed"
    listed = dep.client.get("/v1/tenants/acme/plans", headers=dep.auth("alice")).json()
    assert [p["plan_id"] for p in listed["plans"]] == [plan["plan_id"]]
    controls = dep.client.get("/v1/tenants/acme/containment", headers=dep.auth("alice")).json()
    assert len(controls["controls"]) == 3


@pytest.mark.parametrize(
    ("who", "tenant", "body", "status", "words"),
    [
        ("agent-7", "acme", DOOR_NET, 403, "may not"),
        ("mallory", "acme", DOOR_NET, 403, "may not"),
        ("alice", "acme", {"plan": {"steps": []}}, 422, "at least one step"),
        (
            "alice",
            "acme",
            {"plan": {"steps": [{"effector": "rm_rf", "scope": "identity:x", "ttl_seconds": 5}]}},
            422,
            "unknown effector",
        ),
        ("alice", "acme", {}, 422, "either plan or preset"),
    ],
)
def test_refusals_write_nothing_in_the_tenant(
    dep: Deployment, who: str, tenant: str, body: dict[str, object], status: int, words: str
) -> None:
    before = dep.size(tenant)
    answer = dep.client.post(f"/v1/tenants/{tenant}/plans", json=body, headers=dep.auth(who))
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert dep.size(tenant) == before


def test_an_unknown_plan_is_404(dep: Deployment) -> None:
    answer = dep.client.get(
        "/v1/tenants/acme/plans/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=dep.auth("alice")
    )
    assert answer.status_code == 404
