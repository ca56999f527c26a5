"""Policy and principals over HTTP: what only the CLI did, with the API's rights and records."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exoarmur.clock import FixedClock
from exoarmur.encoding import format_time
from exoarmur.model.event import (
    POLICY_ACTIVATED,
    PRINCIPAL_ADDED,
    PRINCIPAL_KEY_ROTATED,
    PRINCIPAL_REVOKED,
    SYSTEM_LOG,
    Event,
)
from exoarmur.replay import replay
from test_server_support import DELETE, POLICY, READ, Deployment, deploy, submit

#: only reads, anywhere
READS_ONLY = (
    '@id("reads-only") permit (principal, action, resource) when { context.safety_class == "A0" };'
)
BUNDLE = {"files": {"main.cedar": READS_ONLY}}
CASES = {
    "defaults": {"tenant": "acme", "actor": {"id": "agent-7", "kind": "agent"}},
    "cases": [
        {
            "name": "reads pass",
            "intent": {"action": "demo.read", "target": "r", "safety_class": "A0"},
            "expect": {"verdict": "allow", "reasons": ["reads-only"]},
        },
        {
            "name": "deletes wait",
            "intent": {"action": "demo.delete", "target": "db/orders", "safety_class": "A2"},
            "expect": {"verdict": "allow"},
        },
    ],
}


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _system(dep: Deployment, *types: str) -> list[Event]:
    store = dep.governor.ledger.store
    return [e for e in store.events(SYSTEM_LOG, 0, store.size(SYSTEM_LOG)) if e.type in types]


def _activations(dep: Deployment) -> list[Event]:
    """Every ``policy.activated``: global ones in the system log, a tenant's in its own."""
    store = dep.governor.ledger.store
    return [
        e
        for log in (SYSTEM_LOG, "acme")
        for e in store.events(log, 0, store.size(log))
        if e.type == POLICY_ACTIVATED
    ]


def _error(answer: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    if field is not None:
        assert field in [d["field"] for d in body["detail"]], body
    return body


def _post(dep: Deployment, who: str, path: str, body: Any) -> Any:
    return dep.client.post(path, json=body, headers=dep.auth(who))


# -- policy activate --------------------------------------------------------------


def test_an_operator_activates_a_bundle_for_its_tenant_and_it_decides(dep: Deployment) -> None:
    assert submit(dep, "agent-7", DELETE, 202)["intent_id"]
    answer = _post(dep, "alice", "/v1/policy/activate", {"bundle": BUNDLE, "tenant": "acme"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (event,) = _activations(dep)[-1:]
    assert event.tenant == "acme"
    assert (
        body["policy_hash"]
        == event.payload["policy_hash"]
        == body["event"]["payload"]["policy_hash"]
    )
    assert event.actor["id"] == "alice"
    assert body["tenant"] == "acme"
    assert body["files"] == 1
    assert submit(dep, "agent-7", DELETE, 200)["status"] == "denied"  # the new bundle rules acme
    assert dep.governor.policy_for("globex").policy_hash != body["policy_hash"]


def test_only_an_admin_activates_for_every_tenant(dep: Deployment) -> None:
    before = len(_activations(dep))
    _error(_post(dep, "alice", "/v1/policy/activate", {"bundle": BUNDLE}), 403)
    assert len(_activations(dep)) == before
    (refusal,) = dep.refusals()
    assert refusal.payload["principal"] == "alice"
    answer = _post(dep, "root", "/v1/policy/activate", {"bundle": BUNDLE})
    assert answer.status_code == 200, answer.text
    assert dep.governor.policy_for("globex").policy_hash == answer.json()["policy_hash"]


@pytest.mark.parametrize(
    ("who", "tenant"), [("audrey", "acme"), ("agent-7", "acme"), ("mallory", "acme")]
)
def test_activation_refused_to_the_wrong_role_or_tenant_is_recorded(
    dep: Deployment, who: str, tenant: str
) -> None:
    before = len(_activations(dep))
    _error(_post(dep, who, "/v1/policy/activate", {"bundle": BUNDLE, "tenant": tenant}), 403)
    assert len(_activations(dep)) == before
    (refusal,) = dep.refusals()
    assert (refusal.payload["principal"], refusal.payload["tenant"]) == (who, tenant)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bundle": {"files": {}}, "tenant": "acme"}, "bundle.files"),
        ({"bundle": {"files": {"x.txt": READS_ONLY}}, "tenant": "acme"}, "bundle.files"),
        (
            {"bundle": {"files": {"a.cedar": "permit(principal, action"}}, "tenant": "acme"},
            "bundle",
        ),
        ({"bundle": {"files": {"a.cedar": 7}}, "tenant": "acme"}, "bundle.files.a.cedar"),
        ({"bundle": BUNDLE, "tenant": "Not A Tenant"}, "tenant"),
        ({"bundle": BUNDLE, "tenant": "acme", "extra": 1}, "extra"),
        ({"tenant": "acme"}, "bundle"),
    ],
)
def test_a_bad_bundle_is_422_naming_the_field_and_nothing_is_recorded(
    dep: Deployment, body: dict[str, Any], field: str
) -> None:
    before = len(_activations(dep))
    _error(_post(dep, "alice", "/v1/policy/activate", body), 422, field)
    assert len(_activations(dep)) == before


# -- policy explain and test -----------------------------------------------------------


def test_explain_under_the_bundle_in_force_or_a_given_one(dep: Deployment) -> None:
    size = dep.size("acme")
    intent = DELETE | {"actor": {"id": "agent-7", "kind": "agent"}}
    in_force = _post(dep, "audrey", "/v1/policy/explain", {"intent": intent})
    assert in_force.status_code == 200, in_force.text
    assert in_force.json()["verdict"] == "require_approval"
    assert in_force.json()["bundle_hash"] == dep.governor.policy_for("acme").policy_hash
    given = _post(dep, "alice", "/v1/policy/explain", {"intent": intent, "bundle": BUNDLE})
    assert given.json()["verdict"] == "deny"
    assert dep.size("acme") == size  # explaining writes nothing
    # the request as a submit evaluates it: what the posture tightens, from the server's gate
    lockdown = _post(dep, "audrey", "/v1/policy/explain", {"intent": intent, "posture": "lockdown"})
    tightened = lockdown.json()["request"]["context"]["tightened"]
    assert tightened == dep.governor.gate.policy_context("lockdown")
    assert tightened["extra_approvals"] == 1


def test_explain_refuses_another_tenant_a_role_and_a_bad_intent(dep: Deployment) -> None:
    intent = DELETE | {"actor": {"id": "agent-7", "kind": "agent"}}
    _error(_post(dep, "mallory", "/v1/policy/explain", {"intent": intent}), 403)
    _error(_post(dep, "agent-7", "/v1/policy/explain", {"intent": intent}), 403)
    assert [r.payload["principal"] for r in dep.refusals()] == ["mallory", "agent-7"]
    bad = intent | {"safety_class": "A9"}
    _error(_post(dep, "alice", "/v1/policy/explain", {"intent": bad}), 422, "intent.safety_class")
    broken = {"intent": intent, "bundle": {"files": {"a.cedar": "forbid("}}}
    _error(_post(dep, "alice", "/v1/policy/explain", broken), 422, "bundle")


def test_policy_cases_run_against_a_given_bundle_or_the_one_in_force(dep: Deployment) -> None:
    given = _post(dep, "alice", "/v1/policy/test", {"cases": CASES, "bundle": BUNDLE})
    assert given.status_code == 200, given.text
    result = given.json()
    assert (result["passed"], result["failed"]) == (1, 1)
    assert [c["passed"] for c in result["cases"]] == [True, False]
    in_force = _post(dep, "audrey", "/v1/policy/test", {"cases": CASES, "tenant": "acme"})
    assert in_force.json()["bundle_hash"] == dep.governor.policy_for("acme").policy_hash


def test_policy_cases_refused_and_bad_ones_named(dep: Deployment) -> None:
    _error(_post(dep, "mallory", "/v1/policy/test", {"cases": CASES, "tenant": "acme"}), 403)
    _error(_post(dep, "agent-7", "/v1/policy/test", {"cases": CASES, "bundle": BUNDLE}), 403)
    assert len(dep.refusals()) == 2
    _error(_post(dep, "alice", "/v1/policy/test", {"cases": CASES}), 422, "tenant")
    empty = {"cases": {"cases": []}, "bundle": BUNDLE}
    _error(_post(dep, "alice", "/v1/policy/test", empty), 422, "cases")


# -- principals ------------------------------------------------------------------------


def test_an_admin_adds_lists_and_revokes_principals(dep: Deployment) -> None:
    made = _post(
        dep, "root", "/v1/principals", {"name": "carol", "role": "operator", "tenants": ["acme"]}
    )
    assert made.status_code == 201, made.text
    key = made.json()["api_key"]
    (added,) = [e for e in _system(dep, PRINCIPAL_ADDED) if e.payload["name"] == "carol"]
    assert added.actor["id"] == "root"
    assert key.split("_", 2)[2] not in str(added.payload)
    who = dep.client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert who.json()["name"] == "carol", who.text
    listed = dep.client.get("/v1/principals", headers=dep.auth("root")).json()["principals"]
    assert {
        "name": "carol",
        "role": "operator",
        "tenants": ["acme"],
        "key_id": added.payload["key_id"],
        "active": True,
    } in listed
    assert all("api_key" not in p for p in listed)
    revoked = _post(dep, "root", "/v1/principals/carol/revoke", None)
    assert revoked.json() == {"revoked": "carol"}
    assert (
        dep.client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    )
    _error(_post(dep, "root", "/v1/principals/carol/revoke", None), 404)


@pytest.mark.parametrize("who", ["alice", "audrey", "agent-7"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/principals", None),
        ("POST", "/v1/principals", {"name": "eve", "role": "admin"}),
        ("POST", "/v1/principals/bob/revoke", None),
        ("POST", "/v1/principals/bob/rotate", {}),
    ],
)
def test_principals_are_an_admin_s_alone_and_refusals_are_recorded(
    dep: Deployment, who: str, method: str, path: str, body: Any
) -> None:
    before = len(_system(dep, PRINCIPAL_ADDED, PRINCIPAL_REVOKED, PRINCIPAL_KEY_ROTATED))
    _error(dep.client.request(method, path, json=body, headers=dep.auth(who)), 403)
    after = len(_system(dep, PRINCIPAL_ADDED, PRINCIPAL_REVOKED, PRINCIPAL_KEY_ROTATED))
    assert after == before
    (refusal,) = dep.refusals()
    assert refusal.payload["principal"] == who
    assert dep.client.get("/v1/whoami", headers=dep.auth("bob")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x y", "role": "operator", "tenants": ["acme"]}, "name"),
        ({"name": "carol", "role": "boss", "tenants": ["acme"]}, "role"),
        ({"name": "carol", "role": "operator"}, "tenant"),
        ({"name": "alice", "role": "operator", "tenants": ["acme"]}, "name"),
        ({"name": "carol", "role": "operator", "tenants": "acme"}, "tenants"),
    ],
)
def test_a_bad_principal_is_422_naming_the_field_and_nothing_is_written(
    dep: Deployment, body: dict[str, Any], field: str
) -> None:
    before = len(_system(dep, PRINCIPAL_ADDED))
    _error(_post(dep, "root", "/v1/principals", body), 422, field)
    assert len(_system(dep, PRINCIPAL_ADDED)) == before


# -- key rotation ----------------------------------------------------------------------


def test_a_rotated_key_works_until_its_recorded_time_then_401(dep: Deployment) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    dep.governor.clock = FixedClock(t0)
    old = dep.auth("alice")
    answer = _post(dep, "root", "/v1/principals/alice/rotate", {"grace_seconds": 600})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    new = {"Authorization": f"Bearer {body['api_key']}"}
    (event,) = _system(dep, PRINCIPAL_KEY_ROTATED)
    assert event.actor["id"] == "root"
    assert (
        event.payload["old_key_stops_at"]
        == body["old_key_stops_at"]
        == format_time(t0 + timedelta(seconds=600))
    )
    assert body["api_key"].split("_", 2)[2] not in str(event.payload)
    assert event.payload["key_id"] == body["key_id"] != body["old_key_id"]
    for headers in (old, new):
        assert dep.client.get("/v1/whoami", headers=headers).json()["name"] == "alice"
    dep.governor.clock = FixedClock(t0 + timedelta(seconds=599))
    assert dep.client.get("/v1/whoami", headers=old).status_code == 200
    dep.governor.clock = FixedClock(t0 + timedelta(seconds=600))
    _error(dep.client.get("/v1/whoami", headers=old), 401)
    assert dep.client.get("/v1/whoami", headers=new).status_code == 200


def test_rotation_without_grace_stops_the_old_key_at_once_and_replay_accepts_it(
    dep: Deployment,
) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    old = dep.auth("alice")
    body = _post(dep, "root", "/v1/principals/alice/rotate", {}).json()
    _error(dep.client.get("/v1/whoami", headers=old), 401)
    new = {"Authorization": f"Bearer {body['api_key']}"}
    path = f"/v1/tenants/acme/intents/{pending['intent_id']}/approve"
    for headers in (new, dep.auth("bob")):
        voted = dep.client.post(path, json={"reason": "ok"}, headers=headers)
        assert voted.status_code == 200, voted.text
    report = replay(dep.governor.ledger.store, "acme", verifier=dep.governor.ledger.verifier)
    assert report.verified, report.divergences
    assert submit(dep, "agent-7", READ, 200)["status"] == "executed"


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/v1/principals/alice/rotate", {"grace_seconds": -1}, 422, "grace_seconds"),
        ("/v1/principals/alice/rotate", {"grace_seconds": "60"}, 422, "grace_seconds"),
        ("/v1/principals/alice/rotate", {"grace_seconds": 10**9}, 422, "grace_seconds"),
        ("/v1/principals/alice/rotate", {"grace": 1}, 422, "grace"),
        ("/v1/principals/nobody/rotate", {}, 404, None),
    ],
)
def test_a_bad_rotation_is_refused_and_nothing_is_written(
    dep: Deployment, path: str, body: dict[str, Any], status: int, field: str | None
) -> None:
    _error(_post(dep, "root", path, body), status, field)
    assert _system(dep, PRINCIPAL_KEY_ROTATED) == []
    assert dep.client.get("/v1/whoami", headers=dep.auth("alice")).status_code == 200


def test_a_revoked_principal_cannot_be_rotated_and_its_grace_ends_with_it(dep: Deployment) -> None:
    old = dep.auth("alice")
    body = _post(dep, "root", "/v1/principals/alice/rotate", {"grace_seconds": 3600}).json()
    assert dep.client.get("/v1/whoami", headers=old).status_code == 200
    _post(dep, "root", "/v1/principals/alice/revoke", None)
    new = {"Authorization": f"Bearer {body['api_key']}"}
    for headers in (old, new):
        _error(dep.client.get("/v1/whoami", headers=headers), 401)
    _error(_post(dep, "root", "/v1/principals/alice/rotate", {}), 404)
    assert POLICY  # the deployment's policy is the shared one


def test_a_rotation_signs_the_old_key_s_console_sessions_out(dep: Deployment) -> None:
    form = dep.client.get("/console/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed_in = dep.client.post(
        "/console/signin",
        data={"csrf": csrf.group(1), "api_key": dep.keys["alice"]},
        follow_redirects=False,
    )
    assert signed_in.headers["location"] == "/console/inbox"
    assert dep.client.get("/console/inbox").status_code == 200
    body = {"grace_seconds": 3600}
    rotated = dep.client.post("/v1/principals/alice/rotate", json=body, headers=dep.auth("root"))
    assert rotated.status_code == 200
    answer = dep.client.get("/console/inbox", follow_redirects=False)
    assert answer.headers["location"] == "/console/signin"


def test_a_bundle_over_the_policy_limit_is_refused_naming_its_files() -> None:
    # Over HTTP the body limit (1 MiB) refuses it first; a larger configured limit meets this one.
    from exoarmur.errors import InputError
    from exoarmur.policy.bundle import MAX_POLICY_BYTES
    from exoarmur.server.policy import BundleBody

    big = BundleBody.model_validate({"files": {"a.cedar": "x" * (MAX_POLICY_BYTES + 1)}})
    with pytest.raises(InputError, match=r"^bundle\.files: exceed"):
        big.bundle()
