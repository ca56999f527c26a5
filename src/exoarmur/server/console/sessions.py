"""Console sessions: an opaque cookie naming a server-side session, with its CSRF token.

A session holds the principal its API key authenticated (never the key), a
CSRF token for its forms, and when it ends. Sessions live in this process
only: a restart signs everyone out, which is the safe failure. Every use
checks the principal is still in force, so a revoked key ends its sessions
at the next request.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from ...principals import Principal

#: the cookie naming a session; ``__Host-`` is only allowed with Secure, so TLS picks the name
COOKIE = "exoarmur_console"
TLS_COOKIE = "__Host-exoarmur_console"
#: a session lasts this long from sign-in, whatever it does
DEFAULT_LIFETIME = timedelta(hours=8)
#: sessions kept at once: past it the oldest is ended, so memory stays bounded
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Session:
    token: str
    principal: Principal
    csrf: str
    expires: datetime

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class Sessions:
    """The signed-in principals of this process, by opaque token. Thread-safe."""

    def __init__(self, lifetime: timedelta = DEFAULT_LIFETIME) -> None:
        self.lifetime = lifetime
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()
        #: the sign-in form's CSRF tokens are MACs of a nonce under this per-process secret
        self._secret = secrets.token_bytes(32)

    def open(self, principal: Principal, now: datetime) -> Session:
        session = Session(
            token=secrets.token_urlsafe(32),
            principal=principal,
            csrf=secrets.token_urlsafe(32),
            expires=now + self.lifetime,
        )
        with self._lock:
            if len(self._by_token) >= MAX_SESSIONS:
                oldest = min(self._by_token.values(), key=lambda s: s.expires)
                del self._by_token[oldest.token]
            self._by_token[session.token] = session
        return session

    def find(self, token: str | None, now: datetime) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._by_token.get(token)
            if session is None:
                return None
            if now >= session.expires:
                del self._by_token[token]
                return None
            return session

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_token.pop(token, None)

    def __len__(self) -> int:
        return len(self._by_token)

    # -- the sign-in form, before there is a session ------------------------

    def signin_token(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), "sha256").hexdigest()

    def signin_token_matches(self, nonce: str | None, presented: str | None) -> bool:
        if not nonce or not presented:
            return False
        return hmac.compare_digest(self.signin_token(nonce).encode(), presented.encode())
