"""The ``exoarmur`` command.

Exit codes (stable, documented in the README):

    0  success; for ``submit``: allowed (executed, or decided for the caller)
    1  any other failure; nothing was acknowledged
    2  bad input (malformed intent, unknown field, bad option); nothing written
    3  ``submit``: denied (durably recorded)
    4  ``submit``: pending approval (durably recorded)
    5  ``submit``: allowed, but the executor failed or its outcome is unknown (recorded)
    6  ``serve``: stopped with executions still running after the grace
    7  ``verify`` and ``replay verify``: every check passed, but no signed
       checkpoint covers the log's end

The root callback puts a :class:`CliContext` (the home and store chosen) into
``ctx.obj``; every command group lives in its own module and reads it through
:func:`._common.current_home`, never importing this module.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .. import __version__
from . import (
    containment,
    controls,
    core,
    demos,
    homedir,
    integrations,
    intents,
    ledger,
    memory,
    observations,
    policy,
    principals,
    replay,
    report,
    service,
    trust,
    verifyall,
    webhooks,
)
from . import witness as witness_commands
from ._common import (
    EXIT_UNANCHORED,
    CliContext,
    HomeOption,
    ShellGroup,
    StoreOption,
)

__all__ = ["EXIT_UNANCHORED", "CliContext", "app", "main"]

app = typer.Typer(
    name="exoarmur",
    cls=ShellGroup,
    help="Govern what agents and automations may do, and prove it later.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Click's plain help: it wraps option names instead of cutting them in a
    # narrow terminal, and shows flags without a type.
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"exoarmur {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    home: HomeOption = None,
    store: StoreOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    ctx.obj = CliContext(home=home, store=store or None)


def _register(root: typer.Typer) -> None:
    """Every command and group, in one place (help lists them in this order)."""
    homedir.register(root)
    intents.register(root)
    ledger.register(root)
    replay.register(root)
    service.register(root)
    root.add_typer(ledger.prove_app, name="prove")
    root.add_typer(principals.principal_app, name="principal")
    root.add_typer(controls.killswitch_app, name="killswitch")
    root.add_typer(replay.replay_app, name="replay")
    root.add_typer(controls.posture_app, name="posture")
    root.add_typer(homedir.key_app, name="key")
    root.add_typer(demos.demo_app, name="demo")
    root.add_typer(replay.evidence_app, name="evidence")
    root.add_typer(ledger.db_app, name="db")
    root.add_typer(ledger.ledger_app, name="ledger")
    root.add_typer(policy.policy_app, name="policy")
    root.add_typer(witness_commands.witness_app, name="witness")
    root.add_typer(witness_commands.tiles_app, name="tiles")
    integrations.register(root)
    webhooks.register(root)
    containment.register(root, demos.demo_app)
    observations.register(root, demos.demo_app)
    memory.register(root, demos.demo_app)
    trust.register(root, replay.evidence_app, demos.demo_app)
    demos.demo_app.command("golden")(core.demo_golden)
    root.command("report")(report.report)
    verifyall.register(root)
    _register_reality(root)


def _register_reality(root: typer.Typer) -> None:
    from ..bench import benchmark
    from ..reality import reality

    root.command("reality")(reality)
    root.command("benchmark")(benchmark)


_register(app)


def main() -> None:
    app()
