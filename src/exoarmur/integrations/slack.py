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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs

from ..approvals import Vote
from ..errors import AuthenticationError, ConfigError, InputError, NotFound
from ..model.event import SLACK_USER_BOUND, SLACK_USER_UNBOUND, SYSTEM_LOG, Event
from ..pipeline import Governor
from .webhooks.messages import APPROVE_ACTION, REJECT_ACTION
from .webhooks.subscriptions import read_secret_file

SIGNATURE_HEADER: Final = "X-Slack-Signature"
TIMESTAMP_HEADER: Final = "X-Slack-Request-Timestamp"
#: Slack's own advice: refuse requests older than five minutes
TOLERANCE_SECONDS: Final = 300
#: workspace (U…) and org-wide (W…) user ids
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_VOTES: Final = {APPROVE_ACTION: Vote.APPROVE, REJECT_ACTION: Vote.REJECT}


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


def parse_click(body: bytes) -> Click:
    """The button press in a ``block_actions`` interaction (form field ``payload``)."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        (raw,) = fields["payload"]
        payload = json.loads(raw)
        user = payload["user"]["id"]
        (action,) = [a for a in payload["actions"] if a.get("action_id") in _VOTES]
        value = json.loads(action["value"])
        click = Click(
            slack_user=str(user),
            vote=_VOTES[action["action_id"]],
            tenant=str(value["tenant"]),
            intent_id=str(value["intent_id"]),
            intent_hash=str(value["hash"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"payload: not an ExoArmur approval button press ({exc!r})") from None
    if payload.get("type") != "block_actions":
        raise InputError("payload.type: must be block_actions")
    return click


@dataclass(frozen=True)
class SlackSettings:
    """``[slack]`` of config.toml: where the app's signing secret lives."""

    signing_secret_file: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SlackSettings | None:
        table = config.get("slack")
        if table is None:
            return None
        if not isinstance(table, Mapping) or set(table) != {"signing_secret_file"}:
            raise ConfigError("slack: must be a table with exactly signing_secret_file")
        path = table["signing_secret_file"]
        if not isinstance(path, str) or not path:
            raise ConfigError("slack.signing_secret_file: must be a path")
        return cls(path)

    def secret(self) -> bytes:
        from pathlib import Path

        return read_secret_file(Path(self.signing_secret_file), "slack.signing_secret_file")


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
