"""The many-writers benchmark runs on a tiny size and reports what it measured (no timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_the_writers_benchmark_measures_each_backend_side_by_side() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_writers.py"),
            "--n",
            "5",
            "--backends",
            "sqlite,jetstream",
            "--writers",
            "1,2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["unavailable"] == {}
    assert [(r["backend"], r["writers"]) for r in report["rows"]] == [
        ("sqlite", 1),
        ("sqlite", 2),
        ("jetstream", 1),
        ("jetstream", 2),
    ]
    for row in report["rows"]:
        assert row["actions"] == 5 * row["writers"]
        assert row["events"] == 4 * row["actions"]  # every writer's tenant, all of it
        assert row["actions_per_s"] > 0
        assert row["slowest_writer_per_s"] > 0
    assert set(report["scaling"]) == {"sqlite", "jetstream"}


def test_where_scaling_stops_is_the_first_row_under_ten_percent_more() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_writers import with_scaling
    finally:
        sys.path.remove(str(BENCHMARKS))
    rows = [
        {"backend": "pg", "writers": 1, "actions_per_s": 100.0},
        {"backend": "pg", "writers": 2, "actions_per_s": 190.0},
        {"backend": "pg", "writers": 4, "actions_per_s": 200.0},
        {"backend": "js", "writers": 1, "actions_per_s": 50.0},
        {"backend": "js", "writers": 2, "actions_per_s": 100.0},
    ]
    verdicts = with_scaling(rows)
    assert verdicts["pg"] == "stops scaling at 4 writers (200/s, 2 gave 190/s)"
    assert verdicts["js"] == "still scaling at 2 writers (the most measured)"
    assert [round(r["efficiency"], 3) for r in rows] == [1.0, 0.95, 0.5, 1.0, 1.0]
