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

from ..errors import InputError, KeyFileError, QuorumNotReached
from ..ledger.log import Ledger
from ..witness.cosignature import CosignatureVerifier
from ..witness.publish import Requirement, cosign_and_store, sign_head
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
        is stored. The cosigned note replaces one stored at that size before
        only if it adds signatures to the same checkpoint (a fork raises
        :class:`CheckpointError`); it is what ``evidence export`` then puts in
        bundles.
        """

        head, note = sign_head(ledger, tenant)
        try:
            with httpx.Client(timeout=WITNESS_TIMEOUT) as client:
                published = cosign_and_store(
                    ledger,
                    tenant,
                    head,
                    note,
                    witnesses=self.witnesses,
                    keys=self.keys,
                    quorum=self.quorum,
                    client=client,
                )
        except QuorumNotReached as exc:
            _write_evidence(self.evidence, tenant, note, exc.refusals)
            raise
        _write_evidence(self.evidence, tenant, note, published.refusals)
        for refusal in published.refusals:
            err_console.print(f"warning: {refusal.describe()}", markup=False, soft_wrap=True)
        if published.kept_other is not None:
            err_console.print(
                f"warning: another checkpoint of size {head.size} was stored and is kept "
                f"({published.kept_other}); the cosigned one is printed, not stored",
                markup=False,
                soft_wrap=True,
            )
        return published.note


def require_witnesses(
    verdict: BundleVerdict, text: bytes, witness_keys: Sequence[str], quorum: int | None
) -> None:
    """Fail ``verdict`` unless every checkpoint in the bundle carries ``quorum`` cosignatures.

    Every checkpoint, not only the tenant's: the context events (policy
    activations in the system log) are proven against theirs, and a rolled-back
    system log would hide a policy change as well as a tenant's log would.
    """
    required = Requirement.of(parse_witness_keys(witness_keys), quorum)
    try:
        bundle = json.loads(text)
    except ValueError:
        return  # the verdict already says the bundle is not JSON
    notes = bundle.get("checkpoints") if isinstance(bundle, dict) else None
    if not isinstance(notes, dict) or not notes:
        verdict.fail("checkpoints", "no checkpoint to require witness cosignatures on")
        return
    for log, note in sorted(notes.items()):
        problem = required.problem(str(note))
        if problem is not None:
            verdict.fail(f"checkpoints.{log}", problem)


def require_on_stored(ledger: Ledger, tenant: str, required: Requirement | None) -> str | None:
    """What is wrong with the latest stored checkpoint of ``tenant``'s log, if ``required``."""
    if required is None:
        return None
    stored = ledger.store.latest_checkpoint(tenant)
    problem = required.problem(None if stored is None else stored[1])
    if problem is None:
        return None
    where = "" if stored is None else f" (size {stored[0]})"
    return f"witnesses: the latest stored checkpoint{where}: {problem}"


def requirement(witness_keys: Sequence[str] | None, quorum: int | None) -> Requirement | None:
    """``--witness-key``/``--witness-quorum`` checked; None when neither is given."""
    if not witness_keys and quorum is None:
        return None
    return Requirement.of(parse_witness_keys(witness_keys or []), quorum)


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
