"""Commands users of ExoArmur-Core already type, on our ledger: ``exoarmur demo golden``.

Also the pieces ``verify-bundle`` and ``evidence export`` use for governance
artifacts. Registered on the ``demo`` group by ``cli``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..home import Home
from ._common import current_home, errors

if TYPE_CHECKING:
    from ..evidence.verify import BundleVerdict


def demo_golden(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where to write the proof bundle (default <home>/bundles/STREAM.json).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """The canonical story: an action denied, its audit trail, a proof bundle written, verified."""
    from ..demo_golden import print_golden, run_golden

    with errors(as_json):
        run = run_golden(current_home(ctx), out)
    if as_json:
        document = {
            "markers": run.markers(),
            "bundle": str(run.bundle_path),
            "replay_hash": run.replay_hash,
            "audit_trail": list(run.audit_trail),
        }
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        print_golden(run)
    raise typer.Exit(0 if run.passed else 1)


def artifact_requests(values: list[str]) -> list[tuple[str, bool]]:
    """``--artifact TYPE`` (optional) or ``TYPE:required``, as (type, required_for_verdict)."""
    from ..errors import InputError

    wanted = []
    for value in values:
        kind, _, mode = value.partition(":")
        if mode not in ("", "required", "optional"):
            raise InputError(f"--artifact {value}: write TYPE, TYPE:required or TYPE:optional")
        wanted.append((kind, mode == "required"))
    return wanted


def artifact_enforcement(home: Home) -> bool:
    """On when the flag says so, else when the home (if there is one) configures it."""
    import os

    from ..evidence.artifacts import ENFORCEMENT_FLAG, enforcement_enabled

    if os.environ.get(ENFORCEMENT_FLAG, "").strip():
        return enforcement_enabled(os.environ, {})  # the flag decides; no home is read
    settings = home.evidence() if home.config_path.exists() else {}
    return enforcement_enabled(os.environ, {"evidence": settings})


def print_artifacts(verdict: BundleVerdict) -> None:
    """One line per governance artifact; its text comes from the bundle, so echoed literally."""
    report = verdict.artifacts
    if not report.present:
        return
    typer.echo(f"governance artifacts ({'enforced' if report.enforced else 'reported only'}):")
    for check in report.artifacts:
        hashed = {None: "not checked", True: "match", False: "MISMATCH"}[check.hash_match]
        typer.echo(
            f"  {check.artifact_type} v{check.schema_version}"
            f" ({'required' if check.required else 'optional'}):"
            f" present={str(check.present).lower()}, hash {hashed},"
            f" provider {'available' if check.provider else 'MISSING'},"
            f" semantic {check.semantic}"
            + (f" — {'; '.join(check.reasons)}" if check.reasons else "")
        )
