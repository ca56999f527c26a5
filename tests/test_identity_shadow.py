"""The identity shadow never loosens a decision; observations over HTTP; the demo's markers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from containment_kit import CONTAINMENT_POLICY
from exoarmur.cli import app
from exoarmur.model.decision import Decision, Verdict
from exoarmur.observations.intake import desk_of
from exoarmur.observations.model import parse_observation
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from test_server_support import Deployment, deploy

POLICY = """
@id("allow-read-only")
permit (principal, action, resource) when { context.safety_class == "A0" };

@id("contain-with-two")
@approval("2")
permit (principal, action, resource) when { context.action like "containment.*" };

@id("never-prod-db")
forbid (principal, action, resource == Target::"db/prod");
"""
SUBJECTS = ("identity:alice", "identity:alice@acme.example", "identity:bob", "endpoint:pc-1")
TUNED = {
    "rules": [
        {
            "name": "failed_logins",
            "type": "threshold",
            "match": "login.failed",
            "threshold": 2,
            "window_seconds": 3600,
            "belief": "repeated_failed_logins",
        }
    ]
}
STRICTNESS = {Verdict.ALLOW: 0, Verdict.REQUIRE_APPROVAL: 1, Verdict.DENY: 2}


def intents(tenant: str) -> list[dict[str, Any]]:
    """Allowed, approval-needing and denied intents, all about the subjects shadows follow."""
    found = []
    for n, subject in enumerate(SUBJECTS):
        kind, _, ident = subject.partition(":")
        base = {"tenant": tenant, "actor": {"id": "agent-1", "kind": "agent"}}
        found += [
            base
            | {
                "action": "fs.read",
                "target": subject,
                "safety_class": "A0",
                "idempotency_key": f"read-{n}",
            },
            base
            | {
                "action": "containment.revoke_sessions"
                if kind == "identity"
                else "containment.isolate_endpoint",
                "target": subject,
                "safety_class": "A2",
                "params": {
                    "containment": {"scope": {"kind": kind, "id": ident}, "ttl_seconds": 600}
                },
                "idempotency_key": f"contain-{n}",
            },
            base
            | {
                "action": "fs.write",
                "target": "db/prod",
                "safety_class": "A1",
                "params": {"about": subject},
                "idempotency_key": f"write-{n}",
            },
        ]
    return found


def quorum(decision: Decision) -> int:
    return int(decision.obligations.get("approval", decision.obligations.get("quorum", "0")))


observation = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["okta", "vpn", "siem"]),
        "subject": st.sampled_from(SUBJECTS).map(
            lambda s: {"kind": s.partition(":")[0], "id": s.partition(":")[2]}
        ),
        "kind": st.sampled_from(["login.failed", "login.succeeded", "process.start"]),
        "attributes": st.fixed_dictionaries(
            {},
            optional={
                "location": st.sampled_from(["Lyon", "Lagos", "Oslo"]),
                "correlated_ids": st.lists(st.sampled_from(SUBJECTS), max_size=2),
            },
        ),
        "event_time": st.integers(0, 59).map(lambda s: f"2026-11-30T08:00:{s:02d}Z"),
    }
)
_tenants = itertools.count()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Governor]:
    from exoarmur.clock import StepClock
    from exoarmur.executors import EchoExecutor, ExecutorRegistry
    from exoarmur.ids import SeededIds
    from exoarmur.ledger.keys import SigningKey
    from exoarmur.ledger.log import Ledger
    from exoarmur.ledger.sqlite import SqliteStore

    store = SqliteStore(tmp_path_factory.mktemp("shadow") / "ledger.db")
    executors = ExecutorRegistry()
    executors.bind("fs.*", EchoExecutor())
    governor = Governor(
        ledger=Ledger(store, SigningKey.generate("test.exoarmur/shadow")),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=StepClock(),
        ids=SeededIds(13),
    )
    yield governor
    store.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(observation, max_size=10))
def test_shadows_never_loosen_a_decision_or_a_quorum(
    shared: Governor, raw: list[dict[str, Any]]
) -> None:
    """Same intents in a tenant full of shadows and in a quiet one: never less strict."""
    number = next(_tenants)
    shadowed, quiet = f"shadowed-{number}", f"quiet-{number}"
    desk = desk_of(shared)
    desk.record(shadowed, [parse_observation(o) for o in raw], {"id": "t", "kind": "agent"}, TUNED)
    for loud, calm in zip(intents(shadowed), intents(quiet), strict=True):
        with_shadow = shared.submit(loud)
        without = shared.submit(calm)
        assert STRICTNESS[with_shadow.decision.verdict] >= STRICTNESS[without.decision.verdict]
        if with_shadow.decision.verdict == without.decision.verdict == Verdict.REQUIRE_APPROVAL:
            assert quorum(with_shadow.decision) >= quorum(without.decision)
        # a shadow never executes anything on its own: what waits for people still waits
        if without.status.value == "pending_approval":
            assert with_shadow.status.value in ("pending_approval", "denied")


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Governor]:
    """A governor that enforces evidence: where a shadow raises what an intent needs."""
    from exoarmur.clock import StepClock
    from exoarmur.executors import EchoExecutor, ExecutorRegistry
    from exoarmur.gate import GateConfig
    from exoarmur.ids import SeededIds
    from exoarmur.ledger.keys import SigningKey
    from exoarmur.ledger.log import Ledger
    from exoarmur.ledger.sqlite import SqliteStore

    store = SqliteStore(tmp_path_factory.mktemp("enforced") / "ledger.db")
    executors = ExecutorRegistry()
    executors.bind("fs.*", EchoExecutor())
    governor = Governor(
        ledger=Ledger(store, SigningKey.generate("test.exoarmur/enforced")),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=StepClock(),
        ids=SeededIds(14),
        gate=GateConfig(evidence_enforced=True),
    )
    yield governor
    store.close()


#: pending_evidence holds the policy's verdict: stricter than allowing or asking, looser than deny
WAITING = {Verdict.ALLOW: 0, Verdict.REQUIRE_APPROVAL: 1, Verdict.PENDING_EVIDENCE: 2}


def required(decision: Decision) -> int:
    from exoarmur.evidence_levels import rank

    return rank(str((decision.gate or {}).get("evidence", {}).get("required", "none")))


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(observation, max_size=10), st.lists(st.sampled_from(SUBJECTS), max_size=3))
def test_wired_shadows_only_raise_the_evidence_an_enforcing_gate_asks(
    enforcing: Governor, raw: list[dict[str, Any]], cited: list[str]
) -> None:
    """Through the live intake (shadows are a standing influence): never looser, never run."""
    number = next(_tenants)
    shadowed, quiet = f"wired-{number}", f"still-{number}"
    desk = desk_of(enforcing)
    done = desk.record(
        shadowed, [parse_observation(o) for o in raw], {"id": "t", "kind": "agent"}, TUNED
    )
    # the ready plan (Door Net) is a suggestion: recording telemetry submits nothing
    assert not [e for e in enforcing.ledger.store.events(shadowed) if e.intent_id is not None]
    assert done.released == []
    for loud, calm in zip(intents(shadowed), intents(quiet), strict=True):
        if cited:  # the shadowed subjects it mentions as plan-like scopes
            scopes = [{"kind": c.partition(":")[0], "id": c.partition(":")[2]} for c in cited]
            for item in (loud, calm):
                item["params"] = item.get("params", {}) | {
                    "plan": {"steps": [{"scope": x} for x in scopes]}
                }
        with_shadow = enforcing.submit(loud)
        without = enforcing.submit(calm)
        v, w = with_shadow.decision.verdict, without.decision.verdict
        if w == Verdict.DENY:
            assert v == Verdict.DENY
        else:
            assert v == Verdict.DENY or WAITING[v] >= WAITING[w]
        assert required(with_shadow.decision) >= required(without.decision)
        if v != Verdict.DENY and w != Verdict.DENY:
            assert quorum(with_shadow.decision) >= quorum(without.decision)
        if with_shadow.status.value == "executed":
            assert without.status.value == "executed"


def test_a_shadowed_subject_waits_for_corroboration_and_replay_agrees(
    enforcing: Governor,
) -> None:
    """The example the wired property is about, and the join that makes it hold."""
    from exoarmur.replay import replay

    burst = [
        {
            "source": "okta",
            "subject": {"kind": "identity", "id": "alice"},
            "kind": "login.failed",
            "event_time": f"2026-11-30T08:00:0{n}Z",
        }
        for n in range(2)
    ]
    desk = desk_of(enforcing)
    desk.record(
        "wired-real", [parse_observation(o) for o in burst], {"id": "t", "kind": "agent"}, TUNED
    )
    key = desk.status("wired-real", "identity:alice").shadow_key
    read = intents("wired-real")[0]  # fs.read of identity:alice: allowed by policy alone
    held = enforcing.submit(read)
    assert held.decision.verdict == Verdict.PENDING_EVIDENCE
    assert held.decision.gate is not None
    assert held.decision.gate["evidence"]["required"] == "corroborated"
    assert [i["origin"] for i in held.decision.gate["evidence"]["influences"]] == [f"shadow:{key}"]
    quiet = enforcing.submit(intents("wired-quiet")[0])
    assert quiet.decision.verdict == Verdict.ALLOW  # no shadow, nothing raised
    assert replay(enforcing.ledger.store, "wired-real").verified


def test_the_property_meets_real_shadows(shared: Governor) -> None:
    """The example the property is about: a shadowed identity, Door Net ready, still two votes."""
    burst = [
        {
            "source": "okta",
            "subject": {"kind": "identity", "id": "alice"},
            "kind": "login.failed",
            "event_time": f"2026-11-30T08:00:0{n}Z",
        }
        for n in range(2)
    ]
    desk = desk_of(shared)
    desk.record(
        "shadowed-real", [parse_observation(o) for o in burst], {"id": "t", "kind": "agent"}, TUNED
    )
    assert desk.status("shadowed-real", "identity:alice").plan == "door-net"
    outcome = shared.submit(intents("shadowed-real")[1])
    assert outcome.decision.verdict == Verdict.REQUIRE_APPROVAL
    assert quorum(outcome.decision) >= 2


# -- HTTP -----------------------------------------------------------------------------


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home", policy=CONTAINMENT_POLICY)
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def failed(n: int) -> dict[str, Any]:
    return {
        "source": "okta",
        "subject": {"kind": "identity", "id": "eve"},
        "kind": "login.failed",
        "event_time": f"2026-11-30T08:00:0{n}Z",
    }


def test_observations_over_http_are_authenticated_tenant_scoped_and_idempotent(
    dep: Deployment,
) -> None:
    batch = [failed(n) for n in range(5)]
    answer = dep.client.post("/v1/observations", json=batch, headers=dep.auth("agent-7"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["tenant"] == "acme"
    assert [o["recorded"] for o in body["observations"]] == [True] * 5
    assert body["observations"][-1]["shadows"][0]["type"] == "shadow.created"
    size = dep.size("acme")
    again = dep.client.post("/v1/observations", json=batch, headers=dep.auth("agent-7"))
    assert [o["recorded"] for o in again.json()["observations"]] == [False] * 5
    assert dep.size("acme") == size
    recorded = [
        e for e in dep.governor.ledger.store.events("acme") if e.type == "observation.recorded"
    ]
    assert {e.actor["id"] for e in recorded} == {"agent-7"}
    root = dep.client.post(
        "/v1/observations?tenant=globex", json=failed(1), headers=dep.auth("root")
    )
    assert root.status_code == 200, root.text
    assert root.json()["tenant"] == "globex"


@pytest.mark.parametrize(
    ("who", "query", "body", "status", "words"),
    [
        (None, "", [failed(1)], 401, "no credentials"),
        ("audrey", "", [failed(1)], 403, "may not"),
        ("agent-7", "?tenant=globex", [failed(1)], 403, "may not"),
        ("root", "", [failed(1)], 422, "several tenants"),
        ("agent-7", "", {**failed(1), "tenant": "globex"}, 422, "unknown field"),
        ("agent-7", "", [failed(1), {**failed(2), "kind": "X Y"}], 422, "1.kind"),
    ],
)
def test_refused_observations_write_nothing(
    dep: Deployment, who: str | None, query: str, body: Any, status: int, words: str
) -> None:
    before = dep.size("acme")
    headers = dep.auth(who) if who else {}
    answer = dep.client.post(f"/v1/observations{query}", json=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert words in answer.text
    assert dep.size("acme") == before


def test_a_repeated_key_over_http_is_refused(dep: Deployment) -> None:
    answer = dep.client.post(
        "/v1/observations",
        content=b'{"source": "a", "source": "b"}',
        headers=dep.auth("agent-7") | {"Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert "more than once" in answer.text


# -- the demo -----------------------------------------------------------------------------


def markers(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def test_demo_identity_shadow_is_stable_in_two_fresh_homes(tmp_path: Path) -> None:
    runner = CliRunner()
    runs = []
    for name in ("one", "two"):
        done = runner.invoke(
            app, ["--home", str(tmp_path / name), "demo", "identity_shadow", "--deterministic"]
        )
        assert done.exit_code == 0, done.output
        runs.append(markers(done.output))
    first, second = runs
    assert first["SHADOW_CREATED"] == "true"
    assert first["SHADOW_KEY"].startswith("shd-")
    assert first["PLAN_SELECTED"] == "door-net"
    assert first["PLAN_STATUS"] == "pending_approval"
    assert first["REPLAY_VERIFIED"] == "true"
    assert first["AUDIT_STREAM_ID"]
    for stable in ("SHADOW_KEY", "PLAN_SELECTED", "AUDIT_STREAM_ID"):
        assert first[stable] == second[stable]
    replayed = runner.invoke(
        app,
        [
            "--home",
            str(tmp_path / "one"),
            "replay",
            "verify",
            "-t",
            "acme",
            "--audit-stream-id",
            first["AUDIT_STREAM_ID"],
            "--json",
        ],
    )
    assert json.loads(replayed.output)["verified"] is True, replayed.output
