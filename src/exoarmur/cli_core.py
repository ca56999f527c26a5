"""Commands users of ExoArmur-Core already type, on our ledger: ``exoarmur demo golden``.

Registered on the ``demo`` group by one line in ``cli``; imports the CLI's
helpers only inside the command, so the CLI can load this module freely.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer


def demo_golden(
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
    from .cli import _errors, _home
    from .demo_golden import print_golden, run_golden

    with _errors():
        run = run_golden(_home().path, out)
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
