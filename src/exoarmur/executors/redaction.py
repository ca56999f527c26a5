"""What of an executor's settings may be written down: never a secret.

Configuration snapshots and failure messages are recorded in the ledger for
ever and read by operators and auditors. A webhook URL is often a secret in
itself (``…/services/T0/B0/<secret>``, ``?token=…``): what is recorded keeps
where a binding points (scheme, host, port, the shape of the path) and drops
what authenticates it — userinfo, every query value, path segments that look
like tokens, header values, and any setting whose name says it is a secret.
Settings read from the environment (``url_env``, ``headers_env``) are
recorded by the variable's name, which is the safe way to configure them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

REDACTED = "(redacted)"

#: a path segment this long with letters and digits is treated as a credential
_TOKEN_SEGMENT = re.compile(r"^(?=[^/]*[0-9])(?=[^/]*[A-Za-z])[A-Za-z0-9._~+=%-]{16,}$")
_SECRET_NAME = re.compile(
    r"(secret|token|passw|api[_-]?key|auth|credential|private|signature|session|cookie)", re.I
)


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may authenticate: userinfo, query values, token-like segments."""
    parts = urlsplit(url)
    found = [value for value in (parts.username, parts.password) if value]
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True) if value]
    found += [segment for segment in parts.path.split("/") if _TOKEN_SEGMENT.match(segment)]
    if parts.fragment:
        found.append(parts.fragment)
    return found


def redact_url(url: str) -> str:
    """``url`` as it may be recorded: where it points, none of what authenticates it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    if parts.username is not None or parts.password is not None:
        netloc = f"{REDACTED}@{netloc}"
    path = "/".join(
        REDACTED if _TOKEN_SEGMENT.match(segment) else segment for segment in parts.path.split("/")
    )
    query = "&".join(
        f"{name}={REDACTED}" for name, _ in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret (longest first) replaced."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Settings as configuration snapshots record them (see the module docstring)."""
    return {name: _redact_value(name, value) for name, value in settings.items()}


def _redact_value(name: str, value: Any) -> Any:
    if name == "headers" and isinstance(value, Mapping):
        return dict.fromkeys(value, REDACTED)
    if name.endswith("_env"):
        return value  # the name of an environment variable, never its value
    if _SECRET_NAME.search(name):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(key): _redact_value(str(key), inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_redact_value(name, inner) for inner in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value
