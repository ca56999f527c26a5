"""Pausing the cycle collector around work that allocates much and makes no cycles.

Verifying a bundle or replaying a log parses a great many young objects
(dicts, strings, lists) that hold no reference cycles: reference counting
frees them, and the cycle collector only walks them, again and again, and
the long-lived heap on every full collection. Pausing it is counted, so that
work on several threads resumes it once, when the last one ends, and only if
it was running before. Long work calls :meth:`CollectorPause.collect_young`
now and then, so that cycles other threads make meanwhile are still freed.
"""

from __future__ import annotations

import gc
import threading


class CollectorPause:
    """A counted pause of automatic cycle collection (a context manager)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._resume:
                gc.enable()

    def collect_young(self) -> None:
        """Collect the young generations, unless the collector was off before the pause."""
        with self._lock:
            running_before = self._depth > 0 and self._resume
        if running_before:
            gc.collect(1)


#: the one pause every verifier and replay of the process shares
PAUSED = CollectorPause()
