"""Witness cosignatures on checkpoints: c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``.

A cosignature is a signed-note signature line by a witness, over a message
that says *when* it saw the checkpoint::

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint's note text, final newline included>

and whose signature bytes are ``u64 big-endian timestamp || Ed25519 signature``.
Its key id uses the signature type 0x04, not the log's 0x01, so a witness
line can never pass for a log signature and the other way round::

    key id   SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]
    vkey     <name>+<hex key id>+base64(0x04 || 32-byte public key)

This module is pure: it takes the timestamp as an argument and never reads a
clock, a file or a socket.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import CheckpointError, InputError, KeyFileError, QuorumNotReached
from ..ledger.checkpoint import (
    Checkpoint,
    open_checkpoint,
    open_note,
    parse_checkpoint_body,
    split_note,
)
from ..ledger.keys import SigningKey, Verifier, is_valid_key_name

__all__ = [
    "COSIGNATURE_TYPE",
    "Cosignature",
    "CosignatureVerifier",
    "Cosigner",
    "cosigned_message",
    "cosigned_upgrade",
    "open_cosigned",
    "verify_cosignatures",
]

#: the signature type byte tlog-cosignature assigns to Ed25519 cosignatures
COSIGNATURE_TYPE = 0x04
_HEADER = "cosignature/v1\n"
_MAX_TIMESTAMP = 2**63 - 1
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_SIGNATURE_PREFIX = "\u2014 "


def cosigned_message(note_text: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs: header, time line, then the note's text."""
    if not isinstance(timestamp, int) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise InputError(f"a cosignature timestamp is from 0 to 2**63-1, got {timestamp!r}")
    return f"{_HEADER}time {timestamp}\n{note_text}".encode()


def _key_id(name: str, public_key: bytes) -> bytes:
    material = name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:4]


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's name and Ed25519 public key: checks its ``cosignature/v1`` lines."""

    name: str
    public_key: bytes
    key_id: bytes = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise InputError(
                f"invalid witness name {self.name!r}: a key name is non-empty UTF-8 "
                "without spaces, plus signs or control characters"
            )
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise InputError("an Ed25519 public key is 32 bytes")
        object.__setattr__(self, "key_id", _key_id(self.name, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    @classmethod
    def from_string(cls, vkey: str) -> CosignatureVerifier:
        """Parse a witness verifier key ``<name>+<hex key id>+base64(0x04 || public key)``.

        Raises :class:`KeyFileError` naming the rule it breaks.
        """
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise KeyFileError(
                f"malformed witness key {vkey[:80]!r}: expected <name>+<key id>+<public key>"
            )
        name, hex_id, encoded = parts
        if not is_valid_key_name(name):
            raise KeyFileError(f"malformed witness key {vkey[:80]!r}: invalid key name")
        if not _KEY_ID_HEX.fullmatch(hex_id):
            raise KeyFileError(
                f"malformed witness key {vkey[:80]!r}: the key id is not 8 lowercase hex digits"
            )
        raw = _b64decode_canonical(encoded)
        if raw is None or len(raw) != 33:
            raise KeyFileError(
                f"malformed witness key {vkey[:80]!r}: the public key is not canonical "
                "base64 of 33 bytes"
            )
        if raw[0] != COSIGNATURE_TYPE:
            raise KeyFileError(
                f"malformed witness key {vkey[:80]!r}: signature type 0x{raw[0]:02x} is not "
                "an Ed25519 cosignature (0x04)"
            )
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != hex_id:
            raise KeyFileError(
                f"malformed witness key {vkey[:80]!r}: the key id does not match the name and key"
            )
        return verifier

    def verifier_key(self) -> str:
        encoded = base64.b64encode(bytes([COSIGNATURE_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def timestamp_of(self, note_text: str, signature: bytes) -> int | None:
        """The timestamp of ``signature`` if it is this witness's cosignature of ``note_text``."""
        if len(signature) != 8 + 64:
            return None
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > _MAX_TIMESTAMP:
            return None
        try:
            self._key.verify(signature[8:], cosigned_message(note_text, timestamp))
        except InvalidSignature:
            return None
        return int(timestamp)


class Cosigner:
    """A witness's private key, cosigning checkpoints. The key file is a signer key
    (``PRIVATE+KEY+...``); only the key id and the signed message differ from a log's."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, key: SigningKey) -> None:
        self._key = key
        self._verifier = CosignatureVerifier(key.name, key.public_bytes())

    @property
    def name(self) -> str:
        return self._key.name

    def verifier(self) -> CosignatureVerifier:
        return self._verifier

    def cosign(self, note_text: str, timestamp: int) -> str:
        """The signature line of this witness over ``note_text`` at ``timestamp``."""
        message = cosigned_message(note_text, timestamp)
        raw = self._verifier.key_id + struct.pack(">Q", timestamp) + self._key.sign(message)
        return f"{_SIGNATURE_PREFIX}{self.name} {base64.b64encode(raw).decode('ascii')}\n"

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, key_id={self._verifier.key_id.hex()})"


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: which witness, and when it says it saw the checkpoint."""

    witness: str
    key_id: bytes
    timestamp: int


def verify_cosignatures(note: str, witnesses: Sequence[CosignatureVerifier]) -> list[Cosignature]:
    """The valid cosignatures in ``note`` by ``witnesses``, one per witness at most.

    As c2sp.org/signed-note asks, lines by keys not among ``witnesses`` are
    ignored, and a line by one of them that does not verify rejects the note
    (:class:`CheckpointError`): someone altered it. The caller still checks the
    log's own signature (:func:`~exoarmur.ledger.checkpoint.open_checkpoint`).
    """
    known = {(w.name, w.key_id): w for w in witnesses}
    text, signatures = split_note(note)
    found: dict[tuple[str, bytes], Cosignature] = {}
    for name, key_id, signature in signatures:
        witness = known.get((name, key_id))
        if witness is None:
            continue
        timestamp = witness.timestamp_of(text, signature)
        if timestamp is None:
            raise CheckpointError(
                f"bad cosignature by witness {name}+{key_id.hex()}: "
                "the checkpoint was altered or not cosigned by this key"
            )
        found.setdefault((name, key_id), Cosignature(name, key_id, timestamp))
    return list(found.values())


def open_cosigned(
    note: str, log: Verifier, witnesses: Sequence[CosignatureVerifier], quorum: int
) -> tuple[Checkpoint, list[Cosignature]]:
    """The checkpoint in ``note`` and its cosignatures, once ``log`` signed it and at
    least ``quorum`` of ``witnesses`` cosigned it.

    Raises :class:`InputError` for a quorum below 1 or above the witnesses
    given (it could never mean anything), :class:`CheckpointError` for a bad
    signature, :class:`QuorumNotReached` for too few cosignatures.
    """
    if not 1 <= quorum <= len(witnesses):
        raise InputError(
            f"a witness quorum of {quorum} is not from 1 to the {len(witnesses)} key(s) given"
        )
    checkpoint = open_checkpoint(note, log)
    found = verify_cosignatures(note, witnesses)
    if len(found) < quorum:
        names = ", ".join(c.witness for c in found) or "none"
        raise QuorumNotReached(
            f"checkpoint of {checkpoint.origin} at size {checkpoint.size} carries "
            f"{len(found)} of the {quorum} witness cosignatures needed (valid: {names})"
        )
    return checkpoint, found


def cosigned_upgrade(
    stored: str,
    cosigned: str,
    log: Sequence[Verifier],
    witnesses: Sequence[CosignatureVerifier],
) -> str | None:
    """None when ``cosigned`` may replace ``stored``; otherwise why it may not.

    It may when it is the same checkpoint (the very same signed text, so the
    same origin, size, root hash and extensions), signed by the log, and its
    valid signatures (the log's keys in ``log``, witnesses in ``witnesses``)
    are a strict superset of the stored note's: nothing a reader relied on is
    lost, something is gained. A stored signature by a key not given here
    must be carried over byte for byte, and ``cosigned`` may add none such.

    Raises :class:`CheckpointError` when either note does not verify, and
    when both are checkpoints of one origin and size with different roots or
    text: a fork, which must never be papered over by a replacement.
    """
    new_text = open_note(cosigned, log)
    old_text = open_note(stored, log)
    if old_text != new_text:
        old, new = parse_checkpoint_body(old_text), parse_checkpoint_body(new_text)
        if old.origin == new.origin and old.size == new.size:
            raise CheckpointError(
                f"fork: the stored checkpoint of {new.origin} at size {new.size} has root "
                f"{old.root_hash.hex()}"
                + ("" if old.root_hash != new.root_hash else " and other extension lines")
                + f", the cosigned one {new.root_hash.hex()}; the stored one is kept"
            )
        return (
            f"the stored checkpoint is of {old.origin} at size {old.size}, "
            f"not of {new.origin} at size {new.size}"
        )
    old_valid, old_other = _signers(stored, log, witnesses)
    new_valid, new_other = _signers(cosigned, log, witnesses)
    lost = sorted(f"{name}+{key_id.hex()}" for name, key_id in old_valid - new_valid)
    if lost or not old_other <= new_other:
        gone = ", ".join(lost) or "a signature by a key not given"
        return f"the cosigned checkpoint lacks signatures the stored one carries ({gone})"
    if new_other - old_other:
        return "the cosigned checkpoint carries signatures by keys not given"
    if not new_valid - old_valid:
        return "the cosigned checkpoint carries no signature the stored one lacks"
    return None


def _signers(
    note: str, log: Sequence[Verifier], witnesses: Sequence[CosignatureVerifier]
) -> tuple[set[tuple[str, bytes]], set[tuple[str, bytes, bytes]]]:
    """Who validly signed ``note`` (log keys and witnesses), and the lines by anyone else.

    The note's log signatures were verified by the caller (``open_note``
    rejects a note with any bad one); cosignatures are verified here.
    """
    logs = {(v.name, v.key_id) for v in log}
    valid = {(c.witness, c.key_id) for c in verify_cosignatures(note, witnesses)}
    known = {(w.name, w.key_id) for w in witnesses}
    other: set[tuple[str, bytes, bytes]] = set()
    for name, key_id, signature in split_note(note)[1]:
        if (name, key_id) in logs:
            valid.add((name, key_id))
        elif (name, key_id) not in known:
            other.add((name, key_id, signature))
    return valid, other


def _b64decode_canonical(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None
