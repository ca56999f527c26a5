"""OpenAI Agents SDK tools behind ExoArmur, run by the SDK's own Runner with a scripted model.

The model is a ``Model`` that replays fixed turns (no network, no model
call): first the tool calls, then a final message. Tools run exactly as the
Runner runs them, guardrails included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    FunctionTool,
    Model,
    ModelResponse,
    RunConfig,
    Runner,
    Usage,
    function_tool,
    set_tracing_disabled,
)
from agents.items import ToolCallOutputItem
from agents.tool_context import ToolContext
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from exoarmur.client import Client
from exoarmur.integrations.openai_agents import govern_function_tool, tool_guardrails
from exoarmur.model.decision import OutcomeStatus
from exoarmur.pipeline import Governor
from governed_support import approve, governor_at, killed_mid_call, tool_home
from served import serving

set_tracing_disabled(True)
CALLS: list[str] = []


def search(query: str) -> str:
    """Search the ticket system."""
    CALLS.append(f"search {query}")
    return f"3 tickets about {query}"


def delete_repo(name: str) -> str:
    """Delete a repository for good."""
    CALLS.append(f"delete {name}")
    return "deleted"


def deploy(service: str, version: str) -> str:
    """Deploy a version of a service."""
    CALLS.append(f"deploy {service} {version}")
    return f"{service} at {version}"


class Scripted(Model):
    """A model that answers with fixed turns: tool calls, then a final text."""

    def __init__(self, *calls: tuple[str, dict[str, Any]]) -> None:
        self.turns: list[list[Any]] = [
            [
                ResponseFunctionToolCall(
                    arguments=json.dumps(arguments),
                    call_id=f"call_{n}",
                    name=name,
                    type="function_call",
                    id=f"fc_{n}",
                    status="completed",
                )
                for n, (name, arguments) in enumerate(calls)
            ],
            [
                ResponseOutputMessage(
                    id="msg_1",
                    content=[ResponseOutputText(text="done", type="output_text", annotations=[])],
                    role="assistant",
                    status="completed",
                    type="message",
                )
            ],
        ]

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


def _run(tools: list[FunctionTool], *calls: tuple[str, dict[str, Any]]) -> list[str]:
    """Run an agent over ``calls``; what each tool call answered the model, in order."""
    agent = Agent(name="ops", tools=list(tools), model=Scripted(*calls))
    result = asyncio.run(Runner.run(agent, "go", run_config=RunConfig(tracing_disabled=True)))
    return [str(item.output) for item in result.new_items if isinstance(item, ToolCallOutputItem)]


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    CALLS.clear()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tool_home(tmp_path / "home")


@pytest.fixture
def governor(home: Path) -> Iterator[Governor]:
    with governor_at(home) as governor:
        yield governor


def _wrapped(governor: Governor) -> list[FunctionTool]:
    def wrap(fn: Any, safety_class: str) -> FunctionTool:
        return govern_function_tool(
            function_tool(fn), governor, tenant="acme", actor="agent-7", safety_class=safety_class
        )

    return [wrap(search, "A0"), wrap(delete_repo, "A3"), wrap(deploy, "A2")]


def test_the_wrapper_keeps_name_description_and_schema(governor: Governor) -> None:
    original = function_tool(search)
    wrapped = govern_function_tool(original, governor, tenant="acme", actor="a", safety_class="A0")
    assert (wrapped.name, wrapped.description) == (original.name, original.description)
    assert wrapped.params_json_schema == original.params_json_schema
    assert wrapped.on_invoke_tool is not original.on_invoke_tool


def test_allowed_runs_once_denied_never_and_pending_tells_the_model(governor: Governor) -> None:
    outputs = _run(
        _wrapped(governor),
        ("search", {"query": "printer"}),
        ("delete_repo", {"name": "main"}),
        ("deploy", {"service": "api", "version": "2"}),
    )
    allowed, denied, pending = outputs
    assert allowed == "3 tickets about printer"
    assert "ExoArmur denied this call" in denied
    assert "waits for human approval" in pending
    assert CALLS == ["search printer"]


def test_a_pending_call_runs_once_when_the_agent_calls_again_after_approval(
    governor: Governor,
) -> None:
    tools = _wrapped(governor)
    call = ("deploy", {"service": "api", "version": "2"})
    (pending,) = _run(tools, call)
    intent_id = pending.split("(intent ")[1].split(" ")[0]
    approve(governor, "acme", intent_id)
    assert _run(tools, call) == ["api at 2"]
    assert _run(tools, call) != ["api at 2"]  # once: the same call again is a new request
    assert CALLS == ["deploy api 2"]
    assert governor.outcome("acme", intent_id).status == OutcomeStatus.EXECUTED


def test_arguments_that_are_not_an_object_never_run(tmp_path: Path) -> None:
    async def invoke() -> Any:
        with governor_at(tool_home(tmp_path / "h")) as governor:
            wrapped = govern_function_tool(
                function_tool(search), governor, tenant="acme", actor="a", safety_class="A0"
            )
            context = ToolContext(
                context=None, tool_name="search", tool_call_id="c", tool_arguments="[1]"
            )
            return await wrapped.on_invoke_tool(context, "[1]")

    assert "not a JSON object" in asyncio.run(invoke())
    assert CALLS == []


def test_guardrails_govern_an_unwrapped_tool(governor: Governor) -> None:
    decide, report = tool_guardrails(
        governor,
        tenant="acme",
        actor="agent-7",
        safety_class={"search": "A0", "delete_repo": "A3", "deploy": "A2"},
    )

    def guarded(fn: Any) -> FunctionTool:
        return function_tool(fn, tool_input_guardrails=[decide], tool_output_guardrails=[report])

    tools = [guarded(search), guarded(delete_repo), guarded(deploy)]
    outputs = _run(
        tools,
        ("search", {"query": "printer"}),
        ("delete_repo", {"name": "main"}),
        ("deploy", {"service": "api", "version": "2"}),
    )
    assert outputs[0] == "3 tickets about printer"
    assert "ExoArmur denied this call" in outputs[1]
    assert "waits for human approval" in outputs[2]
    assert CALLS == ["search printer"]
    intent_id = outputs[2].split("(intent ")[1].split(" ")[0]
    approve(governor, "acme", intent_id)
    assert _run(tools, ("deploy", {"service": "api", "version": "2"})) == ["api at 2"]
    assert governor.outcome("acme", intent_id).status == OutcomeStatus.EXECUTED
    store = governor.ledger.store
    finished = [
        e for e in store.events("acme", 0, store.size("acme")) if e.type == "execution.finished"
    ]
    assert [e.payload["result"] for e in finished] == ["3 tickets about printer", "api at 2"]


def test_a_killed_process_leaves_outcome_unknown(home: Path) -> None:
    unknown = killed_mid_call(
        home,
        """
        import asyncio
        from agents import function_tool
        from agents.tool_context import ToolContext
        from exoarmur.integrations.openai_agents import govern_function_tool
        def explode(reason: str) -> str:
            \"\"\"Kills its own process.\"\"\"
            die()
        tool = govern_function_tool(function_tool(explode), governor, tenant="acme",
                                    actor="agent-7", safety_class="A0")
        args = '{"reason": "test"}'
        context = ToolContext(context=None, tool_name="explode", tool_call_id="c",
                              tool_arguments=args)
        asyncio.run(tool.on_invoke_tool(context, args))
        """,
    )
    assert len(unknown) == 1


@pytest.mark.slow
def test_through_the_client_against_a_real_service(tmp_path: Path) -> None:
    home = tool_home(tmp_path / "served")
    with governor_at(home) as governor:
        _, key = governor.add_principal("agent-7", "agent", ["acme"])
    with serving(home, {}) as served, Client(served.url, key, tenant="acme") as client:
        tools = [
            govern_function_tool(function_tool(search), client, tenant="acme", safety_class="A0"),
            govern_function_tool(
                function_tool(delete_repo), client, tenant="acme", safety_class="A3"
            ),
        ]
        allowed, denied = _run(tools, ("search", {"query": "a"}), ("delete_repo", {"name": "x"}))
    assert allowed == "3 tickets about a"
    assert "denied" in denied
    assert CALLS == ["search a"]
