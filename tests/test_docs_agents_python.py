"""docs/agents.md, the Python sections: each snippet runs as written against a real service."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from exoarmur.client import Client
from governed_support import governor_at, tool_home
from served import Served, serving

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[1] / "docs" / "agents.md"
SECTIONS = [
    "Python client",
    "LangChain",
    "OpenAI Agents SDK",
    "Any Python callable",
    "Actions the caller carries out",
]


def snippet(heading: str, language: str = "python") -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(rf"```{language}\n(.*?)```", section, re.S)
    return block


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tool_home(tmp_path_factory.mktemp("doc") / "home")
    with governor_at(home) as governor:
        keys = {
            name: governor.add_principal(name, role, ["acme"])[1]
            for name, role in (("agent-7", "agent"), ("carol", "operator"))
        }
    with serving(home, keys) as service:
        yield service


def run(code: str, served: Served | None, cwd: Path, extra: str = "") -> str:
    env = os.environ.copy()
    if served is not None:
        env |= {"EXOARMUR_URL": served.url, "EXOARMUR_API_KEY": served.keys["agent-7"]}
    done = subprocess.run(
        [sys.executable, "-c", code + extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_snippets_are_short() -> None:
    for heading in SECTIONS:
        assert len(snippet(heading).splitlines()) < 20, heading


def test_python_client(served: Served, tmp_path: Path) -> None:
    def approve_when_asked() -> None:
        with Client(served.url, served.keys["carol"], tenant="acme") as carol:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for pending in carol.pending().pending:
                    if pending.intent.action == "svc.deploy":
                        carol.approve(pending.intent_id, "ok", intent_hash=pending.intent_hash)
                        return
                time.sleep(0.1)

    approver = threading.Thread(target=approve_when_asked)
    approver.start()
    try:
        assert run(snippet("Python client"), served, tmp_path).strip() == "approved"
    finally:
        approver.join(60)


def test_langchain(served: Served, tmp_path: Path) -> None:
    assert "waits for human approval" in run(snippet("LangChain"), served, tmp_path)


def test_openai_agents(served: Served, tmp_path: Path) -> None:
    invoke = """
import asyncio
from agents.tool_context import ToolContext
args = '{"query": "printer"}'
for tool in (agent.tools[0], guarded):
    context = ToolContext(context=None, tool_name=tool.name, tool_call_id="c", tool_arguments=args)
    print(asyncio.run(tool.on_invoke_tool(context, args)))
"""
    out = run(snippet("OpenAI Agents SDK"), served, tmp_path, invoke)
    assert out.splitlines() == ["3 tickets about printer"] * 2


def test_any_python_callable(tmp_path: Path) -> None:
    tool_home(tmp_path / ".exoarmur")
    assert "waits for human approval" in run(snippet("Any Python callable"), None, tmp_path)


def test_actions_the_caller_carries_out(served: Served, tmp_path: Path) -> None:
    assert run(snippet("Actions the caller carries out"), served, tmp_path).strip() == "executed"


def test_exoarmur_report_commands(tmp_path: Path) -> None:
    home = tool_home(tmp_path / "home")
    with governor_at(home) as governor:
        outcome = governor.submit(
            {
                "tenant": "acme",
                "action": "ticket.read",
                "target": "t/7",
                "safety_class": "A0",
                "actor": {"id": "agent-7", "kind": "agent"},
            }
        )
    (tmp_path / "result.json").write_text('{"title": "printer on fire"}', encoding="utf-8")
    env = os.environ | {
        "INTENT_ID": outcome.intent_id,
        "EXOARMUR_HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", snippet("Actions the caller carries out", "sh")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the page makes its own intent (ticket.read on tickets/7) and reports it
    with governor_at(home) as governor:
        assert governor.outcome("acme", outcome.intent_id).status == "decided"
        finished = [
            e for e in governor.ledger.store.events("acme") if e.type == "execution.finished"
        ]
        assert [e.payload["status"] for e in finished] == ["succeeded"]
        assert governor.outcome("acme", str(finished[0].intent_id)).status == "executed"
