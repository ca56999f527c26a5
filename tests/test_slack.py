"""Approve from Slack: signed button presses vote as the bound principal, through the vote path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from exoarmur.clock import FixedClock
from exoarmur.errors import ConfigError, InputError, NotFound
from exoarmur.ids import SeededIds
from exoarmur.integrations.slack import (
    SlackBindings,
    SlackSettings,
    parse_click,
    slack_signature,
)
from exoarmur.integrations.webhooks.messages import APPROVE_ACTION, REJECT_ACTION
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import APPROVAL_GRANTED, SYSTEM_LOG
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.server import create_app

POLICY = """
@id("two-approvers") @approval("2")
permit (principal, action == Action::"ticket.close", resource);
"""
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
SIGNING_SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
URL = "/v1/integrations/slack/interactions"


@pytest.fixture
def setting(tmp_path: Path) -> tuple[Governor, TestClient, FixedClock, str]:
    clock = FixedClock(T0)
    governor = Governor(
        ledger=Ledger(SqliteStore(tmp_path / "ledger.db"), SigningKey.generate("t/slack")),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        clock=clock,
        ids=SeededIds(3),
    )
    for name in ("alice", "bob"):
        governor.add_principal(name, "operator", ["acme"])
    bindings = SlackBindings(governor)
    bindings.bind("alice", "U0ALICE", "local-admin")
    intent_id = governor.submit(
        {
            "tenant": "acme",
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "ticket.close",
            "target": "tickets/42",
            "safety_class": "A2",
        }
    ).intent_id
    secret = tmp_path / "slack.secret"
    secret.write_bytes(SIGNING_SECRET)
    secret.chmod(0o600)
    app = create_app(governor)
    app.state.slack = SlackSettings(str(secret))
    with TestClient(app) as client:
        yield governor, client, clock, intent_id
    governor.close()


def press(governor: Governor, intent_id: str, user: str, action: str = APPROVE_ACTION) -> bytes:
    value = {
        "tenant": "acme",
        "intent_id": intent_id,
        "hash": governor.pending("acme")[0].intent_hash,
    }
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T0001"},
        "team": {"id": "T0001"},
        "actions": [{"action_id": action, "block_id": "exoarmur.vote", "value": json.dumps(value)}],
        "response_url": "https://hooks.slack.com/actions/T0001/1/x",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, at: datetime, secret: bytes = SIGNING_SECRET) -> dict[str, str]:
    stamp = str(int(at.timestamp()))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(secret, stamp, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def sizes(governor: Governor) -> dict[str, int]:
    store = governor.ledger.store
    return {log: store.size(log) for log in store.tenants()}


def test_a_signed_click_by_a_bound_user_is_that_principals_vote(setting) -> None:  # type: ignore[no-untyped-def]
    governor, client, clock, intent_id = setting
    body = press(governor, intent_id, "U0ALICE")
    answer = client.post(URL, content=body, headers=signed(body, clock.now()))
    assert answer.status_code == 200, answer.text
    assert "as alice was counted" in answer.json()["text"]
    (granted,) = [e for e in governor.story("acme", intent_id) if e.type == APPROVAL_GRANTED]
    assert granted.payload["approver"] == "alice"
    # one person, one vote: the same click again is refused by the vote path, not counted
    again = client.post(URL, content=body, headers=signed(body, clock.now()))
    assert "was refused" in again.json()["text"]
    assert governor.pending("acme")[0].approvers == ("alice",)


@pytest.mark.parametrize(
    ("case", "status"),
    [("unsigned", 401), ("wrong secret", 401), ("stale", 401), ("unbound", 403), ("tampered", 401)],
)
def test_refused_clicks_record_nothing(setting, case: str, status: int) -> None:  # type: ignore[no-untyped-def]
    governor, client, clock, intent_id = setting
    body = press(governor, intent_id, "U0MALLORY" if case == "unbound" else "U0ALICE")
    headers = signed(body, clock.now())
    if case == "unsigned":
        del headers["X-Slack-Signature"]
    elif case == "wrong secret":
        headers = signed(body, clock.now(), b"not-the-secret")
    elif case == "stale":
        headers = signed(body, clock.now() - timedelta(seconds=301))
    elif case == "tampered":
        body = press(governor, intent_id, "U0ALICE", REJECT_ACTION)
    before = sizes(governor)
    answer = client.post(URL, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert sizes(governor) == before


def test_bindings_are_recorded_and_checked(setting) -> None:  # type: ignore[no-untyped-def]
    governor, _client, _clock, _intent = setting
    bindings = SlackBindings(governor)
    assert bindings.current() == {"U0ALICE": "alice"}
    with pytest.raises(InputError, match="slack_user_id"):
        bindings.bind("bob", "alice", "local-admin")
    with pytest.raises(NotFound, match="no active principal"):
        bindings.bind("nobody", "U0BOB", "local-admin")
    bindings.unbind("U0ALICE", "local-admin")
    assert bindings.current() == {}
    types = [e.type for e in governor.ledger.store.events(SYSTEM_LOG)]
    assert types.count("slack.user_bound") == 1
    assert types.count("slack.user_unbound") == 1


def test_a_payload_that_is_no_button_press_is_bad_input() -> None:
    with pytest.raises(InputError, match="payload"):
        parse_click(b"payload=%7B%7D")
    with pytest.raises(InputError, match="payload"):
        parse_click(b"not a form")


def test_the_slack_table_is_checked_and_its_absence_answers_404(tmp_path: Path) -> None:
    assert SlackSettings.from_config({}) is None
    assert SlackSettings.from_config({"slack": {"signing_secret_file": "/s"}}) == SlackSettings(
        "/s"
    )
    for bad in ({"signing_secret": "x"}, {"signing_secret_file": ""}, "x"):
        with pytest.raises(ConfigError, match="slack"):
            SlackSettings.from_config({"slack": bad})
    governor = Governor(
        ledger=Ledger(SqliteStore(tmp_path / "ledger.db"), SigningKey.generate("t/slack")),
        clock=FixedClock(T0),
        ids=SeededIds(4),
    )
    with TestClient(create_app(governor)) as client:
        assert client.post(URL, content=b"payload=%7B%7D").status_code == 404
    governor.close()
