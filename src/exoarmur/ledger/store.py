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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import LedgerCorrupt
from ..model.event import (
    DECISION_RECORDED,
    INTENT_RECORDED,
    Event,
    EventDraft,
    idempotency_key_of,
)
from .merkle import NodeKey


@runtime_checkable
class CommitsObserved(Protocol):
    """A store that commits appends in groups, and tells how large each group was."""

    def observe_commits(self, observe: Callable[[int], None]) -> None:
        """Call ``observe(appends)`` after each commit (advice: it cannot fail a commit)."""
        ...


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

    def sizes(self, tenants: Sequence[str]) -> dict[str, int]:
        """:meth:`size` of each of ``tenants`` (0 for an empty log), in one read where it can."""
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

    def events_of_type(
        self, tenant: str, *event_types: str, stop: int | None = None
    ) -> list[Event]:
        """Every event of these types before ``stop`` in a tenant's log, oldest first.

        For the few events of a kind (policy activations, configuration
        snapshots, evidence) that a reader would otherwise find by reading the
        whole log. Each is checked against its bytes, as every read is.
        """
        ...

    def tenants(self) -> list[str]: ...

    def save_checkpoint(self, tenant: str, size: int, note: str) -> None: ...

    def latest_checkpoint(self, tenant: str) -> tuple[int, str] | None: ...

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        """The note stored for ``tenant``'s log at ``size``, if any."""
        ...

    def replace_checkpoint(self, tenant: str, size: int, old_note: str, new_note: str) -> bool:
        """Swap the note stored at ``size`` for ``new_note`` if it is still ``old_note``.

        A compare-and-set: True if this call swapped them, False if another
        note (or none) is stored there. The store does not judge the notes;
        the caller has checked that ``new_note`` is ``old_note`` with more
        signatures (:func:`~exoarmur.witness.cosignature.cosigned_upgrade`).
        """
        ...

    def index_problems(self, tenant: str, size: int) -> list[str]:
        """Where a column or index entry outside the hashed bytes disagrees with them.

        Walks the first ``size`` events of ``tenant``'s log and compares every
        derived value a read path uses (ids, types, correlations, intents,
        idempotency keys, positions) with the value derived from the event's
        bytes, including entries that point at nothing. Empty when all agree.
        """
        ...

    def integrity_check(self) -> str:
        """The engine's own consistency check: ``"ok"`` or what it found."""
        ...

    def close(self) -> None: ...


#: the columns every SQL store keeps an event as: its exact bytes and leaf hash, then the
#: columns its indexes are built on, which are read back and checked against the bytes
EVENT_COLUMNS = "canonical, leaf_hash, seq, event_id, type, correlation_id, intent_id"
#: events read per query when walking a log, so that memory stays flat
PAGE = 1000
#: a stop beyond every position (the largest integer an SQL column holds)
NO_STOP = 2**63 - 1


def decode_event(log: str, seq: object, canonical: bytes, leaf: bytes) -> Event:
    """Stored bytes as the event at ``seq`` of ``log``; LedgerCorrupt naming both if not.

    The event must decode, and must say it is that log's event at that position:
    a row or message moved to another place is as corrupt as one that does not decode.
    """
    where = f"log {log!r} seq {seq}"
    try:
        event = Event.from_canonical(canonical, leaf)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LedgerCorrupt(f"{where}: stored event bytes do not decode: {detail}") from None
    if event.seq != seq or event.tenant != log:
        raise LedgerCorrupt(
            f"{where}: stored there, but its hashed bytes say log {event.tenant!r} seq {event.seq}"
        )
    return event


def check_derived(event: Event, **columns: object) -> Event:
    """``event`` if every derived column equals what its hashed bytes say; else LedgerCorrupt.

    A column (or index entry) that an attacker edited must never be served: a
    query by intent, correlation, type or id trusts it to pick the events.
    """
    for name, value in columns.items():
        recorded = getattr(event, name)
        if value != recorded:
            raise LedgerCorrupt(
                f"log {event.tenant!r} seq {event.seq}: the stored {name} is {value!r}, "
                f"the event's hashed bytes say {recorded!r}"
            )
    return event


def event_from_row(log: str, row: Sequence[Any]) -> Event:
    """A stored ``EVENT_COLUMNS`` row of ``log`` as an event, its columns checked."""
    canonical, leaf, seq, event_id, type_, correlation_id, intent_id = row
    if not isinstance(canonical, bytes) or not isinstance(leaf, bytes):
        raise LedgerCorrupt(f"log {log!r} seq {seq}: stored event row does not hold bytes")
    event = decode_event(log, seq, canonical, leaf)
    return check_derived(
        event,
        event_id=event_id,
        type=type_,
        correlation_id=correlation_id,
        intent_id=intent_id,
    )


@dataclass
class KeyIndex:
    """What a log's events say its idempotency index may and must hold."""

    #: every form a store may index a key under -> the intent (or event) owning it
    may: dict[str, str] = field(default_factory=dict)
    #: per key-carrying event: one of these forms must be indexed for its owner
    must: list[tuple[tuple[str, ...], str]] = field(default_factory=list)

    def add(self, event: Event) -> None:
        try:
            key = idempotency_key_of(event.type, event.payload, event.intent_id)
            # a ledger from before actor-scoped keys indexed an intent's key bare
            bare = (
                event.payload["intent"]["idempotency_key"]
                if event.type == INTENT_RECORDED
                else None
            )
        except (KeyError, TypeError):
            return  # a payload of another shape carries no key (replay judges the payload)
        if key is None:
            return
        owner = event.intent_id or event.event_id
        forms = (key,) if bare is None else (key, str(bare))
        for form in forms:
            self.may.setdefault(form, owner)
        # the intent-id reservation came later: a ledger from before has none
        if event.type != DECISION_RECORDED:
            self.must.append((forms, owner))

    def named(self, name: Callable[[str], str]) -> KeyIndex:
        """The same index with every key as ``name`` stores it (e.g. a KV key token)."""
        return KeyIndex(
            {name(k): owner for k, owner in self.may.items()},
            [(tuple(name(k) for k in forms), owner) for forms, owner in self.must],
        )


def derive_keys(events: Iterable[Event | None]) -> KeyIndex:
    derived = KeyIndex()
    for event in events:
        if event is not None:
            derived.add(event)
    return derived


def check_key_owner(log: str, key: str, owner: str, story: Iterable[Event | None]) -> str:
    """``owner`` unless its events carry uniqueness keys and ``key`` is not one; else LedgerCorrupt.

    The idempotency index answers a duplicate submission with the first
    outcome: pointed at another intent, it would hand that intent's outcome
    to whoever sends the key. (Events of no keyed type carry no key to
    compare with; only a store used without the pipeline holds such keys.)
    """
    carried = derive_keys(story).may
    if carried and carried.get(key) != owner:
        raise LedgerCorrupt(
            f"log {log!r}: idempotency key {key!r} is indexed for {owner!r}, "
            "whose events do not carry it; run `exoarmur verify`"
        )
    return owner


def key_problems(log: str, stored: Mapping[str, str], derived: KeyIndex) -> list[str]:
    """Where a stored idempotency index differs from the keys the log's events carry."""
    carriers = set(derived.may.values())
    problems = []
    for key, owner in sorted(stored.items()):
        expected = derived.may.get(key)
        if expected == owner or (expected is None and owner not in carriers):
            continue
        problems.append(
            f"log {log!r}: idempotency key {key!r} is indexed for {owner!r}, "
            f"the events say {expected!r}"
        )
    for forms, owner in derived.must:
        if not any(stored.get(form) == owner for form in forms):
            problems.append(
                f"log {log!r}: idempotency key {forms[0]!r} of {owner!r} is not indexed for it"
            )
    return problems


def paged_events(
    log: str, fetch: Callable[[int, int], Sequence[Sequence[Any]]], start: int, stop: int | None
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
            yield event_from_row(log, row)
        cursor += len(rows)
