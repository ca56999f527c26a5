"""Checkpoints (c2sp.org/tlog-checkpoint) in signed notes (c2sp.org/signed-note).

A checkpoint commits a log's Merkle tree, at a size, to a root hash. It
travels as a signed note, in the bytes Go's sumdb, Sigstore Rekor and
transparency-dev use, so their tools can check ours and ours theirs::

    <origin>
    <tree size, decimal>
    <root hash, base64>
    [<extension line> ...]

    — <key name> base64(4-byte key id || Ed25519 signature of the text above)

The note's text is everything up to and including the newline before the
last blank line; signatures cover it, final newline included.

This module is pure: strings in, strings or a :class:`Checkpoint` out; it
never reads a key file or a clock. It must never hand back the text of a
note whose signature it has not verified: :func:`open_note` and
:func:`open_checkpoint` are the only ways in.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import CheckpointError, InputError
from .keys import SigningKey, Verifier, _b64decode_canonical, is_valid_key_name

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_NOTE_SIGNATURES",
    "Checkpoint",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint_body",
    "sign_checkpoint",
    "sign_note",
    "split_note",
]

#: Largest note :func:`open_note` reads (checkpoints are about 200 bytes).
MAX_NOTE_BYTES = 1 << 20
#: Most signature lines :func:`open_note` reads; the spec asks for at least 16.
MAX_NOTE_SIGNATURES = 100
#: Tree sizes are unsigned 64-bit integers everywhere else (Go, Trillian, Rekor).
_MAX_TREE_SIZE = 2**64 - 1

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
# Notes are UTF-8 without ASCII control characters other than newline.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
# ASCII digits only (int() would take "+1", " 1", "1_0" and other scripts'
# digits), no leading zero, and short enough to stay under 2**64 or near it.
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


def _text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    control = _CONTROL.search(text)
    if control is not None:
        return f"holds the control character U+{ord(control.group()):04X}"
    return None


def _shorten(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


@dataclass(frozen=True)
class Checkpoint:
    """A log's Merkle tree head: its origin, size and root hash, plus opaque extension lines.

    Raises :class:`CheckpointError` if a field cannot be written as a
    checkpoint (empty origin, line breaks, a root hash that is not 32 bytes ...).
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _checkpoint_problem(self.origin, self.size, self.root_hash, self.extensions)
        if problem is not None:
            raise CheckpointError(f"invalid checkpoint: {problem}")

    def body(self) -> str:
        """The checkpoint text that gets signed: one line per field, each ending in a newline."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = (self.origin, str(self.size), root, *self.extensions)
        return "".join(f"{line}\n" for line in lines)


def _checkpoint_problem(
    origin: str, size: int, root_hash: bytes, extensions: tuple[str, ...]
) -> str | None:
    if not isinstance(origin, str):
        return "the origin is not text"
    if not origin:
        return "the origin is empty"
    if "\n" in origin:
        return "the origin holds a line break"
    problem = _text_problem(origin)
    if problem is not None:
        return f"the origin {problem}"
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_TREE_SIZE:
        return f"the tree size {size!r} is not an integer from 0 to 2**64-1"
    if not isinstance(root_hash, bytes) or len(root_hash) != 32:
        return "the root hash is not 32 bytes"
    if not isinstance(extensions, tuple):
        return "the extension lines are not a tuple"
    for line in extensions:
        if not isinstance(line, str):
            return "an extension line is not text"
        if not line:
            return "an extension line is empty"
        if "\n" in line:
            return "an extension line holds a line break"
        problem = _text_problem(line)
        if problem is not None:
            return f"an extension line {problem}"
    return None


def parse_checkpoint_body(text: str) -> Checkpoint:
    """The checkpoint in a note's (already verified) text.

    Raises :class:`CheckpointError` on anything but the exact format: at least
    three non-empty lines, each ending in a newline; a decimal tree size
    without leading zeros; a root hash in canonical, padded base64 of 32 bytes.
    """
    if len(text) > MAX_NOTE_BYTES:
        raise CheckpointError("malformed checkpoint body: larger than 1 MiB")
    if not text.endswith("\n"):
        raise CheckpointError("malformed checkpoint body: it does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(
            f"malformed checkpoint body: {len(lines)} line(s), need origin, tree size and root hash"
        )
    origin, size_line, root_line, *extensions = lines
    if not _TREE_SIZE.fullmatch(size_line):
        raise CheckpointError(
            f"malformed checkpoint body: tree size {_shorten(size_line)} "
            "is not a decimal number without leading zeros"
        )
    root_hash = _b64decode_canonical(root_line)
    if root_hash is None:
        raise CheckpointError(
            f"malformed checkpoint body: root hash {_shorten(root_line)} is not canonical base64"
        )
    size = int(size_line)
    problem = _checkpoint_problem(origin, size, root_hash, tuple(extensions))
    if problem is not None:
        raise CheckpointError(f"malformed checkpoint body: {problem}")
    return Checkpoint(origin, size, root_hash, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey) -> str:
    """The signed note of ``checkpoint`` by ``key``."""
    return sign_note(checkpoint.body(), [key])


def open_checkpoint(note: str, verifier: Verifier) -> Checkpoint:
    """The checkpoint in ``note``, which ``verifier`` must have signed.

    Signatures by other keys are ignored (witness cosignatures, rotated keys).
    The caller still decides whether the origin is the log it expects.
    Raises :class:`CheckpointError` if the note is malformed, carries no
    valid signature by ``verifier``, carries a bad one, or its text is not a
    checkpoint.
    """
    return parse_checkpoint_body(open_note(note, [verifier]))


def sign_note(text: str, keys: Sequence[SigningKey]) -> str:
    """``text`` signed by each of ``keys``, as a signed note.

    Raises :class:`InputError` if there is no key, a key is given twice, the
    text does not end with a newline or holds control characters, or the note
    would be too large for :func:`open_note` to accept.
    """
    if not keys:
        raise InputError("a note needs at least one signing key")
    if not text.endswith("\n"):
        raise InputError("note text must end with a newline")
    problem = _text_problem(text)
    if problem is not None:
        raise InputError(f"note text {problem}")
    message = text.encode("utf-8")
    seen: set[tuple[str, bytes]] = set()
    lines: list[str] = []
    for key in keys:
        identity = (key.name, key.key_id())
        if identity in seen:
            raise InputError(f"key {key.name}+{key.key_id().hex()} is given twice")
        seen.add(identity)
        signature = base64.b64encode(key.key_id() + key.sign(message)).decode("ascii")
        lines.append(f"{_SIGNATURE_PREFIX}{key.name} {signature}\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise InputError(f"a note carries at most {MAX_NOTE_SIGNATURES} signatures")
    note = text + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise InputError("the signed note would be larger than 1 MiB")
    return note


def open_note(note: str, verifiers: Sequence[Verifier]) -> str:
    """The text of ``note`` once a signature by one of ``verifiers`` is verified.

    Following c2sp.org/signed-note: signatures whose (key name, key id) is not
    a verifier's are ignored; every signature that is a verifier's must
    verify, or the whole note is rejected; at least one must be there.
    Raises :class:`CheckpointError` otherwise, and :class:`InputError` if two
    verifiers share a key name and key id but not their key.
    """
    known = _by_identity(verifiers)
    text, signatures = split_note(note)
    message = text.encode("utf-8")
    verified = False
    for name, key_id, signature in signatures:
        verifier = known.get((name, key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, signature):
            raise CheckpointError(
                f"bad signature by {name}+{key_id.hex()}: "
                "the note was altered or not signed by this key"
            )
        verified = True
    if not verified:
        expected = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in known.values())
        raise CheckpointError(f"no signature by {expected or 'a trusted key'} in the note")
    return text


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """A note's text and its signature lines as (key name, key id, signature), unverified.

    For readers that verify another kind of signature over the same text
    (witness cosignatures). Raises :class:`CheckpointError` if the note is
    malformed.
    """
    if len(note) > MAX_NOTE_BYTES:
        raise CheckpointError("malformed note: larger than 1 MiB")
    problem = _text_problem(note)
    if problem is not None:
        raise CheckpointError(f"malformed note: it {problem}")
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise CheckpointError("malformed note: larger than 1 MiB")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise CheckpointError("malformed note: it does not end with a signature line")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_NOTE_SIGNATURES:
        raise CheckpointError(f"malformed note: more than {MAX_NOTE_SIGNATURES} signature lines")
    return text, [_parse_signature_line(line) for line in lines]


def _by_identity(verifiers: Sequence[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        identity = (verifier.name, verifier.key_id)
        other = known.setdefault(identity, verifier)
        if other.public_key != verifier.public_key:
            # Someone has tampered with the trust configuration; say so
            # rather than pick one of the two.
            raise InputError(
                f"two verifiers named {verifier.name} share key id "
                f"{verifier.key_id.hex()} but not their key"
            )
    return known


def _parse_signature_line(line: str) -> tuple[str, bytes, bytes]:
    """(key name, key id, signature) of ``— <name> <base64(key id || signature)>``."""
    if not line.startswith(_SIGNATURE_PREFIX):
        raise CheckpointError(
            f"malformed note: {_shorten(line)} in the signature block is not a signature line"
        )
    name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not is_valid_key_name(name):
        raise CheckpointError(f"malformed note: invalid key name {_shorten(name)}")
    raw = _b64decode_canonical(encoded)
    if raw is None or len(raw) < 5:
        raise CheckpointError(
            f"malformed note: the signature by {name} is not canonical base64 "
            "of a key id and a signature"
        )
    return name, raw[:4], raw[4:]
