"""Key-value buckets as ``nats kv`` lays them out: the ledger's indexes and idempotency keys.

A bucket is a stream ``KV_<bucket>`` keeping one revision per key on
``$KV.<bucket>.<key>``; a deleted key keeps a ``KV-Operation: DEL`` marker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

from .chunking import Stored
from .connection import WRONG_LAST_SEQUENCE, Client, api_failure, reply_json
from .layout import Layout

__all__ = ["KV_OPERATION", "KeyValue"]

KV_OPERATION: Final = "KV-Operation"


class KeyValue:
    """Reads and writes of key-value buckets through a :class:`~.connection.Client`."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.where = client.where
        #: (bucket, key) -> (revision, number) of compare-and-set keys this view touched
        self._revisions: dict[tuple[str, str], tuple[int, int]] = {}

    async def get(self, bucket: str, key: str, *, what: str = "read") -> Stored | None:
        (stored,) = await self.get_many(bucket, [key], what=what)
        return stored

    async def get_many(
        self, bucket: str, keys: Sequence[str], *, what: str = "read"
    ) -> list[Stored | None]:
        found = await self._client.get_many(
            Layout.kv_stream(bucket),
            [(None, Layout.kv_subject(bucket, key), None) for key in keys],
            what=what,
        )
        return [
            None if s is None or s.headers.get(KV_OPERATION) in ("DEL", "PURGE") else s
            for s in found
        ]

    async def put_many(
        self, writes: Sequence[tuple[str, str, bytes]], *, what: str = "index write"
    ) -> None:
        """Write values unconditionally: (bucket, key, value) each."""
        replies = await self._client.requests(
            [(Layout.kv_subject(bucket, key), value, None) for bucket, key, value in writes],
            what=what,
        )
        for reply in replies:
            answer = reply_json(reply, self.where, what)
            if "error" in answer:
                raise api_failure(self.where, what, answer["error"])

    async def put(
        self,
        bucket: str,
        key: str,
        value: bytes,
        *,
        revision: int | None = None,
        ttl: float | None = None,
        what: str = "index write",
    ) -> int | None:
        """Write a value; with ``revision``, only over that revision (0: only if absent).

        The new revision, or None when the expectation failed.
        """
        headers: dict[str, str] = {}
        if revision is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(revision)
        if ttl is not None:
            headers["Nats-TTL"] = f"{max(1, math.ceil(ttl))}s"
        reply = await self._client.request(
            Layout.kv_subject(bucket, key), value, headers or None, what=what
        )
        answer = reply_json(reply, self.where, what)
        if "error" in answer:
            if answer["error"].get("err_code") in WRONG_LAST_SEQUENCE:
                return None
            raise api_failure(self.where, what, answer["error"])
        return int(answer["seq"])

    async def create(
        self, bucket: str, key: str, value: bytes, *, ttl: float | None = None, what: str
    ) -> bool:
        """Write a value only if the key is absent (or deleted); True if this call wrote it."""
        if await self.put(bucket, key, value, revision=0, ttl=ttl, what=what) is not None:
            return True
        # A deleted key keeps a marker: take its place only over that revision.
        stored = await self._client.get(
            Layout.kv_stream(bucket), last=Layout.kv_subject(bucket, key), what=what
        )
        if stored is None or stored.headers.get(KV_OPERATION) not in ("DEL", "PURGE"):
            return False
        revision = stored.seq
        written = await self.put(bucket, key, value, revision=revision, ttl=ttl, what=what)
        return written is not None

    async def delete(self, bucket: str, key: str, *, what: str) -> None:
        reply = await self._client.request(
            Layout.kv_subject(bucket, key), b"", {KV_OPERATION: "DEL"}, what=what
        )
        answer = reply_json(reply, self.where, what)
        if "error" in answer:
            raise api_failure(self.where, what, answer["error"])

    async def scan(self, bucket: str, keys: str, *, what: str = "read") -> list[Stored]:
        found = await self._client.scan_all(
            Layout.kv_stream(bucket), Layout.kv_subject(bucket, keys), what=what
        )
        return [s for s in found if s.headers.get(KV_OPERATION) not in ("DEL", "PURGE")]

    async def advance(
        self, bucket: str, key: str, number: int, value: bytes, read: Callable[[bytes], int]
    ) -> None:
        """Set ``key`` to ``value`` unless it already holds a number at least ``number``.

        Compare-and-set on the key's revision, so that concurrent writers only
        ever move it forward. The revision this view last wrote or read is
        tried first: a single writer pays one request, not two.
        """
        known = self._revisions.get((bucket, key))
        if known is not None:
            revision, held = known
            if held >= number:
                return
            written = await self.put(bucket, key, value, revision=revision)
            if written is not None:
                self._revisions[(bucket, key)] = (written, number)
                return
        while True:
            stored = await self.get(bucket, key)
            if stored is not None:
                held = read(stored.data)
                self._revisions[(bucket, key)] = (stored.seq, held)
                if held >= number:
                    return
            revision = 0 if stored is None else stored.seq
            written = await self.put(bucket, key, value, revision=revision)
            if written is not None:
                self._revisions[(bucket, key)] = (written, number)
                return
