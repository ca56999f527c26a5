"""Evidence attestation, evidence re-checks, trust scores and the trust_influence demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ._common import (
    acting_principal,
    api_key_of,
    current_home,
    errors,
    outcome_json,
    print_json,
    print_outcome,
)

trust_app = typer.Typer(help="Reliability of evidence sources and detectors.", no_args_is_help=True)

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="The tenant whose log to use.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def attest(
    ctx: typer.Context,
    intent_id: Annotated[str, typer.Argument(help="The intent whose evidence you attest.")],
    tenant: Tenant,
    note: Annotated[str, typer.Option("--note", help="What you checked (recorded).")],
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Your API key (else EXOARMUR_API_KEY).")
    ] = None,
    as_json: Json = False,
) -> None:
    """Attest an intent's evidence as an authenticated operator, then release what it meets."""
    from ..home import open_governor

    with errors(as_json):
        api_key = api_key_of(key_file)
        with open_governor(current_home(ctx)) as governor:
            principal = governor.authenticate(api_key)
            event, released = governor.attest_evidence(tenant, intent_id, principal, note)
    if as_json:
        print_json({"event_id": event.event_id, "released": [outcome_json(o) for o in released]})
        return
    typer.echo(f"attested {intent_id} as {event.payload['principal']} ({event.event_id})")
    for outcome in released:
        print_outcome(outcome)


def recheck(ctx: typer.Context, tenant: Tenant, as_json: Json = False) -> None:
    """Release the tenant's intents whose referenced evidence has since arrived."""
    from ..home import open_governor

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        released = governor.recheck_evidence(tenant)
    if as_json:
        print_json([outcome_json(o) for o in released])
        return
    typer.echo(f"released {len(released)}")
    for outcome in released:
        print_outcome(outcome)


def show(
    ctx: typer.Context,
    tenant: Tenant,
    record: Annotated[
        bool, typer.Option("--record", help="Also record the scores (trust.scored).")
    ] = False,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Record as this key's principal.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Trust per source and detector: actions that rested on it, how many were undone."""
    from ..home import open_governor

    with errors(as_json), open_governor(current_home(ctx)) as governor:
        if record:
            governor.record_trust(tenant, acting_principal(governor, key_file))
        with governor.state.lock:
            fold = governor.state.fold(tenant)
            scores = fold.evidence.trust()
            position = fold.position
    if as_json:
        print_json(
            {
                "tenant": tenant,
                "position": position,
                "scores": [s.to_canonical() | {"score": s.text} for s in scores],
            }
        )
        return
    if not scores:
        typer.echo(f"no trust history in {tenant} yet")
    for s in scores:
        # names come from recorded evidence: printed literally, never as markup
        sys.stdout.write(f"{s.kind} {s.name} score {s.text} ({s.reverted} of {s.acted} undone)\n")


def demo_trust_influence(
    ctx: typer.Context,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Seeded ids and a stepped clock (seed 0).")
    ] = False,
) -> None:
    """Low trust in a detector raises the evidence its next action needs; nothing runs."""
    from ..containment import demos, trust_demo
    from ..home import open_governor
    from .containment import _demo_home

    with errors():
        home = _demo_home(ctx, trust_demo.FAILING_STEP)
        config = home.config_path.read_text(encoding="utf-8")
        if "[gate.evidence]" not in config:
            home.config_path.write_text(config + "\n[gate.evidence]\nenforced = true\n")
        with open_governor(home, seed=0 if deterministic else None) as governor:
            bundle = home.policy()
            if governor.policy_for("acme").policy_hash != bundle.policy_hash:
                governor.activate_policy(bundle.bundle)
            markers = trust_demo.trust_influence(governor)
    sys.stdout.write(demos.markers_text(markers))
    raise typer.Exit(0 if markers["REPLAY_VERIFIED"] == "true" else 1)


def register(root: typer.Typer, evidence_app: typer.Typer, demo_app: typer.Typer) -> None:
    evidence_app.command("attest")(attest)
    evidence_app.command("recheck")(recheck)
    trust_app.command("show")(show)
    root.add_typer(trust_app, name="trust")
    demo_app.command("trust_influence")(demo_trust_influence)
