"""The verdict rule, row by row: policies, an intent, a posture, and the decision they must give.

Each row of SCENARIOS is a named bundle and intent with the expected verdict,
reasons (the determining policy ids) and obligations. The rule under test:
any evaluation error denies; a determining forbid denies; determining permits
of which any asks for approval require approval, with the strictest
obligations among them; other determining permits allow; nothing determining
denies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.errors import LedgerCorrupt, PolicyError
from exoarmur.model.decision import Verdict
from exoarmur.model.event import POLICY_ACTIVATED, SYSTEM_LOG, Event
from exoarmur.model.intent import ActionIntent, parse_intent
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.policy.engine import engine_from_activation
from exoarmur.policy.obligations import EVIDENCE_LEVELS, combine
from exoarmur.policy.tooling import CASE_TIME, complete_intent
from samples import intent as sample_intent

READ = '@id("read") permit (principal, action, resource) when { context.safety_class == "A0" };'
ANY = '@id("any") permit (principal, action, resource);'
NO_PROD_DB = '@id("no-prod-db") forbid (principal, action, resource == Target::"db/prod");'


def make_intent(**overrides: Any) -> ActionIntent:
    return complete_intent(parse_intent(sample_intent(**overrides)), CASE_TIME)


def bundle(*texts: str) -> PolicyBundle:
    """One file per text, named a.cedar, b.cedar, …"""
    return PolicyBundle(tuple((f"{chr(97 + i)}.cedar", text) for i, text in enumerate(texts)))


@dataclass(frozen=True)
class Scenario:
    name: str
    policies: tuple[str, ...]
    verdict: Verdict
    reasons: tuple[str, ...] | None = ()
    obligations: dict[str, str] = field(default_factory=dict)
    intent: dict[str, Any] = field(default_factory=dict)
    posture: str = "normal"
    errors: bool = False


ALLOW, DENY, APPROVE = Verdict.ALLOW, Verdict.DENY, Verdict.REQUIRE_APPROVAL

SCENARIOS = [
    Scenario("nothing determines: default deny", (READ,), DENY, (), intent={"safety_class": "A2"}),
    Scenario("a permit allows", (READ,), ALLOW, ("read",)),
    Scenario(
        "forbid beats permit",
        (READ, NO_PROD_DB),
        DENY,
        ("no-prod-db",),
        intent={"target": "db/prod"},
    ),
    Scenario(
        "forbid beats a permit that asks for approval",
        ('@id("q") @approval("2") permit (principal, action, resource);', NO_PROD_DB),
        DENY,
        ("no-prod-db",),
        intent={"target": "db/prod"},
    ),
    Scenario(
        "a permit with @approval requires approval by its quorum",
        ('@id("q") @approval("2") permit (principal, action, resource);',),
        APPROVE,
        ("q",),
        {"approval": "2"},
    ),
    Scenario(
        "the largest quorum among determining permits",
        (
            '@id("one") @approval("1") permit (principal, action, resource);',
            '@id("three") @approval("3") permit (principal, action, resource);',
            '@id("two") @approval("2") permit (principal, action, resource);',
        ),
        APPROVE,
        ("one", "three", "two"),
        {"approval": "3"},
    ),
    Scenario(
        "one permit asking for approval is enough, even beside a plain permit",
        (ANY, '@id("q") @approval("2") permit (principal, action, resource);'),
        APPROVE,
        ("any", "q"),
        {"approval": "2"},
    ),
    Scenario(
        "windows take the minimum",
        (
            '@id("a") @approval("1") @approval_window("900") @ttl_max("7200")\n'
            "permit (principal, action, resource);",
            '@id("b") @approval_window("300") @ttl_max("86400")\n'
            "permit (principal, action, resource);",
        ),
        APPROVE,
        ("a", "b"),
        {"approval": "1", "approval_window": "300", "ttl_max": "7200"},
    ),
    Scenario(
        "evidence takes the highest level; no approval still allows",
        (
            '@id("low") @evidence("low") permit (principal, action, resource);',
            '@id("high") @evidence("high") permit (principal, action, resource);',
            '@id("std") @evidence("standard") permit (principal, action, resource);',
        ),
        ALLOW,
        ("high", "low", "std"),
        {"evidence": "high"},
    ),
    Scenario(
        "obligations of permits whose conditions fail do not count",
        (
            ANY,
            '@id("a3") @approval("2") permit (principal, action, resource)\n'
            'when { context.safety_class == "A3" };',
        ),
        ALLOW,
        ("any",),
    ),
    Scenario(
        "quorum numbers are normalised",
        ('@id("q") @approval("02") permit (principal, action, resource);',),
        APPROVE,
        ("q",),
        {"approval": "2"},
    ),
    Scenario(
        "posture is in the context: lockdown forbids",
        (
            ANY,
            '@id("lockdown") forbid (principal, action, resource)\n'
            'when { context.posture == "lockdown" };',
        ),
        DENY,
        ("lockdown",),
        posture="lockdown",
    ),
    Scenario(
        "posture is in the context: normal does not",
        (
            ANY,
            '@id("lockdown") forbid (principal, action, resource)\n'
            'when { context.posture == "lockdown" };',
        ),
        ALLOW,
        ("any",),
    ),
    Scenario(
        "event_time is in the context as text",
        (
            '@id("new-year") permit (principal, action, resource)\n'
            'when { context.event_time like "2026-01-01T*" };',
        ),
        ALLOW,
        ("new-year",),
    ),
    Scenario(
        "event_epoch is in the context as whole seconds",
        (
            '@id("jan-1") permit (principal, action, resource)\n'
            "when { context.event_epoch >= 1767225600 && context.event_epoch < 1767312000 };",
        ),
        ALLOW,
        ("jan-1",),
    ),
    Scenario(
        "a recorded time outside the window gets no permit",
        (
            '@id("jan-1") permit (principal, action, resource)\n'
            "when { context.event_epoch >= 1767225600 && context.event_epoch < 1767312000 };",
        ),
        DENY,
        (),
        intent={"event_time": "2026-06-01T00:00:00Z"},
    ),
    Scenario(
        "tenant and params are in the context",
        (
            '@id("acme-small") permit (principal, action, resource)\n'
            'when { context.tenant == "acme" && context.params.bytes < 100 };',
        ),
        ALLOW,
        ("acme-small",),
    ),
    Scenario(
        "an evaluation error denies, even beside a permit that holds",
        (ANY, '@id("big") permit (principal, action, resource) when { context.params.size > 1 };'),
        DENY,
        None,
        errors=True,
    ),
    Scenario(
        "an erroring forbid denies (Cedar alone would skip it and allow)",
        (ANY, '@id("f") forbid (principal, action, resource) when { context.params.size > 1 };'),
        DENY,
        None,
        errors=True,
    ),
    Scenario(
        "the actor kind picks the principal type",
        ('@id("ops") permit (principal is Operator, action, resource);',),
        ALLOW,
        ("ops",),
        intent={"actor": {"id": "alice", "kind": "operator"}},
    ),
    Scenario(
        "an agent is not an operator",
        ('@id("ops") permit (principal is Operator, action, resource);',),
        DENY,
        (),
    ),
    Scenario(
        "a policy without @id is named after its file and position",
        (
            'permit (principal, action, resource) when { context.safety_class == "A3" };\n'
            'permit (principal, action, resource) when { context.safety_class == "A0" };',
        ),
        ALLOW,
        ("a.cedar#1",),
    ),
]


@pytest.mark.parametrize("row", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_verdict_rule(row: Scenario) -> None:
    policies = bundle(*row.policies)
    engine = PolicyEngine(policies)
    intent = make_intent(**row.intent)
    decision = engine.decide(intent, row.posture)
    assert decision.verdict is row.verdict
    if row.reasons is not None:
        assert decision.reasons == row.reasons
    assert decision.obligations == row.obligations
    assert bool(decision.errors) is row.errors
    assert decision.policy_hash == policies.hash
    # The batched path the pipeline uses gives the very same decision.
    assert engine.decide_batch([intent], row.posture) == [decision]


def test_a_batch_of_mixed_intents_decides_each_as_alone() -> None:
    engine = PolicyEngine(
        bundle(
            READ,
            NO_PROD_DB,
            '@id("q") @approval("2") permit (principal, action, resource)\n'
            'when { context.safety_class == "A2" };',
        )
    )
    intents = [
        make_intent(),
        make_intent(target="db/prod"),
        make_intent(safety_class="A2"),
        make_intent(safety_class="A3"),
        make_intent(actor={"id": "agent-1", "kind": "service"}),
    ]
    decisions = engine.decide_batch(intents)
    assert decisions == [engine.decide(i) for i in intents]
    assert [d.verdict for d in decisions] == [ALLOW, DENY, APPROVE, DENY, ALLOW]


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ('@approval("0")', "positive whole number"),
        ('@approval("-1")', "positive whole number"),
        ('@approval("two")', "positive whole number"),
        ('@approval("1.5")', "positive whole number"),
        ('@approval("٣")', "positive whole number"),  # a digit, but not an ASCII one
        ('@approval("101")', "exceeds 100"),
        ("@approval", "needs a value"),
        ('@approval_window("0")', "positive whole number"),
        ('@ttl_max("1h")', "positive whole number"),
        ('@evidence("max")', "must be one of none, observed, corroborated, attested"),
        ('@evidence("HIGH")', "must be one of"),
    ],
)
def test_malformed_obligations_refuse_the_bundle(annotation: str, message: str) -> None:
    text = f'@id("p") {annotation} permit (principal, action, resource);'
    with pytest.raises(PolicyError, match=message):
        PolicyEngine(bundle(text))


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param((READ, READ), id="across files"),
        pytest.param((READ + "\n" + READ.replace("A0", "A1"),), id="in one file"),
    ],
)
def test_duplicate_ids_refuse_the_bundle(texts: tuple[str, ...]) -> None:
    with pytest.raises(PolicyError, match="policy id 'read' is used twice"):
        PolicyEngine(bundle(*texts))


def test_templates_and_parse_errors_refuse_the_bundle() -> None:
    with pytest.raises(PolicyError, match="templates are not supported"):
        PolicyEngine(bundle("permit (principal == ?principal, action, resource);"))
    with pytest.raises(PolicyError, match=r"^a\.cedar: unexpected token"):
        PolicyEngine(bundle("permit (principal, action resource);"))


OBLIGATIONS = st.fixed_dictionaries(
    {},
    optional={
        "approval": st.integers(1, 100).map(str),
        "approval_window": st.integers(1, 10**6).map(str),
        "ttl_max": st.integers(1, 10**6).map(str),
        "evidence": st.sampled_from(EVIDENCE_LEVELS),
    },
)


@given(st.lists(OBLIGATIONS, max_size=5))
def test_combining_obligations_is_order_free_and_strictest(each: list[dict[str, str]]) -> None:
    combined = combine(each)
    for order in itertools.islice(itertools.permutations(each), 6):
        assert combine(order) == combined
    for name, pick in (("approval", max), ("approval_window", min), ("ttl_max", min)):
        values = [int(o[name]) for o in each if name in o]
        assert combined.get(name) == (str(pick(values)) if values else None)
    levels = [EVIDENCE_LEVELS.index(o["evidence"]) for o in each if "evidence" in o]
    assert combined.get("evidence") == (EVIDENCE_LEVELS[max(levels)] if levels else None)


def _activation(bundle: PolicyBundle, policy_hash: str) -> Event:
    now = CASE_TIME
    return Event(
        seq=0,
        event_id="activation-1",
        tenant=SYSTEM_LOG,
        type=POLICY_ACTIVATED,
        correlation_id="c",
        event_time=now,
        process_time=now,
        actor={"id": "local-admin", "kind": "operator"},
        payload={"bundle": bundle.to_canonical(), "policy_hash": policy_hash},
        intent_id=None,
        canonical=b"{}",
        leaf_hash=b"0" * 32,
    )


def test_an_activation_rebuilds_the_engine_it_names() -> None:
    recorded = bundle(READ)
    engine = engine_from_activation(_activation(recorded, recorded.hash))
    assert engine.policy_hash == recorded.hash
    assert engine.decide(make_intent()).verdict is Verdict.ALLOW


def test_an_activation_whose_bundle_is_not_its_hash_is_corrupt() -> None:
    with pytest.raises(LedgerCorrupt, match="activation-1 names a bundle it does not hold"):
        engine_from_activation(_activation(bundle(READ), bundle(ANY).hash))


def test_one_parse_serves_every_activation_of_the_same_bundle() -> None:
    recorded = bundle(READ)
    first = engine_from_activation(_activation(recorded, recorded.hash))
    # another governor, another home: the same bundle is the same immutable engine
    assert engine_from_activation(_activation(recorded, recorded.hash)) is first


def test_a_forged_activation_is_refused_even_after_the_real_one_was_parsed() -> None:
    real = bundle(READ)
    engine_from_activation(_activation(real, real.hash))
    # names the cached hash over other text: must not be answered from the cache
    with pytest.raises(LedgerCorrupt, match="names a bundle it does not hold"):
        engine_from_activation(_activation(bundle(ANY), real.hash))


def test_the_shared_engines_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from exoarmur.policy import engine as engine_module

    monkeypatch.setattr(engine_module, "ACTIVATED_CACHE_SIZE", 1)
    read, anything = bundle(READ), bundle(ANY)
    first = engine_from_activation(_activation(read, read.hash))
    engine_from_activation(_activation(anything, anything.hash))
    assert len(engine_module._ACTIVATED) == 1
    # the older one was dropped: parsed again, a new (equal) engine
    again = engine_from_activation(_activation(read, read.hash))
    assert again is not first
    assert again.policy_hash == first.policy_hash


_PARAMS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(min_value=-1e15, max_value=1e15)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
PARAMS_READ = (
    '@id("p") permit (principal, action, resource)\n'
    "when { context.params has n && context.params.n == 7 && context.params has s "
    '&& context.params.s == "é\\u{1F600}" };'
)


@settings(deadline=None, max_examples=40)
@given(params=st.dictionaries(st.text(max_size=4), _PARAMS, max_size=4), hit=st.booleans())
def test_cedar_reads_the_request_as_text_as_it_reads_it_as_values(
    params: dict[str, Any], hit: bool
) -> None:
    """The engine hands cedarpy JSON text written by orjson; cedarpy's own dump decides alike."""
    import cedarpy

    if hit:
        params = params | {"n": 7, "s": "é\U0001f600"}
    engine = PolicyEngine(bundle(PARAMS_READ, NO_PROD_DB))
    intents = [make_intent(params=params), make_intent(params=params, target="db/prod")]
    requests, entities = zip(*(engine.request(i) for i in intents), strict=True)
    merged = {(e["uid"]["type"], e["uid"]["id"]): e for ents in entities for e in ents}
    by_values = cedarpy.is_authorized_batch(list(requests), engine._policies, list(merged.values()))
    decided = engine.decide_batch(intents)
    assert decided == [engine._decision(result) for result in by_values]
    assert decided == [engine.decide(i) for i in intents]
    assert [d.verdict for d in decided] == [ALLOW if hit else DENY, DENY]
