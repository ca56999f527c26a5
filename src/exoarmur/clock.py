"""Injected clocks: the only way ExoArmur learns what time it is.

The pipeline asks its clock; decide and gate never do, they are handed the
recorded times. ``SystemClock`` is for production, ``StepClock`` for
deterministic runs (demos, golden histories, tests) and ``ReplayClock`` hands
back recorded times in order, so a replay never touches the wall clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, UTC."""
        ...


class SystemClock:
    """The wall clock. Only adapters at the edge should be built with it."""

    name = "system"

    def now(self) -> datetime:
        return datetime.now(UTC)


class StepClock:
    """A deterministic clock: starts at ``start`` and advances ``step`` per reading.

    Thread-safe, so concurrent submitters in a deterministic run still see
    distinct, strictly increasing times.
    """

    name = "step"

    def __init__(
        self,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        step: timedelta = timedelta(milliseconds=1),
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("StepClock start must be timezone-aware")
        self._next = start.astimezone(UTC)
        self._step = step
        self._lock = threading.Lock()

    def advance(self, delta: timedelta) -> None:
        """Jump ahead (a scripted scenario's 'an hour later')."""
        with self._lock:
            self._next += delta

    def describe(self) -> dict[str, str | int]:
        """What a run records so that the same times can be made again."""
        with self._lock:
            start = self._next
        return {
            "kind": self.name,
            "start": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "step_microseconds": self._step // timedelta(microseconds=1),
        }

    def now(self) -> datetime:
        with self._lock:
            current = self._next
            self._next = current + self._step
            return current


class FixedClock:
    """Always the same instant, until told to move. For unit tests."""

    name = "fixed"

    def __init__(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("FixedClock moment must be timezone-aware")
        self._moment = moment.astimezone(UTC)

    def now(self) -> datetime:
        return self._moment

    def advance(self, delta: timedelta) -> None:
        self._moment += delta


class ReplayClock:
    """Hands back recorded times in order; running out is a replay bug."""

    name = "replay"

    def __init__(self, times: Iterable[datetime]) -> None:
        self._times: Iterator[datetime] = iter(times)

    def now(self) -> datetime:
        try:
            return next(self._times)
        except StopIteration:
            raise RuntimeError("replay asked for more times than were recorded") from None
