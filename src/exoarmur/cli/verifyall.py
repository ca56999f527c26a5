"""``exoarmur verify-all``: every demo twice in fresh homes, every home verified, the tests.

What a demo printed is untrusted here like anywhere: markers and findings are
shown literally, only the verdicts are styled.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..terminal import line, styled
from ..verifyall.registry import DEMOS, Demo
from ..verifyall.runs import HomeRun, Report, select, suite_command, verify_all
from ._common import EXIT_FAILURE, EXIT_OK, JsonFlag, console, errors, print_json

_VERDICT = {True: ("PASS", "bold green"), False: ("FAIL", "bold red")}
_SUITE = {"passed": "bold green", "failed": "bold red", "skipped": "yellow"}


def verify_all_command(
    as_json: JsonFlag = False,
    skip_tests: Annotated[
        bool, typer.Option("--skip-tests", help="Run the demos only, not the test suite.")
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Only this demo (repeatable).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Demo runs at a time.")] = 2,
) -> None:
    """Every demo twice in fresh homes, markers checked and compared, every home
    replay-verified; in a source checkout with the dev extra, the tests in random
    order with coverage. Exit 0 only if all of it holds."""
    with errors(as_json):
        demos = select(only, DEMOS)
    if as_json:
        report = verify_all(demos, skip_tests=skip_tests, workers=workers, suite_output=sys.stderr)
        print_json(report.to_json())
        raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILURE)

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("demo runs", total=2 * len(demos))

    def finished(demo: Demo, run: HomeRun) -> None:
        verdict = styled("ok", "green") if not run.problems else styled("FAIL", "bold red")
        progress.console.print(line("  ", verdict, f" {demo.name} (home {run.number})"))
        progress.advance(task)

    def before_suite() -> None:
        progress.stop()
        console.print(f"running the test suite: {' '.join(suite_words())}", markup=False)
        sys.stdout.flush()

    with progress:
        report = verify_all(
            demos,
            skip_tests=skip_tests,
            workers=workers,
            finished=finished,
            before_suite=before_suite,
        )
    console.print(verdict_table(report))
    typer.echo(f"VERIFY_ALL={'PASS' if report.passed else 'FAIL'}")
    raise typer.Exit(EXIT_OK if report.passed else EXIT_FAILURE)


def verdict_table(report: Report) -> Table:
    """One row per demo and one for the tests; what the demos printed is shown literally."""
    table = Table(title="exoarmur verify-all")
    for column in ("demo", "verdict", "stable markers", "findings"):
        table.add_column(column, overflow="fold")
    for verdict in report.demos:
        first = verdict.runs[0].markers
        stable = ", ".join(f"{k}={first.get(k, '')}" for k in verdict.demo.stable)
        table.add_row(
            line(verdict.demo.name),
            styled(*_VERDICT[verdict.passed]),
            line(stable),
            line("; ".join(verdict.problems) or "-"),
        )
    suite = report.suite
    table.add_row(
        line("tests"),
        styled(suite.status.upper(), _SUITE[suite.status]),
        line(" ".join(suite.command[1:]) if suite.command else ""),
        line(suite.reason),
    )
    return table


def suite_words() -> tuple[str, ...]:
    return ("python", *suite_command()[1:])


def register(app: typer.Typer) -> None:
    """Mount ``verify-all`` on the root application."""
    app.command("verify-all")(verify_all_command)
