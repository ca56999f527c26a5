"""Every script in examples/ and demos/ runs as a user would run it, and says what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples").rglob("*.py")) + sorted((ROOT / "demos").rglob("*.py"))
#: what each script must print (every script must at least exit 0)
PROMISES = {
    "quickstart_replay.py": ["Replay result: success", "Failures: none"],
    "canonical_truth_reconstruction_demo.py": ["DEMO_RESULT=DENIED", "REPLAY_VERDICT=PASS"],
}


def test_every_script_has_a_promise() -> None:
    assert SCRIPTS
    assert {s.name for s in SCRIPTS} <= set(PROMISES)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_runs(script: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for promise in PROMISES[script.name]:
        assert promise in done.stdout.splitlines() or promise in done.stdout, done.stdout
