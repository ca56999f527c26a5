"""The MCP proxy end to end: a real ``mcp`` client → ``exoarmur mcp proxy`` → a real server.

The upstream (``tests/mcp_upstream.py``) logs every call that reaches a
tool, so "never reached" and "ran once" are counted where they happen.
Approvals and kill switches are recorded by a second governor on the same
data directory, as an operator's CLI or HTTP call would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from exoarmur.approvals import Vote
from exoarmur.cli import app
from exoarmur.errors import ConfigError
from exoarmur.home import open_governor
from exoarmur.integrations.mcp.mapping import class_from_annotations, load_settings
from exoarmur.model.intent import SafetyClass

pytestmark = pytest.mark.slow

runner = CliRunner()
UPSTREAM = Path(__file__).with_name("mcp_upstream.py")
EXOARMUR = str(Path(sys.executable).with_name("exoarmur"))

POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };
@id("slow-ok") permit (principal, action == Action::"mcp.notes.slow", resource);
@id("delete-needs-approval") @approval("1")
permit (principal, action == Action::"mcp.notes.delete_note", resource);
@id("no-secrets") forbid (principal, action, resource)
when { context.params has name && context.params.name == "secret" };
@id("no-slow-for-agent-9")
forbid (principal == Agent::"agent-9", action == Action::"mcp.notes.slow", resource);
"""

CONFIG = """
[mcp]
server = "notes"
hold_seconds = 1
upstream_env = { UPSTREAM_LOG = "TEST_UPSTREAM_LOG", UPSTREAM_TOKEN = "TEST_UPSTREAM_TOKEN" }
upstream_headers = { Authorization = "TEST_UPSTREAM_AUTH" }

[mcp.tools.delete_note]
target = "notes/archive"
safety_class = "A2"

[mcp.tools.slow]
safety_class = "A1"
"""


def cli(home: Path, *args: str) -> Any:
    return runner.invoke(app, ["--home", str(home), *args])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert cli(path, "init").exit_code == 0
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "main.cedar").write_text(POLICY)
    assert cli(path, "policy", "activate", str(policy)).exit_code == 0
    for name, role in [("agent-7", "agent"), ("agent-9", "agent"), ("alice", "operator")]:
        made = cli(path, "principal", "add", name, "--role", role, "--tenant", "acme", "--json")
        assert made.exit_code == 0, made.output
        (tmp_path / f"{name}.key").write_text(json.loads(made.stdout)["api_key"])
    config = path / "config.toml"
    config.write_text(CONFIG)
    config.chmod(0o600)
    return path


def upstream_calls(home: Path) -> list[dict[str, Any]]:
    log = home.parent / "upstream.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def proxy_env(home: Path) -> dict[str, str]:
    # Coverage's settings pass through, so that the child proxy is measured too.
    measured = {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}
    return measured | {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home.parent),
        "TEST_UPSTREAM_LOG": str(home.parent / "upstream.log"),
        "TEST_UPSTREAM_TOKEN": "upstream-secret-1",
        "TEST_UPSTREAM_AUTH": "Bearer upstream-secret-2",
    }


def proxy_args(home: Path, agent: str = "agent-7", *extra: str) -> list[str]:
    key_file = str(home.parent / f"{agent}.key")
    return ["--home", str(home), "mcp", "proxy", "--tenant", "acme", "--key-file", key_file, *extra]


@asynccontextmanager
async def session(home: Path, agent: str = "agent-7", *extra: str) -> Any:
    parameters = StdioServerParameters(
        command=EXOARMUR,
        args=[*proxy_args(home, agent, *extra), "--", sys.executable, str(UPSTREAM)],
        env=proxy_env(home),
    )
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def run(
    home: Path,
    scenario: Callable[[ClientSession], Awaitable[None]],
    agent: str = "agent-7",
    *extra: str,
) -> None:
    async def main() -> None:
        async with session(home, agent, *extra) as client:
            await scenario(client)

    anyio.run(main)


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def meta(result: types.CallToolResult) -> dict[str, Any]:
    return dict(result.meta or {})


def text(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


def operator_votes(home: Path, intent_id: str, intent_hash: str) -> None:
    with open_governor(home, recover=False) as governor:
        alice = governor.authenticate((home.parent / "alice.key").read_text().strip())
        governor.vote("acme", intent_id, alice, Vote.APPROVE, "looked at it", intent_hash)


def test_allowed_call_runs_with_the_proxy_s_credentials_and_denials_never_reach_the_tool(
    home: Path,
) -> None:
    async def scenario(client: ClientSession) -> None:
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == [
            "read_note",
            "delete_note",
            "slow",
            "exoarmur_status",
        ]
        # The caller's trace travels in the call's _meta (W3C traceparent) into the ledger.
        traced = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
        allowed = await client.call_tool("read_note", {"name": "todo"}, meta=traced)
        assert not allowed.is_error
        assert text(allowed) == "note todo; token seen: upstream-secret-1"
        assert meta(allowed)["exoarmur/status"] == "executed"
        assert meta(allowed)["exoarmur/result_hash"].startswith("sha256:")
        # The tool with an output schema, denied: the SDK client takes it without complaint.
        denied = await client.call_tool("delete_note", {"name": "secret"})
        assert denied.is_error
        assert denied.structured_content is None
        assert meta(denied)["exoarmur/status"] == "denied"
        assert meta(denied)["exoarmur/reasons"] == ["policy no-secrets"]
        assert meta(denied)["exoarmur/status"] == "denied"
        assert meta(denied)["exoarmur/intent_hash"].startswith("sha256:")
        assert "no-secrets" in text(denied)
        resources = await client.list_resources()
        assert [str(r.uri) for r in resources.resources] == ["note://readme"]
        read = await client.read_resource("note://readme")
        assert read.contents[0].text == "the readme"  # type: ignore[union-attr]

    run(home, scenario)
    assert upstream_calls(home) == [{"tool": "read_note", "arguments": {"name": "todo"}}]
    with open_governor(home, recover=False) as governor:
        stories = [
            governor.story("acme", i)
            for i in governor.ledger.store.intents_with("acme", "intent.recorded", ("none",))
        ]
    types_by_action = {s[0].payload["intent"]["action"]: [e.type for e in s] for s in stories}
    assert types_by_action["mcp.notes.read_note"][-2:] == [
        "execution.started",
        "execution.finished",
    ]
    assert "execution.started" not in types_by_action["mcp.notes.delete_note"]
    traces = {s[0].payload["intent"]["action"]: s[0].payload.get("trace_id") for s in stories}
    assert traces == {"mcp.notes.read_note": TRACE_ID, "mcp.notes.delete_note": None}


def test_pending_call_is_held_then_the_identical_call_after_approval_runs_once(home: Path) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def scenario(client: ClientSession) -> None:
        started = time.monotonic()
        held = await client.call_tool("delete_note", {"name": "old"}, progress_callback=on_progress)
        assert time.monotonic() - started >= 1.0  # held for hold_seconds, then answered
        assert held.is_error
        assert held.structured_content is None
        info = meta(held)
        assert info["exoarmur/status"] == "pending_approval"
        assert info["exoarmur/deadline"]
        assert progress, "the client was told the call is alive"
        again = await client.call_tool("delete_note", {"name": "old"})
        assert meta(again)["exoarmur/intent_id"] == info["exoarmur/intent_id"]
        status = await client.call_tool(
            "exoarmur_status", {"intent_id": info["exoarmur/intent_id"]}
        )
        assert meta(status)["exoarmur/status"] == "pending_approval"
        assert not status.is_error
        missing = await client.call_tool(
            "exoarmur_status", {"intent_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
        )
        assert meta(missing)["exoarmur/status"] == "unknown"
        unnamed = await client.call_tool("exoarmur_status", {})
        assert "intent_id" in text(unnamed)
        await anyio.to_thread.run_sync(
            operator_votes, home, info["exoarmur/intent_id"], info["exoarmur/intent_hash"]
        )
        done = await client.call_tool("delete_note", {"name": "old"})
        assert not done.is_error
        assert done.structured_content == {"deleted": "old"}
        assert meta(done)["exoarmur/intent_id"] == info["exoarmur/intent_id"]
        # Changed arguments are another intent; so is the same call once the first has run.
        other = await client.call_tool("delete_note", {"name": "older"})
        after = await client.call_tool("delete_note", {"name": "old"})
        ids = {meta(other)["exoarmur/intent_id"], meta(after)["exoarmur/intent_id"]}
        assert info["exoarmur/intent_id"] not in ids
        assert len(ids) == 2
        assert meta(after)["exoarmur/status"] == "pending_approval"

    run(home, scenario)
    assert upstream_calls(home) == [{"tool": "delete_note", "arguments": {"name": "old"}}]


def operator_rules_while_held(home: Path, vote: Vote) -> None:
    """Wait for the held call's intent, then vote on it as an operator would, elsewhere."""
    deadline = time.monotonic() + 20
    with open_governor(home, recover=False) as governor:
        alice = governor.authenticate((home.parent / "alice.key").read_text().strip())
        while not (pending := governor.pending("acme")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        (state,) = pending
        governor.vote("acme", state.intent.intent_id, alice, vote, "seen it", state.intent_hash)


@pytest.mark.parametrize(
    ("vote", "status"), [(Vote.APPROVE, "executed"), (Vote.REJECT, "rejected")]
)
def test_a_vote_during_the_hold_answers_the_held_call(home: Path, vote: Vote, status: str) -> None:
    async def scenario(client: ClientSession) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.to_thread.run_sync, operator_rules_while_held, home, vote)
            held = await client.call_tool("delete_note", {"name": "held"})
        assert meta(held)["exoarmur/status"] == status
        if vote == Vote.APPROVE:
            assert held.structured_content == {"deleted": "held"}
        else:
            assert held.is_error
            assert held.structured_content is None
            assert "seen it" in text(held)

    config = home / "config.toml"
    config.write_text(config.read_text().replace("hold_seconds = 1", "hold_seconds = 30"))
    run(home, scenario)
    expected = [{"tool": "delete_note", "arguments": {"name": "held"}}]
    assert upstream_calls(home) == (expected if vote == Vote.APPROVE else [])


def test_a_killed_switch_answers_the_deny_shape_naming_it(home: Path) -> None:
    with open_governor(home, recover=False) as governor:
        alice = governor.authenticate((home.parent / "alice.key").read_text().strip())
        governor.engage_killswitch("tenant:acme", "incident 42", alice)

    async def scenario(client: ClientSession) -> None:
        stopped = await client.call_tool("read_note", {"name": "todo"})
        assert stopped.is_error
        assert meta(stopped)["exoarmur/status"] == "denied"
        assert "kill" in text(stopped).lower()
        assert "incident 42" in text(stopped)

    run(home, scenario)
    assert upstream_calls(home) == []


def test_upstream_dying_mid_call_is_outcome_unknown_and_never_run_again(home: Path) -> None:
    async def crash(client: ClientSession) -> None:
        cut = await client.call_tool("slow", {"crash": True})
        assert cut.is_error
        assert meta(cut)["exoarmur/status"] == "outcome_unknown"

    run(home, crash)
    with open_governor(home) as governor:  # alone: recovery runs
        ids = governor.ledger.store.intents_with("acme", "intent.recorded", ("none",))
        (story,) = [governor.story("acme", i) for i in ids]
    assert [e.type for e in story][-2:] == ["execution.started", "execution.outcome_unknown"]

    async def retry(client: ClientSession) -> None:
        again = await client.call_tool("slow", {"crash": True})
        assert meta(again)["exoarmur/status"] == "outcome_unknown"
        assert meta(again)["exoarmur/intent_id"] == story[0].intent_id

    run(home, retry)
    assert upstream_calls(home) == [{"tool": "slow", "arguments": {"crash": True}}]


def test_upstream_dying_while_an_approved_intent_runs_is_outcome_unknown(home: Path) -> None:
    mapping = home.parent / "map.toml"
    mapping.write_text('[tools.slow]\nsafety_class = "A2"\n')  # the class floor asks one approval

    async def scenario(client: ClientSession) -> None:
        held = await client.call_tool("slow", {"crash": True})
        info = meta(held)
        assert info["exoarmur/status"] == "pending_approval"
        await anyio.to_thread.run_sync(
            operator_votes, home, info["exoarmur/intent_id"], info["exoarmur/intent_hash"]
        )
        cut = await client.call_tool("slow", {"crash": True})
        assert meta(cut)["exoarmur/status"] == "outcome_unknown"

    run(home, scenario, "agent-7", "--map", str(mapping))
    with open_governor(home) as governor:  # alone: recovery runs
        ids = governor.ledger.store.intents_with("acme", "intent.recorded", ("none",))
        (story,) = [governor.story("acme", i) for i in ids]
    types_seen = [e.type for e in story]
    assert "intent.approved" in types_seen
    assert types_seen[-2:] == ["execution.started", "execution.outcome_unknown"]
    assert upstream_calls(home) == [{"tool": "slow", "arguments": {"crash": True}}]


def test_tools_the_policy_always_denies_this_caller_are_not_listed(home: Path) -> None:
    async def scenario(client: ClientSession) -> None:
        listed = await client.list_tools()
        assert "slow" not in [t.name for t in listed.tools]
        refused = await client.call_tool("slow", {"seconds": 0})
        assert meta(refused)["exoarmur/status"] == "denied"

    run(home, scenario, agent="agent-9")
    assert upstream_calls(home) == []


def test_malformed_json_rpc_from_the_client_gets_an_error_and_the_proxy_survives(
    home: Path,
) -> None:
    proxy = subprocess.Popen(
        [EXOARMUR, *proxy_args(home), "--", sys.executable, str(UPSTREAM)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=proxy_env(home),
        text=True,
    )
    assert proxy.stdin is not None
    assert proxy.stdout is not None
    try:
        proxy.stdin.write("{this is not json\n")
        proxy.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 7, "method": 12}) + "\n")
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "0"},
            },
        }
        proxy.stdin.write(json.dumps(initialize) + "\n")
        proxy.stdin.flush()
        answers = []
        while not any(a.get("id") == 1 for a in answers):
            line = proxy.stdout.readline()
            assert line, proxy.stderr.read() if proxy.stderr else ""
            answers.append(json.loads(line))
        errors = [a for a in answers if "error" in a]
        assert errors, answers
        assert all(isinstance(a["error"]["message"], str) and a["error"]["message"] for a in errors)
        (ok,) = [a for a in answers if a.get("id") == 1]
        assert ok["result"]["serverInfo"]["name"] == "exoarmur-notes"
    finally:
        proxy.stdin.close()
        proxy.wait(timeout=20)
        for stream in (proxy.stdout, proxy.stderr):
            if stream is not None:
                stream.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int) -> Iterator[None]:
    """Run ``command`` until its port answers; stop it afterwards."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
    try:
        yield
    finally:
        # SIGINT: uvicorn stops gracefully and the interpreter exits normally
        # (so a measured child writes its coverage data).
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(params=["--stateless", "--sessions"])
def listening(home: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    port = _free_port()
    command = [
        EXOARMUR,
        *("--home", str(home), "mcp", "proxy", "--tenant", "acme"),
        *("--listen", f"127.0.0.1:{port}", request.param),
        "--",
        sys.executable,
        str(UPSTREAM),
    ]
    with serving(command, proxy_env(home), port):
        yield f"http://127.0.0.1:{port}/mcp"


def test_an_upstream_over_streamable_http_gets_the_proxy_s_own_credentials(home: Path) -> None:
    port = _free_port()
    upstream = [sys.executable, str(UPSTREAM), "--http", str(port)]
    env = proxy_env(home) | {"UPSTREAM_LOG": str(home.parent / "upstream.log")}
    url = f"http://127.0.0.1:{port}/mcp"

    async def main() -> None:
        parameters = StdioServerParameters(
            command=EXOARMUR,
            args=[*proxy_args(home), "--upstream-url", url],
            env=proxy_env(home),
        )
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            allowed = await client.call_tool("read_note", {"name": "far"})
            assert text(allowed) == "note far; token seen: Bearer upstream-secret-2"
            denied = await client.call_tool("read_note", {"name": "secret"})
            assert meta(denied)["exoarmur/status"] == "denied"

    with serving(upstream, env, port):
        anyio.run(main)
    assert upstream_calls(home) == [{"tool": "read_note", "arguments": {"name": "far"}}]


def test_the_upstream_is_either_a_command_or_a_url(home: Path) -> None:
    both = cli(home, *proxy_args(home)[2:], "--upstream-url", "http://x/mcp", "--", "cmd")
    assert both.exit_code == 2
    assert "upstream" in both.output
    neither = cli(home, *proxy_args(home)[2:])
    assert neither.exit_code == 2
    bad_listen = cli(home, *proxy_args(home)[2:], "--listen", "nowhere", "--", "cmd")
    assert bad_listen.exit_code == 2
    assert "--listen" in bad_listen.output
    bad_tenant = cli(home, "mcp", "proxy", "--tenant", "Not A Tenant", "--", "cmd")
    assert bad_tenant.exit_code == 2
    listen_with_key = cli(home, *proxy_args(home)[2:], "--listen", "127.0.0.1:1", "--", "cmd")
    assert listen_with_key.exit_code == 2
    assert "its own key" in listen_with_key.output
    operator = cli(home, *proxy_args(home, "alice")[2:], "--", sys.executable, str(UPSTREAM))
    assert operator.exit_code == 3
    assert "may not submit" in operator.output


def bearer(home: Path, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {(home.parent / f'{name}.key').read_text().strip()}"}


def test_streamable_http_listen_side_governs_each_client_as_its_own_key(
    home: Path, listening: str
) -> None:
    async def as_agent(name: str) -> list[str]:
        async with (
            httpx2.AsyncClient(headers=bearer(home, name)) as http,
            streamable_http_client(listening, http_client=http) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            allowed = await client.call_tool("read_note", {"name": name})
            assert meta(allowed)["exoarmur/status"] == "executed"
            denied = await client.call_tool("delete_note", {"name": "secret"})
            assert meta(denied)["exoarmur/status"] == "denied"
            assert denied.structured_content is None
            return [tool.name for tool in (await client.list_tools()).tools]

    assert "slow" in anyio.run(as_agent, "agent-7")
    assert "slow" not in anyio.run(as_agent, "agent-9")  # a forbid names agent-9
    assert upstream_calls(home) == [
        {"tool": "read_note", "arguments": {"name": "agent-7"}},
        {"tool": "read_note", "arguments": {"name": "agent-9"}},
    ]
    with open_governor(home, recover=False) as governor:
        ids = governor.ledger.store.intents_with("acme", "intent.recorded", ("none",))
        actors = {governor.story("acme", i)[0].actor["id"] for i in ids}
    assert actors == {"agent-7", "agent-9"}


def test_the_listen_side_refuses_clients_without_an_agent_key(home: Path, listening: str) -> None:
    hello = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx2.Client() as http:
        nobody = http.post(listening, json=hello, headers=headers)
        assert nobody.status_code == 401
        assert nobody.headers["WWW-Authenticate"] == "Bearer"
        wrong = http.post(listening, json=hello, headers=headers | {"Authorization": "Bearer x"})
        assert wrong.status_code == 401
        operator = http.post(listening, json=hello, headers=headers | bearer(home, "alice"))
        assert operator.status_code == 403
        assert "may not submit" in operator.json()["message"]
    assert upstream_calls(home) == []


def test_malformed_json_rpc_over_http_is_refused_and_the_proxy_goes_on(
    home: Path, listening: str
) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    headers |= bearer(home, "agent-7")
    with httpx2.Client() as http:
        garbage = http.post(listening, content=b"{this is not json", headers=headers)
        assert garbage.status_code == 400
        assert garbage.json()["error"]["code"] == types.PARSE_ERROR
        wrong = http.post(listening, json={"jsonrpc": "2.0", "id": 1, "method": 5}, headers=headers)
        assert wrong.status_code == 400

    async def main() -> None:
        async with (
            httpx2.AsyncClient(headers=bearer(home, "agent-7")) as client_http,
            streamable_http_client(listening, http_client=client_http) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            assert "read_note" in [t.name for t in (await client.list_tools()).tools]

    anyio.run(main)


# -- the mapping: pure -------------------------------------------------------


def test_annotations_are_hints_and_the_mapping_wins(tmp_path: Path) -> None:
    assert class_from_annotations(types.ToolAnnotations(read_only_hint=True)) == SafetyClass.A0
    assert class_from_annotations(types.ToolAnnotations(destructive_hint=True)) == SafetyClass.A3
    assert class_from_annotations(None) == SafetyClass.A2
    mapping = tmp_path / "map.toml"
    mapping.write_text('[tools.wipe]\nsafety_class = "A1"\ntarget = "db/x"\n')
    settings = load_settings("acme", {"mcp": {"server": "s"}}, mapping)
    lying = types.ToolAnnotations(read_only_hint=True)
    assert settings.rule_for("wipe", lying) == ("db/x", SafetyClass.A1)
    assert settings.rule_for("other", lying) == ("mcp:s/other", SafetyClass.A0)


@pytest.mark.parametrize(
    ("section", "names"),
    [
        ({"hold_seconds": 90}, "hold_seconds"),
        ({"hold_seconds": "soon"}, "hold_seconds"),
        ({"server": "9 lives"}, "server"),
        ({"colour": "red"}, "colour"),
        ({"tools": {"t": {"safety_class": "A9"}}}, "safety_class"),
        ({"tools": {"t": {"target": "has space"}}}, "target"),
        ({"tools": {"t": {"verb": "x"}}}, "verb"),
        ({"tools": {"t": "A0"}}, "mcp.tools.t"),
        ({"tools": "A0"}, "tools"),
        ({"upstream_env": {"TOKEN": "not a name"}}, "upstream_env.TOKEN"),
    ],
)
def test_bad_mapping_is_refused_naming_the_field(section: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        load_settings("acme", {"mcp": section})


def test_upstream_credentials_come_from_the_environment_and_must_be_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = load_settings("acme", {"mcp": {"upstream_headers": {"Authorization": "UP_AUTH"}}})
    monkeypatch.delenv("UP_AUTH", raising=False)
    with pytest.raises(ConfigError, match="UP_AUTH is not set"):
        settings.upstream_header_values()
    monkeypatch.setenv("UP_AUTH", "Bearer u")
    assert settings.upstream_header_values() == {"Authorization": "Bearer u"}
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings("acme", {}, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[")
    with pytest.raises(ConfigError, match="--map"):
        load_settings("acme", {}, bad)


def test_malformed_json_rpc_from_the_upstream_is_a_failed_call_and_the_proxy_goes_on(
    home: Path,
) -> None:
    garbling = str(UPSTREAM.with_name("mcp_garbling_upstream.py"))

    async def main() -> None:
        parameters = StdioServerParameters(
            command=EXOARMUR,
            args=[*proxy_args(home), "--server", "garbling", "--", sys.executable, garbling],
            env=proxy_env(home),
        )
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            broken = await client.call_tool("garble", {})
            assert broken.is_error
            assert meta(broken)["exoarmur/status"] == "failed"
            assert "not a tool result" in text(broken)
            fine = await client.call_tool("echo", {})
            assert text(fine) == "echo"

    anyio.run(main)


def test_the_overhead_benchmark_runs_and_checks_its_answers() -> None:
    script = UPSTREAM.parents[1] / "benchmarks" / "bench_mcp.py"
    ran = subprocess.run(
        [sys.executable, str(script), "--calls", "3", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=proxy_env(UPSTREAM.parent),
    )
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert set(result["rows"]) == {"bare", "proxied", "governor alone"}
    assert all(row["calls"] == 3 for row in result["rows"].values())
