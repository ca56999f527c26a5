"""``exoarmur principal``: principals and their API keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..home import open_governor
from ..terminal import line, styled
from ._common import (
    JsonFlag,
    console,
    current_home,
    err_console,
    errors,
    print_json,
)

principal_app = typer.Typer(
    help="Principals (operators, agents, auditors, admins) and their API keys.",
    no_args_is_help=True,
)


@principal_app.command("add")
def principal_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal's name (its identity).")],
    role: Annotated[str, typer.Option("--role", help="agent, operator, auditor or admin.")],
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="A tenant it acts for (repeat).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a principal and print its API key once (it is stored hashed)."""
    with errors(as_json), open_governor(current_home(ctx)) as governor:
        principal, api_key = governor.add_principal(name, role, tenant or [])
    if as_json:
        print_json(
            {
                "name": principal.name,
                "role": principal.role,
                "tenants": list(principal.tenants),
                "key_id": principal.key_id,
                "api_key": api_key,
            }
        )
        return
    # Only the key goes to stdout, so `exoarmur principal add … > alice.key` works.
    err_console.print(
        line(
            styled("created", "green"),
            f" {principal.role} ",
            styled(principal.name, "bold"),
            f" for {', '.join(principal.tenants)}; API key (shown once; store it now):",
        )
    )
    typer.echo(api_key)


@principal_app.command("list")
def principal_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List principals (never their keys)."""
    with errors(as_json), open_governor(current_home(ctx)) as governor:
        everyone = governor.principals().all()
    if as_json:
        print_json(
            [
                {
                    "name": p.name,
                    "role": p.role,
                    "tenants": list(p.tenants),
                    "key_id": p.key_id,
                    "active": active,
                }
                for p, active in everyone
            ]
        )
        return
    table = Table(title=f"{len(everyone)} principal(s)")
    for column in ("name", "role", "tenants", "key id", "state"):
        table.add_column(column)
    for p, active in everyone:
        state = styled("active", "green") if active else styled("revoked", "red")
        table.add_row(p.name, p.role, ", ".join(p.tenants), p.key_id, state)
    console.print(table)


@principal_app.command("revoke")
def principal_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal to revoke.")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a principal: its key stops working at once."""
    with errors(as_json), open_governor(current_home(ctx)) as governor:
        governor.revoke_principal(name)
    if as_json:
        print_json({"revoked": name})
        return
    console.print(line(styled("revoked", "red"), f" {name}"))


@principal_app.command("rotate")
def principal_rotate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal whose API key to replace.")],
    grace: Annotated[
        int,
        typer.Option(
            "--grace",
            help="Seconds the old key keeps working (0: it stops now).",
            min=0,
        ),
    ] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Issue a new API key (printed once); the old key stops at a recorded time."""
    with errors(as_json), open_governor(current_home(ctx)) as governor:
        event, api_key = governor.rotate_principal_key(name, grace_seconds=grace)
    payload = event.payload
    if as_json:
        print_json(
            {
                "name": name,
                "key_id": payload["key_id"],
                "old_key_id": payload["old_key_id"],
                "old_key_stops_at": payload["old_key_stops_at"],
                "api_key": api_key,
            }
        )
        return
    # Only the key goes to stdout, so `exoarmur principal rotate … > alice.key` works.
    err_console.print(
        line(
            styled("rotated", "green"),
            " ",
            styled(name, "bold"),
            f": old key {payload['old_key_id']} stops at {payload['old_key_stops_at']}; "
            "new API key (shown once; store it now):",
        )
    )
    typer.echo(api_key)


@principal_app.command("bind-slack")
def principal_bind_slack(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The principal the Slack user votes as.")],
    slack_user: Annotated[str, typer.Argument(help="The Slack user id (U... or W...).")],
    as_json: JsonFlag = False,
) -> None:
    """Let a Slack user's Approve / Reject clicks count as this principal's votes (recorded)."""
    from ..integrations.slack import SlackBindings

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        SlackBindings(governor).bind(name, slack_user, "local-admin")
    if as_json:
        print_json({"principal": name, "slack_user": slack_user})
        return
    console.print(line(styled("bound", "green"), f" Slack user {slack_user} to {name}"))


@principal_app.command("unbind-slack")
def principal_unbind_slack(
    ctx: typer.Context,
    slack_user: Annotated[str, typer.Argument(help="The Slack user id to unbind.")],
    as_json: JsonFlag = False,
) -> None:
    """Stop a Slack user's clicks from counting as anyone's votes (recorded)."""
    from ..integrations.slack import SlackBindings

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        SlackBindings(governor).unbind(slack_user, "local-admin")
    if as_json:
        print_json({"unbound": slack_user})
        return
    console.print(line(styled("unbound", "red"), f" Slack user {slack_user}"))
