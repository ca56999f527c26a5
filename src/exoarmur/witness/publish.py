"""A log's side of witnessing: sign its head, have it cosigned, keep it; require it when reading.

``exoarmur checkpoint --witness`` and ``exoarmur serve``'s schedule share
:func:`cosign_and_store`; ``verify`` and ``prove`` share :class:`Requirement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from ..errors import CheckpointError, InputError
from ..ledger.checkpoint import Checkpoint, sign_checkpoint
from ..ledger.log import Ledger
from .client import Refusal, collect_cosignatures
from .cosignature import CosignatureVerifier, cosigned_upgrade, verify_cosignatures


@dataclass(frozen=True)
class Published:
    """A cosigned checkpoint, who refused it, and whether the store kept it."""

    note: str
    size: int
    refusals: tuple[Refusal, ...]
    #: why the store kept another note at that size; None when it holds this one
    kept_other: str | None = None

    @property
    def stored(self) -> bool:
        return self.kept_other is None


def sign_head(ledger: Ledger, tenant: str) -> tuple[Checkpoint, str]:
    """The log's current head and its note signed by the log's key (not stored)."""
    size = ledger.size(tenant)
    head = Checkpoint(ledger.origin(tenant), size, ledger.root(tenant, size))
    return head, sign_checkpoint(head, ledger.key)


def cosign_and_store(
    ledger: Ledger,
    tenant: str,
    head: Checkpoint,
    note: str,
    *,
    witnesses: Sequence[str],
    keys: Sequence[CosignatureVerifier],
    quorum: int,
    client: httpx.Client,
) -> Published:
    """Collect ``quorum`` cosignatures on ``note`` and store the cosigned note.

    A note stored at the same size before (say the plain one ``demo
    quickstart`` or ``GET /v1/tenants/T/checkpoint`` signed) is replaced when
    the cosigned one only adds signatures to it; otherwise it is kept and
    :attr:`Published.kept_other` says why. Raises :class:`QuorumNotReached`
    (carrying the refusals) below the quorum, and :class:`CheckpointError`
    when the stored note has another root (a fork); nothing is stored then.
    """

    def consistency(old: int, new: int) -> Sequence[bytes]:
        return ledger.consistency(tenant, old, new).hashes

    def root_at(size: int) -> bytes:
        return ledger.root(tenant, size)

    cosigned = collect_cosignatures(
        note,
        ledger.verifier,
        consistency=consistency,
        root_at=root_at,
        witnesses=witnesses,
        keys=keys,
        quorum=quorum,
        client=client,
    )
    kept_other = _store(ledger, tenant, head.size, cosigned.note, keys)
    if kept_other is None and ledger.on_checkpoint is not None:
        ledger.on_checkpoint(tenant, head, cosigned.note)  # the home keeps it beside the store too
    return Published(cosigned.note, head.size, cosigned.refusals, kept_other)


#: compare-and-set rounds lost to concurrent cosigners before giving up (each
#: lost round means another cosigner stored more signatures first)
_REPLACE_ROUNDS = 8


def _store(
    ledger: Ledger, tenant: str, size: int, note: str, keys: Sequence[CosignatureVerifier]
) -> str | None:
    """Store ``note`` at ``size``, over a stored note it only adds signatures to.

    None once the store holds ``note``; otherwise why it keeps the other one.
    Raises :class:`CheckpointError` when the stored note is a fork of it.
    """
    store = ledger.store
    store.save_checkpoint(tenant, size, note)
    for _ in range(_REPLACE_ROUNDS):
        stored = store.checkpoint_at(tenant, size)
        if stored is None:  # the store lost it between two calls: say so, do not guess
            return f"the store holds no checkpoint of size {size} after saving one"
        if stored == note:
            return None
        problem = cosigned_upgrade(stored, note, ledger.verifiers, keys)
        if problem is not None:
            return problem
        if store.replace_checkpoint(tenant, size, stored, note):
            return None
    return f"other cosigners kept replacing the checkpoint of size {size}"


@dataclass(frozen=True)
class Requirement:
    """``--witness-key KEY… --witness-quorum K``: K of these witnesses must have cosigned."""

    keys: tuple[CosignatureVerifier, ...]
    quorum: int

    @classmethod
    def of(cls, keys: Sequence[CosignatureVerifier], quorum: int | None) -> Requirement:
        """Raises :class:`InputError` naming the option that is wrong. Default: all of them."""
        if not keys:
            raise InputError("--witness-key: name the key of each witness you trust")
        needed = len(keys) if quorum is None else quorum
        if not 1 <= needed <= len(keys):
            raise InputError(
                f"--witness-quorum: {needed} is not from 1 to the {len(keys)} key(s) given"
            )
        return cls(tuple(keys), needed)

    def problem(self, note: str | None) -> str | None:
        """Why ``note`` (the checkpoint relied on) does not do, naming the missing witnesses;
        None when it carries the quorum."""
        if note is None:
            return "no stored checkpoint to require witness cosignatures on"
        try:
            found = verify_cosignatures(note, self.keys)
        except CheckpointError as exc:
            return str(exc)
        if len(found) >= self.quorum:
            return None
        seen = {(c.witness, c.key_id) for c in found}
        missing = [k.name for k in self.keys if (k.name, k.key_id) not in seen]
        valid = ", ".join(c.witness for c in found) or "none"
        return (
            f"{len(found)} of the {self.quorum} witness cosignatures needed "
            f"(valid: {valid}; missing: {', '.join(missing)})"
        )
