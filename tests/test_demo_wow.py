"""``exoarmur demo wow``: the end-to-end story, its stable markers, and the command it prints."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.demo_wow import (
    STEPS,
    identity_shadowed,
    posture_tightened,
    prepare,
    run_wow,
    telemetry_observed,
)
from exoarmur.home import Home, open_governor
from exoarmur.verifyall.markers import parse_markers
from exoarmur.verifyall.registry import DEMOS

runner = CliRunner()
STABLE = (
    "SHADOW_KEY",
    "PLAN_HASH",
    "POLICY_HASH_IN_EFFECT",
    "EVIDENCE_HASH",
    "MEMORY_HASH",
    "AUDIT_STREAM_ID",
    "ACTIONS_EXECUTED",
    "REPLAY_VERIFIED",
)


def test_wow_tells_the_story_step_by_step_with_the_same_hashes_in_two_fresh_homes(
    tmp_path: Path,
) -> None:
    shown = runner.invoke(app, ["--home", str(tmp_path / "one"), "demo", "wow", "--deterministic"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    # one line per step, in the order of the story, each with its verdict
    steps = [line for line in lines if line.startswith(("PASS ", "FAIL "))]
    assert len(steps) == len(STEPS)
    for line, (name, _) in zip(steps, STEPS, strict=True):
        assert line.startswith(f"PASS {name} "), (line, name)
    markers, problems = parse_markers(shown.output)
    assert problems == []
    assert set(STABLE) <= set(markers)
    assert markers["REPLAY_VERIFIED"] == "true"
    assert markers["ACTIONS_EXECUTED"] == "4"
    assert markers["SHADOW_KEY"].startswith("shd-")
    (wow,) = [demo for demo in DEMOS if demo.name == "wow"]
    assert set(wow.stable) <= set(markers)

    second = runner.invoke(
        app, ["--home", str(tmp_path / "two"), "demo", "wow", "--deterministic", "--json"]
    )
    assert second.exit_code == 0, second.output
    document = json.loads(second.output)
    assert document["passed"] is True
    assert {k: document["markers"][k] for k in STABLE} == {k: markers[k] for k in STABLE}
    assert document["markers"]["ARTIFACT_PATH"] != markers["ARTIFACT_PATH"]

    # the pack holds the whole chain, from the telemetry to the outcomes
    pack = json.loads(Path(markers["ARTIFACT_PATH"]).read_text(encoding="utf-8"))
    assert pack["evidence_hash"] == markers["EVIDENCE_HASH"]
    chain = pack["evidence"]["chain"]
    assert [len(chain[stage]) for stage in ("observations", "beliefs", "shadows")] == [7, 2, 2]
    assert all(chain[stage] for stage in ("posture", "approvals", "plan", "outcomes"))

    # the one command printed at the end verifies the pack offline, as printed
    (command,) = [line for line in lines if line.startswith("verify it offline: ")]
    words = shlex.split(command.removeprefix("verify it offline: "))
    assert words[:3] == ["exoarmur", "verify-bundle", markers["ARTIFACT_PATH"]]
    checked = runner.invoke(app, words[1:])
    assert checked.exit_code == 0, checked.output
    assert "VERIFY_VERDICT=PASS" in checked.output
    assert f"EVIDENCE_HASH={markers['EVIDENCE_HASH']}" in checked.output.splitlines()


def test_without_the_tightened_posture_one_approval_would_do_and_the_story_stops(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    prepare(home)
    without_posture = tuple(step for step in STEPS if step[1] is not posture_tightened)
    with open_governor(home, seed=0) as governor:
        report = run_wow(governor, home, without_posture)
    *before, last = report.steps
    assert [s.name for s in before] == ["telemetry observed", "belief formed", "identity shadowed"]
    assert all(s.passed for s in before)
    assert (last.name, last.passed) == ("door net proposed", False)
    assert "quorum 1" in last.detail
    assert not report.passed
    assert report.verify_command() is None
    assert "REPLAY_VERIFIED" not in report.markers


def test_without_telemetry_no_belief_is_formed_no_shadow_and_nothing_is_proposed(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    prepare(home)
    without_telemetry = tuple(step for step in STEPS if step[1] is not telemetry_observed)
    with open_governor(home, seed=0) as governor:
        report = run_wow(governor, home, without_telemetry)
        unshadowed = run_wow(governor, home, (("identity shadowed", identity_shadowed),))
        proposed = governor.ledger.store.events_for_correlation("acme", "wow-alice-two-continents")
    (only,) = report.steps
    assert (only.name, only.passed, only.detail) == (
        "belief formed",
        False,
        "no detector formed a belief",
    )
    assert [(s.passed, s.detail) for s in unshadowed.steps] == [
        (False, "no shadow follows identity:alice")
    ]
    assert proposed == []
    assert report.markers == unshadowed.markers == {}


def test_a_home_that_already_told_the_story_is_refused_at_the_first_step(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    prepare(home)
    (first,) = STEPS[:1]
    with open_governor(home, seed=0) as governor:
        assert run_wow(governor, home, (first,)).passed is False  # one step is not the story
        again = run_wow(governor, home)
    (only,) = again.steps
    assert not only.passed
    assert "7 of 7 observations were already recorded in this home" in only.detail
