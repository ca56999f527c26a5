"""docs/agents.md: each snippet is run as written (the MCP upstream is the tests' server)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from test_claude_code_hook import FIXTURES
from test_mcp_proxy import UPSTREAM, home, proxy_env, upstream_calls  # noqa: F401 - fixture

DOC = Path(__file__).resolve().parents[1] / "docs" / "agents.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_snippets_are_short() -> None:
    for block in blocks("json") + blocks("toml"):
        assert len(block.splitlines()) < 20


def test_the_mcp_servers_entry_runs_the_proxy(home: Path) -> None:  # noqa: F811
    entry = json.loads(blocks("json")[0])["mcpServers"]["notes"]
    args: list[str] = entry["args"]
    upstream_at = args.index("--") + 1
    assert args[upstream_at:] == ["python", "notes_server.py"]
    args = [*args[:upstream_at], sys.executable, str(UPSTREAM)]
    (home.parent / "agent.key").write_text((home.parent / "agent-7.key").read_text())
    env = proxy_env(home) | {"EXOARMUR_HOME": str(home)}
    command = str(Path(sys.executable).with_name(entry["command"]))

    async def main() -> None:
        parameters = StdioServerParameters(command=command, args=args, env=env, cwd=home.parent)
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            result = await client.call_tool("read_note", {"name": "doc"})
            assert (result.meta or {})["exoarmur/status"] == "executed"

    anyio.run(main)
    assert upstream_calls(home) == [{"tool": "read_note", "arguments": {"name": "doc"}}]


def test_the_mcp_config_section_parses(home: Path) -> None:  # noqa: F811
    from exoarmur.integrations.mcp.mapping import load_settings

    config: dict[str, Any] = tomllib.loads(blocks("toml")[0])
    settings = load_settings("acme", config)
    assert settings.tools["delete_note"].target == "notes/archive"
    assert settings.upstream_env == {"NOTES_TOKEN": "PROXY_NOTES_TOKEN"}


def test_the_settings_json_hook_runs_as_written(home: Path) -> None:  # noqa: F811
    settings = json.loads(blocks("json")[1])
    (hook,) = settings["hooks"]["PreToolUse"][0]["hooks"]
    assert hook["type"] == "command"
    words = shlex.split(hook["command"])
    words[0] = str(Path(sys.executable).with_name(words[0]))
    (home.parent / "agent.key").write_text((home.parent / "agent-7.key").read_text())
    env = {"PATH": os.environ.get("PATH", ""), "EXOARMUR_HOME": str(home)}
    ran = subprocess.run(
        words,
        input=(FIXTURES / "pretooluse_read.json").read_text(),
        capture_output=True,
        text=True,
        cwd=home.parent,
        env=env,
        check=False,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    output = json.loads(ran.stdout)["hookSpecificOutput"]
    assert output["permissionDecision"] == "allow"
