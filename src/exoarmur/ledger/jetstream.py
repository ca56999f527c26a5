"""The JetStream store: the ledger in NATS JetStream, shared by processes on many machines.

Same protocol, same semantics, same errors, same bytes and Merkle roots as
:mod:`exoarmur.ledger.sqlite` and :mod:`exoarmur.ledger.postgres`. This module
must never acknowledge an append before JetStream acknowledged its publish,
and must never let two writers give one position to two events.

The log (one stream, file storage; ``stream`` names it, default ``EXOARMUR``)::

    subject   <prefix>.<tenant token>.events          prefix = the stream name, lower case
    message   one per append group: its events' canonical bytes, one per line (NDJSON)
    headers   Exo-Seq     sequence number of the first event in the message
              Exo-Count   how many events the message holds
              Exo-Leaves  their leaf hashes, base64 of 32 bytes each (the *stored* leaves)
              Exo-Keys    {"offset": idempotency key} for events that take one
              Nats-Msg-Id <tenant token>:<first seq>:<hash of the message>

The stream is the truth: the order of messages on a tenant's subject is the
order of its events. Writers keep it total with JetStream's optimistic
concurrency: every publish carries ``Nats-Expected-Last-Subject-Sequence``, the
stream sequence of the tenant's last message as the writer last saw it. If
another writer (thread, process or machine) appended since, the server refuses
the publish and stores nothing; the writer re-reads the tail, catches up, checks
``expect=`` and idempotency keys again and retries, or refuses with ``Conflict``
/ ``DuplicateIntent``. The server compares and stores under one lock (in a
cluster the leader checks before it proposes, and refuses a second
conditional publish on a subject while one is in flight), so of two writers
that saw the same tail exactly one wins, and no sequence number is skipped or
used twice.

Atomicity: an append group (every append the writer thread collected, see
group commit below) is one message, so readers and other writers see all of
it or none of it. A group too large for one message (the server's
``max_payload``, or 60 000 bytes of headers, i.e. about 1360 leaves) is split into
several messages published as one JetStream *atomic batch* (server 2.12 or
later, ``allow_atomic``): the server stores the batch whole, after checking
the expected last sequence against the stream as it was before the batch, or
stores nothing. Each message of a batch holds whole events; the events'
canonical bytes and leaf hashes do not depend on how they were packed.

Everything else is derived from the log and kept in key-value buckets, so
that no read scans the log: ``<STREAM>_TREE`` (perfect-subtree hashes, the
index position of every event, the projected tree size, checkpoints),
``<STREAM>_INDEX`` (event ids, intents, correlations, types, the latest event
of each type) and ``<STREAM>_KEYS`` (idempotency key -> intent id, written
with ``create``, i.e. only if absent). The buckets trail the log: a writer
updates them after its publish was acknowledged and before it returns; a
writer that died in between leaves them behind, and whoever next needs them
(reader or writer, any process) indexes the missing messages first. Every
derived value is a function of the log, so two processes indexing the same
message write the same values; the indexed size (``<tenant>.head``) is moved
after the values it covers, only forward, by compare-and-set. Reads are
snapshots: an index answer counts only if this process knew the indexes
complete up to the tenant's last message, read together with the query, and
lists leave out entries beyond that size (a newer append, half indexed).

Durability: an append returns after the server's publish acknowledgement,
which JetStream sends once the message is in the stream's file store (with
``replicas`` > 1: on a quorum of replicas). A lost connection or a timeout
while publishing fails the whole group with
:class:`~exoarmur.errors.StoreUnavailable`: not acknowledged, possibly
recorded; a caller's retry with the same idempotency key finds the first
outcome.

Connections: one NATS connection per store, in one asyncio event loop on a
thread of its own; the synchronous protocol hands coroutines to it, and every
request has a timeout. The client's own reconnect is off: a lost connection
fails every call in flight at once, the next call reconnects, and while the
server stays away attempts are spaced by a bounded exponential backoff and
calls in between fail at once.

Group commit: one writer task per store takes every append waiting (up to
``max_batch``) and publishes each tenant's share as one message, so N
concurrent submitters pay one acknowledgement, not N. A refused append
(duplicate key, ``expect=`` conflict, bad draft) is left out alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import contextvars
import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, quote, unquote

from ..errors import (
    ConfigError,
    Conflict,
    DuplicateIntent,
    ExoArmurError,
    InputError,
    LedgerCorrupt,
    StoreError,
    StoreUnavailable,
)
from ..model.event import (
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_STARTED,
    Event,
    EventDraft,
    event_bytes,
)
from .merkle import HASH_SIZE, Frontier, NodeKey, leaf_hash, perfect_subtrees
from .store import (
    KeyIndex,
    check_derived,
    check_key_owner,
    decode_event,
    key_problems,
)

try:
    import nats
    import nats.errors
    from nats.aio.client import Client as Nats
    from nats.aio.msg import Msg
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise StoreUnavailable(
        "the JetStream store needs nats-py: pip install 'exoarmur[jetstream]'"
    ) from exc

__all__ = ["DEFAULT_STREAM", "JetStreamStore", "Layout", "RunLock", "subject_token"]

_T = TypeVar("_T")
_A = TypeVar("_A")
_B = TypeVar("_B")

DEFAULT_STREAM: Final = "EXOARMUR"

#: ADR-50: a server refuses an atomic batch of more messages than this
_MAX_BATCH_MESSAGES: Final = 1000
#: the server stores a message's headers behind a 16-bit length; stay well below
_MAX_HEADER_BYTES: Final = 60_000
#: room for the Nats-* headers beside ours, within max_payload
_HEADER_ALLOWANCE: Final = 1024
#: base64 characters per leaf hash, rounded up
_LEAF_HEADER_BYTES: Final = 44
#: one append may hold at most this many events, and this many max_payloads of bytes,
#: so that it always fits one atomic batch
_MAX_APPEND_EVENTS: Final = 100_000
_MAX_APPEND_PAYLOADS: Final = 100
#: idempotency keys longer than this are refused (they travel in a message's headers)
_MAX_KEY_CHARS: Final = 4096
#: messages (and bytes) one page of a log read asks for
_PAGE_MESSAGES: Final = 128
_PAGE_BYTES: Final = 4 << 20
#: requests in flight at once for one operation
_FANOUT: Final = 256
#: event locations a store keeps in memory per tenant
_REMEMBERED: Final = 200_000

# JetStream error codes (nats-server errors.json)
_WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})
_BATCH_HOLDS_DUPLICATE: Final = 10201
_STREAM_NOT_FOUND: Final = 10059
_NO_MESSAGE: Final = 10037
_STREAM_NAME_IN_USE: Final = 10058

_HEAD: Final = "head"
_CHECKPOINT: Final = "cp"
_PLAIN_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]+")
_MAX_PLAIN_TOKEN: Final = 128
_STREAM_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,200}")
_KV_OPERATION: Final = "KV-Operation"
#: set in background work, which must never be the one to (re)connect: a call
#: that comes during the pause after a failed attempt would fail for nothing
_QUIET: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar(
    "exoarmur_jetstream_quiet", default=False
)


# -- names -----------------------------------------------------------------------


def subject_token(name: str) -> str:
    """A name (tenant, event id, intent, type, key) as one NATS subject token and KV key part.

    Names of letters, digits, ``_`` and ``-`` stand for themselves: every tenant
    the intent model accepts, and the system log ``_system`` (an underscore is
    legal in subjects and KV keys, and no tenant name may start with one). Any
    other name becomes ``=`` and the hex of its UTF-8 bytes, which no plain name
    can equal: ``intent.recorded`` -> ``=696e74656e742e7265636f72646564``. A
    name longer than that form allows becomes ``==`` and the SHA-256 of its
    bytes, so that no subject outgrows the server's protocol line; such names
    are looked up, never listed, and tenants may not have one.
    """
    if len(name) <= _MAX_PLAIN_TOKEN and _PLAIN_TOKEN.fullmatch(name):
        return name
    data = name.encode()
    if len(data) * 2 <= _MAX_PLAIN_TOKEN * 2:
        return "=" + data.hex()
    return "==" + hashlib.sha256(data).hexdigest()


def _untoken(token: str) -> str:
    if token.startswith("=") and not token.startswith("=="):
        return bytes.fromhex(token[1:]).decode()
    return token


@dataclass(frozen=True)
class Layout:
    """Where a ledger lives in JetStream: the stream, its subjects and its buckets."""

    stream: str

    @property
    def prefix(self) -> str:
        return self.stream.lower()

    @property
    def subjects(self) -> str:
        return f"{self.prefix}.*.events"

    def subject(self, tenant: str) -> str:
        return f"{self.prefix}.{subject_token(tenant)}.events"

    def tenant_of(self, subject: str) -> str:
        return _untoken(subject.split(".")[1])

    @property
    def tree(self) -> str:
        return f"{self.stream}_TREE"

    @property
    def index(self) -> str:
        return f"{self.stream}_INDEX"

    @property
    def keys(self) -> str:
        return f"{self.stream}_KEYS"

    @property
    def run(self) -> str:
        return f"{self.stream}_RUN"

    @staticmethod
    def kv_stream(bucket: str) -> str:
        return f"KV_{bucket}"

    @staticmethod
    def kv_subject(bucket: str, key: str) -> str:
        return f"$KV.{bucket}.{key}"


# -- settings --------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    servers: tuple[str, ...]
    where: str
    stream: str
    replicas: int
    timeout: float
    connect_timeout: float
    creds: str | None
    reads: str


_QUERY: Final = frozenset({"stream", "replicas", "timeout", "connect_timeout", "creds", "reads"})


def _parse_url(
    url: str,
    *,
    stream: str | None = None,
    replicas: int | None = None,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    reads: str | None = None,
) -> _Settings:
    """``nats://[user:password@]host[:port][,host[:port]...][?stream=…&replicas=…]``."""
    scheme, sep, rest = url.partition("://")
    if scheme != "nats" or not sep:
        raise ConfigError(f"store: {_redact(url)!r} is not a nats:// URL")
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
            raise ConfigError(f"store: {host!r} is not host:port in {_redact(url)!r}")
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
    return _Settings(
        servers=tuple(servers),
        where=f"JetStream at {','.join(shown)} (stream {chosen_stream})",
        stream=chosen_stream,
        replicas=chosen_replicas,
        timeout=chosen_timeout,
        connect_timeout=chosen_connect,
        creds=options.get("creds") or None,
        reads=chosen_reads,
    )


def _redact(url: str) -> str:
    """A URL for messages: never the password or token."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, tail = rest.partition("@")
    if not at or "/" in userinfo or "?" in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{quote(unquote(user))}:***@{tail}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the event loop and the connection ------------------------------------------------


class _Runtime:
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


@dataclass(frozen=True)
class _Stored:
    """One message as the stream holds it."""

    subject: str
    seq: int
    headers: Mapping[str, str]
    data: bytes
    time: str = ""


@dataclass
class _Connection:
    """An open connection, the future that completes when it is lost, and its reply inbox."""

    nc: Nats
    lost: asyncio.Future[None]
    inbox: str
    waiting: dict[str, asyncio.Future[Msg]]


class _Link:
    """One NATS connection, opened on demand and reopened after a loss with bounded backoff.

    The first attempt after a loss is immediate; each failed attempt doubles
    the pause before the next one (``backoff`` = first and largest pause, in
    seconds). A call that comes during a pause fails at once. The client's own
    reconnect is off, so that nothing is buffered and sent behind a failed
    call's back, and every request in flight when the connection drops fails
    at once (``lost``) instead of waiting for its timeout.
    """

    def __init__(self, settings: _Settings, backoff: tuple[float, float]) -> None:
        self.settings = settings
        self.where = settings.where
        self._initial, self._max = backoff
        self._delay = 0.0
        self._retry_at = 0.0
        self._last_error = ""
        self.current: _Connection | None = None
        self._opening: asyncio.Lock | None = None
        self._closing: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def nc(self) -> Nats | None:
        return None if self.current is None else self.current.nc

    async def get(self) -> _Connection:
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
            if _QUIET.get():
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

    async def _open(self, now: float) -> _Connection:
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def gone() -> None:
            if not lost.done():
                lost.set_result(None)

        async def noted(exc: Exception) -> None:
            self._last_error = _first_line(exc)

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
            self._last_error = _first_line(exc) if str(exc) else "no server answered"
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
        return _Connection(nc, lost, inbox, waiting)

    def dropped(self, exc: BaseException | None = None) -> None:
        """Note that the connection failed; the next ``get`` reconnects."""
        if exc is not None:
            self._last_error = _first_line(exc)
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


class _Client:
    """Guarded requests over a :class:`_Link`: a timeout on each, and a lost connection fails all.

    ``reads="direct"`` reads through JetStream's Direct Get (binary, and batches
    of messages in one request); ``"leader"`` through the stream leader's
    message API, one message per request: on a replicated stream a Direct Get
    may be answered by a replica that has not yet applied the latest writes.
    """

    def __init__(self, link: _Link) -> None:
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
                    f"({_first_line(exc)})"
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
                            f"({_first_line(exc)})"
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
        return _json(await self.request(f"$JS.API.{subject}", payload, what=what), self.where, what)

    async def get(
        self,
        stream: str,
        *,
        seq: int | None = None,
        last: str | None = None,
        after: tuple[int, str] | None = None,
        what: str = "read",
    ) -> _Stored | None:
        """One message: by stream sequence, the last on a subject, or the next on one."""
        (stored,) = await self.get_many(stream, [(seq, last, after)], what=what)
        return stored

    async def get_many(
        self,
        stream: str,
        wanted: Sequence[tuple[int | None, str | None, tuple[int, str] | None]],
        *,
        what: str = "read",
    ) -> list[_Stored | None]:
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

    def _from_leader(self, reply: Msg, what: str) -> _Stored | None:
        answer = _json(reply, self.where, what)
        if "error" in answer:
            error = answer["error"]
            if error.get("err_code") == _NO_MESSAGE or error.get("code") == 404:
                return None
            raise _api_failure(self.where, what, error)
        return _from_api(answer["message"])

    def _direct(self, reply: Msg, what: str) -> _Stored | None:
        headers = reply.headers or {}
        status = headers.get("Status")
        if status == "404":
            return None
        if status:
            description = headers.get("Description", "")
            raise StoreError(f"{self.where} refused a ledger {what}: {status} {description}")
        return _Stored(
            subject=headers.get("Nats-Subject", ""),
            seq=int(headers.get("Nats-Sequence", "0")),
            headers=headers,
            data=reply.data,
            time=headers.get("Nats-Time-Stamp", ""),
        )

    async def scan(
        self, stream: str, subjects: str, start: int, limit: int, *, what: str = "read"
    ) -> tuple[list[_Stored], bool]:
        """Messages on ``subjects`` (wildcards allowed) from stream sequence ``start`` on.

        Returns at most ``limit`` of them, and whether more may follow.
        """
        if self.leader_reads:
            found: list[_Stored] = []
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
    ) -> tuple[list[_Stored], bool]:
        # A batched Direct Get (server 2.11+): one request, one reply per
        # message, then an end-of-batch status that says how many remain.
        connection = await self.link.get()
        nc, lost = connection.nc, connection.lost
        inbox = nc.new_inbox()
        subscription = await nc.subscribe(inbox)
        found: list[_Stored] = []
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

    async def scan_all(self, stream: str, subjects: str, *, what: str = "read") -> list[_Stored]:
        found: list[_Stored] = []
        start = 1
        while True:
            page, more = await self.scan(stream, subjects, start, _PAGE_MESSAGES, what=what)
            found.extend(page)
            if not page or not more:
                return found
            start = page[-1].seq + 1

    # -- key-value --------------------------------------------------------------

    async def kv_get(self, bucket: str, key: str, *, what: str = "read") -> _Stored | None:
        (stored,) = await self.kv_get_many(bucket, [key], what=what)
        return stored

    async def kv_get_many(
        self, bucket: str, keys: Sequence[str], *, what: str = "read"
    ) -> list[_Stored | None]:
        found = await self.get_many(
            Layout.kv_stream(bucket),
            [(None, Layout.kv_subject(bucket, key), None) for key in keys],
            what=what,
        )
        return [
            None if s is None or s.headers.get(_KV_OPERATION) in ("DEL", "PURGE") else s
            for s in found
        ]

    async def kv_put_many(
        self, writes: Sequence[tuple[str, str, bytes]], *, what: str = "index write"
    ) -> None:
        """Write values unconditionally: (bucket, key, value) each."""
        replies = await self.requests(
            [(Layout.kv_subject(bucket, key), value, None) for bucket, key, value in writes],
            what=what,
        )
        for reply in replies:
            answer = _json(reply, self.where, what)
            if "error" in answer:
                raise _api_failure(self.where, what, answer["error"])

    async def kv_put(
        self,
        bucket: str,
        key: str,
        value: bytes,
        *,
        revision: int | None = None,
        ttl: float | None = None,
        what: str = "index write",
    ) -> int | None:
        """Write a value; with ``revision``, only over that revision (0: only if absent).

        The new revision, or None when the expectation failed.
        """
        headers: dict[str, str] = {}
        if revision is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(revision)
        if ttl is not None:
            headers["Nats-TTL"] = f"{max(1, math.ceil(ttl))}s"
        reply = await self.request(
            Layout.kv_subject(bucket, key), value, headers or None, what=what
        )
        answer = _json(reply, self.where, what)
        if "error" in answer:
            if answer["error"].get("err_code") in _WRONG_LAST_SEQUENCE:
                return None
            raise _api_failure(self.where, what, answer["error"])
        return int(answer["seq"])

    async def kv_create(
        self, bucket: str, key: str, value: bytes, *, ttl: float | None = None, what: str
    ) -> bool:
        """Write a value only if the key is absent (or deleted); True if this call wrote it."""
        if await self.kv_put(bucket, key, value, revision=0, ttl=ttl, what=what) is not None:
            return True
        # A deleted key keeps a marker: take its place only over that revision.
        stored = await self.get(
            Layout.kv_stream(bucket), last=Layout.kv_subject(bucket, key), what=what
        )
        if stored is None or stored.headers.get(_KV_OPERATION) not in ("DEL", "PURGE"):
            return False
        revision = stored.seq
        written = await self.kv_put(bucket, key, value, revision=revision, ttl=ttl, what=what)
        return written is not None

    async def kv_delete(self, bucket: str, key: str, *, what: str) -> None:
        reply = await self.request(
            Layout.kv_subject(bucket, key), b"", {_KV_OPERATION: "DEL"}, what=what
        )
        answer = _json(reply, self.where, what)
        if "error" in answer:
            raise _api_failure(self.where, what, answer["error"])

    async def kv_scan(self, bucket: str, keys: str, *, what: str = "read") -> list[_Stored]:
        found = await self.scan_all(
            Layout.kv_stream(bucket), Layout.kv_subject(bucket, keys), what=what
        )
        return [s for s in found if s.headers.get(_KV_OPERATION) not in ("DEL", "PURGE")]


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark the outcome of a future nobody waits for any more as seen (no log noise)."""
    if not future.cancelled():
        future.exception()


def _json(reply: Msg, where: str, what: str) -> Any:
    try:
        return json.loads(reply.data)
    except ValueError:
        raise StoreError(f"{where} answered a ledger {what} with no JSON") from None


def _api_failure(where: str, what: str, error: Mapping[str, Any]) -> StoreError:
    description = error.get("description", "unknown error")
    code = error.get("err_code", error.get("code", "?"))
    if error.get("code") == 503:
        return StoreUnavailable(f"{where} cannot serve a ledger {what} now: {description}")
    return StoreError(f"{where} refused a ledger {what}: {description} (error {code})")


def _from_api(message: Mapping[str, Any]) -> _Stored:
    raw = base64.b64decode(message.get("hdrs") or "")
    return _Stored(
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


async def _fanout(coros: Sequence[Coroutine[Any, Any, _T]]) -> list[_T]:
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


# -- the layout: create, or check that what exists is safe --------------------------------

#: JetStream's wire form of a stream's configuration (durations in nanoseconds)
_StreamConfig = dict[str, Any]
_TWO_MINUTES_NS: Final = 120 * 10**9


def _ledger_stream(layout: Layout, replicas: int) -> _StreamConfig:
    return {
        "name": layout.stream,
        "description": "ExoArmur ledger: one subject per tenant, one message per append",
        "subjects": [layout.subjects],
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": -1,
        "max_msg_size": -1,
        "discard": "old",
        "duplicate_window": _TWO_MINUTES_NS,
        "allow_direct": True,
        "allow_atomic": True,
        "deny_delete": True,
        "deny_purge": True,
    }


def _bucket_stream(bucket: str, replicas: int, *, ttl: bool = False) -> _StreamConfig:
    """A key-value bucket laid out as ``nats kv`` lays it out, one revision per key."""
    config: _StreamConfig = {
        "name": Layout.kv_stream(bucket),
        "description": "ExoArmur ledger index (derived from the ledger stream)",
        "subjects": [f"$KV.{bucket}.>"],
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": 1,
        "max_msg_size": -1,
        "discard": "new",
        "duplicate_window": _TWO_MINUTES_NS,
        "allow_direct": True,
        "allow_rollup_hdrs": True,
        "deny_delete": True,
    }
    if ttl:
        config["allow_msg_ttl"] = True
    return config


def _unsafe(found: _StreamConfig, wanted: _StreamConfig) -> list[str]:
    """What makes an existing stream unfit to hold (or index) a ledger; empty when fit."""
    problems: list[str] = []
    if found.get("storage") != "file":
        problems.append("storage is not file")
    if found.get("num_replicas", 1) != wanted["num_replicas"]:
        problems.append(
            f"{found.get('num_replicas', 1)} replicas, the URL asks for {wanted['num_replicas']}"
        )
    if found.get("retention", "limits") != "limits":
        problems.append("retention is not limits (events would be removed)")
    for limit in ("max_msgs", "max_bytes"):
        if (found.get(limit) or -1) > 0:
            problems.append(f"{limit} is set (old events would be removed)")
    if found.get("max_age"):
        problems.append("max_age is set (old events would expire)")
    if (found.get("max_msgs_per_subject") or -1) != wanted["max_msgs_per_subject"]:
        problems.append(f"max_msgs_per_subject is {found.get('max_msgs_per_subject')}")
    if found.get("no_ack"):
        problems.append("no_ack is set (writes would not be acknowledged)")
    if found.get("persist_mode") == "async":
        problems.append("persist_mode is async (acknowledged before stored)")
    for flag in ("allow_direct", "allow_atomic", "deny_delete", "deny_purge", "allow_msg_ttl"):
        if wanted.get(flag) and not found.get(flag):
            problems.append(f"{flag} is off")
    if not set(wanted["subjects"]) <= set(found.get("subjects") or ()):
        problems.append(f"it does not hold subjects {wanted['subjects'][0]}")
    return problems


#: attempts at creating a stream while the server answers that it cannot yet
_CREATE_ATTEMPTS: Final = 6


async def _create_stream(client: _Client, wanted: _StreamConfig) -> Any:
    """STREAM.CREATE, tried again (bounded, backing off) on a server error.

    A server still starting, or still removing a stream of that name, answers
    500 "error creating store for stream"; a create that did happen answers
    "name in use" on the next attempt, which the caller handles.
    """
    delay = 0.05
    for _ in range(_CREATE_ATTEMPTS - 1):
        info = await client.api(f"STREAM.CREATE.{wanted['name']}", wanted, what="setup")
        if "error" not in info or info["error"].get("code") not in (500, 503):
            return info
        await asyncio.sleep(delay)
        delay *= 2
    return await client.api(f"STREAM.CREATE.{wanted['name']}", wanted, what="setup")


async def _ensure_stream(client: _Client, wanted: _StreamConfig, *, create: bool = True) -> None:
    """Create the stream ``wanted`` describes, or check that the one there is fit for it."""
    name = wanted["name"]
    info = await client.api(f"STREAM.INFO.{name}", None, what="setup")
    if "error" in info:
        if info["error"].get("err_code") != _STREAM_NOT_FOUND:
            raise _api_failure(client.where, "setup", info["error"])
        if not create:
            raise StoreUnavailable(f"stream {name} is missing from {client.where}")
        info = await _create_stream(client, wanted)
        if "error" in info and info["error"].get("err_code") == _STREAM_NAME_IN_USE:
            # Another process created it first; look at what it made.
            info = await client.api(f"STREAM.INFO.{name}", None, what="setup")
        if "error" in info:
            raise StoreUnavailable(
                f"cannot create stream {name} in {client.where}: "
                f"{info['error'].get('description', 'unknown error')}"
            )
    problems = _unsafe(info.get("config") or {}, wanted)
    if problems:
        raise StoreUnavailable(
            f"stream {name} in {client.where} cannot hold a ledger safely: "
            f"{'; '.join(problems)} (give ExoArmur a stream of its own, or fix it with "
            "`nats stream edit`)"
        )


# -- log messages ------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """What the indexes need of one event."""

    event_id: str
    type: str
    correlation_id: str
    intent_id: str | None


def _facts(line: bytes, where: str) -> _Facts:
    try:
        data = json.loads(line)
        intent = data.get("intent_id")
        return _Facts(
            str(data["event_id"]),
            str(data["type"]),
            str(data["correlation_id"]),
            None if intent is None else str(intent),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LedgerCorrupt(
            f"{where}: stored event bytes do not decode: {_first_line(exc)}"
        ) from None


@dataclass
class _Chunk:
    """One message of the log: consecutive events of one tenant."""

    first: int
    lines: list[bytes]
    leaves: list[bytes]
    keys: dict[int, str]
    facts: list[_Facts] | None = None
    #: the tenant whose log the message is on (named in every error about it)
    log: str = ""

    @property
    def end(self) -> int:
        return self.first + len(self.lines)

    def fact(self, offset: int) -> _Facts:
        if self.facts is None:
            self.facts = [
                _facts(line, f"log {self.log!r} seq {self.first + i}")
                for i, line in enumerate(self.lines)
            ]
        return self.facts[offset]

    def event(self, offset: int) -> Event:
        return decode_event(self.log, self.first + offset, self.lines[offset], self.leaves[offset])

    @property
    def data(self) -> bytes:
        return b"\n".join(self.lines)

    def headers(self, token: str) -> dict[str, str]:
        leaves = b"".join(self.leaves)
        headers = {
            "Exo-Seq": str(self.first),
            "Exo-Count": str(len(self.lines)),
            "Exo-Leaves": base64.b64encode(leaves).decode(),
        }
        if self.keys:
            headers["Exo-Keys"] = json.dumps(
                {str(offset): key for offset, key in self.keys.items()}, separators=(",", ":")
            )
        digest = hashlib.sha256(self.data + leaves).hexdigest()[:32]
        headers["Nats-Msg-Id"] = f"{token}:{self.first}:{digest}"
        return headers

    @classmethod
    def parse(cls, stored: _Stored, subject: str, log: str) -> _Chunk:
        where = f"message {stored.seq} of the ledger stream"
        if stored.subject != subject:
            raise LedgerCorrupt(f"{where} is on {stored.subject}, not {subject}")
        headers = stored.headers
        try:
            first = int(headers["Exo-Seq"])
            count = int(headers["Exo-Count"])
            leaves = base64.b64decode(headers["Exo-Leaves"], validate=True)
            keys = {int(k): str(v) for k, v in json.loads(headers.get("Exo-Keys", "{}")).items()}
        except (KeyError, ValueError, TypeError, AttributeError, binascii.Error) as exc:
            raise LedgerCorrupt(
                f"{where} is not a ledger message ({type(exc).__name__}: {exc})"
            ) from None
        lines = stored.data.split(b"\n") if count else []
        if len(lines) != count or len(leaves) != count * HASH_SIZE or first < 0:
            raise LedgerCorrupt(
                f"{where} says {count} events from seq {first}, and holds "
                f"{len(lines)} lines and {len(leaves) // HASH_SIZE} leaf hashes"
            )
        return cls(
            first=first,
            lines=lines,
            leaves=[leaves[i : i + HASH_SIZE] for i in range(0, len(leaves), HASH_SIZE)],
            keys=keys,
            log=log,
        )


@dataclass(frozen=True)
class _Tip:
    """A tenant's log as this process last saw it, with the indexes complete up to it."""

    size: int
    #: stream sequence of the tenant's last message (0: none)
    msg: int
    #: the Merkle frontier at ``size``, for writers (loaded on demand)
    frontier: Frontier | None = None


@dataclass
class _Append:
    tenant: str
    drafts: Sequence[EventDraft]
    expect: tuple[str, int] | None
    done: asyncio.Future[list[Event]]
    abandoned: bool = False

    def settle(self, result: list[Event] | BaseException) -> None:
        if self.done.done():
            return
        if isinstance(result, BaseException):
            self.done.set_exception(result)
        else:
            self.done.set_result(result)


@dataclass
class _Planned:
    request: _Append
    events: list[Event]
    keys: list[str | None]


class _Refused(StoreError):
    """One append of a group is refused (bad draft, taken event id, too large); the others go on."""


class _Raced(Exception):
    """Another writer appended to the tenant since our tip: catch up and plan again."""


_REFUSALS: Final = (DuplicateIntent, Conflict, _Refused)


# -- the store -----------------------------------------------------------------------


class JetStreamStore:
    """A :class:`~exoarmur.ledger.store.LedgerStore` in NATS JetStream.

    ``url`` is ``nats://[user:password@]host:4222[,host:4222…]`` with optional
    query options ``stream`` (default ``EXOARMUR``), ``replicas`` (1-5, default
    1), ``timeout`` (seconds for one request, default 5), ``connect_timeout``
    (default 2), ``creds`` (a NATS credentials file) and ``reads`` (``direct``,
    the default on one replica, or ``leader``, the default on more). Keyword
    arguments give the same settings; a setting given both ways must agree.
    ``reconnect_backoff`` is the (first, largest) pause between connection
    attempts while the server is away.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str | None = None,
        replicas: int | None = None,
        max_batch: int = 512,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        reconnect_backoff: tuple[float, float] = (0.05, 2.0),
        reads: str | None = None,
    ) -> None:
        settings = _parse_url(
            url,
            stream=stream,
            replicas=replicas,
            timeout=timeout,
            connect_timeout=connect_timeout,
            reads=reads,
        )
        self.layout = Layout(settings.stream)
        self.replicas = settings.replicas
        #: where the ledger lives, without credentials (for messages and logs)
        self.where = settings.where
        self._max_batch = max_batch
        self._timeout = settings.timeout
        # A whole call may take several requests (and, for an append, a wait in
        # the queue and a few lost races); each request has its own timeout.
        self._call_timeout = settings.timeout * 6 + settings.connect_timeout
        self._link = _Link(settings, reconnect_backoff)
        self._client = _Client(self._link)
        self._tips: dict[str, _Tip] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: (bucket, key) -> (revision, number) of compare-and-set keys this store touched
        self._revisions: dict[tuple[str, str], tuple[int, int]] = {}
        #: tenant -> event seq -> stream sequence of its message (immutable, so cached)
        self._where: dict[str, dict[int, int]] = {}
        #: heads to write, and the tasks writing them
        self._heads: dict[str, tuple[int, int]] = {}
        self._head_tasks: dict[str, asyncio.Task[None]] = {}
        self._queue: asyncio.Queue[_Append | None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        #: messages published by this store: the group-commit ratio is appends / commits
        self.commits = 0
        self._runtime = _Runtime("exoarmur-jetstream")
        try:
            self._runtime.run(self._open(), self._call_timeout, "setup")
        except BaseException:
            self._runtime.run(self._link.close(), self._call_timeout, "close")
            self._runtime.stop()
            raise

    async def _open(self) -> None:
        await self._client.connection()
        await _ensure_stream(self._client, _ledger_stream(self.layout, self.replicas))
        for bucket in (self.layout.tree, self.layout.index, self.layout.keys):
            await _ensure_stream(self._client, _bucket_stream(bucket, self.replicas))
        self._queue = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def _call(self, coro: Coroutine[Any, Any, _T], what: str = "read") -> _T:
        if self._closed:
            coro.close()
            raise StoreError("ledger store is closed")
        return self._runtime.run(coro, self._call_timeout, what)

    def _lock(self, tenant: str) -> asyncio.Lock:
        lock = self._locks.get(tenant)
        if lock is None:
            lock = self._locks[tenant] = asyncio.Lock()
        return lock

    # -- writes -----------------------------------------------------------------

    def append(
        self,
        tenant: str,
        drafts: Sequence[EventDraft],
        *,
        expect: tuple[str, int] | None = None,
    ) -> list[Event]:
        if not drafts:
            return []
        if subject_token(tenant).startswith("=="):
            # Refused here: its subject could not be listed back as a tenant name.
            raise StoreError(f"tenant name of {len(tenant)} characters is too long for JetStream")
        return self._call(self._submit(tenant, list(drafts), expect), "append")

    async def _submit(
        self, tenant: str, drafts: list[EventDraft], expect: tuple[str, int] | None
    ) -> list[Event]:
        assert self._queue is not None
        request = _Append(tenant, drafts, expect, asyncio.get_running_loop().create_future())
        await self._queue.put(request)
        try:
            return await request.done
        except asyncio.CancelledError:
            request.abandoned = True  # timed out in the queue: never publish it
            raise

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stop = True
                    break
                batch.append(more)
            groups: dict[str, list[_Append]] = {}
            for request in batch:
                if not request.abandoned and not request.done.done():
                    groups.setdefault(request.tenant, []).append(request)
            await asyncio.gather(*(self._commit(t, group) for t, group in groups.items()))
            if stop:
                return

    async def _commit(self, tenant: str, requests: list[_Append]) -> None:
        """Publish one tenant's share of a group; settle every request, never raise."""
        pending = list(requests)
        deadline = time.monotonic() + self._timeout * 3
        try:
            async with self._lock(tenant):
                while pending:
                    tip = await self._writer_tip(tenant)
                    unit = await self._plan(tenant, tip, pending)
                    pending = [r for r in pending if not r.done.done()]
                    if not unit:
                        continue  # some were refused: plan the others again
                    try:
                        last_msg = await self._publish(tenant, tip, unit)
                    except _Raced:
                        self._tips.pop(tenant, None)
                        if time.monotonic() > deadline:
                            raise StoreUnavailable(
                                f"appends to tenant {tenant!r} kept losing the race to other "
                                f"writers for {self._timeout * 3:g}s: nothing acknowledged"
                            ) from None
                        continue
                    self.commits += 1
                    try:
                        await self._index(tenant, tip, [chunk for chunk, _ in unit], last_msg)
                    except (StoreError, LedgerCorrupt):
                        # Durable already, so acknowledged; whoever needs the
                        # indexes next catches them up from the log.
                        self._tips.pop(tenant, None)
                    for _, ending in unit:
                        for placed in ending:
                            placed.request.settle(placed.events)
                    pending = [r for r in pending if not r.done.done()]
        except StoreError as exc:
            self._tips.pop(tenant, None)
            for request in pending:
                request.settle(exc)
        except Exception as exc:
            self._tips.pop(tenant, None)
            failure = StoreError(f"ledger append failed, nothing acknowledged: {exc}")
            for request in pending:
                request.settle(failure)

    async def _writer_tip(self, tenant: str) -> _Tip:
        tip = self._tips.get(tenant)
        if tip is None:
            tip = await self._catch_up(tenant, (await self._tail(tenant))[0])
        if tip.frontier is None:
            frontier = await self._load_frontier(tenant, tip.size)
            tip = self._tips[tenant] = _Tip(tip.size, tip.msg, frontier)
        return tip

    async def _plan(
        self, tenant: str, tip: _Tip, pending: list[_Append]
    ) -> list[tuple[_Chunk, list[_Planned]]]:
        """The next publish: check each append against the log at ``tip``, refuse or place it.

        Refused appends are settled here. The result pairs each message with
        the appends that end in it; it is empty when an append had to be
        refused after others were placed behind it (the caller plans again).
        """
        assert tip.frontier is not None
        keys = {
            d.idempotency_key
            for r in pending
            for d in r.drafts
            if d.idempotency_key is not None and d.tenant == tenant
        }
        ids = {d.event_id for r in pending for d in r.drafts if d.tenant == tenant}
        intents = {r.expect[0] for r in pending if r.expect is not None}
        lookups = [
            asyncio.ensure_future(self._owners(tenant, keys)),
            asyncio.ensure_future(self._taken_ids(tenant, ids)),
            asyncio.ensure_future(self._lasts(tenant, intents)),
        ]
        try:
            await asyncio.gather(*lookups)
        except BaseException:
            for lookup in lookups:
                lookup.cancel()
            await asyncio.gather(*lookups, return_exceptions=True)
            raise
        taken_keys: dict[str, str] = lookups[0].result()  # type: ignore[assignment]
        taken_ids: set[str] = lookups[1].result()  # type: ignore[assignment]
        last_of: dict[str, int] = lookups[2].result()  # type: ignore[assignment]
        frontier = tip.frontier.copy()
        staged_keys: dict[str, str] = {}
        staged_ids: set[str] = set()
        staged_last: dict[str, int] = {}
        planned: list[_Planned] = []
        for request in pending:
            try:
                placed = self._place(
                    tenant,
                    request,
                    frontier.size,
                    owners=(staged_keys, taken_keys),
                    ids=(staged_ids, taken_ids),
                    lasts=(staged_last, last_of),
                )
            except _REFUSALS as exc:
                request.settle(exc)
                continue
            for event, key in zip(placed.events, placed.keys, strict=True):
                frontier.append(event.leaf_hash)
                staged_ids.add(event.event_id)
                if key is not None:
                    staged_keys[key] = event.intent_id or event.event_id
                if event.intent_id is not None:
                    staged_last[event.intent_id] = event.seq
            planned.append(placed)
        return self._unit(planned)

    def _place(
        self,
        tenant: str,
        request: _Append,
        start: int,
        *,
        owners: tuple[Mapping[str, str], Mapping[str, str]],
        ids: tuple[set[str], set[str]],
        lasts: tuple[Mapping[str, int], Mapping[str, int]],
    ) -> _Planned:
        """The events of one append from position ``start``, or a refusal of it alone."""
        if request.expect is not None:
            intent_id, expected = request.expect
            last = max(lasts[0].get(intent_id, -1), lasts[1].get(intent_id, -1))
            if last != expected:
                raise Conflict(
                    f"intent {intent_id} changed (last event {last}, expected {expected})"
                )
        keys_here: dict[str, str] = {}
        for draft in request.drafts:
            if draft.tenant != tenant:
                raise _Refused(f"event {draft.event_id} belongs to tenant {draft.tenant!r}")
            key = draft.idempotency_key
            if key is not None:
                if key in keys_here:
                    # Not a duplicate delivery (nothing was recorded): a malformed append.
                    raise _Refused(f"idempotency key {key!r} appears twice in one append")
                owner = owners[0].get(key) or owners[1].get(key)
                if owner is not None:
                    raise DuplicateIntent(tenant, key, owner)
                if len(key) > _MAX_KEY_CHARS:
                    raise _Refused(
                        f"idempotency key of event {draft.event_id} is {len(key)} characters, "
                        f"more than the {_MAX_KEY_CHARS} the JetStream store keeps"
                    )
                keys_here[key] = draft.intent_id or draft.event_id
        ids_here: set[str] = set()
        for draft in request.drafts:
            if draft.event_id in ids_here or draft.event_id in ids[0] or draft.event_id in ids[1]:
                raise _Refused(
                    f"an event id of this append is already recorded in tenant {tenant!r} "
                    "(a deterministic run replayed into a ledger that already holds its ids? "
                    "use a fresh stream)"
                )
            ids_here.add(draft.event_id)
        if len(request.drafts) > _MAX_APPEND_EVENTS:
            raise _Refused(
                f"an append of {len(request.drafts)} events is more than the "
                f"{_MAX_APPEND_EVENTS} one append to JetStream may hold: split it"
            )
        budget = self._data_budget()
        events: list[Event] = []
        total = 0
        for seq, draft in enumerate(request.drafts, start):
            try:
                canonical = event_bytes(draft, seq)
            except InputError as exc:
                raise _Refused(f"event {draft.event_id} cannot be recorded: {exc}") from None
            if len(canonical) > budget:
                raise _Refused(
                    f"event {draft.event_id} is {len(canonical)} bytes, more than one message "
                    f"of {self.where} may carry ({budget}); raise the server's max_payload"
                )
            total += len(canonical)
            leaf = leaf_hash(canonical)
            events.append(Event.at(draft, seq, canonical, leaf))
        if total > budget * _MAX_APPEND_PAYLOADS:
            raise _Refused(
                f"an append of {total} bytes is more than one append to {self.where} may "
                f"hold ({budget * _MAX_APPEND_PAYLOADS}): split it"
            )
        return _Planned(request, events, [d.idempotency_key for d in request.drafts])

    def _data_budget(self) -> int:
        nc = self._link.nc
        max_payload = nc.max_payload if nc is not None and nc.max_payload else 1 << 20
        return max(1024, max_payload - _MAX_HEADER_BYTES - _HEADER_ALLOWANCE)

    def _unit(self, planned: list[_Planned]) -> list[tuple[_Chunk, list[_Planned]]]:
        """The messages of one publish: as many whole appends as one atomic batch carries.

        Each message is paired with the appends that end in it. Appends that
        would make the batch too long wait for the next publish; an append too
        long for a batch of its own is refused (then nothing is published now,
        as the appends placed after it counted on its positions).
        """
        budget = self._data_budget()
        messages: list[tuple[_Chunk, list[_Planned]]] = []
        size = header = 0
        for index, append in enumerate(planned):
            mark = (len(messages), len(messages[-1][0].lines) if messages else 0, size, header)
            for event, key in zip(append.events, append.keys, strict=True):
                key_bytes = 0 if key is None else len(json.dumps(key)) + 12
                if not messages or (
                    size + 1 + len(event.canonical) > budget
                    or header + _LEAF_HEADER_BYTES + key_bytes > _MAX_HEADER_BYTES
                ):
                    messages.append((_Chunk(event.seq, [], [], {}, []), []))
                    size = header = 0
                chunk = messages[-1][0]
                if key is not None:
                    chunk.keys[len(chunk.lines)] = key
                chunk.lines.append(event.canonical)
                chunk.leaves.append(event.leaf_hash)
                assert chunk.facts is not None
                chunk.facts.append(
                    _Facts(event.event_id, event.type, event.correlation_id, event.intent_id)
                )
                size += len(event.canonical) + 1
                header += _LEAF_HEADER_BYTES + key_bytes
            if len(messages) <= _MAX_BATCH_MESSAGES:
                messages[-1][1].append(append)
                continue
            if index == 0:
                append.request.settle(
                    _Refused(
                        f"an append of {len(append.events)} events needs more than "
                        f"{_MAX_BATCH_MESSAGES} messages of {self.where}: split it"
                    )
                )
                return []
            count, lines, size, header = mark
            del messages[count:]
            if lines:
                _truncate(messages[-1][0], lines)
            break
        return messages

    async def _publish(
        self, tenant: str, tip: _Tip, unit: Sequence[tuple[_Chunk, list[_Planned]]]
    ) -> int:
        """Publish ``unit`` after the tenant's last message ``tip.msg``; its last stream seq."""
        subject = self.layout.subject(tenant)
        token = subject_token(tenant)
        expected = {"Nats-Expected-Last-Subject-Sequence": str(tip.msg)}
        if len(unit) == 1:
            chunk = unit[0][0]
            only = await self._client.request(
                subject, chunk.data, {**chunk.headers(token), **expected}, what="append"
            )
            return self._acknowledged(only)
        batch = uuid.uuid4().hex
        reply: Msg | None = None
        for number, (chunk, _) in enumerate(unit, 1):
            headers = {
                **chunk.headers(token),
                "Nats-Batch-Id": batch,
                "Nats-Batch-Sequence": str(number),
            }
            if number == 1:
                headers.update(expected)
            if number == len(unit):
                headers["Nats-Batch-Commit"] = "1"
            reply = await self._client.request(subject, chunk.data, headers, what="append")
            if number < len(unit) and reply.data:
                self._acknowledged(reply)  # a refusal before the commit
        assert reply is not None
        return self._acknowledged(reply)

    def _acknowledged(self, reply: Msg) -> int:
        answer = _json(reply, self.where, "append")
        if "error" in answer:
            code = answer["error"].get("err_code")
            if code in _WRONG_LAST_SEQUENCE or code == _BATCH_HOLDS_DUPLICATE:
                raise _Raced
            raise _api_failure(self.where, "append", answer["error"])
        # "duplicate": the same bytes at the same position were stored before
        # (the message id names both): that is this append, recorded once.
        return int(answer["seq"])

    # -- the indexes ------------------------------------------------------------

    async def _index(self, tenant: str, tip: _Tip, chunks: list[_Chunk], last_msg: int) -> None:
        """Index the messages this store just published (stream sequences end at ``last_msg``)."""
        assert tip.frontier is not None
        frontier = tip.frontier.copy()
        first_msg = last_msg - len(chunks) + 1
        await self._project(tenant, frontier, [(first_msg + i, c) for i, c in enumerate(chunks)])
        self._tips[tenant] = _Tip(frontier.size, last_msg, frontier)
        self._head_later(tenant, frontier.size, last_msg)

    def _head_later(self, tenant: str, size: int, msg: int) -> None:
        """Move the tenant's head to ``size`` soon, off the appender's path.

        The head only spares other processes work: one that finds it behind
        indexes the missing messages again (the same values). It never runs
        ahead, because it is written after the indexes it covers.
        """
        pending = self._heads.get(tenant)
        if pending is None or pending[0] < size:
            self._heads[tenant] = (size, msg)
        task = self._head_tasks.get(tenant)
        if task is None or task.done():
            self._head_tasks[tenant] = asyncio.get_running_loop().create_task(
                self._write_heads(tenant)
            )

    async def _write_heads(self, tenant: str) -> None:
        _QUIET.set(True)  # this task's own context
        while tenant in self._heads:
            size, msg = self._heads.pop(tenant)
            with contextlib.suppress(ExoArmurError):
                await self._advance_head(tenant, size, msg)

    async def _project(
        self, tenant: str, frontier: Frontier, messages: Sequence[tuple[int, _Chunk]]
    ) -> None:
        """Write every derived value of ``messages`` (consecutive, from ``frontier.size``)."""
        layout = self.layout
        t = subject_token(tenant)
        puts: list[tuple[str, str, bytes]] = []
        checked: list[Coroutine[Any, Any, None]] = []
        latest: dict[str, int] = {}
        where: dict[int, int] = {}
        for msg_seq, chunk in messages:
            locator = msg_seq.to_bytes(8, "big")
            for offset, leaf in enumerate(chunk.leaves):
                seq = chunk.first + offset
                for (level, index), digest in frontier.append(leaf):
                    value = digest + locator if level == 0 else digest
                    puts.append((layout.tree, f"{t}.n.{level}.{index}", value))
                facts = chunk.fact(offset)
                event, kind = subject_token(facts.event_id), subject_token(facts.type)
                puts.append((layout.index, f"{t}.id.{event}", b"%d" % seq))
                puts.append(
                    (layout.index, f"{t}.co.{subject_token(facts.correlation_id)}.{seq}", b"")
                )
                if facts.intent_id is not None:
                    intent = subject_token(facts.intent_id)
                    puts.append((layout.index, f"{t}.in.{intent}.{seq}", facts.type.encode()))
                    puts.append((layout.index, f"{t}.ty.{kind}.{seq}", facts.intent_id.encode()))
                key = chunk.keys.get(offset)
                if key is not None:
                    checked.append(self._own_key(tenant, key, facts.intent_id or facts.event_id))
                latest[facts.type] = seq
                where[seq] = msg_seq
        for kind, seq in latest.items():
            key = f"{t}.last.{subject_token(kind)}"
            checked.append(self._raise(layout.index, key, seq, b"%d" % seq, _int))
        # Any order will do: nothing reads them as complete before the head moves.
        await _fanout([self._client.kv_put_many(puts), *checked])
        self._remember(tenant, where)

    async def _own_key(self, tenant: str, key: str, owner: str) -> None:
        bucket, name = self.layout.keys, f"{subject_token(tenant)}.{subject_token(key)}"
        if await self._client.kv_create(bucket, name, owner.encode(), what="index write"):
            return
        stored = await self._client.kv_get(bucket, name)
        if stored is not None and stored.data.decode() != owner:
            raise LedgerCorrupt(
                f"idempotency key {key!r} of tenant {tenant!r} is recorded for two intents "
                f"({stored.data.decode()} and {owner})"
            )

    async def _raise(
        self, bucket: str, key: str, number: int, value: bytes, read: Callable[[bytes], int]
    ) -> None:
        """Set ``key`` to ``value`` unless it already holds a number at least ``number``.

        Compare-and-set on the key's revision, so that concurrent writers only
        ever move it forward. The revision this store last wrote or read is
        tried first: a single writer pays one request, not two.
        """
        known = self._revisions.get((bucket, key))
        if known is not None:
            revision, held = known
            if held >= number:
                return
            written = await self._client.kv_put(bucket, key, value, revision=revision)
            if written is not None:
                self._revisions[(bucket, key)] = (written, number)
                return
        while True:
            stored = await self._client.kv_get(bucket, key)
            if stored is not None:
                held = read(stored.data)
                self._revisions[(bucket, key)] = (stored.seq, held)
                if held >= number:
                    return
            revision = 0 if stored is None else stored.seq
            written = await self._client.kv_put(bucket, key, value, revision=revision)
            if written is not None:
                self._revisions[(bucket, key)] = (written, number)
                return

    async def _advance_head(self, tenant: str, size: int, msg: int) -> None:
        value = json.dumps({"size": size, "msg": msg}).encode()
        await self._raise(self.layout.tree, f"{subject_token(tenant)}.{_HEAD}", size, value, _size)

    async def _head(self, tenant: str) -> tuple[int, int]:
        stored = await self._client.kv_get(self.layout.tree, f"{subject_token(tenant)}.{_HEAD}")
        if stored is None:
            return 0, 0
        try:
            data = json.loads(stored.data)
            return int(data["size"]), int(data["msg"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerCorrupt(
                f"tenant {tenant!r}: its index head does not decode: {exc}"
            ) from None

    async def _tail(self, tenant: str) -> tuple[int, int]:
        """(size, stream sequence) of the tenant's last message; (0, 0) for an empty log."""
        stored = await self._client.get(self.layout.stream, last=self.layout.subject(tenant))
        if stored is None:
            return 0, 0
        try:
            return int(stored.headers["Exo-Seq"]) + int(stored.headers["Exo-Count"]), stored.seq
        except (KeyError, ValueError) as exc:
            raise LedgerCorrupt(
                f"message {stored.seq} of the ledger stream is not a ledger message ({exc})"
            ) from None

    async def _fresh(self, tenant: str) -> _Tip:
        """The tenant's tip with the indexes complete up to the log as it is now."""
        return await self._reached(tenant, (await self._tail(tenant))[0])

    async def _reached(self, tenant: str, size: int) -> _Tip:
        tip = self._tips.get(tenant)
        if tip is not None and tip.size >= size:
            return tip
        async with self._lock(tenant):
            return await self._catch_up(tenant, size)

    async def _snapshot(
        self, tenant: str, query: Callable[[], Coroutine[Any, Any, _T]]
    ) -> tuple[_T, int]:
        """``query``'s answer from indexes complete up to the log as it is now, and that size.

        The tail is read together with the query. When this store's tip
        already covered the tail before the query was sent, the indexes the
        query read were complete up to the tip: one round trip. Otherwise the
        indexes catch up first and the query runs again. Callers ignore
        entries at or past the returned size (another writer's, half-written).
        """
        before = self._tips.get(tenant)
        (size, _), answer = await _pair(self._tail(tenant), query())
        if before is not None and before.size >= size:
            return answer, before.size
        tip = await self._reached(tenant, size)
        return await query(), tip.size

    async def _catch_up(self, tenant: str, size: int) -> _Tip:
        """Index the log up to ``size`` events: what other writers appended, or left unindexed.

        The tenant's lock is held.
        """
        tip = self._tips.get(tenant)
        if tip is not None and tip.size >= size:
            return tip
        head_size, head_msg = await self._head(tenant)
        if tip is not None and tip.size > head_size:
            head_size, head_msg = tip.size, tip.msg  # ours, indexed, its head not yet written
        if head_size >= size:
            frontier = tip.frontier if tip is not None and tip.size == head_size else None
            tip = self._tips[tenant] = _Tip(head_size, head_msg, frontier)
            return tip
        if tip is not None and tip.frontier is not None and tip.size == head_size:
            frontier = tip.frontier.copy()
        else:
            frontier = await self._load_frontier(tenant, head_size)
        subject = self.layout.subject(tenant)
        cursor = head_msg
        while frontier.size < size:
            page, _ = await self._client.scan(
                self.layout.stream, subject, cursor + 1, _PAGE_MESSAGES
            )
            if not page:
                raise LedgerCorrupt(
                    f"tenant {tenant!r}: its last message says {size} events, "
                    f"its messages end at {frontier.size}"
                )
            todo: list[tuple[int, _Chunk]] = []
            expected = frontier.size
            for stored in page:
                chunk = _Chunk.parse(stored, subject, tenant)
                cursor = stored.seq
                if chunk.end <= expected:
                    continue  # indexed before
                if chunk.first != expected:
                    raise LedgerCorrupt(
                        f"tenant {tenant!r}: message {stored.seq} starts at seq {chunk.first}, "
                        f"the log before it ends at {expected}"
                    )
                todo.append((stored.seq, chunk))
                expected = chunk.end
            await self._project(tenant, frontier, todo)
            await self._advance_head(tenant, frontier.size, cursor)
        tip = self._tips[tenant] = _Tip(frontier.size, cursor, frontier)
        return tip

    async def _load_frontier(self, tenant: str, size: int) -> Frontier:
        nodes = await self._nodes(tenant, perfect_subtrees(0, size))
        return Frontier.load(size, lambda keys: nodes)

    async def _nodes(self, tenant: str, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        t = subject_token(tenant)
        wanted = list(dict.fromkeys(keys))
        found = await self._client.kv_get_many(
            self.layout.tree, [f"{t}.n.{level}.{i}" for level, i in wanted]
        )
        return {
            key: stored.data[:HASH_SIZE]
            for key, stored in zip(wanted, found, strict=True)
            if stored is not None
        }

    async def _owners(self, tenant: str, keys: set[str]) -> dict[str, str]:
        t = subject_token(tenant)
        ordered = sorted(keys)
        found = await self._client.kv_get_many(
            self.layout.keys, [f"{t}.{subject_token(k)}" for k in ordered]
        )
        return {k: s.data.decode() for k, s in zip(ordered, found, strict=True) if s is not None}

    async def _taken_ids(self, tenant: str, ids: set[str]) -> set[str]:
        t = subject_token(tenant)
        ordered = sorted(ids)
        found = await self._client.kv_get_many(
            self.layout.index, [f"{t}.id.{subject_token(i)}" for i in ordered]
        )
        return {i for i, s in zip(ordered, found, strict=True) if s is not None}

    async def _lasts(self, tenant: str, intents: set[str]) -> dict[str, int]:
        ordered = sorted(intents)
        found = await _fanout([self._intent_seqs(tenant, i) for i in ordered])
        return {i: max(seqs) for i, seqs in zip(ordered, found, strict=True) if seqs}

    async def _intent_seqs(self, tenant: str, intent_id: str) -> dict[int, str]:
        """Sequence number -> type of every event of one intent, from its index entries."""
        keys = f"{subject_token(tenant)}.in.{subject_token(intent_id)}.*"
        found = await self._client.kv_scan(self.layout.index, keys)
        return {_last_token(s): s.data.decode() for s in found}

    def save_checkpoint(self, tenant: str, size: int, note: str) -> None:
        self._call(self._save_checkpoint(tenant, size, note), "checkpoint save")

    async def _save_checkpoint(self, tenant: str, size: int, note: str) -> None:
        t = subject_token(tenant)
        # Every checkpoint is kept; the latest one is also under one key, for reads.
        await self._client.kv_create(
            self.layout.tree, f"{t}.{_CHECKPOINT}.{size}", note.encode(), what="checkpoint save"
        )
        value = json.dumps({"size": size, "note": note}).encode()
        await self._raise(self.layout.tree, f"{t}.{_CHECKPOINT}", size + 1, value, _checkpoint)

    # -- reads ------------------------------------------------------------------

    def size(self, tenant: str) -> int:
        return self._call(self._tail(tenant))[0]

    def read_nodes(self, tenant: str, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return self._call(self._read_nodes(tenant, keys))

    async def _read_nodes(self, tenant: str, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        found = await self._nodes(tenant, keys)
        missing = [key for key in keys if key not in found]
        if missing:  # perhaps not indexed yet: catch up, then look again
            await self._fresh(tenant)
            found.update(await self._nodes(tenant, missing))
        return found

    def events(self, tenant: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        # Paged, so that iterating a million-event log keeps memory flat.
        position, after = start, None
        while stop is None or position < stop:
            page, after = self._call(self._events_page(tenant, position, stop, after))
            if not page:
                return
            yield from page
            position = page[-1].seq + 1

    async def _events_page(
        self, tenant: str, start: int, stop: int | None, after: int | None
    ) -> tuple[list[Event], int | None]:
        if after is not None:
            begin = after + 1
        elif start == 0:
            begin = 1
        else:
            located = await self._locate(tenant, [start])
            if start not in located:
                return [], None
            begin = located[start]
        subject = self.layout.subject(tenant)
        page, _ = await self._client.scan(self.layout.stream, subject, begin, _PAGE_MESSAGES)
        events: list[Event] = []
        for stored in page:
            chunk = _Chunk.parse(stored, subject, tenant)
            for offset in range(len(chunk.lines)):
                seq = chunk.first + offset
                if stop is not None and seq >= stop:
                    return events, None
                if seq >= start:
                    events.append(chunk.event(offset))
        return events, page[-1].seq if page else None

    async def _locate(self, tenant: str, seqs: Sequence[int]) -> dict[int, int]:
        """Stream sequence of the message holding each event (indexing first when needed)."""
        t = subject_token(tenant)
        known = self._where.get(tenant, {})
        located = {seq: known[seq] for seq in seqs if seq in known}

        async def lookup(wanted: Sequence[int]) -> dict[int, int]:
            found = await self._client.kv_get_many(
                self.layout.tree, [f"{t}.n.0.{seq}" for seq in wanted]
            )
            return {
                seq: int.from_bytes(s.data[HASH_SIZE:], "big")
                for seq, s in zip(wanted, found, strict=True)
                if s is not None and len(s.data) == HASH_SIZE + 8
            }

        missing = [seq for seq in seqs if seq not in located]
        if missing:
            located.update(await lookup(missing))
            missing = [seq for seq in missing if seq not in located]
        if missing:
            await self._fresh(tenant)
            located.update(await lookup(missing))
        self._remember(tenant, located)
        return located

    def _remember(self, tenant: str, where: Mapping[int, int]) -> None:
        known = self._where.setdefault(tenant, {})
        if len(known) + len(where) > _REMEMBERED:
            known.clear()  # bounded memory; the index has them all
        known.update(where)

    async def _events_at(self, tenant: str, seqs: Sequence[int]) -> list[Event]:
        """The events at ``seqs``, in that order: one read per message that holds them."""
        located = await self._locate(tenant, seqs)
        wanted = sorted(set(located.values()))
        found = await self._client.get_many(
            self.layout.stream, [(msg_seq, None, None) for msg_seq in wanted]
        )
        subject = self.layout.subject(tenant)
        chunks: dict[int, _Chunk] = {}
        for msg_seq, stored in zip(wanted, found, strict=True):
            if stored is None:
                raise LedgerCorrupt(f"message {msg_seq} of the ledger stream is missing")
            chunks[msg_seq] = _Chunk.parse(stored, subject, tenant)
        events = []
        for seq in seqs:
            if seq not in located:
                raise LedgerCorrupt(f"tenant {tenant!r}: no index entry for event seq {seq}")
            chunk = chunks[located[seq]]
            if not chunk.first <= seq < chunk.end:
                raise LedgerCorrupt(
                    f"tenant {tenant!r}: event seq {seq} is indexed in a message that "
                    f"holds seq {chunk.first} to {chunk.end - 1}"
                )
            events.append(chunk.event(seq - chunk.first))
        return events

    def event_by_id(self, tenant: str, event_id: str) -> Event | None:
        return self._call(self._event_by_id(tenant, event_id))

    async def _event_by_id(self, tenant: str, event_id: str) -> Event | None:
        key = f"{subject_token(tenant)}.id.{subject_token(event_id)}"
        stored = await self._client.kv_get(self.layout.index, key)
        if stored is None:  # perhaps not indexed yet
            stored, _ = await self._snapshot(
                tenant, lambda: self._client.kv_get(self.layout.index, key)
            )
            if stored is None:
                return None
        (event,) = await self._events_at(tenant, [_int(stored.data)])
        return check_derived(event, event_id=event_id)

    def events_for_intent(self, tenant: str, intent_id: str) -> list[Event]:
        return self._call(self._events_for_intent(tenant, intent_id))

    async def _events_for_intent(self, tenant: str, intent_id: str) -> list[Event]:
        story, bound = await self._snapshot(tenant, lambda: self._intent_seqs(tenant, intent_id))
        seqs = sorted(seq for seq in story if seq < bound)
        events = await self._events_at(tenant, seqs)
        return [
            check_derived(event, intent_id=intent_id, type=story[event.seq]) for event in events
        ]

    def events_for_correlation(self, tenant: str, correlation_id: str) -> list[Event]:
        return self._call(self._events_for_correlation(tenant, correlation_id))

    async def _events_for_correlation(self, tenant: str, correlation_id: str) -> list[Event]:
        keys = f"{subject_token(tenant)}.co.{subject_token(correlation_id)}.*"
        found, bound = await self._snapshot(
            tenant, lambda: self._client.kv_scan(self.layout.index, keys)
        )
        seqs = sorted(seq for seq in (_last_token(s) for s in found) if seq < bound)
        events = await self._events_at(tenant, seqs)
        return [check_derived(event, correlation_id=correlation_id) for event in events]

    def intent_for_key(self, tenant: str, idempotency_key: str) -> str | None:
        return self._call(self._intent_for_key(tenant, idempotency_key))

    async def _intent_for_key(self, tenant: str, idempotency_key: str) -> str | None:
        owners, _ = await self._snapshot(tenant, lambda: self._owners(tenant, {idempotency_key}))
        owner = owners.get(idempotency_key)
        if owner is None:
            return None
        story: list[Event | None] = [*await self._events_for_intent(tenant, owner)]
        if not story:
            story.append(await self._event_by_id(tenant, owner))
        return check_key_owner(tenant, idempotency_key, owner, story)

    def unfinished_executions(self, tenant: str) -> list[str]:
        return self.intents_with(
            tenant,
            EXECUTION_STARTED,
            (EXECUTION_FINISHED, EXECUTION_OUTCOME_UNKNOWN, EXECUTION_BLOCKED),
        )

    def intents_with(self, tenant: str, has: str, lacks: Sequence[str]) -> list[str]:
        if not lacks:
            raise ValueError("intents_with needs at least one type the intents lack")
        return self._call(self._intents_with(tenant, has, set(lacks)))

    async def _intents_with(self, tenant: str, has: str, lacks: set[str]) -> list[str]:
        keys = f"{subject_token(tenant)}.ty.{subject_token(has)}.*"
        found, bound = await self._snapshot(
            tenant, lambda: self._client.kv_scan(self.layout.index, keys)
        )
        having = sorted((_last_token(s), s.data.decode()) for s in found)
        having = [(seq, intent) for seq, intent in having if seq < bound]
        candidates = list(dict.fromkeys(intent for _, intent in having))
        stories = await _fanout([self._intent_seqs(tenant, i) for i in candidates])
        open_ = {
            intent
            for intent, story in zip(candidates, stories, strict=True)
            if not any(kind in lacks for seq, kind in story.items() if seq < bound)
        }
        return [intent for _, intent in having if intent in open_]

    def latest_of_type(self, tenant: str, event_type: str) -> Event | None:
        return self._call(self._latest_of_type(tenant, event_type))

    async def _latest_of_type(self, tenant: str, event_type: str) -> Event | None:
        key = f"{subject_token(tenant)}.last.{subject_token(event_type)}"
        stored, _ = await self._snapshot(
            tenant, lambda: self._client.kv_get(self.layout.index, key)
        )
        if stored is None:
            return None
        (event,) = await self._events_at(tenant, [_int(stored.data)])
        return check_derived(event, type=event_type)

    def tenants(self) -> list[str]:
        return self._call(self._tenants())

    async def _tenants(self) -> list[str]:
        subjects: dict[str, int] = {}
        while True:
            body = {"subjects_filter": self.layout.subjects, "offset": len(subjects)}
            info = await self._client.api(f"STREAM.INFO.{self.layout.stream}", body, what="read")
            if "error" in info:
                raise _api_failure(self.where, "read", info["error"])
            page = (info.get("state") or {}).get("subjects") or {}
            subjects.update(page)
            if not page or len(subjects) >= int(info.get("total", 0)):
                break
        return sorted(self.layout.tenant_of(subject) for subject in subjects)

    def latest_checkpoint(self, tenant: str) -> tuple[int, str] | None:
        return self._call(self._latest_checkpoint(tenant))

    async def _latest_checkpoint(self, tenant: str) -> tuple[int, str] | None:
        key = f"{subject_token(tenant)}.{_CHECKPOINT}"
        stored = await self._client.kv_get(self.layout.tree, key)
        if stored is None:
            return None
        try:
            data = json.loads(stored.data)
            return int(data["size"]), str(data["note"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerCorrupt(
                f"tenant {tenant!r}: its latest checkpoint does not decode: {exc}"
            ) from None

    def index_problems(self, tenant: str, size: int) -> list[str]:
        return self._call(self._index_problems(tenant, size), "index audit")

    async def _index_problems(self, tenant: str, size: int) -> list[str]:
        """Every index entry of ``tenant`` against the values derived from its events' bytes.

        Entries at or past ``size`` may be another writer's append, half
        indexed: they are left out, as every read leaves them out.
        """
        await self._reached(tenant, size)
        t = subject_token(tenant)
        ids: dict[str, bytes] = {}
        tree: dict[str, bytes] = {}
        index: dict[str, bytes] = {}
        latest: dict[str, int] = {}
        owners = KeyIndex()
        try:
            position, after = 0, None
            while position < size:
                page, after = await self._events_page(tenant, position, size, after)
                if not page:
                    break
                for event in page:
                    seq = event.seq
                    ids[f"id.{subject_token(event.event_id)}"] = b"%d" % seq
                    tree[f"n.0.{seq}"] = event.leaf_hash
                    index[f"co.{subject_token(event.correlation_id)}.{seq}"] = b""
                    if event.intent_id is not None:
                        intent, kind = subject_token(event.intent_id), subject_token(event.type)
                        index[f"in.{intent}.{seq}"] = event.type.encode()
                        index[f"ty.{kind}.{seq}"] = event.intent_id.encode()
                    latest[subject_token(event.type)] = seq
                    owners.add(event)
                position = page[-1].seq + 1
        except LedgerCorrupt as exc:
            return [str(exc)]
        problems: list[str] = []

        def entry(stored: _Stored, bucket: str) -> str:
            return stored.subject.removeprefix(f"$KV.{bucket}.{t}.")

        def compare(what: str, expected: Mapping[str, bytes], found: Mapping[str, bytes]) -> None:
            for name in sorted(expected.keys() | found.keys()):
                if expected.get(name) != found.get(name):
                    problems.append(
                        f"log {tenant!r}: {what} entry {name!r} holds {found.get(name)!r}, "
                        f"the events' bytes say {expected.get(name)!r}"
                    )

        def within(name: str) -> bool:
            return int(name.rsplit(".", 1)[1]) < size

        found_index: dict[str, bytes] = {}
        for prefix in ("co", "in", "ty"):
            for stored in await self._client.kv_scan(self.layout.index, f"{t}.{prefix}.*.*"):
                name = entry(stored, self.layout.index)
                if within(name):
                    found_index[name] = stored.data
        compare("index", index, found_index)
        found_ids = {
            entry(s, self.layout.index): s.data
            for s in await self._client.kv_scan(self.layout.index, f"{t}.id.*")
        }
        compare("index", ids, {k: v for k, v in found_ids.items() if _int(v) < size})
        found_leaves = {
            entry(s, self.layout.tree): s.data[:HASH_SIZE]
            for s in await self._client.kv_scan(self.layout.tree, f"{t}.n.0.*")
        }
        compare("tree", tree, {k: v for k, v in found_leaves.items() if within(k)})
        found_latest = {
            entry(s, self.layout.index): s.data
            for s in await self._client.kv_scan(self.layout.index, f"{t}.last.*")
        }
        compare(
            "index",
            {f"last.{kind}": b"%d" % seq for kind, seq in latest.items()},
            {k: v for k, v in found_latest.items() if _int(v) < size},
        )
        # Keys carry no position: one of an owner past ``size`` (an append in
        # flight) has no carrier below it, and key_problems leaves those out.
        keys = await self._client.kv_scan(self.layout.keys, f"{t}.*")
        stored_keys = {s.subject.rsplit(".", 1)[1]: s.data.decode(errors="replace") for s in keys}
        problems += key_problems(tenant, stored_keys, owners.named(subject_token))
        return problems

    def integrity_check(self) -> str:
        """``"ok"``, or what is wrong with the stream's fitness or a tenant's indexes.

        For ``exoarmur health``: the stream and buckets are still safe to hold
        a ledger; each tenant's indexes catch up with its log; the Merkle
        frontier of the whole log is stored. Not a proof: ``Ledger.verify``
        rehashes everything.
        """
        return self._call(self._integrity_check(), "integrity check")

    async def _integrity_check(self) -> str:
        problems: list[str] = []
        try:
            await _ensure_stream(
                self._client, _ledger_stream(self.layout, self.replicas), create=False
            )
            for bucket in (self.layout.tree, self.layout.index, self.layout.keys):
                await _ensure_stream(
                    self._client, _bucket_stream(bucket, self.replicas), create=False
                )
        except StoreUnavailable as exc:
            problems.append(str(exc))
            return "; ".join(problems)
        for tenant in await self._tenants():
            try:
                tip = await self._fresh(tenant)  # indexes complete up to the log's end
                await self._load_frontier(tenant, tip.size)
            except LedgerCorrupt as exc:
                problems.append(f"tenant {tenant!r}: {exc}")
        return "; ".join(problems) or "ok"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ExoArmurError):
            self._runtime.run(self._shutdown(), self._call_timeout, "close")
        self._runtime.stop()

    async def _shutdown(self) -> None:
        if self._queue is not None and self._writer is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._writer), self._call_timeout)
        heads = [task for task in self._head_tasks.values() if not task.done()]
        if heads:
            await asyncio.wait(heads, timeout=self._call_timeout)
        await self._link.close()

    def __enter__(self) -> JetStreamStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _truncate(chunk: _Chunk, lines: int) -> None:
    """Drop a message's events from position ``lines`` on (an append that did not fit)."""
    del chunk.lines[lines:]
    del chunk.leaves[lines:]
    if chunk.facts is not None:
        del chunk.facts[lines:]
    for offset in [o for o in chunk.keys if o >= lines]:
        del chunk.keys[offset]


def _last_token(stored: _Stored) -> int:
    """The sequence number that ends an index entry's key."""
    return int(stored.subject.rsplit(".", 1)[1])


async def _pair(first: Coroutine[Any, Any, _A], second: Coroutine[Any, Any, _B]) -> tuple[_A, _B]:
    """Two requests at once; if one fails, the other is cancelled."""
    one, two = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        return await one, await two
    except BaseException:
        for task in (one, two):
            task.cancel()
        await asyncio.gather(one, two, return_exceptions=True)
        raise


def _int(data: bytes) -> int:
    try:
        return int(data)
    except ValueError:
        raise LedgerCorrupt(f"an index entry holds {data[:40]!r}, not a number") from None


def _size(data: bytes) -> int:
    try:
        return int(json.loads(data)["size"])
    except (ValueError, KeyError, TypeError):
        return -1


def _checkpoint(data: bytes) -> int:
    # Stored as size + 1 so that a checkpoint of an empty log still counts as one.
    return _size(data) + 1


# -- who may recover --------------------------------------------------------------------


class RunLock:
    """Who may recover, across machines: ``home.RunLock``'s contract on leases in a bucket.

    A file lock only sees the processes of one machine. Here every governor
    holds a *member lease* (``member.<id>`` in bucket ``<STREAM>_RUN``),
    renewed every ``lease / 5`` seconds and written with a per-message TTL of
    ``lease``, so the server drops the lease of a governor that died. A
    starting governor first takes the *recovery lease* (``recovery``, written
    only if absent, renewed the same way): holding it, no other governor can
    start, and if it sees no other live member it is alone and may recover
    unfinished executions. Otherwise it releases the recovery lease at once
    and runs without recovering. A lease counts as live while it was renewed
    within ``2.5`` renewal periods by the server's clock, so a governor killed
    a moment ago still blocks recovery (the safe side) for a few seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        lease: float = 10.0,
        poll: float = 0.1,
        max_wait: float = 600.0,
    ) -> None:
        settings = _parse_url(url)
        self.layout = Layout(settings.stream)
        self._settings = settings
        self._lease = lease
        self._period = lease / 5
        self._poll = poll
        self._max_wait = max_wait
        self._member = f"member.{uuid.uuid4().hex}"
        self._recovering = False
        self._beating: asyncio.Task[None] | None = None
        self._call_timeout = settings.timeout * 4 + settings.connect_timeout
        self._link = _Link(settings, (0.0, 0.0))
        self._client = _Client(self._link)
        self._runtime: _Runtime | None = None

    def _run(self, coro: Coroutine[Any, Any, _T], what: str) -> _T:
        if self._runtime is None:
            self._runtime = _Runtime("exoarmur-run-lock")
        return self._runtime.run(coro, self._call_timeout, what)

    def acquire(self) -> bool:
        """Hold a member lease; return True if we were alone (may recover)."""
        deadline = time.monotonic() + self._max_wait
        try:
            self._run(self._prepare(), "run lock")
            while not self._run(self._take_recovery(), "run lock"):
                # Another governor is starting (perhaps recovering): wait for it.
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"waited {self._max_wait:.0f}s for another governor to finish "
                        f"starting ({self._settings.where}); its recovery lease is still renewed"
                    )
                time.sleep(self._poll)
            alone = self._run(self._join(), "run lock")
        except BaseException:
            self.release()
            raise
        return alone

    async def _prepare(self) -> None:
        await self._client.connection()
        await _ensure_stream(
            self._client, _bucket_stream(self.layout.run, self._settings.replicas, ttl=True)
        )

    async def _take_recovery(self) -> bool:
        return await self._client.kv_create(
            self.layout.run, "recovery", self._member.encode(), ttl=self._lease, what="run lock"
        )

    async def _renew(self) -> _Stored | None:
        await self._client.kv_put(
            self.layout.run, self._member, b"", ttl=self._lease, what="run lock"
        )
        return await self._client.kv_get(self.layout.run, self._member, what="run lock")

    async def _join(self) -> bool:
        self._recovering = True
        mine = await self._renew()
        now = _server_time(mine.time if mine is not None else "")
        members = await self._client.kv_scan(self.layout.run, "member.*", what="run lock")
        stale_after = self._period * 2.5
        others = [
            s
            for s in members
            if s.subject != Layout.kv_subject(self.layout.run, self._member)
            and now - _server_time(s.time) < stale_after
        ]
        self._beating = asyncio.get_running_loop().create_task(self._beat())
        if others:
            await self._end_recovery()
            return False
        return True

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            with contextlib.suppress(ExoArmurError):
                await self._renew()
                if self._recovering:
                    await self._client.kv_put(
                        self.layout.run,
                        "recovery",
                        self._member.encode(),
                        ttl=self._lease,
                        what="run lock",
                    )

    async def _end_recovery(self) -> None:
        if self._recovering:
            self._recovering = False
            await self._client.kv_delete(self.layout.run, "recovery", what="run lock")

    def share(self) -> None:
        """After recovery: give up the recovery lease, so that other governors may start."""
        self._run(self._end_recovery(), "run lock")

    def release(self) -> None:
        if self._runtime is None:
            return
        with contextlib.suppress(ExoArmurError):
            self._run(self._leave(), "run lock")
        self._runtime.stop()
        self._runtime = None

    async def _leave(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            self._beating = None
        try:
            if self._link.nc is not None:
                await self._end_recovery()
                await self._client.kv_delete(self.layout.run, self._member, what="run lock")
        finally:
            await self._link.close()


def _server_time(stamp: str) -> float:
    """Seconds since the epoch of a ``Nats-Time-Stamp`` (RFC 3339, nanoseconds); 0 if absent."""
    from datetime import datetime

    if not stamp:
        return 0.0
    text = stamp.rstrip("Z")
    whole, _, fraction = text.partition(".")
    moment = datetime.fromisoformat(whole + "+00:00").timestamp()
    return moment + (float("0." + fraction) if fraction.isdigit() else 0.0)
