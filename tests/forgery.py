"""Consistent forgeries: bundles whose story is edited, then hashed, proven and signed again.

A forger who holds the signing key can make any log: the bundle hash, the
signatures and the inclusion proofs of :func:`forge`'s output all verify.
Only the story checks can catch what it changes, so every story check is
tested with one of these, never with a byte edit that a hash stops first.

The Merkle tree here is written from RFC 9162 §2.1 alone (not our ledger's
code): leaves the forger does not show are filler.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exoarmur.encoding import canonical_bytes, content_hash
from exoarmur.ledger.checkpoint import Checkpoint, sign_checkpoint
from exoarmur.ledger.keys import SigningKey


@dataclass
class Entry:
    """One bundle entry as a forger edits it: the event as a value, or as raw text."""

    log: str
    leaf_index: int
    event: dict[str, Any]
    #: exact event text to write instead of the canonical form of ``event``
    text: str | None = None

    def bytes(self) -> bytes:
        if self.text is not None:
            return self.text.encode()
        return canonical_bytes(self.event)


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def _path(index: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*_path(index, leaves[:k]), _root(leaves[k:])]
    return [*_path(index - k, leaves[k:]), _root(leaves[:k])]


def entries(bundle: dict[str, Any], name: str) -> list[Entry]:
    return [Entry(e["log"], e["leaf_index"], json.loads(e["event"])) for e in bundle[name]]


def seal(
    bundle: dict[str, Any], events: list[Entry], context: list[Entry], key: SigningKey
) -> dict[str, Any]:
    """The bundle with these entries, proven against freshly signed checkpoints."""
    sizes: dict[str, int] = {}
    for entry in (*events, *context):
        sizes[entry.log] = max(sizes.get(entry.log, 0), entry.leaf_index + 1)
    leaves = {
        log: [_leaf(f"filler {log} {n}".encode()) for n in range(size)]
        for log, size in sizes.items()
    }
    for entry in (*events, *context):
        leaves[entry.log][entry.leaf_index] = _leaf(entry.bytes())
    notes = {
        log: sign_checkpoint(Checkpoint(f"{key.name}/{log}", len(tree), _root(tree)), key)
        for log, tree in sorted(leaves.items())
    }

    def out(entry: Entry) -> dict[str, Any]:
        return {
            "log": entry.log,
            "leaf_index": entry.leaf_index,
            "event": entry.bytes().decode(),
            "proof": [h.hex() for h in _path(entry.leaf_index, leaves[entry.log])],
        }

    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    body |= {
        "checkpoints": notes,
        "events": [out(e) for e in events],
        "context": [out(e) for e in context],
    }
    return body | {"bundle_hash": content_hash(body)}


Edit = Callable[[list[Entry], list[Entry]], None]


def forge(bundle: dict[str, Any], edit: Edit, key: SigningKey) -> dict[str, Any]:
    """Edit a copy of the bundle's entries in place, then seal it with the real key."""
    events, context = entries(bundle, "events"), entries(bundle, "context")
    edit(events, context)
    return seal(copy.deepcopy(bundle), events, context, key)


def of_type(events: list[Entry], kind: str, nth: int = 0) -> Entry:
    return [e for e in events if e.event["type"] == kind][nth]


def append(events: list[Entry], event: dict[str, Any], after: int = 1) -> Entry:
    """A new event placed after the log's last shown leaf (a forger may write any leaf)."""
    log = event["tenant"]
    position = max(e.leaf_index for e in events if e.log == log) + after
    entry = Entry(log, position, event | {"seq": position})
    events.append(entry)
    return entry
