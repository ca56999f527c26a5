"""The connection to NATS: one event loop, one connection reopened with backoff, guarded requests.

Every request has a timeout, and a lost connection fails every request in
flight at once. The client's own reconnect is off (see :class:`Link`).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import contextvars
import json
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from ...errors import StoreError, StoreUnavailable
from .chunking import Stored
from .settings import Settings, first_line

try:
    import nats
    import nats.errors
    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable(
        "the JetStream store needs nats-py: pip install 'exoarmur[jetstream]'"
    ) from exc

__all__ = [
    "PAGE_MESSAGES",
    "QUIET",
    "WRONG_LAST_SEQUENCE",
    "Client",
    "Connection",
    "Link",
    "Runtime",
    "api_failure",
    "fanout",
    "pair",
    "reply_json",
]

_T = TypeVar("_T")
_A = TypeVar("_A")
_B = TypeVar("_B")

#: messages (and bytes) one page of a log read asks for
PAGE_MESSAGES: Final = 128
_PAGE_BYTES: Final = 4 << 20
#: requests in flight at once for one operation
_FANOUT: Final = 256

# JetStream error codes (nats-server errors.json)
WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})
_NO_MESSAGE: Final = 10037

#: set in background work, which must never be the one to (re)connect: a call
#: that comes during the pause after a failed attempt would fail for nothing
QUIET: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar(
    "exoarmur_jetstream_quiet", default=False
)


class Runtime:
    """One asyncio event loop on a thread of its own; synchronous callers hand it coroutines."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float, what: str) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise StoreUnavailable(
                f"a ledger {what} took longer than {timeout:.0f}s: nothing acknowledged"
            ) from None
        except concurrent.futures.CancelledError:
            raise StoreError(f"ledger {what} cancelled: the store is closing") from None

    def stop(self) -> None:
        async def cancel_rest() -> None:
            current = asyncio.current_task()
            rest = [task for task in asyncio.all_tasks() if task is not current]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self.loop.is_closed():
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(cancel_rest(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


@dataclass
class Connection:
    """An open connection, the future that completes when it is lost, and its reply inbox."""

    nc: Nats
    lost: asyncio.Future[None]
    inbox: str
    waiting: dict[str, asyncio.Future[Msg]]


class Link:
    """One NATS connection, opened on demand and reopened after a loss with bounded backoff.

    The first attempt after a loss is immediate; each failed attempt doubles
    the pause before the next one (``backoff`` = first and largest pause, in
    seconds). A call that comes during a pause fails at once. The client's own
    reconnect is off, so that nothing is buffered and sent behind a failed
    call's back, and every request in flight when the connection drops fails
    at once (``lost``) instead of waiting for its timeout.
    """

    def __init__(self, settings: Settings, backoff: tuple[float, float]) -> None:
        self.settings = settings
        self.where = settings.where
        self._initial, self._max = backoff
        self._delay = 0.0
        self._retry_at = 0.0
        self._last_error = ""
        self.current: Connection | None = None
        self._opening: asyncio.Lock | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def nc(self) -> Nats | None:
        return None if self.current is None else self.current.nc

    async def get(self) -> Connection:
        """The open connection (opened, or reopened, if need be)."""
        if self._closed:
            raise StoreError("ledger store is closed")
        if self._usable():
            assert self.current is not None
            return self.current
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._usable():
                assert self.current is not None
                return self.current
            if QUIET.get():
                raise StoreUnavailable(f"not connected to {self.where}")
            await self._drop()
            now = time.monotonic()
            if now < self._retry_at:
                raise StoreUnavailable(
                    f"{self.where} is unreachable ({self._last_error}); "
                    f"next attempt in {self._retry_at - now:.1f}s"
                )
            self.current = await self._open(now)
            return self.current

    def _usable(self) -> bool:
        current = self.current
        return current is not None and current.nc.is_connected and not current.lost.done()

    async def _open(self, now: float) -> Connection:
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def gone() -> None:
            if not lost.done():
                lost.set_result(None)

        async def noted(exc: Exception) -> None:
            self._last_error = first_line(exc)

        settings = self.settings
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    list(settings.servers),
                    name="exoarmur-ledger",
                    allow_reconnect=False,
                    # One pass over the servers, without pauses (0 would mean: forever).
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0,
                    connect_timeout=max(1, math.ceil(settings.connect_timeout)),
                    ping_interval=max(1, math.ceil(settings.timeout)),
                    max_outstanding_pings=2,
                    error_cb=noted,
                    disconnected_cb=gone,
                    closed_cb=gone,
                    user_credentials=settings.creds,
                ),
                settings.connect_timeout * len(settings.servers) + 1.0,
            )
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            self._delay = min(self._max, self._delay * 2 if self._delay else self._initial)
            self._retry_at = now + self._delay
            self._last_error = first_line(exc) if str(exc) else "no server answered"
            raise StoreUnavailable(
                f"cannot connect to {self.where}: {self._last_error} "
                f"(next attempt in {self._delay:.1f}s)"
            ) from None
        self._delay = 0.0
        self._retry_at = 0.0
        # One inbox for every reply on this connection: a request is a publish
        # and a future, not a subscription or a task of its own.
        inbox = nc.new_inbox()
        waiting: dict[str, asyncio.Future[Msg]] = {}
        start = len(inbox) + 1

        async def answered(msg: Msg) -> None:
            future = waiting.pop(msg.subject[start:], None)
            if future is not None and not future.done():
                future.set_result(msg)

        await nc.subscribe(inbox + ".*", cb=answered)
        return Connection(nc, lost, inbox, waiting)

    def dropped(self, exc: BaseException | None = None) -> None:
        """Note that the connection failed; the next ``get`` reconnects."""
        if exc is not None:
            self._last_error = first_line(exc)
        if self.current is not None and not self.current.lost.done():
            self.current.lost.set_result(None)

    async def _drop(self) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        # Requests still waiting on this connection (another task's) fail as lost.
        for future in current.waiting.values():
            if not future.done():
                future.set_exception(nats.errors.ConnectionClosedError())
        if not current.nc.is_closed:
            closing = asyncio.ensure_future(_close_quietly(current.nc))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            await asyncio.wait({closing}, timeout=self.settings.connect_timeout)

    async def close(self) -> None:
        self._closed = True
        await self._drop()


async def _close_quietly(nc: Nats) -> None:
    """Close a connection in a task of its own: whatever its closing raises stays here."""
    with contextlib.suppress(BaseException):
        await nc.close()


#: requests sent before their replies are awaited together
_IN_FLIGHT: Final = 1024


class Client:
    """Guarded requests over a :class:`Link`: a timeout on each, and a lost connection fails all.

    ``reads="direct"`` reads through JetStream's Direct Get (binary, and batches
    of messages in one request); ``"leader"`` through the stream leader's
    message API, one message per request: on a replicated stream a Direct Get
    may be answered by a replica that has not yet applied the latest writes.
    """

    def __init__(self, link: Link) -> None:
        self.link = link
        self.where = link.where
        self.timeout = link.settings.timeout
        self.leader_reads = link.settings.reads == "leader"

    async def connection(self) -> Nats:
        return (await self.link.get()).nc

    async def _guard(self, aw: Awaitable[_T], lost: asyncio.Future[None], what: str) -> _T:
        task: asyncio.Future[Any] = asyncio.ensure_future(aw)
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done and not task.cancelled():
            exc = task.exception()
            if exc is None:
                result: _T = task.result()
                return result
            if isinstance(exc, nats.errors.Error | OSError | asyncio.CancelledError):
                self.link.dropped(exc)
                raise StoreUnavailable(
                    f"lost the connection to {self.where} during a ledger {what} "
                    f"({first_line(exc)})"
                ) from None
            raise exc
        task.cancel()
        task.add_done_callback(_retrieved)
        if lost.done() or task in done:
            raise StoreUnavailable(f"lost the connection to {self.where} during a ledger {what}")
        raise StoreUnavailable(
            f"{self.where} did not answer a ledger {what} within {self.timeout:g}s"
        )

    async def requests(
        self, items: Sequence[tuple[str, bytes, dict[str, str] | None]], *, what: str
    ) -> list[Msg]:
        """Send requests and wait for all their replies, in order (at most ``timeout`` a round)."""
        replies: list[Msg] = []
        for start in range(0, len(items), _IN_FLIGHT):
            connection = await self.link.get()
            loop = asyncio.get_running_loop()
            tokens: list[str] = []
            futures: list[asyncio.Future[Msg]] = []
            try:
                for subject, payload, headers in items[start : start + _IN_FLIGHT]:
                    token = uuid.uuid4().hex
                    future: asyncio.Future[Msg] = loop.create_future()
                    connection.waiting[token] = future
                    tokens.append(token)
                    futures.append(future)
                    try:
                        # Only buffered here; the flusher writes the whole round at once.
                        await connection.nc.publish(
                            subject, payload, reply=f"{connection.inbox}.{token}", headers=headers
                        )
                    except (nats.errors.Error, OSError) as exc:
                        self.link.dropped(exc)
                        raise StoreUnavailable(
                            f"lost the connection to {self.where} during a ledger {what} "
                            f"({first_line(exc)})"
                        ) from None
                replies.extend(await self._guard(asyncio.gather(*futures), connection.lost, what))
            finally:
                for token in tokens:
                    connection.waiting.pop(token, None)
        for reply in replies:
            if (reply.headers or {}).get("Status") == "503":
                raise StoreUnavailable(
                    f"nothing in {self.where} answers a ledger {what} "
                    "(JetStream disabled, starting, or without quorum?)"
                )
        return replies

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        what: str,
    ) -> Msg:
        (reply,) = await self.requests([(subject, payload, headers)], what=what)
        return reply

    async def api(self, subject: str, body: Mapping[str, Any] | None, *, what: str) -> Any:
        """A JetStream API request: the decoded reply, ``{"error": …}`` included."""
        payload = b"" if body is None else json.dumps(body).encode()
        return reply_json(
            await self.request(f"$JS.API.{subject}", payload, what=what), self.where, what
        )

    async def get(
        self,
        stream: str,
        *,
        seq: int | None = None,
        last: str | None = None,
        after: tuple[int, str] | None = None,
        what: str = "read",
    ) -> Stored | None:
        """One message: by stream sequence, the last on a subject, or the next on one."""
        (stored,) = await self.get_many(stream, [(seq, last, after)], what=what)
        return stored

    async def get_many(
        self,
        stream: str,
        wanted: Sequence[tuple[int | None, str | None, tuple[int, str] | None]],
        *,
        what: str = "read",
    ) -> list[Stored | None]:
        """Messages by (stream sequence | last on a subject | next on a subject), in order."""
        items: list[tuple[str, bytes, dict[str, str] | None]] = []
        for seq, last, after in wanted:
            body: dict[str, Any]
            if seq is not None:
                body = {"seq": seq}
            elif last is not None:
                body = {"last_by_subj": last}
            else:
                assert after is not None
                body = {"seq": after[0], "next_by_subj": after[1]}
            if self.leader_reads:
                items.append((f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps(body).encode(), None))
            elif last is not None:
                items.append((f"$JS.API.DIRECT.GET.{stream}.{last}", b"", None))
            else:
                items.append((f"$JS.API.DIRECT.GET.{stream}", json.dumps(body).encode(), None))
        replies = await self.requests(items, what=what)
        if self.leader_reads:
            return [self._from_leader(reply, what) for reply in replies]
        return [self._direct(reply, what) for reply in replies]

    def _from_leader(self, reply: Msg, what: str) -> Stored | None:
        answer = reply_json(reply, self.where, what)
        if "error" in answer:
            error = answer["error"]
            if error.get("err_code") == _NO_MESSAGE or error.get("code") == 404:
                return None
            raise api_failure(self.where, what, error)
        return _from_api(answer["message"])

    def _direct(self, reply: Msg, what: str) -> Stored | None:
        headers = reply.headers or {}
        status = headers.get("Status")
        if status == "404":
            return None
        if status:
            description = headers.get("Description", "")
            raise StoreError(f"{self.where} refused a ledger {what}: {status} {description}")
        return Stored(
            subject=headers.get("Nats-Subject", ""),
            seq=int(headers.get("Nats-Sequence", "0")),
            headers=headers,
            data=reply.data,
            time=headers.get("Nats-Time-Stamp", ""),
        )

    async def scan(
        self, stream: str, subjects: str, start: int, limit: int, *, what: str = "read"
    ) -> tuple[list[Stored], bool]:
        """Messages on ``subjects`` (wildcards allowed) from stream sequence ``start`` on.

        Returns at most ``limit`` of them, and whether more may follow.
        """
        if self.leader_reads:
            found: list[Stored] = []
            cursor = start
            while len(found) < limit:
                stored = await self.get(stream, after=(cursor, subjects), what=what)
                if stored is None:
                    return found, False
                found.append(stored)
                cursor = stored.seq + 1
            return found, True
        return await self._batch(stream, subjects, start, limit, what)

    async def _batch(
        self, stream: str, subjects: str, start: int, limit: int, what: str
    ) -> tuple[list[Stored], bool]:
        # A batched Direct Get (server 2.11+): one request, one reply per
        # message, then an end-of-batch status that says how many remain.
        connection = await self.link.get()
        nc, lost = connection.nc, connection.lost
        inbox = nc.new_inbox()
        subscription = await nc.subscribe(inbox)
        found: list[Stored] = []
        try:
            body = {
                "seq": start,
                "next_by_subj": subjects,
                "batch": limit,
                "max_bytes": _PAGE_BYTES,
            }
            await self._guard(
                nc.publish(f"$JS.API.DIRECT.GET.{stream}", json.dumps(body).encode(), reply=inbox),
                lost,
                what,
            )
            while True:
                reply = await self._guard(subscription.next_msg(self.timeout * 4), lost, what)
                headers = reply.headers or {}
                status = headers.get("Status")
                if status == "204":
                    return found, int(headers.get("Nats-Num-Pending", "0")) > 0
                stored = self._direct(reply, what)
                if stored is None:
                    return found, False
                found.append(stored)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def scan_all(self, stream: str, subjects: str, *, what: str = "read") -> list[Stored]:
        found: list[Stored] = []
        start = 1
        while True:
            page, more = await self.scan(stream, subjects, start, PAGE_MESSAGES, what=what)
            found.extend(page)
            if not page or not more:
                return found
            start = page[-1].seq + 1


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark the outcome of a future nobody waits for any more as seen (no log noise)."""
    if not future.cancelled():
        future.exception()


def reply_json(reply: Msg, where: str, what: str) -> Any:
    try:
        return json.loads(reply.data)
    except ValueError:
        raise StoreError(f"{where} answered a ledger {what} with no JSON") from None


def api_failure(where: str, what: str, error: Mapping[str, Any]) -> StoreError:
    description = error.get("description", "unknown error")
    code = error.get("err_code", error.get("code", "?"))
    if error.get("code") == 503:
        return StoreUnavailable(f"{where} cannot serve a ledger {what} now: {description}")
    return StoreError(f"{where} refused a ledger {what}: {description} (error {code})")


def _from_api(message: Mapping[str, Any]) -> Stored:
    raw = base64.b64decode(message.get("hdrs") or "")
    return Stored(
        subject=str(message["subject"]),
        seq=int(message["seq"]),
        headers=_header_block(raw),
        data=base64.b64decode(message.get("data") or ""),
        time=str(message.get("time", "")),
    )


def _header_block(raw: bytes) -> dict[str, str]:
    """``NATS/1.0\\r\\nName: value\\r\\n…`` as a dict (the message API sends headers raw)."""
    headers: dict[str, str] = {}
    for line in raw.decode(errors="replace").split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip()] = value.strip()
    return headers


async def fanout(coros: Sequence[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Run requests concurrently, at most ``_FANOUT`` in flight; results in order.

    On the first failure the rest are cancelled (or never started) and the
    failure is raised: nothing is left running behind the caller's back.
    """
    results: list[_T] = []
    start = 0
    try:
        while start < len(coros):
            tasks = [asyncio.ensure_future(c) for c in coros[start : start + _FANOUT]]
            start += len(tasks)
            try:
                results.extend(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
    except BaseException:
        for unstarted in coros[start:]:
            unstarted.close()
        raise
    return results


async def pair(first: Coroutine[Any, Any, _A], second: Coroutine[Any, Any, _B]) -> tuple[_A, _B]:
    """Two requests at once; if one fails, the other is cancelled."""
    one, two = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        return await one, await two
    except BaseException:
        for task in (one, two):
            task.cancel()
        await asyncio.gather(one, two, return_exceptions=True)
        raise
