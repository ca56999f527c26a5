"""``GET …/intents/{id}/events``: an intent's events pushed as they land, and the evidence read."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exoarmur import reported
from exoarmur.clock import FixedClock
from exoarmur.evidence import verify_bundle_text
from exoarmur.model.event import INTENT_EXPIRED
from exoarmur.server import limits, stream
from test_server_support import DELETE, FORBIDDEN, Deployment, deploy, submit

TICKET = {"tenant": "acme", "action": "ticket.read", "target": "tickets/7", "safety_class": "A0"}


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _path(outcome: dict[str, Any]) -> str:
    return f"/v1/tenants/{outcome['tenant']}/intents/{outcome['intent_id']}/events"


def _messages(text: str) -> list[tuple[str | None, str, str]]:
    """(id, event, data) of each message; comments kept as ('', ':', text)."""
    found = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                found.append(("", ":", line))
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            found.append((fields.get("id"), fields["event"], fields["data"]))
    return found


def test_a_settled_intent_streams_its_events_then_its_outcome(dep: Deployment) -> None:
    denied = submit(dep, "agent-7", FORBIDDEN, 200)
    answer = dep.client.get(_path(denied), headers=dep.auth("agent-7"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    messages = _messages(answer.text)
    assert [m[1] for m in messages] == ["intent.recorded", "decision.recorded", "outcome"]
    assert json.loads(messages[-1][2])["status"] == "denied"
    first_seq = messages[0][0]
    assert first_seq is not None
    resumed = dep.client.get(
        _path(denied), headers=dep.auth("agent-7") | {"Last-Event-ID": first_seq}
    )
    assert [m[1] for m in _messages(resumed.text)] == ["decision.recorded", "outcome"]
    garbled = dep.client.get(_path(denied), headers=dep.auth("agent-7") | {"Last-Event-ID": "x"})
    assert len(_messages(garbled.text)) == 3


def test_a_pending_intent_streams_until_the_quorum_runs_it(
    dep: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "KEEP_ALIVE", 0.05)
    pending = submit(dep, "agent-7", DELETE, 202)
    received: list[str] = []

    def follow() -> None:
        with dep.client.stream("GET", _path(pending), headers=dep.auth("agent-7")) as answer:
            received.extend(answer.iter_text())

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.3)
    for approver in ("alice", "bob"):
        voted = dep.client.post(
            f"/v1/tenants/acme/intents/{pending['intent_id']}/approve",
            json={"reason": "ok"},
            headers=dep.auth(approver),
        )
        assert voted.status_code == 200, voted.text
    follower.join(30)
    messages = _messages("".join(received))
    kinds = [m[1] for m in messages]
    assert ":" in kinds  # keep-alive comments while it waited
    events = [kind for kind in kinds if kind != ":"]
    assert events[-3:] == ["execution.started", "execution.finished", "outcome"]
    assert json.loads(messages[-1][2])["status"] == "executed"


def test_who_may_follow_is_who_may_read_the_story(dep: Deployment) -> None:
    mine = submit(dep, "agent-7", FORBIDDEN, 200)
    assert dep.client.get(_path(mine), headers=dep.auth("agent-8")).status_code == 404
    assert dep.client.get(_path(mine), headers=dep.auth("mallory")).status_code == 403
    assert dep.client.get(_path(mine)).status_code == 401
    assert dep.client.get(_path(mine), headers=dep.auth("audrey")).status_code == 200


def test_open_streams_are_bounded_and_a_stopping_service_ends_them(dep: Deployment) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    app: Any = dep.client.app
    app.state.stream_slots = limits.InFlight(0, "event streams")
    busy = dep.client.get(_path(pending), headers=dep.auth("agent-7"))
    assert busy.status_code == 429
    app.state.stream_slots = limits.InFlight(4, "event streams")
    app.state.stopping = True
    ended = dep.client.get(_path(pending), headers=dep.auth("agent-7"))
    assert ended.status_code == 200
    assert "event: outcome" not in ended.text  # cut, not settled: the client reconnects
    assert app.state.stream_slots.count == 0


def test_an_overdue_approval_is_recorded_expired_on_the_way(dep: Deployment) -> None:
    pending = submit(dep, "agent-7", DELETE, 202)
    dep.governor.clock = FixedClock(datetime.now(UTC) + timedelta(days=2))
    answer = dep.client.get(_path(pending), headers=dep.auth("agent-7"))
    kinds = [m[1] for m in _messages(answer.text)]
    assert INTENT_EXPIRED in kinds
    assert json.loads(_messages(answer.text)[-1][2])["status"] == "expired"


def test_what_counts_as_settled(dep: Deployment) -> None:
    decided = submit(dep, "agent-7", TICKET, 200)
    story = dep.governor.story("acme", decided["intent_id"])
    assert stream.settled(dep.governor, story) is not None  # the caller carries it out now
    reported.start(dep.governor, "acme", decided["intent_id"], "agent-7")
    running = dep.governor.story("acme", decided["intent_id"])
    assert stream.settled(dep.governor, running) is None
    pending = submit(dep, "agent-7", DELETE, 202)
    events = dep.governor.story("acme", pending["intent_id"])
    assert stream.settled(dep.governor, events) is None


def test_the_evidence_of_a_correlation_is_exported_for_readers_of_the_ledger(
    dep: Deployment,
) -> None:
    denied = submit(dep, "agent-7", FORBIDDEN, 200)
    query = {"tenant": "acme", "correlation_id": denied["correlation_id"]}
    bundle = dep.client.get("/v1/evidence", params=query, headers=dep.auth("audrey"))
    assert bundle.status_code == 200, bundle.text
    verdict = verify_bundle_text(bundle.text)
    assert verdict.passed, verdict.failures
    assert (
        dep.client.get("/v1/evidence", params=query, headers=dep.auth("agent-7")).status_code == 403
    )
    assert (
        dep.client.get("/v1/evidence", params=query, headers=dep.auth("mallory")).status_code == 403
    )
    missing = query | {"correlation_id": "nothing-here"}
    assert (
        dep.client.get("/v1/evidence", params=missing, headers=dep.auth("audrey")).status_code
        == 404
    )
    # the audit stream id is the same id under the name the CLI's --audit-stream-id gives it
    stream = {"tenant": "acme", "audit_stream_id": denied["correlation_id"]}
    again = dep.client.get("/v1/evidence", params=stream, headers=dep.auth("audrey"))
    assert again.status_code == 200, again.text
    assert verify_bundle_text(again.text).passed
    # the refusals above grew the system log; the stream's own events are the same
    assert again.json()["events"] == bundle.json()["events"]
    unknown = stream | {"audit_stream_id": "nothing-here"}
    assert (
        dep.client.get("/v1/evidence", params=unknown, headers=dep.auth("audrey")).status_code
        == 404
    )
    for bad, field in (
        ({"tenant": "acme"}, "correlation_id"),
        (query | {"audit_stream_id": "another-one"}, "audit_stream_id"),
    ):
        refused = dep.client.get("/v1/evidence", params=bad, headers=dep.auth("audrey"))
        assert refused.status_code == 422, refused.text
        assert field in refused.text


def test_the_server_package_loads_its_parts_lazily() -> None:
    import exoarmur.server as server

    assert callable(server.serve)
    assert server.Limits is limits.Limits
    with pytest.raises(AttributeError, match="nothing"):
        _ = server.nothing  # type: ignore[attr-defined]
