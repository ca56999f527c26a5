"""Replay and evidence: ``replay verify|whatif``, ``evidence export``, ``verify-bundle``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import (
    InputError,
)
from ..ledger.log import Ledger
from ..policy import PolicyBundle
from ..terminal import line, styled
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    VERDICT_EXIT,
    JsonFlag,
    TenantOption,
    console,
    current_home,
    err_console,
    errors,
    print_json,
    progress_bar,
    require_log,
)
from ._streams import tenant_of_stream

_REPLAY_VERDICT = {
    "VERIFIED": ("VERIFIED", "bold green"),
    "UNANCHORED": ("UNANCHORED", "bold yellow"),
    "FAILED": ("DIVERGED", "bold red"),
}


replay_app = typer.Typer(
    help="Re-derive decisions from the ledger alone; what-if under a candidate policy.",
    no_args_is_help=True,
)


#: ``--tenant`` where an audit stream id can name the tenant instead
StreamTenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        help="Tenant whose log to use (found from --audit-stream-id when omitted).",
    ),
]


@replay_app.command("verify")
def replay_verify(
    ctx: typer.Context,
    tenant: StreamTenantOption = None,
    correlation: Annotated[
        str | None,
        typer.Option(
            "--correlation", "--audit-stream-id", "-c", help="Only this correlation (audit stream)."
        ),
    ] = None,
    start: Annotated[int, typer.Option("--from", min=0, help="Check events from this seq.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Re-decide every recorded intent from the ledger alone and compare every field.

    Exit 0 VERIFIED, 7 UNANCHORED (it replays, but no signed checkpoint covers
    the log's end), 1 FAILED (a divergence), 2 bad input (no such tenant or stream).
    """
    from ..replay import replay

    with errors(as_json):
        if tenant is None and correlation is None:
            raise InputError("--tenant: give a tenant, or an --audit-stream-id to find it by")
        ledger = current_home(ctx).ledger()
        evidence: str | None = None
        try:
            if correlation is None:
                assert tenant is not None
                require_log(ledger.store, tenant)
            else:
                tenant = tenant_of_stream(ledger.store, tenant, correlation)
            size = ledger.size(tenant)
            with progress_bar(size, f"replaying {tenant}", as_json) as progress:
                report = replay(
                    ledger.store,
                    tenant,
                    verifier=ledger.verifier,
                    correlation=correlation,
                    start=start,
                    progress=progress,
                )
            if correlation is not None and report.verified:
                evidence = _replayed_evidence_hash(ledger, tenant, correlation)
        finally:
            ledger.store.close()
    if as_json:
        print_json(report.to_json() | ({"evidence_hash": evidence} if evidence else {}))
    else:
        verdict = styled(*_REPLAY_VERDICT[report.status])
        console.print(
            line(
                verdict,
                f" tenant {tenant}: {report.events} events, {report.intents} intents, "
                f"{report.decisions} decisions, {report.votes} votes, "
                f"{report.executions} executions",
            )
        )
        if report.first is not None:
            first = report.first
            table = Table(title="first divergence", show_header=False)
            table.add_row("event", f"seq {first.seq} {first.event_type} ({first.event_id})")
            table.add_row("intent", first.intent_id or "")
            table.add_row("field", first.field)
            table.add_row("recorded", json.dumps(first.recorded, sort_keys=True))
            table.add_row("replayed", json.dumps(first.replayed, sort_keys=True))
            table.add_row("why", first.reason)
            console.print(table)
        typer.echo(f"REPLAY_VERIFIED={str(report.verified).lower()}")
        typer.echo(f"EVENTS={report.events}")
        typer.echo(f"DECISIONS={report.decisions}")
        typer.echo(f"DIVERGENCES={len(report.divergences)}")
        typer.echo(f"ROOT_HASH={report.root_hash}")
        typer.echo(f"CHECKPOINT_VERIFIED={str(report.checkpoint_verified).lower()}")
        typer.echo(f"STATUS={report.status}")
        if evidence is not None:
            typer.echo(f"EVIDENCE_HASH={evidence}")
    raise typer.Exit(VERDICT_EXIT[report.status])


def _replayed_evidence_hash(ledger: Ledger, tenant: str, stream_id: str) -> str:
    """The stream's evidence hash, derived again from the log replay has just verified."""
    from ..evidence.pack import derive_evidence, evidence_hash, stream_events

    stream = stream_events(ledger, tenant, stream_id)
    end = max(e.seq for e in stream)
    return evidence_hash(
        derive_evidence(tenant, stream_id, stream, ledger.store.events(tenant, 0, end))
    )


@replay_app.command("whatif")
def replay_whatif(
    ctx: typer.Context,
    tenant: TenantOption,
    policy: Annotated[Path, typer.Option("--policy", help="Candidate policy directory.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only intents from this time (ISO 8601).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Which recorded decisions a candidate policy would change. Writes nothing."""
    from ..encoding import parse_time
    from ..policy import PolicyEngine
    from ..replay import whatif

    with errors(as_json):
        moment = parse_time(since) if since else None
        candidate = PolicyEngine(PolicyBundle.from_dir(policy))
        ledger = current_home(ctx).ledger()
        try:
            with progress_bar(ledger.size(tenant), "what-if", as_json) as progress:
                report = whatif(ledger.store, tenant, candidate, since=moment, progress=progress)
        finally:
            ledger.store.close()
    if as_json:
        print_json(report.to_json())
        return
    console.print(
        f"candidate {report.candidate_hash}: {len(report.changes)} of {report.intents} "
        "recorded decisions would change"
    )
    if report.changes:
        table = Table(title="changed decisions")
        for column in ("intent", "actor", "action", "target", "class", "was", "would be"):
            table.add_column(column, overflow="fold")
        for change in report.changes:
            table.add_row(
                change.intent_id,
                change.actor,
                change.action,
                change.target,
                change.safety_class,
                f"{change.old_verdict} ({', '.join(change.old_reasons) or 'default deny'})",
                line(
                    styled(change.new_verdict, "bold"),
                    f" ({', '.join(change.new_reasons) or 'default deny'})",
                ),
            )
        console.print(table)
        summary = Table(title="summary")
        summary.add_column("change")
        summary.add_column("intents", justify="right")
        for transition, count in report.summary.items():
            summary.add_row(transition, str(count))
        console.print(summary)


evidence_app = typer.Typer(
    help="Evidence bundles a cold reviewer verifies offline.", no_args_is_help=True
)


@evidence_app.command("export")
def evidence_export(
    ctx: typer.Context,
    correlation: Annotated[
        str,
        typer.Option(
            "--correlation", "--audit-stream-id", "-c", help="The correlation (audit stream) id."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the bundle (- for stdout).")
    ],
    as_json: JsonFlag = False,
    artifact: Annotated[
        list[str] | None,
        typer.Option("--artifact", help="Attach a governance artifact: TYPE or TYPE:required."),
    ] = None,
    tenant: StreamTenantOption = None,
) -> None:
    """Write one self-contained JSON bundle for a correlation."""
    from ..evidence import export_bundle
    from .core import artifact_requests

    to_stdout = str(out) == "-"
    with errors(as_json):
        wanted = artifact_requests(artifact or [])
        ledger = current_home(ctx).ledger()
        try:
            tenant = tenant_of_stream(
                ledger.store, tenant, correlation, "--correlation/--audit-stream-id"
            )
            bundle = export_bundle(ledger, tenant, correlation, wanted)
        finally:
            ledger.store.close()
        text = json.dumps(bundle, indent=2, sort_keys=True) + "\n"
        if not to_stdout:
            try:
                out.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"--out: cannot write {out}: {exc.strerror}") from None
    summary = {
        "out": str(out),
        "events": len(bundle["events"]),
        "context_events": len(bundle["context"]),
        "bundle_hash": bundle["bundle_hash"],
    }
    if to_stdout:
        # stdout is the bundle itself; what was written goes beside it
        sys.stdout.write(text)
        if not as_json:
            err_console.print(_export_line("stdout", summary), markup=False)
    elif as_json:
        print_json(summary)
    else:
        console.print(_export_line(str(out), summary), markup=False)


@evidence_app.command("pack")
def evidence_pack(
    ctx: typer.Context,
    stream_id: Annotated[
        str, typer.Option("--audit-stream-id", help="The audit stream (correlation) id.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the pack (default: standard output)."),
    ] = None,
    tenant: StreamTenantOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the evidence pack of an audit stream: observations to outcomes, with proofs."""
    from ..evidence import export_pack, pack_bytes

    with errors(as_json):
        ledger = current_home(ctx).ledger()
        try:
            tenant = tenant_of_stream(ledger.store, tenant, stream_id)
            pack = export_pack(ledger, tenant, stream_id)
        finally:
            ledger.store.close()
        data = pack_bytes(pack)
        if out is not None and str(out) != "-":
            try:
                out.write_bytes(data)
            except OSError as exc:
                raise InputError(f"--out: cannot write {out}: {exc.strerror}") from None
    chain = pack["evidence"]["chain"]
    summary = {
        "out": str(out) if out is not None and str(out) != "-" else "-",
        "tenant": tenant,
        "audit_stream_id": stream_id,
        "events": len(pack["evidence"]["events"]),
        "chain": {stage: len(ids) for stage, ids in chain.items()},
        "evidence_hash": pack["evidence_hash"],
    }
    if summary["out"] == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        if not as_json:
            err_console.print(f"EVIDENCE_HASH={pack['evidence_hash']}", markup=False)
    elif as_json:
        print_json(summary)
    else:
        stages = ", ".join(f"{n} {stage}" for stage, n in summary["chain"].items() if n)
        typer.echo(f"wrote {out}: {summary['events']} event(s) ({stages})")
        typer.echo(f"EVIDENCE_HASH={pack['evidence_hash']}")
        typer.echo(f"ARTIFACT_PATH={out}")


def _export_line(where: str, summary: dict[str, Any]) -> str:
    return (
        f"wrote {where}: {summary['events']} event(s), {summary['context_events']} context "
        f"event(s), bundle {summary['bundle_hash']}"
    )


def verify_bundle_command(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="The evidence bundle.")] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="The evidence bundle (as in ExoArmur-Core).")
    ] = None,
    public_key: Annotated[
        str | None,
        typer.Option("--public-key", help="The verifier key you trust (text, or @FILE)."),
    ] = None,
    as_json: JsonFlag = False,
    witness_key: Annotated[
        list[str] | None, typer.Option("--witness-key", help="A trusted witness's key.")
    ] = None,
    witness_quorum: Annotated[
        int | None, typer.Option("--witness-quorum", help="Cosignatures each checkpoint needs.")
    ] = None,
) -> None:
    """Verify an evidence bundle offline. Prints VERIFY_VERDICT=PASS|FAIL."""
    from ..evidence import verify_bundle_text

    with errors(as_json):
        if (file is None) == (bundle is None):
            raise InputError("give the bundle once: as FILE or as --bundle FILE")
        try:
            text = (file or bundle or Path()).read_bytes()
            if public_key is not None and public_key.startswith("@"):
                public_key = Path(public_key[1:]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from None
        from .core import artifact_enforcement, print_artifacts

        enforce = artifact_enforcement(current_home(ctx))
        verdict = verify_bundle_text(text, public_key, enforce_artifacts=enforce)
        if witness_key or witness_quorum is not None:
            from ._cosigning import require_witnesses

            require_witnesses(verdict, text, witness_key or [], witness_quorum)
    if as_json:
        print_json(verdict.to_json() | {"verify_verdict": "PASS" if verdict.passed else "FAIL"})
    else:
        for failure in verdict.failures:
            console.print(line(styled("FAIL", "bold red"), f" {failure}"))
        for note in verdict.notes:
            console.print(line(styled("note", "yellow"), f" {note}"))
        console.print(f"{verdict.events} event(s) and {verdict.decisions} decision(s) checked")
        print_artifacts(verdict)
        for intent in verdict.intents:
            # untrusted text from the bundle: echoed literally, never as markup
            typer.echo(
                f"intent {intent['intent_id']}: {intent['state']}"
                + (" (open)" if intent["open"] else "")
            )
        if verdict.evidence_hash is not None and verdict.passed:
            typer.echo(f"EVIDENCE_HASH={verdict.evidence_hash}")
        typer.echo(f"VERIFY_STORY={'COMPLETE' if verdict.complete else 'OPEN'}")
        typer.echo(f"VERIFY_VERDICT={'PASS' if verdict.passed else 'FAIL'}")
    raise typer.Exit(EXIT_OK if verdict.passed else EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Mount this module's top-level commands on the root application."""
    app.command("verify-bundle")(verify_bundle_command)
