"""Minimal C2SP readers written from the specs alone, to check ours against.

Not a test module. Imports nothing from exoarmur on purpose: a cosignature or
a tile that ours accepts but these reject (or the other way round) is a bug
in ours or a misreading of the spec, and sharing code would hide both.

- c2sp.org/signed-note and c2sp.org/tlog-cosignature: verify an Ed25519
  log signature (type 0x01) and a ``cosignature/v1`` (type 0x04).
- c2sp.org/tlog-tiles with RFC 6962 section 2.1: a client that fetches tiles
  and computes inclusion and consistency proofs by the RFC's recursive
  definitions (PATH, PROOF, SUBPROOF).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def _vkey(vkey: str, kind: int) -> tuple[str, bytes, Ed25519PublicKey]:
    name, key_id_hex, material = vkey.split("+", 2)
    raw = base64.b64decode(material)
    assert raw[0] == kind
    assert len(raw) == 33
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert key_id.hex() == key_id_hex
    return name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:])


def _split(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    text, _, block = note.rpartition("\n\n")
    lines = []
    for line in block.rstrip("\n").split("\n"):
        assert line.startswith("\u2014 ")
        name, blob = line[2:].split(" ")
        lines.append((name, base64.b64decode(blob)))
    return text + "\n", lines


def log_signed_body(note: str, log_vkey: str) -> str:
    """The note's text if ``log_vkey`` (type 0x01) signed it; AssertionError otherwise."""
    name, key_id, key = _vkey(log_vkey, 0x01)
    text, lines = _split(note)
    mine = [blob for signer, blob in lines if signer == name and blob[:4] == key_id]
    assert mine, "no signature by the log"
    for blob in mine:
        key.verify(blob[4:], text.encode())  # raises InvalidSignature
    return text


def cosignature_time(note: str, witness_vkey: str) -> int:
    """The timestamp of ``witness_vkey``'s cosignature/v1 on ``note``; raises if it fails."""
    name, key_id, key = _vkey(witness_vkey, 0x04)
    text, lines = _split(note)
    mine = [blob for signer, blob in lines if signer == name and blob[:4] == key_id]
    assert len(mine) == 1, f"{len(mine)} cosignatures by {name}"
    blob = mine[0]
    assert len(blob) == 4 + 8 + 64
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text.encode()
    key.verify(blob[12:], message)
    return int(timestamp)


def _leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def tile_index_path(n: int) -> str:
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])


class TileClient:
    """Proofs for a tree of ``size`` from its tiles, fetched with ``fetch(path) -> bytes``."""

    def __init__(self, fetch: Callable[[str], bytes], size: int) -> None:
        self.fetch = fetch
        self.size = size
        self.cache: dict[str, bytes] = {}

    def _tile(self, level: int | str, index: int) -> bytes:
        per_hash = 1 if level == "entries" else 256 ** int(level)
        available = self.size // per_hash
        width = min(256, available - index * 256)
        assert width > 0, "a tile past the tree"
        path = f"tile/{level}/{tile_index_path(index)}"
        if width < 256:
            path += f".p/{width}"
        if path not in self.cache:
            self.cache[path] = self.fetch(path)
        return self.cache[path]

    def entries(self, index: int) -> list[bytes]:
        data = self._tile("entries", index)
        out = []
        while data:
            (length,) = struct.unpack(">H", data[:2])
            out.append(data[2 : 2 + length])
            data = data[2 + length :]
        return out

    def _stored(self, height: int, index: int) -> bytes:
        """MTH of the perfect subtree of 2**height leaves at ``index``, from the tiles."""
        level, below = divmod(height, 8)
        if below == 0:
            tile = self._tile(level, index // 256)
            offset = (index % 256) * 32
            return tile[offset : offset + 32]
        # Rebuild the levels a tile leaves out from the tile hashes under them.
        hashes = [self._stored(8 * level, index * 2**below + i) for i in range(2**below)]
        while len(hashes) > 1:
            hashes = [_node(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) per RFC 6962 2.1, for the ranges its recursion visits."""
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n & (n - 1) == 0 and start % n == 0:
            return self._stored(n.bit_length() - 1, start // n)
        k = _k(n)
        return _node(self.mth(start, start + k), self.mth(start + k, end))

    def leaf_hash(self, index: int) -> bytes:
        return self._stored(0, index)

    def inclusion(self, m: int, start: int = 0, end: int | None = None) -> list[bytes]:
        """RFC 6962 PATH(m, D[start:end])."""
        end = self.size if end is None else end
        n = end - start
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return [*self.inclusion(m, start, start + k), self.mth(start + k, end)]
        return [*self.inclusion(m - k, start + k, end), self.mth(start, start + k)]

    def consistency(self, m: int, n: int) -> list[bytes]:
        """RFC 6962 PROOF(m, D[0:n])."""
        if m in (0, n):
            return []
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self.mth(start, end)]
        k = _k(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self.mth(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self.mth(start, start + k)]
