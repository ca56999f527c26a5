"""Where a JetStream ledger lives: the ``nats://`` URL and its options, parsed and checked.

Pure: no connection is made here, so that a bad URL is refused before any I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar
from urllib.parse import parse_qsl, quote, unquote

from ...errors import ConfigError

__all__ = ["DEFAULT_STREAM", "Settings", "first_line", "parse_url", "redact"]

_T = TypeVar("_T")

DEFAULT_STREAM: Final = "EXOARMUR"

_STREAM_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,200}")


@dataclass(frozen=True)
class Settings:
    """A store's options, as the URL and the caller's keywords give them together."""

    servers: tuple[str, ...]
    where: str
    stream: str
    replicas: int
    timeout: float
    connect_timeout: float
    creds: str | None
    reads: str


_QUERY: Final = frozenset({"stream", "replicas", "timeout", "connect_timeout", "creds", "reads"})


def parse_url(
    url: str,
    *,
    stream: str | None = None,
    replicas: int | None = None,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    reads: str | None = None,
) -> Settings:
    """``nats://[user:password@]host[:port][,host[:port]...][?stream=…&replicas=…]``."""
    scheme, sep, rest = url.partition("://")
    if scheme != "nats" or not sep:
        raise ConfigError(f"store: {redact(url)!r} is not a nats:// URL")
    location, _, query = rest.partition("?")
    location = location.rstrip("/")
    userinfo, at, hosts = location.rpartition("@")
    if not at:
        userinfo, hosts = "", location
    if not hosts:
        raise ConfigError("store: a nats:// URL needs a host (nats://host:4222)")
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name not in _QUERY:
            raise ConfigError(
                f"store: unknown nats:// option {name!r} (known: {', '.join(sorted(_QUERY))})"
            )
        options[name] = value
    servers: list[str] = []
    shown: list[str] = []
    for host in hosts.split(","):
        host = host.strip()
        name, colon, port = host.rpartition(":")
        if not colon:
            name, port = host, "4222"
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"store: {host!r} is not host:port in {redact(url)!r}")
        servers.append(f"nats://{userinfo + '@' if userinfo else ''}{name}:{port}")
        shown.append(f"{name}:{port}")

    def pick(given: _T | None, key: str, default: _T, parse: Callable[[str], _T]) -> _T:
        text = options.get(key)
        if text is None:
            return default if given is None else given
        try:
            value = parse(text)
        except ValueError:
            raise ConfigError(f"store: nats:// option {key}={text!r} is not valid") from None
        if given is not None and given != value:
            raise ConfigError(f"store: {key} is {given!r} in the call and {value!r} in the URL")
        return value

    chosen_stream = pick(stream, "stream", DEFAULT_STREAM, str)
    if not _STREAM_NAME.fullmatch(chosen_stream):
        raise ConfigError(
            f"store: stream name {chosen_stream!r} must be letters, digits, '_' or '-'"
        )
    chosen_replicas = pick(replicas, "replicas", 1, int)
    if not 1 <= chosen_replicas <= 5:
        raise ConfigError(f"store: replicas must be 1 to 5, not {chosen_replicas}")
    chosen_timeout = pick(timeout, "timeout", 5.0, float)
    chosen_connect = pick(connect_timeout, "connect_timeout", 2.0, float)
    if not (chosen_timeout > 0 and chosen_connect > 0):
        raise ConfigError("store: timeouts must be positive numbers of seconds")
    chosen_reads = pick(reads, "reads", "leader" if chosen_replicas > 1 else "direct", str)
    if chosen_reads not in ("direct", "leader"):
        raise ConfigError(f"store: reads must be 'direct' or 'leader', not {chosen_reads!r}")
    return Settings(
        servers=tuple(servers),
        where=f"JetStream at {','.join(shown)} (stream {chosen_stream})",
        stream=chosen_stream,
        replicas=chosen_replicas,
        timeout=chosen_timeout,
        connect_timeout=chosen_connect,
        creds=options.get("creds") or None,
        reads=chosen_reads,
    )


def redact(url: str) -> str:
    """A URL for messages: never the password or token."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.partition("@")
    if not at or "/" in userinfo or "?" in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{quote(unquote(user))}:***@{tail}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
