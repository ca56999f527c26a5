"""Rulings a mutation run showed no test held: late votes, revoked voters, lockdown's quorum."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from exoarmur.approvals import ApprovalStatus, Vote, intent_state, rule_on
from exoarmur.clock import FixedClock
from exoarmur.gate import GateConfig
from exoarmur.model.decision import OutcomeStatus, Verdict
from exoarmur.pipeline import LOCAL_ADMIN
from test_approvals import T0, World, build_world
from test_gate import World as GateWorld
from test_server_support import DELETE, Deployment, deploy, submit


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = build_world(tmp_path)
    yield w
    w.governor.close()


def test_a_vote_after_the_deadline_is_not_accepted_and_expires_the_intent(world: World) -> None:
    intent_id = world.submit()  # @approval_window("600"): the deadline is T0 + 10 min
    state = intent_state(world.governor.story("acme", intent_id))
    assert state.deadline == T0 + timedelta(minutes=10)
    at_deadline = rule_on(
        state, world.who("alice"), Vote.APPROVE, "ok", state.intent_hash, state.deadline
    )
    assert at_deadline.accepted
    late = rule_on(
        state,
        world.who("alice"),
        Vote.APPROVE,
        "ok",
        state.intent_hash,
        state.deadline + timedelta(microseconds=1),
    )
    assert not late.accepted
    assert late.status == ApprovalStatus.EXPIRED
    assert not late.forbidden  # the window closed: a state, not a permission
    assert [kind for kind, _ in late.records] == ["intent.expired", "approval.refused"]
    assert late.records[0][1]["quorum"] == 2

    world.governor.clock = FixedClock(T0 + timedelta(minutes=11))
    result = world.governor.vote("acme", intent_id, world.who("alice"), Vote.APPROVE, "late")
    assert result.accepted is False
    assert result.status == ApprovalStatus.EXPIRED
    assert result.message == (
        "the approval window closed at 2026-06-01T09:10:00.000000Z; the intent expired"
    )
    assert world.governor.outcome("acme", intent_id).status == OutcomeStatus.EXPIRED


def test_a_revoked_principals_vote_is_refused_as_forbidden(world: World) -> None:
    intent_id = world.submit()
    alice = world.who("alice")  # authenticated before the revocation lands
    world.governor.revoke_principal("alice")
    result = world.governor.vote("acme", intent_id, alice, Vote.APPROVE, "ok")
    assert result.accepted is False
    assert result.forbidden is True
    assert "revoked" in result.message
    refused = [e for e in world.governor.story("acme", intent_id) if e.type == "approval.refused"]
    assert refused[-1].payload["refused"] == result.message
    assert intent_state(world.governor.story("acme", intent_id)).approvals == ()


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def test_a_vote_by_a_principal_revoked_in_flight_is_403_not_409(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    assert pending["approval"]["status"] == "pending"
    vote = dep.governor.vote

    def revoked_between_authentication_and_ruling(*args: Any, **kwargs: Any) -> Any:
        dep.governor.revoke_principal("alice")
        return vote(*args, **kwargs)

    monkeypatch.setattr(dep.governor, "vote", revoked_between_authentication_and_ruling)
    answer = dep.client.post(
        f"/v1/tenants/acme/intents/{pending['intent_id']}/approve",
        json={"reason": "looks fine"},
        headers=dep.auth("alice"),
    )
    assert answer.status_code == 403, answer.text
    assert "revoked" in answer.json()["message"]


def test_lockdown_raises_an_allowed_action_to_exactly_one_approval(tmp_path: Path) -> None:
    gated = GateWorld(tmp_path)
    try:
        gated.governor.set_posture("acme", "lockdown", "breach", LOCAL_ADMIN)
        assert gated.submit(target="l0", safety_class="A0").status == OutcomeStatus.EXECUTED
        locked = gated.submit(target="l1")  # fs.write at A1: policy allows it
        decision = locked.decision
        assert decision.verdict == Verdict.REQUIRE_APPROVAL
        assert decision.obligations == {"approval": "1"}
        assert decision.gate == {
            "policy_verdict": "allow",
            "controls": ["posture:lockdown"],
            "reason": "lockdown: A1 actions need approval",
        }
        assert intent_state(gated.governor.story("acme", locked.intent_id)).quorum == 1
        deploy = gated.submit(action="app.deploy", target="l3", safety_class="A3")
        # policy asks 1, the class floor raises A3 to 2, and lockdown adds heightened's
        # one more for A2/A3 (lockdown never asks fewer approvals than heightened)
        assert deploy.decision.obligations["approval"] == "3"
    finally:
        gated.governor.close()


def test_an_intent_that_needs_no_approval_has_no_quorum_and_no_deadline(world: World) -> None:
    allowed = world.governor.submit(
        {
            "tenant": "acme",
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "fs.read",
            "target": "reports/1",
            "safety_class": "A0",
        }
    )
    state = intent_state(world.governor.story("acme", allowed.intent_id))
    assert state.status == ApprovalStatus.NOT_REQUIRED
    assert state.quorum == 0
    assert state.deadline is None


def test_each_gate_tightening_says_why_in_its_record(tmp_path: Path) -> None:
    gated = GateWorld(tmp_path, GateConfig(protected_targets=("vault/keys",)))
    try:
        protected = gated.submit(target="vault/keys").decision
        assert protected.obligations == {"approval": "2"}
        assert protected.gate == {
            "policy_verdict": "allow",
            "controls": ["protected:target"],
            "reason": "protected target needs a quorum of 2",
        }
        gated.governor.set_posture("acme", "heightened", "elevated risk", LOCAL_ADMIN)
        heightened = gated.submit(target="h2", safety_class="A2").decision
        # the class floor's 1 for A2, and heightened's 1 more on top of it
        assert heightened.obligations == {"approval": "2"}
        assert heightened.gate == {
            "policy_verdict": "allow",
            "controls": ["class_floor:A2", "posture:heightened"],
            "reason": "A2 actions need 1 approval(s) whatever policy says; "
            "heightened: A2 actions need 1 more approval(s)",
        }
    finally:
        gated.governor.close()
