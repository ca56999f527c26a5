"""The ledger and its proofs: ``checkpoint``, ``prove``, ``verify``, ``db``, ``ledger copy``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import (
    InputError,
    QuorumNotReached,
)
from ..home import open_store
from ..ledger.checkpoint import MAX_NOTE_BYTES, parse_checkpoint_body, split_note
from ..ledger.log import Ledger, SignedCheckpoint
from ..terminal import line, styled
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    VERDICT_EXIT,
    VERDICT_STYLE,
    JsonFlag,
    TenantOption,
    console,
    current_home,
    errors,
    print_json,
    progress_bar,
    require_log,
)

if TYPE_CHECKING:  # httpx and the witness client load only when a witness option is given
    from ..witness.publish import Requirement


def checkpoint(
    ctx: typer.Context,
    tenant: TenantOption,
    witness: Annotated[list[str] | None, typer.Option("--witness", help="Witness URL.")] = None,
    witness_key: Annotated[
        list[str] | None, typer.Option("--witness-key", help="A witness's verifier key.")
    ] = None,
    quorum: Annotated[int | None, typer.Option("--quorum", help="Cosignatures needed.")] = None,
    evidence: Annotated[Path | None, typer.Option("--evidence", help="Refusals, JSON.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Sign and print a fresh checkpoint (the C2SP signed note), cosigned with --witness."""
    with errors(as_json):
        cosign = None
        if witness or witness_key or quorum is not None or evidence is not None:
            from ._cosigning import Witnessing

            cosign = Witnessing.of(witness or [], witness_key or [], quorum, evidence)
        ledger = current_home(ctx).ledger()
        try:
            require_log(ledger.store, tenant)
            note = ledger.checkpoint(tenant).note if cosign is None else cosign(ledger, tenant)
        finally:
            ledger.store.close()
    if as_json:
        head = parse_checkpoint_body(split_note(note)[0])
        print_json(
            {
                "tenant": tenant,
                "origin": head.origin,
                "size": head.size,
                "root_hash": head.root_hash.hex(),
                "note": note,
            }
        )
        return
    sys.stdout.write(note)


WitnessKeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--witness-key",
        help="A trusted witness's key: the checkpoint relied on must carry its cosignature "
        "(repeatable).",
    ),
]
WitnessQuorumOption = Annotated[
    int | None,
    typer.Option("--witness-quorum", help="Witness cosignatures needed (default: all keys)."),
]


def _cosigned_head(ledger: Ledger, tenant: str, required: Requirement) -> SignedCheckpoint:
    """The latest stored checkpoint, once it carries the witness quorum ``required``."""
    problem = _problem(ledger, tenant, required)
    if problem is not None:
        raise QuorumNotReached(
            f"{problem}; run `exoarmur checkpoint --witness URL --witness-key KEY` first"
        )
    signed = ledger.latest_checkpoint(tenant)
    assert signed is not None  # the requirement refuses a log without one
    return signed


def _requirement(witness_key: list[str] | None, quorum: int | None) -> Requirement | None:
    if not witness_key and quorum is None:
        return None
    from ._cosigning import requirement

    return requirement(witness_key, quorum)


def _problem(ledger: Ledger, tenant: str, required: Requirement) -> str | None:
    from ._cosigning import require_on_stored

    return require_on_stored(ledger, tenant, required)


prove_app = typer.Typer(
    help="Merkle proofs against the latest signed checkpoint.", no_args_is_help=True
)


@prove_app.command("inclusion")
def prove_inclusion(
    ctx: typer.Context,
    tenant: TenantOption,
    event_id: Annotated[str, typer.Option("--event-id", help="The event to prove.")],
    witness_key: WitnessKeyOption = None,
    witness_quorum: WitnessQuorumOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Prove an event is in the log, against the latest checkpoint.

    With --witness-key: against the latest stored checkpoint, which must carry
    --witness-quorum of those witnesses' cosignatures and cover the event.
    """
    with errors(as_json):
        required = _requirement(witness_key, witness_quorum)
        ledger = current_home(ctx).ledger()
        try:
            event = ledger.event(tenant, event_id)
            if required is None:
                signed = ledger.current_checkpoint(tenant)
            else:
                signed = _cosigned_head(ledger, tenant, required)
                if event.seq >= signed.checkpoint.size:
                    raise QuorumNotReached(
                        f"event {event_id} is leaf {event.seq}, after the latest cosigned "
                        f"checkpoint (size {signed.checkpoint.size}); have a newer one cosigned"
                    )
            proof = ledger.inclusion(tenant, event.seq, signed.checkpoint.size)
            verified = proof.verify(signed.checkpoint.root_hash)
        finally:
            ledger.store.close()
    body = proof.to_json() | {"root_hash": signed.checkpoint.root_hash.hex()}
    if as_json:
        print_json(body)
    else:
        console.print(
            f"event {event_id} is leaf {proof.leaf_index} of {proof.tree_size}", markup=False
        )
        console.print(f"leaf hash {proof.leaf_hash.hex()}", markup=False)
        for index, digest in enumerate(proof.hashes):
            console.print(f"  [{index}] {digest.hex()}", markup=False)
        console.print(
            f"root {signed.checkpoint.root_hash.hex()} — verified: {verified}", markup=False
        )
    if not verified:
        raise typer.Exit(EXIT_FAILURE)


@prove_app.command("consistency")
def prove_consistency(
    ctx: typer.Context,
    tenant: TenantOption,
    old_size: Annotated[int, typer.Option("--from", min=0, help="Older tree size.")],
    new_size: Annotated[int, typer.Option("--to", min=0, help="Newer tree size.")],
    witness_key: WitnessKeyOption = None,
    witness_quorum: WitnessQuorumOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Prove the log of size --to extends the log of size --from.

    With --witness-key: --to must be the size of the latest stored checkpoint,
    which must carry --witness-quorum of those witnesses' cosignatures.
    """
    with errors(as_json):
        if old_size > new_size:
            raise InputError(f"--from ({old_size}) must not exceed --to ({new_size})")
        required = _requirement(witness_key, witness_quorum)
        ledger = current_home(ctx).ledger()
        try:
            proof = ledger.consistency(tenant, old_size, new_size)
            old_root = ledger.root(tenant, old_size)
            new_root = ledger.root(tenant, new_size)
            if required is not None:
                head = _cosigned_head(ledger, tenant, required).checkpoint
                if head.size != new_size:
                    raise QuorumNotReached(
                        f"--to: {new_size} is not the size of the latest cosigned checkpoint "
                        f"({head.size}); prove up to that one"
                    )
                new_root = head.root_hash  # what the witnesses saw, not what the store says now
        finally:
            ledger.store.close()
    verified = proof.verify(old_root, new_root)
    body = proof.to_json() | {"old_root": old_root.hex(), "new_root": new_root.hex()}
    if as_json:
        print_json(body)
    else:
        console.print(f"consistency {old_size} → {new_size}", markup=False)
        for index, digest in enumerate(proof.hashes):
            console.print(f"  [{index}] {digest.hex()}", markup=False)
        console.print(f"verified: {verified}")
    if not verified:
        raise typer.Exit(EXIT_FAILURE)


def _read_notes(files: Sequence[Path]) -> list[str]:
    notes = []
    for file in files:
        try:
            with open(file, "rb") as handle:
                raw = handle.read(MAX_NOTE_BYTES + 1)
        except OSError as exc:
            raise InputError(f"--checkpoint: cannot read {file}: {exc.strerror}") from None
        if len(raw) > MAX_NOTE_BYTES:
            raise InputError(f"--checkpoint: {file} is larger than a signed note may be")
        try:
            notes.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InputError(f"--checkpoint: {file} is not UTF-8 text") from None
    return notes


def verify(
    ctx: typer.Context,
    tenant: TenantOption,
    kept: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A signed checkpoint kept outside the home (as `exoarmur checkpoint` prints it); "
            "the log must extend it. Repeatable.",
        ),
    ] = None,
    witness_key: WitnessKeyOption = None,
    witness_quorum: WitnessQuorumOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Re-derive a log from its stored bytes; check its indexes, tree and checkpoints.

    With --witness-key, the latest stored checkpoint must also carry
    --witness-quorum of those witnesses' cosignatures (default: all).
    Exit 0 VERIFIED, 7 UNANCHORED (all checks passed, but no signed checkpoint
    covers the log's end), 1 FAILED, 2 bad input (e.g. no such tenant).
    """
    with errors(as_json):
        notes = _read_notes(kept or [])
        required = _requirement(witness_key, witness_quorum)
        home = current_home(ctx)
        ledger = home.ledger(rollback_check=False)
        try:
            require_log(ledger.store, tenant)
            kept_notes = list(dict.fromkeys([*notes, *home.anchors.notes(tenant)]))
            result = ledger.verify(tenant, kept=kept_notes)
            problem = None if required is None else _problem(ledger, tenant, required)
            if problem is not None:
                result = replace(result, problems=(*result.problems, problem))
        finally:
            ledger.store.close()
    if as_json:
        print_json(
            {
                "tenant": tenant,
                "ok": result.ok,
                "status": result.status,
                "tree_size": result.size,
                "root_hash": result.root_hash.hex(),
                "checkpoint_size": result.checkpoint_size,
                "kept_checkpoint_sizes": list(result.external_sizes),
                "problems": list(result.problems),
            }
        )
    else:
        verdict = styled(result.status, VERDICT_STYLE[result.status])
        console.print(
            line(verdict, f" tenant {tenant}: {result.size} events, root {result.root_hash.hex()}")
        )
        if result.status == "UNANCHORED":
            covered = result.checkpoint_size
            console.print(
                "  no signed checkpoint covers the end of the log "
                f"({'none at all' if covered is None else f'the latest covers {covered}'}); "
                "run `exoarmur checkpoint` and keep its note elsewhere"
            )
        for size in result.external_sizes:
            console.print(f"  the log extends the kept checkpoint of size {size}")
        for problem in result.problems:
            console.print(line("  ", styled("•", "red"), f" {problem}"))
    raise typer.Exit(VERDICT_EXIT[result.status])


db_app = typer.Typer(help="The ledger database's schema.", no_args_is_help=True)


ledger_app = typer.Typer(help="Move ledgers between stores.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Create or migrate the PostgreSQL schema named by --store (or EXOARMUR_STORE)."""
    with errors(as_json):
        url = current_home(ctx).store_url
        if not url or url.split("://", 1)[0] not in ("postgresql", "postgres"):
            raise InputError("--store: give the postgresql://… URL of the database to upgrade")
        from ..ledger.postgres import upgrade

        applied = upgrade(url)
    if as_json:
        print_json({"applied": list(applied)})
        return
    if applied:
        for name in applied:
            console.print(line(styled("applied", "green"), f" {name}"))
    else:
        console.print("schema up to date")


@ledger_app.command("copy")
def ledger_copy(
    ctx: typer.Context,
    source: Annotated[str, typer.Option("--from", help="Source store URL.")],
    destination: Annotated[str, typer.Option("--to", help="Destination store URL.")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="Only these logs (repeat).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy logs with their bytes, proofs and checkpoints; verify them on the destination."""
    from ..ledger.transfer import copy_log

    with errors(as_json):
        home = current_home(ctx)
        key = home.signing_key()
        src = open_store(source, home.ledger_path)
        try:
            dst = open_store(destination, home.ledger_path)
            try:
                logs = tenant or src.tenants()
                copied: dict[str, int] = {}
                for log in logs:
                    with progress_bar(src.size(log), f"copying {log}", as_json) as progress:
                        copied[log] = copy_log(src, dst, log, progress)
                checks = {log: Ledger(dst, key).verify(log) for log in logs}
            finally:
                dst.close()
        finally:
            src.close()
    ok = all(check.ok for check in checks.values())
    if as_json:
        print_json(
            {
                "copied": copied,
                "verified": {log: check.ok for log, check in checks.items()},
                "problems": {log: list(check.problems) for log, check in checks.items()},
            }
        )
    else:
        for log, count in copied.items():
            check = checks[log]
            state = styled("verified", "green") if check.ok else styled("FAILED", "bold red")
            console.print(
                line(
                    f"{log}: {count} events copied, root {check.root_hash.hex()[:16]}…, "
                    f"checkpoint at {check.checkpoint_size} ",
                    state,
                )
            )
    raise typer.Exit(EXIT_OK if ok else EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Mount this module's top-level commands on the root application."""
    app.command()(checkpoint)
    app.command()(verify)
