"""Verifying a bundle for less: batched re-decisions and plainness noted while parsing, exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from exoarmur import jsontext
from exoarmur.encoding import _plain, canonical_bytes
from exoarmur.evidence.story import Context, rule_ahead
from exoarmur.gate import POSTURES, GateConfig
from exoarmur.model.intent import ActionIntent, parse_intent
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.policy.tooling import complete_intent
from samples import POLICY
from samples import intent as sample_intent

# policy that reads what a batch must keep apart: principal kind, posture, tightenings
CAREFUL = """
@id("agents-read")
permit (principal is Agent, action, resource) when { context.safety_class == "A0" };

@id("ops-any") @approval("2")
permit (principal is Operator, action, resource) when { context.posture != "lockdown" };

@id("tightened-asks") @approval("1")
permit (principal, action == Action::"ticket.create", resource)
when { context has tightened };
"""
ENGINES = {
    engine.policy_hash: engine
    for engine in (
        PolicyEngine(PolicyBundle((("a.cedar", POLICY),))),
        PolicyEngine(PolicyBundle((("a.cedar", CAREFUL),))),
    )
}
TABLES: dict[str, dict[str, Any]] = {
    "sha256:plain": {},
    "sha256:tight": {
        "gate": GateConfig.from_table(
            {"posture": {"lockdown": {"ttl_max_seconds": 300}, "heightened": {}}}
        ).to_canonical()
    },
}
WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

cases = st.lists(
    st.tuples(
        st.sampled_from(["agent-1", "agent-2", "ops-1"]),
        st.sampled_from(["fs.read", "ticket.create", "fs.rm"]),
        st.sampled_from(["x", "db/prod"]),
        st.sampled_from(["A0", "A2"]),
        st.sampled_from(sorted(ENGINES)),
        st.sampled_from(sorted(TABLES)),
        st.sampled_from(POSTURES),
    ),
    min_size=1,
    max_size=12,
)


def _intent(number: int, actor: str, action: str, target: str, safety: str) -> ActionIntent:
    kind = "operator" if actor.startswith("ops") else "agent"
    request = parse_intent(
        sample_intent(
            intent_id=f"01KDVDNA00E9J26YC765WVR{number:03d}",
            actor={"id": actor, "kind": kind},
            action=action,
            target=target,
            safety_class=safety,
        )
    )
    return complete_intent(request, WHEN)


@settings(max_examples=30, deadline=None)
@given(cases)
def test_batched_re_decisions_match_one_at_a_time(
    mix: list[tuple[str, str, str, str, str, str, str]],
) -> None:
    context = Context(engines=dict(ENGINES), configs=dict(TABLES))
    events: list[tuple[str, dict[str, Any]]] = []
    for number, (actor, action, target, safety, policy, config, posture) in enumerate(mix):
        raw = _intent(number, actor, action, target, safety).to_canonical()
        events.append(
            (f"events[{2 * number}]", {"type": "intent.recorded", "payload": {"intent": raw}})
        )
        decision = {"policy_hash": policy, "config_hash": config}
        events.append(
            (
                f"events[{2 * number + 1}]",
                {
                    "type": "decision.recorded",
                    "intent_id": raw["intent_id"],
                    "payload": {"decision": decision, "posture": posture},
                },
            )
        )
    ruled = rule_ahead(events, context)
    assert len(ruled.decided) == len(mix)
    for number, (*_, policy, config, posture) in enumerate(mix):
        intent = ruled.intents[id(events[2 * number][1]["payload"]["intent"])]
        tightened = GateConfig.from_recorded(TABLES[config].get("gate")).policy_context(posture)
        alone = ENGINES[policy].decide(intent, posture, tightened)
        assert ruled.decided[(policy, config, posture, id(intent))] == alone


def test_a_decision_whose_inputs_cannot_be_read_is_left_to_be_decided_alone() -> None:
    raw = _intent(1, "agent-1", "fs.read", "x", "A0").to_canonical()
    policy = next(iter(ENGINES))
    events: list[tuple[str, dict[str, Any]]] = [
        ("events[0]", {"type": "intent.recorded", "payload": {"intent": raw}}),
        ("events[1]", {"type": "intent.recorded", "payload": {"intent": {"not": "an intent"}}}),
        ("events[2]", {"type": "decision.recorded", "intent_id": raw["intent_id"], "payload": 3}),
        (
            "events[3]",
            {
                "type": "decision.recorded",
                "intent_id": raw["intent_id"],
                "payload": {
                    "decision": {"policy_hash": policy, "config_hash": "sha256:absent"},
                    "posture": "normal",
                },
            },
        ),
    ]
    events.append(
        (
            "events[4]",
            {
                "type": "decision.recorded",
                "intent_id": raw["intent_id"],
                "payload": {"decision": {"policy_hash": [policy]}, "posture": "normal"},
            },
        )
    )
    ruled = rule_ahead(events, Context(engines=dict(ENGINES), configs=dict(TABLES)))
    assert len(ruled.intents) == 1
    assert ruled.decided == {}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.sampled_from("ab\u00e9\U0001f600"), max_size=3), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=30, deadline=None)
@given(json_values)
@example({"\U0001f600": 1})
@example([2**53, -(2**53) + 1])
@example({"a": [1.5]})
def test_plainness_noted_while_parsing_is_plainness_found_by_walking(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    parsed, plain = jsontext.loads_plain(text)
    assert plain == _plain(parsed)
    if plain:
        assert canonical_bytes(parsed, plain=plain) == canonical_bytes(parsed)
