"""``exoarmur containment``, ``plan``, ``tick`` and the containment demos.

Registered on the root application and its ``demo`` group by ``exoarmur.cli``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ..containment.model import PLAN_ACTION
from ..containment.plans import door_net, parse_plan
from ..containment.room import plan_intent
from ..encoding import parse_time
from ..errors import ContainmentError, InputError
from ..jsontext import loads
from ..model.event import INTENT_RECORDED
from ._common import (
    EXIT_BAD_INPUT,
    STATUS_EXIT,
    current_home,
    errors,
    fail,
    outcome_json,
    print_json,
)
from ._streams import tenant_of_stream

containment_app = typer.Typer(help="Containment controls in force.", no_args_is_help=True)
plan_app = typer.Typer(help="Containment plans: submit, show, list.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="Tenant whose log to use.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
Deterministic = Annotated[
    bool, typer.Option("--deterministic", help="Seeded ids and a stepped clock (seed 0).")
]


def tick(
    ctx: typer.Context,
    until: Annotated[
        str | None, typer.Option("--until", help="Expire what is due by this time (ISO 8601).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Run the TTL engine once: expire and revert every control whose TTL has passed.

    It also raises the quorum of pending intents whose escalation ladder's window has
    passed, and releases intents whose referenced evidence has since arrived.
    """
    from ..home import open_governor

    with errors():
        at: datetime | None = None
        if until is not None:
            try:
                at = parse_time(until)
            except (ValueError, InputError) as exc:
                raise ContainmentError(
                    f"--until: not an ISO 8601 time with offset: {exc}"
                ) from None
        with open_governor(current_home(ctx)) as governor:
            events = governor.containment.tick(at)
            released = 0
            for tenant in governor.containment.tenants():
                events.extend(governor.escalate_due(tenant, at))
                released += len(governor.recheck_evidence(tenant))
    done = [
        {"type": e.type, "tenant": e.tenant, **e.payload}
        | ({"intent_id": e.intent_id} if e.intent_id and "control" not in e.payload else {})
        for e in events
    ]
    if as_json:
        print_json(done)
    else:
        for e in done:
            typer.echo(f"{e['type']} {e['tenant']} {e.get('control') or e.get('intent_id')}")
        if released:
            typer.echo(f"{released} intent(s) released by evidence")
        typer.echo(f"{len(done)} event(s) recorded")


@containment_app.command("status")
def status(ctx: typer.Context, tenant: Tenant = "default", as_json: Json = False) -> None:
    """What is in force, on what, since when, until when, by which intent."""
    from ..home import open_governor

    with errors(), open_governor(current_home(ctx)) as governor:
        controls = [c.to_json() for c in governor.containment.status(tenant)]
    if as_json:
        print_json(controls)
        return
    for c in controls:
        typer.echo(
            f"{c['control']}  since {c['since']}  until {c['until']}  by {c['intent_id']}"
            + (f" (plan {c['plan_id']} step {c['step']})" if c["plan_id"] else "")
        )
    typer.echo(f"{len(controls)} control(s) in force in {tenant}")


def _read_plan(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return loads(text)


@plan_app.command("submit")
def submit(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Argument(help="Plan JSON file, or - for stdin.")] = None,
    tenant: Tenant = "default",
    preset: Annotated[str | None, typer.Option("--preset", help="door-net")] = None,
    target: Annotated[
        list[str] | None, typer.Option("--target", help="kind:id (repeatable) for a preset.")
    ] = None,
    actor: Annotated[str, typer.Option("--actor", help="Who proposes the plan.")] = "local-admin",
    as_json: Json = False,
) -> None:
    """Govern a plan as a whole: policy sees every step, approvals bind to its hash."""
    from ..home import open_governor

    with errors():
        if (source is None) == (preset is None):
            fail("give a plan FILE (or -) or --preset, not both", EXIT_BAD_INPUT)
        if preset is not None:
            if preset != "door-net":
                raise ContainmentError(f"--preset: unknown preset {preset!r} (known: door-net)")
            plan = door_net(tenant, target or [])
        else:
            assert source is not None
            plan = parse_plan(_read_plan(source), tenant)
        with open_governor(current_home(ctx)) as governor:
            outcome = governor.submit(plan_intent(plan, tenant, actor))
    body = outcome_json(outcome) | {"plan_hash": plan.plan_hash, "sequence": plan.sequence}
    if as_json:
        print_json(body)
    else:
        typer.echo(f"plan {outcome.intent_id} {plan.plan_hash}")
        typer.echo(f"steps: {' -> '.join(plan.sequence)}")
        typer.echo(
            f"status: {outcome.status.value}" + (f" ({outcome.error})" if outcome.error else "")
        )
    raise typer.Exit(STATUS_EXIT[outcome.status])


@plan_app.command("show")
def show(
    ctx: typer.Context,
    plan_id: Annotated[str | None, typer.Argument(help="The plan's intent id.")] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", "-t", help="Tenant whose log to use (default, or the stream's own)."
        ),
    ] = None,
    stream_id: Annotated[
        str | None,
        typer.Option("--audit-stream-id", help="Show the plan of this audit stream instead."),
    ] = None,
    as_json: Json = False,
) -> None:
    """One plan: its hash, steps, status and every plan event."""
    from ..errors import NotFound
    from ..home import open_governor

    with errors(), open_governor(current_home(ctx)) as governor:
        if (plan_id is None) == (stream_id is None):
            raise InputError("give a PLAN_ID or --audit-stream-id, not both")
        if stream_id is not None:
            store = governor.ledger.store
            tenant = tenant_of_stream(store, tenant, stream_id)
            plans = [
                e.intent_id
                for e in store.events_for_correlation(tenant, stream_id)
                if e.type == INTENT_RECORDED and e.payload["intent"]["action"] == PLAN_ACTION
            ]
            if not plans:
                raise InputError(f"--audit-stream-id: stream {stream_id!r} holds no plan")
            plan_id = plans[-1]
        tenant = tenant or "default"
        assert plan_id is not None
        summary = governor.containment.plan_summary(tenant, plan_id)
        if summary is None:
            raise NotFound(f"no plan {plan_id} in {tenant}")
    if as_json:
        print_json(summary)
        return
    typer.echo(f"plan {plan_id} {summary['plan_hash']} {summary['status']}")
    for e in summary["events"]:
        typer.echo(f"  {e['seq']} {e['type']} step={e.get('step')} {e.get('status', '')}")


@plan_app.command("list")
def list_plans(ctx: typer.Context, tenant: Tenant = "default", as_json: Json = False) -> None:
    """Every plan of a tenant, oldest first."""
    from ..home import open_governor

    with errors(), open_governor(current_home(ctx)) as governor:
        room = governor.containment
        plans = [
            room.plan_summary(tenant, i, with_events=False) or {} for i in room.plan_ids(tenant)
        ]
    if as_json:
        print_json([{k: v for k, v in p.items() if k != "events"} for p in plans])
        return
    for p in plans:
        typer.echo(f"{p['plan_id']} {p['plan_hash']} {p['status']} {'>'.join(p['sequence'])}")


# -- demos --------------------------------------------------------------------


def _demo_home(ctx: typer.Context, fail_at: int | None = None) -> Any:
    from ..containment.demos import DOOR_NET_TARGETS, prepare_home

    home = prepare_home(current_home(ctx))
    if fail_at is not None:
        plan = door_net("acme", DOOR_NET_TARGETS)
        if not 1 <= fail_at <= len(plan.steps):
            raise ContainmentError(f"--fail-at: a step number from 1 to {len(plan.steps)}")
        step = plan.steps[fail_at - 1]
        text = home.config_path.read_text(encoding="utf-8")
        line = f'"containment.{step.effector}" = {{ type = "{step.effector}" }}'
        failing = (
            f'"containment.{step.effector}" = '
            f'{{ type = "{step.effector}", fail_on = ["{step.scope.text}"] }}'
        )
        home.config_path.write_text(text.replace(line, failing), encoding="utf-8")
    return home


def _run_demo(
    ctx: typer.Context, name: str, deterministic: bool, fail_at: int | None, **options: Any
) -> None:
    from ..containment import demos
    from ..home import open_governor

    with errors():
        home = _demo_home(ctx, fail_at)
        with open_governor(home, seed=0 if deterministic else None) as governor:
            bundle = home.policy()
            if governor.policy_for("acme").policy_hash != bundle.policy_hash:
                governor.activate_policy(bundle.bundle)
            markers = getattr(demos, name)(governor, **options)
    sys.stdout.write(demos.markers_text(markers))
    verified = markers["REPLAY_VERIFIED"] == "true" and markers.get("PACK_VERIFIED") != "false"
    raise typer.Exit(0 if verified else 1)


def demo_primitives(
    ctx: typer.Context,
    deny: Annotated[bool, typer.Option("--deny", help="The operator rejects each action.")] = False,
    approve: Annotated[bool, typer.Option("--approve", help="The operator approves each.")] = False,
    deterministic: Deterministic = False,
) -> None:
    """Three containment actions, approved or denied, then expiring on their own."""
    _run_demo(ctx, "primitives", deterministic, None, approve=not deny)


def demo_dominance_plan(
    ctx: typer.Context,
    deny: Annotated[bool, typer.Option("--deny", help="The operators reject the plan.")] = False,
    approve: Annotated[bool, typer.Option("--approve", help="Two operators approve.")] = False,
    fail_at: Annotated[
        int | None, typer.Option("--fail-at", help="Make step N fail (compensation runs).")
    ] = None,
    deterministic: Deterministic = False,
) -> None:
    """Door Net as a governed plan: approve, run, compensate on failure, expire."""
    _run_demo(ctx, "dominance_plan", deterministic, fail_at, approve=not deny)


def demo_posture_lockdown(ctx: typer.Context, deterministic: Deterministic = False) -> None:
    """Lock a tenant down with a TTL: a reversible action now needs approval."""
    _run_demo(ctx, "posture_lockdown", deterministic, None)


def demo_evidence_pack(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the pack (default: in the home)."),
    ] = None,
    deterministic: Deterministic = False,
) -> None:
    """Door Net, approved and run, then its audit stream as an evidence pack, verified offline."""
    where = out if out is not None else current_home(ctx).path / "evidence-pack.json"
    _run_demo(ctx, "evidence_pack", deterministic, None, out=where.absolute())


def register(app: typer.Typer, demo_app: typer.Typer) -> None:
    """Add these commands to the ``exoarmur`` application."""
    app.command("tick")(tick)
    app.add_typer(containment_app, name="containment")
    app.add_typer(plan_app, name="plan")
    demo_app.command("primitives")(demo_primitives)
    demo_app.command("dominance_plan")(demo_dominance_plan)
    demo_app.command("posture_lockdown")(demo_posture_lockdown)
    demo_app.command("evidence_pack")(demo_evidence_pack)
