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

from ..errors import CheckpointError, LedgerCorrupt, NotFound
from ..model.event import Event, EventDraft
from .checkpoint import Checkpoint, open_note, parse_checkpoint_body, sign_checkpoint
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

#: inner nodes compared per store read while verifying
_NODES_PER_READ = 512


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
    #: sizes of the checkpoints kept elsewhere (``--checkpoint``) the log was proved to extend
    external_sizes: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def anchored(self) -> bool:
        """A signed checkpoint covers the whole log: nothing after it could be rewritten unseen."""
        return self.checkpoint_size == self.size

    @property
    def status(self) -> str:
        """VERIFIED; UNANCHORED: every check passed, nothing signed covers the end; else FAILED."""
        if not self.ok:
            return "FAILED"
        return "VERIFIED" if self.anchored else "UNANCHORED"


class Ledger:
    def __init__(
        self,
        store: LedgerStore,
        key: SigningKey,
        *,
        retired: Sequence[Verifier] = (),
        on_checkpoint: Callable[[str, Checkpoint, str], None] | None = None,
    ) -> None:
        self.store = store
        self.key = key
        #: public keys of signing keys rotated away: checkpoints they signed still verify
        self.retired = tuple(retired)
        #: told of every checkpoint this ledger signs (the home keeps the latest outside the store)
        self.on_checkpoint = on_checkpoint

    @property
    def verifier(self) -> Verifier:
        return self.key.verifier()

    @property
    def verifiers(self) -> tuple[Verifier, ...]:
        """Every key whose signature on one of this ledger's checkpoints counts."""
        return (self.verifier, *self.retired)

    def open_checkpoint(self, tenant: str, note: str) -> Checkpoint:
        """The checkpoint in ``note`` if a key of this ledger signed it for ``tenant``'s log."""
        checkpoint = parse_checkpoint_body(open_note(note, self.verifiers))
        if checkpoint.origin != self.origin(tenant):
            raise CheckpointError(
                f"checkpoint origin {checkpoint.origin!r} is not this log ({self.origin(tenant)!r})"
            )
        return checkpoint

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

    def sizes(self, tenants: Sequence[str]) -> dict[str, int]:
        return self.store.sizes(tenants)

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
        if self.on_checkpoint is not None:
            self.on_checkpoint(tenant, checkpoint, note)
        return SignedCheckpoint(note, checkpoint)

    def latest_checkpoint(self, tenant: str) -> SignedCheckpoint | None:
        found = self.store.latest_checkpoint(tenant)
        if found is None:
            return None
        _, note = found
        return SignedCheckpoint(note, parse_checkpoint_body(open_note(note, self.verifiers)))

    def current_checkpoint(self, tenant: str) -> SignedCheckpoint:
        """The latest checkpoint if it covers the whole log, else a fresh one."""
        latest = self.latest_checkpoint(tenant)
        if latest is not None and latest.checkpoint.size == self.size(tenant):
            try:  # one signed by a rotated-away key alone does not serve the current key's readers
                open_note(latest.note, [self.verifier])
            except CheckpointError:
                return self.checkpoint(tenant)
            return latest
        return self.checkpoint(tenant)

    def event(self, tenant: str, event_id: str) -> Event:
        event = self.store.event_by_id(tenant, event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r} in tenant {tenant!r}")
        return event

    def complete_story(self, tenant: str, intent_id: str) -> list[Event]:
        """An intent's events, proved complete before anything acts on their absence.

        An index answers "which events does this intent have" from columns
        outside the hashed bytes; an edited one can hide a finish and make
        recovery record ``outcome_unknown`` (or run an approved intent again).
        Reading the log from the intent's first event to the end shows every
        event whose bytes name the intent: LedgerCorrupt if that is not the story.
        """
        story = self.store.events_for_intent(tenant, intent_id)
        if not story:
            return story
        indexed = {event.seq for event in story}
        for event in self.store.events(tenant, story[0].seq, self.size(tenant)):
            if (event.intent_id == intent_id) != (event.seq in indexed):
                raise LedgerCorrupt(
                    f"log {tenant!r} seq {event.seq}: the index of intent {intent_id!r} "
                    "disagrees with the events' bytes; run `exoarmur verify`"
                )
        return story

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
        self,
        tenant: str,
        progress: Callable[[int], None] | None = None,
        *,
        kept: Sequence[str] = (),
    ) -> LedgerVerification:
        """Re-derive every leaf, the tree, the stored nodes and the indexes from the stored bytes.

        Checks: each event's bytes hash to its stored leaf; its sequence
        number and tenant are where they are stored; every column and index
        entry a read path uses agrees with the bytes; the rebuilt tree equals
        the stored perfect-subtree hashes at the end; the latest signed
        checkpoint verifies and is consistent with (a prefix of) this tree;
        so is each note in ``kept`` (checkpoints kept outside the store, which
        is how a rollback of the whole store is caught).
        """
        problems: list[str] = []
        frontier = Frontier()
        size = self.size(tenant)
        # Every stored inner node, not only those on the way to the root: proofs read them all.
        nodes: list[tuple[NodeKey, bytes]] = []

        def compare_nodes() -> None:
            stored = self.store.read_nodes(tenant, [key for key, _ in nodes])
            for key, digest in nodes:
                if stored.get(key) != digest:
                    problems.append(
                        f"log {tenant!r}: stored Merkle node (level {key[0]}, index {key[1]}) "
                        "disagrees with the events' leaf hashes"
                    )
            nodes.clear()

        try:
            for event in self.store.events(tenant, 0, size):
                where = f"event seq {frontier.size} ({event.event_id})"
                if event.seq != frontier.size:
                    problems.append(f"{where}: records seq {event.seq}")
                if event.tenant != tenant:
                    problems.append(f"{where}: records tenant {event.tenant!r}")
                if leaf_hash(event.canonical) != event.leaf_hash:
                    problems.append(f"{where}: bytes do not hash to the stored leaf hash")
                for key, digest in frontier.append(leaf_hash(event.canonical)):
                    if key[0] > 0:
                        nodes.append((key, digest))
                if len(nodes) >= _NODES_PER_READ:
                    compare_nodes()
                if progress is not None:
                    progress(1)
                if len(problems) >= 20:
                    break
            if nodes and not problems:
                compare_nodes()
        except LedgerCorrupt as exc:
            problems.append(str(exc))
        root = frontier.root()
        if not problems and frontier.size == size:
            try:
                problems.extend(self.store.index_problems(tenant, size)[:20])
            except LedgerCorrupt as exc:
                problems.append(str(exc))
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
        external: list[int] = []
        for number, note in enumerate(kept, 1):
            try:
                held = self.open_checkpoint(tenant, note)
            except CheckpointError as exc:
                problems.append(f"kept checkpoint {number}: {exc}")
                continue
            if held.size > size:
                problems.append(
                    f"kept checkpoint {number} covers {held.size} events, the log holds {size}: "
                    "the log was rolled back"
                )
            elif problems:
                continue
            elif not self.consistency(tenant, held.size, size).verify(held.root_hash, root):
                problems.append(
                    f"kept checkpoint {number} (size {held.size}) is not a prefix of this log: "
                    "the log was rewritten or rolled back"
                )
            else:
                external.append(held.size)
        return LedgerVerification(
            tenant, size, root, checkpoint_size, tuple(problems), tuple(external)
        )
