"""Moving logs: copy between stores, and canonical JSON Lines in and out.

A copy re-appends every event's draft at the same position, so the
destination recomputes exactly the same canonical bytes, leaf hashes and
Merkle nodes: proofs and signed checkpoints made on the source verify on
the destination. Any difference is refused, not papered over.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from ..errors import InputError, LedgerCorrupt
from ..ledger.merkle import leaf_hash
from ..model.event import Event, draft_of
from .store import LedgerStore

_BATCH = 500


def copy_log(
    source: LedgerStore,
    destination: LedgerStore,
    tenant: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy one tenant's log (and its checkpoints) to an empty log elsewhere."""
    if destination.size(tenant) != 0:
        raise InputError(
            f"destination already holds {destination.size(tenant)} events of {tenant!r}"
        )
    copied = append_events(destination, tenant, source.events(tenant), progress)
    latest = source.latest_checkpoint(tenant)
    if latest is not None:
        destination.save_checkpoint(tenant, latest[0], latest[1])
    return copied


def append_events(
    destination: LedgerStore,
    tenant: str,
    events: Iterable[Event],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append recorded events to ``destination`` at their own positions, bytes unchanged."""
    copied = 0
    stream = iter(events)
    while batch := list(islice(stream, _BATCH)):
        written = destination.append(tenant, [draft_of(event) for event in batch])
        for original, again in zip(batch, written, strict=True):
            if again.seq != original.seq or again.canonical != original.canonical:
                raise LedgerCorrupt(
                    f"{tenant} event seq {original.seq}: the copy would change its bytes "
                    f"(written at seq {again.seq}); copy refused"
                )
        copied += len(batch)
        if progress is not None:
            progress(len(batch))
    return copied


def dump_jsonl(store: LedgerStore, tenant: str) -> Iterator[str]:
    """One canonical event per line (the exact bytes that are hashed)."""
    for event in store.events(tenant):
        yield event.canonical.decode()


def read_jsonl(lines: Iterable[str]) -> Iterator[Event]:
    """Events from canonical JSON Lines; each line's bytes are taken as they are."""
    for number, line in enumerate(lines, 1):
        text = line.rstrip("\n")
        if not text:
            continue
        canonical = text.encode()
        try:
            yield Event.from_canonical(canonical, leaf_hash(canonical))
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise InputError(f"line {number}: not a canonical ExoArmur event: {exc}") from None
