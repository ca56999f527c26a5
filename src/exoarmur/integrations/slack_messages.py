"""Approval messages in Slack, posted with the bot token and edited in place as the intent moves.

An incoming webhook cannot edit what it posted (Slack answers no message
``ts``), so with ``[slack] bot_token_env`` and ``channel`` the approval
message is posted with ``chat.postMessage`` and kept current with
``chat.update``. Like the webhook outbox, what Slack is owed is a fold over
the ledger: a pending intent's ``approval.requested`` is owed a message,
recorded as ``slack.message_posted`` with the channel and ``ts`` Slack
answered; each later event of its story that changes what the message says
(a vote, the quorum, a rejection, expiry, a kill switch's
``execution.blocked``, the result) is owed an edit, recorded as
``slack.message_updated`` through that event's seq, once (keyed by intent and
seq; several events due at one pass make one edit showing the latest state).
A restart finds the same debts. A failed call is retried at a later pass,
backing off in memory, and is not recorded (a Slack outage must not grow the
ledger). A crash between Slack's answer and the record posts a second
message, or repeats an edit (which sets the same text).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from ..approvals import intent_state
from ..approvals.book import ApprovalStatus
from ..errors import ConfigError, DuplicateIntent
from ..model.event import (
    APPROVAL_ESCALATED,
    APPROVAL_GRANTED,
    APPROVAL_REJECTED,
    APPROVAL_REQUESTED,
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    INTENT_REJECTED,
    SLACK_MESSAGE_POSTED,
    SLACK_MESSAGE_UPDATED,
    SYSTEM_LOG,
    Event,
    idempotency_key_of,
)
from ..pipeline import Governor
from .console_link import console_link
from .webhooks.messages import slack_message
from .webhooks.outbox import backoff

#: the events of an intent's story after which its message is edited
UPDATED_ON: Final = (
    APPROVAL_GRANTED,
    APPROVAL_REJECTED,
    APPROVAL_ESCALATED,
    INTENT_APPROVED,
    INTENT_REJECTED,
    INTENT_EXPIRED,
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
)
#: a channel id (C…, G…) or name as chat.postMessage takes it
CHANNEL: Final = re.compile(r"^#?[A-Za-z0-9._-]{1,80}$")
_BASE_SECONDS: Final = 5
_CAP_SECONDS: Final = 300
_API_TIMEOUT_SECONDS: Final = 10.0
_ACTOR: Final = {"id": "exoarmur-slack", "kind": "system"}
logger = logging.getLogger("exoarmur.server")


class SlackCallFailed(Exception):
    """Slack did not do what we asked (no answer, an HTTP error, or ``ok: false``)."""


class SlackApi(Protocol):
    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to Web API ``method``; Slack's answer when ``ok``, else SlackCallFailed."""
        ...


class HttpSlackApi:
    """Slack's Web API at ``api_url`` with the bot token read from ``token_env`` at each call."""

    def __init__(self, api_url: str, token_env: str) -> None:
        import httpx

        self.api_url = api_url
        self.token_env = token_env
        self._httpx = httpx
        self._client = httpx.Client(
            timeout=_API_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
        )

    def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        token = os.environ.get(self.token_env)
        if not token:
            raise ConfigError(f"slack.bot_token_env: ${self.token_env} is not set")
        try:
            answer = self._client.post(
                f"{self.api_url}/{method}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
            result = answer.json() if answer.is_success else None
        except (self._httpx.HTTPError, ValueError):
            raise SlackCallFailed(f"{method}: no answer") from None
        if not isinstance(result, dict) or result.get("ok") is not True:
            error = result.get("error") if isinstance(result, dict) else answer.status_code
            raise SlackCallFailed(f"{method}: {error}")
        return result


@dataclass
class Posted:
    channel: str
    ts: str
    #: seq (in the tenant's log) of the last event the message shows
    through: int


@dataclass
class SlackReport:
    posted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class SlackMessages:
    """Posts and edits approval messages as the ledger says. Thread-safe; one pass at a time."""

    def __init__(
        self,
        governor: Governor,
        api: SlackApi,
        channel: str,
        *,
        public_url: str | None = None,
    ) -> None:
        self.governor = governor
        self.api = api
        self.channel = channel
        self.public_url = public_url
        self._lock = threading.Lock()
        self._recorded = 0
        self._cursors: dict[str, int] = {}
        self._posted: dict[tuple[str, str], Posted] = {}
        #: (tenant, intent id) -> its approval.requested, until posted (or no longer pending)
        self._requests: dict[tuple[str, str], Event] = {}
        #: (tenant, intent id) -> seq of its latest event that changes its message
        self._latest: dict[tuple[str, str], int] = {}
        #: (tenant, intent id) -> (failed calls, when the next may be made)
        self._retry: dict[tuple[str, str], tuple[int, datetime]] = {}

    def _fold_records(self) -> None:
        store = self.governor.ledger.store
        size = store.size(SYSTEM_LOG)
        for event in store.events(SYSTEM_LOG, self._recorded, size):
            payload = event.payload
            if event.type == SLACK_MESSAGE_POSTED:
                key = (payload["tenant"], payload["intent_id"])
                self._posted[key] = Posted(payload["channel"], payload["ts"], payload["seq"])
                self._requests.pop(key, None)
            elif event.type == SLACK_MESSAGE_UPDATED:
                posted = self._posted.get((payload["tenant"], payload["intent_id"]))
                if posted is not None:
                    posted.through = max(posted.through, payload["through_seq"])
        self._recorded = size

    def _scan(self) -> None:
        store = self.governor.ledger.store
        for log in store.tenants():
            if log == SYSTEM_LOG:
                continue
            size = store.size(log)
            for event in store.events(log, self._cursors.get(log, 0), size):
                if event.intent_id is None:
                    continue
                key = (log, event.intent_id)
                if event.type == APPROVAL_REQUESTED and key not in self._posted:
                    self._requests[key] = event
                elif event.type in UPDATED_ON:
                    self._latest[key] = event.seq
            self._cursors[log] = size

    def deliver_due(self) -> SlackReport:
        """One pass: post what is owed a message, edit what is owed an edit (each once)."""
        report = SlackReport()
        with self._lock:
            self._fold_records()
            self._scan()
            now = self.governor.clock.now()
            for key, request in list(self._requests.items()):
                if self._due(key, now):
                    self._post(key, request, now, report)
            for key, posted in list(self._posted.items()):
                latest = self._latest.get(key, 0)
                if latest > posted.through and self._due(key, now):
                    self._update(key, posted, latest, now, report)
        return report

    def _due(self, key: tuple[str, str], now: datetime) -> bool:
        return self._retry.get(key, (0, now))[1] <= now

    def _message(self, tenant: str, intent_id: str, upto: int) -> tuple[Any, dict[str, Any]]:
        story = self.governor.story(tenant, intent_id)
        state = intent_state(story)
        shown = [e for e in story if e.seq <= upto]
        link = console_link(self.public_url, tenant, intent_id)
        pending = state.status == ApprovalStatus.PENDING
        return state, slack_message(shown[-1], state, link, buttons=pending)

    def _post(
        self, key: tuple[str, str], request: Event, now: datetime, report: SlackReport
    ) -> None:
        tenant, intent_id = key
        state, message = self._message(tenant, intent_id, request.seq)
        if state.status != ApprovalStatus.PENDING:  # settled before it was shown: nothing to ask
            del self._requests[key]
            return
        try:
            answer = self.api.call("chat.postMessage", {"channel": self.channel, **message})
            channel, ts = str(answer["channel"]), str(answer["ts"])
        except (SlackCallFailed, ConfigError, KeyError) as exc:
            self._failed(key, now, exc, report)
            return
        payload = {
            "tenant": tenant,
            "intent_id": intent_id,
            "channel": channel,
            "ts": ts,
            "seq": request.seq,
        }
        self._record(SLACK_MESSAGE_POSTED, payload)
        self._fold_records()
        self._retry.pop(key, None)
        report.posted.append(intent_id)

    def _update(
        self, key: tuple[str, str], posted: Posted, latest: int, now: datetime, report: SlackReport
    ) -> None:
        tenant, intent_id = key
        _state, message = self._message(tenant, intent_id, latest)
        body = {"channel": posted.channel, "ts": posted.ts, **message}
        try:
            self.api.call("chat.update", body)
        except (SlackCallFailed, ConfigError) as exc:
            self._failed(key, now, exc, report)
            return
        payload = {
            "tenant": tenant,
            "intent_id": intent_id,
            "channel": posted.channel,
            "ts": posted.ts,
            "through_seq": latest,
        }
        self._record(SLACK_MESSAGE_UPDATED, payload)
        self._fold_records()
        self._retry.pop(key, None)
        report.updated.append(intent_id)

    def _failed(
        self, key: tuple[str, str], now: datetime, exc: Exception, report: SlackReport
    ) -> None:
        attempts = self._retry.get(key, (0, now))[0] + 1
        wait = backoff(attempts, _BASE_SECONDS, _CAP_SECONDS)
        self._retry[key] = (attempts, now + timedelta(seconds=wait))
        logger.warning("Slack message for intent %s not sent (%s); retrying", key[1], exc)
        report.failed.append(key[1])

    def _record(self, event_type: str, payload: dict[str, Any]) -> None:
        draft = self.governor.drafts.for_log(
            SYSTEM_LOG,
            event_type,
            payload,
            dict(_ACTOR),
            idempotency_key=idempotency_key_of(event_type, payload),
        )
        # another process recorded this very message or edit: one record, never two
        with contextlib.suppress(DuplicateIntent):
            self.governor.ledger.append(SYSTEM_LOG, [draft])
