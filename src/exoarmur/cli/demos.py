"""``exoarmur demo``: runnable demonstrations."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from ..home import open_governor
from ..terminal import line, styled
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    STATUS_STYLE,
    JsonFlag,
    console,
    current_home,
    errors,
    outcome_json,
    print_json,
)

demo_app = typer.Typer(help="Runnable demonstrations.", no_args_is_help=True)


@demo_app.command("quickstart")
def demo_quickstart(
    ctx: typer.Context,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Seeded ids and a stepped clock (seed 0).")
    ] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Deterministic run with this seed.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Govern a handful of intents end to end and verify the result."""
    from ..demo import run_quickstart

    if deterministic and seed is None:
        seed = 0
    with errors(as_json):
        home = current_home(ctx)
        if not home.exists():
            home.init()
        with open_governor(home, seed=seed) as governor:
            report = run_quickstart(governor)
    markers = report.markers()
    if seed is not None:
        markers["DETERMINISTIC_SEED"] = str(seed)
    if as_json:
        print_json(
            {
                "markers": markers,
                "outcomes": [outcome_json(o) for o in report.outcomes],
                "checkpoint": report.checkpoint_note,
            }
        )
    else:
        table = Table(title="ExoArmur quickstart — tenant demo")
        for column in ("action", "target", "class", "verdict", "status", "reasons"):
            table.add_column(column, overflow="fold")
        for outcome, step in zip(report.outcomes, _scenario(), strict=True):
            style = STATUS_STYLE[outcome.status]
            table.add_row(
                step["action"],
                step["target"],
                step["safety_class"],
                outcome.decision.verdict.value,
                styled(outcome.status.value, style),
                ", ".join(outcome.decision.reasons) or "default deny",
            )
        console.print(table)
        console.print("signed checkpoint:")
        sys.stdout.flush()
        sys.stdout.write(report.checkpoint_note)
        for name, value in markers.items():
            typer.echo(f"{name}={value}")
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILURE)


def _scenario() -> tuple[dict[str, Any], ...]:
    from ..demo import SCENARIO

    return SCENARIO


@demo_app.command("wow")
def demo_wow(
    ctx: typer.Context,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Seeded ids and a stepped clock (seed 0).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """A suspicious identity contained end to end: telemetry to Door Net, then the proof."""
    from ..demo_wow import STEPS, StepResult, prepare, run_wow, summary

    width = max(len(name) for name, _ in STEPS)

    def shown(step: StepResult) -> None:
        if not as_json:
            verdict = styled("PASS", "bold green") if step.passed else styled("FAIL", "bold red")
            # one line per step, however narrow the terminal: never wrapped by rich
            console.print(line(verdict, f" {step.name:<{width}} {step.detail}"), soft_wrap=True)

    with errors(as_json):
        home = current_home(ctx)
        prepare(home)
        with open_governor(home, seed=0 if deterministic else None) as governor:
            report = run_wow(governor, home, shown=shown)
    if as_json:
        print_json(summary(report))
    else:
        command = report.verify_command()
        if report.pack_path is not None and command is not None:
            # whole lines, never wrapped: the command is meant to be copied as it is
            console.print(line("evidence pack: ", str(report.pack_path)), soft_wrap=True)
            console.print(line("verify it offline: ", command), soft_wrap=True)
        for name, value in report.markers.items():
            typer.echo(f"{name}={value}")
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILURE)
