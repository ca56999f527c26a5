"""Who may recover, across machines: the run lock as leases in a key-value bucket."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

from ...errors import ExoArmurError, StoreUnavailable
from .admin import ensure_stream
from .chunking import Stored
from .connection import Client, Link, Runtime
from .kv import KeyValue
from .layout import Layout, bucket_stream
from .settings import parse_url

__all__ = ["RunLock"]

_T = TypeVar("_T")


class RunLock:
    """Who may recover, across machines: ``home.RunLock``'s contract on leases in a bucket.

    A file lock only sees the processes of one machine. Here every governor
    holds a *member lease* (``member.<id>`` in bucket ``<STREAM>_RUN``),
    renewed every ``lease / 5`` seconds and written with a per-message TTL of
    ``lease``, so the server drops the lease of a governor that died. A
    starting governor first takes the *recovery lease* (``recovery``, written
    only if absent, renewed the same way): holding it, no other governor can
    start, and if it sees no other live member it is alone and may recover
    unfinished executions. Otherwise it releases the recovery lease at once
    and runs without recovering. A lease counts as live while it was renewed
    within ``2.5`` renewal periods by the server's clock, so a governor killed
    a moment ago still blocks recovery (the safe side) for a few seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        lease: float = 10.0,
        poll: float = 0.1,
        max_wait: float = 600.0,
    ) -> None:
        settings = parse_url(url)
        self.layout = Layout(settings.stream)
        self._settings = settings
        self._lease = lease
        self._period = lease / 5
        self._poll = poll
        self._max_wait = max_wait
        self._member = f"member.{uuid.uuid4().hex}"
        self._recovering = False
        self._beating: asyncio.Task[None] | None = None
        self._call_timeout = settings.timeout * 4 + settings.connect_timeout
        self._link = Link(settings, (0.0, 0.0))
        self._client = Client(self._link)
        self._kv = KeyValue(self._client)
        self._runtime: Runtime | None = None

    def _run(self, coro: Coroutine[Any, Any, _T], what: str) -> _T:
        if self._runtime is None:
            self._runtime = Runtime("exoarmur-run-lock")
        return self._runtime.run(coro, self._call_timeout, what)

    def acquire(self) -> bool:
        """Hold a member lease; return True if we were alone (may recover)."""
        deadline = time.monotonic() + self._max_wait
        try:
            self._run(self._prepare(), "run lock")
            while not self._run(self._take_recovery(), "run lock"):
                # Another governor is starting (perhaps recovering): wait for it.
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"waited {self._max_wait:.0f}s for another governor to finish "
                        f"starting ({self._settings.where}); its recovery lease is still renewed"
                    )
                time.sleep(self._poll)
            alone = self._run(self._join(), "run lock")
        except BaseException:
            self.release()
            raise
        return alone

    async def _prepare(self) -> None:
        await self._client.connection()
        await ensure_stream(
            self._client, bucket_stream(self.layout.run, self._settings.replicas, ttl=True)
        )

    async def _take_recovery(self) -> bool:
        return await self._kv.create(
            self.layout.run, "recovery", self._member.encode(), ttl=self._lease, what="run lock"
        )

    async def _renew(self) -> Stored | None:
        await self._kv.put(self.layout.run, self._member, b"", ttl=self._lease, what="run lock")
        return await self._kv.get(self.layout.run, self._member, what="run lock")

    async def _join(self) -> bool:
        self._recovering = True
        mine = await self._renew()
        now = _server_time(mine.time if mine is not None else "")
        members = await self._kv.scan(self.layout.run, "member.*", what="run lock")
        stale_after = self._period * 2.5
        others = [
            s
            for s in members
            if s.subject != Layout.kv_subject(self.layout.run, self._member)
            and now - _server_time(s.time) < stale_after
        ]
        self._beating = asyncio.get_running_loop().create_task(self._beat())
        if others:
            await self._end_recovery()
            return False
        return True

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            with contextlib.suppress(ExoArmurError):
                await self._renew()
                if self._recovering:
                    await self._kv.put(
                        self.layout.run,
                        "recovery",
                        self._member.encode(),
                        ttl=self._lease,
                        what="run lock",
                    )

    async def _end_recovery(self) -> None:
        if self._recovering:
            self._recovering = False
            await self._kv.delete(self.layout.run, "recovery", what="run lock")

    def share(self) -> None:
        """After recovery: give up the recovery lease, so that other governors may start."""
        self._run(self._end_recovery(), "run lock")

    def release(self) -> None:
        if self._runtime is None:
            return
        with contextlib.suppress(ExoArmurError):
            self._run(self._leave(), "run lock")
        self._runtime.stop()
        self._runtime = None

    async def _leave(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            self._beating = None
        try:
            if self._link.nc is not None:
                await self._end_recovery()
                await self._kv.delete(self.layout.run, self._member, what="run lock")
        finally:
            await self._link.close()


def _server_time(stamp: str) -> float:
    """Seconds since the epoch of a ``Nats-Time-Stamp`` (RFC 3339, nanoseconds); 0 if absent."""
    from datetime import datetime

    if not stamp:
        return 0.0
    text = stamp.rstrip("Z")
    whole, _, fraction = text.partition(".")
    moment = datetime.fromisoformat(whole + "+00:00").timestamp()
    return moment + (float("0." + fraction) if fraction.isdigit() else 0.0)
