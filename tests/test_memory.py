"""Defensive memory as a pure fold: what a tenant's log says, from recorded times only."""

from __future__ import annotations

import pytest

from exoarmur.encoding import canonical_bytes, content_hash
from exoarmur.errors import InputError
from exoarmur.memory import fold, recommend
from exoarmur.memory.advice import parse_recorded, raises
from exoarmur.memory.snapshot import rate
from memory_kit import TENANT, belief, change, finished, intent, log

ISOLATE = "containment.isolate_endpoint"


def story() -> list:
    """Two beliefs; the action on the first was compensated, the one on the second held."""
    return log(
        [
            ("belief.formed", belief("b1", "new-location"), None, 0),
            ("belief.formed", belief("b2", "new-location"), None, 0),
            ("belief.formed", belief("b3", "failed-logins"), None, 0),
            ("intent.recorded", intent("p1", "containment.plan", ["b1"]), "p1", 1),
            ("decision.recorded", {"decision": {"verdict": "require_approval"}}, "p1", 1),
            ("approval.requested", {}, "p1", 1),
            ("intent.approved", {}, "p1", 31),
            ("plan.started", {"plan_id": "p1"}, None, 32),
            (
                "plan.step.finished",
                {
                    "plan_id": "p1",
                    "step": 1,
                    "status": "succeeded",
                    "containment": change("revoke_sessions", "identity:alice", 600, 32),
                },
                None,
                32,
            ),
            (
                "containment.reverted",
                {
                    "control": "revoke_sessions/identity:alice",
                    "effector": "revoke_sessions",
                    "intent_id": "p1",
                    "plan_id": "p1",
                    "step": 1,
                    "cause": "compensation",
                },
                None,
                33,
            ),
            ("plan.compensated", {"plan_id": "p1"}, None, 33),
            ("execution.finished", {"executor": "plan", "status": "succeeded"}, "p1", 33),
            ("intent.recorded", intent("i2", ISOLATE, ["b2", "b3", "unknown"]), "i2", 40),
            ("decision.recorded", {"decision": {"verdict": "require_approval"}}, "i2", 40),
            ("approval.requested", {}, "i2", 40),
            ("intent.approved", {}, "i2", 50),
            ("execution.finished", finished("isolate_endpoint", "endpoint:pc-1", 60, 50), "i2", 50),
            (
                "containment.expired",
                {"control": "isolate_endpoint/endpoint:pc-1", "effector": "isolate_endpoint"},
                None,
                110,
            ),
            (
                "containment.reverted",
                {
                    "control": "isolate_endpoint/endpoint:pc-1",
                    "effector": "isolate_endpoint",
                    "intent_id": "i2",
                    "cause": "expired",
                },
                None,
                110,
            ),
            ("intent.recorded", intent("i3", ISOLATE), "i3", 120),
            ("decision.recorded", {"decision": {"verdict": "allow"}}, "i3", 120),
            (
                "execution.finished",
                finished("isolate_endpoint", "endpoint:pc-1", 60, 120),
                "i3",
                120,
            ),
            ("intent.recorded", intent("i4", "fs.delete"), "i4", 130),
            ("decision.recorded", {"decision": {"verdict": "deny"}}, "i4", 130),
            ("intent.recorded", intent("i5", ISOLATE), "i5", 140),
            ("decision.recorded", {"decision": {"verdict": "require_approval"}}, "i5", 140),
            ("approval.requested", {}, "i5", 140),
            ("intent.rejected", {"reason": "no"}, "i5", 150),
            ("intent.recorded", intent("i6", "fs.write"), "i6", 160),
            ("execution.blocked", {"control": "killswitch", "reason": "r"}, "i6", 160),
            ("intent.recorded", intent("i7", "fs.write"), "i7", 170),
            ("execution.finished", {"executor": "echo", "status": "failed"}, "i7", 170),
        ]
    )


def test_a_snapshot_counts_outcomes_reversals_latency_and_detector_precision() -> None:
    body = fold(TENANT, story()).snapshot().body
    assert body["format"] == "exoarmur.memory-snapshot/v1"
    assert body["position"] == len(story())
    assert body["outcomes"] == {
        "intents": 7,
        "denied": 1,
        "rejected": 1,
        "succeeded": 3,
        "failed": 1,
        "blocked": 1,
        "rates": {"succeeded": "0.6000", "failed": "0.2000", "blocked": "0.2000"},
    }
    assert body["actions"][ISOLATE]["succeeded"] == 2
    containment = body["containment"]
    assert (containment["plans"], containment["plans_compensated"]) == (1, 1)
    assert containment["compensation_rate"] == "1.0000"
    assert containment["controls_applied"] == 3
    assert containment["controls_released_early"] == 1
    assert containment["reversal_rate"] == "0.3333"
    # isolated again 10 s after its 60 s control expired: needed again within its own TTL
    assert containment["effectors"]["isolate_endpoint"]["reapplied_after_expiry"] == 1
    assert containment["effectors"]["isolate_endpoint"]["expired"] == 1
    assert body["approvals"] == {
        "containment.plan": {"settled": 1, "p50_ms": 30_000, "max_ms": 30_000},
        ISOLATE: {"settled": 2, "p50_ms": 10_000, "max_ms": 10_000},
    }
    assert body["detectors"] == {
        "failed-logins": {
            "beliefs": 1,
            "acted_on": 1,
            "reverted": 0,
            "rejected": 0,
            "precision": "1.0000",
        },
        "new-location": {
            "beliefs": 2,
            "acted_on": 2,
            "reverted": 1,
            "rejected": 0,
            "precision": "0.5000",
        },
    }


def test_posture_drift_counts_recorded_time_in_each_posture_and_a_ttl_running_out() -> None:
    events = log(
        [
            ("intent.recorded", intent("i1", "fs.read"), "i1", 0),
            ("posture.set", {"posture": "heightened", "until": None, "reason": "r"}, None, 10),
            (
                "posture.set",
                {"posture": "lockdown", "until": "2026-06-01T09:01:00Z", "reason": "r"},
                None,
                20,
            ),
            # the lockdown ran out at 60 s without a record: normal from then on
            ("intent.recorded", intent("i2", "fs.read"), "i2", 100),
        ]
    )
    posture = fold(TENANT, events).snapshot().body["posture"]
    assert posture["millis_in"] == {"normal": 50_000, "heightened": 10_000, "lockdown": 40_000}
    assert posture["current"] == "normal"
    assert posture["changes"] == 3


def test_a_recorded_posture_expiry_ends_the_posture_it_names() -> None:
    events = log(
        [
            ("posture.set", {"posture": "lockdown", "until": None, "reason": "r"}, None, 0),
            ("posture.expired", {"set_event_id": "other", "posture": "normal"}, None, 5),
            (
                "posture.expired",
                {"set_event_id": "01KDVD" + "0" * 20, "posture": "normal"},
                None,
                10,
            ),
            ("intent.recorded", intent("i1", "fs.read"), "i1", 30),
        ]
    )
    posture = fold(TENANT, events).snapshot().body["posture"]
    assert posture["millis_in"]["lockdown"] == 10_000
    assert posture["millis_in"]["normal"] == 20_000
    assert posture["current"] == "normal"


def test_the_same_prefix_gives_the_same_bytes_and_memory_s_own_records_are_not_remembered() -> None:
    events = story()
    first = fold(TENANT, events).snapshot()
    assert fold(TENANT, list(events)).snapshot().canonical() == first.canonical()
    assert first.memory_hash == content_hash(first.body)
    assert first.canonical() == canonical_bytes(first.body | {"memory_hash": first.memory_hash})
    rec = recommend(first)[0]
    with_advice = log(
        [
            (e.type, e.payload, e.intent_id, (e.process_time - events[0].process_time).seconds)
            for e in events
        ]
        + [
            ("memory.recommendation", {"recommendation": rec.to_json()}, None, 999),
            ("memory.recommendation.applied", {"recommendation_id": "x"}, None, 999),
        ]
    )
    assert fold(TENANT, with_advice).snapshot().canonical() == first.canonical()
    # a shorter prefix is another snapshot
    assert fold(TENANT, events[:-1]).snapshot().memory_hash != first.memory_hash


def test_an_empty_log_has_an_empty_memory() -> None:
    body = fold(TENANT, []).snapshot().body
    assert body["position"] == 0
    assert body["through_event_id"] is None
    assert body["outcomes"]["rates"] == {"succeeded": None, "failed": None, "blocked": None}
    assert recommend(fold(TENANT, []).snapshot()) == []


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [(0, 0, None), (1, 3, "0.3333"), (2, 3, "0.6666"), (3, 3, "1.0000"), (0, 7, "0.0000")],
)
def test_rates_are_decimal_strings_rounded_down(part: int, whole: int, text: str | None) -> None:
    assert rate(part, whole) == text


def test_the_rules_suggest_a_heightened_posture_and_a_wider_ttl_with_stable_ids() -> None:
    snapshot = fold(TENANT, story()).snapshot()
    made = recommend(snapshot)
    assert [(r.kind, r.subject) for r in made] == [
        ("posture", TENANT),
        ("ttl", "isolate_endpoint"),
    ]
    posture, ttl = made
    assert posture.text == "suggest heightened posture for tenant acme"
    assert posture.suggestion == {"posture": "heightened", "ttl_seconds": 86400}
    assert any("compensated" in reason for reason in posture.reasons)
    assert posture.reasons[0] == "3 containment control(s) applied; the posture is normal"
    assert ttl.suggestion == {"ttl_seconds": 120, "from_ttl_seconds": 60}
    assert ttl.text == "suggest a wider TTL for isolate_endpoint (120s instead of 60s)"
    assert [r.recommendation_id for r in recommend(snapshot)] == [r.recommendation_id for r in made]
    assert all(r.snapshot_hash == snapshot.memory_hash for r in made)


def test_failures_alone_call_for_a_heightened_posture_but_not_under_one() -> None:
    failing = [
        item
        for n in range(3)
        for item in (
            ("intent.recorded", intent(f"i{n}", "fs.write"), f"i{n}", n),
            ("execution.finished", {"executor": "echo", "status": "failed"}, f"i{n}", n),
        )
    ]
    made = recommend(fold(TENANT, log(failing)).snapshot())
    assert made[0].reasons == ("3 of 3 executions failed or were blocked",)
    heightened = ("posture.set", {"posture": "heightened", "until": None, "reason": "r"}, None, 9)
    assert recommend(fold(TENANT, log([*failing, heightened])).snapshot()) == []


def test_only_raising_a_posture_counts_as_raising_it() -> None:
    assert raises("normal", "heightened")
    assert raises("heightened", "lockdown")
    assert not raises("lockdown", "heightened")
    assert not raises("heightened", "heightened")
    assert not raises("heightened", "normal")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"recommendation": {"kind": "approve"}},
        {"recommendation": {"kind": "posture", "suggestion": {"posture": "relaxed"}}},
    ],
)
def test_a_recorded_recommendation_memory_did_not_make_is_refused(payload: dict) -> None:
    with pytest.raises(InputError, match="recommendation"):
        parse_recorded(payload)
