"""Control state at any recorded position, rebuilt while streaming a log.

Every decision and vote records the positions of the control state it read
(how many events of the system log and of its tenant's log). Replay must
rebuild exactly that prefix. Decisions are recorded in nearly the order they
were made, so a fold that only moves forward is almost always right; when a
recorded position lies behind the fold (concurrent submitters), it is
rebuilt from the start of the log. Memory stays bounded by the gap between
the fold and the reading point, not by the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from ..errors import LedgerCorrupt
from ..gate.controls import Controls
from ..model.event import Event

Reader = Callable[[int, int], Iterator[Event]]
#: past this many unfolded events, fold eagerly and accept a rare rebuild
_BUFFER_LIMIT = 20_000


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
        self.rebuilds = 0

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
        while self._pending and self._pending[0].seq < position:
            self._fold.apply(self._pending.popleft())

    def at(self, position: int) -> Controls:
        """The control state after exactly ``position`` events of this log."""
        if position < self._fold.position:
            # Streamed, never held whole: memory stays bounded by the lag.
            self.rebuilds += 1
            reached = self._fold.position + len(self._pending)
            self._fold = self._new()
            for event in self._read(0, position):
                self._fold.apply(event)
            self._pending = deque(self._read(position, reached))
        self._advance(position)
        if self._fold.position != position:
            raise LedgerCorrupt(
                f"a record names position {position} of {self.log}, "
                f"which has only {self._fold.position} events before it"
            )
        return self._fold
