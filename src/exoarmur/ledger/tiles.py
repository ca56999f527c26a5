"""A tenant's Merkle tree as static tiles (c2sp.org/tlog-tiles).

Instead of answering proof requests, a tiled log publishes its tree as
immutable files any client can fetch and cache, and computes every proof
from them itself::

    checkpoint                   the signed tree head (the only mutable file)
    tile/<L>/<N>[.p/<W>]         256 (or W) hashes, 32 bytes each, at tree level 8*L
    tile/entries/<N>[.p/<W>]     the entries behind a level-0 tile, each as
                                 big-endian uint16 length || canonical event bytes

Hash ``i`` of tile ``N`` at level ``L`` is the head of the perfect subtree of
``256**L`` leaves starting at leaf ``(N*256 + i) * 256**L``: exactly the
node ``(8*L, N*256 + i)`` the store keeps, so tiles are read, never rehashed.
``<N>`` is written in 3-digit groups, all but the last prefixed with ``x``
(1234067 is ``x001/x234/067``).

The path and byte functions are pure; only :func:`export_tiles` writes files.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, LedgerCorrupt, NotFound
from .checkpoint import Checkpoint, open_checkpoint
from .log import Ledger
from .merkle import HASH_SIZE, NodeReader

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "ExportedTiles",
    "Tile",
    "entry_bundle",
    "export_tiles",
    "hash_tile",
    "parse_tile_path",
    "tile_bytes",
    "tiles_of",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
#: the largest entry an entry bundle can hold (its length prefix is a uint16)
MAX_ENTRY_BYTES = 0xFFFF
_MAX_LEVEL = 63
_INDEX_PART = re.compile(r"(?:x[0-9]{3}/)*[0-9]{3}")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_LEVEL = re.compile(r"0|[1-9][0-9]?")


@dataclass(frozen=True)
class Tile:
    """One tile: ``level`` None for an entry bundle; ``width`` 256 for a full tile."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level is not None and not 0 <= self.level <= _MAX_LEVEL:
            raise InputError(f"tile level {self.level} is not from 0 to {_MAX_LEVEL}")
        if self.index < 0:
            raise InputError(f"tile index {self.index} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise InputError(f"tile width {self.width} is not from 1 to {TILE_WIDTH}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """The tile's path under the log's prefix, as the spec spells it."""
        level = "entries" if self.level is None else str(self.level)
        path = f"tile/{level}/{encode_index(self.index)}"
        return path if self.full else f"{path}.p/{self.width}"

    def fits(self, size: int) -> bool:
        """Whether a tree of ``size`` leaves holds every hash of this tile."""
        level = 0 if self.level is None else self.level
        return self.index * TILE_WIDTH + self.width <= size >> (TILE_HEIGHT * level)


def encode_index(index: int) -> str:
    """``<N>`` of a tile path: 3-digit groups, all but the last prefixed with ``x``."""
    digits = str(index)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{group}" for group in groups[:-1]), groups[-1]])


def parse_tile_path(path: str) -> Tile:
    """The tile at ``path`` (``tile/<L>/<N>[.p/<W>]``); :class:`InputError` if it is not one."""
    if not path.startswith("tile/"):
        raise InputError(f"tile path {path[:80]!r} does not start with tile/")
    level_text, _, rest = path[len("tile/") :].partition("/")
    if level_text == "entries":
        level = None
    elif _LEVEL.fullmatch(level_text):
        level = int(level_text)
    else:
        raise InputError(f"tile path {path[:80]!r}: level {level_text[:10]!r} is not 0 to 63")
    index_text, partial, width_text = rest.partition(".p/")
    if not _INDEX_PART.fullmatch(index_text):
        raise InputError(f"tile path {path[:80]!r}: the index is not 3-digit groups")
    index = int(index_text.replace("x", "").replace("/", ""))
    if encode_index(index) != index_text:
        # Leading zero groups ("x000/001") would give one tile two paths.
        raise InputError(f"tile path {path[:80]!r}: the index has leading zero groups")
    width = TILE_WIDTH
    if partial:
        if not _WIDTH.fullmatch(width_text) or int(width_text) >= TILE_WIDTH:
            raise InputError(f"tile path {path[:80]!r}: partial width is not 1 to 255")
        width = int(width_text)
    return Tile(level, index, width)


def tiles_of(size: int) -> Iterator[Tile]:
    """Every tile a tree of ``size`` leaves is served as: full tiles, then the partial ones."""
    count = size
    level = 0
    while count:
        for index in range(count // TILE_WIDTH):
            yield Tile(level, index)
            if level == 0:
                yield Tile(None, index)
        if count % TILE_WIDTH:
            yield Tile(level, count // TILE_WIDTH, count % TILE_WIDTH)
            if level == 0:
                yield Tile(None, count // TILE_WIDTH, count % TILE_WIDTH)
        count >>= TILE_HEIGHT
        level += 1


def hash_tile(tile: Tile, read: NodeReader) -> bytes:
    """A hash tile's bytes: its ``width`` stored node hashes, concatenated."""
    if tile.level is None:
        raise InputError("an entry bundle is not a hash tile")
    height = TILE_HEIGHT * tile.level
    first = tile.index * TILE_WIDTH
    keys = [(height, first + offset) for offset in range(tile.width)]
    found = read(keys)
    out = []
    for key in keys:
        digest = found.get(key)
        if digest is None or len(digest) != HASH_SIZE:
            raise LedgerCorrupt(f"the store has no hash for tree node {key} of {tile.path}")
        out.append(digest)
    return b"".join(out)


def entry_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and its bytes."""
    out = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise InputError(
                f"an entry of {len(entry)} bytes does not fit an entry bundle "
                f"(at most {MAX_ENTRY_BYTES})"
            )
        out.append(struct.pack(">H", len(entry)) + entry)
    return b"".join(out)


def tile_bytes(ledger: Ledger, tenant: str, tile: Tile, size: int) -> bytes:
    """The bytes of ``tile``; :class:`NotFound` if a tree of ``size`` lacks it."""
    if not tile.fits(size):
        raise NotFound(f"{tile.path} is not in tenant {tenant!r}'s tree of {size} entries")
    if tile.level is None:
        start = tile.index * TILE_WIDTH
        events = ledger.store.events(tenant, start, start + tile.width)
        return entry_bundle([event.canonical for event in events])

    def read(keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return dict(ledger.store.read_nodes(tenant, keys))

    return hash_tile(tile, read)


@dataclass(frozen=True)
class ExportedTiles:
    checkpoint: Checkpoint
    written: int
    unchanged: int
    #: entry bundles left out: an event in them exceeds the format's 65,535 bytes
    skipped: tuple[str, ...] = ()


def export_tiles(
    ledger: Ledger, tenant: str, directory: Path, note: str | None = None
) -> ExportedTiles:
    """Write ``tenant``'s tiles and checkpoint under ``directory``, for static hosting.

    ``note`` is the checkpoint to publish (a cosigned one, say); it must be
    this ledger's and signed by its key. By default the current checkpoint.
    Files already there with the same bytes are left alone, so exporting
    again only adds what the log grew by; the checkpoint is written last, so
    a reader never finds a checkpoint whose tiles are missing.
    """
    if note is None:
        note = ledger.current_checkpoint(tenant).note
    checkpoint = open_checkpoint(note, ledger.verifier)
    if checkpoint.origin != ledger.origin(tenant):
        raise InputError(
            f"the checkpoint's origin {checkpoint.origin!r} is not tenant {tenant!r}'s log"
        )
    if checkpoint.size > ledger.size(tenant) or checkpoint.root_hash != ledger.root(
        tenant, checkpoint.size
    ):
        raise InputError(f"the checkpoint is not of tenant {tenant!r}'s log as stored here")
    written = unchanged = 0
    skipped: list[str] = []
    for tile in tiles_of(checkpoint.size):
        target = directory / tile.path
        try:
            data = tile_bytes(ledger, tenant, tile, checkpoint.size)
        except InputError:
            # The hash tiles still prove everything; only these entries' bytes are
            # not served as a bundle (the format's uint16 length cannot hold them).
            skipped.append(tile.path)
            continue
        if _write_if_changed(target, data):
            written += 1
        else:
            unchanged += 1
    _write_if_changed(directory / "checkpoint", note.encode("utf-8"))
    return ExportedTiles(checkpoint, written, unchanged, tuple(skipped))


def _write_if_changed(target: Path, data: bytes) -> bool:
    try:
        if target.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise InputError(f"cannot read {target}: {exc.strerror}") from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a web server never serves half a tile.
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tile-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror}") from None
    return True
