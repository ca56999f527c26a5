"""The drain: governed calls in flight, so a stopping service never cuts one.

A service that stops first drains (no new governed call; wait for the
running ones), and only then closes the ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import StoreUnavailable


class GovernedCalls:
    """Counts governed calls (submit, run, vote) from their start to their outcome."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()
        self._draining = False

    @property
    def count(self) -> int:
        return self._count

    @contextmanager
    def governed(self) -> Iterator[None]:
        with self._changed:
            if self._draining:
                raise StoreUnavailable("the governor is stopping; nothing was done, retry later")
            self._count += 1
        try:
            yield
        finally:
            with self._changed:
                self._count -= 1
                self._changed.notify_all()

    def drain(self, timeout: float) -> bool:
        """Take no new governed call; wait up to ``timeout`` s for the running ones."""
        with self._changed:
            self._draining = True
            return self._changed.wait_for(lambda: self._count == 0, timeout)
