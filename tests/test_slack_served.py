"""End to end through ``exoarmur serve``: the outbox posts to a fake Slack, a click approves."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.integrations.slack import slack_signature
from served import prepare, serving
from webhook_receiver import Receiver

pytestmark = pytest.mark.slow
SIGNING_SECRET = b"slack-signing-secret-for-tests"


def _cli(home: Path, *args: str) -> None:
    answer = CliRunner().invoke(app, ["--home", str(home), *args])
    assert answer.exit_code == 0, answer.output


def _wait_for(receiver: Receiver, count: int) -> None:
    deadline = time.monotonic() + 60  # a loaded machine: wait for it, assert nothing on time
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, "the outbox delivered nothing"
        time.sleep(0.05)


def test_an_approval_posted_to_slack_is_approved_by_a_click(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXOARMUR_TEST_SLACK_BOT", "xoxb-served")
    slack_api = Receiver(answer=b'{"ok": true, "channel": "C0OPS", "ts": "1.000200"}')
    home = tmp_path / "home"
    keys = prepare(home)
    secret = tmp_path / "slack.secret"
    secret.write_bytes(SIGNING_SECRET)
    secret.chmod(0o600)
    with (home / "config.toml").open("a") as config:
        config.write(
            f'\n[server]\npublic_url = "https://exo.example"\n'
            f'\n[slack]\nsigning_secret_file = "{secret}"\n'
            f'bot_token_env = "EXOARMUR_TEST_SLACK_BOT"\nchannel = "C0OPS"\n'
            f'api_url = "{slack_api.base}"\n'
        )
    _cli(home, "principal", "bind-slack", "alice", "U0ALICE")
    with Receiver() as slack, slack_api:
        _cli(
            home,
            "webhook",
            "add",
            "slack",
            "--format",
            "slack",
            "--url",
            slack.url,
            "--event",
            "approval.requested",
            "--event",
            "intent.approved",
        )
        with serving(home, keys) as served:
            agent = {"Authorization": f"Bearer {keys['agent-7']}"}
            pending = httpx.post(
                f"{served.url}/v1/intents",
                json={
                    "tenant": "acme",
                    "action": "ticket.close",
                    "target": "tickets/7",
                    "safety_class": "A2",
                },
                headers=agent,
            )
            assert pending.status_code == 202, pending.text
            intent_id = pending.json()["intent_id"]
            assert pending.json()["console_url"].endswith(f"#intent-{intent_id}")
            _wait_for(slack, 1)
            message = json.loads(slack.requests[0].body)
            (approve, _reject) = message["blocks"][2]["elements"]
            payload = {
                "type": "block_actions",
                "user": {"id": "U0ALICE"},
                "actions": [{"action_id": approve["action_id"], "value": approve["value"]}],
            }
            body = urlencode({"payload": json.dumps(payload)}).encode()
            stamp = str(int(datetime.now(UTC).timestamp()))
            click = httpx.post(
                f"{served.url}/v1/integrations/slack/interactions",
                content=body,
                headers={
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": slack_signature(SIGNING_SECRET, stamp, body),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert click.status_code == 200, click.text
            assert "as alice was counted" in click.json()["text"]
            story = httpx.get(
                f"{served.url}/v1/tenants/acme/intents/{intent_id}",
                headers={"Authorization": f"Bearer {keys['alice']}"},
            ).json()
            assert story["approval"]["status"] == "approved"
            _wait_for(slack, 2)  # the decision is pushed too
            # the bot's own message was posted, then edited in place at the quorum
            _wait_for(slack_api, 2)
            assert [r.path for r in slack_api.requests] == ["/chat.postMessage", "/chat.update"]
            assert json.loads(slack_api.requests[1].body)["ts"] == "1.000200"
    assert "intent.approved" in json.loads(slack.requests[1].body)["text"]
