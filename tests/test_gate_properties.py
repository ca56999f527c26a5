"""The gate as a pure function, over arbitrary control state: it never raises and never loosens.

Switches of every scope kind (several at once, in either log), any posture,
any rate limits and class floor, any policy verdict and quorum.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.gate import GateConfig, RateLimit, check, recheck
from exoarmur.gate.controls import Controls
from exoarmur.ledger.merkle import leaf_hash
from exoarmur.model.decision import Decision, Verdict
from exoarmur.model.event import (
    INTENT_RECORDED,
    KILLSWITCH_ENGAGED,
    POSTURE_SET,
    SYSTEM_LOG,
    Event,
    EventDraft,
    event_bytes,
)
from exoarmur.model.intent import ActionIntent, SafetyClass

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
STRICTNESS = {
    Verdict.ALLOW: 0,
    Verdict.REQUIRE_APPROVAL: 1,
    Verdict.PENDING_EVIDENCE: 2,
    Verdict.DENY: 3,
}
TENANTS = ("acme", "globex")
ACTIONS = ("fs.write", "fs.read", "app.deploy", "db.drop")

patterns = st.sampled_from(["fs.*", "fs.write", "app.*", "*", "db.drop", "x.*"])
scopes = st.one_of(
    st.just("global"),
    st.sampled_from(TENANTS).map(lambda t: f"tenant:{t}"),
    patterns.map(lambda p: f"action:{p}"),
    st.tuples(st.sampled_from(TENANTS), patterns).map(lambda tp: f"tenant:{tp[0]}/action:{tp[1]}"),
)
rates = st.builds(RateLimit, st.integers(1, 4), st.integers(1, 120))
configs = st.builds(
    GateConfig,
    rate_limits=st.dictionaries(st.sampled_from(["tenant", "actor", "action"]), rates),
    lockdown_approval_above=st.sampled_from(list(SafetyClass)),
    heightened_classes=st.lists(st.sampled_from(list(SafetyClass)), unique=True).map(tuple),
    heightened_extra_approvals=st.integers(1, 3),
    protected_targets=st.lists(st.sampled_from(["t/0", "t/1"]), unique=True).map(tuple),
    protected_principals=st.lists(st.sampled_from(["agent-1", "agent-2"]), unique=True).map(tuple),
    protected_quorum=st.integers(1, 3),
    class_floor=st.dictionaries(st.sampled_from(list(SafetyClass)), st.integers(0, 3)),
)
decisions = st.builds(
    lambda verdict, quorum: Decision(
        verdict=verdict,
        obligations={"approval": str(quorum)} if verdict == Verdict.REQUIRE_APPROVAL else {},
        policy_hash="sha256:" + "0" * 64,
    ),
    # what policy decides: pending_evidence is only ever the gate's
    st.sampled_from([v for v in Verdict if v != Verdict.PENDING_EVIDENCE]),
    st.integers(1, 4),
)


class _Log:
    def __init__(self, log: str) -> None:
        self.controls = Controls(log)
        self.seq = 0

    def add(self, kind: str, payload: dict[str, object], at: datetime) -> None:
        draft = EventDraft(
            event_id=f"01KDVD{self.seq:020d}",
            tenant=self.controls.log,
            type=kind,
            correlation_id="c",
            event_time=at,
            process_time=at,
            actor={"id": "ops", "kind": "operator"},
            payload=payload,
        )
        canonical = event_bytes(draft, self.seq)
        self.controls.apply(Event.at(draft, self.seq, canonical, leaf_hash(canonical)))
        self.seq += 1


def _intent(tenant: str, action: str, klass: SafetyClass, target: str, actor: str) -> ActionIntent:
    return ActionIntent.model_validate(
        {
            "intent_id": "01KDVDNA0MHK4TPFES1W0SHD8Y",
            "tenant": tenant,
            "actor": {"id": actor, "kind": "agent"},
            "action": action,
            "target": target,
            "params": {},
            "safety_class": klass,
            "idempotency_key": "k",
            "correlation_id": "c",
            "event_time": T0,
        }
    )


@settings(max_examples=300, deadline=None)
@given(
    switches=st.lists(scopes, max_size=6),
    posture=st.sampled_from(["normal", "heightened", "lockdown"]),
    config=configs,
    decision=decisions,
    earlier=st.lists(st.tuples(st.sampled_from(ACTIONS), st.integers(0, 200)), max_size=8),
    tenant=st.sampled_from(TENANTS),
    action=st.sampled_from(ACTIONS),
    klass=st.sampled_from(list(SafetyClass)),
    target=st.sampled_from(["t/0", "t/1", "t/2"]),
    actor=st.sampled_from(["agent-1", "agent-2", "agent-3"]),
)
def test_the_gate_never_raises_and_never_loosens(
    switches: list[str],
    posture: str,
    config: GateConfig,
    decision: Decision,
    earlier: list[tuple[str, int]],
    tenant: str,
    action: str,
    klass: SafetyClass,
    target: str,
    actor: str,
) -> None:
    system, own = _Log(SYSTEM_LOG), _Log(tenant)
    own.add(POSTURE_SET, {"posture": posture, "until": None, "reason": "r"}, T0)
    for scope in switches:
        log = own if scope.startswith(f"tenant:{tenant}") else system
        if scope.startswith("tenant:") and log is system:
            continue  # another tenant's switch lives in its own log, not read here
        log.add(KILLSWITCH_ENGAGED, {"scope": scope, "reason": scope}, T0)
    now = T0 + timedelta(seconds=300)
    for n, (done, ago) in enumerate(earlier):
        recorded = _intent(tenant, done, SafetyClass.A0, f"e/{n}", actor).to_canonical()
        own.add(INTENT_RECORDED, {"intent": recorded}, now - timedelta(seconds=ago))
    intent = _intent(tenant, action, klass, target, actor)

    blocked = recheck(intent, system.controls, own.controls)
    gated = check(
        intent, decision, system=system.controls, tenant=own.controls, config=config, now=now
    )

    assert STRICTNESS[gated.verdict] >= STRICTNESS[decision.verdict]
    if blocked is not None:
        assert gated.verdict == Verdict.DENY
    if gated.verdict == Verdict.ALLOW:
        assert decision.verdict == Verdict.ALLOW
        assert config.class_floor.get(klass, 0) == 0
    if gated.verdict == Verdict.REQUIRE_APPROVAL:
        quorum = int(gated.obligations["approval"])
        assert quorum >= int(decision.obligations.get("approval", "0"))
        assert quorum >= config.class_floor.get(klass, 0)
    if gated is not decision:
        assert gated.gate is not None
        assert gated.gate["controls"]


def test_an_error_inside_the_gate_is_a_deny_naming_it() -> None:
    unreadable_quorum = Decision(
        verdict=Verdict.REQUIRE_APPROVAL,
        obligations={"approval": "two"},
        policy_hash="sha256:" + "0" * 64,
    )
    intent = _intent("acme", "fs.write", SafetyClass.A2, "t/0", "agent-1")
    gated = check(
        intent,
        unreadable_quorum,
        system=Controls(SYSTEM_LOG),
        tenant=Controls("acme"),
        config=GateConfig(),
        now=T0,
    )
    assert gated.verdict == Verdict.DENY
    assert gated.gate is not None
    assert gated.gate["controls"] == ["gate:error"]
    assert "ValueError" in gated.gate["reason"]


def test_the_class_floor_raises_a_permit_to_approval() -> None:
    allow = Decision(verdict=Verdict.ALLOW, policy_hash="sha256:" + "0" * 64)
    expect = {SafetyClass.A0: None, SafetyClass.A1: None, SafetyClass.A2: "1", SafetyClass.A3: "2"}
    for klass, quorum in expect.items():
        intent = _intent("acme", "fs.write", klass, "t/0", "agent-1")
        gated = check(
            intent,
            allow,
            system=Controls(SYSTEM_LOG),
            tenant=Controls("acme"),
            config=GateConfig(),
            now=T0,
        )
        if quorum is None:
            assert gated is allow
            continue
        assert gated.verdict == Verdict.REQUIRE_APPROVAL
        assert gated.obligations["approval"] == quorum
        assert gated.gate is not None
        assert gated.gate["controls"] == [f"class_floor:{klass.value}"]
        assert gated.gate["policy_verdict"] == "allow"


def test_a_recheck_that_cannot_read_a_switch_blocks() -> None:
    from exoarmur.gate import Switch

    broken = Controls(SYSTEM_LOG)
    # a state no fold writes: the guard, not the data, is under test
    broken.switches["?"] = Switch(None, "r", "ops", "e", "t")  # type: ignore[arg-type]
    intent = _intent("acme", "fs.write", SafetyClass.A1, "t/0", "agent-1")
    blocked = recheck(intent, broken, Controls("acme"))
    assert blocked is not None
    assert blocked[0] == "gate:error"
    assert "AttributeError" in blocked[1]
