"""``exoarmur reality``: the command, its step display and its table of gates."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ExoArmurError, InputError
from ..terminal import line, styled
from .run import new_run_id, run_reality

if TYPE_CHECKING:
    from rich.console import Console


@contextlib.contextmanager
def step_display(console: Console, quiet: bool) -> Iterator[Callable[[str], None] | None]:
    """Steps as they run: a spinner per step on a terminal, one line per step elsewhere."""
    if quiet:
        yield None
        return
    if not console.is_terminal:
        yield lambda message: console.print(line(styled("·", "dim"), f" {message}"))
        return
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(finished_text=styled("✓", "green")),
        TextColumn("{task.description}", markup=False),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: list[TaskID] = []

        def step(message: str) -> None:
            if tasks:
                bar.update(tasks[-1], completed=1)
            tasks.append(bar.add_task(message, total=1))

        yield step
        if tasks:
            bar.update(tasks[-1], completed=1)


def reality(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Evidence directory, empty or absent (default artifacts/<RUN_ID>).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """Prove it for real: kill -9, restart, replay, verify offline; prints REALITY_RESULT last."""
    from rich.table import Table

    from ..terminal import console as literal_console

    console = literal_console()
    err_console = literal_console(stderr=True)
    run_id = new_run_id()
    target = out if out is not None else Path("artifacts") / run_id
    try:
        with step_display(err_console, as_json) as progress:
            report = run_reality(target, progress=progress, run_id=run_id)
    except ExoArmurError as exc:
        err_console.print(line(styled("error:", "bold red"), f" {exc}"), soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, InputError) else 1) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    else:
        table = Table(title=f"ExoArmur reality — run {report.run_id}")
        for column in ("gate", "result", "evidence"):
            table.add_column(column, overflow="fold")
        for gate in report.gates:
            verdict = styled("PASS", "bold green") if gate.passed else styled("FAIL", "bold red")
            table.add_row(gate.name, verdict, gate.evidence)
        console.print(table)
        typer.echo(f"EVIDENCE_DIR={report.out}")
        typer.echo(f"RUN_ID={report.run_id}")
        typer.echo(f"SECONDS={report.seconds:.1f}")
        for marker in report.lines():
            typer.echo(marker)
    raise typer.Exit(0 if report.passed else 1)
