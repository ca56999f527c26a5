"""Group commit: one writer thread that commits every append waiting, together.

A store hands :class:`GroupCommit` the function that makes one batch durable.
Submitters block until their append's batch has committed (or failed), so
N concurrent submitters pay for one commit instead of N. Shared by the
stores that write through a single connection (SQLite, PostgreSQL).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..errors import Conflict, DuplicateIntent, StoreError
from ..model.event import Event, EventDraft, event_bytes_at, event_parts
from .merkle import Frontier, leaf_hash

logger = logging.getLogger("exoarmur.ledger")


@dataclass
class PendingAppend:
    """One submitter's append, waiting for its batch to commit."""

    tenant: str
    drafts: Sequence[EventDraft]
    expect: tuple[str, int] | None = None
    #: each draft's canonical bytes around its seq (``event_parts``), made by the submitter
    parts: Sequence[tuple[bytes, bytes]] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: list[Event] | None = None
    error: BaseException | None = None


class StagedRows:
    """The rows a batch writes, one list per table, and what they settle for later appends.

    Starts from what is recorded (``keys``, ``last_seq``, read inside the
    transaction) and adds what each staged append writes, so that a later
    append of the same batch is checked against the earlier ones too. The
    stores that write through one connection (SQLite, PostgreSQL) stage the
    same rows; only how they write them differs.
    """

    def __init__(
        self,
        keys: dict[tuple[str, str], str] | None = None,
        last_seq: dict[tuple[str, str], int] | None = None,
    ) -> None:
        #: (tenant, key) -> intent id: recorded before this batch, or staged in it
        self.keys = keys if keys is not None else {}
        #: (tenant, intent id) -> seq of its last event, recorded or staged
        self.last_seq = last_seq if last_seq is not None else {}
        #: (tenant, seq, event id, type, correlation id, intent id, canonical, leaf hash)
        self.events: list[tuple[str, int, str, str, str, str | None, bytes, bytes]] = []
        self.nodes: list[tuple[str, int, int, bytes]] = []
        self.new_keys: list[tuple[str, str, str]] = []

    def stage(self, frontier: Frontier, request: PendingAppend) -> list[Event]:
        """Place ``request``'s events at the end of ``frontier`` (it grows) and stage their rows."""
        tenant = request.tenant
        parts = request.parts or [event_parts(draft) for draft in request.drafts]
        recorded: list[Event] = []
        for draft, draft_parts in zip(request.drafts, parts, strict=True):
            seq = frontier.size
            canonical = event_bytes_at(draft_parts, seq)
            leaf = leaf_hash(canonical)
            for (level, index), digest in frontier.append(leaf):
                if level > 0:
                    self.nodes.append((tenant, level, index, digest))
            self.events.append(
                (
                    tenant,
                    seq,
                    draft.event_id,
                    draft.type,
                    draft.correlation_id,
                    draft.intent_id,
                    canonical,
                    leaf,
                )
            )
            if draft.idempotency_key is not None:
                owner = draft.intent_id or draft.event_id
                self.new_keys.append((tenant, draft.idempotency_key, owner))
                self.keys[(tenant, draft.idempotency_key)] = owner
            if draft.intent_id is not None:
                self.last_seq[(tenant, draft.intent_id)] = seq
            recorded.append(Event.at(draft, seq, canonical, leaf))
        return recorded


_STOP = object()


class GroupCommit:
    """The writer thread. ``commit(batch)`` must set each append's result or error."""

    def __init__(
        self, commit: Callable[[list[PendingAppend]], None], *, max_batch: int, name: str
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        #: told how many appends each commit carried (advice: its failure is logged, not raised)
        self.observe: Callable[[int], None] | None = None
        self._queue: queue.SimpleQueue[PendingAppend | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(
        self,
        tenant: str,
        drafts: Sequence[EventDraft],
        expect: tuple[str, int] | None,
        parts: Sequence[tuple[bytes, bytes]] | None = None,
    ) -> list[Event]:
        """Queue an append and wait until it is durable (or raise why it is not)."""
        request = PendingAppend(tenant, drafts, expect, parts)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, PendingAppend)
            batch = [first]
            stop_after = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop_after = True
                    break
                assert isinstance(more, PendingAppend)
                batch.append(more)
            try:
                self._commit(batch)
            finally:
                for request in batch:
                    if request.result is None and request.error is None:  # pragma: no cover
                        request.error = RuntimeError("the store's commit left an append unanswered")
                    request.done.set()
            self._observed(len(batch))
            if stop_after:
                return

    def _observed(self, appends: int) -> None:
        observe = self.observe
        if observe is None:
            return
        try:
            observe(appends)
        except Exception:
            # The writer thread must outlive any observer: it carries every append.
            logger.exception("the commit observer failed; ignored")


def check_preconditions(
    request: PendingAppend,
    *,
    last_seq: Callable[[str], int],
    recorded_key: Callable[[str], str | None],
    refused: type[StoreError] = StoreError,
) -> None:
    """What every store checks inside its transaction before writing an append.

    ``last_seq(intent_id)`` is the seq of the intent's last event (-1: none);
    ``recorded_key(key)`` the intent id recorded under an idempotency key.
    Raises ``Conflict``, ``DuplicateIntent`` or ``refused`` (a malformed append).
    """
    tenant = request.tenant
    if request.expect is not None:
        intent_id, expected = request.expect
        last = last_seq(intent_id)
        if last != expected:
            raise Conflict(f"intent {intent_id} changed (last event {last}, expected {expected})")
    keys_here: dict[str, str] = {}
    for draft in request.drafts:
        if draft.tenant != tenant:
            raise refused(f"event {draft.event_id} belongs to tenant {draft.tenant!r}")
        key = draft.idempotency_key
        if key is None:
            continue
        if key in keys_here:
            # Not a duplicate delivery (nothing was recorded): a malformed append.
            raise refused(f"idempotency key {key!r} appears twice in one append")
        keys_here[key] = draft.intent_id or draft.event_id
        existing = recorded_key(key)
        if existing is not None:
            raise DuplicateIntent(tenant, key, existing)
