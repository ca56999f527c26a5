"""Posture that tightens: stricter limits, shorter TTLs, more protected principals; never looser."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from containment_kit import action, registry
from exoarmur.clock import StepClock
from exoarmur.errors import ConfigError
from exoarmur.evidence import export_bundle, verify_bundle
from exoarmur.gate import GateConfig, check
from exoarmur.gate.config import Tightening
from exoarmur.ids import SeededIds
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.decision import Decision, OutcomeStatus, Verdict
from exoarmur.model.event import INTENT_RECORDED, POSTURE_SET, SYSTEM_LOG
from exoarmur.model.intent import ActionIntent, SafetyClass
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.replay import replay
from spec_checker import check as spec_check
from test_gate_properties import STRICTNESS, T0, _intent, _Log, configs, decisions, rates

ALLOW = Decision(verdict=Verdict.ALLOW, policy_hash="sha256:" + "0" * 64)
TABLE = {
    "posture": {
        "heightened": {"ttl_max_seconds": 1800, "protected_principals": ["agent-2"]},
        "lockdown": {"ttl_max_seconds": 300, "rate_limits": {"actor": "2/60s"}},
    }
}


def _containment(ttl: int, actor: str = "agent-1") -> ActionIntent:
    base = _intent("acme", "containment.rate_limit", SafetyClass.A1, "identity:x", actor)
    params = {"containment": {"scope": {"kind": "identity", "id": "x"}, "ttl_seconds": ttl}}
    return base.model_copy(update={"params": params})


def _gate(
    intent: ActionIntent,
    posture: str,
    config: GateConfig,
    decision: Decision = ALLOW,
    earlier: int = 0,
) -> Decision:
    system, own = _Log(SYSTEM_LOG), _Log("acme")
    own.add(POSTURE_SET, {"posture": posture, "until": None, "reason": "r"}, T0)
    now = T0 + timedelta(seconds=30)
    for n in range(earlier):
        done = _intent("acme", "fs.read", SafetyClass.A0, f"e/{n}", intent.actor.id)
        own.add(INTENT_RECORDED, {"intent": done.to_canonical()}, now - timedelta(seconds=5))
    return check(
        intent, decision, system=system.controls, tenant=own.controls, config=config, now=now
    )


def test_tightenings_come_from_configuration_and_are_recorded_in_the_snapshot() -> None:
    config = GateConfig.from_table(TABLE)
    canonical = config.to_canonical()["posture"]
    assert canonical["lockdown"]["ttl_max_seconds"] == 300
    assert canonical["heightened"]["protected_principals"] == ["agent-2"]
    assert GateConfig.from_recorded(config.to_canonical()) == config
    assert "heightened" not in GateConfig().to_canonical()["posture"]  # old hashes stay
    assert config.retention()["actor"] >= 2
    assert config.horizon_seconds == 60


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"posture": {"lockdown": {"ttl_max_seconds": 0}}}, "ttl_max_seconds"),
        ({"posture": {"lockdown": {"loosen": True}}}, "unknown key 'loosen'"),
        ({"posture": {"lockdown": {"rate_limits": {"approvals_per_operator": "1/1s"}}}}, "unknown"),
        ({"posture": {"heightened": []}}, "must be a table"),
    ],
)
def test_bad_tightenings_are_refused_naming_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GateConfig.from_table(table)


def test_each_posture_tightens_what_it_configures() -> None:
    config = GateConfig.from_table(TABLE)
    assert _gate(_containment(3600), "normal", config).verdict == Verdict.ALLOW
    heightened = _gate(_containment(3600), "heightened", config)
    assert heightened.gate is not None
    assert heightened.gate["controls"] == ["ttl_max:1800"]
    lockdown = _gate(_containment(600), "lockdown", config)  # heightened's bound applies too
    assert lockdown.gate is not None
    assert lockdown.gate["controls"] == ["ttl_max:300"]
    protected = _gate(_containment(60, actor="agent-2"), "heightened", config)
    assert protected.verdict == Verdict.REQUIRE_APPROVAL
    limited = _gate(_containment(60), "lockdown", config, earlier=2)
    assert limited.gate is not None
    assert limited.gate["controls"] == ["rate_limit:actor:lockdown"]
    assert _gate(_containment(60), "normal", config, earlier=2).gate is None


tightenings = st.builds(
    Tightening,
    rate_limits=st.dictionaries(st.sampled_from(["tenant", "actor", "action"]), rates),
    ttl_max_seconds=st.one_of(st.none(), st.integers(1, 7200)),
    protected_principals=st.lists(st.sampled_from(["agent-1", "agent-2"]), unique=True).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(
    base=configs,
    heightened=tightenings,
    lockdown=tightenings,
    decision=decisions,
    ttl=st.integers(1, 9000),
    actor=st.sampled_from(["agent-1", "agent-2", "agent-3"]),
    earlier=st.integers(0, 5),
)
def test_posture_never_loosens_and_never_approves(
    base: GateConfig,
    heightened: Tightening,
    lockdown: Tightening,
    decision: Decision,
    ttl: int,
    actor: str,
    earlier: int,
) -> None:
    config = GateConfig(
        **{k: getattr(base, k) for k in base.__dataclass_fields__ if k != "tightened"},
        tightened={"heightened": heightened, "lockdown": lockdown},
    )
    intent = _containment(ttl, actor)
    ladder = [
        _gate(intent, p, config, decision, earlier) for p in ("normal", "heightened", "lockdown")
    ]
    # Each step of normal <= heightened <= lockdown, not only each against normal.
    for milder, stricter in pairwise(ladder):
        assert STRICTNESS[stricter.verdict] >= STRICTNESS[milder.verdict]
        if stricter.verdict == milder.verdict == Verdict.REQUIRE_APPROVAL:
            assert int(stricter.obligations["approval"]) >= int(milder.obligations["approval"])
    for gated in ladder:
        assert STRICTNESS[gated.verdict] >= STRICTNESS[decision.verdict]


@pytest.mark.parametrize("klass", [SafetyClass.A2, SafetyClass.A3])
def test_lockdown_asks_at_least_the_approvals_heightened_asks(klass: SafetyClass) -> None:
    base = _intent("acme", "db.drop", klass, "db/x", "agent-1")
    config = GateConfig.from_table({"posture": {"heightened_extra_approvals": 3}})
    quorum = {
        p: int(_gate(base, p, config).obligations["approval"]) for p in ("heightened", "lockdown")
    }
    assert quorum["lockdown"] >= quorum["heightened"] == config.class_floor[klass] + 3


def test_snapshots_recorded_before_lockdown_added_heightened_replay_as_made() -> None:
    recorded = GateConfig().to_canonical()
    assert recorded["posture"]["lockdown_adds_heightened"] is True
    assert GateConfig.from_recorded(recorded) == GateConfig()
    del recorded["posture"]["lockdown_adds_heightened"]
    legacy = GateConfig.from_recorded(recorded)
    assert not legacy.lockdown_adds_heightened
    assert legacy.to_canonical() == recorded  # its hash stays the recorded one
    a2 = _intent("acme", "db.drop", SafetyClass.A2, "db/x", "agent-1")
    assert _gate(a2, "lockdown", legacy).obligations["approval"] == "1"
    assert _gate(a2, "lockdown", GateConfig()).obligations["approval"] == "2"
    assert not GateConfig.from_recorded(None).lockdown_adds_heightened
    recorded["posture"]["lockdown_adds_heightened"] = False  # never a way to loosen
    with pytest.raises(ConfigError, match="lockdown_adds_heightened must be true"):
        GateConfig.from_recorded(recorded)


# -- what the posture tightens, as policy sees it ------------------------------------------

#: an agent's control must stay within a quarter of the posture's TTL bound
QUARTER_OF_THE_BOUND = """
@id("agent-containment-short-under-posture")
permit (principal is Agent, action, resource)
when {
  context.action like "containment.*" &&
  context.tightened has ttl_max_seconds &&
  context.params.containment.ttl_seconds * 4 <= context.tightened.ttl_max_seconds
};
"""


KEY = SigningKey.from_seed("t/log", bytes(32))


def _posture_governor(tmp_path: Path, config: GateConfig) -> Governor:
    return Governor(
        ledger=Ledger(SqliteStore(tmp_path / "l.db"), KEY),
        policy=PolicyEngine(PolicyBundle.from_text(QUARTER_OF_THE_BOUND)),
        executors=registry(),
        clock=StepClock(),
        ids=SeededIds(3),
        gate=config,
    )


def test_policy_sees_what_the_posture_tightens_and_replay_agrees(tmp_path: Path) -> None:
    g = _posture_governor(tmp_path, GateConfig.from_table(TABLE))
    g.set_posture("acme", "heightened", "incident", LOCAL_ADMIN)
    short = g.submit(action("rate_limit", "identity:x", ttl=450))  # 4 x 450 <= 1800
    assert short.status == OutcomeStatus.EXECUTED, short.error
    long = g.submit(action("rate_limit", "identity:y", ttl=451))
    assert long.status == OutcomeStatus.DENIED
    assert not long.decision.errors  # denied by default, not by an error
    g.set_posture("acme", "normal", "over", LOCAL_ADMIN)  # no bound: the permit does not hold
    assert g.submit(action("rate_limit", "identity:z", ttl=10)).status == OutcomeStatus.DENIED
    g.ledger.checkpoint("acme")
    report = replay(g.ledger.store, "acme", verifier=g.ledger.verifier)
    assert report.verified, report.divergences[:3]
    for outcome in (short, long):  # a bundle decides it again, and so does the spec's reader
        bundle = export_bundle(g.ledger, "acme", outcome.correlation_id)
        verdict = verify_bundle(bundle, KEY.verifier_key())
        assert verdict.passed, verdict.failures
        assert spec_check(bundle, KEY.verifier_key()) == []
    g.close()


def test_policy_context_holds_the_tightening_in_force_under_each_posture() -> None:
    config = GateConfig.from_table(
        TABLE | {"posture": TABLE["posture"] | {"lockdown_approval_above": "A1"}}
    )
    assert config.policy_context("normal") == {
        "extra_approvals": 0,
        "extra_approval_classes": [],
        "approval_above": "A3",
        "protected_principals": [],
        "rate_limits": {},
    }
    assert config.policy_context("heightened") == {
        "extra_approvals": 1,
        "extra_approval_classes": ["A2", "A3"],
        "approval_above": "A3",
        "protected_principals": ["agent-2"],
        "rate_limits": {},
        "ttl_max_seconds": 1800,
    }
    lockdown = config.policy_context("lockdown")
    assert lockdown is not None
    assert lockdown["ttl_max_seconds"] == 300  # the smaller of its own and heightened's
    assert lockdown["approval_above"] == "A1"
    assert lockdown["protected_principals"] == ["agent-2"]
    assert lockdown["rate_limits"] == {"actor": {"count": 2, "seconds": 60}}


def test_snapshots_recorded_before_policy_saw_the_tightening_decide_as_made() -> None:
    recorded = GateConfig.from_table(TABLE).to_canonical()
    assert recorded["posture"]["policy_sees_tightening"] is True
    del recorded["posture"]["policy_sees_tightening"]
    legacy = GateConfig.from_recorded(recorded)
    assert legacy.policy_context("heightened") is None
    assert legacy.to_canonical() == recorded  # its hash stays the recorded one
    engine = PolicyEngine(PolicyBundle.from_text(QUARTER_OF_THE_BOUND))
    intent = _containment(60, actor="agent-1")
    then = engine.decide(intent, "heightened", legacy.policy_context("heightened"))
    assert then.verdict == Verdict.DENY  # what a policy naming it met then: an error
    assert then.errors
    now = engine.decide(intent, "heightened", GateConfig.from_table(TABLE).policy_context("x"))
    assert now.verdict == Verdict.DENY  # "x" tightens nothing: no bound, no permit
    assert not now.errors
    assert (
        engine.decide(intent, "heightened", GateConfig.from_table(TABLE).policy_context("lockdown"))
    ).verdict == Verdict.ALLOW
    recorded["posture"]["policy_sees_tightening"] = False  # never a way to hide it
    with pytest.raises(ConfigError, match="policy_sees_tightening must be true"):
        GateConfig.from_recorded(recorded)


def test_a_bundle_of_a_deny_by_a_posture_s_rate_limit_verifies(tmp_path: Path) -> None:
    g = _posture_governor(tmp_path, GateConfig.from_table(TABLE))
    g.set_posture("acme", "lockdown", "incident", LOCAL_ADMIN)
    for n in range(2):
        g.submit(action("rate_limit", f"identity:u{n}", ttl=60))
    limited = g.submit(action("rate_limit", "identity:u9", ttl=60))
    assert limited.decision.gate is not None
    assert limited.decision.gate["controls"] == ["rate_limit:actor:lockdown"]
    g.ledger.checkpoint("acme")
    bundle = export_bundle(g.ledger, "acme", limited.correlation_id)
    verdict = verify_bundle(bundle, KEY.verifier_key())
    assert verdict.passed, verdict.failures
    assert spec_check(bundle, KEY.verifier_key()) == []
    g.close()
