"""The idempotency keys a replay has met, in memory sized by the log, never by its keys.

Two intents recorded under one key is a forgery the store's append refuses,
so replay looks for it in the events it streams, not in the store's index:
a Bloom filter over every recorded intent's key answers "certainly new"
for almost every key with no read at all. Only a key it may have met before
is confirmed against the store, so a false positive costs one lookup and
never a wrong report.

The filter is sized once, from the log's length, at ten bits and seven
probes a key (under 1 % false positives): a million-event log takes
1.2 MiB from the start, and nothing more as the replay goes on.
"""

from __future__ import annotations

import hashlib
import struct

_BITS_PER_KEY = 10
_PROBES = 7
_PROBE = struct.Struct("<I")


class SeenKeys:
    """A Bloom filter of idempotency keys: membership is "maybe" or "certainly not"."""

    def __init__(self, expected_keys: int) -> None:
        self._bits = max(expected_keys, 64) * _BITS_PER_KEY
        self._table = bytearray((self._bits + 7) // 8)

    @property
    def size_bytes(self) -> int:
        return len(self._table)

    def add(self, key: str) -> bool:
        """Remember ``key``: True if it may have been added before, False if certainly not."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4 * _PROBES)
        table, bits = self._table, self._bits
        seen = True
        for probe in _PROBE.iter_unpack(digest.digest()):
            bit = probe[0] % bits
            mask = 1 << (bit & 7)
            if not table[bit >> 3] & mask:
                seen = False
                table[bit >> 3] |= mask
        return seen
