"""The approval workflow through the command line: identities come from key files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app

runner = CliRunner()

POLICY = """
@id("reads") permit (principal, action, resource) when { context.safety_class == "A0" };
@id("prod-delete") @approval("2") @evidence("high")
permit (principal is Agent, action == Action::"demo.delete", resource)
when { context.params.env == "prod" };
@id("protected") forbid (principal, action, resource == Target::"db/customers");
"""

DELETE = {
    "tenant": "acme",
    "actor": {"id": "agent-7", "kind": "agent"},
    "action": "demo.delete",
    "target": "db/orders",
    "params": {"env": "prod"},
    "safety_class": "A2",
}


def cli(home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["--home", str(home), *args], input=stdin, env=env)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert cli(path, "init").exit_code == 0
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "main.cedar").write_text(POLICY)
    activated = cli(path, "policy", "activate", str(policy))
    assert activated.exit_code == 0, activated.output
    for name, role, tenant in [
        ("alice", "operator", "acme"),
        ("bob", "operator", "acme"),
        ("mallory", "operator", "globex"),
        ("audrey", "auditor", "acme"),
    ]:
        made = cli(path, "principal", "add", name, "--role", role, "--tenant", tenant, "--json")
        assert made.exit_code == 0, made.output
        (tmp_path / f"{name}.key").write_text(json.loads(made.stdout)["api_key"])
    return path


def key(home: Path, name: str) -> str:
    return str(home.parent / f"{name}.key")


def submit_delete(home: Path) -> str:
    result = cli(home, "submit", "-", "--json", stdin=json.dumps(DELETE))
    assert result.exit_code == 4, result.output
    return str(json.loads(result.stdout)["intent_id"])


def test_two_operators_approve_and_the_action_runs_once(home: Path) -> None:
    intent_id = submit_delete(home)
    waiting = json.loads(cli(home, "pending", "--json").stdout)
    assert [w["intent_id"] for w in waiting] == [intent_id]
    assert waiting[0]["quorum"] == 2
    assert intent_id in cli(home, "pending", "-t", "acme").stdout

    first = cli(
        home, "approve", intent_id, "-r", "CHG-1", "--key-file", key(home, "alice"), "--json"
    )
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["approval_status"] == "pending"
    env = {"EXOARMUR_API_KEY": Path(key(home, "bob")).read_text()}
    second = cli(home, "approve", intent_id, "--reason", "looks right", env=env)
    assert second.exit_code == 0, second.output
    assert "quorum reached" in second.stdout
    assert "executed" in second.stdout

    story = json.loads(cli(home, "show", intent_id, "--json").stdout)
    types = [e["type"] for e in story["events"]]
    assert types == [
        "intent.recorded",
        "decision.recorded",
        "approval.requested",
        "approval.granted",
        "approval.granted",
        "intent.approved",
        "execution.started",
        "execution.finished",
    ]
    assert story["outcome"]["status"] == "executed"
    assert story["state"]["approvers"] == ["alice", "bob"]
    assert story["outcome"]["decision"]["obligations"] == {"approval": "2", "evidence": "high"}
    text = cli(home, "show", intent_id, "-t", "acme")
    assert "approved by alice, bob" in text.stdout
    assert "obligations: approval=2, evidence=high" in text.stdout
    assert cli(home, "pending", "--json").stdout.strip() == "[]"


def test_reject_rejects(home: Path) -> None:
    intent_id = submit_delete(home)
    result = cli(
        home, "reject", intent_id, "-r", "not during freeze", "--key-file", key(home, "alice")
    )
    assert result.exit_code == 0  # the vote was recorded
    assert "rejected" in result.stdout
    late = cli(home, "approve", intent_id, "-r", "x", "--key-file", key(home, "bob"))
    assert late.exit_code == 1
    assert "rejected, not pending" in late.stdout


@pytest.mark.parametrize(
    ("who", "args", "code", "message"),
    [
        ("mallory", ["-t", "acme"], 3, "does not act for tenant acme"),
        ("audrey", [], 3, "may not approve in tenant acme"),
        (None, [], 3, "no credentials"),
    ],
)
def test_who_may_not_approve_is_refused(
    home: Path, who: str | None, args: list[str], code: int, message: str
) -> None:
    intent_id = submit_delete(home)
    key_args = ["--key-file", key(home, who)] if who else []
    result = cli(
        home, "approve", intent_id, "-r", "x", *key_args, *args, env={"EXOARMUR_API_KEY": ""}
    )
    assert result.exit_code == code, result.output
    assert message in result.output


def test_bad_vote_input_is_exit_2(home: Path, tmp_path: Path) -> None:
    intent_id = submit_delete(home)
    empty = cli(home, "approve", intent_id, "-r", " ", "--key-file", key(home, "alice"))
    assert empty.exit_code == 2
    assert "reason: is required" in empty.stderr
    missing = cli(home, "approve", intent_id, "-r", "x", "--key-file", str(tmp_path / "none"))
    assert missing.exit_code == 2
    forged = tmp_path / "forged.key"
    forged.write_text("exo_" + "0" * 16 + "_" + "A" * 43)
    assert cli(home, "approve", intent_id, "-r", "x", "--key-file", str(forged)).exit_code == 3


def test_principals_are_listed_without_keys_and_can_be_revoked(home: Path) -> None:
    listed = json.loads(cli(home, "principal", "list", "--json").stdout)
    assert {p["name"] for p in listed} == {"alice", "bob", "mallory", "audrey"}
    assert all("api_key" not in p and "key_hash" not in p for p in listed)
    assert cli(home, "principal", "revoke", "bob").exit_code == 0
    assert "revoked" in cli(home, "principal", "list").stdout
    intent_id = submit_delete(home)
    assert cli(home, "approve", intent_id, "-r", "x", "--key-file", key(home, "bob")).exit_code == 3
    dup = cli(home, "principal", "add", "bob", "--role", "operator", "-t", "acme")
    assert dup.exit_code == 2
    made = cli(home, "principal", "add", "ops", "--role", "admin")
    assert made.exit_code == 0
    assert made.stdout.strip().startswith("exo_")  # only the key on stdout
    assert "created" in made.stderr


def test_tenant_policy_overrides_the_global_one(home: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict"
    strict.mkdir()
    (strict / "deny.cedar").write_text('@id("nothing") forbid (principal, action, resource);')
    assert cli(home, "policy", "activate", str(strict), "--tenant", "acme").exit_code == 0
    read = dict(DELETE, action="fs.read", safety_class="A0", params={})
    assert cli(home, "submit", "-", stdin=json.dumps(read)).exit_code == 3
    assert cli(home, "submit", "-", stdin=json.dumps(dict(read, tenant="globex"))).exit_code == 0
    bad = cli(home, "policy", "activate", str(strict), "--tenant", "Not A Tenant")
    assert bad.exit_code == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.cedar").write_text("permit(")
    assert cli(home, "policy", "activate", str(broken)).exit_code == 2


def test_show_unknown_intent(home: Path) -> None:
    result = cli(home, "show", "01KDVDNA00E9J26YC765WVR3F0")
    assert result.exit_code == 1
    assert "no intent" in result.stderr


def test_tenant_a_cannot_read_list_approve_or_switch_tenant_b(home: Path) -> None:
    intent_id = submit_delete(home)  # in tenant acme
    mallory = {"EXOARMUR_API_KEY": Path(key(home, "mallory")).read_text()}  # globex only
    attempts = [
        ["show", intent_id, "-t", "acme"],
        ["pending", "-t", "acme"],
        ["log", "-t", "acme"],
        ["approve", intent_id, "-r", "x", "-t", "acme"],
        ["reject", intent_id, "-r", "x", "-t", "acme"],
        ["killswitch", "engage", "--scope", "tenant:acme", "-r", "x"],
        ["posture", "set", "acme", "lockdown", "-r", "x"],
    ]
    for args in attempts:
        result = cli(home, *args, env=mallory)
        assert result.exit_code == 3, (args, result.output)
        assert "acme" in result.stderr
    # unscoped reads only show mallory's own tenants: nothing of acme
    assert cli(home, "show", intent_id, env=mallory).exit_code == 1
    assert json.loads(cli(home, "pending", "--json", env=mallory).stdout) == []
    assert json.loads(cli(home, "log", "--json", env=mallory).stdout)["events"] == []
    refused = [
        e
        for e in json.loads(cli(home, "log", "-t", "_system", "--json").stdout)["events"]
        if e["type"] == "access.refused"
    ]
    assert len(refused) == len(attempts)
    assert {e["payload"]["principal"] for e in refused} == {"mallory"}
    # and acme's intent is untouched
    story = json.loads(cli(home, "show", intent_id, "--json").stdout)
    assert story["outcome"]["status"] == "pending_approval"


def test_an_operator_switches_its_own_tenant_from_the_cli(home: Path) -> None:
    alice = {"EXOARMUR_API_KEY": Path(key(home, "alice")).read_text()}
    engaged = cli(
        home, "killswitch", "engage", "--scope", "tenant:acme", "-r", "incident", env=alice
    )
    assert engaged.exit_code == 0, engaged.output
    assert "by alice" in engaged.stdout
    status = json.loads(cli(home, "killswitch", "status", "--json").stdout)
    assert [s["engaged_by"] for s in status] == ["alice"]
    assert "tenant:acme" in cli(home, "killswitch", "status", "-t", "acme").stdout
    denied = cli(home, "submit", "-", stdin=json.dumps(DELETE))
    assert denied.exit_code == 3
    assert "killswitch:tenant:acme" in denied.stdout
    assert (
        cli(
            home, "killswitch", "release", "--scope", "tenant:acme", "-r", "ok", env=alice
        ).exit_code
        == 0
    )
    assert "no kill switch engaged" in cli(home, "killswitch", "status").stdout
    assert (
        cli(home, "killswitch", "engage", "--scope", "global", "-r", "x", env=alice).exit_code == 3
    )
    assert (
        cli(
            home, "posture", "set", "acme", "heightened", "-r", "r", "--ttl", "60", env=alice
        ).exit_code
        == 0
    )
    shown = json.loads(cli(home, "posture", "show", "acme", "--json").stdout)
    assert shown["posture"] == "heightened"
    assert shown["set_by"] == "alice"
    assert "heightened" in cli(home, "posture", "show", "acme").stdout
    assert cli(home, "posture", "set", "acme", "panic", "-r", "r").exit_code == 2
