"""Control state at any recorded position, rebuilt while streaming a log.

Every decision and vote records the positions of the control state it read
(how many events of the system log and of its tenant's log). Replay must
rebuild exactly that prefix. Decisions are recorded in nearly the order they
were made, so a fold that only moves forward is almost always right. When a
recorded position lies behind the fold (concurrent submitters), the fold is
restored from the nearest snapshot at or before it and the events after the
snapshot are read again: never the log from its start.

Snapshots are taken every ``SNAPSHOT_EVERY`` events and thinned as the fold
moves on, so that the ones kept lie densely just behind the fold and ever
more sparsely further back: about four per doubling of the distance, so
memory grows with the logarithm of the log, and a position ``d`` events
behind the fold is at most about ``d / 3`` events after a snapshot.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterator

from ..errors import LedgerCorrupt
from ..gate.controls import Controls
from ..model.event import Event

Reader = Callable[[int, int], Iterator[Event]]
#: past this many unfolded events, fold eagerly and accept a rare rebuild
_BUFFER_LIMIT = 20_000
#: events between two snapshots of a fold
SNAPSHOT_EVERY = 128


def kept(snapshot: int, newest: int) -> bool:
    """Whether the ``snapshot``-th snapshot is still kept once the ``newest``-th is taken.

    Kept when its number is a multiple of ``2 ** (level - 2)`` for a distance
    of ``2 ** level`` or more (the spacing is at most a quarter of the
    distance): the rule only tightens as ``newest`` grows, so a snapshot
    dropped is never wanted back.
    """
    level = max(0, (newest - snapshot).bit_length() - 3)
    return snapshot % (1 << level) == 0


class LogFold:
    """``Controls`` of one log, available at any position up to the reading point."""

    def __init__(
        self,
        log: str,
        read: Reader,
        horizon_seconds: int | None = None,
        retention: dict[str, int] | None = None,
    ) -> None:
        self.log = log
        self._read = read
        self._horizon = horizon_seconds
        self._retention = retention
        self._fold = self._new()
        #: events read but not yet folded, in order, starting at the fold's position
        self._pending: deque[Event] = deque()
        #: copies of the fold by snapshot number (at position number * SNAPSHOT_EVERY)
        self._snapshots: dict[int, Controls] = {0: copy.deepcopy(self._fold)}
        #: times the fold had to go back (from a snapshot, or from the start)
        self.rebuilds = 0
        #: events read again to go back
        self.reread = 0

    def _new(self) -> Controls:
        if self._horizon is None:
            return Controls(self.log)
        return Controls(self.log, self._horizon, self._retention)

    def offer(self, event: Event) -> None:
        """The reader has reached ``event``; fold it when asked for."""
        self._pending.append(event)
        if len(self._pending) > _BUFFER_LIMIT:
            self._advance(self._pending[len(self._pending) // 2].seq)

    def _advance(self, position: int) -> None:
        fold, pending = self._fold, self._pending
        while pending and pending[0].seq < position:
            fold.apply(pending.popleft())
            if fold.position % SNAPSHOT_EVERY == 0:
                self._snapshot(fold.position // SNAPSHOT_EVERY)

    def _snapshot(self, number: int) -> None:
        if number in self._snapshots:
            return  # taken before the fold went back; the same prefix, the same state
        self._snapshots[number] = copy.deepcopy(self._fold)
        for older in [n for n in self._snapshots if n < number and not kept(n, number)]:
            del self._snapshots[older]

    def at(self, position: int) -> Controls:
        """The control state after exactly ``position`` events of this log."""
        if position < self._fold.position:
            self._back(position)
        self._advance(position)
        if self._fold.position != position:
            raise LedgerCorrupt(
                f"a record names position {position} of {self.log}, "
                f"which has only {self._fold.position} events before it"
            )
        return self._fold

    def _back(self, position: int) -> None:
        """Restore the latest snapshot at or before ``position``; read on from there."""
        self.rebuilds += 1
        reached = self._fold.position + len(self._pending)
        number = max(n for n in self._snapshots if n * SNAPSHOT_EVERY <= position)
        self._fold = copy.deepcopy(self._snapshots[number])
        start = number * SNAPSHOT_EVERY
        # Streamed from the store, never the whole log: memory stays bounded by the lag.
        self._pending = deque(self._read(start, reached))
        self.reread += reached - start
