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
        if controls.position < size:
            for event in self.ledger.store.events(log, controls.position, size):
                controls.apply(event)
        return controls

    def folds(self, system: str, tenant: str) -> tuple[Controls, Controls]:
        """The system's and a tenant's control state, caught up with one read of both sizes.

        Hold :attr:`lock`.
        """
        sizes = self.ledger.sizes([system, tenant])
        return self.fold(system, sizes[system]), self.fold(tenant, sizes[tenant])

    def append(
        self, log: str, drafts: list[EventDraft], expect: tuple[str, int] | None = None
    ) -> list[Event]:
        """Append, and fold our own events at once when nobody wrote in between."""
        with self.observers.timed("append"):
            events = self.ledger.append(log, drafts, expect=expect)
        with self.lock:
            controls = self._folds.get(log)
            if controls is not None and events and controls.position == events[0].seq:
                for event in events:
                    controls.apply(event)
        return events

    def append_one(self, log: str, draft: EventDraft) -> Event:
        (event,) = self.append(log, [draft])
        return event
