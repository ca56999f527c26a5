"""The per-backend benchmark runs on a tiny size and says what it measured (no timings asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_backends.py"


def _report(script: Path, *args: str) -> Any:
    """``script``'s JSON report, once it ran to the end."""
    result = subprocess.run(
        [sys.executable, str(script), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_backend_benchmark_produces_well_formed_rows() -> None:
    report = _report(SCRIPT, "--n", "20", "--backends", "sqlite", "--writers", "1,2")
    assert [(r["backend"], r["writers"]) for r in report["rows"]] == [("sqlite", 1), ("sqlite", 2)]
    for row in report["rows"]:
        assert row["actions"] == 20
        assert row["events"] == 80  # four events per executed action
        assert row["actions_per_s"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]


GROUP_COMMIT = SCRIPT.parent / "bench_group_commit.py"


def test_the_group_commit_benchmark_reports_each_concurrency() -> None:
    rows = _report(
        GROUP_COMMIT,
        "--backends",
        "jetstream",
        "--concurrency",
        "1,4",
        "--appends",
        "24",
        "--rounds",
        "1",
    )
    assert [(r["backend"], r["concurrency"], r["side"]) for r in rows] == [
        ("jetstream", 1, "after"),
        ("jetstream", 4, "after"),
    ]
    for row in rows:
        assert row["appends_per_s"] > 0
        assert row["per_commit"] >= 1


JETSTREAM_TYPES = SCRIPT.parent / "bench_jetstream_types.py"


def test_the_evidence_export_benchmark_counts_the_log_messages_each_side_reads() -> None:
    # against this very commit: every side runs this tree's lookups, so none reads the log
    # but the old-log side's one lay-out (copied by the same code, it has nothing to add)
    found = _report(JETSTREAM_TYPES, "--against", "HEAD", "--events", "40", "--rounds", "1")
    assert found["events"] == [40]
    for side in ("before", "after", "after, old log"):
        (run,) = found[side]
        assert run["s"] > 0
        assert run["messages"] == 0
        assert run["context"] >= 1
