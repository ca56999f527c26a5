"""The data directory and its key: ``init``, ``key``, ``health``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from ..errors import (
    ExoArmurError,
    KeyFileError,
)
from ..gate import GateConfig
from ..home import Home, open_governor
from ..ledger.keyring import key_record, rotate_key
from ..ledger.keys import SigningKey, write_signing_key
from ..model.event import POLICY_ACTIVATED, SYSTEM_LOG
from ..terminal import line, styled
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    JsonFlag,
    console,
    current_home,
    err_console,
    errors,
    print_json,
    redact_url,
)


def init(
    ctx: typer.Context,
    origin: Annotated[
        str | None,
        typer.Option(
            "--origin",
            help="The logs' origin line (checkpoints name <origin>/<tenant>); "
            "default exoarmur.local/<random>. Set once, when the key is made.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create the data directory, the signing key and a default policy."""
    made: list[str] = []
    with errors(as_json):
        home = current_home(ctx)
        try:
            home.init(origin, made)
        except OSError as exc:
            raise ExoArmurError(
                _stopped(f"cannot initialise {home.path}: {exc.strerror} ({exc.filename})", made)
            ) from None
        except ExoArmurError as exc:
            if made:
                exc.args = (_stopped(str(exc), made),)
            raise
        key = home.signing_key()
        floor = _floor_text(home.gate())
    if as_json:
        print_json(
            {
                "home": str(home.path),
                "created": made,
                "origin": key.name,
                "public_key": key.verifier_key(),
                "class_floor": floor,
            }
        )
        return
    for path in made:
        console.print(line(styled("created", "green"), f" {path}"))
    if not made:
        console.print(f"{home.path} is already initialised; nothing changed")
    console.print(f"public key: {key.verifier_key()}")
    console.print(f"class floor (approvals whatever policy says): {floor}", markup=False)


def _stopped(message: str, made: list[str]) -> str:
    """An init that failed part-way says exactly what it had made (all of it kept)."""
    if not made:
        return message
    return (
        f"{message}. init stopped after making: {', '.join(made)}; these are kept, and "
        "`exoarmur init` again (once fixed) makes only what is still missing"
    )


def _floor_text(gate: GateConfig) -> str:
    return ", ".join(f"{c.value} {n}" for c, n in sorted(gate.class_floor.items())) or "none"


key_app = typer.Typer(help="The checkpoint signing key.", no_args_is_help=True)


@key_app.command("rotate")
def key_rotate(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Replace the signing key: recorded in the system log, signed by the old key and the new.

    Checkpoints the old key signed still verify (its public key is recorded);
    the printed note, signed by both, is the one to hand to whoever holds the
    old public key.
    """
    with errors(as_json):
        home = current_home(ctx)
        home.require()
        old = home.signing_key()
        new = SigningKey.generate(old.name)
        staged = home.key_path.with_name(home.key_path.name + ".next")
        if staged.exists():
            raise KeyFileError(
                f"{staged} exists: an earlier rotation was cut short. If the key the ledger "
                f"records is that one (see `exoarmur health`), move it over {home.key_path}; "
                "otherwise remove it, then rotate again"
            )
        # The new key is on disk before the ledger names it, so a crash in
        # between leaves it next to the key file, never lost.
        write_signing_key(staged, new)
        with open_governor(home, recover=False, record_run=False) as governor:
            ledger = governor.ledger
            _, note = rotate_key(
                ledger.store,
                old,
                new,
                governor.clock,
                governor.ids,
                ledger.root,
                ledger.origin,
                home.anchors.record,
            )
            os.replace(staged, home.key_path)
    if as_json:
        print_json(
            {
                "old_public_key": old.verifier_key(),
                "new_public_key": new.verifier_key(),
                "note": note,
            }
        )
        return
    err_console.print(f"rotated: the old key {old.verifier_key()}", soft_wrap=True, markup=False)
    err_console.print(f"rotated: the new key {new.verifier_key()}", soft_wrap=True, markup=False)
    sys.stdout.write(note)


@key_app.command("public")
def key_public(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the verifier key (C2SP signed-note format) that checks checkpoints."""
    with errors(as_json):
        home = current_home(ctx)
        home.require()
        key = home.signing_key()
    if as_json:
        print_json({"origin": key.name, "public_key": key.verifier_key()})
    else:
        typer.echo(key.verifier_key())


def health(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Check the store, the key, the policy and the configuration."""
    checks: list[tuple[str, bool, str]] = []
    home = current_home(ctx)

    def check(name: str, probe: Callable[[], str]) -> None:
        try:
            checks.append((name, True, probe()))
        except Exception as exc:  # every failure is reported, not raised
            checks.append((name, False, str(exc) or type(exc).__name__))

    def probe_store() -> str:
        if home.store_url is None and not home.ledger_path.exists():
            raise ExoArmurError(f"{home.ledger_path} does not exist; run `exoarmur init`")
        store = home.open_store()
        try:
            verdict = store.integrity_check()
            if verdict != "ok":
                raise ExoArmurError(f"store integrity check: {verdict}")
            # the key the ledger records, and no log behind its last checkpoint signed here
            home.bind_ledger(store, home.signing_key(), key_record(store))
            tenants = store.tenants()
            unfinished = sum(len(store.unfinished_executions(t)) for t in tenants)
        finally:
            store.close()
        extra = f", {unfinished} unfinished execution(s)" if unfinished else ""
        where = home.store_url or str(home.ledger_path)
        return f"{redact_url(where)} ok, {len(tenants)} tenant log(s){extra}"

    def probe_home() -> str:
        home.require()
        return str(home.path)

    check("home", probe_home)
    check("signing key", lambda: home.signing_key().verifier_key())
    check("policy", lambda: _policy_in_force(home))
    check("executors", lambda: json.dumps(home.executors().describe(), sort_keys=True))
    check("store", probe_store)
    check("gate", lambda: "class floor " + _floor_text(home.gate()))
    healthy = all(ok for _, ok, _ in checks)
    warnings: list[str] = []
    try:
        lowered = home.gate().lowered_floor()
    except ExoArmurError:
        lowered = []  # an unreadable config already fails the gate check above
    if lowered:
        warnings.append(
            "class floor lowered below the default (recorded in the configuration "
            "snapshot): " + "; ".join(lowered)
        )
    if as_json:
        print_json(
            {
                "healthy": healthy,
                "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in checks],
                "warnings": warnings,
            }
        )
    else:
        table = Table(title=f"ExoArmur health — {home.path}")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for name, ok, detail in checks:
            table.add_row(name, styled("ok", "green") if ok else styled("FAIL", "bold red"), detail)
        for warning in warnings:
            table.add_row("gate", styled("WARNING", "yellow"), warning)
        console.print(table)
    raise typer.Exit(EXIT_OK if healthy else EXIT_FAILURE)


#: tenants with a bundle of their own that health names one by one
_TENANTS_SHOWN = 10


def _policy_in_force(home: Home) -> str:
    """The bundles the ledger has in force (global, and tenants' own), not the directory's.

    A ``policy/`` directory that differs from the global bundle in force is a
    warning: it decides nothing until it is activated.
    """
    store = home.open_store()
    try:
        activation = store.latest_of_type(SYSTEM_LOG, POLICY_ACTIVATED)
        own: dict[str, str] = {}
        for tenant in store.tenants():
            found = None if tenant == SYSTEM_LOG else store.latest_of_type(tenant, POLICY_ACTIVATED)
            if found is not None:
                own[tenant] = str(found.payload["policy_hash"])
    finally:
        store.close()
    if activation is None:
        raise ExoArmurError("no policy is in force; run `exoarmur policy activate DIR`")
    in_force = str(activation.payload["policy_hash"])
    parts = [f"bundle {in_force} in force"]
    shown = sorted(own.items())[:_TENANTS_SHOWN]
    parts += [f"tenant {tenant}: bundle {policy_hash}" for tenant, policy_hash in shown]
    if len(own) > _TENANTS_SHOWN:
        parts.append(f"and {len(own) - _TENANTS_SHOWN} more tenant(s) with their own bundle")
    try:
        directory = home.policy().policy_hash
    except ExoArmurError as exc:
        parts.append(f"warning: {home.policy_dir} does not load and is not in force: {exc}")
    else:
        if directory != in_force:
            parts.append(
                f"warning: {home.policy_dir} holds bundle {directory}, which is not in force "
                f"(`exoarmur policy activate {home.policy_dir}` would put it in force)"
            )
    return "; ".join(parts)


def register(app: typer.Typer) -> None:
    """Mount this module's top-level commands on the root application."""
    app.command()(init)
    app.command()(health)
