"""The blocking client: one ``httpx.Client``, bounded retries, ``wait`` on the event stream."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal

import httpx

from ..model.decision import Outcome
from ..server.schemas import (
    ControlAnswer,
    PendingList,
    StartAnswer,
    Story,
    VoteAnswer,
    WhoAmI,
)
from . import _wire
from ._wire import Call, Retrying
from .errors import APIError, ServiceUnreachable, WaitTimedOut


class Client:
    """ExoArmur over HTTP, as one principal (its API key), answers typed as the server's schemas.

    ``tenant`` is the default for calls that name one. Every call is retried
    (bounded, with backoff) when nothing was done (a refused connection, 429,
    503) and, for reads and submissions, when the answer was lost: a
    submission keeps its idempotency key, so it is recorded once.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        tenant: str | None = None,
        timeout: float = 30.0,
        retrying: Retrying | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.tenant = tenant
        self.retrying = retrying or Retrying()
        self._http = httpx.Client(
            base_url=url, headers=_wire.headers(api_key), timeout=timeout, transport=transport
        )

    # -- the plumbing ---------------------------------------------------------

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.retrying.attempts
            try:
                response = self._http.request(
                    call.method, call.path, json=call.body, params=call.params, headers=call.headers
                )
            except httpx.TransportError as exc:
                if last or not _wire.may_retry(call, exc):
                    raise ServiceUnreachable(f"{call.method} {call.path}: {exc}") from exc
                time.sleep(self.retrying.delay(attempt, None))
                continue
            if response.status_code in _wire.RETRY_STATUSES and not last:
                time.sleep(self.retrying.delay(attempt, _wire.retry_after(response)))
                continue
            return _wire.answer(call, response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- intents --------------------------------------------------------------

    def submit(self, intent: Mapping[str, Any], *, traceparent: str | None = None) -> Outcome:
        """Govern one intent; a 202 (waiting for approval) is an Outcome ``pending_approval``.

        ``traceparent`` (W3C) is sent as given, else the current OpenTelemetry
        span's when there is one; the service records its trace id with the intent.
        """
        call = _wire.submission(intent, self.tenant, traceparent)
        return _wire.submitted(self._send(call))

    def story(self, intent_id: str, *, tenant: str | None = None) -> Story:
        path = _wire.intent_path(_wire.tenant_of(self.tenant, tenant), intent_id)
        return Story.model_validate(self._send(Call("GET", path, replayable=True)))

    def wait(self, intent_id: str, timeout: float, *, tenant: str | None = None) -> Outcome:
        """The intent's outcome once it settles, pushed by the service (no polling).

        Raises :class:`WaitTimedOut` (with the last known outcome) after
        ``timeout`` seconds; reconnects, resuming after the last event, when
        the stream is cut.
        """
        path = _wire.intent_path(_wire.tenant_of(self.tenant, tenant), intent_id, "events")
        deadline = time.monotonic() + timeout
        stream = _wire.EventStream()
        attempt = 0
        while (remaining := deadline - time.monotonic()) > 0:
            attempt += 1
            headers = {"Accept": "text/event-stream"}
            if stream.last_id is not None:
                headers["Last-Event-ID"] = stream.last_id
            timeouts = httpx.Timeout(self._http.timeout.connect, read=remaining)
            try:
                with self._http.stream("GET", path, headers=headers, timeout=timeouts) as response:
                    if response.status_code != 200:
                        response.read()
                        _wire.answer(Call("GET", path), response)  # raises the problem
                    for line in response.iter_lines():
                        message = stream.feed(line)
                        outcome = _wire.final_outcome(message) if message else None
                        if outcome is not None:
                            return outcome
                        attempt = 0
            except httpx.ReadTimeout:
                continue
            except httpx.TransportError:
                pass
            except APIError as exc:
                if exc.status not in _wire.RETRY_STATUSES:
                    raise
            time.sleep(min(self.retrying.delay(max(attempt, 1), None), max(remaining, 0)))
        raise WaitTimedOut(
            f"intent {intent_id} still waits after {timeout:g} s", self._last(intent_id, tenant)
        )

    def _last(self, intent_id: str, tenant: str | None) -> Outcome | None:
        try:
            return self.story(intent_id, tenant=tenant).outcome
        except (APIError, ServiceUnreachable):
            return None

    # -- approvals ------------------------------------------------------------

    def pending(self, *, tenant: str | None = None) -> PendingList:
        path = f"/v1/tenants/{_wire.tenant_of(self.tenant, tenant)}/approvals"
        return PendingList.model_validate(self._send(Call("GET", path, replayable=True)))

    def approve(
        self,
        intent_id: str,
        reason: str,
        *,
        intent_hash: str | None = None,
        tenant: str | None = None,
    ) -> VoteAnswer:
        """Vote to approve, bound to ``intent_hash`` when given (do, when you showed it)."""
        return self._vote("approve", intent_id, reason, intent_hash, tenant)

    def reject(
        self,
        intent_id: str,
        reason: str,
        *,
        intent_hash: str | None = None,
        tenant: str | None = None,
    ) -> VoteAnswer:
        return self._vote("reject", intent_id, reason, intent_hash, tenant)

    def _vote(
        self,
        vote: Literal["approve", "reject"],
        intent_id: str,
        reason: str,
        intent_hash: str | None,
        tenant: str | None,
    ) -> VoteAnswer:
        path = _wire.intent_path(_wire.tenant_of(self.tenant, tenant), intent_id, vote)
        body: dict[str, Any] = {"reason": reason}
        if intent_hash is not None:
            body["intent_hash"] = intent_hash
        return VoteAnswer.model_validate(self._send(Call("POST", path, body)))

    # -- kill switches --------------------------------------------------------

    def engage_killswitch(self, scope: str, reason: str) -> ControlAnswer:
        """Engage (``global``, ``tenant:T``, ``action:P``, ``tenant:T/action:P``); idempotent."""
        body = {"action": "engage", "scope": scope, "reason": reason}
        return ControlAnswer.model_validate(self._send(Call("POST", "/v1/killswitches", body)))

    def release_killswitch(self, scope: str, reason: str) -> ControlAnswer:
        body = {"action": "release", "scope": scope, "reason": reason}
        return ControlAnswer.model_validate(self._send(Call("POST", "/v1/killswitches", body)))

    # -- actions the caller carries out --------------------------------------

    def report_start(self, intent_id: str, *, tenant: str | None = None) -> StartAnswer:
        """Record ``execution.started``; act only once this returns (a kill switch: 409)."""
        path = _wire.intent_path(_wire.tenant_of(self.tenant, tenant), intent_id, "start")
        return StartAnswer.model_validate(self._send(Call("POST", path)))

    def report_outcome(
        self,
        intent_id: str,
        status: Literal["succeeded", "failed"],
        *,
        result: Any = None,
        error: str | None = None,
        tenant: str | None = None,
    ) -> Outcome:
        """Record how it ended (``result`` when it succeeded, ``error`` when it failed); once."""
        path = _wire.intent_path(_wire.tenant_of(self.tenant, tenant), intent_id, "outcome")
        body: dict[str, Any] = {"status": status}
        if result is not None:
            body["result"] = result
        if error is not None:
            body["error"] = error
        return Outcome.model_validate(self._send(Call("POST", path, body)))

    # -- the record -----------------------------------------------------------

    def evidence_export(self, correlation_id: str, *, tenant: str | None = None) -> dict[str, Any]:
        """The evidence bundle of a correlation; verify it offline (``exoarmur verify-bundle``)."""
        params = {"tenant": _wire.tenant_of(self.tenant, tenant), "correlation_id": correlation_id}
        bundle: dict[str, Any] = self._send(
            Call("GET", "/v1/evidence", params=params, replayable=True)
        )
        return bundle

    def whoami(self) -> WhoAmI:
        return WhoAmI.model_validate(self._send(Call("GET", "/v1/whoami", replayable=True)))
