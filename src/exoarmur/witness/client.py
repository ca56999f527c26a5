"""A log collecting witness cosignatures on its checkpoint (c2sp.org/tlog-witness, client side).

For each witness: send add-checkpoint from size 0; a 409 names the size the
witness last cosigned, so send again with a consistency proof from there.
A witness that has cosigned a *larger* tree than the log now has (the log was
rolled back), or that answers 422 (the log forked), is a refusal, and the
refusal is kept as evidence: which witness, the sizes and roots on both sides,
and the checkpoint the witness holds, signed by the log's own key.

Only cosignatures by the witness keys the caller trusts count; lines by other
keys are dropped, as the spec asks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import CheckpointError, InputError, QuorumNotReached
from ..ledger.checkpoint import Checkpoint, open_checkpoint, split_note
from ..ledger.keys import Verifier
from .cosignature import Cosignature, CosignatureVerifier, verify_cosignatures
from .protocol import AddCheckpoint, parse_size_body

__all__ = ["Cosigned", "Refusal", "collect_cosignatures"]

#: 409s followed in a row before giving up (another writer keeps moving the witness)
_MAX_ROUNDS = 4


@dataclass(frozen=True)
class Refusal:
    """Why one witness did not cosign, with what each side holds."""

    witness: str
    status: int | None
    reason: str
    log_size: int
    log_root: bytes
    witness_size: int | None = None
    witness_root: bytes | None = None
    #: the log's root at ``witness_size``, when the log is that large (differs: a fork)
    log_root_at_witness_size: bytes | None = None
    #: the checkpoint the witness cosigned last, as it serves it (signed by the log)
    witness_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        def hex_or_none(value: bytes | None) -> str | None:
            return None if value is None else value.hex()

        return {
            "witness": self.witness,
            "status": self.status,
            "reason": self.reason,
            "log_size": self.log_size,
            "log_root": self.log_root.hex(),
            "witness_size": self.witness_size,
            "witness_root": hex_or_none(self.witness_root),
            "log_root_at_witness_size": hex_or_none(self.log_root_at_witness_size),
            "witness_note": self.witness_note,
        }

    def describe(self) -> str:
        text = f"witness {self.witness} refused size {self.log_size} root {self.log_root.hex()}"
        if self.status is not None:
            text += f" ({self.status})"
        text += f": {self.reason}"
        if self.witness_size is not None:
            text += f"; it cosigned size {self.witness_size}"
            if self.witness_root is not None:
                text += f" root {self.witness_root.hex()}"
        if self.log_root_at_witness_size is not None:
            text += f"; this log's root at that size is {self.log_root_at_witness_size.hex()}"
        return text


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint with the cosignatures collected for it, and who refused."""

    note: str
    cosignatures: tuple[Cosignature, ...]
    refusals: tuple[Refusal, ...] = field(default=())

    def require(self, quorum: int) -> None:
        """Raise :class:`QuorumNotReached` (carrying the refusals) below ``quorum``."""
        if len(self.cosignatures) < quorum:
            detail = "; ".join(r.describe() for r in self.refusals)
            raise QuorumNotReached(
                f"{len(self.cosignatures)} of the {quorum} witness cosignatures needed"
                + (f": {detail}" if detail else ""),
                self.refusals,
            )


@dataclass(frozen=True)
class _Log:
    note: str
    checkpoint: Checkpoint
    verifier: Verifier
    consistency: Callable[[int, int], Sequence[bytes]]
    root_at: Callable[[int], bytes]


def collect_cosignatures(
    note: str,
    log_verifier: Verifier,
    *,
    consistency: Callable[[int, int], Sequence[bytes]],
    root_at: Callable[[int], bytes],
    witnesses: Sequence[str],
    keys: Sequence[CosignatureVerifier],
    quorum: int,
    client: httpx.Client,
) -> Cosigned:
    """Ask every witness in ``witnesses`` (submission prefixes) to cosign ``note``.

    ``consistency(old, new)`` and ``root_at(size)`` read the log's own tree.
    Raises :class:`InputError` for a quorum that could never be met and
    :class:`QuorumNotReached` when fewer than ``quorum`` trusted keys cosigned.
    """
    if quorum < 1:
        raise InputError(f"--quorum: {quorum} must be at least 1 (zero would trust any log)")
    if quorum > len(keys):
        raise InputError(f"--quorum: {quorum} is more than the {len(keys)} witness key(s) given")
    if not witnesses:
        raise InputError("--witness: name at least one witness URL")
    log = _Log(note, open_checkpoint(note, log_verifier), log_verifier, consistency, root_at)
    found: dict[tuple[str, bytes], Cosignature] = {}
    lines: list[str] = []
    refusals: list[Refusal] = []
    for url in witnesses:
        answer = _ask(log, url.rstrip("/"), keys, client)
        if isinstance(answer, Refusal):
            refusals.append(answer)
            continue
        for cosignature, line in answer:
            if (cosignature.witness, cosignature.key_id) not in found:
                found[(cosignature.witness, cosignature.key_id)] = cosignature
                lines.append(line)
    cosigned = Cosigned(note + "".join(lines), tuple(found.values()), tuple(refusals))
    cosigned.require(quorum)
    return cosigned


def _ask(
    log: _Log, url: str, keys: Sequence[CosignatureVerifier], client: httpx.Client
) -> list[tuple[Cosignature, str]] | Refusal:
    size = log.checkpoint.size
    old = 0
    for _ in range(_MAX_ROUNDS):
        proof = tuple(log.consistency(old, size)) if old else ()
        body = AddCheckpoint(old, proof, log.note).encode()
        try:
            response = client.post(f"{url}/add-checkpoint", content=body)
        except httpx.HTTPError as exc:
            return _refusal(log, url, None, f"unreachable: {exc}")
        if response.status_code == 200:
            return _cosignatures(log, url, response.text, keys)
        if response.status_code != 409:
            return _refused_with_evidence(log, url, response, client)
        known = parse_size_body(response.text)
        if known is None:
            return _refusal(log, url, 409, f"malformed 409 body {response.text[:40]!r}")
        if known > size:
            refusal = _refused_with_evidence(log, url, response, client)
            return _with_reason(
                refusal,
                f"it has cosigned a larger tree ({known}) than this log holds ({size}): "
                "the log was rolled back",
                known,
            )
        old = known
    return _refusal(log, url, 409, "the witness's size kept changing; another writer is active")


def _cosignatures(
    log: _Log, url: str, body: str, keys: Sequence[CosignatureVerifier]
) -> list[tuple[Cosignature, str]] | Refusal:
    text, _ = split_note(log.note)
    try:
        # The answer is signature lines; appended to our note they must parse as one.
        _, lines = split_note(text + "\n" + body)
        cosignatures = verify_cosignatures(text + "\n" + body, keys)
    except CheckpointError as exc:
        return _refusal(log, url, 200, f"its answer does not verify: {exc}")
    if not cosignatures:
        return _refusal(log, url, 200, "its answer carries no cosignature by a trusted witness key")
    by_identity = {(c.witness, c.key_id): c for c in cosignatures}
    out: list[tuple[Cosignature, str]] = []
    for raw_line, (name, key_id, _sig) in zip(body[:-1].split("\n"), lines, strict=True):
        cosignature = by_identity.pop((name, key_id), None)
        if cosignature is not None:
            out.append((cosignature, raw_line + "\n"))
    return out


def _refusal(log: _Log, url: str, status: int | None, reason: str) -> Refusal:
    return Refusal(url, status, reason, log.checkpoint.size, log.checkpoint.root_hash)


def _with_reason(refusal: Refusal, reason: str, known: int) -> Refusal:
    return Refusal(
        refusal.witness,
        refusal.status,
        reason,
        refusal.log_size,
        refusal.log_root,
        refusal.witness_size if refusal.witness_size is not None else known,
        refusal.witness_root,
        refusal.log_root_at_witness_size,
        refusal.witness_note,
    )


def _refused_with_evidence(
    log: _Log, url: str, response: httpx.Response, client: httpx.Client
) -> Refusal:
    """The refusal, plus what the witness holds for this log (its monitoring checkpoint)."""
    reason = response.text.strip()[:500] or response.reason_phrase
    origin_hash = hashlib.sha256(log.checkpoint.origin.encode("utf-8")).hexdigest()
    try:
        held = client.get(f"{url}/{origin_hash}/checkpoint")
    except httpx.HTTPError:
        held = None
    if held is None or held.status_code != 200:
        return _refusal(log, url, response.status_code, reason)
    note = held.text
    try:
        # Only a checkpoint the log's own key signed is evidence against the log.
        theirs = open_checkpoint(note, log.verifier)
    except CheckpointError as exc:
        return _refusal(log, url, response.status_code, f"{reason}; its checkpoint: {exc}")
    ours = None
    if theirs.size <= log.checkpoint.size:
        ours = log.root_at(theirs.size)
    return Refusal(
        url,
        response.status_code,
        reason,
        log.checkpoint.size,
        log.checkpoint.root_hash,
        theirs.size,
        theirs.root_hash,
        ours,
        note,
    )
