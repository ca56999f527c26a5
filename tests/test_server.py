"""The HTTP API over a real governor: identity from keys, tenants apart, every refusal recorded."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from exoarmur.approvals import ApprovalStatus
from exoarmur.clock import SystemClock
from exoarmur.errors import LedgerCorrupt
from exoarmur.executors import CallableExecutor
from exoarmur.ids import RandomIds
from exoarmur.ledger.checkpoint import open_checkpoint
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.merkle import verify_consistency, verify_inclusion
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.intent import ActionIntent
from exoarmur.pipeline import Governor
from exoarmur.server import Limits, create_app
from exoarmur.server.access import RIGHTS, Right, permits
from exoarmur.server.errors import LastResort, split_field, validation_problems
from exoarmur.server.limits import BodyLimit, InFlight
from exoarmur.server.openapi import document, render
from exoarmur.server.openapi import main as openapi_main
from exoarmur.server.schemas import PostureRequest
from test_server_support import (
    DELETE,
    FORBIDDEN,
    PEOPLE,
    READ,
    Deployment,
    TestClient,
    deploy,
    submit,
)

ROOT = Path(__file__).resolve().parents[1]
MISSING_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _types(story: dict[str, Any]) -> list[str]:
    return [event["type"] for event in story["events"]]


def _error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"] == code, body
    assert set(body) == {"error", "message", "detail"}
    return body


# -- the walk-through ----------------------------------------------------------


def test_agent_submits_operators_approve_and_the_story_shows_every_step(dep: Deployment) -> None:
    allowed = submit(dep, "agent-7", READ, 200)
    assert allowed["status"] == "executed"
    assert allowed["decision"]["reasons"] == ["reads"]

    denied = submit(dep, "agent-7", FORBIDDEN, 200)  # handled: a denial is an answer
    assert denied["status"] == "denied"
    assert denied["decision"]["reasons"] == ["protected"]

    answer = dep.client.post("/v1/intents", json=DELETE, headers=dep.auth("agent-7"))
    assert answer.status_code == 202, answer.text
    pending = answer.json()
    intent_id = pending["intent_id"]
    assert answer.headers["location"] == f"/v1/tenants/acme/intents/{intent_id}"
    assert pending["approval"]["quorum"] == 2
    assert pending["approval"]["status"] == "pending"
    assert pending["intent"]["actor"] == {"id": "agent-7", "kind": "agent"}

    listed = dep.client.get("/v1/tenants/acme/approvals", headers=dep.auth("alice")).json()
    assert [p["intent_id"] for p in listed["pending"]] == [intent_id]
    vote = {"reason": "CHG-1042 reviewed", "intent_hash": pending["intent_hash"]}
    approve = f"/v1/tenants/acme/intents/{intent_id}/approve"

    first = dep.client.post(approve, json=vote, headers=dep.auth("alice"))
    assert first.status_code == 200, first.text
    assert first.json()["approval_status"] == "pending"
    assert first.json()["message"] == "1 of 2 approvals"
    again = dep.client.post(approve, json=vote, headers=dep.auth("alice"))
    assert "already approved" in _error(again, 409, "conflict")["message"]

    second = dep.client.post(
        approve, json={"reason": "second pair of eyes"}, headers=dep.auth("bob")
    )
    assert second.status_code == 200, second.text
    assert second.json()["approval_status"] == "approved"
    assert second.json()["outcome"]["status"] == "executed"

    story = dep.client.get(f"/v1/tenants/acme/intents/{intent_id}", headers=dep.auth("agent-7"))
    assert story.status_code == 200, story.text
    told = story.json()
    assert _types(told) == [
        "intent.recorded",
        "decision.recorded",
        "approval.requested",
        "approval.granted",
        "approval.refused",
        "approval.granted",
        "intent.approved",
        "execution.started",
        "execution.finished",
    ]
    assert told["outcome"]["status"] == "executed"
    assert told["approval"]["status"] == "approved"
    assert told["approval"]["approvers"] == ["alice", "bob"]
    assert [v["approver"] for v in told["approval"]["votes"]] == ["alice", "bob"]
    assert told["intent_hash"] == pending["intent_hash"]
    # Every event is the ledger's own record: same leaf hashes as the store holds.
    stored = dep.governor.story("acme", intent_id)
    assert [e["leaf_hash"] for e in told["events"]] == [e.leaf_hash.hex() for e in stored]

    refused = dep.client.post(approve, json=vote, headers=dep.auth("bob"))
    assert "not pending" in _error(refused, 409, "conflict")["message"]


def test_identity_is_the_key_s_principal_whatever_the_body_says(dep: Deployment) -> None:
    before = dep.size("acme")
    impostor = READ | {"actor": {"id": "agent-8", "kind": "agent"}}
    answer = dep.client.post("/v1/intents", json=impostor, headers=dep.auth("agent-7"))
    assert "agent-8" in _error(answer, 403, "forbidden")["message"]
    assert dep.size("acme") == before  # nothing recorded for the tenant
    (refusal,) = dep.refusals()
    assert refusal.payload["principal"] == "agent-7"
    assert refusal.payload["tenant"] == "acme"
    assert refusal.payload["attempted"] == "POST /v1/intents"

    named = submit(dep, "agent-7", READ | {"actor": {"id": "agent-7", "kind": "service"}}, 200)
    recorded = dep.governor.story("acme", named["intent_id"])[0].payload["intent"]
    assert recorded["actor"] == {"id": "agent-7", "kind": "service"}
    omitted = submit(dep, "agent-7", READ | {"target": "reports/q4.txt"}, 200)
    recorded = dep.governor.story("acme", omitted["intent_id"])[0].payload["intent"]
    assert recorded["actor"] == {"id": "agent-7", "kind": "agent"}


@pytest.mark.parametrize(
    ("who", "kind"), [("agent-7", "operator"), ("agent-7", "system"), ("root", "system")]
)
def test_an_actor_kind_the_role_may_not_claim_is_refused(
    dep: Deployment, who: str, kind: str
) -> None:
    intent = READ | {"actor": {"id": who, "kind": kind}}
    answer = dep.client.post("/v1/intents", json=intent, headers=dep.auth(who))
    assert kind in _error(answer, 403, "forbidden")["message"]
    assert len(dep.refusals()) == 1


def test_an_admin_submits_for_any_tenant_and_duplicates_answer_the_first_outcome(
    dep: Deployment,
) -> None:
    first = submit(dep, "root", READ | {"tenant": "initech", "idempotency_key": "k-1"}, 200)
    again = submit(dep, "root", READ | {"tenant": "initech", "idempotency_key": "k-1"}, 200)
    assert again["intent_id"] == first["intent_id"]
    assert again["duplicate"] is True
    pending = submit(dep, "agent-7", DELETE | {"idempotency_key": "d-1"}, 202)
    repeated = submit(dep, "agent-7", DELETE | {"idempotency_key": "d-1"}, 202)
    assert repeated["intent_id"] == pending["intent_id"]


def test_an_agent_reads_only_its_own_intents(dep: Deployment) -> None:
    mine = submit(dep, "agent-7", READ, 200)["intent_id"]
    path = f"/v1/tenants/acme/intents/{mine}"
    other = _error(dep.client.get(path, headers=dep.auth("agent-8")), 404, "not_found")
    missing = dep.client.get(f"/v1/tenants/acme/intents/{MISSING_ID}", headers=dep.auth("agent-8"))
    # Another agent's intent answers exactly like a missing one.
    assert other["message"].replace(mine, "X") == missing.json()["message"].replace(MISSING_ID, "X")
    (refusal,) = dep.refusals()
    assert refusal.payload["principal"] == "agent-8"
    for reader in ("agent-7", "alice", "audrey", "root"):
        assert dep.client.get(path, headers=dep.auth(reader)).status_code == 200, reader


def test_another_agent_s_idempotency_key_reaches_nothing_of_the_first(dep: Deployment) -> None:
    first = submit(
        dep, "agent-7", READ | {"idempotency_key": "job-1", "params": {"token": "s3cret-7"}}, 200
    )
    answer = dep.client.post(
        "/v1/intents",
        json=READ | {"idempotency_key": "job-1", "target": "reports/q9.txt"},
        headers=dep.auth("agent-8"),
    )
    assert answer.status_code == 200, answer.text
    assert "s3cret-7" not in answer.text
    assert first["intent_id"] not in answer.text
    second = answer.json()
    assert second["duplicate"] is False
    assert second["status"] == "executed"
    story = dep.client.get(
        f"/v1/tenants/acme/intents/{second['intent_id']}", headers=dep.auth("agent-8")
    ).json()
    assert story["intent"]["target"] == "reports/q9.txt"
    # agent-7's retry still answers agent-7's first outcome
    again = submit(dep, "agent-7", READ | {"idempotency_key": "job-1"}, 200)
    assert (again["intent_id"], again["duplicate"]) == (first["intent_id"], True)


def test_a_reused_intent_id_is_409_and_writes_nothing(dep: Deployment) -> None:
    chosen = "01KDVDNA0MHK4TPFES1W0SHD8Y"
    submit(dep, "agent-7", DELETE | {"intent_id": chosen, "idempotency_key": "d-7"}, 202)
    size = dep.governor.ledger.size("acme")
    answer = dep.client.post(
        "/v1/intents",
        json=DELETE | {"intent_id": chosen, "idempotency_key": "d-8"},
        headers=dep.auth("agent-8"),
    )
    body = _error(answer, 409, "conflict")
    assert "intent_id" in body["message"]
    assert "d-7" not in answer.text
    assert dep.governor.ledger.size("acme") == size
    for beyond in ("8" + "0" * 25, "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"):
        answer = dep.client.post(
            "/v1/intents", json=READ | {"intent_id": beyond}, headers=dep.auth("agent-8")
        )
        body = _error(answer, 422, "invalid")
        assert [d["field"] for d in body["detail"]] == ["intent_id"]
        assert "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" in body["detail"][0]["rule"]
    assert dep.governor.ledger.size("acme") == size


# -- authentication and authorisation ------------------------------------------


@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        (None, 'Bearer realm="exoarmur"'),
        ("Bearer not-a-key", 'Bearer realm="exoarmur", error="invalid_token"'),
        (f"Bearer exo_{'0' * 16}_{'A' * 43}", 'Bearer realm="exoarmur", error="invalid_token"'),
        ("Basic YWxpY2U6c2VjcmV0", 'Bearer realm="exoarmur"'),
    ],
    ids=["none", "garbage", "unknown-key", "basic"],
)
def test_missing_or_bad_credentials_are_401_and_recorded(
    dep: Deployment, header: str | None, challenge: str
) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in [
        ("POST", "/v1/intents"),
        ("GET", "/v1/tenants/acme/approvals"),
        ("GET", "/v1/whoami"),
    ]:
        answer = dep.client.request(method, path, json=READ, headers=headers)
        _error(answer, 401, "unauthenticated")
        assert answer.headers["www-authenticate"] == challenge
    refusals = dep.refusals()
    assert [r.payload["attempted"] for r in refusals] == [
        "POST /v1/intents",
        "GET /v1/tenants/acme/approvals",
        "GET /v1/whoami",
    ]
    assert all(r.payload["principal"] is None for r in refusals)
    assert dep.size("acme") == 0
    if header and header.startswith("Bearer exo_"):
        assert f"key id {'0' * 16}" in refusals[0].payload["detail"]
        assert "A" * 43 not in json.dumps(refusals[0].payload)  # never the secret


def test_a_revoked_key_stops_working_at_once(dep: Deployment) -> None:
    assert dep.client.get("/v1/whoami", headers=dep.auth("alice")).json()["role"] == "operator"
    dep.governor.revoke_principal("alice")
    _error(dep.client.get("/v1/whoami", headers=dep.auth("alice")), 401, "unauthenticated")


#: (who, method, path, body): each a role asking for what its role never has
WRONG_ROLE = [
    ("audrey", "POST", "/v1/intents", READ),
    ("alice", "POST", "/v1/intents", READ),
    ("agent-7", "GET", "/v1/tenants/acme/approvals", None),
    ("agent-7", "POST", f"/v1/tenants/acme/intents/{MISSING_ID}/approve", {"reason": "x"}),
    ("audrey", "POST", f"/v1/tenants/acme/intents/{MISSING_ID}/reject", {"reason": "x"}),
    ("agent-7", "GET", "/v1/tenants/acme/events", None),
    ("agent-7", "GET", "/v1/tenants/acme/checkpoint", None),
    ("agent-7", "GET", f"/v1/tenants/acme/proofs/inclusion?event_id={MISSING_ID}", None),
    ("agent-7", "GET", "/v1/tenants/acme/proofs/consistency?from_size=0&to_size=0", None),
    ("agent-7", "GET", "/v1/tenants/acme/posture", None),
    ("agent-7", "GET", "/v1/killswitches?tenant=acme", None),
    ("alice", "GET", "/v1/killswitches", None),
    ("alice", "GET", "/v1/tenants/_system/events", None),
    (
        "agent-7",
        "POST",
        "/v1/killswitches",
        {"action": "engage", "scope": "tenant:acme", "reason": "x"},
    ),
    ("audrey", "PUT", "/v1/tenants/acme/posture", {"posture": "lockdown", "reason": "x"}),
    ("alice", "POST", "/v1/killswitches", {"action": "engage", "scope": "global", "reason": "x"}),
    (
        "alice",
        "POST",
        "/v1/killswitches",
        {"action": "engage", "scope": "action:fs.*", "reason": "x"},
    ),
]


@pytest.mark.parametrize(("who", "method", "path", "body"), WRONG_ROLE)
def test_a_role_without_the_right_is_403_and_recorded(
    dep: Deployment, who: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    answer = dep.client.request(method, path, json=body, headers=dep.auth(who))
    _error(answer, 403, "forbidden")
    (refusal,) = dep.refusals()
    assert refusal.payload["principal"] == who
    assert dep.size("acme") == 0


#: what an operator of globex tries against acme; none of it may even reveal what exists
ACROSS_TENANTS = [
    ("GET", "/v1/tenants/acme/intents/{id}", None),
    ("GET", "/v1/tenants/acme/approvals", None),
    ("POST", "/v1/tenants/acme/intents/{id}/approve", {"reason": "looks fine"}),
    ("POST", "/v1/tenants/acme/intents/{id}/reject", {"reason": "looks bad"}),
    ("GET", "/v1/tenants/acme/events", None),
    ("GET", "/v1/tenants/acme/checkpoint", None),
    ("GET", "/v1/tenants/acme/proofs/inclusion?event_id={id}", None),
    ("GET", "/v1/tenants/acme/proofs/consistency?from_size=0&to_size=1", None),
    ("POST", "/v1/killswitches", {"action": "engage", "scope": "tenant:acme", "reason": "x"}),
    ("POST", "/v1/killswitches", {"action": "release", "scope": "tenant:acme", "reason": "x"}),
    (
        "POST",
        "/v1/killswitches",
        {"action": "engage", "scope": "tenant:acme/action:demo.*", "reason": "x"},
    ),
    ("GET", "/v1/killswitches?tenant=acme", None),
    ("PUT", "/v1/tenants/acme/posture", {"posture": "lockdown", "reason": "x"}),
    ("GET", "/v1/tenants/acme/posture", None),
]


@pytest.mark.parametrize(("method", "template", "body"), ACROSS_TENANTS)
def test_tenant_b_can_neither_read_nor_affect_tenant_a(
    dep: Deployment, method: str, template: str, body: dict[str, Any] | None
) -> None:
    real = submit(dep, "agent-7", DELETE, 202)["intent_id"]
    size = dep.size("acme")
    answers = []
    for intent_id in (real, MISSING_ID):
        path = template.format(id=intent_id)
        answer = dep.client.request(method, path, json=body, headers=dep.auth("mallory"))
        answers.append(_error(answer, 403, "forbidden")["message"].replace(intent_id, "X"))
    assert answers[0] == answers[1]  # an existing intent and a missing one look the same
    assert dep.size("acme") == size  # nothing written in acme
    refusals = dep.refusals()
    assert len(refusals) == 2
    assert {r.payload["principal"] for r in refusals} == {"mallory"}
    assert {r.payload["tenant"] for r in refusals} == {"acme"}


def test_an_agent_of_one_tenant_cannot_submit_to_another(dep: Deployment) -> None:
    answer = dep.client.post("/v1/intents", json=READ, headers=dep.auth("agent-g"))
    _error(answer, 403, "forbidden")
    assert dep.size("acme") == 0
    assert dep.refusals()[0].payload["tenant"] == "acme"


@pytest.mark.parametrize("role", sorted(RIGHTS))
def test_the_rights_table(role: str) -> None:
    from exoarmur.principals import Principal

    tenants = ("*",) if role == "admin" else ("acme",)
    principal = Principal("p", role, tenants, "0" * 16)
    for right in Right:
        expected = right in RIGHTS[role]
        assert permits(principal, right, "acme") is expected, right
        assert permits(principal, right, "globex") is (expected and role == "admin"), right
        assert permits(principal, right, None) is (expected and role == "admin"), right


# -- votes ------------------------------------------------------------------------


def test_votes_refused_by_state_or_by_duty(dep: Deployment) -> None:
    denied = submit(dep, "agent-7", FORBIDDEN, 200)["intent_id"]
    answer = dep.client.post(
        f"/v1/tenants/acme/intents/{denied}/approve",
        json={"reason": "x"},
        headers=dep.auth("alice"),
    )
    assert "not pending" in _error(answer, 409, "conflict")["message"]

    own = submit(dep, "root", DELETE | {"actor": {"id": "root", "kind": "agent"}}, 202)
    answer = dep.client.post(
        f"/v1/tenants/acme/intents/{own['intent_id']}/approve",
        json={"reason": "mine"},
        headers=dep.auth("root"),
    )
    assert "may not approve it" in _error(answer, 403, "forbidden")["message"]

    pending = submit(dep, "agent-7", DELETE, 202)
    path = f"/v1/tenants/acme/intents/{pending['intent_id']}"
    wrong = {"reason": "x", "intent_hash": "sha256:" + "0" * 64}
    answer = dep.client.post(f"{path}/approve", json=wrong, headers=dep.auth("alice"))
    assert "bound to" in _error(answer, 409, "conflict")["message"]
    rejected = dep.client.post(f"{path}/reject", json={"reason": "no"}, headers=dep.auth("bob"))
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["approval_status"] == ApprovalStatus.REJECTED
    assert rejected.json()["outcome"]["status"] == "rejected"

    missing = f"/v1/tenants/acme/intents/{MISSING_ID}/approve"
    _error(
        dep.client.post(missing, json={"reason": "x"}, headers=dep.auth("alice")), 404, "not_found"
    )


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"safety_class": "A9"}, "safety_class"),
        ({"surprise": 1}, "surprise"),
        ({"tenant": "Acme!"}, "tenant"),
        ({"actor": {"id": "agent 7"}}, "actor.id"),
        ({"params": {"n": 2**60}}, "params"),
        ({"event_time": "2026-01-01T00:00:00"}, "event_time"),
        ({"target": None}, "target"),
    ],
)
def test_a_bad_intent_is_422_naming_the_field_and_nothing_is_written(
    dep: Deployment, change: dict[str, Any], field: str
) -> None:
    answer = dep.client.post("/v1/intents", json=READ | change, headers=dep.auth("agent-7"))
    body = _error(answer, 422, "invalid")
    assert field in [problem["field"] for problem in body["detail"]], body
    assert dep.size("acme") == 0


def _nested(depth: int) -> bytes:
    params = '{"a":' * (depth - 1) + "[1]" + "}" * (depth - 1)
    intent = json.dumps(READ)[:-1] + f', "params": {params}}}'
    return intent.encode()


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"\xff\xfe", 400, None),
        (b"[1, 2]", 422, "intent"),
        (b'"text"', 422, "intent"),
        (json.dumps(READ | {"params": {"pad": "x" * 300_000}}).encode(), 422, "intent"),
        (json.dumps(READ | {"target": "\ud800"}).encode(), 422, "target"),
        (_nested(65), 422, "params"),
        (_nested(600), 422, "params"),
        (_nested(20_000), 400, None),
    ],
    ids=[
        "malformed",
        "not-utf8",
        "array",
        "string",
        "over-256KiB",
        "lone-surrogate",
        "params-65-deep",
        "params-600-deep",
        "too-deep-to-parse",
    ],
)
def test_bodies_that_are_not_an_intent(
    dep: Deployment, raw: bytes, status: int, field: str | None
) -> None:
    headers = dep.auth("agent-7") | {"Content-Type": "application/json"}
    answer = dep.client.post("/v1/intents", content=raw, headers=headers)
    body = _error(answer, status, "bad_request" if status == 400 else "invalid")
    assert body["detail"][0]["field"] == field
    assert dep.size("acme") == 0


def test_params_nested_as_deep_as_allowed_are_governed(dep: Deployment) -> None:
    headers = dep.auth("agent-7") | {"Content-Type": "application/json"}
    answer = dep.client.post("/v1/intents", content=_nested(64), headers=headers)
    assert answer.status_code == 200, answer.text


def test_a_vote_body_nested_too_deep_to_parse_is_400(dep: Deployment) -> None:
    raw = '{"reason": ' + "[" * 20_000 + "]" * 20_000 + "}"
    path = f"/v1/tenants/acme/intents/{MISSING_ID}/approve"
    headers = dep.auth("alice") | {"Content-Type": "application/json"}
    _error(dep.client.post(path, content=raw, headers=headers), 400, "bad_request")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 2001}, "reason"),
        ({"reason": "x", "intent_hash": "md5:abc"}, "intent_hash"),
        ({"reason": "x", "approver": "alice"}, "approver"),
        ({"reason": "\ud800"}, "reason"),
    ],
)
def test_a_bad_vote_is_422_naming_the_field(
    dep: Deployment, body: dict[str, Any], field: str
) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)["intent_id"]
    size = dep.size("acme")
    path = f"/v1/tenants/acme/intents/{pending}/approve"
    headers = dep.auth("alice") | {"Content-Type": "application/json"}
    # Sent as text: a lone surrogate is valid JSON escaped, and httpx would not encode it raw.
    answer = dep.client.post(path, content=json.dumps(body), headers=headers)
    problems = _error(answer, 422, "invalid")["detail"]
    assert [p["field"] for p in problems] == [field]
    assert dep.size("acme") == size


def test_a_body_that_is_not_json_for_a_vote_is_400(dep: Deployment) -> None:
    path = f"/v1/tenants/acme/intents/{MISSING_ID}/approve"
    headers = dep.auth("alice") | {"Content-Type": "application/json"}
    answer = dep.client.post(path, content=b"{nope", headers=headers)
    _error(answer, 400, "bad_request")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/tenants/acme/events?limit=0", "limit"),
        ("/v1/tenants/acme/events?limit=1001", "limit"),
        ("/v1/tenants/acme/events?after_seq=-1", "after_seq"),
        ("/v1/tenants/Acme/events", "tenant"),
        ("/v1/tenants/acme/intents/not-a-ulid", "intent_id"),
        ("/v1/tenants/acme/proofs/inclusion", "event_id"),
        ("/v1/tenants/acme/proofs/consistency?from_size=2&to_size=1", "from_size"),
        ("/v1/killswitches?tenant=-x", "tenant"),
    ],
)
def test_bad_parameters_are_422_naming_them(dep: Deployment, path: str, field: str) -> None:
    body = _error(dep.client.get(path, headers=dep.auth("root")), 422, "invalid")
    assert [p["field"] for p in body["detail"]] == [field]


def test_bodies_over_the_limit_are_413_before_parsing(tmp_path: Path) -> None:
    dep = deploy(tmp_path / "home", limits=Limits(max_body_bytes=4096))
    try:
        big = json.dumps(READ | {"params": {"pad": "x" * 5000}}).encode()
        headers = dep.auth("agent-7") | {"Content-Type": "application/json"}
        declared = dep.client.post("/v1/intents", content=big, headers=headers)
        _error(declared, 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        chunked = dep.client.post("/v1/intents", content=chunks(), headers=headers)
        _error(chunked, 413, "payload_too_large")
        vote = {"reason": "x" * 5000}
        path = f"/v1/tenants/acme/intents/{MISSING_ID}/approve"
        _error(
            dep.client.post(path, json=vote, headers=dep.auth("alice")), 413, "payload_too_large"
        )
        assert dep.size("acme") == 0
        assert submit(dep, "agent-7", READ, 200)["status"] == "executed"  # small ones pass
    finally:
        dep.client.close()
        dep.governor.close()


# -- backpressure and failures --------------------------------------------------------


def test_429_at_once_when_the_in_flight_bound_is_full(tmp_path: Path) -> None:
    dep = deploy(tmp_path / "home", limits=Limits(max_in_flight_writes=1))
    started, release = threading.Event(), threading.Event()

    def hold(intent: ActionIntent) -> str:
        started.set()
        release.wait(10)
        return "held"

    dep.governor.executors.bind("slow.*", CallableExecutor(hold))
    slow = READ | {"action": "slow.hold"}
    results: list[Any] = []
    first = threading.Thread(
        target=lambda: results.append(
            dep.client.post("/v1/intents", json=slow, headers=dep.auth("agent-7"))
        )
    )
    try:
        first.start()
        assert started.wait(10)
        busy = dep.client.post("/v1/intents", json=READ, headers=dep.auth("agent-8"))
        _error(busy, 429, "too_many_requests")
        assert busy.headers["retry-after"] == "1"
        vote = dep.client.post(
            f"/v1/tenants/acme/intents/{MISSING_ID}/approve",
            json={"reason": "x"},
            headers=dep.auth("alice"),
        )
        assert vote.status_code == 429  # votes share the bound
        assert (
            dep.client.get("/v1/tenants/acme/events", headers=dep.auth("alice")).status_code == 200
        )
    finally:
        release.set()
        first.join(10)
    assert results[0].status_code == 200
    assert results[0].json()["result"] == "held"
    assert submit(dep, "agent-8", READ, 200)["status"] == "executed"  # the place is free again
    dep.client.close()
    dep.governor.close()


def test_in_flight_counts_and_refuses() -> None:
    slots = InFlight(2, "things")
    slots.enter()
    slots.enter()
    with pytest.raises(Exception, match="2 things already in flight"):
        slots.enter()
    slots.leave()
    slots.enter()
    assert slots.count == 2
    with pytest.raises(ValueError, match="max_in_flight_reads"):
        Limits(max_in_flight_reads=0)


def test_503_with_retry_after_when_the_store_fails(dep: Deployment) -> None:
    dep.governor.ledger.store.close()
    for method, path, who in [
        ("GET", "/v1/tenants/acme/events", "alice"),
        ("POST", "/v1/intents", "agent-7"),
        ("GET", "/v1/whoami", None),  # a refusal that cannot be recorded is not answered 401
    ]:
        headers = dep.auth(who) if who else {}
        answer = dep.client.request(method, path, json=READ, headers=headers)
        body = _error(answer, 503, "unavailable")
        assert answer.headers["retry-after"] == "5"
        assert "ledger.db" not in body["message"]  # no paths or driver messages
    ready = dep.client.get("/v1/ready")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "5"
    assert ready.json()["checks"][0] == {
        "name": "store",
        "ok": False,
        "detail": "the store does not answer",
    }
    assert dep.client.get("/v1/health").status_code == 200


def test_503_when_no_policy_is_in_force(tmp_path: Path) -> None:
    ledger = Ledger(SqliteStore(tmp_path / "ledger.db"), SigningKey.generate("test/none"))
    governor = Governor(ledger=ledger, clock=SystemClock(), ids=RandomIds())
    try:
        _, key = governor.add_principal("agent-7", "agent", ["acme"])
        client = TestClient(create_app(governor))
        answer = client.post("/v1/intents", json=READ, headers={"Authorization": f"Bearer {key}"})
        assert "no policy" in _error(answer, 503, "unavailable")["message"]
        ready = client.get("/v1/ready").json()
        assert ready["ready"] is False
        assert ready["checks"][1] == {
            "name": "policy",
            "ok": False,
            "detail": "no policy is in force",
        }
    finally:
        governor.close()


def test_unexpected_errors_are_a_generic_500_and_logged(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("secret detail /etc/exoarmur")

    def corrupt(*args: object) -> None:
        raise LedgerCorrupt("stored bytes disagree at seq 9")

    monkeypatch.setattr(dep.governor, "pending", boom)
    monkeypatch.setattr(dep.governor, "killswitches", corrupt)
    with caplog.at_level(logging.ERROR, logger="exoarmur.server"):
        for path in ("/v1/tenants/acme/approvals", "/v1/killswitches?tenant=acme"):
            answer = dep.client.get(path, headers=dep.auth("alice"))
            body = _error(answer, 500, "internal")
            assert body["message"] == "internal error; it has been logged"
            assert "secret" not in answer.text
            assert "seq 9" not in answer.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /v1/tenants/acme/approvals" in logged
    assert any(record.exc_info for record in caplog.records)


def test_unknown_routes_and_methods_have_the_error_shape(dep: Deployment) -> None:
    _error(dep.client.get("/v1/nothing-here"), 404, "not_found")
    answer = dep.client.delete("/v1/intents", headers=dep.auth("root"))
    _error(answer, 405, "method_not_allowed")
    assert "POST" in answer.headers["allow"]
    assert answer.headers["cache-control"] == "no-store"


# -- the ledger -------------------------------------------------------------------------


def test_events_come_in_pages_until_the_cursor_runs_out(dep: Deployment) -> None:
    for n in range(3):
        submit(dep, "agent-7", READ | {"target": f"r/{n}"}, 200)
    size = dep.size("acme")
    seen: list[dict[str, Any]] = []
    cursor: int | None = None
    pages = 0
    while True:
        query = "limit=5" + (f"&after_seq={cursor}" if cursor is not None else "")
        page = dep.client.get(f"/v1/tenants/acme/events?{query}", headers=dep.auth("audrey"))
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["tree_size"] == size
        seen.extend(body["events"])
        pages += 1
        cursor = body["next_after_seq"]
        if cursor is None:
            break
    assert pages == -(-size // 5)
    assert [e["seq"] for e in seen] == list(range(size))
    stored = dep.governor.ledger.store.events("acme", 0, size)
    assert [e["leaf_hash"] for e in seen] == [e.leaf_hash.hex() for e in stored]
    past = dep.client.get(f"/v1/tenants/acme/events?after_seq={size}", headers=dep.auth("root"))
    assert past.json()["events"] == []
    assert past.json()["next_after_seq"] is None


def test_checkpoints_and_proofs_verify_offline(dep: Deployment) -> None:
    first = submit(dep, "agent-7", READ, 200)
    story = dep.governor.story("acme", first["intent_id"])
    auth = dep.auth("audrey")
    signed = dep.client.get("/v1/tenants/acme/checkpoint", headers=auth).json()
    checkpoint = open_checkpoint(signed["note"], dep.governor.ledger.verifier)
    assert checkpoint.size == signed["tree_size"] == dep.size("acme")
    assert checkpoint.root_hash.hex() == signed["root_hash"]
    assert signed["verifier_key"] == dep.governor.ledger.key.verifier_key()
    old_size, old_root = checkpoint.size, checkpoint.root_hash

    submit(dep, "agent-7", READ | {"target": "more"}, 200)
    proof = dep.client.get(
        f"/v1/tenants/acme/proofs/inclusion?event_id={story[1].event_id}", headers=auth
    ).json()
    assert set(proof) == {"leaf_index", "tree_size", "leaf_hash", "hashes", "root_hash"}
    assert proof["tree_size"] == dep.size("acme")  # against a fresh checkpoint
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root_hash"]),
    )
    size = dep.size("acme")
    grown = dep.client.get(
        f"/v1/tenants/acme/proofs/consistency?from_size={old_size}&to_size={size}", headers=auth
    ).json()
    assert grown["old_root"] == old_root.hex()
    assert verify_consistency(
        old_size,
        size,
        old_root,
        bytes.fromhex(grown["new_root"]),
        [bytes.fromhex(h) for h in grown["hashes"]],
    )
    beyond = f"/v1/tenants/acme/proofs/consistency?from_size=0&to_size={size + 1}"
    _error(dep.client.get(beyond, headers=auth), 404, "not_found")
    unknown = f"/v1/tenants/acme/proofs/inclusion?event_id={MISSING_ID}"
    _error(dep.client.get(unknown, headers=auth), 404, "not_found")
    empty = dep.client.get("/v1/tenants/globex/checkpoint", headers=dep.auth("root"))
    _error(empty, 404, "not_found")


def test_admins_read_the_system_log_and_see_refusals_there(dep: Deployment) -> None:
    dep.client.get("/v1/whoami")  # a refused request
    page = dep.client.get("/v1/tenants/_system/events?limit=1000", headers=dep.auth("root"))
    assert page.status_code == 200, page.text
    types = [e["type"] for e in page.json()["events"]]
    assert types.count("principal.added") == len(PEOPLE)
    assert types[-1] == "access.refused"
    assert (
        dep.client.get("/v1/tenants/_system/checkpoint", headers=dep.auth("root")).status_code
        == 200
    )


# -- the service --------------------------------------------------------------------------


def test_health_readiness_and_whoami(dep: Deployment) -> None:
    assert dep.client.get("/v1/health").json()["status"] == "ok"
    ready = dep.client.get("/v1/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    me = dep.client.get("/v1/whoami", headers=dep.auth("mallory")).json()
    assert me == {
        "name": "mallory",
        "role": "operator",
        "tenants": ["globex"],
        "key_id": dep.keys["mallory"].split("_")[1],
    }
    assert dep.refusals() == []  # none of that was refused


# -- kill switches and posture --------------------------------------------------------------


def test_a_kill_switch_stops_an_agent_until_it_is_released(dep: Deployment) -> None:
    engage = {"action": "engage", "scope": "tenant:acme/action:demo.*", "reason": "INC-7"}
    switched = dep.client.post("/v1/killswitches", json=engage, headers=dep.auth("alice"))
    assert switched.status_code == 200, switched.text
    event = switched.json()["event"]
    assert event["type"] == "killswitch.engaged"
    assert event["actor"]["id"] == "alice"

    blocked = submit(dep, "agent-7", READ, 200)
    assert blocked["status"] == "denied"
    listed = dep.client.get("/v1/killswitches?tenant=acme", headers=dep.auth("audrey")).json()
    assert [s["scope"] for s in listed["killswitches"]] == ["tenant:acme/action:demo.*"]
    everything = dep.client.get("/v1/killswitches", headers=dep.auth("root")).json()
    assert everything["tenant"] is None
    assert len(everything["killswitches"]) == 1

    again = dep.client.post("/v1/killswitches", json=engage, headers=dep.auth("bob"))
    assert again.json()["event"]["event_id"] == event["event_id"]  # already engaged
    release = engage | {"action": "release", "reason": "INC-7 resolved"}
    released = dep.client.post("/v1/killswitches", json=release, headers=dep.auth("alice"))
    assert released.json()["event"]["type"] == "killswitch.released"
    assert submit(dep, "agent-7", READ | {"target": "after"}, 200)["status"] == "executed"
    twice = dep.client.post("/v1/killswitches", json=release, headers=dep.auth("alice"))
    assert _error(twice, 422, "invalid")["detail"][0]["field"] == "scope"


def test_only_an_admin_throws_the_global_switch(dep: Deployment) -> None:
    engage = {"action": "engage", "scope": "global", "reason": "drill"}
    answer = dep.client.post("/v1/killswitches", json=engage, headers=dep.auth("root"))
    assert answer.status_code == 200, answer.text
    assert submit(dep, "agent-7", READ, 200)["status"] == "denied"
    bad = dep.client.post(
        "/v1/killswitches", json=engage | {"scope": "planet:earth"}, headers=dep.auth("root")
    )
    assert _error(bad, 422, "invalid")["detail"][0]["field"] == "scope"


@pytest.mark.parametrize(
    "scopes",
    [["tenant:acme/action:demo.*", "tenant:acme"], ["global", "action:demo.*"]],
)
def test_switches_of_both_kinds_answer_denied_never_500(dep: Deployment, scopes: list[str]) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    for scope in scopes:
        engage = {"action": "engage", "scope": scope, "reason": "drill"}
        answer = dep.client.post("/v1/killswitches", json=engage, headers=dep.auth("root"))
        assert answer.status_code == 200, answer.text
    assert submit(dep, "agent-7", READ, 200)["status"] == "denied"
    for who in ("alice", "bob"):
        vote = {"reason": "ok", "intent_hash": pending["intent_hash"]}
        answer = dep.client.post(
            f"/v1/tenants/acme/intents/{pending['intent_id']}/approve",
            json=vote,
            headers=dep.auth(who),
        )
        assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"]["status"] == "blocked"
    story = dep.client.get(
        f"/v1/tenants/acme/intents/{pending['intent_id']}", headers=dep.auth("root")
    ).json()
    assert "execution.started" not in _types(story)
    assert _types(story)[-1] == "execution.blocked"


def test_posture_is_set_by_operators_and_read_by_auditors(dep: Deployment) -> None:
    change = {"posture": "lockdown", "reason": "INC-9", "ttl_seconds": 600}
    answer = dep.client.put("/v1/tenants/acme/posture", json=change, headers=dep.auth("alice"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["event"]["type"] == "posture.set"
    assert answer.json()["posture"]["posture"] == "lockdown"
    read = dep.client.get("/v1/tenants/acme/posture", headers=dep.auth("audrey")).json()
    assert read["posture"] == answer.json()["posture"]
    assert read["event"] is None
    bad = dep.client.put(
        "/v1/tenants/acme/posture", json=change | {"posture": "panic"}, headers=dep.auth("alice")
    )
    assert _error(bad, 422, "invalid")["detail"][0]["field"] == "posture"


def test_the_posture_values_are_the_gate_s() -> None:
    from exoarmur.gate import POSTURES

    schema = PostureRequest.model_json_schema()
    assert tuple(schema["properties"]["posture"]["enum"]) == POSTURES


# -- the contract ---------------------------------------------------------------------------


def test_the_committed_openapi_document_is_current() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/openapi.json is stale: python -m exoarmur.server.openapi > docs/openapi.json"
    )


def test_the_served_openapi_document_is_the_committed_one(dep: Deployment) -> None:
    served = dep.client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == document()
    assert json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")) == document()


# -- the edges, one by one ------------------------------------------------------------------


def test_messages_without_a_field_keep_the_whole_text_as_the_rule() -> None:
    assert split_field("reason: is required").model_dump() == {
        "field": "reason",
        "rule": "is required",
    }
    assert split_field("no policy is active").model_dump() == {
        "field": None,
        "rule": "no policy is active",
    }
    problems = validation_problems([{"loc": ("scope",), "type": "value_error", "msg": "bad"}])
    assert problems[0].model_dump() == {"field": "scope", "rule": "bad"}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_the_middlewares_pass_other_scopes_through() -> None:
    seen: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    async def send(message: Any) -> None:
        raise AssertionError("nothing to send")

    for middleware in (LastResort(inner), BodyLimit(inner, 10)):
        anyio.run(middleware, {"type": "lifespan"}, _receive, send)
    anyio.run(
        BodyLimit(inner, 10),
        {"type": "http", "headers": [(b"content-length", b"x")]},
        _receive,
        send,
    )
    assert seen == ["lifespan", "lifespan", "http"]


def test_an_error_after_the_answer_started_is_left_to_the_server() -> None:
    sent: list[Any] = []

    async def late(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("too late to answer 500")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/v1/x"}
    with pytest.raises(RuntimeError, match="too late"):
        anyio.run(LastResort(late), scope, _receive, send)
    assert sent[0]["headers"] == [(b"cache-control", b"no-store")]


def test_the_openapi_module_prints_the_document(capsys: pytest.CaptureFixture[str]) -> None:
    openapi_main()
    assert capsys.readouterr().out == render()
