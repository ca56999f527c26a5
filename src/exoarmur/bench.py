"""``exoarmur benchmark``: run the benchmark suite of a source checkout with this Python.

The measurements live beside the code they measure, in ``benchmarks/`` of
the repository (``bench_suite.py`` and the scripts it drives), not in the
installed package: they create scratch data directories, virtual
environments for the peers, and a README table. This command only finds the
suite, hands it the options and runs it as a child process with the same
interpreter, so that its measurements never share a process (or a warmed-up
cache) with the command line. The exit code is the suite's: 0 ran, 1 failed
(for ``--determinism-load``: more than one distinct root), 2 bad options.

It must never measure anything itself, and never decide anything from a time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

SCRIPTS_ENV = "EXOARMUR_BENCHMARKS"
SUITE = "bench_suite.py"


@dataclass(frozen=True)
class SuiteOptions:
    """The options of one suite run, as the command line gave them."""

    quick: bool = False
    only: str | None = None
    as_json: bool = False
    plot: Path | None = None
    no_peers: bool = False
    write_readme: bool = False
    sizes: tuple[str, ...] = field(default_factory=tuple)
    budget: float | None = None
    repeat: int | None = None
    directory: Path | None = None
    memory_dir: Path | None = None
    peers_dir: Path | None = None
    determinism_load: bool = False
    runs: int | None = None
    concurrency: int | None = None

    def argv(self) -> list[str]:
        """The suite's own command-line arguments for these options."""
        args: list[str] = []
        flags = (
            (self.quick, "--quick"),
            (self.as_json, "--json"),
            (self.no_peers, "--no-peers"),
            (self.write_readme, "--write-readme"),
            (self.determinism_load, "--determinism-load"),
        )
        args += [flag for on, flag in flags if on]
        valued: tuple[tuple[str, object | None], ...] = (
            ("--only", self.only),
            ("--plot", self.plot),
            ("--budget", self.budget),
            ("--repeat", self.repeat),
            ("--dir", self.directory),
            ("--memory-dir", self.memory_dir),
            ("--peers-dir", self.peers_dir),
            ("--runs", self.runs),
            ("--concurrency", self.concurrency),
        )
        for name, value in valued:
            if value is not None:
                args += [name, str(value)]
        for size in self.sizes:
            args += ["--size", size]
        return args


def find_suite(scripts: Path | None = None) -> Path:
    """The suite script: in ``scripts``, else ``$EXOARMUR_BENCHMARKS``, else the checkout's."""
    candidates = []
    if scripts is not None:
        candidates.append(scripts)
    elif os.environ.get(SCRIPTS_ENV):
        candidates.append(Path(os.environ[SCRIPTS_ENV]))
    else:
        # src/exoarmur/bench.py -> the repository root is three levels up
        candidates.append(Path(__file__).resolve().parents[2] / "benchmarks")
    for folder in candidates:
        if (folder / SUITE).is_file():
            return folder / SUITE
    raise FileNotFoundError(
        f"no benchmark suite ({SUITE}) in {candidates[0]}: the benchmarks live in the "
        f"source repository's benchmarks/ folder; run from a checkout, or pass --scripts DIR "
        f"(or set {SCRIPTS_ENV})"
    )


def run_suite(suite: Path, argv: list[str]) -> int:
    """Run the suite with this interpreter; its stdout is relayed when ours is not a terminal."""
    command = [sys.executable, str(suite), *argv]
    if sys.stdout.isatty():
        return subprocess.call(command)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stdout.flush()
    return done.returncode


def benchmark(
    quick: Annotated[
        bool, typer.Option("--quick", help="Tiny sizes (seconds, for tests).")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help=(
                "Measurements to run: pipeline,approvals,containment,replay,evidence,memory,peers."
            ),
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Draw latency distributions and throughput (matplotlib)."),
    ] = None,
    no_peers: Annotated[
        bool,
        typer.Option("--no-peers", help="Skip the peers (no virtual environments, no installs)."),
    ] = False,
    write_readme: Annotated[
        bool, typer.Option("--write-readme", help="Regenerate the tables in benchmarks/README.md.")
    ] = False,
    size: Annotated[
        list[str] | None,
        typer.Option("--size", help="Override one size, NAME=N (e.g. replay_events=20000)."),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option("--budget", help="Seconds each long measurement may run before it stops."),
    ] = None,
    repeat: Annotated[int | None, typer.Option("--repeat", help="Pipeline runs per row.")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where durable ledgers go (default TMPDIR).")
    ] = None,
    memory_dir: Annotated[
        Path | None, typer.Option("--memory-dir", help="Where memory runs' ledgers go.")
    ] = None,
    peers_dir: Annotated[
        Path | None, typer.Option("--peers-dir", help="Peers' virtual environments (reused).")
    ] = None,
    determinism_load: Annotated[
        bool,
        typer.Option(
            "--determinism-load",
            help="N fresh deterministic runs with C concurrent submitters; STATUS: PASS|FAIL.",
        ),
    ] = False,
    runs: Annotated[int | None, typer.Option("--runs", help="Determinism load: runs.")] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Determinism load: submitters.")
    ] = None,
    scripts: Annotated[
        Path | None,
        typer.Option("--scripts", help=f"Folder holding {SUITE} (default: the checkout's)."),
    ] = None,
) -> None:
    """Benchmark ExoArmur beside its floors and its peers, in one run, as ratios."""
    try:
        suite = find_suite(scripts)
    except FileNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    options = SuiteOptions(
        quick=quick,
        only=only,
        as_json=as_json,
        plot=plot,
        no_peers=no_peers,
        write_readme=write_readme,
        sizes=tuple(size or ()),
        budget=budget,
        repeat=repeat,
        directory=directory,
        memory_dir=memory_dir,
        peers_dir=peers_dir,
        determinism_load=determinism_load,
        runs=runs,
        concurrency=concurrency,
    )
    code = run_suite(suite, options.argv())
    if code != 0:
        raise typer.Exit(code)


__all__ = ["SuiteOptions", "benchmark", "find_suite", "run_suite"]
