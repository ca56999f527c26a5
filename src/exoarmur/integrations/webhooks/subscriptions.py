"""Which webhooks are configured: ``<home>/webhooks.json``, written by ``exoarmur webhook``.

A webhook names a URL, the event types it receives, optionally the one
tenant it is for (else every tenant; global controls reach every webhook), a
body format (``exoarmur`` JSON or a ``slack`` Block Kit message) and where
its signing secret lives: a file readable by its owner only, or an
environment variable. The secret itself is never written here, nor in the
ledger. ``since`` holds each log's size when the webhook was added: events
recorded before it are not delivered to it.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from ...containment.fold import (
    CONTAINMENT_EXPIRED,
    CONTAINMENT_REVERTED,
    PLAN_COMPENSATED,
    PLAN_COMPLETED,
    PLAN_STARTED,
)
from ...errors import ConfigError, InputError
from ...model.event import (
    APPROVAL_GRANTED,
    APPROVAL_REJECTED,
    APPROVAL_REQUESTED,
    EXECUTION_BLOCKED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    INTENT_APPROVED,
    INTENT_EXPIRED,
    INTENT_REJECTED,
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POSTURE_EXPIRED,
    POSTURE_SET,
)

#: the ledger event types a webhook may receive (the default is all of them)
DELIVERABLE: Final = (
    APPROVAL_REQUESTED,
    APPROVAL_GRANTED,
    APPROVAL_REJECTED,
    INTENT_APPROVED,
    INTENT_REJECTED,
    INTENT_EXPIRED,
    EXECUTION_FINISHED,
    EXECUTION_OUTCOME_UNKNOWN,
    EXECUTION_BLOCKED,
    KILLSWITCH_ENGAGED,
    KILLSWITCH_RELEASED,
    POSTURE_SET,
    POSTURE_EXPIRED,
    # containment changes: a control applied is its intent's execution.finished
    CONTAINMENT_EXPIRED,
    CONTAINMENT_REVERTED,
    PLAN_STARTED,
    PLAN_COMPLETED,
    PLAN_COMPENSATED,
)
FORMATS: Final = ("exoarmur", "slack")
FILE_NAME: Final = "webhooks.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    events: tuple[str, ...] = DELIVERABLE
    fmt: str = "exoarmur"
    #: None: every tenant's events
    tenant: str | None = None
    secret_file: str | None = None
    secret_env: str | None = None
    since: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise InputError(
                f"name: {self.name!r} must be 1-63 of a-z, 0-9, '_' and '-', starting alphanumeric"
            )
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(
                f"url: must be an http:// or https:// URL with a host, not {self.url!r}"
            )
        unknown = [e for e in self.events if e not in DELIVERABLE]
        if unknown or not self.events:
            named = ", ".join(unknown) or "none given"
            raise InputError(f"events: {named}: choose from {', '.join(DELIVERABLE)}")
        if self.fmt not in FORMATS:
            raise InputError(f"format: must be one of {', '.join(FORMATS)}, not {self.fmt!r}")
        if self.secret_file is not None and self.secret_env is not None:
            raise InputError("secret: give a secret file or an environment variable, not both")
        if self.secret_env is not None and not _ENV.match(self.secret_env):
            raise InputError(f"secret-env: {self.secret_env!r} is not a variable name")
        if self.fmt == "exoarmur" and self.secret_file is None and self.secret_env is None:
            raise InputError("secret: an exoarmur webhook needs --secret-file or --secret-env")

    def wants(self, log: str, event_type: str, seq: int, system_log: str) -> bool:
        """Whether this webhook receives the event at ``seq`` of ``log``."""
        if event_type not in self.events or seq < self.since.get(log, 0):
            return False
        return self.tenant is None or log in (self.tenant, system_log)

    def secret(self) -> bytes:
        """The signing secret, read now (so a rotated file takes effect at the next delivery)."""
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if not value:
                raise ConfigError(f"webhook {self.name}: ${self.secret_env} is not set")
            return value.encode()
        if self.secret_file is None:
            return b""
        return read_secret_file(Path(self.secret_file), f"webhook {self.name}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "events": list(self.events),
            "format": self.fmt,
            "tenant": self.tenant,
            "secret_file": self.secret_file,
            "secret_env": self.secret_env,
            "since": dict(self.since),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Webhook:
        try:
            return cls(
                name=data["name"],
                url=data["url"],
                events=tuple(data["events"]),
                fmt=data["format"],
                tenant=data.get("tenant"),
                secret_file=data.get("secret_file"),
                secret_env=data.get("secret_env"),
                since={str(k): int(v) for k, v in data.get("since", {}).items()},
            )
        except (KeyError, TypeError, ValueError, InputError) as exc:
            raise ConfigError(f"{FILE_NAME}: webhook {data.get('name')!r}: {exc}") from None


def read_secret_file(path: Path, what: str) -> bytes:
    """A secret from a file only its owner may read; ConfigError naming the fix if not."""
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"{what}: secret file {path}: {exc.strerror}") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"{what}: secret file {path} is readable by others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run chmod 600 {path}"
        )
    secret = path.read_bytes().strip()
    if not secret:
        raise ConfigError(f"{what}: secret file {path} is empty")
    return secret


def load(home: Path) -> list[Webhook]:
    path = home / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("webhooks"), list):
        raise ConfigError(f"{path}: must be an object with a 'webhooks' list")
    return [Webhook.from_json(item) for item in data["webhooks"]]


def save(home: Path, webhooks: list[Webhook]) -> None:
    """Replace the file atomically, mode 0600 (it names where secrets live)."""
    path = home / FILE_NAME
    temporary = path.with_suffix(".json.tmp")
    text = json.dumps({"webhooks": [w.to_json() for w in webhooks]}, indent=2) + "\n"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
