"""Approvals from Slack: the interaction callback's checks, and who a Slack user votes as.

Slack signs every request to an app with the app's signing secret:
``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<timestamp>:<raw body>")>``
with ``X-Slack-Request-Timestamp``; a timestamp more than five minutes from
our (injected) clock is refused, so a captured click cannot be replayed.

A Slack user votes only as the principal an admin bound it to: bindings are
``slack.user_bound`` / ``slack.user_unbound`` events in the system log, so
who could vote from Slack, and since when, is in the ledger. A click names
the intent and the hash the message showed; the vote goes through the
governor's one vote path, so quorum, separation of duties and expiry are
exactly those of every other vote.

Reject asks for a reason when a bot token is configured: the click opens a
modal (Slack's ``views.open``, at the configured API URL) and the reason
typed there arrives as a signed ``view_submission``, recorded with the vote.
Without one, a reject click records a fixed reason naming the Slack user.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from ..approvals import Vote
from ..errors import AuthenticationError, ConfigError, ExoArmurError, InputError, NotFound
from ..model.event import SLACK_USER_BOUND, SLACK_USER_UNBOUND, SYSTEM_LOG, Event
from ..pipeline import Governor
from .console_link import check_public_url
from .webhooks.messages import APPROVE_ACTION, REJECT_ACTION
from .webhooks.subscriptions import read_secret_file

SIGNATURE_HEADER: Final = "X-Slack-Signature"
TIMESTAMP_HEADER: Final = "X-Slack-Request-Timestamp"
#: Slack's own advice: refuse requests older than five minutes
TOLERANCE_SECONDS: Final = 300
#: workspace (U…) and org-wide (W…) user ids
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_VOTES: Final = {APPROVE_ACTION: Vote.APPROVE, REJECT_ACTION: Vote.REJECT}
REASON_CALLBACK: Final = "exoarmur.reject_reason"
REASON_BLOCK: Final = "exoarmur.reason"
REASON_INPUT: Final = "reason"
DEFAULT_API_URL: Final = "https://slack.com/api"
#: Slack's trigger ids live three seconds: a slower answer cannot open the modal anyway
_API_TIMEOUT_SECONDS: Final = 3.0


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def verify_request(secret: bytes, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
    """Return if Slack signed ``body`` within the last five minutes; AuthenticationError if not."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower())
    presented = lowered.get(SIGNATURE_HEADER.lower())
    if stamp is None or presented is None:
        raise AuthenticationError("Slack request: signature or timestamp header missing")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise AuthenticationError(f"{TIMESTAMP_HEADER}: must be unix seconds")
    if abs(now.timestamp() - int(stamp)) > TOLERANCE_SECONDS:
        raise AuthenticationError(f"{TIMESTAMP_HEADER}: more than five minutes from now (stale)")
    expected = slack_signature(secret, stamp, body)
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise AuthenticationError(f"{SIGNATURE_HEADER}: does not match the body")


@dataclass(frozen=True)
class Click:
    """One button press on an approval message."""

    slack_user: str
    vote: Vote
    tenant: str
    intent_id: str
    intent_hash: str
    #: Slack's handle for opening a modal in answer to this click (block_actions only)
    trigger_id: str | None = None
    #: what the person typed in the reject modal (view_submission only)
    reason: str | None = None

    @property
    def bound_value(self) -> str:
        """The intent and hash, as a button's value or a modal's private_metadata."""
        return json.dumps(
            {"tenant": self.tenant, "intent_id": self.intent_id, "hash": self.intent_hash}
        )


def parse_click(body: bytes) -> Click:
    """A button press (``block_actions``) or a reject reason (``view_submission``)."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        (raw,) = fields["payload"]
        payload = json.loads(raw)
        user = str(payload["user"]["id"])
        if not _USER_ID.match(user):  # it names a refusal's source: only Slack's own ids
            raise InputError(f"payload.user.id: {user[:40]!r} is not a Slack user id")
        kind = payload.get("type")
        if kind == "view_submission":
            view = payload["view"]
            if view["callback_id"] != REASON_CALLBACK:
                raise KeyError("view.callback_id")
            value = json.loads(view["private_metadata"])
            reason = view["state"]["values"][REASON_BLOCK][REASON_INPUT]["value"]
            vote, trigger = Vote.REJECT, None
        elif kind == "block_actions":
            (action,) = [a for a in payload["actions"] if a.get("action_id") in _VOTES]
            value = json.loads(action["value"])
            vote, reason, trigger = _VOTES[action["action_id"]], None, payload.get("trigger_id")
        else:
            raise InputError("payload.type: must be block_actions or view_submission")
        return Click(
            slack_user=user,
            vote=vote,
            tenant=str(value["tenant"]),
            intent_id=str(value["intent_id"]),
            intent_hash=str(value["hash"]),
            trigger_id=None if trigger is None else str(trigger),
            reason=None if reason is None else str(reason),
        )
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"payload: not an ExoArmur approval interaction ({exc!r})") from None


def reason_modal(click: Click) -> dict[str, Any]:
    """The modal a reject click opens: one required text input, the intent in its metadata."""
    return {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": click.bound_value,
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why? (recorded with your vote)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "multiline": True,
                    "min_length": 1,
                    "max_length": 2000,
                },
            }
        ],
    }


@dataclass(frozen=True)
class SlackSettings:
    """``[slack]`` of config.toml: the app's signing secret, its bot token, where to post."""

    signing_secret_file: str
    #: the environment variable holding the bot token (``xoxb-…``); None: no reason modal
    bot_token_env: str | None = None
    api_url: str = DEFAULT_API_URL
    #: where the bot posts approval messages it then edits in place (needs the bot token)
    channel: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlackSettings | None:
        table = config.get("slack")
        if table is None:
            return None
        allowed = {"signing_secret_file", "bot_token_env", "api_url", "channel"}
        if not isinstance(table, Mapping) or not set(table) <= allowed:
            raise ConfigError(f"slack: must be a table of {', '.join(sorted(allowed))}")
        path = table.get("signing_secret_file")
        if not isinstance(path, str) or not path:
            raise ConfigError("slack.signing_secret_file: must be a path")
        token_env = table.get("bot_token_env")
        if token_env is not None and not (isinstance(token_env, str) and token_env.isidentifier()):
            raise ConfigError("slack.bot_token_env: must be an environment variable name")
        api_url = check_public_url(table.get("api_url", DEFAULT_API_URL), "slack.api_url")
        channel = table.get("channel")
        if channel is not None:
            from .slack_messages import CHANNEL

            if not isinstance(channel, str) or not CHANNEL.match(channel):
                raise ConfigError("slack.channel: must be a channel id (C…) or #name")
            if token_env is None:
                raise ConfigError("slack.channel: needs slack.bot_token_env (the bot posts)")
        return cls(path, token_env, api_url, channel)

    def secret(self) -> bytes:
        return read_secret_file(Path(self.signing_secret_file), "slack.signing_secret_file")

    def open_reason_modal(self, click: Click) -> bool:
        """Ask Slack to open the reject modal; False when no bot token or trigger allows it."""
        if self.bot_token_env is None or click.trigger_id is None:
            return False
        token = os.environ.get(self.bot_token_env)
        if not token:
            raise ConfigError(f"slack.bot_token_env: ${self.bot_token_env} is not set")
        import httpx

        body = {"trigger_id": click.trigger_id, "view": reason_modal(click)}
        try:
            with httpx.Client(timeout=_API_TIMEOUT_SECONDS, trust_env=False) as client:
                answer = client.post(
                    f"{self.api_url}/views.open",
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
            opened = answer.is_success and answer.json().get("ok") is True
        except (httpx.HTTPError, ValueError, AttributeError):
            opened = False
        if not opened:
            raise SlackUnavailable("Slack did not open the reject form; nothing was recorded")
        return True


class SlackUnavailable(ExoArmurError):
    """Slack's API did not do what we asked (the click is not counted; try again)."""


class SlackBindings:
    """Slack user id -> principal name, folded from the system log (cached by its size)."""

    def __init__(self, governor: Governor) -> None:
        self.governor = governor
        self._lock = threading.Lock()
        self._seen = 0
        self._bound: dict[str, str] = {}

    def current(self) -> dict[str, str]:
        store = self.governor.ledger.store
        with self._lock:
            size = store.size(SYSTEM_LOG)
            for event in store.events(SYSTEM_LOG, self._seen, size):
                _apply(self._bound, event)
            self._seen = size
            return dict(self._bound)

    def bind(self, principal: str, slack_user: str, actor: str) -> Event:
        if not _USER_ID.match(slack_user):
            raise InputError(f"slack_user_id: {slack_user!r} is not a Slack user id (U… or W…)")
        if self.governor.principals().get(principal) is None:
            raise NotFound(f"no active principal named {principal!r}")
        return self._record(
            SLACK_USER_BOUND, {"slack_user": slack_user, "principal": principal}, actor
        )

    def unbind(self, slack_user: str, actor: str) -> Event:
        if slack_user not in self.current():
            raise NotFound(f"Slack user {slack_user!r} is bound to no principal")
        return self._record(SLACK_USER_UNBOUND, {"slack_user": slack_user}, actor)

    def _record(self, event_type: str, payload: dict[str, Any], actor: str) -> Event:
        draft = self.governor.drafts.for_log(
            SYSTEM_LOG, event_type, payload, {"id": actor, "kind": "operator"}
        )
        return self.governor.state.append_one(SYSTEM_LOG, draft)


def _apply(bound: dict[str, str], event: Event) -> None:
    if event.type == SLACK_USER_BOUND:
        bound[event.payload["slack_user"]] = event.payload["principal"]
    elif event.type == SLACK_USER_UNBOUND:
        bound.pop(event.payload["slack_user"], None)
