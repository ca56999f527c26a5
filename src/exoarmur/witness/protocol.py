"""The add-checkpoint request of c2sp.org/tlog-witness, and the witness's judgement of it.

A log asks a witness to cosign its new checkpoint by sending the size the
witness last cosigned and a consistency proof from there::

    old <size>
    <base64 hash>            (0 to 63 consistency proof lines)

    <the signed checkpoint note>

The witness answers with the protocol's status codes, in the order the spec
checks them: 400 malformed, 404 unknown origin, 403 no valid signature by
the log, 400 old size above the new one, 409 old size is not the one it
last cosigned (body: that size), 422 not consistent with what it saw.

Pure: bytes and parsed values in, a verified :class:`Checkpoint` or a
:class:`CheckpointRefused` out; the caller owns the state and the clock.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import CheckpointError, CheckpointRefused
from ..ledger.checkpoint import (
    MAX_NOTE_BYTES,
    Checkpoint,
    open_note,
    parse_checkpoint_body,
    split_note,
)
from ..ledger.keys import Verifier
from ..ledger.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "AddCheckpoint",
    "admit",
    "judge",
    "parse_add_checkpoint",
    "parse_size_body",
]

#: the spec's bound on consistency proof lines (a 2**64 tree needs at most 63 + 1)
MAX_PROOF_LINES = 63
#: a note, 63 proof lines and the old size line, with room to spare
MAX_REQUEST_BYTES = MAX_NOTE_BYTES + 64 * 64
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_MAX_SIZE = 2**64 - 1


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the witness last cosigned, a proof from it, a note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    def encode(self) -> bytes:
        lines = [f"old {self.old_size}\n"]
        lines += [base64.b64encode(digest).decode("ascii") + "\n" for digest in self.proof]
        return ("".join(lines) + "\n" + self.note).encode("utf-8")


def _bad_request(message: str) -> CheckpointRefused:
    return CheckpointRefused(400, f"malformed add-checkpoint request: {message}")


def _parse_size(text: str) -> int | None:
    if not _SIZE.fullmatch(text):
        return None
    size = int(text)
    return size if size <= _MAX_SIZE else None


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """The request in ``body``; :class:`CheckpointRefused` (400) naming what is malformed."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _bad_request(f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_request("not UTF-8") from None
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise _bad_request("no empty line between the proof and the checkpoint")
    first, *proof_lines = head.split("\n")
    if not first.startswith("old "):
        raise _bad_request("the first line is not 'old <size>'")
    old_size = _parse_size(first[4:])
    if old_size is None:
        raise _bad_request(f"old size {first[4:44]!r} is not a decimal without leading zeros")
    if len(proof_lines) > MAX_PROOF_LINES:
        raise _bad_request(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof: list[bytes] = []
    for line in proof_lines:
        digest = _hash_line(line)
        if digest is None:
            raise _bad_request(f"proof line {line[:60]!r} is not the base64 of a 32-byte hash")
        proof.append(digest)
    return AddCheckpoint(old_size, tuple(proof), note)


def _hash_line(line: str) -> bytes | None:
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != line:
        return None
    return raw


def parse_size_body(body: str) -> int | None:
    """The tree size in a 409 answer (``text/x.tlog.size``: decimal and a newline)."""
    if not body.endswith("\n"):
        return None
    return _parse_size(body[:-1])


def admit(request: AddCheckpoint, logs: Mapping[str, Sequence[Verifier]]) -> Checkpoint:
    """The request's checkpoint, once signed by a key the witness trusts for its origin.

    400 if the note is not a checkpoint, 404 if its origin is not a log this
    witness follows, 403 if no trusted key signed it or a trusted key's
    signature fails (signatures by other keys are ignored).
    """
    try:
        text, _ = split_note(request.note)
        unverified = parse_checkpoint_body(text)
    except CheckpointError as exc:
        raise _bad_request(str(exc)) from None
    verifiers = logs.get(unverified.origin)
    if not verifiers:
        raise CheckpointRefused(
            404, f"unknown log {unverified.origin!r}: this witness does not follow it"
        )
    try:
        return parse_checkpoint_body(open_note(request.note, verifiers))
    except CheckpointError as exc:
        raise CheckpointRefused(403, f"log {unverified.origin!r}: {exc}") from None


def judge(request: AddCheckpoint, checkpoint: Checkpoint, latest: Checkpoint | None) -> None:
    """Refuse unless ``checkpoint`` extends ``latest``, the last one cosigned for its origin.

    ``latest`` None: never cosigned (its size counts as zero).
    """
    size = checkpoint.size
    if request.old_size > size:
        raise _bad_request(f"old size {request.old_size} is larger than the checkpoint's {size}")
    known = 0 if latest is None else latest.size
    if request.old_size != known:
        raise CheckpointRefused(
            409,
            f"log {checkpoint.origin!r}: old size {request.old_size} is not {known}, "
            "the size this witness last cosigned",
            known_size=known,
        )
    if size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        raise CheckpointRefused(422, "a checkpoint of size 0 must carry the empty tree's root")
    if request.old_size == 0:
        if request.proof:
            raise CheckpointRefused(422, "old size 0 needs no consistency proof, one was sent")
        return
    assert latest is not None  # known == old_size > 0
    if request.old_size == size:
        if checkpoint.root_hash != latest.root_hash:
            raise CheckpointRefused(
                422,
                f"log {checkpoint.origin!r} forked: size {size} has root "
                f"{checkpoint.root_hash.hex()}, this witness cosigned {latest.root_hash.hex()}",
            )
        return
    if not verify_consistency(
        latest.size, size, latest.root_hash, checkpoint.root_hash, request.proof
    ):
        raise CheckpointRefused(
            422,
            f"log {checkpoint.origin!r}: no valid consistency proof from size {latest.size} "
            f"(root {latest.root_hash.hex()}) to size {size} (root {checkpoint.root_hash.hex()})",
        )
