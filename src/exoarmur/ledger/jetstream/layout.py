"""Where a ledger lives in JetStream: subjects, bucket names and the streams' configurations.

Pure: names and wire-form configurations only. Creating a stream, or checking
the one a server holds, is :mod:`.admin`'s work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Layout", "StreamConfig", "bucket_stream", "ledger_stream", "subject_token", "unfit"]

_PLAIN_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]+")
_MAX_PLAIN_TOKEN: Final = 128


def subject_token(name: str) -> str:
    """A name (tenant, event id, intent, type, key) as one NATS subject token and KV key part.

    Names of letters, digits, ``_`` and ``-`` stand for themselves: every tenant
    the intent model accepts, and the system log ``_system`` (an underscore is
    legal in subjects and KV keys, and no tenant name may start with one). Any
    other name becomes ``=`` and the hex of its UTF-8 bytes, which no plain name
    can equal: ``intent.recorded`` -> ``=696e74656e742e7265636f72646564``. A
    name longer than that form allows becomes ``==`` and the SHA-256 of its
    bytes, so that no subject outgrows the server's protocol line; such names
    are looked up, never listed, and tenants may not have one.
    """
    if len(name) <= _MAX_PLAIN_TOKEN and _PLAIN_TOKEN.fullmatch(name):
        return name
    data = name.encode()
    if len(data) * 2 <= _MAX_PLAIN_TOKEN * 2:
        return "=" + data.hex()
    return "==" + hashlib.sha256(data).hexdigest()


def _untoken(token: str) -> str:
    if token.startswith("=") and not token.startswith("=="):
        return bytes.fromhex(token[1:]).decode()
    return token


@dataclass(frozen=True)
class Layout:
    """Where a ledger lives in JetStream: the stream, its subjects and its buckets."""

    stream: str

    @property
    def prefix(self) -> str:
        return self.stream.lower()

    @property
    def subjects(self) -> str:
        return f"{self.prefix}.*.events"

    def subject(self, tenant: str) -> str:
        return f"{self.prefix}.{subject_token(tenant)}.events"

    def tenant_of(self, subject: str) -> str:
        return _untoken(subject.split(".")[1])

    @property
    def tree(self) -> str:
        return f"{self.stream}_TREE"

    @property
    def index(self) -> str:
        return f"{self.stream}_INDEX"

    @property
    def keys(self) -> str:
        return f"{self.stream}_KEYS"

    @property
    def run(self) -> str:
        return f"{self.stream}_RUN"

    @staticmethod
    def kv_stream(bucket: str) -> str:
        return f"KV_{bucket}"

    @staticmethod
    def kv_subject(bucket: str, key: str) -> str:
        return f"$KV.{bucket}.{key}"


#: JetStream's wire form of a stream's configuration (durations in nanoseconds)
StreamConfig = dict[str, Any]
_TWO_MINUTES_NS: Final = 120 * 10**9


def ledger_stream(layout: Layout, replicas: int) -> StreamConfig:
    return {
        "name": layout.stream,
        "description": "ExoArmur ledger: one subject per tenant, one message per append",
        "subjects": [layout.subjects],
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": -1,
        "max_msg_size": -1,
        "discard": "old",
        "duplicate_window": _TWO_MINUTES_NS,
        "allow_direct": True,
        "allow_atomic": True,
        "deny_delete": True,
        "deny_purge": True,
    }


def bucket_stream(bucket: str, replicas: int, *, ttl: bool = False) -> StreamConfig:
    """A key-value bucket laid out as ``nats kv`` lays it out, one revision per key."""
    config: StreamConfig = {
        "name": Layout.kv_stream(bucket),
        "description": "ExoArmur ledger index (derived from the ledger stream)",
        "subjects": [f"$KV.{bucket}.>"],
        "retention": "limits",
        "storage": "file",
        "num_replicas": replicas,
        "max_consumers": -1,
        "max_msgs": -1,
        "max_bytes": -1,
        "max_age": 0,
        "max_msgs_per_subject": 1,
        "max_msg_size": -1,
        "discard": "new",
        "duplicate_window": _TWO_MINUTES_NS,
        "allow_direct": True,
        "allow_rollup_hdrs": True,
        "deny_delete": True,
    }
    if ttl:
        config["allow_msg_ttl"] = True
    return config


def unfit(found: StreamConfig, wanted: StreamConfig) -> list[str]:
    """What makes an existing stream unfit to hold (or index) a ledger; empty when fit."""
    problems: list[str] = []
    if found.get("storage") != "file":
        problems.append("storage is not file")
    if found.get("num_replicas", 1) != wanted["num_replicas"]:
        problems.append(
            f"{found.get('num_replicas', 1)} replicas, the URL asks for {wanted['num_replicas']}"
        )
    if found.get("retention", "limits") != "limits":
        problems.append("retention is not limits (events would be removed)")
    for limit in ("max_msgs", "max_bytes"):
        if (found.get(limit) or -1) > 0:
            problems.append(f"{limit} is set (old events would be removed)")
    if found.get("max_age"):
        problems.append("max_age is set (old events would expire)")
    if (found.get("max_msgs_per_subject") or -1) != wanted["max_msgs_per_subject"]:
        problems.append(f"max_msgs_per_subject is {found.get('max_msgs_per_subject')}")
    if found.get("no_ack"):
        problems.append("no_ack is set (writes would not be acknowledged)")
    if found.get("persist_mode") == "async":
        problems.append("persist_mode is async (acknowledged before stored)")
    for flag in ("allow_direct", "allow_atomic", "deny_delete", "deny_purge", "allow_msg_ttl"):
        if wanted.get(flag) and not found.get(flag):
            problems.append(f"{flag} is off")
    if not set(wanted["subjects"]) <= set(found.get("subjects") or ()):
        problems.append(f"it does not hold subjects {wanted['subjects'][0]}")
    return problems
