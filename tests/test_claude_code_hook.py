"""Claude Code's PreToolUse hook, from recorded hook inputs of each tool kind.

The same inputs go through ``exoarmur hook claude-code`` (stdin → stdout)
and ``POST /v1/hooks/claude-code``; both answer in the hook protocol's own
``hookSpecificOutput`` and land in the same ledger under the same policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.errors import ConfigError, IntentError
from exoarmur.integrations.claude_code import hook_intent, tool_classes
from exoarmur.model.intent import SafetyClass
from exoarmur.principals import Principal
from test_server_support import Deployment, deploy

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };
@id("edits") permit (principal, action == Action::"claude-code.Edit", resource);
@id("writes") @approval("1") permit (principal, action == Action::"claude-code.Write", resource);
@id("no-rm-rf") forbid (principal, action == Action::"claude-code.Bash", resource)
when { context.params.command like "rm -rf*" };
"""
#: fixture → (decision, the class it was governed at)
EXPECTED = {
    "read": ("allow", "A0"),
    "glob": ("allow", "A0"),
    "grep": ("allow", "A0"),
    "edit": ("allow", "A1"),
    "write": ("ask", "A2"),
    "bash": ("deny", "A2"),
}
runner = CliRunner()


def recorded(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / f"pretooluse_{name}.json").read_text())
    return document


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    deployment = deploy(tmp_path / "home", policy=POLICY)
    (tmp_path / "agent.key").write_text(deployment.keys["agent-7"])
    yield deployment
    deployment.client.close()
    deployment.governor.close()


def _classes_recorded(dep: Deployment) -> dict[str, str]:
    store = dep.governor.ledger.store
    ids = store.intents_with("acme", "intent.recorded", ("none",))
    stories = [dep.governor.story("acme", i) for i in ids]
    return {
        s[0].payload["intent"]["action"]: s[0].payload["intent"]["safety_class"] for s in stories
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_command_hook_answers_each_tool_kind_in_the_hook_format(dep: Deployment, name: str) -> None:
    key_file = dep.home.parent / "agent.key"
    ran = runner.invoke(
        app,
        [
            "--home",
            str(dep.home),
            "hook",
            "claude-code",
            "--tenant",
            "acme",
            "--key-file",
            str(key_file),
        ],
        input=json.dumps(recorded(name)),
    )
    assert ran.exit_code == 0, ran.output
    output = json.loads(ran.stdout)["hookSpecificOutput"]
    decision, safety = EXPECTED[name]
    assert output["hookEventName"] == "PreToolUse"
    assert output["permissionDecision"] == decision
    assert "ExoArmur intent" in output["permissionDecisionReason"]
    tool = recorded(name)["tool_name"]
    assert _classes_recorded(dep) == {f"claude-code.{tool}": safety}
    if decision == "deny":
        assert "no-rm-rf" in output["permissionDecisionReason"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_http_hook_answers_like_the_command(dep: Deployment, name: str) -> None:
    answer = dep.client.post(
        "/v1/hooks/claude-code?tenant=acme", json=recorded(name), headers=dep.auth("agent-7")
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["hookSpecificOutput"]["permissionDecision"] == EXPECTED[name][0]


def test_http_hook_uses_the_configured_classes(dep: Deployment) -> None:
    dep.client.app.state.hook_classes = tool_classes({"claude_code": {"classes": {"Bash": "A3"}}})
    dep.client.post(
        "/v1/hooks/claude-code?tenant=acme", json=recorded("bash"), headers=dep.auth("agent-7")
    )
    assert _classes_recorded(dep) == {"claude-code.Bash": "A3"}


def test_a_hook_delivered_twice_is_one_intent(dep: Deployment) -> None:
    for _ in range(2):
        answer = dep.client.post(
            "/v1/hooks/claude-code?tenant=acme", json=recorded("edit"), headers=dep.auth("agent-7")
        )
        assert answer.json()["hookSpecificOutput"]["permissionDecision"] == "allow"
    ids = dep.governor.ledger.store.intents_with("acme", "intent.recorded", ("none",))
    assert len(ids) == 1


def test_http_hook_needs_an_agent_key_for_the_tenant(dep: Deployment) -> None:
    url = "/v1/hooks/claude-code?tenant=acme"
    assert dep.client.post(url, json=recorded("read")).status_code == 401
    assert (
        dep.client.post(url, json=recorded("read"), headers=dep.auth("agent-g")).status_code == 403
    )
    bad = dep.client.post(url, json={"tool_input": {}}, headers=dep.auth("agent-7"))
    assert bad.status_code == 422
    assert "tool_name" in bad.text
    assert dep.governor.ledger.store.intents_with("acme", "intent.recorded", ("none",)) == []


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        ("not json", "exoarmur:"),
        ('{"hook_event_name": "PostToolUse", "tool_name": "Bash"}', "hook_event_name"),
        ('{"tool_name": "Bash", "tool_input": "rm"}', "tool_input"),
        ("[]", "hook input"),
    ],
)
def test_bad_hook_input_blocks_the_tool_with_exit_2(
    dep: Deployment, stdin: str, expected: str
) -> None:
    key_file = dep.home.parent / "agent.key"
    ran = runner.invoke(
        app,
        [
            "--home",
            str(dep.home),
            "hook",
            "claude-code",
            "--tenant",
            "acme",
            "--key-file",
            str(key_file),
        ],
        input=stdin,
    )
    assert ran.exit_code == 2
    assert expected in ran.stderr
    assert dep.governor.ledger.store.intents_with("acme", "intent.recorded", ("none",)) == []


def test_classes_are_configurable_and_bad_ones_are_refused() -> None:
    classes = tool_classes({"claude_code": {"classes": {"Bash": "A3"}}})
    assert classes["Bash"] == SafetyClass.A3
    assert classes["Read"] == SafetyClass.A0
    for config, field in [
        ({"claude_code": {"classes": {"Bash": "A7"}}}, "claude_code.classes.Bash"),
        ({"claude_code": {"colour": 1}}, "colour"),
        ({"claude_code": []}, "claude_code"),
        ({"claude_code": {"classes": []}}, "classes"),
    ]:
        with pytest.raises(ConfigError, match=field):
            tool_classes(config)


def test_target_is_the_file_or_the_working_directory() -> None:
    agent = Principal("agent-7", "agent", ("acme",), "0" * 16)
    classes = tool_classes({})
    assert (
        hook_intent(recorded("edit"), "acme", agent, classes).target == "/home/dev/shop/src/cart.py"
    )
    assert hook_intent(recorded("bash"), "acme", agent, classes).target == "/home/dev/shop"
    spaced = recorded("bash") | {"cwd": "/home/my shop"}
    assert hook_intent(spaced, "acme", agent, classes).target == "claude-code"
    unknown = recorded("read") | {"tool_name": "mcp__github__create_issue"}
    assert hook_intent(unknown, "acme", agent, classes).safety_class == SafetyClass.A2
    with pytest.raises(IntentError, match="tool_name"):
        hook_intent(recorded("read") | {"tool_name": "no spaces"}, "acme", agent, classes)
