"""Memory on a real governor: advice recorded once, applied only by a person, never by itself."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containment_kit import action
from containment_kit import governor as containment_governor
from exoarmur.approvals.book import Vote
from exoarmur.errors import DuplicateIntent, InputError, NotFound, PermissionDenied
from exoarmur.gate.controls import POSTURES
from exoarmur.ledger.log import Ledger
from exoarmur.memory.room import (
    apply_recommendation,
    record_recommendations,
    recorded,
    snapshot_at,
)
from exoarmur.model.decision import OutcomeStatus
from exoarmur.model.event import (
    MEMORY_RECOMMENDATION,
    MEMORY_RECOMMENDATION_APPLIED,
    POSTURE_SET,
    SYSTEM_LOG,
)
from exoarmur.pipeline import Governor
from exoarmur.principals import Principal
from exoarmur.replay import replay

SRC = Path(__file__).resolve().parents[1] / "src" / "exoarmur"


@pytest.fixture
def room(ledger: Ledger) -> Governor:
    """A tenant that isolated a laptop, saw the control expire, and isolated it again."""
    gov = containment_governor(ledger)
    operator, _ = gov.add_principal("op", "operator", ["acme"])
    for key in ("first", "again"):
        outcome = gov.submit(action("isolate_endpoint", "endpoint:pc-1", 600, idempotency_key=key))
        assert outcome.status == OutcomeStatus.PENDING_APPROVAL
        gov.vote("acme", outcome.intent_id, operator, Vote.APPROVE, "contain")
        if key == "first":
            gov.containment.tick(gov.clock.now() + timedelta(seconds=601))
    return gov


def people(gov: Governor) -> dict[str, Principal]:
    found = {"op": gov.principals().get("op")}
    for name, role in (("agent", "agent"), ("stranger", "operator")):
        found[name] = gov.add_principal(name, role, ["acme" if role == "agent" else "globex"])[0]
    return {k: v for k, v in found.items() if v is not None}


def by_kind(rows: list, kind: str) -> dict:
    return {r.recommendation["kind"]: r for r in rows if r.recommendation["kind"] == kind}


def test_advice_is_recorded_once_per_snapshot_and_changes_nothing(room: Governor) -> None:
    who = people(room)
    pending = room.submit(action("freeze_identity", "identity:bob", 60, idempotency_key="pend"))
    before_posture = room.posture("acme")
    before_controls = room.containment.status("acme")
    size = room.ledger.size("acme")
    with pytest.raises(PermissionDenied):
        record_recommendations(room, "acme", who["agent"])
    assert room.ledger.size("acme") == size

    snapshot, made, events = record_recommendations(room, "acme", who["op"])
    assert [e.type for e in events] == [MEMORY_RECOMMENDATION] * 2
    assert {r.kind for r in made} == {"posture", "ttl"}
    assert all(e.actor == {"id": "op", "kind": "operator"} for e in events)
    again, _, none = record_recommendations(room, "acme", who["op"])
    assert none == []
    assert again.canonical() == snapshot.canonical()
    assert snapshot_at(room.ledger.store, "acme").memory_hash == snapshot.memory_hash

    # nothing acted: the pending intent still waits, posture and controls are as they were
    assert room.outcome("acme", pending.intent_id).status == OutcomeStatus.PENDING_APPROVAL
    assert room.posture("acme") == before_posture
    assert room.containment.status("acme") == before_controls
    fresh = room.submit(action("freeze_identity", "identity:carol", 60, idempotency_key="new"))
    assert fresh.status == OutcomeStatus.PENDING_APPROVAL
    room.ledger.checkpoint("acme")
    assert replay(room.ledger.store, "acme", verifier=room.ledger.verifier).verified


def test_a_snapshot_at_a_position_is_that_prefix_and_bad_positions_are_refused(
    room: Governor,
) -> None:
    store = room.ledger.store
    early = snapshot_at(store, "acme", 3)
    assert early.position <= 3
    assert early.memory_hash != snapshot_at(store, "acme").memory_hash
    for bad in (-1, store.size("acme") + 1):
        with pytest.raises(InputError, match="at: must be"):
            snapshot_at(store, "acme", bad)
    for unknown in ("globex", SYSTEM_LOG):
        with pytest.raises(NotFound, match="tenant"):
            snapshot_at(store, unknown)


def test_only_an_authorised_person_applies_a_posture_recommendation_once(room: Governor) -> None:
    who = people(room)
    record_recommendations(room, "acme", who["op"])
    rows = recorded(room.ledger.store, "acme")
    posture, ttl = by_kind(rows, "posture")["posture"], by_kind(rows, "ttl")["ttl"]
    rec_id = posture.recommendation["recommendation_id"]
    size = room.ledger.size("acme")

    refusals = [
        (ttl.recommendation["recommendation_id"], who["op"], InputError, "nothing to apply"),
        (rec_id, who["agent"], PermissionDenied, "may not"),
        (rec_id, who["stranger"], PermissionDenied, "may not"),
        ("rec_000000000000000000000000", who["op"], NotFound, "no 'rec_"),
    ]
    for recommendation, principal, error, words in refusals:
        with pytest.raises(error, match=words):
            apply_recommendation(room, "acme", recommendation, principal, "seen it")
    with pytest.raises(InputError, match="reason"):
        apply_recommendation(room, "acme", rec_id, who["op"], "  ")
    assert room.ledger.size("acme") == size

    # a posture already at least as strict: applying would not raise it, so nothing happens
    room.set_posture("acme", "lockdown", "incident", who["op"])
    size = room.ledger.size("acme")
    with pytest.raises(InputError, match="would not raise"):
        apply_recommendation(room, "acme", rec_id, who["op"], "seen it")
    assert room.ledger.size("acme") == size
    room.set_posture("acme", "normal", "incident over", who["op"])

    change, applied = apply_recommendation(room, "acme", rec_id, who["op"], "agreed")
    assert change.type == POSTURE_SET
    assert change.actor == {"id": "op", "kind": "operator"}
    assert change.payload["posture"] == "heightened"
    assert change.payload["until"] is not None
    assert applied.type == MEMORY_RECOMMENDATION_APPLIED
    assert applied.payload["principal"] == "op"
    assert applied.payload["applied_as"] == {"type": POSTURE_SET, "event_id": change.event_id}
    assert applied.correlation_id == posture.event.correlation_id  # one audit stream
    assert room.posture("acme")["posture"] == "heightened"
    with pytest.raises(InputError, match="applied already"):
        apply_recommendation(room, "acme", rec_id, who["op"], "again")
    assert by_kind(recorded(room.ledger.store, "acme"), "posture")["posture"].applied is not None


def test_an_apply_cut_after_its_posture_change_is_finished_without_changing_it_twice(
    room: Governor,
) -> None:
    who = people(room)
    record_recommendations(room, "acme", who["op"])
    rec_id = by_kind(recorded(room.ledger.store, "acme"), "posture")["posture"].recommendation[
        "recommendation_id"
    ]
    first = room.set_posture(
        "acme", "heightened", f"memory recommendation {rec_id}: cut", who["op"]
    )
    change, applied = apply_recommendation(room, "acme", rec_id, who["op"], "finish")
    assert change.event_id == first.event_id
    kinds = [e.type for e in room.ledger.store.events("acme", first.seq, room.ledger.size("acme"))]
    assert kinds == [POSTURE_SET, MEMORY_RECOMMENDATION_APPLIED]
    assert applied.payload["applied_as"]["event_id"] == first.event_id


def _calls(tree: ast.AST, name: str) -> int:
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == name)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == name)
        )
    )


def test_the_only_caller_of_apply_recommendation_is_the_memory_apply_command() -> None:
    callers = {
        str(path.relative_to(SRC)): count
        for path in sorted(SRC.rglob("*.py"))
        if (count := _calls(ast.parse(path.read_text(encoding="utf-8")), "apply_recommendation"))
    }
    assert callers == {"cli/memory.py": 1}
    command = ast.parse((SRC / "cli" / "memory.py").read_text(encoding="utf-8"))
    apply = next(
        n for n in ast.walk(command) if isinstance(n, ast.FunctionDef) and n.name == "apply"
    )
    assert _calls(apply, "apply_recommendation") == 1
    assert _calls(apply, "acting_principal") == 1  # the principal comes from credentials


def test_memory_never_calls_what_approves_allows_or_lowers() -> None:
    """The memory package reaches the governor for one change only: raising a posture."""
    acting = {
        "vote",
        "approve",
        "submit",
        "run",
        "activate_policy",
        "release_killswitch",
        "engage_killswitch",
        "expire_due",
        "tick",
        "add_principal",
    }
    for path in sorted((SRC / "memory").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        called = {
            node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        }
        if path.name == "demo.py":
            continue  # the demo plays the agent and operators that memory then remembers
        assert not called & acting, f"{path.name} calls {sorted(called & acting)}"
        if path.name != "room.py":
            assert "set_posture" not in called, path.name


suggestions = st.one_of(
    st.fixed_dictionaries(
        {"posture": st.sampled_from([*POSTURES, "relaxed"]), "ttl_seconds": st.integers(-5, 10**8)}
    ),
    st.dictionaries(
        st.sampled_from(["posture", "ttl_seconds", "approve", "quorum"]),
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=5),
        max_size=3,
    ),
    st.none(),
    st.text(max_size=5),
)


def test_applying_any_recorded_recommendation_never_approves_allows_or_lowers(
    ledger: Ledger,
) -> None:
    """Whatever a ``memory.recommendation`` in the log says, apply only ever raises a posture."""
    gov = containment_governor(ledger)
    operator, _ = gov.add_principal("op", "operator", ["acme"])
    pending = gov.submit(action("isolate_endpoint", "endpoint:pc-9", 60, idempotency_key="wait"))
    assert pending.status == OutcomeStatus.PENDING_APPROVAL
    made = iter(range(10**6))

    @settings(max_examples=40, deadline=None)
    @given(
        current=st.sampled_from(POSTURES),
        kind=st.sampled_from(["posture", "ttl", "approve", "allow", "lower_quorum"]),
        suggestion=suggestions,
    )
    def apply_any(current: str, kind: str, suggestion: object) -> None:
        gov.set_posture("acme", current, "the operator's own choice", operator)
        rec_id = f"rec_{next(made):024d}"
        forged = {"recommendation_id": rec_id, "kind": kind, "suggestion": suggestion}
        gov.state.append_one(
            "acme",
            gov.drafts.for_log(
                "acme",
                MEMORY_RECOMMENDATION,
                {"recommendation": forged},
                {"id": "op", "kind": "operator"},
                idempotency_key=f"memory recommendation {rec_id}",
            ),
        )
        size = gov.ledger.size("acme")
        try:
            change, _ = apply_recommendation(gov, "acme", rec_id, operator, "try it")
        except InputError:
            assert gov.ledger.size("acme") == size  # refused: nothing written
            assert gov.posture("acme")["posture"] == current
        else:
            assert change.type == POSTURE_SET
            assert POSTURES.index(gov.posture("acme")["posture"]) > POSTURES.index(current)
        assert gov.outcome("acme", pending.intent_id).status == OutcomeStatus.PENDING_APPROVAL

    apply_any()


def test_the_store_keeps_one_record_per_recommendation_whoever_races(room: Governor) -> None:
    who = people(room)
    _, _, events = record_recommendations(room, "acme", who["op"])
    first = events[0]
    rec_id = first.payload["recommendation"]["recommendation_id"]
    size = room.ledger.size("acme")
    twin = room.drafts.for_log(
        "acme",
        MEMORY_RECOMMENDATION,
        first.payload,
        first.actor,
        idempotency_key=f"memory recommendation {rec_id}",
    )
    with pytest.raises(DuplicateIntent):
        room.state.append_one("acme", twin)
    assert room.ledger.size("acme") == size
