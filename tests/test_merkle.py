"""RFC 9162 tree math: published vectors, an RFC-text reference, and the read budget."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exoarmur.errors import LedgerCorrupt
from exoarmur.ledger import merkle
from exoarmur.ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Frontier,
    NodeKey,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    root_at,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------
# Published vectors.
#
# Source: transparency-dev/merkle (github.com/transparency-dev/merkle),
# proof/verify_test.go (`leaves`, `roots`, `inclusionProofs`,
# `consistencyProofs`) and rfc6962/rfc6962_test.go (`TestRFC6962Hasher`); the
# same RFC 6962 vectors google/certificate-transparency and
# certificate-transparency-go test against. Their inclusion vectors number
# leaves from 1; here the index is converted to 0-based (their {6, 8, ...} is
# index 5 of size 8). Their {0, 0, nil} entry is an invalid request and is
# exercised in test_bad_arguments_raise_value_error instead.
# ---------------------------------------------------------------------------

VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

# VECTOR_ROOTS[n - 1] is the tree head of the first n vector leaves.
VECTOR_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

# (leaf index, tree size, inclusion proof)
VECTOR_INCLUSION_PROOFS: list[tuple[int, int, list[str]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

# (old size, new size, consistency proof)
VECTOR_CONSISTENCY_PROOFS: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

# Same source, rfc6962/rfc6962_test.go: (what, computed, published).
VECTOR_HASHES: list[tuple[str, Callable[[], bytes], str]] = [
    (
        "empty tree",
        lambda: EMPTY_ROOT,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    (
        "empty leaf",
        lambda: leaf_hash(b""),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    ),
    (
        "leaf L123456",
        lambda: leaf_hash(b"L123456"),
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56",
    ),
    (
        "node N123 N456",
        lambda: node_hash(b"N123", b"N456"),
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb",
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# ---------------------------------------------------------------------------
# Reference: RFC 9162 section 2.1 read literally, over the entries d(i), with
# hashlib directly so it shares no code with the module under test.
# ---------------------------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _ref_k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + d[0])
    k = _ref_k(n)
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _ref_k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _ref_k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# ---------------------------------------------------------------------------
# Stores: a map of perfect-subtree hashes behind a recording NodeReader.
# ---------------------------------------------------------------------------

MAX_SIZE = 300
# Distinct entries, so no two subtrees share a hash and a proof for one
# position can never honestly be a proof for another.
ENTRIES = [f"entry {i}".encode() for i in range(512)]


@cache
def reference_nodes() -> dict[NodeKey, bytes]:
    """Every perfect subtree over ENTRIES, hashed by the reference."""
    nodes: dict[NodeKey, bytes] = {}
    level = 0
    while (1 << level) <= len(ENTRIES):
        for index in range(len(ENTRIES) >> level):
            nodes[(level, index)] = ref_mth(ENTRIES[index << level : (index + 1) << level])
        level += 1
    return nodes


@dataclass
class RecordingReader:
    """A store holding the first `size` leaves; it refuses to be asked past them."""

    nodes: Mapping[NodeKey, bytes]
    size: int
    calls: list[list[NodeKey]] = field(default_factory=list)

    def __call__(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        keys = list(keys)
        self.calls.append(keys)
        for level, index in keys:
            assert (index + 1) << level <= self.size, f"read {(level, index)} past size {self.size}"
        return {key: self.nodes[key] for key in keys if key in self.nodes}

    @property
    def keys_read(self) -> int:
        return sum(len(keys) for keys in self.calls)


def reader(size: int) -> RecordingReader:
    return RecordingReader(reference_nodes(), size)


def vector_reader() -> RecordingReader:
    nodes: dict[NodeKey, bytes] = {}
    frontier = Frontier()
    for entry in VECTOR_LEAVES:
        nodes.update(frontier.append(leaf_hash(entry)))
    return RecordingReader(nodes, len(VECTOR_LEAVES))


def flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def unhex(hashes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hashes]


# ---------------------------------------------------------------------------
# Published vectors.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("what", "computed", "published"), VECTOR_HASHES)
def test_hashes_match_published(what: str, computed: Callable[[], bytes], published: str) -> None:
    assert computed().hex() == published, what


def test_roots_match_published() -> None:
    frontier = Frontier()
    for size, entry in enumerate(VECTOR_LEAVES, start=1):
        frontier.append(leaf_hash(entry))
        assert frontier.root() == VECTOR_ROOTS[size - 1]
        assert root_at(size, vector_reader()) == VECTOR_ROOTS[size - 1]
        assert ref_mth(VECTOR_LEAVES[:size]) == VECTOR_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "published"), VECTOR_INCLUSION_PROOFS)
def test_inclusion_proofs_match_published(index: int, size: int, published: list[str]) -> None:
    proof = inclusion_proof(index, size, vector_reader())
    assert proof == unhex(published)
    assert ref_path(index, VECTOR_LEAVES[:size]) == proof
    assert verify_inclusion(
        leaf_hash(VECTOR_LEAVES[index]), index, size, proof, VECTOR_ROOTS[size - 1]
    )


@pytest.mark.parametrize(("old_size", "new_size", "published"), VECTOR_CONSISTENCY_PROOFS)
def test_consistency_proofs_match_published(
    old_size: int, new_size: int, published: list[str]
) -> None:
    proof = consistency_proof(old_size, new_size, vector_reader())
    assert proof == unhex(published)
    assert ref_proof(old_size, VECTOR_LEAVES[:new_size]) == proof
    old_root, new_root = VECTOR_ROOTS[old_size - 1], VECTOR_ROOTS[new_size - 1]
    assert verify_consistency(old_size, new_size, old_root, new_root, proof)


# Each row: a way to tamper with a published inclusion proof that must fail.
# Arguments and result are (leaf, index, size, proof, root).
InclusionArgs = tuple[bytes, int, int, list[bytes], bytes]
INCLUSION_TAMPERING: list[tuple[str, Callable[[InclusionArgs], InclusionArgs]]] = [
    ("index - 1", lambda a: (a[0], a[1] - 1, a[2], a[3], a[4])),
    ("index + 1", lambda a: (a[0], a[1] + 1, a[2], a[3], a[4])),
    ("index ^ 2", lambda a: (a[0], a[1] ^ 2, a[2], a[3], a[4])),
    ("size * 2", lambda a: (a[0], a[1], a[2] * 2, a[3], a[4])),
    ("size // 2", lambda a: (a[0], a[1], a[2] // 2, a[3], a[4])),
    ("other leaf", lambda a: (SOME_HASH, a[1], a[2], a[3], a[4])),
    ("short leaf", lambda a: (b"WrongLeaf", a[1], a[2], a[3], a[4])),
    ("empty-tree root", lambda a: (a[0], a[1], a[2], a[3], EMPTY_ROOT)),
    ("other root", lambda a: (a[0], a[1], a[2], a[3], SOME_HASH)),
    ("trailing empty", lambda a: (a[0], a[1], a[2], [*a[3], b""], a[4])),
    ("trailing root", lambda a: (a[0], a[1], a[2], [*a[3], a[4]], a[4])),
    ("preceding empty", lambda a: (a[0], a[1], a[2], [b"", *a[3]], a[4])),
    ("preceding root", lambda a: (a[0], a[1], a[2], [a[4], *a[3]], a[4])),
    ("last removed", lambda a: (a[0], a[1], a[2], a[3][:-1], a[4])),
    ("inserted", lambda a: (a[0], a[1], a[2], [*a[3][:1], SOME_HASH, *a[3][1:]], a[4])),
]


def _tampered_inclusions() -> list[object]:
    cases: list[object] = []
    for index, size, published in VECTOR_INCLUSION_PROOFS:
        leaf, root = leaf_hash(VECTOR_LEAVES[index]), VECTOR_ROOTS[size - 1]
        honest = (leaf, index, size, unhex(published), root)
        for tampering, tamper in INCLUSION_TAMPERING:
            tampered = tamper(honest)
            # Removing the last element of an empty proof changes nothing.
            if tampered != honest:
                cases.append(pytest.param(*tampered, id=f"{index}/{size} {tampering}"))
    return cases


@pytest.mark.parametrize(("leaf", "index", "size", "proof", "root"), _tampered_inclusions())
def test_tampered_published_inclusion_fails(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    assert not verify_inclusion(leaf, index, size, proof, root)


# Arguments and result are (old_size, new_size, old_root, new_root, proof).
ConsistencyArgs = tuple[int, int, bytes, bytes, list[bytes]]
CONSISTENCY_TAMPERING: list[tuple[str, Callable[[ConsistencyArgs], ConsistencyArgs]]] = [
    ("old size - 1", lambda a: (a[0] - 1, a[1], a[2], a[3], a[4])),
    ("old size + 1", lambda a: (a[0] + 1, a[1], a[2], a[3], a[4])),
    ("old size ^ 2", lambda a: (a[0] ^ 2, a[1], a[2], a[3], a[4])),
    ("new size * 2", lambda a: (a[0], a[1] * 2, a[2], a[3], a[4])),
    ("new size // 2", lambda a: (a[0], a[1] // 2, a[2], a[3], a[4])),
    ("short old root", lambda a: (a[0], a[1], b"WrongRoot", a[3], a[4])),
    ("short new root", lambda a: (a[0], a[1], a[2], b"WrongRoot", a[4])),
    ("other old root", lambda a: (a[0], a[1], SOME_HASH, a[3], a[4])),
    ("other new root", lambda a: (a[0], a[1], a[2], SOME_HASH, a[4])),
    ("swapped roots", lambda a: (a[0], a[1], a[3], a[2], a[4])),
    ("empty proof", lambda a: (a[0], a[1], a[2], a[3], [])),
    ("trailing empty", lambda a: (a[0], a[1], a[2], a[3], [*a[4], b""])),
    ("trailing old root", lambda a: (a[0], a[1], a[2], a[3], [*a[4], a[2]])),
    ("trailing new root", lambda a: (a[0], a[1], a[2], a[3], [*a[4], a[3]])),
    ("preceding empty", lambda a: (a[0], a[1], a[2], a[3], [b"", *a[4]])),
    ("preceding old root", lambda a: (a[0], a[1], a[2], a[3], [a[2], *a[4]])),
    ("preceding new root", lambda a: (a[0], a[1], a[2], a[3], [a[3], *a[4]])),
    ("preceding first", lambda a: (a[0], a[1], a[2], a[3], [*a[4][:1], *a[4]])),
    ("last removed", lambda a: (a[0], a[1], a[2], a[3], a[4][:-1])),
]


def _tampered_consistencies() -> list[object]:
    cases: list[object] = []
    for old_size, new_size, published in VECTOR_CONSISTENCY_PROOFS:
        if not published:
            continue  # equal sizes: see test_verify_consistency_fails_closed
        old_root, new_root = VECTOR_ROOTS[old_size - 1], VECTOR_ROOTS[new_size - 1]
        honest = (old_size, new_size, old_root, new_root, unhex(published))
        for tampering, tamper in CONSISTENCY_TAMPERING:
            tampered = tamper(honest)
            assert tampered != honest, tampering
            cases.append(pytest.param(*tampered, id=f"{old_size}->{new_size} {tampering}"))
    return cases


@pytest.mark.parametrize(
    ("old_size", "new_size", "old_root", "new_root", "proof"), _tampered_consistencies()
)
def test_tampered_published_consistency_fails(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> None:
    assert not verify_consistency(old_size, new_size, old_root, new_root, proof)


# ---------------------------------------------------------------------------
# Frontier, roots and decomposition against the reference.
# ---------------------------------------------------------------------------


def test_append_returns_every_completed_node() -> None:
    frontier = Frontier()
    for entry in ENTRIES[:3]:
        frontier.append(leaf_hash(entry))
    completed = frontier.append(leaf_hash(ENTRIES[3]))
    assert [key for key, _ in completed] == [(0, 3), (1, 1), (2, 0)]
    assert completed == [(key, reference_nodes()[key]) for key, _ in completed]


def test_frontier_and_root_at_match_reference_at_every_size() -> None:
    frontier = Frontier()
    written: dict[NodeKey, bytes] = {}
    assert frontier.root() == EMPTY_ROOT == ref_mth([])
    assert root_at(0, reader(0)) == EMPTY_ROOT
    for size in range(1, MAX_SIZE + 1):
        completed = frontier.append(leaf_hash(ENTRIES[size - 1]))
        assert not written.keys() & dict(completed).keys(), "a node was completed twice"
        written.update(completed)
        expected = ref_mth(ENTRIES[:size])
        assert frontier.size == size
        assert frontier.root() == expected
        store = reader(size)
        assert root_at(size, store) == expected
        assert len(store.calls) == 1
    # Appends persist exactly the perfect subtrees, nothing more and nothing less.
    assert written == {
        key: value for key, value in reference_nodes().items() if (key[1] + 1) << key[0] <= MAX_SIZE
    }


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 7, 8, 100, 255, 256, MAX_SIZE])
def test_loaded_frontier_continues_like_the_original(size: int) -> None:
    original = Frontier()
    for entry in ENTRIES[:size]:
        original.append(leaf_hash(entry))
    store = reader(size)
    loaded = Frontier.load(size, store)
    assert len(store.calls) <= 1
    assert store.keys_read == size.bit_count()
    assert (loaded.size, loaded.root()) == (original.size, original.root())
    for entry in ENTRIES[size : size + 9]:
        assert loaded.append(leaf_hash(entry)) == original.append(leaf_hash(entry))
        assert loaded.root() == original.root()


def test_copy_is_independent() -> None:
    frontier = Frontier()
    for entry in ENTRIES[:5]:
        frontier.append(leaf_hash(entry))
    staged = frontier.copy()
    staged.append(leaf_hash(ENTRIES[5]))
    assert (frontier.size, frontier.root()) == (5, ref_mth(ENTRIES[:5]))
    assert (staged.size, staged.root()) == (6, ref_mth(ENTRIES[:6]))
    assert repr(staged) == "Frontier(size=6)"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 0, []),
        (0, 1, [(0, 0)]),
        (0, 7, [(2, 0), (1, 2), (0, 6)]),
        (0, 8, [(3, 0)]),
        (4, 7, [(1, 2), (0, 6)]),
        (8, 13, [(2, 2), (0, 12)]),
        (3, 9, [(0, 3), (2, 1), (0, 8)]),
    ],
)
def test_perfect_subtrees_examples(start: int, end: int, expected: list[NodeKey]) -> None:
    assert perfect_subtrees(start, end) == expected


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_perfect_subtrees_tile_any_range(start: int, length: int) -> None:
    cursor = start
    for level, index in perfect_subtrees(start, start + length):
        assert index << level == cursor, "subtrees must be contiguous and aligned"
        cursor += 1 << level
    assert cursor == start + length


# ---------------------------------------------------------------------------
# Proofs against the reference, and what verification must reject.
# ---------------------------------------------------------------------------


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return size, draw(st.integers(0, size - 1))


@st.composite
def old_and_new_size(draw: st.DrawFn) -> tuple[int, int]:
    new_size = draw(st.integers(1, MAX_SIZE))
    return draw(st.integers(1, new_size)), new_size


@settings(deadline=None)
@given(size_and_index(), st.data())
def test_inclusion_matches_reference_and_rejects_tampering(
    tree: tuple[int, int], data: st.DataObject
) -> None:
    size, index = tree
    store = reader(size)
    proof = inclusion_proof(index, size, store)
    assert len(store.calls) <= 1
    assert proof == ref_path(index, ENTRIES[:size])

    leaf = leaf_hash(ENTRIES[index])
    root = ref_mth(ENTRIES[:size])
    assert verify_inclusion(leaf, index, size, proof, root)

    bit = st.integers(0, HASH_SIZE * 8 - 1)
    assert not verify_inclusion(flip(leaf, data.draw(bit)), index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, flip(root, data.draw(bit)))
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = flip(tampered[position], data.draw(bit))
        assert not verify_inclusion(leaf, index, size, tampered, root)

    if size > 1:
        other_index = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
        assert not verify_inclusion(leaf, other_index, size, proof, root)
    # A wrong size is only a lie if the head is the one of that size: the
    # verifier binds sizes to heads, and a checkpoint signs both together.
    other_size = data.draw(st.integers(index + 1, MAX_SIZE).filter(lambda s: s != size))
    other_root = ref_mth(ENTRIES[:other_size])
    assert not verify_inclusion(leaf, index, other_size, proof, other_root)


@settings(deadline=None)
@given(old_and_new_size(), st.data())
def test_consistency_matches_reference_and_rejects_tampering(
    sizes: tuple[int, int], data: st.DataObject
) -> None:
    old_size, new_size = sizes
    store = reader(new_size)
    proof = consistency_proof(old_size, new_size, store)
    assert len(store.calls) <= 1
    assert proof == ref_proof(old_size, ENTRIES[:new_size])

    old_root = ref_mth(ENTRIES[:old_size])
    new_root = ref_mth(ENTRIES[:new_size])
    assert verify_consistency(old_size, new_size, old_root, new_root, proof)

    bit = st.integers(0, HASH_SIZE * 8 - 1)
    assert not verify_consistency(
        old_size, new_size, flip(old_root, data.draw(bit)), new_root, proof
    )
    assert not verify_consistency(
        old_size, new_size, old_root, flip(new_root, data.draw(bit)), proof
    )
    for position in range(len(proof)):
        tampered = list(proof)
        tampered[position] = flip(tampered[position], data.draw(bit))
        assert not verify_consistency(old_size, new_size, old_root, new_root, tampered)

    # As for inclusion: a wrong size is claimed together with that size's head.
    other_old = data.draw(st.integers(1, new_size).filter(lambda s: s != old_size))
    other_old_root = ref_mth(ENTRIES[:other_old])
    assert not verify_consistency(other_old, new_size, other_old_root, new_root, proof)
    other_new = data.draw(st.integers(old_size, MAX_SIZE).filter(lambda s: s != new_size))
    other_new_root = ref_mth(ENTRIES[:other_new])
    assert not verify_consistency(old_size, other_new, old_root, other_new_root, proof)


@pytest.mark.parametrize("new_size", [0, 1, 5, 64])
def test_consistency_from_the_empty_tree(new_size: int) -> None:
    new_root = ref_mth(ENTRIES[:new_size])
    assert consistency_proof(0, new_size, reader(new_size)) == []
    assert verify_consistency(0, new_size, EMPTY_ROOT, new_root, [])
    assert not verify_consistency(0, new_size, SOME_HASH, new_root, [])
    assert not verify_consistency(0, new_size, EMPTY_ROOT, new_root, [SOME_HASH])


@pytest.mark.parametrize(
    ("description", "args"),
    [
        ("equal sizes, different heads", (3, 3, SOME_HASH, EMPTY_ROOT, [])),
        ("equal sizes, a proof given", (3, 3, SOME_HASH, SOME_HASH, [SOME_HASH])),
        ("empty trees with a non-empty head", (0, 0, SOME_HASH, SOME_HASH, [])),
        ("the log shrank", (2, 1, SOME_HASH, SOME_HASH, [SOME_HASH])),
        ("negative size", (-1, 3, SOME_HASH, SOME_HASH, [SOME_HASH])),
        ("growth without a proof", (1, 2, SOME_HASH, SOME_HASH, [])),
        ("a proof element is text", (1, 2, SOME_HASH, SOME_HASH, ["not bytes"])),
    ],
)
def test_verify_consistency_fails_closed(
    description: str, args: tuple[int, int, bytes, bytes, list[bytes]]
) -> None:
    assert not verify_consistency(*args), description


@pytest.mark.parametrize(
    ("description", "args"),
    [
        ("empty tree", (SOME_HASH, 0, 0, [], EMPTY_ROOT)),
        ("negative index", (SOME_HASH, -1, 1, [], SOME_HASH)),
        ("index past the tree", (SOME_HASH, 1, 1, [], SOME_HASH)),
        ("short leaf", (SOME_HASH[:31], 0, 1, [], SOME_HASH[:31])),
        ("long root", (SOME_HASH, 0, 1, [], SOME_HASH + b"\x00")),
        ("a proof element is text", (SOME_HASH, 0, 2, ["not bytes"], SOME_HASH)),
    ],
)
def test_verify_inclusion_fails_closed(
    description: str, args: tuple[bytes, int, int, list[bytes], bytes]
) -> None:
    assert not verify_inclusion(*args), description


def test_equal_size_trees_are_consistent_with_no_proof() -> None:
    root = ref_mth(ENTRIES[:5])
    assert consistency_proof(5, 5, reader(5)) == []
    assert verify_consistency(5, 5, root, root, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


# ---------------------------------------------------------------------------
# The read budget: O(log n) keys in one batch, even for a million leaves.
# ---------------------------------------------------------------------------


class UniformStore:
    """A huge store in which every leaf is the same, so a subtree hash costs O(level)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.by_level = [leaf_hash(b"same")]
        for _ in range(size.bit_length()):
            self.by_level.append(node_hash(self.by_level[-1], self.by_level[-1]))
        self.calls: list[list[NodeKey]] = []

    def __call__(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.calls.append(list(keys))
        assert all((index + 1) << level <= self.size for level, index in keys)
        return {(level, index): self.by_level[level] for level, index in keys}

    @property
    def keys_read(self) -> int:
        return sum(len(keys) for keys in self.calls)


LARGE_SIZES = [1, 2, 3, 5, 1000, 1023, 1024, 1025, 65_537, 777_777, 2**20 - 1, 2**20]


def _budget(size: int) -> float:
    return 4 * math.log2(size) + 4


@pytest.mark.parametrize("size", LARGE_SIZES)
def test_reads_grow_logarithmically(size: int) -> None:
    root_store = UniformStore(size)
    root = root_at(size, root_store)
    assert len(root_store.calls) == 1
    assert root_store.keys_read == size.bit_count()
    leaf = leaf_hash(b"same")

    for index in sorted({0, 1 % size, size // 3, size // 2, size - 2 if size > 1 else 0, size - 1}):
        store = UniformStore(size)
        proof = inclusion_proof(index, size, store)
        assert len(store.calls) <= 1
        assert store.keys_read <= _budget(size), (index, store.keys_read)
        assert verify_inclusion(leaf, index, size, proof, root)

    for old_size in sorted({1, 2, size // 3 or 1, size // 2 or 1, max(size - 1, 1), size}):
        if old_size > size:
            continue
        store = UniformStore(size)
        proof = consistency_proof(old_size, size, store)
        assert len(store.calls) <= 1
        assert store.keys_read <= _budget(size), (old_size, store.keys_read)
        old_root = root_at(old_size, UniformStore(old_size))
        assert verify_consistency(old_size, size, old_root, root, proof)


def test_no_read_when_nothing_is_needed() -> None:
    store = reader(1)
    assert inclusion_proof(0, 1, store) == []
    assert consistency_proof(1, 1, store) == []
    assert root_at(0, store) == EMPTY_ROOT
    assert store.calls == []


# ---------------------------------------------------------------------------
# A store that lost or mangled a node, and bad arguments.
# ---------------------------------------------------------------------------


@dataclass
class LossyStore:
    """The reference store with one node missing or replaced."""

    lost: NodeKey
    replacement: bytes | None = None

    def __call__(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        found = {key: reference_nodes()[key] for key in keys if key != self.lost}
        if self.replacement is not None:
            found[self.lost] = self.replacement
        return found


READS: list[tuple[str, Callable[[merkle.NodeReader], object]]] = [
    ("root_at", lambda read: root_at(7, read)),
    ("inclusion_proof", lambda read: inclusion_proof(0, 7, read)),
    ("consistency_proof", lambda read: consistency_proof(3, 7, read)),
    ("Frontier.load", lambda read: Frontier.load(7, read)),
]


@pytest.mark.parametrize(("operation", "run"), READS)
def test_missing_node_is_ledger_corruption(
    operation: str, run: Callable[[merkle.NodeReader], object]
) -> None:
    # (0, 6) is leaf 6: on the right edge of a size-7 tree, so every read above needs it.
    with pytest.raises(LedgerCorrupt, match=r"no hash for tree node \(level 0, index 6\)"):
        run(LossyStore(lost=(0, 6)))


@pytest.mark.parametrize(("operation", "run"), READS)
def test_malformed_node_is_ledger_corruption(
    operation: str, run: Callable[[merkle.NodeReader], object]
) -> None:
    with pytest.raises(LedgerCorrupt, match=r"\(level 0, index 6\) .* is 5 bytes, not 32"):
        run(LossyStore(lost=(0, 6), replacement=b"short"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: inclusion_proof(0, 0, reader(0)), "not in a tree of 0 leaves"),
        (lambda: inclusion_proof(5, 5, reader(5)), "not in a tree of 5 leaves"),
        (lambda: inclusion_proof(-1, 5, reader(5)), "cannot be negative"),
        (lambda: consistency_proof(-1, 5, reader(5)), "cannot be negative"),
        (lambda: consistency_proof(4, 3, reader(4)), "never shrinks"),
        (lambda: root_at(-1, reader(0)), "cannot be negative"),
        (lambda: perfect_subtrees(-1, 2), "not a range"),
        (lambda: perfect_subtrees(3, 2), "not a range"),
        (lambda: Frontier.load(-1, reader(0)), "cannot be negative"),
        (lambda: Frontier().append(b"short"), "32 bytes"),
    ],
)
def test_bad_arguments_raise_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_public_api_is_pinned() -> None:
    assert sorted(merkle.__all__) == sorted(
        [
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
    )
