"""The control state the governor acts on, and the one way it appends.

Control state (kill switches, posture, policy in force, vote counts) is a
fold over each log up to a position; this room keeps those folds caught up
with the ledger and holds the decide lock under which every judgement reads
them, so a decision and the positions it records are one consistent view.
It never decides anything and reaches the store only through the ledger.
"""

from __future__ import annotations

import threading

from ..gate import Controls, GateConfig
from ..ledger.log import Ledger
from ..model.event import Event, EventDraft
from .observing import Observers

#: events held per log while an earlier one of their group commit is not yet folded
_AHEAD_LIMIT = 4096


class ControlState:
    """Folds of every log's control events, and the append that keeps them current."""

    def __init__(
        self, ledger: Ledger, gate: GateConfig, observers: Observers | None = None
    ) -> None:
        self.ledger = ledger
        self.gate = gate
        #: told how long each stage took (timed here and by the rooms that share this state)
        self.observers = observers or Observers()
        #: held by every judgement together with the folds it reads
        self.lock = threading.RLock()
        self._folds: dict[str, Controls] = {}
        # Our own appended events that returned ahead of an earlier append of the
        # same group commit, by log and seq: folded once the gap before them is.
        self._ahead: dict[str, dict[int, Event]] = {}

    def fold(self, log: str, size: int | None = None) -> Controls:
        """The control state of ``log``, caught up with the ledger. Hold :attr:`lock`.

        ``size``: the log's size just read (with :meth:`folds`), else it is read here.
        """
        controls = self._folds.get(log)
        if controls is None:
            controls = self._folds[log] = Controls(
                log, self.gate.horizon_seconds, self.gate.retention()
            )
        if size is None:
            size = self.ledger.size(log)
        ahead = self._ahead.get(log)
        while True:
            if ahead:
                self._fold_ahead(controls, ahead)
            if controls.position >= size:
                return controls
            # the store is read only for the events nobody handed us: an event
            # waits in ``ahead`` only at or past the position, never behind it
            stop = min(size, min(ahead)) if ahead else size
            start = controls.position
            for event in self.ledger.store.events(log, start, stop):
                controls.apply(event)
            if controls.position == start:
                return controls  # the store has less than its size said: fold what there is

    @staticmethod
    def _fold_ahead(controls: Controls, ahead: dict[int, Event]) -> None:
        while controls.position in ahead:
            controls.apply(ahead.pop(controls.position))

    def folds(self, system: str, tenant: str) -> tuple[Controls, Controls]:
        """The system's and a tenant's control state, caught up with one read of both sizes.

        Hold :attr:`lock`.
        """
        sizes = self.ledger.sizes([system, tenant])
        return self.fold(system, sizes[system]), self.fold(tenant, sizes[tenant])

    def append(
        self, log: str, drafts: list[EventDraft], expect: tuple[str, int] | None = None
    ) -> list[Event]:
        """Append, and fold our own events without reading them back.

        Appends of one group commit return in any order: events past the fold's
        position wait in :attr:`_ahead` until the events before them are folded
        (handed over by their own appender, or read by :meth:`fold`).
        """
        with self.observers.timed("append"):
            events = self.ledger.append(log, drafts, expect=expect)
        with self.lock:
            controls = self._folds.get(log)
            if controls is not None and events and events[-1].seq >= controls.position:
                ahead = self._ahead.setdefault(log, {})
                if len(ahead) > _AHEAD_LIMIT:
                    ahead.clear()  # a gap nobody fills: fold() reads the store instead
                for event in events:
                    if event.seq >= controls.position:
                        ahead[event.seq] = event
                self._fold_ahead(controls, ahead)
        return events

    def append_one(self, log: str, draft: EventDraft) -> Event:
        (event,) = self.append(log, [draft])
        return event
