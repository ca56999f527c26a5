"""``exoarmur demo wow``: the end-to-end story, its stable markers, and the command it prints."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.demo_wow import STEPS, posture_tightened, prepare, run_wow
from exoarmur.home import Home, open_governor
from exoarmur.verifyall.markers import parse_markers

runner = CliRunner()
STABLE = ("PLAN_HASH", "POLICY_HASH_IN_EFFECT", "EVIDENCE_HASH", "AUDIT_STREAM_ID")


def test_wow_tells_the_story_step_by_step_with_the_same_hashes_in_two_fresh_homes(
    tmp_path: Path,
) -> None:
    shown = runner.invoke(app, ["--home", str(tmp_path / "one"), "demo", "wow", "--deterministic"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    for name, _ in STEPS:
        assert any(line.startswith(f"PASS {name} ") for line in lines), name
    markers, problems = parse_markers(shown.output)
    assert problems == []
    assert markers["REPLAY_VERIFIED"] == "true"
    assert markers["ACTIONS_EXECUTED"] == "4"

    second = runner.invoke(
        app, ["--home", str(tmp_path / "two"), "demo", "wow", "--deterministic", "--json"]
    )
    assert second.exit_code == 0, second.output
    document = json.loads(second.output)
    assert document["passed"] is True
    assert {k: document["markers"][k] for k in STABLE} == {k: markers[k] for k in STABLE}
    assert document["markers"]["ARTIFACT_PATH"] != markers["ARTIFACT_PATH"]

    # the one command printed at the end verifies the evidence offline, as printed
    (command,) = [line for line in lines if line.startswith("verify it offline: ")]
    words = shlex.split(command.removeprefix("verify it offline: "))
    assert words[:2] == ["exoarmur", "verify-bundle"]
    checked = runner.invoke(app, words[1:])
    assert checked.exit_code == 0, checked.output
    assert "VERIFY_VERDICT=PASS" in checked.output


def test_without_the_tightened_posture_one_approval_would_do_and_the_story_stops(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    prepare(home)
    without_posture = tuple(step for step in STEPS if step[1] is not posture_tightened)
    with open_governor(home, seed=0) as governor:
        report = run_wow(governor, home, without_posture)
    (only,) = report.steps
    assert (only.name, only.passed) == ("door net proposed", False)
    assert "quorum 1" in only.detail
    assert not report.passed
    assert report.verify_command() is None
    assert "REPLAY_VERIFIED" not in report.markers
