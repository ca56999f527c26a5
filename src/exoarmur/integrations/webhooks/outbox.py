"""The webhook outbox: deliveries owed, as a fold over the ledger, sent at least once.

What is owed needs no queue of its own: every deliverable event is already
in the ledger, and every attempt is recorded in the system log before the next
is made. A delivery is owed from the moment
its event is recorded until ``webhook.delivered`` (or ``webhook.gave_up``) is
recorded for its delivery id; after a restart the fold finds the same debts,
so a delivery due before a crash is sent after it. A crash between the
receiver's 2xx and its record sends it again with the same delivery id,
which is why receivers dedupe on ``ExoArmur-Delivery``; two processes that
both deliver record it once (the record is keyed by the delivery id).

Retries back off exponentially on the injected clock (``base * 2**(n-1)``,
capped) and give up after ``max_attempts``, recorded. Secrets never reach
the ledger: records name the webhook, the URL's origin and the status.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from ...approvals import intent_state
from ...approvals.book import IntentState
from ...encoding import format_time, parse_time
from ...errors import ConfigError, DuplicateIntent, ExoArmurError
from ...model.event import (
    SYSTEM_LOG,
    WEBHOOK_DELIVERED,
    WEBHOOK_FAILED,
    WEBHOOK_GAVE_UP,
    Event,
    idempotency_key_of,
)
from ...pipeline import Governor
from ..console_link import console_link
from .messages import exoarmur_body, slack_body
from .signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from .subscriptions import Webhook

DEFAULT_MAX_ATTEMPTS: Final = 8
DEFAULT_BASE_SECONDS: Final = 5
DEFAULT_CAP_SECONDS: Final = 3600
#: how long one POST may take before it counts as failed (seconds)
POST_TIMEOUT_SECONDS: Final = 10.0
logger = logging.getLogger("exoarmur.server")
_RECORDS: Final = (WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_GAVE_UP)
_OUTBOX_ACTOR: Final = {"id": "exoarmur-outbox", "kind": "system"}


class DeliveryFailed(ExoArmurError):
    """A POST did not reach the receiver (connection refused, timeout, ...)."""


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; the HTTP status. DeliveryFailed when no answer came."""
        ...


class HttpTransport:
    """httpx, no proxies from the environment, no redirects (a 3xx is a failure)."""

    def __init__(self, timeout: float = POST_TIMEOUT_SECONDS) -> None:
        import httpx

        self._httpx = httpx
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            response = self._client.post(url, content=body, headers=dict(headers))
        except self._httpx.HTTPError as exc:
            # The class only: an error's text may quote the URL, and a Slack URL is a secret.
            raise DeliveryFailed(type(exc).__name__) from None
        return response.status_code


def delivery_id(webhook: str, log: str, event_id: str) -> str:
    """The same for every attempt at one event for one webhook: what receivers dedupe on."""
    digest = hashlib.sha256(f"{webhook}\n{log}\n{event_id}".encode()).hexdigest()
    return f"dlv_{digest[:32]}"


def backoff(attempts: int, base: int, cap: int) -> int:
    """Seconds to wait after the ``attempts``-th failure."""
    return int(min(cap, base * 2 ** min(attempts - 1, 30)))


def origin(url: str) -> str:
    """What a record may say about a URL: scheme, host and port (a path may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


@dataclass
class Owed:
    webhook: Webhook
    log: str
    event: Event
    delivery_id: str


@dataclass
class Report:
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    gave_up: list[str] = field(default_factory=list)


class Outbox:
    """Delivers what the ledger owes the configured webhooks. Thread-safe; one pass at a time."""

    def __init__(
        self,
        governor: Governor,
        webhooks: Sequence[Webhook],
        transport: Transport,
        *,
        public_url: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        base_seconds: int = DEFAULT_BASE_SECONDS,
        cap_seconds: int = DEFAULT_CAP_SECONDS,
    ) -> None:
        self.governor = governor
        self.webhooks = list(webhooks)
        self.transport = transport
        self.public_url = public_url
        self.max_attempts = max_attempts
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self._lock = threading.Lock()
        self._cursors: dict[str, int] = {}
        self._owed: dict[str, Owed] = {}
        self._recorded = 0
        self._settled: set[str] = set()
        #: delivery id -> (failed attempts, when the next may be made)
        self._retry: dict[str, tuple[int, datetime]] = {}

    # -- the fold -------------------------------------------------------------

    def _fold_records(self) -> None:
        store = self.governor.ledger.store
        size = store.size(SYSTEM_LOG)
        for event in store.events(SYSTEM_LOG, self._recorded, size):
            if event.type not in _RECORDS:
                continue
            did = event.payload["delivery_id"]
            if event.type in (WEBHOOK_DELIVERED, WEBHOOK_GAVE_UP):
                self._settled.add(did)
                self._retry.pop(did, None)
            elif event.type == WEBHOOK_FAILED and did not in self._settled:
                attempt = int(event.payload["attempt"])
                if attempt >= self._retry.get(did, (0, event.process_time))[0]:
                    self._retry[did] = (attempt, parse_time(event.payload["next_attempt_at"]))
        self._recorded = size

    def _scan(self) -> None:
        store = self.governor.ledger.store
        for log in store.tenants():
            start = self._cursors.get(log)
            if start is None:
                start = min(w.since.get(log, 0) for w in self.webhooks)
            size = store.size(log)
            for event in store.events(log, start, size):
                for webhook in self.webhooks:
                    if webhook.wants(log, event.type, event.seq, SYSTEM_LOG):
                        did = delivery_id(webhook.name, log, event.event_id)
                        if did not in self._settled:
                            self._owed[did] = Owed(webhook, log, event, did)
            self._cursors[log] = size

    # -- delivering -----------------------------------------------------------

    def deliver_due(self) -> Report:
        """One pass: every owed delivery whose time has come is attempted once."""
        report = Report()
        if not self.webhooks:
            return report
        with self._lock:
            self._fold_records()
            self._scan()
            now = self.governor.clock.now()
            for did, owed in list(self._owed.items()):
                if did in self._settled:
                    del self._owed[did]
                    continue
                attempts, next_at = self._retry.get(did, (0, now))
                if next_at > now:
                    continue
                self._attempt(owed, attempts + 1, now, report)
                self._fold_records()
                if did in self._settled:
                    del self._owed[did]
        return report

    def _attempt(self, owed: Owed, attempt: int, now: datetime, report: Report) -> None:
        webhook = owed.webhook
        record: dict[str, Any] = {
            "delivery_id": owed.delivery_id,
            "webhook": webhook.name,
            "url_origin": origin(webhook.url),
            "log": owed.log,
            "seq": owed.event.seq,
            "event_id": owed.event.event_id,
            "event_type": owed.event.type,
            "attempt": attempt,
        }
        error: str | None = None
        status: int | None = None
        try:
            body, headers = self._render(owed, now)
            status = self.transport.post(webhook.url, body, headers)
        except (DeliveryFailed, ConfigError) as exc:
            error = str(exc)
        else:
            error = None if 200 <= status < 300 else f"HTTP {status}"
        record["status_code"] = status
        if error is None:
            self._record(WEBHOOK_DELIVERED, record)
            report.delivered.append(owed.delivery_id)
        elif attempt >= self.max_attempts:
            self._record(WEBHOOK_GAVE_UP, record | {"error": error})
            report.gave_up.append(owed.delivery_id)
        else:
            wait = backoff(attempt, self.base_seconds, self.cap_seconds)
            next_at = format_time(now + timedelta(seconds=wait))
            self._record(WEBHOOK_FAILED, record | {"error": error, "next_attempt_at": next_at})
            report.failed.append(owed.delivery_id)

    def _render(self, owed: Owed, now: datetime) -> tuple[bytes, dict[str, str]]:
        event = owed.event
        link = (
            None
            if event.intent_id is None
            else console_link(self.public_url, owed.log, event.intent_id)
        )
        if owed.webhook.fmt == "slack":
            body = slack_body(event, self._state(owed), link)
        else:
            body = exoarmur_body(event, owed.delivery_id, owed.webhook.name, link)
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: owed.delivery_id,
            EVENT_HEADER: event.type,
            TIMESTAMP_HEADER: str(timestamp),
        }
        secret = owed.webhook.secret()
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        return body, headers

    def _state(self, owed: Owed) -> IntentState | None:
        if owed.event.intent_id is None or owed.log == SYSTEM_LOG:
            return None
        return intent_state(self.governor.story(owed.log, owed.event.intent_id))

    def _record(self, event_type: str, payload: dict[str, Any]) -> None:
        drafts = self.governor.drafts
        draft = drafts.for_log(
            SYSTEM_LOG,
            event_type,
            payload,
            dict(_OUTBOX_ACTOR),
            idempotency_key=idempotency_key_of(event_type, payload),
        )
        # another process recorded this very attempt: one record, never two
        with contextlib.suppress(DuplicateIntent):
            self.governor.ledger.append(SYSTEM_LOG, [draft])


class Pass(Protocol):
    def deliver_due(self) -> object:
        """Send what the ledger says is due now, recording each attempt."""
        ...


class OutboxLoop:
    """While serving: a pass every ``every`` seconds (and one at start, for what fell due)."""

    def __init__(self, outbox: Pass, every: float = 1.0, *, more: Sequence[Pass] = ()) -> None:
        self.outbox = outbox
        self.passes = [outbox, *more]
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exoarmur-outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for one in self.passes:
                try:
                    one.deliver_due()
                except Exception:  # the loop must outlive a failed pass; the ledger keeps the debt
                    logger.exception("webhook outbox pass failed; retrying at the next pass")
            self._stop.wait(self.every)
