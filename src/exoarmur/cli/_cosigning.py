"""Cosigning for ``exoarmur checkpoint`` and witness checks for ``verify-bundle``.

Shared by command modules, so a leaf like ``_common``: it imports no command.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from ..errors import CheckpointError, InputError, KeyFileError, QuorumNotReached
from ..ledger.checkpoint import Checkpoint, sign_checkpoint
from ..ledger.log import Ledger
from ..witness.client import collect_cosignatures
from ..witness.cosignature import (
    CosignatureVerifier,
    verify_cosignatures,
)
from ._common import err_console

if TYPE_CHECKING:
    from ..evidence.verify import BundleVerdict

#: seconds a witness has to answer one request
WITNESS_TIMEOUT = 10.0


def parse_witness_keys(values: Sequence[str]) -> list[CosignatureVerifier]:
    keys: list[CosignatureVerifier] = []
    for value in values:
        try:
            keys.append(CosignatureVerifier.from_string(value))
        except KeyFileError as exc:
            raise InputError(f"--witness-key: {exc}") from None
    return keys


@dataclass(frozen=True)
class Witnessing:
    """``exoarmur checkpoint``'s witness options, checked before anything is signed."""

    witnesses: tuple[str, ...]
    keys: tuple[CosignatureVerifier, ...]
    quorum: int
    evidence: Path | None

    @classmethod
    def of(
        cls,
        witnesses: Sequence[str],
        witness_keys: Sequence[str],
        quorum: int | None,
        evidence: Path | None,
    ) -> Witnessing:
        """Raises :class:`InputError` naming the option that is wrong."""
        if not witnesses:
            raise InputError("--witness: name at least one witness URL to ask")
        for url in witnesses:
            if not url.startswith(("http://", "https://")):
                raise InputError(f"--witness: {url[:80]!r} is not an http:// or https:// URL")
        keys = parse_witness_keys(witness_keys)
        if not keys:
            raise InputError("--witness-key: name the key of each witness you trust")
        needed = len(keys) if quorum is None else quorum
        if not 1 <= needed <= len(keys):
            raise InputError(f"--quorum: {needed} is not from 1 to the {len(keys)} key(s) given")
        return cls(tuple(witnesses), tuple(keys), needed, evidence)

    def __call__(self, ledger: Ledger, tenant: str) -> str:
        """A fresh checkpoint with the cosignatures collected, stored as the log's checkpoint.

        What each refusing witness said goes to stderr and, as JSON, to
        ``evidence``. Below the quorum: :class:`QuorumNotReached`, and nothing
        is stored. The cosigned note is stored only if no checkpoint of that
        size is stored yet (stored checkpoints are never replaced); it is
        what ``evidence export`` then puts in bundles.
        """

        size = ledger.size(tenant)
        head = Checkpoint(ledger.origin(tenant), size, ledger.root(tenant, size))
        note = sign_checkpoint(head, ledger.key)

        def consistency(old: int, new: int) -> Sequence[bytes]:
            return ledger.consistency(tenant, old, new).hashes

        def root_at(size: int) -> bytes:
            return ledger.root(tenant, size)

        try:
            with httpx.Client(timeout=WITNESS_TIMEOUT) as client:
                cosigned = collect_cosignatures(
                    note,
                    ledger.verifier,
                    consistency=consistency,
                    root_at=root_at,
                    witnesses=self.witnesses,
                    keys=self.keys,
                    quorum=self.quorum,
                    client=client,
                )
        except QuorumNotReached as exc:
            _write_evidence(self.evidence, tenant, note, exc.refusals)
            raise
        _write_evidence(self.evidence, tenant, note, cosigned.refusals)
        for refusal in cosigned.refusals:
            err_console.print(f"warning: {refusal.describe()}", markup=False, soft_wrap=True)
        ledger.store.save_checkpoint(tenant, size, cosigned.note)
        if ledger.on_checkpoint is not None:  # the home keeps it beside the store too
            ledger.on_checkpoint(tenant, head, cosigned.note)
        stored = ledger.store.latest_checkpoint(tenant)
        if stored is None or stored[1] != cosigned.note:
            err_console.print(
                f"warning: a checkpoint of size {size} was already stored; "
                "the cosigned one is printed, not stored",
                markup=False,
            )
        return cosigned.note


def require_witnesses(
    verdict: BundleVerdict, text: bytes, witness_keys: Sequence[str], quorum: int | None
) -> None:
    """Fail ``verdict`` unless every checkpoint in the bundle carries ``quorum`` cosignatures.

    Every checkpoint, not only the tenant's: the context events (policy
    activations in the system log) are proven against theirs, and a rolled-back
    system log would hide a policy change as well as a tenant's log would.
    """
    keys = parse_witness_keys(witness_keys)
    if not keys:
        raise InputError("--witness-key: name the key of each witness you trust")
    needed = len(keys) if quorum is None else quorum
    if not 1 <= needed <= len(keys):
        raise InputError(
            f"--witness-quorum: {needed} is not from 1 to the {len(keys)} key(s) given"
        )
    try:
        bundle = json.loads(text)
    except ValueError:
        return  # the verdict already says the bundle is not JSON
    notes = bundle.get("checkpoints") if isinstance(bundle, dict) else None
    if not isinstance(notes, dict) or not notes:
        verdict.fail("checkpoints", "no checkpoint to require witness cosignatures on")
        return
    for log, note in sorted(notes.items()):
        try:
            found = verify_cosignatures(str(note), keys)
        except CheckpointError as exc:
            verdict.fail(f"checkpoints.{log}", str(exc))
            continue
        if len(found) < needed:
            names = ", ".join(c.witness for c in found) or "none"
            verdict.fail(
                f"checkpoints.{log}",
                f"{len(found)} of the {needed} witness cosignatures needed (valid: {names})",
            )


def _write_evidence(path: Path | None, tenant: str, note: str, refusals: Sequence[object]) -> None:
    if path is None:
        return
    body = {
        "tenant": tenant,
        "checkpoint": note,
        "refusals": [refusal.to_json() for refusal in refusals if hasattr(refusal, "to_json")],
    }
    try:
        path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--evidence: cannot write {path}: {exc.strerror}") from None
