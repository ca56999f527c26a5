"""Approvals bound to the exact action: quorum scenarios, separation of duties, expiry,
exactly-once execution, and a property that no vote sequence runs what may not run."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exoarmur.approvals import ApprovalStatus, Vote, intent_state
from exoarmur.clock import FixedClock
from exoarmur.errors import AuthenticationError, InputError, NotFound, PermissionDenied
from exoarmur.executors import ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus, Verdict
from exoarmur.model.intent import ActionIntent
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.principals import Principal

APPROVAL_POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };

@id("prod-delete") @approval("2") @approval_window("600")
permit (principal, action == Action::"db.delete", resource)
when { context.params.env == "prod" };

@id("one-approver") @approval("1")
permit (principal, action == Action::"ticket.close", resource);

@id("protected") forbid (principal, action, resource == Target::"db/customers");
"""

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class Effects:
    """The side effect under test: counts how often each intent really ran."""

    kind = "effects"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def execute(self, intent: ActionIntent) -> dict[str, str]:
        self.ran.append(intent.intent_id)
        return {"done": intent.target}


@dataclass
class World:
    governor: Governor
    clock: FixedClock
    effects: Effects
    keys: dict[str, str]

    def who(self, name: str) -> Principal:
        return self.governor.authenticate(self.keys[name])

    def submit(self, **fields: Any) -> str:
        body = {
            "tenant": "acme",
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "db.delete",
            "target": "db/orders",
            "params": {"env": "prod"},
            "safety_class": "A2",
        } | fields
        return self.governor.submit(body).intent_id


def build_world(path: Path) -> World:
    clock = FixedClock(T0)
    effects = Effects()
    registry = ExecutorRegistry()
    registry.bind("*", effects)
    governor = Governor(
        ledger=Ledger(SqliteStore(path / "ledger.db"), SigningKey.generate("t/approvals")),
        policy=PolicyEngine(PolicyBundle.from_text(APPROVAL_POLICY)),
        executors=registry,
        clock=clock,
        ids=SeededIds(5),
    )
    keys = {}
    for name, role, tenants in [
        ("alice", "operator", ["acme"]),
        ("bob", "operator", ["acme"]),
        ("carol", "operator", ["acme"]),
        ("agent-7", "operator", ["acme"]),  # the requesting actor, also an operator
        ("mallory", "operator", ["globex"]),
        ("audrey", "auditor", ["acme"]),
        ("root", "admin", []),
    ]:
        keys[name] = governor.add_principal(name, role, tenants)[1]
    return World(governor, clock, effects, keys)


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = build_world(tmp_path)
    yield w
    w.governor.close()


# Each row: a named sequence of votes and what must come of it.
# A step is (voter, vote, hash: "own" | "other", minutes after submission).
SCENARIOS = {
    "1-of-1 approves and runs": (
        {"action": "ticket.close", "target": "t/1"},
        [("alice", "approve", "own", 1)],
        OutcomeStatus.EXECUTED,
        1,
    ),
    "2-of-3 with a duplicate approver": (
        {},
        [
            ("alice", "approve", "own", 1),
            ("alice", "approve", "own", 2),
            ("bob", "approve", "own", 3),
        ],
        OutcomeStatus.EXECUTED,
        1,
    ),
    "duplicate approver alone never reaches quorum": (
        {},
        [("alice", "approve", "own", 1), ("alice", "approve", "own", 2)],
        OutcomeStatus.PENDING_APPROVAL,
        0,
    ),
    "self-approval does not count": (
        {},
        [("agent-7", "approve", "own", 1), ("alice", "approve", "own", 2)],
        OutcomeStatus.PENDING_APPROVAL,
        0,
    ),
    "approval after expiry expires it": (
        {},
        [("alice", "approve", "own", 1), ("bob", "approve", "own", 11)],
        OutcomeStatus.EXPIRED,
        0,
    ),
    "approval for a different intent hash never counts": (
        {},
        [("alice", "approve", "own", 1), ("bob", "approve", "other", 2)],
        OutcomeStatus.PENDING_APPROVAL,
        0,
    ),
    "reject after one approve rejects": (
        {},
        [("alice", "approve", "own", 1), ("bob", "reject", "own", 2)],
        OutcomeStatus.REJECTED,
        0,
    ),
    "approve after reject changes nothing": (
        {},
        [
            ("bob", "reject", "own", 1),
            ("alice", "approve", "own", 2),
            ("carol", "approve", "own", 3),
        ],
        OutcomeStatus.REJECTED,
        0,
    ),
    "an auditor cannot approve": (
        {"action": "ticket.close", "target": "t/2"},
        [("audrey", "approve", "own", 1)],
        OutcomeStatus.PENDING_APPROVAL,
        0,
    ),
    "an admin can approve in any tenant": (
        {"action": "ticket.close", "target": "t/3"},
        [("root", "approve", "own", 1)],
        OutcomeStatus.EXECUTED,
        1,
    ),
    "approvals exactly at the deadline still count": (
        {},
        [("alice", "approve", "own", 1), ("bob", "approve", "own", 10)],
        OutcomeStatus.EXECUTED,
        1,
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_quorum_scenarios(world: World, name: str) -> None:
    fields, steps, expected, runs = SCENARIOS[name]
    intent_id = world.submit(**fields)
    for voter, vote, which_hash, minutes in steps:
        world.governor.clock = FixedClock(T0 + timedelta(minutes=minutes))
        state = intent_state(world.governor.story("acme", intent_id))
        bound = state.intent_hash if which_hash == "own" else "sha256:" + "0" * 64
        world.governor.vote("acme", intent_id, world.who(voter), Vote(vote), "reason", bound)
    assert world.governor.outcome("acme", intent_id).status == expected
    assert world.effects.ran.count(intent_id) == runs


def test_refusals_are_recorded_with_who_and_why(world: World) -> None:
    intent_id = world.submit()
    result = world.governor.vote("acme", intent_id, world.who("agent-7"), Vote.APPROVE, "mine")
    assert not result.accepted
    assert result.forbidden
    assert "may not approve it" in result.message
    refused = [e for e in world.governor.story("acme", intent_id) if e.type == "approval.refused"]
    assert refused[0].payload["approver"] == "agent-7"
    assert refused[0].actor == {"id": "agent-7", "kind": "operator"}


def test_another_tenants_operator_learns_nothing_and_is_recorded(world: World) -> None:
    intent_id = world.submit()
    for target in (intent_id, "01KDVDNA00E9J26YC765WVR3F0"):  # existing and not
        with pytest.raises(PermissionDenied, match="does not act for tenant acme"):
            world.governor.vote("acme", target, world.who("mallory"), Vote.APPROVE, "x")
    refusals = [
        e for e in world.governor.ledger.store.events("_system") if e.type == "access.refused"
    ]
    assert [e.payload["principal"] for e in refusals] == ["mallory", "mallory"]
    assert world.governor.outcome("acme", intent_id).status == OutcomeStatus.PENDING_APPROVAL


def test_a_vote_needs_a_reason_and_an_existing_intent(world: World) -> None:
    intent_id = world.submit()
    with pytest.raises(InputError, match="reason: is required"):
        world.governor.vote("acme", intent_id, world.who("alice"), Vote.APPROVE, "  ")
    with pytest.raises(InputError, match="reason: longer than"):
        world.governor.vote("acme", intent_id, world.who("alice"), Vote.APPROVE, "x" * 3000)
    with pytest.raises(NotFound):
        world.governor.vote(
            "acme", "01KDVDNA00E9J26YC765WVR3F0", world.who("alice"), Vote.APPROVE, "r"
        )
    assert intent_state(world.governor.story("acme", intent_id)).approvals == ()


def test_votes_on_intents_that_need_none_are_refused(world: World) -> None:
    allowed = world.governor.submit(
        {
            "tenant": "acme",
            "actor": {"id": "a"},
            "action": "fs.read",
            "target": "x",
            "safety_class": "A0",
        }
    )
    result = world.governor.vote("acme", allowed.intent_id, world.who("alice"), Vote.APPROVE, "r")
    assert not result.accepted
    assert "not_required" in result.message


def test_pending_lists_waiting_intents_and_expires_overdue_ones(world: World) -> None:
    first = world.submit()
    world.governor.clock = FixedClock(T0 + timedelta(minutes=5))
    second = world.submit(target="db/other")
    assert [s.intent.intent_id for s in world.governor.pending("acme")] == [first, second]
    world.governor.clock = FixedClock(T0 + timedelta(minutes=12))
    assert [s.intent.intent_id for s in world.governor.pending("acme")] == [second]
    assert world.governor.outcome("acme", first).status == OutcomeStatus.EXPIRED
    assert world.governor.expire_due("acme") == []  # recorded once


def test_forbid_beats_an_approval_policy(world: World) -> None:
    outcome = world.governor.submit(
        {
            "tenant": "acme",
            "actor": {"id": "agent-7"},
            "action": "db.delete",
            "target": "db/customers",
            "params": {"env": "prod"},
            "safety_class": "A3",
        }
    )
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.reasons == ("protected",)


def test_racing_approvers_both_count_and_the_intent_runs_once(world: World) -> None:
    for round_ in range(5):
        intent_id = world.submit(target=f"db/race-{round_}")
        barrier = threading.Barrier(3)

        def vote(
            name: str, intent_id: str = intent_id, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            world.governor.vote("acme", intent_id, world.who(name), Vote.APPROVE, "race")

        pool = [threading.Thread(target=vote, args=(n,)) for n in ("alice", "bob", "carol")]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        story = [e.type for e in world.governor.story("acme", intent_id)]
        assert story.count("intent.approved") == 1
        assert story.count("execution.started") == 1
        assert world.effects.ran.count(intent_id) == 1


def test_a_crash_between_quorum_and_execution_resumes_once(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    intent_id = world.submit()
    world.governor.vote("acme", intent_id, world.who("alice"), Vote.APPROVE, "ok")
    # The process dies after recording the quorum, before starting: simulate by
    # unbinding the executor for the second vote, then "restarting".
    world.governor.executors = ExecutorRegistry()
    world.governor.vote("acme", intent_id, world.who("bob"), Vote.APPROVE, "ok")
    assert world.governor.outcome("acme", intent_id).status == OutcomeStatus.APPROVED
    world.governor.close()

    restarted = build_world_on(tmp_path, world.governor.ledger.key)
    recovered = restarted.governor.recover()
    assert [o.intent_id for o in recovered] == [intent_id]
    assert recovered[0].status == OutcomeStatus.EXECUTED
    assert restarted.effects.ran == [intent_id]
    assert restarted.governor.recover() == []  # never twice
    restarted.governor.close()


def build_world_on(path: Path, key: SigningKey) -> World:
    effects = Effects()
    registry = ExecutorRegistry()
    registry.bind("*", effects)
    governor = Governor(
        ledger=Ledger(SqliteStore(path / "ledger.db"), key),
        executors=registry,
        clock=FixedClock(T0 + timedelta(minutes=3)),
        ids=SeededIds(99),
    )
    return World(governor, FixedClock(T0), effects, {})


def test_credentials_are_checked_in_constant_shape(world: World) -> None:
    for bad in (
        "",
        "exo_nope",
        world.keys["alice"][:-1] + ("B" if world.keys["alice"].endswith("A") else "A"),
        "exo_" + "0" * 16 + "_" + "A" * 43,
    ):
        with pytest.raises(AuthenticationError, match="invalid or revoked API key"):
            world.governor.authenticate(bad)
    world.governor.revoke_principal("bob")
    with pytest.raises(AuthenticationError):
        world.governor.authenticate(world.keys["bob"])
    with pytest.raises(NotFound):
        world.governor.revoke_principal("bob")
    with pytest.raises(InputError, match="already exists"):
        world.governor.add_principal("bob", "operator", ["acme"])


@pytest.mark.parametrize(
    ("name", "role", "tenants", "message"),
    [
        ("has space", "operator", ["acme"], "name:"),
        ("ok", "wizard", ["acme"], "role: must be one of"),
        ("ok", "operator", [], "needs at least one --tenant"),
        ("ok", "operator", ["Bad Tenant"], "tenant:"),
        ("ok", "admin", ["acme"], "admin acts for every tenant"),
    ],
)
def test_bad_principals_are_refused_naming_the_field(
    world: World, name: str, role: str, tenants: list[str], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        world.governor.add_principal(name, role, tenants)


VOTERS = ["alice", "bob", "carol", "agent-7", "mallory", "audrey", "root"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from(["denied", "pending", "expired"]),
    votes=st.lists(
        st.tuples(
            st.sampled_from(VOTERS),
            st.sampled_from(["approve", "reject"]),
            st.booleans(),
            st.integers(0, 30),
        ),
        max_size=8,
    ),
)
def test_no_sequence_of_votes_runs_a_denied_or_expired_intent(
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    votes: list[tuple[str, str, bool, int]],
) -> None:
    world = build_world(tmp_path_factory.mktemp("prop"))
    try:
        target = "db/customers" if kind == "denied" else "db/orders"
        intent_id = world.submit(target=target)
        expired_at = T0 + timedelta(minutes=10)
        if kind == "expired":
            world.governor.clock = FixedClock(expired_at + timedelta(seconds=1))
            world.governor.expire_due("acme")
        for voter, vote, own_hash, minutes in votes:
            now = T0 + timedelta(minutes=minutes)
            if kind == "expired":
                now = max(now, expired_at + timedelta(seconds=1))
            world.governor.clock = FixedClock(now)
            state = intent_state(world.governor.story("acme", intent_id))
            bound = state.intent_hash if own_hash else "sha256:" + "1" * 64
            with contextlib.suppress(PermissionDenied):
                world.governor.vote("acme", intent_id, world.who(voter), Vote(vote), "why", bound)
        outcome = world.governor.outcome("acme", intent_id)
        if kind in ("denied", "expired"):
            assert world.effects.ran == []
            assert outcome.status in (OutcomeStatus.DENIED, OutcomeStatus.EXPIRED)
        else:
            state = intent_state(world.governor.story("acme", intent_id))
            valid = {
                a.approver
                for a in state.approvals
                if a.vote == Vote.APPROVE and a.intent_hash == state.intent_hash
            }
            if world.effects.ran:
                assert world.effects.ran == [intent_id]
                assert len(valid) >= 2
                assert "agent-7" not in valid
                assert not {"mallory", "audrey"} & valid
                assert state.status == ApprovalStatus.APPROVED
                assert state.decision.verdict == Verdict.REQUIRE_APPROVAL
    finally:
        world.governor.close()
