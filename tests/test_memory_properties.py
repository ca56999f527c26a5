"""Advice never acts: recording recommendations changes no decision, posture or control.

Hypothesis builds arbitrary tenant logs (postures with and without TTLs,
kill switches, intents and their outcomes, containment applied, expired and
compensated, beliefs) and interleaves recommendations, the ones memory draws
and arbitrary ones, wherever it likes. The gate's control state, the
containment controls in force, the decisions on new intents and memory's own
snapshot are the same with and without them; and every rule only ever
suggests something stricter than what is in force.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.containment.fold import ControlsInForce
from exoarmur.containment.model import MAX_TTL_SECONDS
from exoarmur.encoding import format_time
from exoarmur.gate import GateConfig
from exoarmur.gate.controls import POSTURES, Controls
from exoarmur.governor.deciding import decide
from exoarmur.memory import Recommendation, fold, recommend
from exoarmur.memory.advice import KINDS, raises
from exoarmur.model.event import SYSTEM_LOG, Event
from exoarmur.model.intent import ActionIntent
from exoarmur.policy import PolicyBundle, PolicyEngine
from memory_kit import TENANT, at, belief, change, intent, log

POLICY = """
@id("allow-containment")
@ttl_max("7200")
permit (principal, action, resource)
when { context.action like "containment.*" };

@id("writes-need-one")
@approval("1")
permit (principal, action == Action::"fs.write", resource);
"""
ENGINE = PolicyEngine(PolicyBundle.from_text(POLICY))
SCOPES = ("endpoint:pc-1", "endpoint:pc-2")
Item = tuple[Any, ...]

steps = st.one_of(
    st.tuples(st.just("posture"), st.sampled_from(POSTURES), st.none() | st.integers(1, 600)),
    st.tuples(st.just("posture_expired"), st.booleans()),
    st.tuples(st.just("switch"), st.booleans(), st.sampled_from(["fs.*", "containment.*"])),
    st.tuples(
        st.just("intent"),
        st.sampled_from(["fs.write", "fs.read", "containment.plan"]),
        st.sampled_from(["allow", "deny", "approved", "rejected"]),
        st.sampled_from(["succeeded", "failed", "blocked", None]),
    ),
    st.tuples(st.just("contain"), st.sampled_from(SCOPES), st.integers(1, 900)),
    st.tuples(st.just("expire"), st.sampled_from(SCOPES)),
    st.tuples(st.just("compensate"), st.sampled_from(SCOPES)),
    st.tuples(st.just("belief"), st.integers(0, 3), st.sampled_from(["d1", "d2"])),
)
gaps = st.integers(0, 400)


def items(plan: list[tuple[tuple[Any, ...], int]]) -> list[Item]:
    """The events a plan of steps records, at increasing recorded times."""
    found: list[Item] = []
    now = 0.0
    last_posture: str | None = None
    for number, (step, gap) in enumerate(plan):
        now += gap
        kind = step[0]
        if kind == "posture":
            until = None if step[2] is None else format_time(at(now + step[2]))
            found.append(
                ("posture.set", {"posture": step[1], "until": until, "reason": "r"}, None, now)
            )
            last_posture = f"01KDVD{len(found) - 1:020d}"
        elif kind == "posture_expired":
            named = last_posture if step[1] and last_posture else "another"
            found.append(
                ("posture.expired", {"set_event_id": named, "posture": "normal"}, None, now)
            )
        elif kind == "switch":
            event = "killswitch.engaged" if step[1] else "killswitch.released"
            found.append(
                (event, {"scope": f"tenant:{TENANT}/action:{step[2]}", "reason": "r"}, None, now)
            )
        elif kind == "intent":
            found.extend(_intent(f"i{number}", step[1], step[2], step[3], now, number))
        elif kind == "contain":
            effect = change("isolate_endpoint", step[1], step[2], now)
            result = {
                "executor": "isolate_endpoint",
                "status": "succeeded",
                "result": {"containment": effect},
            }
            found.append(("execution.finished", result, f"c{number}", now))
        elif kind in ("expire", "compensate"):
            control = {
                "control": f"isolate_endpoint/{step[1]}",
                "effector": "isolate_endpoint",
                "intent_id": "p",
                "plan_id": "p",
            }
            if kind == "expire":
                found.append(("containment.expired", control, None, now))
            cause = "expired" if kind == "expire" else "compensation"
            found.append(("containment.reverted", control | {"cause": cause}, None, now))
            if kind == "compensate":
                found.append(("plan.compensated", {"plan_id": "p"}, None, now))
        else:
            found.append(("belief.formed", belief(f"b{step[1]}", step[2]), None, now))
    # ids that stay with their events wherever advice is interleaved
    return [(*item, f"01KDVD{n:020d}") for n, item in enumerate(found)]


def _intent(
    intent_id: str, action: str, verdict: str, outcome: str | None, now: float, number: int
) -> list[Item]:
    made: list[Item] = [
        ("intent.recorded", intent(intent_id, action, [f"b{number % 4}"]), intent_id, now),
        ("decision.recorded", {"decision": {"verdict": verdict}}, intent_id, now),
    ]
    if verdict in ("approved", "rejected"):
        made.append(("approval.requested", {}, intent_id, now))
        made.append((f"intent.{verdict}", {}, intent_id, now + 1))
    if verdict != "deny" and outcome == "blocked":
        made.append(("execution.blocked", {"control": "k", "reason": "r"}, intent_id, now + 1))
    elif verdict != "deny" and outcome is not None:
        made.append(
            ("execution.finished", {"executor": "echo", "status": outcome}, intent_id, now + 1)
        )
    return made


recommendations = st.builds(
    lambda kind, posture, ttl, position: Recommendation(
        kind,
        "any-rule",
        TENANT,
        {"posture": posture, "ttl_seconds": ttl}
        if kind == "posture"
        else {"ttl_seconds": ttl, "from_ttl_seconds": ttl},
        ("any reason",),
        "sha256:" + "0" * 64,
        position,
    ),
    st.sampled_from(KINDS),
    st.sampled_from(POSTURES),
    st.integers(1, MAX_TTL_SECONDS),
    st.integers(0, 50),
)


def with_advice(base: list[Item], where: list[int], arbitrary: list[Recommendation]) -> list[Item]:
    """``base`` with memory's own recommendations (and arbitrary ones) recorded at ``where``."""
    cuts = sorted({w % (len(base) + 1) for w in where})
    found: list[Item] = []
    done = 0
    for cut in cuts:
        found.extend(base[done:cut])
        done = cut
        when = base[cut - 1][3] if cut else 0.0
        drawn = recommend(fold(TENANT, log(base[:cut])).snapshot())
        for rec in [*drawn, *arbitrary]:
            payload = {"recommendation": rec.to_json()}
            found.append(("memory.recommendation", payload, None, when, f"01KDVE{len(found):020d}"))
            applied = {"recommendation_id": rec.recommendation_id, "principal": "ops"}
            found.append(
                ("memory.recommendation.applied", applied, None, when, f"01KDVF{len(found):020d}")
            )
    found.extend(base[done:])
    return found


def _state(events: list[Event], now_seconds: float) -> dict[str, Any]:
    gate, controls = Controls(TENANT), ControlsInForce(TENANT)
    for event in events:
        gate.apply(event)
        controls.apply(event)
    now = at(now_seconds)
    decided = []
    for action, klass in (
        ("containment.isolate_endpoint", "A2"),
        ("fs.write", "A1"),
        ("fs.read", "A0"),
    ):
        proposed = ActionIntent.model_validate(
            {
                "intent_id": "01KDVDNA0MHK4TPFES1W0SHD8Y",
                "tenant": TENANT,
                "actor": {"id": "soc-agent", "kind": "agent"},
                "action": action,
                "target": "endpoint:pc-1",
                "params": {"containment": {"scope": "endpoint:pc-1", "ttl_seconds": 60}}
                if action.startswith("containment.")
                else {},
                "safety_class": klass,
                "idempotency_key": "k",
                "correlation_id": "c",
                "event_time": now,
            }
        )
        found = decide(proposed, ENGINE, Controls(SYSTEM_LOG), gate, GateConfig(), now, None)
        decided.append((found.decision.model_dump(mode="json"), found.posture, found.lapsed))
    memory = fold(TENANT, events).snapshot().body
    return {
        "posture": gate.posture_at(now),
        "switches": sorted(gate.switches),
        "unreadable": gate.unreadable,
        "policy": gate.policy,
        "recent": gate.count(("tenant", ""), now, 3600, 1000),
        "controls": controls.in_force(),
        "due": controls.due(now),
        "decisions": decided,
        "memory": {k: v for k, v in memory.items() if k not in ("position", "through_event_id")},
    }


@settings(max_examples=50, deadline=None)
@given(
    plan=st.lists(st.tuples(steps, gaps), max_size=14),
    where=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    arbitrary=st.lists(recommendations, min_size=1, max_size=3),
    later=st.integers(0, 2000),
)
def test_recording_recommendations_changes_no_decision_posture_or_control(
    plan: list[tuple[tuple[Any, ...], int]],
    where: list[int],
    arbitrary: list[Recommendation],
    later: int,
) -> None:
    base = items(plan)
    now = (base[-1][3] if base else 0.0) + later
    advised = with_advice(base, where, arbitrary)
    assert len(advised) > len(base)
    assert _state(log(advised), now) == _state(log(base), now)


@settings(max_examples=50, deadline=None)
@given(plan=st.lists(st.tuples(steps, gaps), max_size=14))
def test_advice_only_ever_suggests_something_stricter(
    plan: list[tuple[tuple[Any, ...], int]],
) -> None:
    events = log(items(plan))
    snapshot = fold(TENANT, events).snapshot()
    gate = Controls(TENANT)
    for event in events:
        gate.apply(event)
    in_force = gate.posture_at(events[-1].process_time).posture if events else "normal"
    effectors = snapshot.body["containment"]["effectors"]
    for rec in recommend(snapshot):
        assert rec.kind in KINDS
        assert set(rec.to_json()) >= {"recommendation_id", "kind", "suggestion", "snapshot_hash"}
        if rec.kind == "posture":
            # stricter than the posture in force: never normal, never an approval or allow
            assert set(rec.suggestion) == {"posture", "ttl_seconds"}
            assert raises(in_force, rec.suggestion["posture"])
        else:
            assert set(rec.suggestion) == {"ttl_seconds", "from_ttl_seconds"}
            assert rec.suggestion["from_ttl_seconds"] == effectors[rec.subject]["max_ttl_seconds"]
            assert (
                rec.suggestion["from_ttl_seconds"]
                < rec.suggestion["ttl_seconds"]
                <= MAX_TTL_SECONDS
            )


def test_the_interleaving_helper_really_records_memory_s_own_advice() -> None:
    base = items(
        [
            (("contain", "endpoint:pc-1", 60), 0),
            (("expire", "endpoint:pc-1"), 60),
            (("contain", "endpoint:pc-1", 60), 10),
        ]
    )
    advised = with_advice(base, [len(base)], [])
    kinds = [item[0] for item in advised[len(base) :]]
    assert kinds.count("memory.recommendation") == 2  # heighten and widen, both drawn
