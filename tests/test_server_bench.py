"""The HTTP load test still runs, stops by itself and reports every row.

Never asserts a time or a rate: those belong to the machine, not the code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_http.py"


@pytest.mark.slow
def test_the_quick_http_load_test_reports_every_path_and_concurrency(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPT), "--quick", "--json", "--dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {(row["path"], row["concurrency"]): row for row in report["scenarios"]}
    assert set(rows) == {
        (p, c) for p in ("health", "decided", "executed", "denied") for c in (1, 8)
    }
    for (path, concurrency), row in rows.items():
        assert row["key"] == f"{path.upper()}_C{concurrency}"
        assert 0 < row["n"] <= 40
        assert row["ops"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
    assert report["machine"]["uvicorn"]
    assert "--quick" in report["command"]
    assert list(tmp_path.iterdir()) == []  # the temporary data directory is gone
