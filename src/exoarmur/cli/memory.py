"""``exoarmur memory`` (snapshot, recommend, recommendations, apply) and ``demo memory_snapshot``.

Registered on the root application and its ``demo`` group by ``exoarmur.cli``.
``memory apply`` is the one place a recommendation is ever applied.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import InputError
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

memory_app = typer.Typer(
    help="Defensive memory: what the log remembers, and advice (never action).",
    no_args_is_help=True,
)

TenantOption = Annotated[str, typer.Option("--tenant", "-t", help="The tenant whose log to read.")]


def _known_tenant(store: Any, tenant: str) -> None:
    from ..model.event import SYSTEM_LOG

    if tenant == SYSTEM_LOG or tenant not in store.tenants():
        raise InputError(f"--tenant: no log for tenant {tenant!r}")


def _rows(body: dict[str, Any]) -> list[tuple[str, str]]:
    outcomes, containment, posture = body["outcomes"], body["containment"], body["posture"]
    rows = [
        ("position", f"{body['position']} (through {body['through_event_id']})"),
        ("recorded", f"{body['since']} .. {body['as_of']}"),
        (
            "outcomes",
            ", ".join(f"{k} {outcomes[k]}" for k in outcomes if k != "rates"),
        ),
        ("rates", ", ".join(f"{k} {v}" for k, v in outcomes["rates"].items())),
        (
            "plans",
            f"{containment['plans']} ({containment['plans_completed']} completed, "
            f"{containment['plans_compensated']} compensated, "
            f"rate {containment['compensation_rate']})",
        ),
        (
            "controls",
            f"{containment['controls_applied']} applied, {containment['controls_expired']} "
            f"expired, {containment['controls_released_early']} released early "
            f"(reversal rate {containment['reversal_rate']})",
        ),
    ]
    for name, e in containment["effectors"].items():
        rows.append(
            (
                f"  {name}",
                f"applied {e['applied']}, expired {e['expired']}, released early "
                f"{e['released_early']}, again after expiry {e['reapplied_after_expiry']}, "
                f"max TTL {e['max_ttl_seconds']}s",
            )
        )
    for action, latency in body["approvals"].items():
        rows.append(
            (
                f"approval {action}",
                f"{latency['settled']} settled, p50 {latency['p50_ms']} ms, "
                f"max {latency['max_ms']} ms",
            )
        )
    rows.append(
        (
            "posture",
            f"{posture['current']} ({posture['changes']} change(s)); ms in "
            + ", ".join(f"{k} {v}" for k, v in posture["millis_in"].items()),
        )
    )
    for detector, d in body["detectors"].items():
        rows.append(
            (
                f"detector {detector}",
                f"{d['beliefs']} belief(s), acted on {d['acted_on']}, reverted {d['reverted']}, "
                f"rejected {d['rejected']}, precision {d['precision']}",
            )
        )
    return rows


@memory_app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    tenant: TenantOption = "default",
    at: Annotated[
        int | None, typer.Option("--at", help="Remember only the first POSITION events.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A tenant's memory (MemorySnapshotV1) up to a ledger position, with its memory_hash."""
    from ..home import open_governor
    from ..memory.room import snapshot_at

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        _known_tenant(governor.ledger.store, tenant)
        found = snapshot_at(governor.ledger.store, tenant, at)
    if as_json:
        print_json(found.to_json())
        return
    table = Table(title=f"memory of tenant {tenant}", show_header=False)
    table.add_column("measure", overflow="fold")
    table.add_column("value", overflow="fold")
    for measure, value in _rows(found.body):
        table.add_row(measure, value)
    console.print(table)
    console.print(line("memory_hash ", styled(found.memory_hash, "bold")))


@memory_app.command("recommend")
def recommend(
    ctx: typer.Context,
    tenant: TenantOption = "default",
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record the advice drawn from the tenant's memory now (once per snapshot). Applies nothing."""
    from ..home import open_governor
    from ..memory.room import record_recommendations

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        _known_tenant(governor.ledger.store, tenant)
        principal = acting_principal(governor, key_file)
        found, made, events = record_recommendations(governor, tenant, principal)
    new = {e.payload["recommendation"]["recommendation_id"] for e in events}
    if as_json:
        print_json(
            {
                "memory_hash": found.memory_hash,
                "recommendations": [
                    r.to_json() | {"new": r.recommendation_id in new} for r in made
                ],
            }
        )
        return
    for rec in made:
        state = "recorded" if rec.recommendation_id in new else "already recorded"
        console.print(line(styled(rec.recommendation_id, "bold"), f" {rec.text} ({state})"))
    console.print(f"{len(made)} recommendation(s), {len(new)} newly recorded; none applied")


@memory_app.command("recommendations")
def recommendations(
    ctx: typer.Context, tenant: TenantOption = "default", as_json: JsonFlag = False
) -> None:
    """Recommendations recorded for a tenant, and which a person applied."""
    from ..home import open_governor
    from ..memory.room import recorded

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        _known_tenant(governor.ledger.store, tenant)
        found = [r.to_json() for r in recorded(governor.ledger.store, tenant)]
    if as_json:
        print_json(found)
        return
    for rec in found:
        applied = rec["applied"]
        state = f"applied by {applied['principal']}" if applied else "not applied"
        console.print(line(styled(rec["recommendation_id"], "bold"), f" {rec['text']} ({state})"))
    console.print(f"{len(found)} recommendation(s) in {tenant}")


@memory_app.command("apply")
def apply(
    ctx: typer.Context,
    recommendation_id: Annotated[str, typer.Argument(metavar="REC_ID", help="The recommendation.")],
    reason: ReasonOption,
    tenant: TenantOption = "default",
    key_file: KeyFileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply a recorded recommendation, as the principal of your key, through the governed path."""
    from ..home import open_governor
    from ..memory.room import apply_recommendation

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        _known_tenant(governor.ledger.store, tenant)
        principal = acting_principal(governor, key_file)
        change, applied = apply_recommendation(
            governor, tenant, recommendation_id, principal, reason
        )
    if as_json:
        print_json({"change": change.to_json(), "applied": applied.to_json()})
        return
    console.print(
        line(
            f"applied {recommendation_id} as {change.type} ",
            styled(str(change.payload.get("posture")), "bold"),
            f" by {applied.payload['principal']} (event {applied.event_id})",
        )
    )


def demo_memory_snapshot(
    ctx: typer.Context,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Seeded ids and a stepped clock (seed 0).")
    ] = False,
) -> None:
    """Contain, expire, contain again; then remember and record the advice (applying none)."""
    from ..containment.demos import DEMO_TENANT, markers_text, prepare_home
    from ..home import open_governor
    from ..memory.demo import memory_snapshot

    with errors():
        home = prepare_home(current_home(ctx))
        with open_governor(home, seed=0 if deterministic else None) as governor:
            bundle = home.policy()
            if governor.policy_for(DEMO_TENANT).policy_hash != bundle.policy_hash:
                governor.activate_policy(bundle.bundle)
            markers = memory_snapshot(governor)
    sys.stdout.write(markers_text(markers))
    raise typer.Exit(0 if markers["REPLAY_VERIFIED"] == "true" else 1)


def register(app: typer.Typer, demo_app: typer.Typer) -> None:
    """Add these commands to the ``exoarmur`` application."""
    app.add_typer(memory_app, name="memory")
    demo_app.command("memory_snapshot")(demo_memory_snapshot)
