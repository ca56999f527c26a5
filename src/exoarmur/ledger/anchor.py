"""The latest signed checkpoint of each log, kept beside the database: a rollback tripwire.

A store can go back in time whole (a deleted ``-wal`` file after a crash, a
restored backup, a snapshot rolled back) and still verify perfectly, because
its own checkpoints went back with it. This file lives outside the store:
the home writes it after every checkpoint it signs, and every start and
``exoarmur health`` compare each log with it. A log shorter than its last
checkpoint, or with another root at that size, is refused.

    {"format": "exoarmur.anchors/v1",
     "logs": {"<log>": {"size": N, "root": "<hex>", "note": "<signed note>"}}}

Writes are atomic (a temporary file, fsynced, renamed over the old one, the
directory fsynced) and only move a log forward, under a lock, so that two
processes checkpointing at once keep the larger one. It holds no secret, but
a stranger who can rewrite it can only make a start refuse, never pass.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LedgerCorrupt, NotFound, StoreError
from .checkpoint import Checkpoint

ANCHORS_FORMAT = "exoarmur.anchors/v1"


@dataclass(frozen=True)
class Anchor:
    """What a log had been signed at: it may only grow from here."""

    size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True)
class Anchors:
    path: Path

    def load(self) -> dict[str, Anchor]:
        """Every log's anchor; empty when nothing was ever checkpointed here."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise LedgerCorrupt(f"cannot read the checkpoint anchors {self.path}: {exc}") from None
        try:
            data = json.loads(raw)
            if data.get("format") != ANCHORS_FORMAT:
                raise ValueError(f"format is not {ANCHORS_FORMAT}")
            return {
                str(log): Anchor(int(entry["size"]), bytes.fromhex(entry["root"]), entry["note"])
                for log, entry in data["logs"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LedgerCorrupt(
                f"the checkpoint anchors {self.path} do not decode ({exc}); "
                "restore the file or move it away after checking the log by hand"
            ) from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record(self, log: str, checkpoint: Checkpoint, note: str) -> None:
        """Keep ``checkpoint`` as ``log``'s anchor if it is the newest; durable on return."""
        try:
            self._record(log, checkpoint, note)
        except OSError as exc:
            raise StoreError(
                f"cannot keep the checkpoint of log {log!r} in {self.path}: {exc.strerror}"
            ) from None

    def _record(self, log: str, checkpoint: Checkpoint, note: str) -> None:
        with self._locked():
            anchors = self.load()
            held = anchors.get(log)
            if held is not None and held.size >= checkpoint.size:
                return
            anchors[log] = Anchor(checkpoint.size, checkpoint.root_hash, note)
            body: dict[str, Any] = {
                "format": ANCHORS_FORMAT,
                "logs": {
                    name: {"size": a.size, "root": a.root_hash.hex(), "note": a.note}
                    for name, a in sorted(anchors.items())
                },
            }
            temporary = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, (json.dumps(body, indent=1) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def notes(self, log: str) -> list[str]:
        """The kept note of ``log`` (for ``verify``, which checks its signature), if any."""
        held = self.load().get(log)
        return [] if held is None else [held.note]

    def check(self, size: Callable[[str], int], root: Callable[[str, int], bytes]) -> None:
        """Refuse a store that went back: LedgerCorrupt naming each log and this file."""
        problems: list[str] = []
        for log, held in sorted(self.load().items()):
            now = size(log)
            if now < held.size:
                problems.append(
                    f"log {log!r} holds {now} events, but a checkpoint signed here "
                    f"covered {held.size}"
                )
                continue
            try:
                found = root(log, held.size)
            except (LedgerCorrupt, NotFound) as exc:
                problems.append(f"log {log!r}: no tree of size {held.size} to compare ({exc})")
                continue
            if found != held.root_hash:
                problems.append(
                    f"log {log!r} has another root at size {held.size} than the checkpoint "
                    "signed here"
                )
        if problems:
            raise LedgerCorrupt(
                "the ledger was rolled back or rewritten since its last checkpoint: "
                + "; ".join(problems)
                + f" (kept in {self.path}); refusing to use it. Restore the lost events, "
                "or investigate with `exoarmur verify --checkpoint`"
            )
