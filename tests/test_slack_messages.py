"""Approval messages posted with the bot token and edited in place, against a fake Slack API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exoarmur.approvals import Vote
from exoarmur.clock import FixedClock
from exoarmur.errors import ConfigError
from exoarmur.executors import ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.integrations.slack import SlackSettings
from exoarmur.integrations.slack_messages import HttpSlackApi, SlackMessages
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import SYSTEM_LOG
from exoarmur.pipeline import LOCAL_ADMIN, Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from webhook_receiver import Receiver

POLICY = """
@id("two-approvers") @approval("2") @approval_window("600")
permit (principal, action == Action::"ticket.close", resource);
"""
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
TOKEN_ENV = "EXOARMUR_TEST_SLACK_BOT_TOKEN"
ANSWER = b'{"ok": true, "channel": "C0APPROVALS", "ts": "1780304400.000100"}'


class Closes:
    kind = "closes"

    def execute(self, intent: Any) -> dict[str, bool]:
        return {"closed": True}


def open_governor(path: Path, key: SigningKey, clock: FixedClock) -> Governor:
    executors = ExecutorRegistry()
    executors.bind("*", Closes())
    return Governor(
        ledger=Ledger(SqliteStore(path / "ledger.db"), key),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=clock,
        ids=SeededIds(5),
    )


def ask(governor: Governor, target: str) -> str:
    return governor.submit(
        {
            "tenant": "acme",
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "ticket.close",
            "target": target,
            "safety_class": "A2",
        }
    ).intent_id


def calls(slack: Receiver) -> list[tuple[str, dict[str, Any]]]:
    return [(r.path, json.loads(r.body)) for r in slack.requests]


def has_buttons(message: dict[str, Any]) -> bool:
    return any(block["type"] == "actions" for block in message["blocks"])


def records(governor: Governor, event_type: str) -> list[dict[str, Any]]:
    return [e.payload for e in governor.ledger.store.events(SYSTEM_LOG) if e.type == event_type]


def test_an_approval_message_is_edited_after_each_vote_and_at_quorum_expiry_and_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "xoxb-test")
    key = SigningKey.generate("t/slack-messages")
    clock = FixedClock(T0)
    governor = open_governor(tmp_path, key, clock)
    alice, _ = governor.add_principal("alice", "operator", ["acme"])
    bob, _ = governor.add_principal("bob", "operator", ["acme"])
    with Receiver(answer=ANSWER) as slack:
        messages = SlackMessages(governor, HttpSlackApi(slack.base, TOKEN_ENV), "C0APPROVALS")
        quorum, expiring = ask(governor, "tickets/1"), ask(governor, "tickets/2")
        assert sorted(messages.deliver_due().posted) == sorted([quorum, expiring])
        (path, posted), _ = calls(slack)
        assert path == "/chat.postMessage"
        assert slack.requests[0].headers["Authorization"] == "Bearer xoxb-test"
        assert posted["channel"] == "C0APPROVALS"
        assert has_buttons(posted)
        assert len(records(governor, "slack.message_posted")) == 2

        governor.vote("acme", quorum, alice, Vote.APPROVE, "one")
        assert messages.deliver_due().updated == [quorum]
        path, first_vote = calls(slack)[-1]
        assert path == "/chat.update"
        assert (first_vote["channel"], first_vote["ts"]) == ("C0APPROVALS", "1780304400.000100")
        assert has_buttons(first_vote)  # one of two: still open for votes
        assert "approve by alice" in json.dumps(first_vote)

        # a restart owes nothing more: the posts and the edit are in the ledger
        restarted = SlackMessages(governor, HttpSlackApi(slack.base, TOKEN_ENV), "C0APPROVALS")
        assert vars(restarted.deliver_due()) == {"posted": [], "updated": [], "failed": []}

        governor.vote("acme", quorum, bob, Vote.APPROVE, "two")
        assert restarted.deliver_due().updated == [quorum]  # quorum and result: one edit
        _path, at_quorum = calls(slack)[-1]
        assert not has_buttons(at_quorum)
        assert "status: approved" in json.dumps(at_quorum)

        clock.advance(timedelta(seconds=601))
        assert governor.expire_due("acme") == [expiring]
        assert restarted.deliver_due().updated == [expiring]
        _path, expired = calls(slack)[-1]
        assert "intent.expired" in expired["text"]
        assert not has_buttons(expired)

        killed = ask(governor, "tickets/3")
        restarted.deliver_due()
        governor.engage_killswitch("tenant:acme", "incident", LOCAL_ADMIN)
        governor.vote("acme", killed, alice, Vote.APPROVE, "one")
        governor.vote("acme", killed, bob, Vote.APPROVE, "two")
        assert restarted.deliver_due().updated == [killed]
        _path, blocked = calls(slack)[-1]
        assert "execution.blocked" in blocked["text"]
        sent = len(slack.requests)
        assert vars(restarted.deliver_due()) == {"posted": [], "updated": [], "failed": []}
        assert len(slack.requests) == sent
    updates = records(governor, "slack.message_updated")
    assert len(updates) == 4  # alice, the quorum, the expiry, the kill (its two votes at once)
    assert len({(u["intent_id"], u["through_seq"]) for u in updates}) == 4  # each edit once
    governor.close()


def test_a_slack_outage_is_retried_later_and_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "xoxb-test")
    clock = FixedClock(T0)
    governor = open_governor(tmp_path, SigningKey.generate("t/slack-messages"), clock)
    with Receiver(fail_first=1, answer=ANSWER) as slack:
        messages = SlackMessages(governor, HttpSlackApi(slack.base, TOKEN_ENV), "C0APPROVALS")
        intent_id = ask(governor, "tickets/9")
        before = governor.ledger.store.size(SYSTEM_LOG)
        assert messages.deliver_due().failed == [intent_id]
        assert governor.ledger.store.size(SYSTEM_LOG) == before
        assert messages.deliver_due().posted == []  # backing off: not yet
        clock.advance(timedelta(seconds=5))
        assert messages.deliver_due().posted == [intent_id]
        monkeypatch.delenv(TOKEN_ENV)
        governor.add_principal("alice", "operator", ["acme"])
        alice = governor.principals().get("alice")
        assert alice is not None
        governor.vote("acme", intent_id, alice, Vote.APPROVE, "one")
        assert messages.deliver_due().failed == [intent_id]  # no token: nothing sent
        monkeypatch.setenv(TOKEN_ENV, "xoxb-test")
        # settled before any pass saw it: nothing left to ask in Slack
        rejected = ask(governor, "tickets/10")
        governor.vote("acme", rejected, alice, Vote.REJECT, "no")
        clock.advance(timedelta(seconds=10))
        assert messages.deliver_due().posted == []
    assert len(slack.requests) == 3  # the post, and the edit after alice's vote
    nobody = SlackMessages(governor, HttpSlackApi("http://127.0.0.1:9", TOKEN_ENV), "C0X")
    assert nobody.deliver_due().failed == []  # every message is already posted
    waiting = ask(governor, "tickets/11")
    assert nobody.deliver_due().failed == [waiting]  # nothing listens there
    governor.close()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"channel": "C0X"}, "needs slack.bot_token_env"),
        ({"channel": "<!channel>", "bot_token_env": "T"}, "slack.channel"),
    ],
)
def test_the_channel_is_checked(table: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SlackSettings.from_config({"slack": {"signing_secret_file": "s", **table}})
    good = {"signing_secret_file": "s", "channel": "C0X", "bot_token_env": "T"}
    assert SlackSettings.from_config({"slack": good}).channel == "C0X"  # type: ignore[union-attr]
