"""Backpressure: bounded bodies and bounded work in flight, refused at once when full.

Nothing here queues. A body over the limit is answered 413 before it is
parsed (from ``Content-Length`` when the client sends one, else while the
chunks arrive). A request past the in-flight bound is answered 429 with
``Retry-After`` straight from the event loop, before it takes a worker
thread: the thread pool never holds more than the bounds admit.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import RETRY_UNAVAILABLE, TooBusy, error_response

#: default largest request body (1 MiB); an intent document is at most 256 KiB
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Limits:
    """How much the API takes on at once. Every bound refuses; none queues."""

    #: largest request body in bytes (413 beyond)
    max_body_bytes: int = MAX_BODY_BYTES
    #: submissions and votes being governed at once (429 beyond)
    max_in_flight_writes: int = 256
    #: authenticated reads being served at once (429 beyond)
    max_in_flight_reads: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_in_flight_writes", "max_in_flight_reads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class InFlight:
    """A counter of admitted requests that refuses past its bound instead of waiting."""

    def __init__(self, bound: int, what: str) -> None:
        self.bound = bound
        self.what = what
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def enter(self) -> None:
        with self._lock:
            if self._count >= self.bound:
                raise TooBusy(f"{self.bound} {self.what} already in flight; retry shortly")
            self._count += 1

    def leave(self) -> None:
        with self._lock:
            self._count -= 1


async def write_slot(request: Request) -> AsyncIterator[None]:
    """Dependency: one of the bounded places for a submission or a vote.

    Refused 503 once the service is stopping: the running ones finish, no new one starts.
    """
    if request.app.state.stopping:
        raise HTTPException(
            503,
            "the service is stopping; nothing was done, retry later",
            headers={"Retry-After": str(RETRY_UNAVAILABLE)},
        )
    slots: InFlight = request.app.state.write_slots
    slots.enter()
    try:
        yield
    finally:
        slots.leave()


async def read_slot(request: Request) -> AsyncIterator[None]:
    """Dependency: one of the bounded places for an authenticated read."""
    slots: InFlight = request.app.state.read_slots
    slots.enter()
    try:
        yield
    finally:
        slots.leave()


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes, declared or chunked."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            # Never read it: answer and close, so the rest is not even received.
            response = error_response(
                413,
                f"request body of {declared} bytes exceeds {self.limit} bytes",
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Raised inside the app's body read: the error handlers answer 413.
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
