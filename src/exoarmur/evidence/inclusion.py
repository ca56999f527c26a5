"""Inclusion proofs of many leaves against one signed checkpoint, checked for less.

A bundle proves thousands of leaves of one log against one signed root, and
their proofs share most of their hashes: the leaves of one subtree all climb
through the same interior nodes to the same root. Walking every proof to the
root hashes those nodes again and again.

:class:`CheckpointProofs` walks each proof exactly as RFC 9162 2.1.3.2 says
(:func:`~exoarmur.ledger.merkle.verify_inclusion`), and stops early only where
the walk has become one already seen to reach the signed root: the same node
of the tree (level and index; at a fixed tree size the rest of the walk is
fixed by them), holding the same hash, with the same hashes left in the proof
above it. The walk from there is the one seen before, step for step, so it
ends at the signed root as that one did. Nothing is taken on trust from
another proof that is not in this one: a proof that differs anywhere from what
was seen is walked to the end and judged by the root alone.

Only the last proof's path is kept, one node per level: a bundle's leaves
come in log order, and a leaf's nearest shared node with every leaf before it
is on the path of the one just before. Memory stays O(log n) for a bundle of
any size; leaves out of order only cost more hashing.

Pure: no store, no clock, no network.
"""

from __future__ import annotations

from ..ledger.merkle import HASH_SIZE, leaf_hash, node_hash


class CheckpointProofs:
    """Inclusion in the tree of ``size`` leaves whose head is ``root`` (a signed checkpoint's)."""

    __slots__ = ("_path", "_root", "_size")

    def __init__(self, size: int, root: bytes) -> None:
        self._size = size
        self._root = root
        #: the nodes the last proof that reached the root climbed through:
        #: level -> (index at that level, hash, the proof's hashes above it)
        self._path: dict[int, tuple[int, bytes, list[bytes]]] = {}

    def includes(self, leaf_bytes: bytes, index: int, proof: list[bytes]) -> bool:
        """Whether ``leaf_bytes`` is the leaf at ``index``: :func:`verify_inclusion`'s answer.

        ``proof`` is a list of ``bytes`` (a verifier's reading of the hex it
        was given); each hash the walk uses is checked to be one, as
        ``verify_inclusion`` checks them all.
        """
        leaf = leaf_hash(leaf_bytes)
        if not 0 <= index < self._size or not _is_hash(self._root):
            return False
        fn, sn, level = index, self._size - 1, 0
        result = leaf
        climbed: list[tuple[int, int, bytes, int]] = []
        path = self._path
        for step, sibling in enumerate(proof):
            if sn == 0 or not _is_hash(sibling):
                return False
            if fn & 1 or fn == sn:
                result = node_hash(sibling, result)
                # on the right edge the sibling may sit several levels up
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
                    level += 1
            else:
                result = node_hash(result, sibling)
            fn >>= 1
            sn >>= 1
            level += 1
            known = path.get(level)
            if (
                known is not None
                and known[0] == fn
                and known[1] == result
                and known[2] == proof[step + 1 :]
            ):
                # the rest of this walk is one that reached the signed root
                self._remember(climbed, proof)
                return True
            climbed.append((level, fn, result, step + 1))
        if sn != 0 or result != self._root:
            return False
        self._remember(climbed, proof)
        return True

    def _remember(self, climbed: list[tuple[int, int, bytes, int]], proof: list[bytes]) -> None:
        for level, index, value, above in climbed:
            self._path[level] = (index, value, proof[above:])


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE
