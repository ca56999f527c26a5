"""What one run gathers, phase by phase, and the few helpers every gate shares.

A phase that raises one of the findings below leaves a problem, recorded by
name; it never crashes the run, so the gates that depend on it fail with the
reason instead.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ExoArmurError
from ..home import Home
from ..model.event import Event
from ..replay import ReplayReport
from .parent import ChildRun

#: what a broken environment or corrupted evidence raises: a finding, recorded, never a crash
FINDINGS = (
    ExoArmurError,
    OSError,
    sqlite3.Error,
    subprocess.SubprocessError,
    KeyError,
    TypeError,
    ValueError,
    StopIteration,
    IndexError,
)


@dataclass
class Run:
    """Everything one run gathers, phase by phase; a phase that fails leaves a problem."""

    out: Path
    run_id: str
    home: Home
    keys: Path
    effects: Path
    #: when the source (the scenario) says its events happened
    source_time: datetime
    problems: dict[str, str] = field(default_factory=dict)
    principals: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: list[ChildRun] = field(default_factory=list)
    durable: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    replay: ReplayReport | None = None
    bundle_passed: bool = False
    bundle_failures: list[str] = field(default_factory=list)
    logs: dict[str, list[Event]] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        try:
            yield
        except FINDINGS as exc:
            self.problems[name] = f"{type(exc).__name__}: {exc}"


def why(run: Run, *phases: str) -> str:
    found = [f"{p}: {run.problems[p]}" for p in phases if p in run.problems]
    return "; ".join(found) or "not reached (an earlier phase failed)"


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", "utf-8")


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
