"""``exoarmur webhook``: where events are delivered (``<home>/webhooks.json``), and a delivery pass.

``exoarmur serve`` delivers on its own; ``webhook deliver`` runs one pass
for a home that is not served (a cron job, a test).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError, NotFound
from ..home import open_governor
from ..terminal import line, styled
from ._common import JsonFlag, console, current_home, errors, print_json

webhook_app = typer.Typer(
    help="Webhooks: signed deliveries of approvals, decisions, executions and controls.",
    no_args_is_help=True,
)


@webhook_app.command("add")
def webhook_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for it (never reused for another URL).")],
    url: Annotated[str, typer.Option("--url", help="Where to POST (http:// or https://).")],
    secret_file: Annotated[
        str | None,
        typer.Option("--secret-file", help="File (mode 0600) holding the HMAC signing secret."),
    ] = None,
    secret_env: Annotated[
        str | None,
        typer.Option("--secret-env", help="Environment variable holding the signing secret."),
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", "-e", help="An event type to deliver (repeat; default all)."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Only this tenant's events.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="exoarmur (signed JSON) or slack (Block Kit).")
    ] = "exoarmur",
    as_json: JsonFlag = False,
) -> None:
    """Deliver events recorded from now on to URL (earlier ones are not sent)."""
    from ..integrations.webhooks import DELIVERABLE, Webhook, load, save

    home = current_home(ctx)
    with errors(as_json):
        home.require()
        hooks = load(home.path)
        if any(h.name == name for h in hooks):
            raise InputError(f"name: a webhook named {name!r} already exists")
        with open_governor(home) as governor:
            store = governor.ledger.store
            since = {log: store.size(log) for log in store.tenants()}
        hook = Webhook(
            name=name,
            url=url,
            events=tuple(event) if event else DELIVERABLE,
            fmt=fmt,
            tenant=tenant,
            secret_file=secret_file,
            secret_env=secret_env,
            since=since,
        )
        hook.secret()  # refuse a missing or readable-by-others secret now, not at delivery
        save(home.path, [*hooks, hook])
    if as_json:
        print_json(hook.to_json())
        return
    console.print(line(styled("added", "green"), f" webhook {name} -> {url}"))


@webhook_app.command("list")
def webhook_list(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """The configured webhooks (where their secrets live, never the secrets)."""
    from ..integrations.webhooks import load

    with errors(as_json):
        hooks = load(current_home(ctx).path)
    if as_json:
        print_json([h.to_json() for h in hooks])
        return
    table = Table(title=f"{len(hooks)} webhook(s)")
    for column in ("name", "url", "format", "tenant", "events"):
        table.add_column(column)
    for h in hooks:
        table.add_row(h.name, h.url, h.fmt, h.tenant or "(all)", str(len(h.events)))
    console.print(table)


@webhook_app.command("remove")
def webhook_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The webhook to stop delivering to.")],
    as_json: JsonFlag = False,
) -> None:
    """Stop delivering to a webhook (what was recorded about it stays in the ledger)."""
    from ..integrations.webhooks import load, save

    home = current_home(ctx)
    with errors(as_json):
        hooks = load(home.path)
        if not any(h.name == name for h in hooks):
            raise NotFound(f"no webhook named {name!r}")
        save(home.path, [h for h in hooks if h.name != name])
    if as_json:
        print_json({"removed": name})
        return
    console.print(line(styled("removed", "red"), f" webhook {name}"))


@webhook_app.command("deliver")
def webhook_deliver(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """One delivery pass: send what is due now, record each attempt, and exit."""
    from ..integrations.webhooks import HttpTransport, Outbox, load
    from ..server.settings import ServiceSettings

    home = current_home(ctx)
    with errors(as_json):
        home.require()
        hooks = load(home.path)
        public_url = ServiceSettings.from_config(home.config()).public_url
        with open_governor(home) as governor:
            report = Outbox(governor, hooks, HttpTransport(), public_url=public_url).deliver_due()
    counts = {k: len(v) for k, v in vars(report).items()}
    if as_json:
        print_json(counts)
        return
    console.print(
        f"delivered {counts['delivered']}, failed {counts['failed']} (will retry), "
        f"gave up {counts['gave_up']}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")
