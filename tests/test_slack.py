"""Approve from Slack: signed button presses vote as the bound principal, through the vote path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode

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
from webhook_receiver import Receiver

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


def press(
    governor: Governor,
    intent_id: str,
    user: str,
    action: str = APPROVE_ACTION,
    trigger_id: str | None = None,
) -> bytes:
    value = {
        "tenant": "acme",
        "intent_id": intent_id,
        "hash": governor.pending("acme")[0].intent_hash,
    }
    payload: dict[str, object] = {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "team_id": "T0001"},
        "team": {"id": "T0001"},
        "actions": [{"action_id": action, "block_id": "exoarmur.vote", "value": json.dumps(value)}],
        "response_url": "https://hooks.slack.com/actions/T0001/1/x",
    } | ({} if trigger_id is None else {"trigger_id": trigger_id})
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
    [("unsigned", 401), ("wrong secret", 401), ("stale", 401), ("tampered", 401)],
)
def test_unauthenticated_clicks_record_nothing(setting, case: str, status: int) -> None:  # type: ignore[no-untyped-def]
    governor, client, clock, intent_id = setting
    body = press(governor, intent_id, "U0ALICE")
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


def refusals(governor: Governor) -> list[dict[str, object]]:
    events = governor.ledger.store.events(SYSTEM_LOG)
    return [e.payload for e in events if e.type == "access.refused"]


@pytest.mark.parametrize("case", ["unbound", "revoked", "auditor", "wrong tenant"])
def test_a_signed_click_by_someone_who_may_not_vote_is_refused_and_recorded(  # type: ignore[no-untyped-def]
    setting, case: str
) -> None:
    governor, client, clock, intent_id = setting
    bindings = SlackBindings(governor)
    user = "U0MALLORY"
    if case == "revoked":
        user = "U0ALICE"
        governor.revoke_principal("alice")
    elif case in ("auditor", "wrong tenant"):
        role, tenants = ("auditor", ["acme"]) if case == "auditor" else ("operator", ["globex"])
        governor.add_principal("carol", role, tenants)
        bindings.bind("carol", "U0CAROL", "local-admin")
        user = "U0CAROL"
    body = press(governor, intent_id, user)
    answer = client.post(URL, content=body, headers=signed(body, clock.now()))
    assert answer.status_code == 403, answer.text
    assert governor.pending("acme")[0].approvers == ()
    if case in ("unbound", "revoked"):
        (refusal,) = refusals(governor)
        assert refusal["source"] == "testclient"
        assert f"Slack user {user}" in str(refusal["detail"])
        assert refusal["attempted"] == f"slack approve acme/{intent_id}"
    elif case == "auditor":
        assert "approval.refused" in [e.type for e in governor.story("acme", intent_id)]
    else:
        (refusal,) = refusals(governor)
        assert refusal["principal"] == "carol"
        assert refusal["tenant"] == "acme"


def test_a_flood_of_unbound_clicks_is_counted_not_recorded_one_by_one(setting) -> None:  # type: ignore[no-untyped-def]
    governor, client, clock, intent_id = setting
    body = press(governor, intent_id, "U0MALLORY")
    for _ in range(25):
        answer = client.post(URL, content=body, headers=signed(body, clock.now()))
        assert answer.status_code == 403
    assert len(refusals(governor)) == 10  # the refusal budget's per-source default
    clock.advance(timedelta(seconds=300))
    client.post(URL, content=body, headers=signed(body, clock.now()))
    (counted,) = [
        e.payload
        for e in governor.ledger.store.events(SYSTEM_LOG)
        if e.type == "access.refused.counted"
    ]
    assert counted["counted"] == 15
    flood = {"source": "testclient", "key_id": "slack:U0MALLORY", "count": 15}
    assert counted["sources"] == [flood]


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


def submitted_reason(click_body: bytes, reason: str, user: str = "U0ALICE") -> bytes:
    """The view_submission Slack sends when the reject form is submitted."""
    (raw,) = parse_qs(click_body.decode())["payload"]
    value = json.loads(raw)["actions"][0]["value"]
    payload = {
        "type": "view_submission",
        "user": {"id": user},
        "view": {
            "callback_id": "exoarmur.reject_reason",
            "private_metadata": value,
            "state": {
                "values": {
                    "exoarmur.reason": {"reason": {"type": "plain_text_input", "value": reason}}
                }
            },
        },
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_reject_asks_why_in_a_modal_and_records_the_reason(
    setting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    governor, client, clock, intent_id = setting
    monkeypatch.setenv("EXOARMUR_TEST_SLACK_TOKEN", "xoxb-test")
    with Receiver(answer=b'{"ok": true}') as slack_api:
        client.app.state.slack = SlackSettings(  # type: ignore[attr-defined]
            client.app.state.slack.signing_secret_file,  # type: ignore[attr-defined]
            "EXOARMUR_TEST_SLACK_TOKEN",
            slack_api.base,
        )
        click = press(governor, intent_id, "U0ALICE", REJECT_ACTION, trigger_id="123.456.abc")
        before = sizes(governor)
        answer = client.post(URL, content=click, headers=signed(click, clock.now()))
        assert answer.status_code == 200, answer.text
        assert "Say why" in answer.json()["text"]
        assert sizes(governor) == before  # nothing is voted until the reason comes
        (opened,) = slack_api.requests
        assert opened.path == "/views.open"
        assert opened.headers["Authorization"] == "Bearer xoxb-test"
        view = json.loads(opened.body)
        assert view["trigger_id"] == "123.456.abc"
        assert json.loads(view["view"]["private_metadata"])["intent_id"] == intent_id

        blank = submitted_reason(click, "   ")
        refused = client.post(URL, content=blank, headers=signed(blank, clock.now()))
        assert "exoarmur.reason" in refused.json()["errors"]
        assert sizes(governor) == before

        why = submitted_reason(click, "not during the freeze")
        done = client.post(URL, content=why, headers=signed(why, clock.now()))
        assert done.status_code == 200, done.text
        assert done.json() == {}  # Slack closes the form
    (rejected,) = [e for e in governor.story("acme", intent_id) if e.type == "approval.rejected"]
    assert rejected.payload["approver"] == "alice"
    assert rejected.payload["reason"] == "not during the freeze"


def test_when_slack_does_not_open_the_form_nothing_is_recorded(
    setting, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    governor, client, clock, intent_id = setting
    monkeypatch.setenv("EXOARMUR_TEST_SLACK_TOKEN", "xoxb-test")
    with Receiver(answer=b'{"ok": false, "error": "expired_trigger_id"}') as slack_api:
        client.app.state.slack = SlackSettings(  # type: ignore[attr-defined]
            client.app.state.slack.signing_secret_file,  # type: ignore[attr-defined]
            "EXOARMUR_TEST_SLACK_TOKEN",
            slack_api.base,
        )
        click = press(governor, intent_id, "U0ALICE", REJECT_ACTION, trigger_id="1.2.x")
        before = sizes(governor)
        answer = client.post(URL, content=click, headers=signed(click, clock.now()))
    assert answer.status_code == 503
    assert sizes(governor) == before
