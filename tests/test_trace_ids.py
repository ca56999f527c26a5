"""The caller's W3C trace id, recorded beside the intent where verify and replay cover it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from exoarmur.cli import app as cli
from exoarmur.client import Client
from exoarmur.errors import IntentError
from exoarmur.model.event import INTENT_RECORDED
from exoarmur.model.trace import trace_id_of
from exoarmur.replay import replay
from test_server_support import DELETE, READ, Deployment, deploy

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (f"00-{TRACE}-{PARENT}-01", TRACE),
        (f"00-{TRACE}-{PARENT}-00", TRACE),  # not sampled: still the caller's trace
        (f" 00-{TRACE}-{PARENT}-01\t", TRACE),  # optional whitespace around a header value
        (f"01-{TRACE}-{PARENT}-01-later-fields", TRACE),  # a later version may add fields
        (f"00-{TRACE}-{PARENT}-01-more", None),  # version 00 has exactly four fields
        (f"ff-{TRACE}-{PARENT}-01", None),  # version ff is forbidden
        (f"00-{'0' * 32}-{PARENT}-01", None),  # all-zero trace id
        (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id
        (f"00-{TRACE.upper()}-{PARENT}-01", None),  # upper-case hex
        (f"00-{TRACE[:-1]}-{PARENT}-01", None),
        ("<script>alert(1)</script>", None),
        ("", None),
        (None, None),
    ],
)
def test_a_traceparent_names_its_trace_only_when_well_formed(
    traceparent: str | None, expected: str | None
) -> None:
    assert trace_id_of(traceparent) == expected


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home")
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _recorded(dep: Deployment, intent_id: str) -> dict[str, object]:
    (first,) = [e for e in dep.governor.story("acme", intent_id) if e.type == INTENT_RECORDED]
    return first.payload


def test_a_submission_s_traceparent_is_recorded_and_a_malformed_one_ignored(
    dep: Deployment,
) -> None:
    auth = dep.auth("agent-7")
    traced = dep.client.post(
        "/v1/intents", json=DELETE, headers=auth | {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    )
    assert traced.status_code == 202
    malformed = dep.client.post(
        "/v1/intents",
        json=READ | {"target": "reports/q4.txt"},
        headers=auth | {"traceparent": f"00-{TRACE.upper()}-{PARENT}-01"},
    )
    assert malformed.status_code == 200  # ignored, as Trace Context asks: not a 400
    plain = dep.client.post("/v1/intents", json=READ, headers=auth)
    recorded = _recorded(dep, traced.json()["intent_id"])
    assert recorded["trace_id"] == TRACE
    assert "trace_id" not in _recorded(dep, malformed.json()["intent_id"])
    assert "trace_id" not in _recorded(dep, plain.json()["intent_id"])  # old ledgers' shape
    # The trace id is beside the intent, not in it: the hash approvers bind to is unchanged.
    assert traced.json()["intent_hash"] == recorded["intent_hash"]
    story = dep.client.get(f"/v1/tenants/acme/intents/{traced.json()['intent_id']}", headers=auth)
    assert story.json()["events"][0]["payload"]["trace_id"] == TRACE
    # Covered by the leaf hash: the ledger verifies and replays with it.
    assert dep.governor.ledger.verify("acme").ok
    replayed = replay(dep.governor.ledger.store, "acme")
    assert replayed.divergences == ()
    assert replayed.intents == 3


class InProcess(httpx.BaseTransport):
    """The SDK's requests, answered by the deployment's app in this process."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.dep.client.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def test_the_sdk_sends_its_traceparent_and_show_prints_the_trace(dep: Deployment) -> None:
    with Client("http://testserver", dep.keys["agent-7"], transport=InProcess(dep)) as agent:
        outcome = agent.submit(READ, traceparent=f"00-{TRACE}-{PARENT}-01")
    assert _recorded(dep, outcome.intent_id)["trace_id"] == TRACE
    shown = CliRunner().invoke(cli, ["--home", str(dep.home), "show", outcome.intent_id])
    assert shown.exit_code == 0, shown.output
    assert f"trace {TRACE}" in shown.output


def test_the_sdk_propagates_the_current_span_s_trace(dep: Deployment) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with (
        Client("http://testserver", dep.keys["agent-7"], transport=InProcess(dep)) as agent,
        tracer.start_as_current_span("agent-step") as span,
    ):
        outcome = agent.submit(READ)
    expected = format(span.get_span_context().trace_id, "032x")
    assert _recorded(dep, outcome.intent_id)["trace_id"] == expected


def test_an_embedder_s_malformed_trace_id_is_refused_and_nothing_written(dep: Deployment) -> None:
    size = dep.size("acme")
    with pytest.raises(IntentError, match="trace_id: must be 32 lower-case hex"):
        dep.governor.submit(READ | {"actor": {"id": "a", "kind": "agent"}}, trace_id="nope")
    assert dep.size("acme") == size


def test_plans_and_coding_agent_hooks_record_the_trace_too(dep: Deployment) -> None:
    traced = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
    door_net = {"preset": "door-net", "targets": ["identity:eve"]}
    plans = "/v1/tenants/acme/plans"
    plan = dep.client.post(plans, json=door_net, headers=dep.auth("alice") | traced)
    assert plan.status_code == 200, plan.text
    assert _recorded(dep, plan.json()["plan_id"])["trace_id"] == TRACE
    hook = {
        "hook_event_name": "PreToolUse",
        "tool_name": "Read",
        "tool_input": {"file_path": "/home/dev/shop/notes.txt"},
        "session_id": "s-1",
        "tool_use_id": "t-1",
        "cwd": "/home/dev/shop",
    }
    url = "/v1/hooks/claude-code?tenant=acme"
    answer = dep.client.post(url, json=hook, headers=dep.auth("agent-7") | traced)
    assert answer.status_code == 200, answer.text
    store = dep.governor.ledger.store
    ids = store.intents_with("acme", "intent.recorded", ("none",))
    hooked = [i for i in ids if i != plan.json()["plan_id"]]
    assert [_recorded(dep, i)["trace_id"] for i in hooked] == [TRACE]
