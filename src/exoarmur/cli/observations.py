"""``exoarmur observe``, ``exoarmur shadow`` and ``exoarmur demo identity_shadow``.

Registered on the root application and its ``demo`` group by ``exoarmur.cli``.
Everything an observation carries is shown literally (:func:`visible`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import InputError, NotFound
from ..jsontext import loads
from ..model.intent import TENANT_PATTERN
from ..observations.model import MAX_DOCUMENT_BYTES, parse_batch
from ..terminal import visible
from ._common import (
    JsonFlag,
    KeyFileOption,
    ReasonOption,
    TenantOption,
    acting_principal,
    current_home,
    errors,
    print_json,
)

shadow_app = typer.Typer(
    help="Identity shadows: suspected subjects followed.", no_args_is_help=True
)

#: the detector settings a home may hold beside its configuration
DETECTORS_FILE = "detectors.json"


def _tenant(tenant: str) -> str:
    if not re.match(TENANT_PATTERN, tenant):
        raise InputError(f"--tenant: does not match the pattern {TENANT_PATTERN}")
    return tenant


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
    try:
        with open(source, "rb") as handle:
            return handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"FILE: cannot read {source}: {exc.strerror}") from None


def _detector_settings(home_path: Path) -> Any:
    path = home_path / DETECTORS_FILE
    if not path.exists():
        return None
    return loads(path.read_bytes())


def observe(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="Observations: one JSON object, a JSON list or JSON lines; - reads stdin."
        ),
    ],
    tenant: TenantOption = "default",
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record telemetry observations; detectors form beliefs, beliefs open shadows."""
    from ..home import open_governor
    from ..observations.intake import desk_of, recording_actor

    with errors(as_json):
        observations = parse_batch(_read(source))
        home = current_home(ctx)
        settings = _detector_settings(home.path)
        with open_governor(home) as governor:
            actor = recording_actor(acting_principal(governor, key_file), _tenant(tenant))
            done = desk_of(governor).record(tenant, observations, actor, settings)
    if as_json:
        print_json(
            {
                "tenant": tenant,
                "observations": [d.to_json() for d in done],
                "released": done.released,
            }
        )
        return
    for d in done:
        state = "recorded" if d.recorded else "already recorded"
        typer.echo(visible(f"{d.observation_id} {state} at {d.seq}"))
        for belief in d.beliefs:
            typer.echo(f"  belief.formed {belief}")
        for change in d.shadows:
            typer.echo(f"  {change['type']} {change['shadow_key']}")
    fresh = sum(d.recorded for d in done)
    typer.echo(f"{fresh} recorded, {len(done) - fresh} already recorded, in {tenant}")
    for intent_id in done.released:
        typer.echo(visible(f"released {intent_id}: its evidence arrived"))


def _shadow_lines(shadow: dict[str, Any]) -> list[str]:
    state = "open" if shadow["open"] else "closed"
    return [
        f"{shadow['shadow_key']} {state} plan={shadow['plan'] or '-'}",
        f"  subject: {shadow['subject']['kind']}:{shadow['subject']['id']}",
        f"  identifiers: {', '.join(shadow['identifiers'])}",
        f"  beliefs: {', '.join(shadow['belief_ids'])}",
        f"  since: {shadow['changed_at']}",
    ]


@shadow_app.command("list")
def shadow_list(
    ctx: typer.Context,
    tenant: TenantOption = "default",
    everything: Annotated[bool, typer.Option("--all", help="Closed shadows too.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Open shadows of a tenant (with --all, closed ones too)."""
    from ..home import open_governor
    from ..observations.intake import desk_of

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        shadows = [s.to_json() for s in desk_of(governor).shadows(_tenant(tenant))]
    shown = [s for s in shadows if everything or s["open"]]
    if as_json:
        print_json(shown)
        return
    for shadow in shown:
        typer.echo(visible(_shadow_lines(shadow)[0]))
    typer.echo(f"{len(shown)} shadow(s) in {tenant}")


@shadow_app.command("show")
def shadow_show(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The shadow key (shd-...).")],
    tenant: TenantOption = "default",
    as_json: JsonFlag = False,
) -> None:
    """One shadow: its subject, identifiers, beliefs and the plan made ready."""
    from ..home import open_governor
    from ..observations.intake import desk_of

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        found = desk_of(governor).log(_tenant(tenant)).shadows.shadows.get(key)
        if found is None:
            raise NotFound(f"no shadow {key!r} in tenant {tenant!r}")
        shadow = found.to_json()
    if as_json:
        print_json(shadow)
        return
    for text in _shadow_lines(shadow):
        typer.echo(visible(text))


@shadow_app.command("close")
def shadow_close(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The shadow key (shd-...).")],
    reason: ReasonOption,
    tenant: TenantOption = "default",
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Close a shadow (operators and admins): recorded with who and why."""
    from ..home import open_governor
    from ..observations.intake import desk_of

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        principal = acting_principal(governor, key_file)
        event = desk_of(governor).close(_tenant(tenant), key, principal, reason)
    if as_json:
        print_json(event.to_json())
        return
    typer.echo(visible(f"closed {key} by {event.actor['id']} (event {event.event_id})"))


@shadow_app.command("expire")
def shadow_expire(
    ctx: typer.Context, tenant: TenantOption = "default", as_json: JsonFlag = False
) -> None:
    """Close the shadows whose TTL has passed (recording observations does it too)."""
    from ..home import open_governor
    from ..observations.intake import desk_of

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        closed = desk_of(governor).expire(_tenant(tenant))
    if as_json:
        print_json([e.to_json() for e in closed])
        return
    for event in closed:
        typer.echo(f"closed {event.payload['shadow']['shadow_key']} (ttl)")
    typer.echo(f"{len(closed)} shadow(s) closed in {tenant}")


def demo_identity_shadow(
    ctx: typer.Context,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Seeded ids and a stepped clock (seed 0).")
    ] = False,
) -> None:
    """Failed logins and a new location shadow an identity; Door Net is made ready, not run."""
    from ..containment.demos import markers_text, prepare_home
    from ..home import open_governor
    from ..observations.demo import identity_shadow

    with errors():
        home = prepare_home(current_home(ctx))
        with open_governor(home, seed=0 if deterministic else None) as governor:
            bundle = home.policy()
            if governor.policy_for("acme").policy_hash != bundle.policy_hash:
                governor.activate_policy(bundle.bundle)
            markers = identity_shadow(governor)
    sys.stdout.write(markers_text(markers))
    raise typer.Exit(0 if markers["REPLAY_VERIFIED"] == "true" else 1)


def register(app: typer.Typer, demo_app: typer.Typer) -> None:
    """Add these commands to the ``exoarmur`` application."""
    app.command("observe")(observe)
    app.add_typer(shadow_app, name="shadow")
    demo_app.command("identity_shadow")(demo_identity_shadow)
