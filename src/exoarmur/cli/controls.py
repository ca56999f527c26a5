"""The gate's controls: ``killswitch`` and ``posture``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError
from ..home import open_governor
from ..terminal import line, styled
from ._common import (
    JsonFlag,
    KeyFileOption,
    ReasonOption,
    acting_principal,
    console,
    current_home,
    errors,
    print_json,
)

killswitch_app = typer.Typer(
    help="Kill switches: stop every matching action at once.", no_args_is_help=True
)


posture_app = typer.Typer(
    help="A tenant's posture: normal, heightened, lockdown.", no_args_is_help=True
)


ScopeOption = Annotated[
    str,
    typer.Option("--scope", help="global, tenant:T, action:PATTERN or tenant:T/action:PATTERN."),
]


@killswitch_app.command("engage")
def killswitch_engage(
    ctx: typer.Context,
    scope: ScopeOption,
    reason: ReasonOption,
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Engage a kill switch: matching actions are denied, approved ones do not run."""
    with errors(), open_governor(current_home(ctx)) as governor:
        principal = acting_principal(governor, key_file)
        event = governor.engage_killswitch(scope, reason, principal)
    if as_json:
        print_json(event.to_json())
        return
    console.print(
        line(
            styled("ENGAGED", "bold red"),
            f" {event.payload['scope']} by {event.actor['id']}: "
            f"{event.payload['reason']} (event {event.event_id})",
        )
    )


@killswitch_app.command("release")
def killswitch_release(
    ctx: typer.Context,
    scope: ScopeOption,
    reason: ReasonOption,
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Release a kill switch."""
    with errors(), open_governor(current_home(ctx)) as governor:
        principal = acting_principal(governor, key_file)
        event = governor.release_killswitch(scope, reason, principal)
    if as_json:
        print_json(event.to_json())
        return
    console.print(
        line(
            styled("released", "green"),
            f" {event.payload['scope']} by {event.actor['id']} (event {event.event_id})",
        )
    )


@killswitch_app.command("status")
def killswitch_status(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only what affects it.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Engaged kill switches. Unreadable state is an error, never 'none engaged'."""
    with errors(as_json), open_governor(current_home(ctx)) as governor:
        switches = governor.killswitches(tenant)
    if as_json:
        print_json(switches)
        return
    if not switches:
        console.print(styled("no kill switch engaged", "green"))
        return
    table = Table(title=f"{len(switches)} kill switch(es) engaged")
    for column in ("scope", "engaged by", "at", "reason"):
        table.add_column(column, overflow="fold")
    for switch in switches:
        table.add_row(
            styled(switch["scope"], "bold red"),
            switch["engaged_by"],
            switch["engaged_at"],
            switch["reason"],
        )
    console.print(table)


PostureTenantOption = Annotated[
    str | None, typer.Option("--tenant", "-t", help="The tenant.", show_default=False)
]


def _one_tenant(argument: str | None, option: str | None) -> str:
    if argument is not None and option is not None and argument != option:
        raise InputError(f"--tenant: {option!r} and the argument {argument!r} differ")
    chosen = option if option is not None else argument
    if chosen is None:
        raise InputError("--tenant: required (or give the tenant as the argument)")
    return chosen


@posture_app.command("set")
def posture_set(
    ctx: typer.Context,
    words: Annotated[
        list[str],
        typer.Argument(
            metavar="[TENANT] POSTURE",
            help="The posture: normal, heightened or lockdown (the tenant first, or --tenant).",
            show_default=False,
        ),
    ],
    reason: ReasonOption,
    tenant_option: PostureTenantOption = None,
    ttl: Annotated[
        int | None, typer.Option("--ttl", help="Seconds until it returns to normal by itself.")
    ] = None,
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Set a tenant's posture (recorded; visible to policy as context.posture)."""
    with errors(as_json):
        if tenant_option is not None and len(words) == 1:
            tenant, posture = tenant_option, words[0]
        elif tenant_option is None and len(words) == 2:
            tenant, posture = words
        else:
            raise InputError(
                "POSTURE: give the tenant with --tenant (or first) and then one posture"
            )
        with open_governor(current_home(ctx)) as governor:
            principal = acting_principal(governor, key_file)
            event = governor.set_posture(tenant, posture, reason, principal, ttl)
    if as_json:
        print_json(event.to_json())
        return
    until = event.payload["until"]
    console.print(
        line(
            f"tenant {tenant}: posture ",
            styled(posture, "bold"),
            (f" until {until}" if until else "") + f" (event {event.event_id})",
        )
    )


@posture_app.command("show")
def posture_show(
    ctx: typer.Context,
    tenant_argument: Annotated[
        str | None, typer.Argument(metavar="[TENANT]", help="The tenant (or --tenant).")
    ] = None,
    tenant_option: PostureTenantOption = None,
    as_json: JsonFlag = False,
) -> None:
    """A tenant's posture now."""
    with errors(as_json):
        tenant = _one_tenant(tenant_argument, tenant_option)
        with open_governor(current_home(ctx)) as governor:
            state = governor.posture(tenant)
    if as_json:
        print_json(state)
    else:
        console.print(
            line(
                f"tenant {tenant}: posture ",
                styled(state["posture"], "bold"),
                f" until {state['until']}" if state["until"] else "",
            )
        )
