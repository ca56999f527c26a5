"""``exoarmur witness`` and ``exoarmur tiles``, and cosigning for ``exoarmur checkpoint``.

``exoarmur.cli`` mounts :data:`witness_app` and :data:`tiles_app`. Exit
codes are the ones ``exoarmur.cli`` documents (0, 1, 2).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import CheckpointError, InputError, KeyFileError
from ..ledger.checkpoint import Checkpoint
from ..ledger.keys import SigningKey, Verifier, load_signing_key, write_signing_key
from ..witness.cosignature import (
    Cosigner,
    open_cosigned,
)
from ._common import JsonFlag, console, current_home, errors, print_json
from ._cosigning import parse_witness_keys

if TYPE_CHECKING:
    pass

witness_app = typer.Typer(
    help="Witnesses (c2sp.org/tlog-witness): cosign logs' checkpoints, refuse rollbacks and forks.",
    no_args_is_help=True,
)
tiles_app = typer.Typer(
    help="A tenant's tree as static tiles (c2sp.org/tlog-tiles).", no_args_is_help=True
)

DEFAULT_LISTEN = "127.0.0.1:7380"


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
