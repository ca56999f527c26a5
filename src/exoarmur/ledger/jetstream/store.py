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
``max_batch``) and publishes each tenant's share as one message (or one atomic
batch, above), so N concurrent submitters pay one acknowledgement, not N. A
refused append (duplicate key, ``expect=`` conflict, bad draft) is left out
alone. The checks read no index for what the store indexed itself: it keeps the
keys, event ids and intents' last events of the stretch of the log it indexed
(:mod:`.recent`), and asks the buckets only about what lies before that stretch.
An ``expect=`` that names an event past the writer's tip (another writer
appended since) makes the writer read the tail, catch up from the log and check
again: a stale view never refuses an append.
Each draft's canonical bytes are made in the submitter's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ...errors import (
    Conflict,
    DuplicateIntent,
    ExoArmurError,
    InputError,
    LedgerCorrupt,
    StoreError,
    StoreUnavailable,
)
from ...model.event import (
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_STARTED,
    Event,
    EventDraft,
    event_bytes_at,
    event_parts,
)
from ..merkle import HASH_SIZE, Frontier, NodeKey, leaf_hash, perfect_subtrees
from ..store import KeyIndex, check_derived, check_key_owner, key_problems
from . import chunking
from .admin import ensure_stream
from .chunking import Chunk, Stored
from .connection import (
    PAGE_MESSAGES,
    QUIET,
    WRONG_LAST_SEQUENCE,
    Client,
    Link,
    Runtime,
    api_failure,
    fanout,
    pair,
    reply_json,
)
from .kv import KeyValue
from .layout import Layout, bucket_stream, ledger_stream, subject_token
from .recent import Recent
from .settings import parse_url

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = ["JetStreamStore", "Raced"]

_T = TypeVar("_T")

logger = logging.getLogger("exoarmur.ledger")

#: idempotency keys longer than this are refused (they travel in a message's headers)
_MAX_KEY_CHARS: Final = 4096
#: event locations a store keeps in memory per tenant
_REMEMBERED: Final = 200_000
#: JetStream error code: an atomic batch holds a message already stored
_BATCH_HOLDS_DUPLICATE: Final = 10201

_HEAD: Final = "head"
_CHECKPOINT: Final = "cp"
#: ``<tenant>.layout`` in the index bucket: which entries every event of the log has.
#: 2: a ``ty`` entry for every event; 1 (no key, the release before): for intents' events only
_LAYOUT: Final = "layout"
_INDEX_LAYOUT: Final = 2


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
    #: each draft's canonical bytes around its seq (``event_parts``), made by the submitter
    parts: Sequence[tuple[bytes, bytes]]
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


def _parts_of(drafts: Sequence[EventDraft]) -> list[tuple[bytes, bytes]]:
    """Each draft's canonical bytes around its seq; a draft that has none refuses the append."""
    parts = []
    for draft in drafts:
        try:
            parts.append(event_parts(draft))
        except InputError as exc:
            raise _Refused(f"event {draft.event_id} cannot be recorded: {exc}") from None
    return parts


class _Behind(Conflict):
    """An ``expect=`` names a later event than the log at the writer's tip holds."""


class Raced(Exception):
    """Another writer appended to the tenant since our tip: catch up and plan again."""


_REFUSALS: Final = (DuplicateIntent, Conflict, _Refused)


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
        settings = parse_url(
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
        #: told how many appends each write-loop group carried (advice only)
        self._observe: Callable[[int], None] | None = None
        self._timeout = settings.timeout
        # A whole call may take several requests (and, for an append, a wait in
        # the queue and a few lost races); each request has its own timeout.
        self._call_timeout = settings.timeout * 6 + settings.connect_timeout
        self._link = Link(settings, reconnect_backoff)
        self._client = Client(self._link)
        self._kv = KeyValue(self._client)
        self._tips: dict[str, _Tip] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: tenant -> event seq -> stream sequence of its message (immutable, so cached)
        self._where: dict[str, dict[int, int]] = {}
        #: tenant -> the facts of the stretch of its log this store indexed itself
        self._recent: dict[str, Recent] = {}
        #: tenants whose index this store saw at ``_INDEX_LAYOUT`` (it never goes back)
        self._laid_out: set[str] = set()
        #: heads to write, and the tasks writing them
        self._heads: dict[str, tuple[int, int]] = {}
        self._head_tasks: dict[str, asyncio.Task[None]] = {}
        self._queue: asyncio.Queue[_Append | None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False
        #: messages published by this store: the group-commit ratio is appends / commits
        self.commits = 0
        self._runtime = Runtime("exoarmur-jetstream")
        try:
            self._runtime.run(self._open(), self._call_timeout, "setup")
        except BaseException:
            self._runtime.run(self._link.close(), self._call_timeout, "close")
            self._runtime.stop()
            raise

    async def _open(self) -> None:
        await self._client.connection()
        await ensure_stream(self._client, ledger_stream(self.layout, self.replicas))
        for bucket in (self.layout.tree, self.layout.index, self.layout.keys):
            await ensure_stream(self._client, bucket_stream(bucket, self.replicas))
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
        # The bytes are made here, in the submitter's thread, not in the event loop's.
        parts = _parts_of(drafts)
        return self._call(self._submit(tenant, list(drafts), expect, parts), "append")

    async def _submit(
        self,
        tenant: str,
        drafts: list[EventDraft],
        expect: tuple[str, int] | None,
        parts: list[tuple[bytes, bytes]] | None = None,
    ) -> list[Event]:
        assert self._queue is not None
        if parts is None:
            parts = _parts_of(drafts)
        future = asyncio.get_running_loop().create_future()
        request = _Append(tenant, drafts, parts, expect, future)
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
            self._observed(len(batch))
            if stop:
                return

    def observe_commits(self, observe: Callable[[int], None]) -> None:
        """Tell ``observe`` how many appends each group of the write loop carried."""
        self._observe = observe

    def _observed(self, appends: int) -> None:
        if self._observe is None:
            return
        try:
            self._observe(appends)
        except Exception:
            # The write loop must outlive any observer: it carries every append.
            logger.exception("the commit observer failed; ignored")

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
                    except Raced:
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
    ) -> list[tuple[Chunk, list[_Planned]]]:
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
        # What this store indexed itself up to the tip answers without a request.
        known = self._recent.get(tenant, Recent()).answer(tip.size, keys, ids, intents)
        lookups = [
            asyncio.ensure_future(self._owners(tenant, known.ask_keys)),
            asyncio.ensure_future(self._taken_ids(tenant, known.ask_ids)),
            asyncio.ensure_future(self._lasts(tenant, known.ask_intents)),
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
        taken_keys.update(known.owners)
        taken_ids.update(known.taken_ids)
        last_of.update(known.lasts)
        frontier = tip.frontier.copy()
        staged_keys: dict[str, str] = {}
        staged_ids: set[str] = set()
        staged_last: dict[str, int] = {}
        planned: list[_Planned] = []
        behind: list[tuple[_Append, _Behind]] = []
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
            except _Behind as stale:
                behind.append((request, stale))
                continue
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
        if behind:
            # The caller knows a later event of the intent than the log at our tip
            # holds: either the log grew since (another writer) and we catch up and
            # plan again, or the expectation is wrong and refused.
            size, _ = await self._tail(tenant)
            if size != tip.size:
                await self._catch_up(tenant, size)
                return []
            for request, refusal in behind:
                request.settle(Conflict(str(refusal)))
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
                refusal = _Behind if expected > last else Conflict
                raise refusal(
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
        if len(request.drafts) > chunking.MAX_APPEND_EVENTS:
            raise _Refused(
                f"an append of {len(request.drafts)} events is more than the "
                f"{chunking.MAX_APPEND_EVENTS} one append to JetStream may hold: split it"
            )
        budget = self._data_budget()
        events: list[Event] = []
        total = 0
        for seq, (draft, parts) in enumerate(
            zip(request.drafts, request.parts, strict=True), start
        ):
            canonical = event_bytes_at(parts, seq)
            if len(canonical) > budget:
                raise _Refused(
                    f"event {draft.event_id} is {len(canonical)} bytes, more than one message "
                    f"of {self.where} may carry ({budget}); raise the server's max_payload"
                )
            total += len(canonical)
            leaf = leaf_hash(canonical)
            events.append(Event.at(draft, seq, canonical, leaf))
        if total > budget * chunking.MAX_APPEND_PAYLOADS:
            raise _Refused(
                f"an append of {total} bytes is more than one append to {self.where} may "
                f"hold ({budget * chunking.MAX_APPEND_PAYLOADS}): split it"
            )
        return _Planned(request, events, [d.idempotency_key for d in request.drafts])

    def _data_budget(self) -> int:
        nc = self._link.nc
        max_payload = nc.max_payload if nc is not None and nc.max_payload else 1 << 20
        return chunking.data_budget(max_payload)

    def _unit(self, planned: list[_Planned]) -> list[tuple[Chunk, list[_Planned]]]:
        """The messages of one publish (see :func:`~.chunking.pack`), each with its appends.

        An append too long for a batch of its own is refused (then nothing is
        published now, as the appends placed after it counted on its positions).
        """
        try:
            messages = chunking.pack(
                [list(zip(p.events, p.keys, strict=True)) for p in planned], self._data_budget()
            )
        except chunking.TooManyMessages as exc:
            planned[0].request.settle(_Refused(f"{exc} of {self.where}: split it"))
            return []
        return [(chunk, [planned[i] for i in ending]) for chunk, ending in messages]

    async def _publish(
        self, tenant: str, tip: _Tip, unit: Sequence[tuple[Chunk, list[_Planned]]]
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
        answer = reply_json(reply, self.where, "append")
        if "error" in answer:
            code = answer["error"].get("err_code")
            if code in WRONG_LAST_SEQUENCE or code == _BATCH_HOLDS_DUPLICATE:
                raise Raced
            raise api_failure(self.where, "append", answer["error"])
        # "duplicate": the same bytes at the same position were stored before
        # (the message id names both): that is this append, recorded once.
        return int(answer["seq"])

    # -- the indexes ------------------------------------------------------------

    async def _index(self, tenant: str, tip: _Tip, chunks: list[Chunk], last_msg: int) -> None:
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
        QUIET.set(True)  # this task's own context
        while tenant in self._heads:
            size, msg = self._heads.pop(tenant)
            with contextlib.suppress(ExoArmurError):
                await self._advance_head(tenant, size, msg)

    async def _project(
        self, tenant: str, frontier: Frontier, messages: Sequence[tuple[int, Chunk]]
    ) -> None:
        """Write every derived value of ``messages`` (consecutive, from ``frontier.size``)."""
        layout = self.layout
        t = subject_token(tenant)
        puts: list[tuple[str, str, bytes]] = []
        checked: list[Coroutine[Any, Any, None]] = []
        latest: dict[str, int] = {}
        where: dict[int, int] = {}
        laid_out = frontier.size == 0 and bool(messages)
        if laid_out:
            # A log indexed from its first event on has every entry of this layout.
            puts.append((layout.index, f"{t}.{_LAYOUT}", b"%d" % _INDEX_LAYOUT))
        recent = self._recent.setdefault(tenant, Recent())
        recent.add(
            frontier.size,
            (
                (facts.event_id, facts.intent_id, chunk.keys.get(offset))
                for _, chunk in messages
                for offset, facts in ((o, chunk.fact(o)) for o in range(len(chunk.lines)))
            ),
        )
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
                puts.append((layout.index, f"{t}.ty.{kind}.{seq}", _typed(facts.intent_id)))
                key = chunk.keys.get(offset)
                if key is not None:
                    checked.append(self._own_key(tenant, key, facts.intent_id or facts.event_id))
                latest[facts.type] = seq
                where[seq] = msg_seq
        for kind, seq in latest.items():
            key = f"{t}.last.{subject_token(kind)}"
            checked.append(self._kv.advance(layout.index, key, seq, b"%d" % seq, _int))
        # Any order will do: nothing reads them as complete before the head moves.
        await fanout([self._kv.put_many(puts), *checked])
        self._remember(tenant, where)
        if laid_out:
            self._laid_out.add(tenant)

    async def _own_key(self, tenant: str, key: str, owner: str) -> None:
        bucket, name = self.layout.keys, f"{subject_token(tenant)}.{subject_token(key)}"
        if await self._kv.create(bucket, name, owner.encode(), what="index write"):
            return
        stored = await self._kv.get(bucket, name)
        if stored is not None and stored.data.decode() != owner:
            raise LedgerCorrupt(
                f"idempotency key {key!r} of tenant {tenant!r} is recorded for two intents "
                f"({stored.data.decode()} and {owner})"
            )

    async def _advance_head(self, tenant: str, size: int, msg: int) -> None:
        value = json.dumps({"size": size, "msg": msg}).encode()
        key = f"{subject_token(tenant)}.{_HEAD}"
        await self._kv.advance(self.layout.tree, key, size, value, _size)

    async def _head(self, tenant: str) -> tuple[int, int]:
        stored = await self._kv.get(self.layout.tree, f"{subject_token(tenant)}.{_HEAD}")
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
        (size, _), answer = await pair(self._tail(tenant), query())
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
                self.layout.stream, subject, cursor + 1, PAGE_MESSAGES
            )
            if not page:
                raise LedgerCorrupt(
                    f"tenant {tenant!r}: its last message says {size} events, "
                    f"its messages end at {frontier.size}"
                )
            todo: list[tuple[int, Chunk]] = []
            expected = frontier.size
            for stored in page:
                chunk = Chunk.parse(stored, subject, tenant)
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
        found = await self._kv.get_many(
            self.layout.tree, [f"{t}.n.{level}.{i}" for level, i in wanted]
        )
        return {
            key: stored.data[:HASH_SIZE]
            for key, stored in zip(wanted, found, strict=True)
            if stored is not None
        }

    async def _owners(self, tenant: str, keys: set[str]) -> dict[str, str]:
        if not keys:
            return {}
        t = subject_token(tenant)
        ordered = sorted(keys)
        found = await self._kv.get_many(
            self.layout.keys, [f"{t}.{subject_token(k)}" for k in ordered]
        )
        return {k: s.data.decode() for k, s in zip(ordered, found, strict=True) if s is not None}

    async def _taken_ids(self, tenant: str, ids: set[str]) -> set[str]:
        if not ids:
            return set()
        t = subject_token(tenant)
        ordered = sorted(ids)
        found = await self._kv.get_many(
            self.layout.index, [f"{t}.id.{subject_token(i)}" for i in ordered]
        )
        return {i for i, s in zip(ordered, found, strict=True) if s is not None}

    async def _lasts(self, tenant: str, intents: set[str]) -> dict[str, int]:
        ordered = sorted(intents)
        found = await fanout([self._intent_seqs(tenant, i) for i in ordered])
        return {i: max(seqs) for i, seqs in zip(ordered, found, strict=True) if seqs}

    async def _intent_seqs(self, tenant: str, intent_id: str) -> dict[int, str]:
        """Sequence number -> type of every event of one intent, from its index entries."""
        keys = f"{subject_token(tenant)}.in.{subject_token(intent_id)}.*"
        found = await self._kv.scan(self.layout.index, keys)
        return {_last_token(s): s.data.decode() for s in found}

    def save_checkpoint(self, tenant: str, size: int, note: str) -> None:
        self._call(self._save_checkpoint(tenant, size, note), "checkpoint save")

    async def _save_checkpoint(self, tenant: str, size: int, note: str) -> None:
        t = subject_token(tenant)
        # Every checkpoint is kept; the latest one is also under one key, for reads.
        await self._kv.create(
            self.layout.tree, f"{t}.{_CHECKPOINT}.{size}", note.encode(), what="checkpoint save"
        )
        value = json.dumps({"size": size, "note": note}).encode()
        await self._kv.advance(self.layout.tree, f"{t}.{_CHECKPOINT}", size + 1, value, _checkpoint)

    def replace_checkpoint(self, tenant: str, size: int, old_note: str, new_note: str) -> bool:
        return self._call(
            self._replace_checkpoint(tenant, size, old_note, new_note), "checkpoint replace"
        )

    async def _replace_checkpoint(
        self, tenant: str, size: int, old_note: str, new_note: str
    ) -> bool:
        t = subject_token(tenant)
        key = f"{t}.{_CHECKPOINT}.{size}"
        stored = await self._kv.get(self.layout.tree, key)
        swapped = False
        if stored is not None and stored.data == old_note.encode():
            revision = stored.seq
            written = await self._kv.put(
                self.layout.tree,
                key,
                new_note.encode(),
                revision=revision,
                what="checkpoint replace",
            )
            swapped = written is not None
        if swapped or (stored is not None and stored.data == new_note.encode()):
            # The size's own key decides; the latest key follows it. Also when an
            # earlier swap stopped between the two, so a retry heals the latest key.
            await self._follow_latest(t, size, old_note, new_note)
        return swapped

    async def _follow_latest(self, t: str, size: int, old_note: str, new_note: str) -> None:
        """Point the latest-checkpoint key at ``new_note`` while it still holds ``old_note``."""
        key = f"{t}.{_CHECKPOINT}"
        value = json.dumps({"size": size, "note": new_note}).encode()
        while True:
            stored = await self._kv.get(self.layout.tree, key)
            if stored is None:
                return
            try:
                held = json.loads(stored.data)
            except ValueError:
                return  # latest_checkpoint reports it as corrupt
            if held != {"size": size, "note": old_note}:
                return  # a later checkpoint, or already the new one
            written = await self._kv.put(
                self.layout.tree, key, value, revision=stored.seq, what="checkpoint replace"
            )
            if written is not None:
                return

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        return self._call(self._checkpoint_at(tenant, size))

    async def _checkpoint_at(self, tenant: str, size: int) -> str | None:
        key = f"{subject_token(tenant)}.{_CHECKPOINT}.{size}"
        stored = await self._kv.get(self.layout.tree, key)
        if stored is None:
            return None
        try:
            return stored.data.decode()
        except UnicodeDecodeError:
            raise LedgerCorrupt(
                f"tenant {tenant!r}: its checkpoint at size {size} is not UTF-8"
            ) from None

    # -- reads ------------------------------------------------------------------

    def size(self, tenant: str) -> int:
        return self._call(self._tail(tenant))[0]

    def sizes(self, tenants: Sequence[str]) -> dict[str, int]:
        return self._call(self._sizes(list(dict.fromkeys(tenants))))

    async def _sizes(self, tenants: list[str]) -> dict[str, int]:
        tails = await fanout([self._tail(tenant) for tenant in tenants])
        return {tenant: tail[0] for tenant, tail in zip(tenants, tails, strict=True)}

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
        page, _ = await self._client.scan(self.layout.stream, subject, begin, PAGE_MESSAGES)
        events: list[Event] = []
        for stored in page:
            chunk = Chunk.parse(stored, subject, tenant)
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
            found = await self._kv.get_many(self.layout.tree, [f"{t}.n.0.{seq}" for seq in wanted])
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
        chunks: dict[int, Chunk] = {}
        for msg_seq, stored in zip(wanted, found, strict=True):
            if stored is None:
                raise LedgerCorrupt(f"message {msg_seq} of the ledger stream is missing")
            chunks[msg_seq] = Chunk.parse(stored, subject, tenant)
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
        stored = await self._kv.get(self.layout.index, key)
        if stored is None:  # perhaps not indexed yet
            stored, _ = await self._snapshot(tenant, lambda: self._kv.get(self.layout.index, key))
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
        found, bound = await self._snapshot(tenant, lambda: self._kv.scan(self.layout.index, keys))
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
        found, bound = await self._snapshot(tenant, lambda: self._kv.scan(self.layout.index, keys))
        having = sorted((_last_token(s), s.data.decode()) for s in found)
        # an empty value is an event of no intent (a policy activation, say)
        having = [(seq, intent) for seq, intent in having if seq < bound and intent]
        candidates = list(dict.fromkeys(intent for _, intent in having))
        stories = await fanout([self._intent_seqs(tenant, i) for i in candidates])
        open_ = {
            intent
            for intent, story in zip(candidates, stories, strict=True)
            if not any(kind in lacks for seq, kind in story.items() if seq < bound)
        }
        return [intent for _, intent in having if intent in open_]

    def events_of_type(
        self, tenant: str, *event_types: str, stop: int | None = None
    ) -> list[Event]:
        if not event_types:
            return []
        return self._call(self._events_of_type(tenant, sorted(set(event_types)), stop))

    async def _events_of_type(self, tenant: str, kinds: list[str], stop: int | None) -> list[Event]:
        await self._lay_out(tenant)
        t = subject_token(tenant)

        async def entries() -> list[list[Stored]]:
            return await fanout(
                [self._kv.scan(self.layout.index, f"{t}.ty.{subject_token(k)}.*") for k in kinds]
            )

        found, bound = await self._snapshot(tenant, entries)
        end = bound if stop is None else min(bound, stop)
        typed = sorted(
            (_last_token(s), kind, s.data)
            for kind, stored in zip(kinds, found, strict=True)
            for s in stored
        )
        typed = [entry for entry in typed if entry[0] < end]
        events = await self._events_at(tenant, [seq for seq, _, _ in typed])
        return [
            check_derived(event, type=kind, intent_id=data.decode() or None)
            for event, (_, kind, data) in zip(events, typed, strict=True)
        ]

    async def _lay_out(self, tenant: str) -> None:
        """Bring a log indexed by the release before (``layout`` 1) to ``_INDEX_LAYOUT``, once.

        That release wrote ``ty`` entries for intents' events only. The log is
        read once to add the others, then the layout key says so (written after
        the entries it vouches for, as the head is); every process of this
        release writes them for each event it indexes, so none is read again.
        """
        if tenant in self._laid_out:
            return
        t = subject_token(tenant)
        stored = await self._kv.get(self.layout.index, f"{t}.{_LAYOUT}")
        if stored is None or _int(stored.data) < _INDEX_LAYOUT:
            tip = await self._fresh(tenant)  # this release indexes what lies past the head
            if tip.size == 0:
                return  # nothing to lay out, and no key for a tenant nobody wrote
            subject = self.layout.subject(tenant)
            cursor = 0
            while cursor < tip.msg:
                page, _ = await self._client.scan(
                    self.layout.stream, subject, cursor + 1, PAGE_MESSAGES
                )
                page = [message for message in page if message.seq <= tip.msg]
                if not page:
                    raise LedgerCorrupt(
                        f"tenant {tenant!r}: its messages end before message {tip.msg}, "
                        "which it was indexed up to"
                    )
                puts = []
                for message in page:
                    chunk = Chunk.parse(message, subject, tenant)
                    for offset in range(len(chunk.lines)):
                        facts = chunk.fact(offset)
                        if facts.intent_id is None:
                            key = f"{t}.ty.{subject_token(facts.type)}.{chunk.first + offset}"
                            puts.append((self.layout.index, key, b""))
                    cursor = message.seq
                await self._kv.put_many(puts)
            value = b"%d" % _INDEX_LAYOUT
            await self._kv.put(self.layout.index, f"{t}.{_LAYOUT}", value, what="index write")
        self._laid_out.add(tenant)

    def latest_of_type(self, tenant: str, event_type: str) -> Event | None:
        return self._call(self._latest_of_type(tenant, event_type))

    async def _latest_of_type(self, tenant: str, event_type: str) -> Event | None:
        key = f"{subject_token(tenant)}.last.{subject_token(event_type)}"
        stored, _ = await self._snapshot(tenant, lambda: self._kv.get(self.layout.index, key))
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
                raise api_failure(self.where, "read", info["error"])
            page = (info.get("state") or {}).get("subjects") or {}
            subjects.update(page)
            if not page or len(subjects) >= int(info.get("total", 0)):
                break
        return sorted(self.layout.tenant_of(subject) for subject in subjects)

    def latest_checkpoint(self, tenant: str) -> tuple[int, str] | None:
        return self._call(self._latest_checkpoint(tenant))

    async def _latest_checkpoint(self, tenant: str) -> tuple[int, str] | None:
        key = f"{subject_token(tenant)}.{_CHECKPOINT}"
        stored = await self._kv.get(self.layout.tree, key)
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
        await self._lay_out(tenant)
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
                        intent = subject_token(event.intent_id)
                        index[f"in.{intent}.{seq}"] = event.type.encode()
                    index[f"ty.{subject_token(event.type)}.{seq}"] = _typed(event.intent_id)
                    latest[subject_token(event.type)] = seq
                    owners.add(event)
                position = page[-1].seq + 1
        except LedgerCorrupt as exc:
            return [str(exc)]
        problems: list[str] = []

        def entry(stored: Stored, bucket: str) -> str:
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
            for stored in await self._kv.scan(self.layout.index, f"{t}.{prefix}.*.*"):
                name = entry(stored, self.layout.index)
                if within(name):
                    found_index[name] = stored.data
        compare("index", index, found_index)
        found_ids = {
            entry(s, self.layout.index): s.data
            for s in await self._kv.scan(self.layout.index, f"{t}.id.*")
        }
        compare("index", ids, {k: v for k, v in found_ids.items() if _int(v) < size})
        found_leaves = {
            entry(s, self.layout.tree): s.data[:HASH_SIZE]
            for s in await self._kv.scan(self.layout.tree, f"{t}.n.0.*")
        }
        compare("tree", tree, {k: v for k, v in found_leaves.items() if within(k)})
        found_latest = {
            entry(s, self.layout.index): s.data
            for s in await self._kv.scan(self.layout.index, f"{t}.last.*")
        }
        compare(
            "index",
            {f"last.{kind}": b"%d" % seq for kind, seq in latest.items()},
            {k: v for k, v in found_latest.items() if _int(v) < size},
        )
        # Keys carry no position: one of an owner past ``size`` (an append in
        # flight) has no carrier below it, and key_problems leaves those out.
        keys = await self._kv.scan(self.layout.keys, f"{t}.*")
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
            await ensure_stream(
                self._client, ledger_stream(self.layout, self.replicas), create=False
            )
            for bucket in (self.layout.tree, self.layout.index, self.layout.keys):
                await ensure_stream(
                    self._client, bucket_stream(bucket, self.replicas), create=False
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


def _last_token(stored: Stored) -> int:
    """The sequence number that ends an index entry's key."""
    return int(stored.subject.rsplit(".", 1)[1])


def _typed(intent_id: str | None) -> bytes:
    """The value of an event's ``ty`` entry: its intent, or empty for an event of no intent."""
    return b"" if intent_id is None else intent_id.encode()


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
