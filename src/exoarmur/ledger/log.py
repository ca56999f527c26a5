"""The ledger: a store plus a signing key.

Appends go to the store; proofs and roots are computed from the stored
perfect-subtree hashes (O(log n) reads); checkpoints are C2SP signed notes
over (origin, size, root). ``verify`` re-derives everything from the stored
canonical bytes and reports the first place where they disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import LedgerCorrupt, NotFound
from ..model.event import Event, EventDraft
from .checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from .keys import SigningKey, Verifier
from .merkle import (
    Frontier,
    NodeKey,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from .store import LedgerStore


@dataclass(frozen=True)
class SignedCheckpoint:
    note: str
    checkpoint: Checkpoint


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
        }

    def verify(self, root: bytes) -> bool:
        return verify_inclusion(self.leaf_hash, self.leaf_index, self.tree_size, self.hashes, root)


@dataclass(frozen=True)
class ConsistencyProof:
    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "old_size": self.old_size,
            "new_size": self.new_size,
            "hashes": [h.hex() for h in self.hashes],
        }

    def verify(self, old_root: bytes, new_root: bytes) -> bool:
        return verify_consistency(self.old_size, self.new_size, old_root, new_root, self.hashes)


@dataclass(frozen=True)
class LedgerVerification:
    """What ``Ledger.verify`` found. ``ok`` only when every check passed."""

    tenant: str
    size: int
    root_hash: bytes
    checkpoint_size: int | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class Ledger:
    def __init__(self, store: LedgerStore, key: SigningKey) -> None:
        self.store = store
        self.key = key

    @property
    def verifier(self) -> Verifier:
        return self.key.verifier()

    def origin(self, tenant: str) -> str:
        """The checkpoint origin line: one log per (signing key, tenant)."""
        return f"{self.key.name}/{tenant}"

    def append(
        self,
        tenant: str,
        drafts: Sequence[EventDraft],
        *,
        expect: tuple[str, int] | None = None,
    ) -> list[Event]:
        return self.store.append(tenant, drafts, expect=expect)

    def size(self, tenant: str) -> int:
        return self.store.size(tenant)

    def _reader(self, tenant: str) -> Callable[[Sequence[NodeKey]], dict[NodeKey, bytes]]:
        def read(keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
            return dict(self.store.read_nodes(tenant, keys))

        return read

    def root(self, tenant: str, size: int | None = None) -> bytes:
        return root_at(self.size(tenant) if size is None else size, self._reader(tenant))

    def checkpoint(self, tenant: str) -> SignedCheckpoint:
        """Sign (origin, current size, current root) and keep the note."""
        size = self.size(tenant)
        checkpoint = Checkpoint(
            origin=self.origin(tenant), size=size, root_hash=self.root(tenant, size)
        )
        note = sign_checkpoint(checkpoint, self.key)
        self.store.save_checkpoint(tenant, size, note)
        return SignedCheckpoint(note, checkpoint)

    def latest_checkpoint(self, tenant: str) -> SignedCheckpoint | None:
        found = self.store.latest_checkpoint(tenant)
        if found is None:
            return None
        _, note = found
        return SignedCheckpoint(note, open_checkpoint(note, self.verifier))

    def current_checkpoint(self, tenant: str) -> SignedCheckpoint:
        """The latest checkpoint if it covers the whole log, else a fresh one."""
        latest = self.latest_checkpoint(tenant)
        if latest is not None and latest.checkpoint.size == self.size(tenant):
            return latest
        return self.checkpoint(tenant)

    def event(self, tenant: str, event_id: str) -> Event:
        event = self.store.event_by_id(tenant, event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r} in tenant {tenant!r}")
        return event

    def inclusion(self, tenant: str, seq: int, size: int) -> InclusionProof:
        if not 0 <= seq < size <= self.size(tenant):
            raise NotFound(f"no leaf {seq} in a tree of size {size} for tenant {tenant!r}")
        reader = self._reader(tenant)
        leaf = reader([(0, seq)])[(0, seq)]
        hashes = inclusion_proof(seq, size, reader)
        return InclusionProof(seq, size, leaf, tuple(hashes))

    def consistency(self, tenant: str, old_size: int, new_size: int) -> ConsistencyProof:
        if not 0 <= old_size <= new_size <= self.size(tenant):
            raise NotFound(
                f"tenant {tenant!r} has no trees of sizes {old_size} and {new_size} "
                f"(its size is {self.size(tenant)})"
            )
        hashes = consistency_proof(old_size, new_size, self._reader(tenant))
        return ConsistencyProof(old_size, new_size, tuple(hashes))

    def verify(
        self, tenant: str, progress: Callable[[int], None] | None = None
    ) -> LedgerVerification:
        """Re-derive every leaf, the tree and the stored nodes from the stored bytes.

        Checks, in one pass: each event's bytes hash to its stored leaf; its
        sequence number and tenant are where they are stored; the rebuilt tree
        equals the stored perfect-subtree hashes at the end; the latest signed
        checkpoint verifies and is consistent with (a prefix of) this tree.
        """
        problems: list[str] = []
        frontier = Frontier()
        size = self.size(tenant)
        for event in self.store.events(tenant, 0, size):
            where = f"event seq {frontier.size} ({event.event_id})"
            if event.seq != frontier.size:
                problems.append(f"{where}: records seq {event.seq}")
            if event.tenant != tenant:
                problems.append(f"{where}: records tenant {event.tenant!r}")
            if leaf_hash(event.canonical) != event.leaf_hash:
                problems.append(f"{where}: bytes do not hash to the stored leaf hash")
            frontier.append(leaf_hash(event.canonical))
            if progress is not None:
                progress(1)
            if len(problems) >= 20:
                break
        root = frontier.root()
        if frontier.size != size:
            problems.append(f"log holds {frontier.size} events, its tree size says {size}")
        else:
            try:
                stored_root = self.root(tenant, size)
            except LedgerCorrupt as exc:
                problems.append(f"stored Merkle nodes incomplete: {exc}")
            else:
                if stored_root != root:
                    problems.append("stored Merkle nodes disagree with the events' leaf hashes")
        checkpoint_size = None
        try:
            latest = self.latest_checkpoint(tenant)
        except Exception as exc:  # any failure to open it is a finding
            problems.append(f"latest checkpoint does not verify: {exc}")
            latest = None
        if latest is not None:
            checkpoint_size = latest.checkpoint.size
            if latest.checkpoint.origin != self.origin(tenant):
                problems.append(f"checkpoint origin {latest.checkpoint.origin!r} is not this log")
            elif checkpoint_size > size:
                problems.append(f"checkpoint covers {checkpoint_size} events, log has {size}")
            elif not problems:
                proof = self.consistency(tenant, checkpoint_size, size)
                if not proof.verify(latest.checkpoint.root_hash, root):
                    problems.append(
                        "log is not consistent with its signed checkpoint "
                        f"at size {checkpoint_size}"
                    )
        return LedgerVerification(tenant, size, root, checkpoint_size, tuple(problems))
