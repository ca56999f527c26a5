"""Log messages: how events are packed into the messages of one publish, and read back.

A message holds consecutive events of one tenant, their canonical bytes one
per line, with their leaf hashes and idempotency keys in its headers (see
:mod:`.store`). Pure: the limits here are the server's, the I/O is elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ...errors import LedgerCorrupt
from ...model.event import Event
from ..merkle import HASH_SIZE
from ..store import decode_event
from .settings import first_line

__all__ = [
    "HEADER_ALLOWANCE",
    "LEAF_HEADER_BYTES",
    "MAX_APPEND_EVENTS",
    "MAX_APPEND_PAYLOADS",
    "MAX_BATCH_MESSAGES",
    "MAX_HEADER_BYTES",
    "Chunk",
    "Facts",
    "Stored",
    "TooManyMessages",
    "data_budget",
    "facts_of",
    "pack",
    "truncate",
]

#: ADR-50: a server refuses an atomic batch of more messages than this
MAX_BATCH_MESSAGES: Final = 1000
#: the server stores a message's headers behind a 16-bit length; stay well below
MAX_HEADER_BYTES: Final = 60_000
#: room for the Nats-* headers beside ours, within max_payload
HEADER_ALLOWANCE: Final = 1024
#: base64 characters per leaf hash, rounded up
LEAF_HEADER_BYTES: Final = 44
#: one append may hold at most this many events, and this many max_payloads of bytes,
#: so that it always fits one atomic batch
MAX_APPEND_EVENTS: Final = 100_000
MAX_APPEND_PAYLOADS: Final = 100


@dataclass(frozen=True)
class Stored:
    """One message as the stream holds it."""

    subject: str
    seq: int
    headers: Mapping[str, str]
    data: bytes
    time: str = ""


@dataclass(frozen=True)
class Facts:
    """What the indexes need of one event."""

    event_id: str
    type: str
    correlation_id: str
    intent_id: str | None


def facts_of(line: bytes, where: str) -> Facts:
    try:
        data = json.loads(line)
        intent = data.get("intent_id")
        return Facts(
            str(data["event_id"]),
            str(data["type"]),
            str(data["correlation_id"]),
            None if intent is None else str(intent),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LedgerCorrupt(
            f"{where}: stored event bytes do not decode: {first_line(exc)}"
        ) from None


@dataclass
class Chunk:
    """One message of the log: consecutive events of one tenant."""

    first: int
    lines: list[bytes]
    leaves: list[bytes]
    keys: dict[int, str]
    facts: list[Facts] | None = None
    #: the tenant whose log the message is on (named in every error about it)
    log: str = ""

    @property
    def end(self) -> int:
        return self.first + len(self.lines)

    def fact(self, offset: int) -> Facts:
        if self.facts is None:
            self.facts = [
                facts_of(line, f"log {self.log!r} seq {self.first + i}")
                for i, line in enumerate(self.lines)
            ]
        return self.facts[offset]

    def event(self, offset: int) -> Event:
        return decode_event(self.log, self.first + offset, self.lines[offset], self.leaves[offset])

    @property
    def data(self) -> bytes:
        return b"\n".join(self.lines)

    def headers(self, token: str) -> dict[str, str]:
        leaves = b"".join(self.leaves)
        headers = {
            "Exo-Seq": str(self.first),
            "Exo-Count": str(len(self.lines)),
            "Exo-Leaves": base64.b64encode(leaves).decode(),
        }
        if self.keys:
            headers["Exo-Keys"] = json.dumps(
                {str(offset): key for offset, key in self.keys.items()}, separators=(",", ":")
            )
        digest = hashlib.sha256(self.data + leaves).hexdigest()[:32]
        headers["Nats-Msg-Id"] = f"{token}:{self.first}:{digest}"
        return headers

    @classmethod
    def parse(cls, stored: Stored, subject: str, log: str) -> Chunk:
        where = f"message {stored.seq} of the ledger stream"
        if stored.subject != subject:
            raise LedgerCorrupt(f"{where} is on {stored.subject}, not {subject}")
        headers = stored.headers
        try:
            first = int(headers["Exo-Seq"])
            count = int(headers["Exo-Count"])
            leaves = base64.b64decode(headers["Exo-Leaves"], validate=True)
            keys = {int(k): str(v) for k, v in json.loads(headers.get("Exo-Keys", "{}")).items()}
        except (KeyError, ValueError, TypeError, AttributeError, binascii.Error) as exc:
            raise LedgerCorrupt(
                f"{where} is not a ledger message ({type(exc).__name__}: {exc})"
            ) from None
        lines = stored.data.split(b"\n") if count else []
        if len(lines) != count or len(leaves) != count * HASH_SIZE or first < 0:
            raise LedgerCorrupt(
                f"{where} says {count} events from seq {first}, and holds "
                f"{len(lines)} lines and {len(leaves) // HASH_SIZE} leaf hashes"
            )
        return cls(
            first=first,
            lines=lines,
            leaves=[leaves[i : i + HASH_SIZE] for i in range(0, len(leaves), HASH_SIZE)],
            keys=keys,
            log=log,
        )


def truncate(chunk: Chunk, lines: int) -> None:
    """Drop a message's events from position ``lines`` on (an append that did not fit)."""
    del chunk.lines[lines:]
    del chunk.leaves[lines:]
    if chunk.facts is not None:
        del chunk.facts[lines:]
    for offset in [o for o in chunk.keys if o >= lines]:
        del chunk.keys[offset]


def data_budget(max_payload: int) -> int:
    """Bytes of events one message may carry, given the server's ``max_payload``."""
    return max(1024, max_payload - MAX_HEADER_BYTES - HEADER_ALLOWANCE)


class TooManyMessages(ValueError):
    """The first append alone needs more messages than one atomic batch may hold."""


def pack(
    appends: Sequence[Sequence[tuple[Event, str | None]]], budget: int
) -> list[tuple[Chunk, list[int]]]:
    """The messages of one publish: as many whole appends as one atomic batch carries.

    ``appends`` are (event, idempotency key) pairs, placed at consecutive
    positions. Each message is paired with the indexes of the appends that
    end in it. Appends that would make the batch too long are left for the
    next publish; raises :class:`TooManyMessages` when the first one alone is
    too long for a batch.
    """
    messages: list[tuple[Chunk, list[int]]] = []
    size = header = 0
    for index, append in enumerate(appends):
        mark = (len(messages), len(messages[-1][0].lines) if messages else 0, size, header)
        for event, key in append:
            key_bytes = 0 if key is None else len(json.dumps(key)) + 12
            if not messages or (
                size + 1 + len(event.canonical) > budget
                or header + LEAF_HEADER_BYTES + key_bytes > MAX_HEADER_BYTES
            ):
                messages.append((Chunk(event.seq, [], [], {}, []), []))
                size = header = 0
            chunk = messages[-1][0]
            if key is not None:
                chunk.keys[len(chunk.lines)] = key
            chunk.lines.append(event.canonical)
            chunk.leaves.append(event.leaf_hash)
            assert chunk.facts is not None
            chunk.facts.append(
                Facts(event.event_id, event.type, event.correlation_id, event.intent_id)
            )
            size += len(event.canonical) + 1
            header += LEAF_HEADER_BYTES + key_bytes
        if len(messages) <= MAX_BATCH_MESSAGES:
            messages[-1][1].append(index)
            continue
        if index == 0:
            raise TooManyMessages(
                f"an append of {len(append)} events needs more than {MAX_BATCH_MESSAGES} messages"
            )
        count, lines, size, header = mark
        del messages[count:]
        if lines:
            truncate(messages[-1][0], lines)
        break
    return messages
