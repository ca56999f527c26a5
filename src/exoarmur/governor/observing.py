"""Observers: who is told how long each stage took and how large each commit was.

The governor times its stages (``decide``, ``gate``, ``append``, ``execute``)
on an injected monotonic clock, around the pure functions and never inside
them, and tells every observer afterwards; the store tells them how many
appends each group commit carried. Observers are advice for dashboards: an
observer that raises is logged and skipped, and can never change a decision,
a write or an outcome. Nothing here reads the ledger or decides anything.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final, Protocol

logger = logging.getLogger("exoarmur.governor")

#: the stages a governed intent passes through, in order
STAGES: Final = ("decide", "gate", "append", "execute")

#: seconds from an arbitrary origin that never goes backwards (``time.monotonic``)
Monotonic = Callable[[], float]


class Observer(Protocol):
    def stage_timed(self, stage: str, seconds: float) -> None:
        """``stage`` (one of :data:`STAGES`) just took ``seconds``."""

    def batch_committed(self, appends: int) -> None:
        """The store made ``appends`` appends durable in one commit."""


class Observers:
    """The observers of one governor, and the clock their timings are read from."""

    def __init__(self, monotonic: Monotonic = time.monotonic) -> None:
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._observers: tuple[Observer, ...] = ()

    def add(self, observer: Observer) -> None:
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove(self, observer: Observer) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time the block on the monotonic clock; tell the observers even when it raises."""
        started = self._read() if self._observers else None
        try:
            yield
        finally:
            ended = self._read() if started is not None else None
            if started is not None and ended is not None:
                self.stage_timed(stage, ended - started)

    def _read(self) -> float | None:
        try:
            return self.monotonic()
        except Exception:
            logger.exception("the monotonic clock failed; this stage is not timed")
            return None

    def stage_timed(self, stage: str, seconds: float) -> None:
        for observer in self._observers:
            try:
                observer.stage_timed(stage, seconds)
            except Exception:
                logger.exception("observer %r failed on stage %s; ignored", observer, stage)

    def batch_committed(self, appends: int) -> None:
        for observer in self._observers:
            try:
                observer.batch_committed(appends)
            except Exception:
                logger.exception("observer %r failed on a batch of %d; ignored", observer, appends)
