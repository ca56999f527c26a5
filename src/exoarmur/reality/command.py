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
        yield lambda message: console.print(f"[dim]·[/] {message}")
        return
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
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
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
    run_id = new_run_id()
    target = out if out is not None else Path("artifacts") / run_id
    try:
        with step_display(err_console, as_json) as progress:
            report = run_reality(target, progress=progress, run_id=run_id)
    except ExoArmurError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, InputError) else 1) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    else:
        table = Table(title=f"ExoArmur reality — run {report.run_id}")
        for column in ("gate", "result", "evidence"):
            table.add_column(column, overflow="fold")
        for gate in report.gates:
            verdict = "[bold green]PASS[/]" if gate.passed else "[bold red]FAIL[/]"
            table.add_row(gate.name, verdict, gate.evidence)
        console.print(table)
        typer.echo(f"EVIDENCE_DIR={report.out}")
        typer.echo(f"RUN_ID={report.run_id}")
        typer.echo(f"SECONDS={report.seconds:.1f}")
        for line in report.lines():
            typer.echo(line)
    raise typer.Exit(0 if report.passed else 1)
