"""``exoarmur witness`` and ``exoarmur tiles``, and cosigning for ``exoarmur checkpoint``.

``exoarmur.cli`` mounts :data:`witness_app` and :data:`tiles_app`. Exit
codes are the ones ``exoarmur.cli`` documents (0, 1, 2).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from ..errors import CheckpointError, InputError, KeyFileError, QuorumNotReached
from ..ledger.checkpoint import Checkpoint, sign_checkpoint
from ..ledger.keys import SigningKey, Verifier, load_signing_key, write_signing_key
from ..ledger.log import Ledger
from ..witness.client import collect_cosignatures
from ..witness.cosignature import (
    CosignatureVerifier,
    Cosigner,
    open_cosigned,
    verify_cosignatures,
)
from ._common import JsonFlag, console, current_home, err_console, errors, print_json

if TYPE_CHECKING:
    from ..evidence.verify import BundleVerdict

witness_app = typer.Typer(
    help="Witnesses (c2sp.org/tlog-witness): cosign logs' checkpoints, refuse rollbacks and forks.",
    no_args_is_help=True,
)
tiles_app = typer.Typer(
    help="A tenant's tree as static tiles (c2sp.org/tlog-tiles).", no_args_is_help=True
)

DEFAULT_LISTEN = "127.0.0.1:7380"
#: seconds a witness has to answer one request
WITNESS_TIMEOUT = 10.0


@witness_app.command("keygen")
def witness_keygen(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the new key (mode 0600).")],
    name: Annotated[str, typer.Option("--name", help="The witness's name, e.g. example.com/w1.")],
    as_json: JsonFlag = False,
) -> None:
    """Create a witness key and print its verifier key (what logs and readers trust)."""
    with errors(as_json):
        key = SigningKey.generate(name)
        write_signing_key(file, key)
    _print_verifier(key, as_json)


@witness_app.command("public")
def witness_public(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The witness key file.")],
    as_json: JsonFlag = False,
) -> None:
    """Print the verifier key of a witness key file."""
    with errors(as_json):
        key = load_signing_key(file)
    _print_verifier(key, as_json)


def _print_verifier(key: SigningKey, as_json: bool) -> None:
    verifier_key = Cosigner(key).verifier().verifier_key()
    if as_json:
        print_json({"name": key.name, "verifier_key": verifier_key})
    else:
        typer.echo(verifier_key)


@witness_app.command("verify")
def witness_verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A cosigned checkpoint note.")],
    log_key: Annotated[str, typer.Option("--log-key", help="The log's verifier key.")],
    witness_key: Annotated[
        list[str], typer.Option("--witness-key", help="A trusted witness's key (repeatable).")
    ],
    quorum: Annotated[
        int | None, typer.Option("--quorum", help="Cosignatures needed (default: all).")
    ] = None,
) -> None:
    """Check a cosigned checkpoint offline: the log's signature and K witness cosignatures."""
    with errors():
        try:
            note = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {file}: {exc}") from None
        try:
            log = Verifier.from_string(log_key)
        except KeyFileError as exc:
            raise InputError(f"--log-key: {exc}") from None
        keys = parse_witness_keys(witness_key)
        needed = len(keys) if quorum is None else quorum
        checkpoint, found = open_cosigned(note, log, keys, needed)
    for cosignature in found:
        console.print(f"cosigned by {cosignature.witness} at {cosignature.timestamp}", markup=False)
    console.print(
        f"VERIFIED {checkpoint.origin} size {checkpoint.size} root "
        f"{checkpoint.root_hash.hex()}: {len(found)} of {needed} cosignatures needed",
        markup=False,
    )


def parse_logs(values: Sequence[str]) -> dict[str, list[Verifier]]:
    """``--log ORIGIN=VERIFIER_KEY`` options as origin → the log keys trusted for it."""
    logs: dict[str, list[Verifier]] = {}
    for value in values:
        origin, equals, vkey = value.partition("=")
        if not equals or not origin or "\n" in origin:
            raise InputError(f"--log: {value[:80]!r} is not ORIGIN=VERIFIER_KEY")
        try:
            verifier = Verifier.from_string(vkey)
        except KeyFileError as exc:
            raise InputError(f"--log: {exc}") from None
        logs.setdefault(origin, []).append(verifier)
    if not logs:
        raise InputError("--log: name at least one log (ORIGIN=VERIFIER_KEY) to witness")
    return logs


def parse_listen(value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--listen: {value[:80]!r} is not HOST:PORT")
    return host, int(port)


def parse_witness_keys(values: Sequence[str]) -> list[CosignatureVerifier]:
    keys: list[CosignatureVerifier] = []
    for value in values:
        try:
            keys.append(CosignatureVerifier.from_string(value))
        except KeyFileError as exc:
            raise InputError(f"--witness-key: {exc}") from None
    return keys


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@witness_app.command("serve")
def witness_serve(
    ctx: typer.Context,
    key: Annotated[Path, typer.Option("--key", help="The witness key file (mode 0600).")],
    log: Annotated[
        list[str],
        typer.Option("--log", help="A log to witness: ORIGIN=VERIFIER_KEY (repeatable)."),
    ],
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to listen on (port 0: any free one).")
    ] = DEFAULT_LISTEN,
    state: Annotated[
        Path, typer.Option("--state", help="The witness's record (SQLite, created if missing).")
    ] = Path("witness.db"),
) -> None:
    """Run a witness until SIGINT or SIGTERM. Prints its key and address once listening."""
    from ..witness.service import Witness, WitnessServer
    from ..witness.state import WitnessState

    with errors():
        logs = parse_logs(log)
        host, port = parse_listen(listen)
        cosigner = Cosigner(load_signing_key(key))
        record = WitnessState(state)
        try:
            witness = Witness(cosigner, logs, record, clock=lambda: int(time.time()))
            try:
                server = WitnessServer((host, port), witness)
            except OSError as exc:
                raise InputError(f"--listen: cannot listen on {listen}: {exc.strerror}") from None
            signal.signal(signal.SIGTERM, _stop)
            sys.stdout.write(
                f"witness {cosigner.verifier().verifier_key()} listening on {server.url}\n"
            )
            sys.stdout.flush()
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
        finally:
            record.close()


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


@tiles_app.command("export")
def tiles_export(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Where to write the tiles.")],
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant whose log to use.")],
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="Publish this signed (or cosigned) checkpoint note instead of a fresh one.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a tenant's checkpoint, hash tiles and entry bundles under DIR, for static hosting."""
    from ..ledger.tiles import export_tiles

    with errors(as_json):
        note = None
        if checkpoint is not None:
            try:
                note = checkpoint.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(f"--checkpoint: cannot read {checkpoint}: {exc}") from None
        ledger = current_home(ctx).ledger()
        try:
            try:
                exported = export_tiles(ledger, tenant, directory, note)
            except CheckpointError as exc:
                raise InputError(f"--checkpoint: {exc}") from None
        finally:
            ledger.store.close()
    head: Checkpoint = exported.checkpoint
    if as_json:
        print_json(
            {
                "tenant": tenant,
                "size": head.size,
                "root_hash": head.root_hash.hex(),
                "written": exported.written,
                "unchanged": exported.unchanged,
                "skipped": [str(path) for path in exported.skipped],
            }
        )
        return
    console.print(
        f"tenant {tenant}: checkpoint of {head.size} entries, root {head.root_hash.hex()}; "
        f"{exported.written} file(s) written, {exported.unchanged} unchanged",
        markup=False,
    )
    for path in exported.skipped:
        console.print(
            f"skipped {path}: an entry exceeds an entry bundle's 65535 bytes", markup=False
        )
