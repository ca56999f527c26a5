"""What ``exoarmur serve`` is configured with: the ``[server]`` table of ``config.toml``.

    [server]
    grace_seconds = 30            # running executions get this long once a stop is asked
    public_url = "https://exoarmur.example.com"   # pending answers link the console there
    [server.refusals]             # how much of strangers' refused requests the ledger keeps
    window_seconds = 300
    per_source = 10               # recorded one by one per (source, key id) and window
    max_bytes_per_hour = 65536    # bytes those may add per clock hour
    [witness]                     # cosign every log on a schedule (exoarmur.server.witnessing)

Recorded as ``service.configured`` in the system log when a service starts
(once per distinct settings), so what was kept and what was only counted can
be told from the ledger alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..integrations.console_link import check_public_url
from .witnessing import WitnessSchedule

#: seconds running executions get to finish once a stop is asked, unless configured
DEFAULT_GRACE_SECONDS = 30.0


def _whole(table: Mapping[str, Any], name: str, default: int, where: str) -> int:
    value = table.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}.{name}: must be a whole number >= 1, got {value!r}")
    return value


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for name in table:
        if name not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"{where}.{name}: unknown setting (allowed: {known})")


@dataclass(frozen=True)
class RefusalBudget:
    """How much the ledger keeps of requests refused for want of valid credentials."""

    #: seconds of a counting window, on the governor's clock
    window_seconds: int = 300
    #: refusals recorded one by one per (source, key id) in a window
    per_source: int = 10
    #: bytes (canonical event bytes) one-by-one refusals may add per clock hour
    max_bytes_per_hour: int = 65536

    def __post_init__(self) -> None:
        for name in ("window_seconds", "per_source", "max_bytes_per_hour"):
            _whole({name: getattr(self, name)}, name, 1, "server.refusals")

    @classmethod
    def from_table(cls, table: object) -> RefusalBudget:
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise ConfigError("server.refusals: must be a table")
        where = "server.refusals"
        _unknown(table, {"window_seconds", "per_source", "max_bytes_per_hour"}, where)
        default = cls()
        return cls(
            window_seconds=_whole(table, "window_seconds", default.window_seconds, where),
            per_source=_whole(table, "per_source", default.per_source, where),
            max_bytes_per_hour=_whole(
                table, "max_bytes_per_hour", default.max_bytes_per_hour, where
            ),
        )

    def to_canonical(self) -> dict[str, int]:
        return {
            "window_seconds": self.window_seconds,
            "per_source": self.per_source,
            "max_bytes_per_hour": self.max_bytes_per_hour,
        }


@dataclass(frozen=True)
class ServiceSettings:
    """The ``[server]`` table, checked."""

    grace_seconds: float = DEFAULT_GRACE_SECONDS
    refusals: RefusalBudget = field(default_factory=RefusalBudget)
    #: the ``[witness]`` table: None when logs are not cosigned on a schedule
    witness: WitnessSchedule | None = None
    #: where operators reach this service (links to the console in pending answers)
    public_url: str | None = None

    def __post_init__(self) -> None:
        check_grace(self.grace_seconds, "server.grace_seconds")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ServiceSettings:
        table = config.get("server", {})
        if not isinstance(table, Mapping):
            raise ConfigError("server: must be a table")
        _unknown(table, {"grace_seconds", "refusals", "public_url"}, "server")
        grace = table.get("grace_seconds", DEFAULT_GRACE_SECONDS)
        public_url = table.get("public_url")
        return cls(
            grace_seconds=check_grace(grace, "server.grace_seconds"),
            refusals=RefusalBudget.from_table(table.get("refusals")),
            witness=WitnessSchedule.from_config(config),
            public_url=None
            if public_url is None
            else check_public_url(public_url, "server.public_url"),
        )

    def to_canonical(self) -> dict[str, Any]:
        grace = self.grace_seconds
        canonical: dict[str, Any] = {
            "format": "exoarmur.service/v1",
            # a whole number stays one: canonical JSON has no floats to spare
            "grace_seconds": int(grace) if grace == int(grace) else str(grace),
            "refusals": self.refusals.to_canonical(),
        }
        if self.witness is not None:  # only when configured: settings without it keep their hash
            canonical["witness"] = self.witness.to_canonical()
        return canonical


def check_grace(value: object, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(f"{where}: must be a number of seconds >= 0, got {value!r}")
    return float(value)
