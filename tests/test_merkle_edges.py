"""Consistency proofs refuse sizes no tree can have (a mutation run found none tested)."""

from __future__ import annotations

import pytest

from exoarmur.ledger.merkle import EMPTY_ROOT, leaf_hash, node_hash, verify_consistency

A, B, C = (leaf_hash(bytes([n])) for n in range(3))
ROOT_2 = node_hash(A, B)
ROOT_3 = node_hash(ROOT_2, C)


def test_the_honest_proof_holds() -> None:
    assert verify_consistency(2, 3, ROOT_2, ROOT_3, [C])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(3, 3, ROOT_3, ROOT_3, [])


@pytest.mark.parametrize(
    ("old_size", "new_size", "old_root", "new_root", "proof"),
    [
        (-1, -1, EMPTY_ROOT, EMPTY_ROOT, []),
        (-1, 0, EMPTY_ROOT, EMPTY_ROOT, []),
        (-2, 3, ROOT_2, ROOT_3, [C]),
        (-1, 3, ROOT_2, ROOT_3, [C]),
        (2, -3, ROOT_2, ROOT_3, [C]),
        (3, 2, ROOT_3, ROOT_2, [C]),
        (1, 3, A, ROOT_3, []),
    ],
)
def test_negative_or_shrinking_sizes_or_no_proof_are_refused(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    assert verify_consistency(old_size, new_size, old_root, new_root, proof) is False
