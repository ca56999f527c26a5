"""The safety gate: kill switches, posture, rate limits, protected things, config capture.
It only ever tightens, it reads controls from the ledger, and it fails closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exoarmur.approvals import Vote
from exoarmur.clock import FixedClock
from exoarmur.errors import ConfigError, InputError, LedgerCorrupt, PermissionDenied
from exoarmur.evidence import export_bundle, verify_bundle
from exoarmur.executors import ExecutorRegistry
from exoarmur.gate import GateConfig, RateLimit, parse_scope
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import OutcomeStatus, Verdict
from exoarmur.model.event import EventDraft
from exoarmur.model.intent import ActionIntent, SafetyClass
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.replay import replay

POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };
@id("writes") permit (principal, action, resource)
when { context.action like "fs.*" && context.safety_class != "A0" };
@id("deploys") @approval("1") permit (principal, action == Action::"app.deploy", resource);
@id("lockdown-visible") forbid (principal, action == Action::"fs.chmod", resource)
when { context.posture == "lockdown" };
"""
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SAFETY = ("A0", "A1", "A2", "A3")


class Effects:
    kind = "effects"

    def __init__(self) -> None:
        self.ran: list[str] = []

    def execute(self, intent: ActionIntent) -> dict[str, bool]:
        self.ran.append(intent.intent_id)
        return {"ok": True}


class World:
    def __init__(self, path: Path, gate: GateConfig | None = None) -> None:
        self.clock = FixedClock(T0)
        self.effects = Effects()
        registry = ExecutorRegistry()
        registry.bind("*", self.effects)
        self.governor = Governor(
            ledger=Ledger(SqliteStore(path / "ledger.db"), SigningKey.generate("t/gate")),
            policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
            executors=registry,
            clock=self.clock,
            ids=SeededIds(11),
            gate=gate,
        )
        self.keys = {
            name: self.governor.add_principal(name, role, tenants)[1]
            for name, role, tenants in [
                ("ops-acme", "operator", ["acme"]),
                ("ops-acme-2", "operator", ["acme"]),
                ("ops-globex", "operator", ["globex"]),
                ("auditor", "auditor", ["acme"]),
            ]
        }

    def who(self, name: str) -> Any:
        return self.governor.authenticate(self.keys[name])

    def submit(self, **fields: Any) -> Any:
        body = {
            "tenant": "acme",
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "fs.write",
            "target": "files/a",
            "safety_class": "A1",
        } | fields
        return self.governor.submit(body)

    def at(self, seconds: float) -> None:
        self.governor.clock = FixedClock(T0 + timedelta(seconds=seconds))


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    yield w
    w.governor.close()


@pytest.mark.parametrize(
    ("scope", "blocked", "passes"),
    [
        ("global", [("acme", "fs.write"), ("globex", "fs.read")], []),
        ("tenant:acme", [("acme", "fs.write"), ("acme", "fs.read")], [("globex", "fs.write")]),
        ("action:fs.w*", [("acme", "fs.write"), ("globex", "fs.write")], [("acme", "fs.read")]),
        ("tenant:acme/action:fs.*", [("acme", "fs.read")], [("globex", "fs.read")]),
    ],
)
def test_kill_switch_scopes(
    world: World, scope: str, blocked: list[tuple[str, str]], passes: list[tuple[str, str]]
) -> None:
    world.governor.engage_killswitch(scope, "incident", LOCAL_ADMIN)
    for n, (tenant, action) in enumerate(blocked):
        outcome = world.submit(tenant=tenant, action=action, target=f"b{n}", safety_class="A0")
        assert outcome.status == OutcomeStatus.DENIED, (tenant, action)
        assert outcome.decision.gate is not None
        assert outcome.decision.gate["controls"] == [f"killswitch:{parse_scope(scope).text}"]
        assert outcome.decision.gate["policy_verdict"] == "allow"
    for n, (tenant, action) in enumerate(passes):
        outcome = world.submit(tenant=tenant, action=action, target=f"p{n}", safety_class="A0")
        assert outcome.status == OutcomeStatus.EXECUTED, (tenant, action)
    world.governor.release_killswitch(scope, "over", LOCAL_ADMIN)
    assert world.submit(target="after", safety_class="A0").status == OutcomeStatus.EXECUTED
    assert world.governor.killswitches() == []


def test_every_block_is_an_event_naming_the_control(world: World) -> None:
    world.governor.engage_killswitch("tenant:acme", "incident 7", world.who("ops-acme"))
    outcome = world.submit()
    story = world.governor.story("acme", outcome.intent_id)
    blocked = [e for e in story if e.type == "gate.blocked"]
    assert blocked[0].payload["controls"] == ["killswitch:tenant:acme"]
    assert blocked[0].payload["reason"] == "incident 7"
    decided = next(e for e in story if e.type == "decision.recorded")
    assert decided.payload["decision"]["config_hash"] == world.governor.config_hash
    assert set(decided.payload["controls"]) == {"system", "tenant"}


def test_a_switch_engaged_after_approval_stops_the_execution(world: World) -> None:
    pending = world.submit(action="app.deploy", target="svc/api")
    assert pending.status == OutcomeStatus.PENDING_APPROVAL
    world.governor.engage_killswitch("action:app.*", "bad release", LOCAL_ADMIN)
    result = world.governor.vote(
        "acme", pending.intent_id, world.who("ops-acme"), Vote.APPROVE, "ok"
    )
    assert result.outcome.status == OutcomeStatus.BLOCKED
    assert world.effects.ran == []
    types = [e.type for e in world.governor.story("acme", pending.intent_id)]
    # The re-check ran before the start was written: the story says blocked,
    # and no execution.started claims an attempt that never happened.
    assert types[-2:] == ["intent.approved", "execution.blocked"]
    assert "execution.started" not in types
    assert world.governor.ledger.store.unfinished_executions("acme") == []
    assert world.governor.recover() == []  # recovery does not start it later either


@pytest.mark.parametrize(
    ("who", "scope", "allowed"),
    [
        ("ops-acme", "tenant:acme", True),
        ("ops-acme", "tenant:acme/action:fs.*", True),
        ("ops-acme", "tenant:globex", False),
        ("ops-acme", "global", False),
        ("ops-acme", "action:fs.*", False),
        ("auditor", "tenant:acme", False),
        ("ops-globex", "tenant:acme", False),
    ],
)
def test_who_may_switch_what(world: World, who: str, scope: str, allowed: bool) -> None:
    principal = world.who(who)
    if allowed:
        world.governor.engage_killswitch(scope, "r", principal)
        assert [s["scope"] for s in world.governor.killswitches()] == [scope]
        return
    with pytest.raises(PermissionDenied):
        world.governor.engage_killswitch(scope, "r", principal)
    refused = [
        e for e in world.governor.ledger.store.events("_system") if e.type == "access.refused"
    ]
    assert refused[-1].payload["principal"] == who
    assert world.governor.killswitches() == []


def test_switch_input_is_checked(world: World) -> None:
    with pytest.raises(InputError, match="reason: is required"):
        world.governor.engage_killswitch("global", " ", LOCAL_ADMIN)
    with pytest.raises(InputError, match="scope:"):
        world.governor.engage_killswitch("tenant:Bad Name", "r", LOCAL_ADMIN)
    with pytest.raises(InputError, match="no kill switch is engaged"):
        world.governor.release_killswitch("global", "r", LOCAL_ADMIN)
    first = world.governor.engage_killswitch("global", "r", LOCAL_ADMIN)
    again = world.governor.engage_killswitch("global", "r2", LOCAL_ADMIN)
    assert again.event_id == first.event_id  # engaging twice records nothing new


@pytest.mark.parametrize(
    "scope",
    ["", "tenant:", "action:", "tenant:a/tenant:b", "action:x/tenant:a", "a/b/c", "action:fs?"],
)
def test_bad_scopes_are_named(scope: str) -> None:
    with pytest.raises(InputError, match="scope:"):
        parse_scope(scope)


def test_posture_tightens_and_is_visible_to_policy(world: World) -> None:
    assert world.submit(target="n1").status == OutcomeStatus.EXECUTED
    world.governor.set_posture("acme", "heightened", "elevated risk", LOCAL_ADMIN)
    assert world.submit(target="h0", safety_class="A0").status == OutcomeStatus.EXECUTED
    assert world.submit(target="h1").status == OutcomeStatus.EXECUTED  # A1 not listed
    heightened = world.submit(target="h2", safety_class="A2")
    assert heightened.status == OutcomeStatus.PENDING_APPROVAL
    assert heightened.decision.obligations["approval"] == "2"  # the A2 floor's 1, plus 1
    deploy = world.submit(action="app.deploy", target="h3", safety_class="A3")
    assert deploy.decision.obligations["approval"] == "3"  # the A3 floor's 2 (policy: 1), plus 1
    world.governor.set_posture("acme", "lockdown", "breach", LOCAL_ADMIN)
    assert world.submit(target="l0", safety_class="A0").status == OutcomeStatus.EXECUTED
    locked = world.submit(target="l1")
    assert locked.status == OutcomeStatus.PENDING_APPROVAL
    assert locked.decision.gate is not None
    assert locked.decision.gate["controls"] == ["posture:lockdown"]
    chmod = world.submit(action="fs.chmod", target="l2")
    assert chmod.status == OutcomeStatus.DENIED
    assert chmod.decision.reasons == ("lockdown-visible",)
    assert world.submit(tenant="globex", target="g1").status == OutcomeStatus.EXECUTED


def test_posture_ttl_expires_as_a_recorded_event(world: World) -> None:
    world.governor.set_posture("acme", "lockdown", "drill", LOCAL_ADMIN, ttl_seconds=60)
    world.at(30)
    assert world.submit(target="t1").status == OutcomeStatus.PENDING_APPROVAL
    assert world.governor.posture("acme")["posture"] == "lockdown"
    world.at(61)
    assert world.governor.posture("acme")["posture"] == "normal"
    assert world.submit(target="t2").status == OutcomeStatus.EXECUTED
    expired = [e for e in world.governor.ledger.store.events("acme") if e.type == "posture.expired"]
    assert len(expired) == 1
    assert world.submit(target="t3").status == OutcomeStatus.EXECUTED
    assert (
        len([e for e in world.governor.ledger.store.events("acme") if e.type == "posture.expired"])
        == 1
    )


@pytest.mark.parametrize(
    ("posture", "ttl", "message"),
    [
        ("panic", None, "posture: must be one of"),
        ("lockdown", 0, "ttl_seconds"),
        ("normal", 10**9, "ttl_seconds"),
    ],
)
def test_bad_posture_input(world: World, posture: str, ttl: int | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        world.governor.set_posture("acme", posture, "r", LOCAL_ADMIN, ttl)


def test_rate_limits_count_recorded_times(tmp_path: Path) -> None:
    gate = GateConfig(rate_limits={"actor": RateLimit(3, 10), "action": RateLimit(5, 10)})
    world = World(tmp_path, gate)
    statuses = []
    for n in range(4):
        world.at(n)
        statuses.append(world.submit(target=f"r{n}").status)
    assert statuses[:3] == [OutcomeStatus.EXECUTED] * 3
    assert statuses[3] == OutcomeStatus.DENIED
    denied = world.governor.outcome(
        "acme", world.governor.ledger.store.events("acme").__next__().intent_id
    )
    assert denied.status == OutcomeStatus.EXECUTED
    other_actor = world.submit(actor={"id": "agent-8", "kind": "agent"}, target="o1")
    assert other_actor.status == OutcomeStatus.EXECUTED
    world.at(3.5)
    sixth = world.submit(actor={"id": "agent-9", "kind": "agent"}, target="o2")
    assert sixth.status == OutcomeStatus.DENIED
    assert sixth.decision.gate is not None
    assert sixth.decision.gate["controls"] == ["rate_limit:action"]
    world.at(20)  # the window has passed
    assert world.submit(target="later").status == OutcomeStatus.EXECUTED
    world.governor.close()


def test_approvals_per_operator_are_limited(tmp_path: Path) -> None:
    world = World(tmp_path, GateConfig(rate_limits={"approvals_per_operator": RateLimit(2, 3600)}))
    ids = [world.submit(action="app.deploy", target=f"d{n}").intent_id for n in range(3)]
    results = [
        world.governor.vote("acme", i, world.who("ops-acme"), Vote.APPROVE, "ok") for i in ids
    ]
    assert [r.accepted for r in results] == [True, True, False]
    assert "the limit is 2/3600s" in results[2].message
    assert world.governor.vote("acme", ids[2], world.who("ops-acme-2"), Vote.APPROVE, "ok").accepted
    world.governor.close()


def test_protected_targets_and_principals_need_a_quorum(tmp_path: Path) -> None:
    gate = GateConfig(
        protected_targets=("db/customers",),
        protected_principals=("svc-backup",),
        protected_quorum=2,
    )
    world = World(tmp_path, gate)
    target = world.submit(target="db/customers")
    assert target.status == OutcomeStatus.PENDING_APPROVAL
    assert target.decision.obligations["approval"] == "2"
    principal = world.submit(actor={"id": "svc-backup", "kind": "service"}, target="x")
    assert principal.decision.gate is not None
    assert principal.decision.gate["controls"] == ["protected:principal"]
    assert world.submit(target="elsewhere").status == OutcomeStatus.EXECUTED
    world.governor.close()


def test_unreadable_control_state_blocks_everything(world: World) -> None:
    now = world.governor.clock.now()
    world.governor.ledger.append(
        "acme",
        [
            EventDraft(
                event_id="corrupt-switch",
                tenant="acme",
                type="killswitch.engaged",
                correlation_id="x",
                event_time=now,
                process_time=now,
                actor={"id": "someone", "kind": "operator"},
                payload={"scope": "not a scope at all"},
            )
        ],
    )
    outcome = world.submit(safety_class="A0")
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.gate is not None
    assert outcome.decision.gate["controls"] == ["controls:unreadable"]
    assert world.submit(tenant="globex", safety_class="A0").status == OutcomeStatus.EXECUTED
    with pytest.raises(LedgerCorrupt, match="unreadable"):
        world.governor.killswitches("acme")


def test_config_is_captured_once_per_change(tmp_path: Path) -> None:
    first = World(tmp_path)
    snapshots = [
        e for e in first.governor.ledger.store.events("_system") if e.type == "config.snapshot"
    ]
    assert len(snapshots) == 1
    assert snapshots[0].payload["config_hash"] == first.governor.config_hash
    key = first.governor.ledger.key
    first.governor.close()

    def reopen(gate: GateConfig | None) -> Governor:
        registry = ExecutorRegistry()
        registry.bind("*", Effects())  # the same bindings as the first run
        return Governor(
            ledger=Ledger(SqliteStore(tmp_path / "ledger.db"), key),
            executors=registry,
            clock=FixedClock(T0),
            ids=SeededIds(12),
            gate=gate,
        )

    with reopen(None) as same:
        assert same.config_hash == first.governor.config_hash
    with reopen(GateConfig(rate_limits={"tenant": RateLimit(1, 1)})) as changed:
        hashes = [
            e.payload["config_hash"]
            for e in changed.ledger.store.events("_system")
            if e.type == "config.snapshot"
        ]
        assert hashes == [first.governor.config_hash, changed.config_hash]
        assert len(set(hashes)) == 2


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"bogus": 1}, "unknown key"),
        ({"rate_limits": {"tenant": "lots"}}, "is not a rate"),
        ({"rate_limits": {"tenant": "0/10s"}}, "at least 1"),
        ({"rate_limits": {"galaxy": "1/1s"}}, "unknown limit"),
        ({"rate_limits": []}, "must be a table"),
        ({"posture": {"heightened_classes": ["A9"]}}, "gate.posture"),
        ({"posture": {"heightened_extra_approvals": 0}}, "positive integer"),
        ({"protected": {"targets": "db"}}, "list of non-empty strings"),
        ({"protected": []}, "must be a table"),
        ("nope", "must be a table"),
    ],
)
def test_bad_gate_config_is_named(table: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GateConfig.from_table(table)


_STRICTNESS = {Verdict.ALLOW: 0, Verdict.REQUIRE_APPROVAL: 1, Verdict.DENY: 2}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    switch=st.sampled_from([None, "tenant:acme", "action:fs.*", "action:app.*"]),
    posture=st.sampled_from(["normal", "heightened", "lockdown"]),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["fs.write", "fs.read", "app.deploy", "db.drop", "fs.chmod"]),
            st.sampled_from(["A0", "A1", "A2", "A3"]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_the_gate_never_loosens(
    tmp_path_factory: pytest.TempPathFactory,
    switch: str | None,
    posture: str,
    steps: list[tuple[str, str]],
) -> None:
    world = World(tmp_path_factory.mktemp("g"), GateConfig(rate_limits={"actor": RateLimit(4, 60)}))
    try:
        if switch:
            world.governor.engage_killswitch(switch, "r", LOCAL_ADMIN)
        world.governor.set_posture("acme", posture, "r", LOCAL_ADMIN)
        engine = world.governor.policy_for("acme")
        for n, (action, klass) in enumerate(steps):
            outcome = world.submit(action=action, safety_class=klass, target=f"t{n}")
            intent = ActionIntent.from_canonical(
                world.governor.story("acme", outcome.intent_id)[0].payload["intent"]
            )
            policy_only = engine.decide(intent, posture)
            assert _STRICTNESS[outcome.decision.verdict] >= _STRICTNESS[policy_only.verdict]
            if outcome.decision.verdict == policy_only.verdict == Verdict.REQUIRE_APPROVAL:
                assert int(outcome.decision.obligations["approval"]) >= int(
                    policy_only.obligations["approval"]
                )
            if outcome.status == OutcomeStatus.EXECUTED:
                assert policy_only.verdict == Verdict.ALLOW
    finally:
        world.governor.close()


@pytest.mark.parametrize(
    "scopes",
    [
        ["tenant:acme/action:fs.*", "tenant:acme"],
        ["tenant:acme", "tenant:acme/action:fs.*"],
        ["global", "action:fs.*"],
        ["action:app.*", "global"],
    ],
)
def test_switches_of_both_kinds_in_one_log_block_without_crashing(
    world: World, scopes: list[str]
) -> None:
    # Scopes once compared (None, "fs.*") with (None, None): TypeError on every submit.
    for scope in scopes:
        world.governor.engage_killswitch(scope, f"stop {scope}", LOCAL_ADMIN)
    outcome = world.submit(safety_class="A0")
    assert outcome.status == OutcomeStatus.DENIED
    assert outcome.decision.gate is not None
    assert outcome.decision.gate["controls"][0].startswith("killswitch:")
    assert world.effects.ran == []


def test_a_quorum_reached_under_both_kinds_of_switch_records_a_block_not_a_start(
    world: World,
) -> None:
    pending = world.submit(action="app.deploy", target="svc/api")
    world.governor.engage_killswitch("tenant:acme/action:app.*", "bad release", LOCAL_ADMIN)
    world.governor.engage_killswitch("tenant:acme", "incident", LOCAL_ADMIN)
    result = world.governor.vote(
        "acme", pending.intent_id, world.who("ops-acme"), Vote.APPROVE, "ok"
    )
    assert result.accepted
    assert result.outcome.status == OutcomeStatus.BLOCKED
    types = [e.type for e in world.governor.story("acme", pending.intent_id)]
    assert types[-3:] == ["approval.granted", "intent.approved", "execution.blocked"]
    assert "execution.started" not in types
    assert world.governor.recover() == []
    assert world.governor.outcome("acme", pending.intent_id).status == OutcomeStatus.BLOCKED
    assert world.effects.ran == []
    # replay re-derives the block, and the evidence bundle of the story verifies
    ledger = world.governor.ledger
    ledger.checkpoint("acme")
    assert replay(ledger.store, "acme").verified
    bundle = export_bundle(ledger, "acme", pending.correlation_id)
    assert verify_bundle(bundle, ledger.key.verifier_key()).passed


def _failing_recheck(*_: object) -> None:
    raise RuntimeError("a defect between the decision and the side effect")


def test_an_error_in_the_recheck_of_an_approved_intent_is_a_block_never_a_start(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exoarmur.governor import running

    pending = world.submit(action="app.deploy", target="svc/api")
    monkeypatch.setattr(running, "gate_recheck", _failing_recheck)
    result = world.governor.vote(
        "acme", pending.intent_id, world.who("ops-acme"), Vote.APPROVE, "ok"
    )
    assert result.outcome.status == OutcomeStatus.BLOCKED
    story = world.governor.story("acme", pending.intent_id)
    assert [e.type for e in story][-2:] == ["intent.approved", "execution.blocked"]
    blocked = story[-1].payload
    assert blocked["control"] == running.INTERNAL_ERROR
    assert "RuntimeError" in blocked["reason"]
    assert world.effects.ran == []
    monkeypatch.undo()
    assert world.governor.recover() == []  # never started later, never outcome_unknown
    assert world.governor.outcome("acme", pending.intent_id).status == OutcomeStatus.BLOCKED
    assert replay(world.governor.ledger.store, "acme").verified


def test_an_error_in_the_recheck_after_an_allow_is_recorded_as_a_block(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exoarmur.governor import running

    monkeypatch.setattr(running, "gate_recheck", _failing_recheck)
    outcome = world.submit(safety_class="A1")
    assert outcome.status == OutcomeStatus.BLOCKED
    assert world.effects.ran == []
    types = [e.type for e in world.governor.story("acme", outcome.intent_id)]
    assert types[-1] == "execution.blocked"
    assert world.governor.ledger.store.unfinished_executions("acme") == []


PERMIT_ALL = '@id("anything") permit (principal, action, resource);'
PERMIT_A3_WITH_THREE = (
    PERMIT_ALL.replace("anything", "a3-three")
    .replace("@id", '@approval("3") @id')
    .replace(";", ' when { context.safety_class == "A3" && context.action == "app.nuke" };')
)


def _permit_all_world(path: Path, gate: GateConfig | None = None) -> World:
    world = World(path, gate)
    world.governor.activate_policy(PolicyBundle.from_text(PERMIT_ALL + "\n" + PERMIT_A3_WITH_THREE))
    return world


def test_the_class_floor_holds_whatever_policy_permits(tmp_path: Path) -> None:
    world = _permit_all_world(tmp_path)
    try:
        found = {klass: world.submit(safety_class=klass, target=f"t/{klass}") for klass in SAFETY}
        assert found["A0"].status == OutcomeStatus.EXECUTED
        assert found["A1"].status == OutcomeStatus.EXECUTED
        for klass, quorum in (("A2", "1"), ("A3", "2")):
            outcome = found[klass]
            assert outcome.status == OutcomeStatus.PENDING_APPROVAL, klass
            assert outcome.decision.obligations["approval"] == quorum
            assert outcome.decision.gate is not None
            assert outcome.decision.gate["controls"] == [f"class_floor:{klass}"]
            assert outcome.decision.gate["policy_verdict"] == "allow"
        assert len(world.effects.ran) == 2  # A0 and A1 only
        # policy may ask for more than the floor; the floor never lowers it
        nuke = world.submit(action="app.nuke", safety_class="A3", target="t/nuke")
        assert nuke.decision.obligations["approval"] == "3"
        assert nuke.decision.gate is None
        # the A3 intent runs once two distinct operators approve
        a3 = found["A3"].intent_id
        first = world.governor.vote("acme", a3, world.who("ops-acme"), Vote.APPROVE, "ok")
        assert first.outcome.status == OutcomeStatus.PENDING_APPROVAL
        second = world.governor.vote("acme", a3, world.who("ops-acme-2"), Vote.APPROVE, "ok")
        assert second.outcome.status == OutcomeStatus.EXECUTED
        ledger = world.governor.ledger
        ledger.checkpoint("acme")
        assert replay(ledger.store, "acme").verified
        bundle = export_bundle(ledger, "acme", found["A3"].correlation_id)
        assert verify_bundle(bundle, ledger.key.verifier_key()).passed
    finally:
        world.governor.close()


def test_a_lowered_class_floor_is_recorded_and_replayed_as_it_was(tmp_path: Path) -> None:
    lowered = GateConfig.from_table({"class_floor": {"A3": 0}})
    assert lowered.class_floor == {SafetyClass.A2: 1}
    assert lowered.lowered_floor() == ["A3 needs 0 approval(s), default 2"]
    world = _permit_all_world(tmp_path, lowered)
    try:
        assert world.submit(safety_class="A3").status == OutcomeStatus.EXECUTED
        assert world.submit(safety_class="A2").status == OutcomeStatus.PENDING_APPROVAL
        snapshot = world.governor.ledger.store.latest_of_type("_system", "config.snapshot")
        assert snapshot is not None
        assert snapshot.payload["config"]["gate"]["class_floor"] == {
            "A0": 0,
            "A1": 0,
            "A2": 1,
            "A3": 0,
        }
        assert replay(world.governor.ledger.store, "acme").verified
    finally:
        world.governor.close()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"class_floor": {"A9": 1}}, "gate.class_floor.A9: not a safety class"),
        ({"class_floor": {"A2": -1}}, "gate.class_floor.A2: must be an integer"),
        ({"class_floor": {"A2": True}}, "gate.class_floor.A2: must be an integer"),
        ({"class_floor": {"A2": 101}}, "from 0 to 100"),
        ({"class_floor": "A2=1"}, r"\[gate.class_floor\] must be a table"),
    ],
)
def test_bad_class_floors_are_named(table: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GateConfig.from_table(table)


def test_a_snapshot_recorded_before_the_floor_means_no_floor() -> None:
    recorded = GateConfig().to_canonical()
    del recorded["class_floor"]
    assert GateConfig.from_recorded(recorded).class_floor == {}
    assert GateConfig.from_recorded(GateConfig().to_canonical()) == GateConfig()
