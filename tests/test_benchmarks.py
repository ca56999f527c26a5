"""The pipeline benchmark still runs and says what it measured.

Never asserts a time or a ratio: those belong to the machine, not to the
code. What is checked is that every row is there, every number is a
positive number, and the floor wrote exactly the rows the pipeline wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_pipeline.py"

PATHS = ("allow", "decided", "deny")
CONCURRENCY = (1, 8)
MEASURES = ("ops", "p50_ms", "p99_ms", "p999_ms", "floor_ops", "ratio")
MACHINE = ("cpu", "cores", "python", "cedarpy", "rfc8785", "sqlite")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPT), "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


@pytest.mark.slow
def test_every_path_and_concurrency_is_reported(report: dict[str, Any]) -> None:
    rows = {(s["path"], s["concurrency"]): s for s in report["scenarios"]}
    assert set(rows) == {(p, c) for p in PATHS for c in CONCURRENCY}
    for (path, c), row in rows.items():
        assert row["key"] == f"{path.upper()}_C{c}"
        for measure in MEASURES:
            assert _positive(row[measure]), (row["key"], measure, row[measure])
        assert row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"]


@pytest.mark.slow
def test_the_floor_writes_what_the_pipeline_wrote(report: dict[str, Any]) -> None:
    for row in report["scenarios"]:
        for run in row["runs"]:
            pipeline, floor = run["pipeline"], run["floor"]
            ours, theirs = floor["rows"], pipeline["rows"]
            for count in ("events", "nodes", "idempotency"):
                assert ours[count] == theirs[count] > 0, (row["key"], count)
            assert ours["event_bytes_mean"] == pytest.approx(theirs["event_bytes_mean"], rel=0.02)
            assert floor["transactions"] == pipeline["commits"], row["key"]
            assert floor["cedar_calls"] * floor["cedar_batch"] >= row["n"], row["key"]
            for part in ("cedar_s", "hash_s", "sqlite_s", "seconds"):
                assert _positive(floor[part]), (row["key"], part)


@pytest.mark.slow
def test_the_machine_and_date_are_recorded(report: dict[str, Any]) -> None:
    assert report["n"] > 0
    assert report["date"].endswith("Z")
    assert "--quick" in report["command"]
    for field in MACHINE:
        assert report["machine"][field], field
