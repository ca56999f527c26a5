"""What the sync and async clients share: requests, retries, answers and the event stream.

No I/O here: the two clients send what this builds and hand back what they
received, so both behave exactly alike.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote

import httpx

from ..model.decision import Decision, Outcome, OutcomeStatus
from ..server.schemas import PendingIntent
from .errors import ClientError, ProtocolViolation, problem

#: statuses after which nothing was done, so any request may be sent again
RETRY_STATUSES: Final = frozenset({429, 503})
#: the longest a Retry-After is honoured for, and the cap of the backoff
MAX_DELAY: Final = 30.0

Method = Literal["GET", "POST"]


@dataclass(frozen=True)
class Call:
    """One API request: sent again as is on a retry (the same idempotency key included)."""

    method: Method
    path: str
    body: Any = None
    params: Mapping[str, str] | None = None
    #: whether a lost answer may be asked for again: reads, and submissions with their key
    replayable: bool = False
    #: statuses that are answers, not problems
    ok: frozenset[int] = field(default=frozenset({200}))
    #: request headers of this call alone (a submission's traceparent)
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Retrying:
    """Bounded retries: ``attempts`` sends at most, waiting ``backoff`` × 2ⁿ (capped) between."""

    attempts: int = 4
    backoff: float = 0.2

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_DELAY)
        return float(min(self.backoff * 2 ** (attempt - 1), MAX_DELAY))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff < 0:
            raise ValueError("backoff must not be negative")


def headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def may_retry(call: Call, error: httpx.TransportError) -> bool:
    """Whether sending again cannot do a thing twice.

    A refused connection never reached the service. An answer lost on the way
    back may follow a recorded vote or start, so only reads and submissions
    (which carry their idempotency key) are sent again then.
    """
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout) or call.replayable


def answer(call: Call, response: httpx.Response) -> Any:
    """The answer's JSON, or the mapped problem raised."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code in call.ok:
        if body is None:
            raise ProtocolViolation(f"{call.method} {call.path}: the answer is not JSON")
        return body
    raise problem(response.status_code, body, retry_after(response))


def tenant_of(default: str | None, tenant: str | None) -> str:
    chosen = tenant or default
    if chosen is None:
        raise ClientError("tenant: name one (or give the client a default tenant)")
    return chosen


def intent_path(tenant: str, intent_id: str, what: str = "") -> str:
    path = f"/v1/tenants/{quote(tenant, safe='')}/intents/{quote(intent_id, safe='')}"
    return f"{path}/{what}" if what else path


def submission(
    intent: Mapping[str, Any], default_tenant: str | None, traceparent: str | None = None
) -> Call:
    """The submit call: the intent with a tenant and an idempotency key it keeps across retries."""
    body = dict(intent)
    if "tenant" not in body and default_tenant is not None:
        body["tenant"] = default_tenant
    if body.get("idempotency_key") is None:
        body["idempotency_key"] = f"sdk-{secrets.token_hex(16)}"
    return Call(
        "POST",
        "/v1/intents",
        body,
        replayable=True,
        ok=frozenset({200, 202}),
        headers=trace_headers(traceparent),
    )


def trace_headers(traceparent: str | None) -> dict[str, str] | None:
    """The ``traceparent`` to send: the caller's own, else the current OpenTelemetry span's.

    The service records its trace id in the intent's ``intent.recorded`` event.
    Without the OpenTelemetry API or a current span, none is sent.
    """
    if traceparent is not None:
        return {"traceparent": traceparent}
    try:
        from opentelemetry import propagate
    except ImportError:  # pragma: no cover - the API comes with the server extra
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    found = carrier.get("traceparent")
    return {"traceparent": found} if found else None


def submitted(body: Any) -> Outcome:
    """A submission's answer as an Outcome (a 202's pending intent included)."""
    if isinstance(body, dict) and "status" in body:
        return Outcome.model_validate(body)
    pending = PendingIntent.model_validate(body)
    return Outcome(
        intent_id=pending.intent_id,
        tenant=pending.tenant,
        correlation_id=pending.intent.correlation_id,
        status=OutcomeStatus.PENDING_APPROVAL,
        decision=Decision.model_validate(pending.decision.model_dump()),
    )


@dataclass
class EventStream:
    """Reads ``text/event-stream`` lines into messages (the WHATWG rules this API uses)."""

    last_id: str | None = None
    _event: str = "message"
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> tuple[str, str] | None:
        """One line in; a complete ``(event, data)`` out at a blank line."""
        if not line:
            if not self._data:
                self._event = "message"
                return None
            message = (self._event, "\n".join(self._data))
            self._event, self._data = "message", []
            return message
        if line.startswith(":"):
            return None  # a keep-alive comment
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self.last_id = value
        return None


def final_outcome(message: tuple[str, str]) -> Outcome | None:
    event, data = message
    if event != "outcome":
        return None
    try:
        return Outcome.model_validate_json(data)
    except ValueError as exc:
        raise ProtocolViolation(f"the stream's outcome does not parse: {exc}") from None


def last_outcome(body: Any) -> Outcome | None:
    if isinstance(body, dict) and isinstance(body.get("outcome"), dict):
        return Outcome.model_validate(body["outcome"])
    return None
