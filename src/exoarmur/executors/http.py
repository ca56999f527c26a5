"""The HTTP executor: hands an allowed intent to a web endpoint that acts on it.

The request body is the canonical intent, ``{"intent": ...}`` in canonical
bytes, so the receiver can hash exactly what was approved. The intent's
idempotency key travels as ``Idempotency-Key`` so that a repeated delivery can
be recognised downstream. A non-2xx answer, a timeout or a broken connection
raises :class:`ExecutionFailed`; this module never retries and never follows a
redirect (either could repeat or move a side effect nobody approved).

Failure messages are recorded in the ledger, so they name the endpoint as
:mod:`.redaction` allows (or as ``$VARIABLE`` when the URL came from the
environment) and never carry a query value, a token-like path segment or a
header value, even when the remote end echoes one back.
"""

from __future__ import annotations

import math
import os
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
from .redaction import redact_url, scrub, url_secrets

#: Methods that carry a request body; the intent always travels in the body.
METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Headers this executor sets itself; configuration may not override them.
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "idempotency-key", "x-exoarmur-intent-id"}
)
#: How much of a failed response's body goes into the recorded message.
SHORT_BODY_CHARS = 200

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
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
        *,
        url_env: str | None = None,
    ) -> None:
        self.url = _check_url(url, shown=f"${url_env}" if url_env else None)
        self.method = _check_method(method)
        self.timeout = _check_timeout(timeout)
        self.headers = _check_headers(headers or {})
        #: how recorded messages name the endpoint
        self.shown_url = f"${url_env}" if url_env else redact_url(self.url)
        self._secrets = [*url_secrets(self.url), *self.headers.values()]
        if url_env:
            self._secrets.append(self.url)
        # An injected client is the caller's to close. Without one, each call
        # opens and closes its own: an executor has no close() in the protocol,
        # and a connection pool nobody closes leaks sockets.
        self._client = client

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> HttpExecutor:
        """Build from ``{"url"|"url_env", "method"?, "timeout"?, "headers"?, "headers_env"?}``.

        ``url_env`` names an environment variable holding the URL and
        ``headers_env`` maps header names to variables holding their values:
        the variables' names are recorded, their values never. A variable
        that is not set is a configuration error at start.
        """
        check_fields(
            config, allowed={"url", "url_env", "method", "timeout", "headers", "headers_env"}
        )
        if ("url" in config) == ("url_env" in config):
            raise ConfigError("exactly one of field 'url' and field 'url_env' is required")
        url_env = config.get("url_env")
        url = _from_env("url_env", url_env) if url_env is not None else config["url"]
        headers = _check_headers(config.get("headers", {}))
        for name, variable in _env_table(config.get("headers_env", {})).items():
            if name.lower() in {known.lower() for known in headers}:
                raise ConfigError(
                    f"field 'headers_env.{name}': header is also set in field 'headers'"
                )
            headers[name] = _from_env(f"headers_env.{name}", variable)
        return cls(
            url=url,
            method=config.get("method", "POST"),
            timeout=config.get("timeout", 10.0),
            headers=headers,
            url_env=url_env,
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
                f"{self.method} {self.shown_url} timed out after {self.timeout:g} s "
                f"({type(exc).__name__}); the action may or may not have taken effect",
                retryable=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise ExecutionFailed(
                self._scrub(f"{self.method} {self.shown_url} failed: {type(exc).__name__}: {exc}"),
                retryable=True,
            ) from exc
        except Exception as exc:  # whatever else the client raises: recorded, so scrubbed
            raise ExecutionFailed(
                self._scrub(f"{self.method} {self.shown_url} failed: {type(exc).__name__}: {exc}")
            ) from exc
        if not response.is_success:
            raise ExecutionFailed(
                self._scrub(
                    f"HTTP {response.status_code} from {self.shown_url}: {_short(response.text)}"
                ),
                # the server may recover; a 4xx will say the same thing again
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        return {"status_code": response.status_code, "body": _body(response)}

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

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


def _check_url(url: object, shown: str | None = None) -> str:
    """``url`` if it is one this executor may send to; ``shown`` replaces it in errors."""
    field = "url_env" if shown else "url"
    if not isinstance(url, str):
        raise ConfigError(f"field 'url': must be a string, not {type(url).__name__}")
    said = shown or repr(url)
    if _CONTROL.search(url) or " " in url:
        raise ConfigError(f"field {field!r}: must not contain spaces or control characters: {said}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"field {field!r}: must be an http:// or https:// URL, got {said}")
    if not parts.hostname:
        raise ConfigError(f"field {field!r}: has no host: {said}")
    if parts.username is not None or parts.password is not None:
        # Headers are never recorded; a URL is, as far as redaction allows.
        raise ConfigError(f"field {field!r}: must not carry credentials; put them in 'headers'")
    try:
        parts.port  # noqa: B018 - urlsplit validates the port only when asked
    except ValueError as exc:
        raise ConfigError(f"field {field!r}: {exc}: {said}") from None
    return url


def _env_table(table: object) -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise ConfigError(
            f"field 'headers_env': must be a table of header names to environment variable "
            f"names, not {type(table).__name__}"
        )
    return {str(name): variable for name, variable in table.items()}


def _from_env(field: str, variable: object) -> str:
    """The value of the environment variable ``variable`` (never echoed in errors)."""
    if not isinstance(variable, str) or not _ENV_NAME.match(variable):
        raise ConfigError(
            f"field {field!r}: must name an environment variable (letters, digits, '_'), "
            f"got {variable!r}"
        )
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"field {field!r}: environment variable {variable} is not set")
    return value


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
