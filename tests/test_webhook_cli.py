"""``exoarmur webhook add|list|remove|deliver`` and ``principal bind-slack`` on a real home."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.home import open_governor
from exoarmur.model.event import SYSTEM_LOG, WEBHOOK_DELIVERED
from webhook_receiver import Receiver

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    answer = runner.invoke(app, ["--home", str(home), *args])
    return answer.exit_code, answer.output


def test_webhooks_are_configured_delivered_and_removed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "init")[0] == 0
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    with Receiver() as receiver:
        code, out = cli(
            home, "webhook", "add", "ops", "--url", receiver.url, "--secret-file", str(secret)
        )
        assert code == 2, out
        assert "chmod 600" in out
        secret.chmod(0o600)
        code, out = cli(
            home, "webhook", "add", "ops", "--url", receiver.url, "--secret-file", str(secret)
        )
        assert code == 0, out
        assert (
            cli(home, "webhook", "add", "ops", "--url", receiver.url, "--secret-env", "X")[0] == 2
        )
        code, out = cli(home, "webhook", "list", "--json")
        (listed,) = json.loads(out)
        assert listed["name"] == "ops"
        assert "s3cret" not in out
        code, out = cli(home, "killswitch", "engage", "--scope", "global", "--reason", "drill")
        assert code == 0, out
        code, out = cli(home, "webhook", "deliver", "--json")
        assert json.loads(out) == {"delivered": 1, "failed": 0, "gave_up": 0}
        code, out = cli(home, "webhook", "deliver")
        assert "delivered 0, failed 0" in out
        assert "ops" in cli(home, "webhook", "list")[1]
    (request,) = receiver.requests
    assert json.loads(request.body)["event"]["type"] == "killswitch.engaged"
    assert "removed webhook ops" in cli(home, "webhook", "remove", "ops")[1]
    assert cli(home, "webhook", "remove", "ops")[0] != 0
    assert json.loads(cli(home, "webhook", "list", "--json")[1]) == []
    with open_governor(home) as governor:
        recorded = [
            e for e in governor.ledger.store.events(SYSTEM_LOG) if e.type == WEBHOOK_DELIVERED
        ]
    assert len(recorded) == 1


def test_a_slack_user_is_bound_to_a_principal_and_unbound(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "init")[0] == 0
    assert cli(home, "principal", "add", "alice", "--role", "operator", "-t", "acme")[0] == 0
    code, out = cli(home, "principal", "bind-slack", "alice", "U0ALICE", "--json")
    assert code == 0, out
    assert json.loads(out) == {"principal": "alice", "slack_user": "U0ALICE"}
    assert cli(home, "principal", "bind-slack", "nobody", "U0BOB")[0] != 0
    assert cli(home, "principal", "bind-slack", "alice", "not-an-id")[0] == 2
    assert cli(home, "principal", "unbind-slack", "U0ALICE")[0] == 0
    assert cli(home, "principal", "unbind-slack", "U0ALICE")[0] != 0
