"""benchmarks/bench_integrations.py: every integration measured beside its bare call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_integrations.py"


@pytest.mark.slow
def test_each_integration_is_reported_beside_the_bare_call() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--n", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["rows"]) == {
        "@governed (in process)",
        "LangChain govern_tools",
        "OpenAI Agents govern_function_tool",
        "@governed via Client (HTTP)",
    }
    for row in report["rows"].values():
        assert 0 < row["governed_p50_ms"] <= row["governed_p99_ms"]
        assert row["bare_p50_ms"] <= row["bare_p99_ms"]


def test_the_table_and_bad_options() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_integrations
    finally:
        sys.path.remove(str(SCRIPT.parent))
    row = {"bare_p50_ms": 0.1, "bare_p99_ms": 0.2, "governed_p50_ms": 5.0, "governed_p99_ms": 9.0}
    text = bench_integrations.table({"n": 3, "rows": {"x": row}})
    assert "| x | 0.100 ms | 0.200 ms | 5.00 ms | 9.00 ms | 4.90 ms |" in text
    with pytest.raises(SystemExit):
        bench_integrations.main(["--n", "0"])
