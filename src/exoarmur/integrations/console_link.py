"""The console page an operator opens to decide on an intent, when the public URL is known."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from ..errors import ConfigError


def check_public_url(url: object, where: str) -> str:
    """``url`` without a trailing slash if it is an http(s) URL with a host; ConfigError if not."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: must be an http:// or https:// URL with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}: must not carry a query or fragment, got {url!r}")
    return str(url).rstrip("/")


def console_link(public_url: str | None, tenant: str, intent_id: str) -> str | None:
    """The inbox of ``tenant``, scrolled to the intent's card; None without a public URL."""
    if public_url is None:
        return None
    return f"{public_url}/console/inbox?tenant={quote(tenant, safe='')}#intent-{quote(intent_id)}"
