"""Running the demos in fresh homes, verifying the homes, and running the test suite.

Each demo runs as a child process of this very interpreter (``python -m
exoarmur``) in a home of its own, with no ``EXOARMUR_*`` variable inherited,
so neither the caller's home nor its store can leak in. Each home it leaves
is then checked by the same commands an operator would type: ``exoarmur
replay verify`` and ``exoarmur verify``, for every log in it. Only VERIFIED
counts: an unanchored log is a finding, like a divergence.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .markers import missing_markers, parse_markers, unstable_markers
from .registry import DEMOS, Demo

#: seconds one demo run may take before it counts as failed (two busy cores)
DEMO_TIMEOUT = 300
#: exit codes of ``exoarmur verify`` and ``exoarmur replay verify``
LOG_STATUS = {0: "VERIFIED", 1: "FAILED", 2: "BAD_INPUT", 7: "UNANCHORED"}
#: (what verify-all calls it, the arguments after ``--home HOME``, before ``--tenant LOG``)
LOG_CHECKS = (("replay verify", ("replay", "verify")), ("verify", ("verify",)))
#: the plugins the suite needs: pytest itself, random order, coverage
SUITE_PLUGINS = ("pytest", "pytest_randomly", "pytest_cov")


@dataclass(frozen=True)
class LogCheck:
    """One verifier's verdict on one log of a demo's home."""

    log: str
    check: str
    status: str


@dataclass(frozen=True)
class HomeRun:
    """One run of a demo in a fresh home: its exit, its markers, its logs' verdicts."""

    number: int
    exit_code: int | None
    markers: dict[str, str]
    checks: tuple[LogCheck, ...]
    problems: tuple[str, ...]


@dataclass(frozen=True)
class DemoVerdict:
    """A demo judged over its two runs."""

    demo: Demo
    runs: tuple[HomeRun, ...]
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.demo.name,
            "argv": list(self.demo.argv),
            "passed": self.passed,
            "problems": list(self.problems),
            "runs": [
                {
                    "run": run.number,
                    "exit_code": run.exit_code,
                    "markers": run.markers,
                    "checks": [vars(c) for c in run.checks],
                }
                for run in self.runs
            ],
        }


@dataclass(frozen=True)
class SuiteVerdict:
    """The test suite: ``passed``, ``failed`` or ``skipped`` (with why)."""

    status: str
    reason: str
    command: tuple[str, ...] = ()
    exit_code: int | None = None

    @property
    def holds(self) -> bool:
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "command": list(self.command),
            "exit_code": self.exit_code,
        }


@dataclass
class Report:
    demos: list[DemoVerdict] = field(default_factory=list)
    suite: SuiteVerdict = field(default_factory=lambda: SuiteVerdict("skipped", "not run"))

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.demos) and self.suite.holds

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "demos": [d.to_json() for d in self.demos],
            "tests": self.suite.to_json(),
        }


def child_environment() -> dict[str, str]:
    """The caller's environment without ``EXOARMUR_*``: no home, store or flag leaks in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("EXOARMUR_")}


def _exoarmur(home: Path, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exoarmur", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=child_environment(),
        timeout=timeout,
        check=False,
    )


def _logs(home: Path) -> list[str]:
    from ..home import Home

    ledger = Home(home).ledger(rollback_check=False)
    try:
        return ledger.store.tenants()
    finally:
        ledger.store.close()


def check_home(home: Path) -> tuple[tuple[LogCheck, ...], list[str]]:
    """Both verifiers on every log of ``home``; a finding for anything but VERIFIED."""
    try:
        logs = _logs(home)
    except Exception as exc:  # a home the demo did not leave whole is the finding
        return (), [f"cannot open the home's ledger: {exc}"]
    checks, problems = [], []
    for log in logs:
        for name, args in LOG_CHECKS:
            done = _exoarmur(home, [*args, "--tenant", log], DEMO_TIMEOUT)
            status = LOG_STATUS.get(done.returncode, f"exit {done.returncode}")
            checks.append(LogCheck(log, name, status))
            if status != "VERIFIED":
                problems.append(f"exoarmur {name} --tenant {log}: {status}")
    if not logs:
        problems.append("the home holds no log")
    return tuple(checks), problems


def run_demo(demo: Demo, number: int) -> HomeRun:
    """``demo`` once, in a fresh temporary home, then its home verified."""
    with tempfile.TemporaryDirectory(prefix=f"exoarmur-verify-{number}-") as scratch:
        home = Path(scratch) / "home"
        try:
            done = _exoarmur(home, demo.argv, DEMO_TIMEOUT)
        except subprocess.TimeoutExpired:
            return HomeRun(number, None, {}, (), (f"timed out after {DEMO_TIMEOUT} s",))
        markers, problems = parse_markers(done.stdout)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [""])[-1]
            problems.append(f"exit {done.returncode}" + (f": {last}" if last else ""))
        problems += missing_markers(demo.required, markers)
        checks, found = check_home(home)
        return HomeRun(number, done.returncode, markers, checks, tuple(problems + found))


def judge(demo: Demo, runs: Sequence[HomeRun]) -> DemoVerdict:
    """Each run's findings, and the stable markers compared between the two homes."""
    problems = [f"run {run.number}: {p}" for run in runs for p in run.problems]
    if len(runs) == 2:
        problems += unstable_markers(demo, runs[0].markers, runs[1].markers)
    return DemoVerdict(demo, tuple(runs), tuple(problems))


def select(names: Iterable[str] | None, demos: Sequence[Demo] = DEMOS) -> list[Demo]:
    """The demos named (all when none is), in registry order; an unknown name is an error."""
    from ..errors import InputError

    wanted = list(names or [])
    known = [d.name for d in demos]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(f"--only: unknown demo {unknown[0]!r} (known: {', '.join(known)})")
    return [d for d in demos if not wanted or d.name in wanted]


def run_demos(
    demos: Sequence[Demo],
    workers: int = 2,
    finished: Callable[[Demo, HomeRun], None] | None = None,
) -> list[DemoVerdict]:
    """Every demo twice (``workers`` runs at a time), judged in registry order."""
    jobs = [(demo, number) for demo in demos for number in (1, 2)]
    results: dict[tuple[str, int], HomeRun] = {}

    def one(job: tuple[Demo, int]) -> None:
        run = run_demo(*job)
        results[job[0].name, job[1]] = run
        if finished is not None:
            finished(job[0], run)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, jobs))
    return [judge(d, [results[d.name, 1], results[d.name, 2]]) for d in demos]


# -- the test suite -----------------------------------------------------------


def source_root() -> Path:
    """Where a source checkout would hold ``pyproject.toml`` and ``tests/``."""
    return Path(__file__).resolve().parents[3]


def suite_blocker(root: Path, have: Callable[[str], bool]) -> str | None:
    """Why the suite cannot run from ``root`` (None when it can)."""
    if not ((root / "pyproject.toml").is_file() and (root / "tests").is_dir()):
        return "not a source checkout (no tests/ next to src/)"
    absent = [name for name in SUITE_PLUGINS if not have(name)]
    if absent:
        return (
            f"the dev extra is not installed ({', '.join(absent)} missing): pip install -e '.[dev]'"
        )
    return None


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def suite_command() -> tuple[str, ...]:
    # -p randomly: random order even where a configuration turns the plugin off
    return (sys.executable, "-m", "pytest", "-p", "randomly")


def run_suite(root: Path, output: IO[str] | None = None) -> SuiteVerdict:
    """The suite in random order, with the coverage gate of its own configuration."""
    command = suite_command()
    done = subprocess.run(command, cwd=root, stdout=output, stderr=output, check=False)
    status = "passed" if done.returncode == 0 else "failed"
    return SuiteVerdict(status, f"pytest exit {done.returncode}", command, done.returncode)


def verify_all(
    demos: Sequence[Demo],
    *,
    skip_tests: bool,
    workers: int = 2,
    finished: Callable[[Demo, HomeRun], None] | None = None,
    before_suite: Callable[[], None] | None = None,
    suite_output: IO[str] | None = None,
    root: Path | None = None,
) -> Report:
    """The demos, then (unless skipped, and only where it can run) the test suite.

    ``root``: the checkout whose suite to run (default: the one this code is in).
    """
    report = Report(run_demos(demos, workers, finished))
    if skip_tests:
        report.suite = SuiteVerdict("skipped", "--skip-tests")
        return report
    root = root or source_root()
    blocker = suite_blocker(root, installed)
    if blocker is not None:
        report.suite = SuiteVerdict("skipped", blocker)
        return report
    if before_suite is not None:
        before_suite()
    report.suite = run_suite(root, suite_output)
    return report
