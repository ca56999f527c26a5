"""The HTTP executor: hands an allowed intent to a web endpoint that acts on it.

The request body is the canonical intent, ``{"intent": ...}`` in canonical
bytes, so the receiver can hash exactly what was approved. The intent's
idempotency key travels as ``Idempotency-Key`` so that a repeated delivery can
be recognised downstream. A non-2xx answer, a timeout or a broken connection
raises :class:`ExecutionFailed`; this module never retries and never follows a
redirect (either could repeat or move a side effect nobody approved).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import jsontext
from ..encoding import canonical_bytes
from ..errors import ConfigError, InputError
from ..model.intent import ActionIntent
from .base import ExecutionFailed, check_fields

#: Methods that carry a request body; the intent always travels in the body.
METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Headers this executor sets itself; configuration may not override them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "idempotency-key", "x-exoarmur-intent-id"}
)
#: How much of a failed response's body goes into the recorded message.
SHORT_BODY_CHARS = 200

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HttpExecutor:
    """Sends each intent to ``url`` and records the status code and body."""

    kind: str = "http"

    def __init__(
        self,
        url: str,
        method: str = "POST",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = _check_url(url)
        self.method = _check_method(method)
        self.timeout = _check_timeout(timeout)
        self.headers = _check_headers(headers or {})
        # An injected client is the caller's to close. Without one, each call
        # opens and closes its own: an executor has no close() in the protocol,
        # and a connection pool nobody closes leaks sockets.
        self._client = client

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HttpExecutor:
        """Build from ``{"url": ..., "method"?: ..., "timeout"?: ..., "headers"?: {...}}``."""
        check_fields(config, allowed={"url", "method", "timeout", "headers"}, required={"url"})
        return cls(
            url=config["url"],
            method=config.get("method", "POST"),
            timeout=config.get("timeout", 10.0),
            headers=config.get("headers"),
        )

    def execute(self, intent: ActionIntent) -> dict[str, Any]:
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": intent.idempotency_key,
            "X-ExoArmur-Intent-Id": intent.intent_id,
        }
        body = canonical_bytes({"intent": intent.to_canonical()})
        try:
            if self._client is not None:
                response = self._send(self._client, body, headers)
            else:
                with httpx.Client() as client:
                    response = self._send(client, body, headers)
        except httpx.TimeoutException as exc:
            raise ExecutionFailed(
                f"{self.method} {self.url} timed out after {self.timeout:g} s "
                f"({type(exc).__name__}); the action may or may not have taken effect",
                retryable=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise ExecutionFailed(
                f"{self.method} {self.url} failed: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        if not response.is_success:
            raise ExecutionFailed(
                f"HTTP {response.status_code} from {self.url}: {_short(response.text)}",
                # the server may recover; a 4xx will say the same thing again
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        return {"status_code": response.status_code, "body": _body(response)}

    def _send(self, client: httpx.Client, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return client.request(
            self.method,
            self.url,
            content=body,
            headers=headers,
            timeout=self.timeout,
            follow_redirects=False,
        )


def _body(response: httpx.Response) -> Any:
    """The parsed JSON body if it is JSON the ledger can record, else the text."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            parsed = jsontext.loads(response.content)  # a key twice: keep the text
            canonical_bytes(parsed)  # NaN, huge integers: keep the text instead
        except (ValueError, InputError):
            return response.text
        return parsed
    return response.text


def _short(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > SHORT_BODY_CHARS:
        return flat[: SHORT_BODY_CHARS - 1] + "…"
    return flat or "(empty body)"


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"field 'url': must be a string, not {type(url).__name__}")
    if _CONTROL.search(url) or " " in url:
        raise ConfigError(f"field 'url': must not contain spaces or control characters: {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"field 'url': must be an http:// or https:// URL, got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"field 'url': has no host: {url!r}")
    if parts.username is not None or parts.password is not None:
        # They would end up in recorded messages; headers are never recorded.
        raise ConfigError("field 'url': must not carry credentials; put them in 'headers'")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port only when asked
    except ValueError as exc:
        raise ConfigError(f"field 'url': {exc}: {url!r}") from None
    return url


def _check_method(method: object) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        allowed = ", ".join(sorted(METHODS))
        raise ConfigError(f"field 'method': must be one of {allowed}, got {method!r}")
    return method.upper()


def _check_timeout(timeout: object) -> float:
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ConfigError(f"field 'timeout': must be a number of seconds > 0, got {timeout!r}")
    return float(timeout)


def _check_headers(headers: object) -> dict[str, str]:
    if not isinstance(headers, Mapping):
        raise ConfigError(
            f"field 'headers': must be a table of strings, not {type(headers).__name__}"
        )
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ConfigError(f"field 'headers': {name!r} is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise ConfigError(f"field 'headers.{name}': is set by the executor itself")
        if not isinstance(value, str) or _CONTROL.search(value):
            raise ConfigError(
                f"field 'headers.{name}': must be a string without control characters"
            )
        checked[name] = value
    return checked
