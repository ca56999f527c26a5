"""What a JetStream writer knows of a tenant's log without asking the server.

Before it publishes, a writer checks each append against the log: its
idempotency keys and event ids must be free, and each ``expect=`` intent's
last event must be where the caller says. Asked of the indexes, that is a
request per key and per id and a scan per intent, on every group. The store
keeps the same facts for one contiguous stretch of the log that it indexed
itself (its own appends, and what it caught up on). When the stretch reaches
the position a group is planned at, a fact found in it is exact (a later event
would be in the stretch too), and a stretch that starts at position 0 also
answers "absent". Anything else is asked of the indexes, as before.

Pure: no I/O, no clock. Never the truth, only a shortcut to it: a stretch that
stops matching the log (another writer's messages indexed elsewhere) is
dropped, not patched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["Known", "Recent"]

#: events a stretch holds before it starts again at its end: about 12 MB a tenant
#: for governed actions (four events, one key, one intent each), 35 MB at worst
LIMIT: Final = 50_000


@dataclass
class Known:
    """The answers a stretch gives for one group, and what is left to ask the indexes."""

    owners: dict[str, str] = field(default_factory=dict)
    taken_ids: set[str] = field(default_factory=set)
    lasts: dict[str, int] = field(default_factory=dict)
    ask_keys: set[str] = field(default_factory=set)
    ask_ids: set[str] = field(default_factory=set)
    ask_intents: set[str] = field(default_factory=set)


@dataclass
class Recent:
    """The facts of the events at positions ``start <= seq < end`` of one log."""

    start: int = 0
    end: int = 0
    limit: int = LIMIT
    #: idempotency key -> its owner (the intent, or the event that carries it)
    keys: dict[str, str] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    #: intent id -> seq of its last event in the stretch
    lasts: dict[str, int] = field(default_factory=dict)

    def add(self, first: int, events: Iterable[tuple[str, str | None, str | None]]) -> None:
        """Add the events from position ``first`` on: (event id, intent id, key) each.

        Not contiguous with the stretch (the log grew elsewhere): start again at ``first``.
        All of them or none: events that fail to be listed change nothing.
        """
        events = list(events)
        if first != self.end or len(self.ids) > self.limit:
            self.start = self.end = first
            self.keys.clear()
            self.ids.clear()
            self.lasts.clear()
        seq = first
        for event_id, intent_id, key in events:
            self.ids.add(event_id)
            if key is not None:
                self.keys.setdefault(key, intent_id or event_id)
            if intent_id is not None:
                self.lasts[intent_id] = seq
            seq += 1
        self.end = seq

    def answer(self, size: int, keys: set[str], ids: set[str], intents: set[str]) -> Known:
        """What the stretch says of ``keys``, ``ids`` and ``intents`` in a log of ``size``."""
        if self.end != size:
            return Known(ask_keys=set(keys), ask_ids=set(ids), ask_intents=set(intents))
        whole = self.start == 0
        known = Known()
        for key in keys:
            owner = self.keys.get(key)
            if owner is not None:
                known.owners[key] = owner
            elif not whole:
                known.ask_keys.add(key)
        for event_id in ids:
            if event_id in self.ids:
                known.taken_ids.add(event_id)
            elif not whole:
                known.ask_ids.add(event_id)
        for intent_id in intents:
            last = self.lasts.get(intent_id)
            if last is not None:
                known.lasts[intent_id] = last
            elif not whole:
                known.ask_intents.add(intent_id)
        return known
