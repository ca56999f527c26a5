"""The commands and markers of ExoArmur-Core's README, typed exactly as written there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.demo_golden import STREAM

ROOT = Path(__file__).resolve().parents[1]
MARKERS = [
    "DEMO_RESULT=DENIED",
    "ACTION_EXECUTED=false",
    f"AUDIT_STREAM_ID={STREAM}",
    "REPLAY_VERDICT=PASS",
]


def golden(home: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--home", str(home), "demo", "golden", *extra])
    return result.exit_code, result.stdout


def replay_hash(stdout: str) -> str:
    line = next(x for x in stdout.splitlines() if x.startswith("Proof bundle replay hash: "))
    return line.removeprefix("Proof bundle replay hash: ")


def test_demo_golden_tells_the_canonical_story(tmp_path: Path) -> None:
    code, out = golden(tmp_path / "a")
    assert code == 0, out
    lines = out.splitlines()
    for marker in MARKERS:
        assert marker in lines
    written = next(x for x in lines if x.startswith("Proof bundle written: "))
    bundle = Path(written.removeprefix("Proof bundle written: "))
    assert bundle.is_file()
    again, out_again = golden(tmp_path / "a")
    other, out_other = golden(tmp_path / "b", "--out", str(tmp_path / "b.json"))
    assert again == other == 0
    assert replay_hash(out) == replay_hash(out_again) == replay_hash(out_other)
    assert f"Proof bundle written: {tmp_path / 'b.json'}" in out_other.splitlines()
    # the written bundle is what verify-bundle accepts, given as --bundle
    check = CliRunner().invoke(app, ["verify-bundle", "--bundle", str(bundle), "--json"])
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout)["verify_verdict"] == "PASS"


def test_demo_golden_json(tmp_path: Path) -> None:
    code, out = golden(tmp_path / "h", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["markers"]["DEMO_RESULT"] == "DENIED"
    assert document["replay_hash"].startswith("sha256:")


def test_the_demo_script_runs_from_the_source_tree(tmp_path: Path) -> None:
    script = ROOT / "demos" / "canonical_truth_reconstruction_demo.py"
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for marker in MARKERS:
        assert marker in done.stdout.splitlines()
    assert (tmp_path / ".exoarmur" / "bundles" / f"{STREAM}.json").is_file()
    _, out = golden(tmp_path / "elsewhere")
    assert replay_hash(done.stdout) == replay_hash(out)


def test_verify_bundle_takes_the_file_either_way(tmp_path: Path) -> None:
    bundle = tmp_path / "b.json"
    assert golden(tmp_path / "h", "--out", str(bundle))[0] == 0
    runner = CliRunner()
    positional = runner.invoke(app, ["verify-bundle", str(bundle)])
    option = runner.invoke(app, ["verify-bundle", "--bundle", str(bundle)])
    assert positional.exit_code == option.exit_code == 0
    assert "VERIFY_VERDICT=PASS" in option.stdout.splitlines()
    assert positional.stdout == option.stdout
    both = runner.invoke(app, ["verify-bundle", str(bundle), "--bundle", str(bundle)])
    neither = runner.invoke(app, ["verify-bundle"])
    assert both.exit_code == neither.exit_code == 2
    assert "--bundle" in neither.stderr
    bundle.write_text(bundle.read_text().replace('"demo"', '"dem0"', 1))
    failed = runner.invoke(app, ["verify-bundle", "--bundle", str(bundle), "--json"])
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["verify_verdict"] == report["verdict"] == "FAIL"
