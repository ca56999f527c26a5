"""ULIDs, from the operating system's randomness or from a recorded seed.

A deterministic run uses :class:`SeededIds`; its seed is recorded with the
run so that the same ids come out again. The timestamp part of every id comes
from a time the caller passes in (the injected clock), never from here.
"""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import datetime
from typing import Protocol

from ulid import ULID


class IdGenerator(Protocol):
    def new(self, at: datetime) -> str:
        """A new ULID whose time part is ``at``."""
        ...


def _ulid(at: datetime, randomness: bytes) -> str:
    millis = int(at.timestamp() * 1000)
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + randomness))


class RandomIds:
    """ULIDs with 80 bits from ``os.urandom``."""

    seed: int | None = None

    def new(self, at: datetime) -> str:
        return _ulid(at, os.urandom(10))


class SeededIds:
    """ULIDs whose random part is SHA-256(seed, counter): the same seed, the same ids."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._counter = 0
        self._lock = threading.Lock()

    def new(self, at: datetime) -> str:
        return _ulid(at, self._next("ids")[:10])

    def random_bytes(self, count: int) -> bytes:
        """Seeded bytes for deterministic runs only (test keys, golden histories)."""
        out = b""
        while len(out) < count:
            out += self._next("bytes")
        return out[:count]

    def _next(self, purpose: str) -> bytes:
        with self._lock:
            counter = self._counter
            self._counter += 1
        return hashlib.sha256(f"exoarmur-{purpose}:{self.seed}:{counter}".encode()).digest()


def is_ulid(text: str) -> bool:
    try:
        ULID.from_str(text)
    except ValueError:
        return False
    return True
