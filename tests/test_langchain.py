"""LangChain tools behind ExoArmur, invoked as LangChain invokes them (no model, no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, tool

from exoarmur.client import AsyncClient, Client
from exoarmur.integrations.langchain import govern_tools
from exoarmur.model.decision import OutcomeStatus
from exoarmur.pipeline import Governor
from governed_support import approve, governor_at, killed_mid_call, tool_home
from served import serving

CALLS: list[str] = []


@tool
def search(query: str, limit: int = 5) -> str:
    """Search the ticket system."""
    CALLS.append(f"search {query}")
    return f"3 tickets about {query}"


@tool
def delete_repo(name: str) -> str:
    """Delete a repository for good."""
    CALLS.append(f"delete {name}")
    return "deleted"


@tool
async def deploy(service: str, version: str) -> str:
    """Deploy a version of a service."""
    CALLS.append(f"deploy {service} {version}")
    return f"{service} at {version}"


CLASSES = {"search": "A0", "delete_repo": "A3", "deploy": "A2"}


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


def _governed(governor: Governor) -> dict[str, BaseTool]:
    tools = govern_tools(
        [search, delete_repo, deploy],
        governor,
        tenant="acme",
        actor="agent-7",
        safety_class=CLASSES,
        target={"deploy": lambda args: f"svc/{args['service']}"},
    )
    return {t.name: t for t in tools}


def test_names_descriptions_and_schemas_are_preserved(governor: Governor) -> None:
    for original, wrapped in zip(
        [search, delete_repo, deploy], _governed(governor).values(), strict=True
    ):
        assert wrapped.name == original.name
        assert wrapped.description == original.description
        assert wrapped.args == original.args
        assert (
            wrapped.tool_call_schema.model_json_schema()
            == original.tool_call_schema.model_json_schema()
        )


def test_an_allowed_call_runs_once(governor: Governor) -> None:
    tools = _governed(governor)
    assert tools["search"].invoke({"query": "printer"}) == "3 tickets about printer"
    message = tools["search"].invoke(
        {"name": "search", "args": {"query": "fire"}, "id": "call-1", "type": "tool_call"}
    )
    assert isinstance(message, ToolMessage)
    assert message.content == "3 tickets about fire"
    assert CALLS == ["search printer", "search fire"]
    (intent,) = {
        e.payload["intent"]["params"]["query"]: e
        for e in governor.ledger.store.events("acme", 0, governor.ledger.size("acme"))
        if e.type == "intent.recorded" and e.payload["intent"]["params"]["query"] == "fire"
    }.values()
    assert intent.payload["intent"]["action"] == "langchain.search"
    assert intent.payload["intent"]["params"] == {"query": "fire", "limit": 5}


def test_a_denied_call_never_reaches_the_tool_and_says_why(governor: Governor) -> None:
    answer = _governed(governor)["delete_repo"].invoke({"name": "main"})
    assert "ExoArmur denied this call" in answer
    assert CALLS == []


def test_a_pending_call_runs_once_after_approval_async(governor: Governor) -> None:
    wrapped = _governed(governor)["deploy"]

    async def agent_turns() -> None:
        first = await wrapped.ainvoke({"service": "api", "version": "2"})
        assert "waits for human approval" in first
        intent_id = first.split("(intent ")[1].split(" ")[0]
        assert governor.outcome("acme", intent_id).status == OutcomeStatus.PENDING_APPROVAL
        await asyncio.to_thread(approve, governor, "acme", intent_id)
        assert await wrapped.ainvoke({"service": "api", "version": "2"}) == "api at 2"
        assert governor.outcome("acme", intent_id).status == OutcomeStatus.EXECUTED

    asyncio.run(agent_turns())
    assert CALLS == ["deploy api 2"]


def test_a_sync_tool_through_the_async_path(governor: Governor) -> None:
    answer = asyncio.run(_governed(governor)["search"].ainvoke({"query": "q"}))
    assert answer == "3 tickets about q"


def test_a_killed_process_leaves_outcome_unknown(home: Path) -> None:
    unknown = killed_mid_call(
        home,
        """
        from langchain_core.tools import tool
        from exoarmur.integrations.langchain import govern_tools
        @tool
        def explode(reason: str) -> str:
            \"\"\"Kills its own process.\"\"\"
            die()
        (governed,) = govern_tools([explode], governor, tenant="acme", actor="agent-7",
                                   safety_class="A0")
        governed.invoke({"reason": "test"})
        """,
    )
    assert len(unknown) == 1


@pytest.mark.slow
def test_through_the_clients_against_a_real_service(tmp_path: Path) -> None:
    home = tool_home(tmp_path / "served")
    with governor_at(home) as governor:
        _, key = governor.add_principal("agent-7", "agent", ["acme"])
    with serving(home, {}) as served, Client(served.url, key, tenant="acme") as client:
        tools = {
            t.name: t
            for t in govern_tools(
                [search, delete_repo], client, tenant="acme", safety_class=CLASSES
            )
        }
        assert tools["search"].invoke({"query": "a"}) == "3 tickets about a"
        assert "denied" in tools["delete_repo"].invoke({"name": "x"})

        async def with_async_client() -> str:
            async with AsyncClient(served.url, key, tenant="acme") as aclient:
                (wrapped,) = govern_tools([search], aclient, tenant="acme", safety_class="A0")
                answer: str = await wrapped.ainvoke({"query": "b"})
                return answer

        assert asyncio.run(with_async_client()) == "3 tickets about b"
    assert CALLS == ["search a", "search b"]
