"""The Merkle tree math of the ledger: RFC 9162 (Certificate Transparency v2).

This room turns a log of leaf hashes into tree heads, inclusion proofs and
consistency proofs that independent RFC 9162 / RFC 6962 tools accept, and
checks such proofs. It is shaped around a store that never rehashes its log:
the store keeps the hash of every *perfect subtree* (``2**level`` leaves
starting at a multiple of ``2**level``), which is exactly what a writer's
:class:`Frontier` hands back on each append. Every tree head and proof for any
past size is then built from O(log n) stored hashes fetched in one batch.

This module must never do I/O, read the clock or keep state between calls:
stored hashes come in only through the :data:`NodeReader` the caller passes,
so the same math serves SQLite, PostgreSQL, JetStream and offline verifiers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from exoarmur.errors import LedgerCorrupt

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "NodeKey",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "perfect_subtrees",
    "root_at",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

NodeKey: TypeAlias = tuple[int, int]
"""``(level, index)``: the perfect subtree of ``2**level`` leaves covering
leaves ``[index << level, (index + 1) << level)``; level 0 is a leaf hash."""

NodeReader: TypeAlias = Callable[[Sequence[NodeKey]], Mapping[NodeKey, bytes]]
"""A batch read of stored perfect-subtree hashes, one query per call.

Keys it does not return are treated as corruption of the store: every key this
module asks for lies inside a tree the caller says exists."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash; the 0x00 prefix keeps a leaf from passing as a node."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior hash; the 0x01 prefix keeps a node from passing as a leaf."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class Frontier:
    """The right edge of a tree: the perfect subtrees that decompose ``size``.

    One hash per set bit of ``size``, largest subtree first. A writer keeps it
    in memory so an append costs O(log n) hashes and no reads, and the nodes an
    append completes are exactly the ones the store must persist for later
    proofs.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def load(cls, size: int, read: NodeReader) -> Frontier:
        """Resume a writer over a stored tree of ``size`` leaves with one batch read."""
        if size < 0:
            raise ValueError(f"a tree size cannot be negative, got {size}")
        keys = perfect_subtrees(0, size)
        nodes = _read_nodes(read, keys)
        frontier = cls()
        frontier._size = size
        frontier._hashes = [nodes[key] for key in keys]
        return frontier

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> list[tuple[NodeKey, bytes]]:
        """Add one leaf hash; return the nodes it completes, leaf first, for the store.

        A set bit ``level`` in the old size means a finished subtree of that
        height waits on the edge for a right sibling: the new leaf carries up
        through every such bit, completing one node per level.
        """
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        index = self._size
        carry = leaf
        level = 0
        completed: list[tuple[NodeKey, bytes]] = [((0, index), carry)]
        while (index >> level) & 1:
            carry = node_hash(self._hashes.pop(), carry)
            level += 1
            completed.append(((level, index >> level), carry))
        self._hashes.append(carry)
        self._size = index + 1
        return completed

    def root(self) -> bytes:
        """The tree head: RFC 9162 splits at the largest power of two, which is
        the same as folding the edge's subtrees from the right."""
        return _fold(self._hashes)

    def copy(self) -> Frontier:
        """An independent frontier, so a writer can stage appends and drop them."""
        twin = Frontier()
        twin._size = self._size
        twin._hashes = list(self._hashes)
        return twin

    def __repr__(self) -> str:
        return f"Frontier(size={self._size})"


def perfect_subtrees(start: int, end: int) -> list[NodeKey]:
    """Cover leaves ``[start, end)`` with the fewest aligned perfect subtrees, left to right.

    For the ranges RFC 9162's recursion produces (``start`` a multiple of a
    power of two no smaller than the range) these are one subtree per set bit
    of ``end - start``, largest first, and folding their hashes from the right
    gives the range's MTH. That is what lets a store answer with stored hashes
    only.
    """
    if start < 0 or end < start:
        raise ValueError(f"leaf range [{start}, {end}) is not a range of a log")
    keys: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def root_at(size: int, read: NodeReader) -> bytes:
    """The tree head of the first ``size`` leaves, from at most log2(size) + 1 stored hashes."""
    if size < 0:
        raise ValueError(f"a tree size cannot be negative, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _range_hashes([(0, size)], read)[0]


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[size]), leaf end first, from one batch read."""
    if index < 0:
        raise ValueError(f"a leaf index cannot be negative, got {index}")
    if index >= size:
        raise ValueError(f"leaf index {index} is not in a tree of {size} leaves")
    # Walk down from the root; each step's sibling range is one proof element.
    siblings: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        split = start + _largest_power_below(end - start)
        if index < split:
            siblings.append((split, end))
            end = split
        else:
            siblings.append((start, split))
            start = split
    siblings.reverse()
    return _range_hashes(siblings, read)


def consistency_proof(old_size: int, new_size: int, read: NodeReader) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(old_size, D[new_size]), from one batch read.

    An empty old tree and an unchanged tree need no proof: every log extends
    the empty one, and equal sizes are checked by comparing heads.
    """
    if old_size < 0:
        raise ValueError(f"a tree size cannot be negative, got {old_size}")
    if old_size > new_size:
        raise ValueError(
            f"old tree size {old_size} is larger than new tree size {new_size}: a log never shrinks"
        )
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[start:end], whole) unrolled: `whole` stays true while the
    # old tree is a left-edge subtree the verifier already holds the head of.
    ranges: list[tuple[int, int]] = []
    start, end = 0, new_size
    whole = True
    while old_size != end:
        split = start + _largest_power_below(end - start)
        if old_size <= split:
            ranges.append((split, end))
            end = split
        else:
            ranges.append((start, split))
            start = split
            whole = False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return _range_hashes(ranges, read)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: is ``leaf`` the leaf hash at ``index`` of the tree with head ``root``?

    Malformed input is a failed proof, not an exception: a verifier fed by a
    network must not be made to crash.
    """
    if not (0 <= index < size) or not _are_hashes([leaf, root, *proof]):
        return False
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            # On the right edge the sibling may sit several levels up: skip the
            # levels where this node had no right neighbour.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: is the tree with head ``new_root`` an extension of ``old_root``'s?

    Never raises, for the same reason as :func:`verify_inclusion`. Sizes the
    RFC leaves open are decided fail-closed: equal sizes need equal heads and
    an empty proof, an empty old tree needs the empty head and an empty proof.
    """
    if not (0 <= old_size <= new_size) or not _are_hashes([old_root, new_root, *proof]):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root and (old_size > 0 or old_root == EMPTY_ROOT)
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect subtree of the new one, so the proof leaves
        # out its head: the verifier already has it.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_result = new_result = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            old_result = node_hash(node, old_result)
            new_result = node_hash(node, new_result)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            new_result = node_hash(new_result, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and old_result == old_root and new_result == new_root


def _largest_power_below(n: int) -> int:
    """RFC 9162's split point k: the largest power of two smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _range_hashes(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """MTH of each RFC-shaped leaf range, with every stored hash fetched in one read."""
    decompositions = [perfect_subtrees(start, end) for start, end in ranges]
    nodes = _read_nodes(read, [key for keys in decompositions for key in keys])
    return [_fold([nodes[key] for key in keys]) for keys in decompositions]


def _read_nodes(read: NodeReader, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    found = read(wanted)
    nodes: dict[NodeKey, bytes] = {}
    for key in wanted:
        value = found.get(key)
        if value is None:
            raise LedgerCorrupt(f"the store has no hash for tree node {_describe(key)}")
        if len(value) != HASH_SIZE:
            raise LedgerCorrupt(
                f"the stored hash of tree node {_describe(key)} is {len(value)} bytes,"
                f" not {HASH_SIZE}"
            )
        nodes[key] = value
    return nodes


def _describe(key: NodeKey) -> str:
    level, index = key
    return f"(level {level}, index {index}) over leaves [{index << level}, {(index + 1) << level})"


def _are_hashes(values: Sequence[object]) -> bool:
    return all(isinstance(value, bytes) and len(value) == HASH_SIZE for value in values)
