"""The ledger store interface: the one small door to durable storage.

A store keeps, per tenant, an append-only sequence of events, the hashes of
the perfect Merkle subtrees over them (so proofs never rehash the log), an
idempotency index and signed checkpoints. ``append`` is atomic and durable
on return: an event is acknowledged only once it survives a crash.

SQLite is the embedded default (``sqlite.py``); PostgreSQL and JetStream
implement the same protocol. An in-memory store is for unit tests only and
lives in the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from ..errors import LedgerCorrupt
from ..model.event import Event, EventDraft
from .merkle import NodeKey


class LedgerStore(Protocol):
    def append(
        self,
        tenant: str,
        drafts: Sequence[EventDraft],
        *,
        expect: tuple[str, int] | None = None,
    ) -> list[Event]:
        """Append ``drafts`` to ``tenant``'s log as one atomic, durable unit.

        Assigns consecutive sequence numbers, persists canonical bytes, leaf
        hashes and every completed Merkle node. Raises ``DuplicateIntent``
        (and writes nothing) when a draft's idempotency key is taken,
        ``Conflict`` (and writes nothing) when ``expect = (intent_id, seq)``
        is given and the intent's last event is no longer at ``seq`` (-1: the
        intent has no events), ``StoreError`` when nothing could be made durable.
        """
        ...

    def size(self, tenant: str) -> int:
        """Number of events in ``tenant``'s log (its tree size)."""
        ...

    def read_nodes(self, tenant: str, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        """Stored perfect-subtree hashes; level 0 is the leaf hashes."""
        ...

    def events(self, tenant: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """Events with ``start <= seq < stop``, in order."""
        ...

    def event_by_id(self, tenant: str, event_id: str) -> Event | None: ...

    def events_for_intent(self, tenant: str, intent_id: str) -> list[Event]: ...

    def events_for_correlation(self, tenant: str, correlation_id: str) -> list[Event]: ...

    def intent_for_key(self, tenant: str, idempotency_key: str) -> str | None:
        """The intent id recorded under an idempotency key, if any."""
        ...

    def unfinished_executions(self, tenant: str) -> list[str]:
        """Intent ids with ``execution.started`` and no later terminal event."""
        ...

    def intents_with(self, tenant: str, has: str, lacks: Sequence[str]) -> list[str]:
        """Intent ids that have an event of type ``has`` and none of ``lacks``, oldest first."""
        ...

    def latest_of_type(self, tenant: str, event_type: str) -> Event | None:
        """The most recent event of one type in a tenant's log."""
        ...

    def tenants(self) -> list[str]: ...

    def save_checkpoint(self, tenant: str, size: int, note: str) -> None: ...

    def latest_checkpoint(self, tenant: str) -> tuple[int, str] | None: ...

    def integrity_check(self) -> str:
        """The engine's own consistency check: ``"ok"`` or what it found."""
        ...

    def close(self) -> None: ...


#: the columns (or fields) every store keeps an event as: its exact bytes and leaf hash
EVENT_COLUMNS = "canonical, leaf_hash"
#: events read per query when walking a log, so that memory stays flat
PAGE = 1000


def event_from_row(row: Sequence[Any]) -> Event:
    """A stored (canonical bytes, leaf hash) row as an event; LedgerCorrupt if it is not one."""
    canonical, leaf = row
    if not isinstance(canonical, bytes) or not isinstance(leaf, bytes):
        raise LedgerCorrupt("stored event row does not hold bytes")
    try:
        return Event.from_canonical(canonical, leaf)
    except (ValueError, KeyError, TypeError) as exc:
        raise LedgerCorrupt(f"stored event bytes do not decode: {exc}") from None


def paged_events(
    fetch: Callable[[int, int], Sequence[Sequence[Any]]], start: int, stop: int | None
) -> Iterator[Event]:
    """Events with ``start <= seq < stop``, fetched ``PAGE`` rows at a time.

    ``fetch(cursor, limit)`` returns up to ``limit`` rows from ``cursor`` in seq order.
    """
    cursor = start
    while stop is None or cursor < stop:
        rows = fetch(cursor, PAGE if stop is None else min(PAGE, stop - cursor))
        if not rows:
            return
        for row in rows:
            yield event_from_row(row)
        cursor += len(rows)
