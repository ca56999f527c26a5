"""Witness cosignatures on a schedule while serving: the ``[witness]`` table of ``config.toml``.

    [witness]
    urls = ["https://w1.example/", "https://w2.example/"]   # submission prefixes
    keys = ["w1.example+…", "w2.example+…"]                 # the witnesses' verifier keys
    quorum = 2                  # cosignatures needed (default: all keys)
    interval_seconds = 300      # how often every log is brought to its witnesses

Every tick, each log whose latest stored checkpoint does not already carry
the quorum at the log's current size is signed afresh and cosigned by the
same code path as ``exoarmur checkpoint --witness``, and the cosigned note is
stored. A witness that refuses or cannot be reached is logged as an error
and counted; the service goes on (the next tick tries again), since a
governed action must never wait on a witness.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import ConfigError, KeyFileError
from ..ledger.log import Ledger
from ..witness.cosignature import CosignatureVerifier
from ..witness.publish import Requirement, cosign_and_store, sign_head

logger = logging.getLogger("exoarmur.server")

DEFAULT_INTERVAL_SECONDS = 300
#: seconds a witness has to answer one request
WITNESS_TIMEOUT = 10.0
_ALLOWED = {"urls", "keys", "quorum", "interval_seconds"}


@dataclass(frozen=True)
class WitnessSchedule:
    """The ``[witness]`` table, checked."""

    urls: tuple[str, ...]
    keys: tuple[CosignatureVerifier, ...]
    quorum: int
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WitnessSchedule | None:
        """None when there is no ``[witness]`` table; :class:`ConfigError` naming the rule."""
        table = config.get("witness")
        if table is None:
            return None
        if not isinstance(table, Mapping):
            raise ConfigError("witness: must be a table")
        for name in table:
            if name not in _ALLOWED:
                known = ", ".join(sorted(_ALLOWED))
                raise ConfigError(f"witness.{name}: unknown setting (allowed: {known})")
        urls = _strings(table, "urls")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"witness.urls: {url[:80]!r} is not an http:// or https:// URL")
        keys = []
        for value in _strings(table, "keys"):
            try:
                keys.append(CosignatureVerifier.from_string(value))
            except KeyFileError as exc:
                raise ConfigError(f"witness.keys: {exc}") from None
        quorum = table.get("quorum", len(keys))
        if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= len(keys):
            raise ConfigError(
                f"witness.quorum: must be a whole number from 1 to the {len(keys)} key(s) "
                f"given, got {quorum!r}"
            )
        interval = table.get("interval_seconds", DEFAULT_INTERVAL_SECONDS)
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise ConfigError(
                f"witness.interval_seconds: must be a number of seconds > 0, got {interval!r}"
            )
        return cls(tuple(urls), tuple(keys), quorum, float(interval))

    def to_canonical(self) -> dict[str, Any]:
        interval = self.interval_seconds
        return {
            "urls": list(self.urls),
            "keys": [key.verifier_key() for key in self.keys],
            "quorum": self.quorum,
            # a whole number stays one: canonical JSON has no floats to spare
            "interval_seconds": int(interval) if interval == int(interval) else str(interval),
        }


def _strings(table: Mapping[str, Any], name: str) -> list[str]:
    value = table.get(name)
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise ConfigError(f"witness.{name}: must be a non-empty list of strings, got {value!r}")
    return list(value)


class WitnessLoop:
    """A thread that has every log cosigned: once at start, then every interval."""

    def __init__(self, ledger: Ledger, schedule: WitnessSchedule) -> None:
        self.ledger = ledger
        self.schedule = schedule
        self.required = Requirement(schedule.keys, schedule.quorum)
        #: logs cosigned and stored, and attempts that failed, since the service started
        self.cosigned = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exoarmur-witness", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def tick(self) -> None:
        """Bring every log whose head lacks the quorum to the witnesses; never raises."""
        try:
            tenants: Sequence[str] = self.ledger.store.tenants()
        except Exception:  # the service outlives a failed tick; the next one tries again
            self.failed += 1
            logger.exception("witness cosigning: cannot list the logs; retrying next tick")
            return
        with httpx.Client(timeout=WITNESS_TIMEOUT) as client:
            for tenant in tenants:
                if self._stop.is_set():
                    return
                self._cosign(tenant, client)

    def _cosign(self, tenant: str, client: httpx.Client) -> None:
        try:
            stored = self.ledger.store.latest_checkpoint(tenant)
            if (
                stored is not None
                and stored[0] == self.ledger.size(tenant)
                and self.required.problem(stored[1]) is None
            ):
                return  # already cosigned where the log stands
            head, note = sign_head(self.ledger, tenant)
            published = cosign_and_store(
                self.ledger,
                tenant,
                head,
                note,
                witnesses=self.schedule.urls,
                keys=self.schedule.keys,
                quorum=self.schedule.quorum,
                client=client,
            )
        except Exception as exc:  # a witness down or refusing must not stop the service
            self.failed += 1
            logger.error(
                "witness cosigning FAILED for log %r (%d failure(s) so far): %s",
                tenant,
                self.failed,
                exc,
            )
            return
        for refusal in published.refusals:
            logger.warning("witness cosigning of log %r: %s", tenant, refusal.describe())
        if published.kept_other is not None:
            logger.warning(
                "log %r: another checkpoint of size %d is stored and kept (%s); "
                "the next one, once the log grows, will be cosigned",
                tenant,
                published.size,
                published.kept_other,
            )
            return
        self.cosigned += 1
        logger.info("log %r: checkpoint of size %d cosigned and stored", tenant, published.size)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.schedule.interval_seconds)
