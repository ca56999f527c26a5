"""``exoarmur verify-all``: markers read and judged, homes verified, the suite run, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.cli.demos import demo_app
from exoarmur.cli.verifyall import verdict_table
from exoarmur.errors import InputError
from exoarmur.home import Home, open_governor
from exoarmur.model.event import SYSTEM_LOG
from exoarmur.terminal import console as literal_console
from exoarmur.verifyall.markers import missing_markers, parse_markers, unstable_markers
from exoarmur.verifyall.registry import DEMOS, Demo
from exoarmur.verifyall.runs import (
    HomeRun,
    Report,
    SuiteVerdict,
    check_home,
    judge,
    run_demo,
    run_demos,
    select,
    suite_blocker,
    verify_all,
)

runner = CliRunner()
KEYS = st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True)
VALUES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)


# -- markers (pure) -------------------------------------------------------------


def test_only_whole_marker_lines_count_and_a_conflicting_repeat_is_a_finding() -> None:
    output = (
        "Intent: db.table.drop\nALPHA=1\n  BETA=indented\nlower=x\nGAMMA=\nALPHA=1\n"
        "— exoarmur.local/1 sig=\nDELTA=a=b\nALPHA=2\n"
    )
    markers, problems = parse_markers(output)
    assert markers == {"ALPHA": "1", "GAMMA": "", "DELTA": "a=b"}
    assert problems == ["marker ALPHA printed twice: '1' then '2'"]


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_markers_printed_one_per_line_read_back_as_printed(markers: dict[str, str]) -> None:
    text = "".join(f"{k}={v}\n" for k, v in markers.items())
    assert parse_markers(text) == (markers, [])


def test_a_required_marker_is_present_non_empty_and_exact_when_a_value_is_given() -> None:
    markers = {"REPLAY_VERIFIED": "false", "PLAN_HASH": "", "POSTURE": "lockdown"}
    required = ("REPLAY_VERIFIED=true", "PLAN_HASH", "POSTURE=lockdown", "MEMORY_HASH")
    assert missing_markers(required, markers) == [
        "marker REPLAY_VERIFIED: want 'true', got 'false'",
        "marker PLAN_HASH missing",
        "marker MEMORY_HASH missing",
    ]


def test_stable_markers_compare_across_homes_and_seeded_demos_compare_every_marker() -> None:
    loose = Demo("loose", ("demo", "x"), (), ("PLAN_HASH", "GONE"))
    first = {"PLAN_HASH": "a", "AUDIT_STREAM_ID": "1", "ARTIFACT_PATH": "home-1/pack.json"}
    second = {"PLAN_HASH": "b", "AUDIT_STREAM_ID": "2", "ARTIFACT_PATH": "home-2/pack.json"}
    assert unstable_markers(loose, first, second) == [
        "stable marker GONE absent in run 1 and 2",
        "marker PLAN_HASH differs between two fresh homes: 'a' vs 'b'",
    ]
    seeded = Demo("seeded", ("demo", "x"), (), (), deterministic=True)
    assert unstable_markers(seeded, first, second) == [
        "marker AUDIT_STREAM_ID differs between two fresh homes: '1' vs '2'",
        "marker PLAN_HASH differs between two fresh homes: 'a' vs 'b'",
    ]
    assert unstable_markers(seeded, first, {**first, "ARTIFACT_PATH": "/elsewhere"}) == []


# -- the registry -----------------------------------------------------------------


def test_every_registered_demo_is_an_exoarmur_demo_with_markers_to_check() -> None:
    commands = {c.name for c in typer.main.get_group(demo_app).commands.values()}
    names = [d.name for d in DEMOS]
    assert len(names) == len(set(names))
    for demo in DEMOS:
        assert demo.argv[0] == "demo"
        assert demo.argv[1] in commands, demo.name
        assert demo.required, demo.name
        assert " " not in demo.name


def test_only_an_unknown_demo_is_bad_input_naming_the_option() -> None:
    assert [d.name for d in select(["golden", "quickstart"])] == ["quickstart", "golden"]
    with pytest.raises(InputError, match="--only: unknown demo 'nope'"):
        select(["golden", "nope"])
    result = runner.invoke(app, ["verify-all", "--only", "nope", "--skip-tests"])
    assert result.exit_code == 2
    assert "--only: unknown demo 'nope'" in result.output


# -- homes and demos ----------------------------------------------------------------


def test_a_home_with_a_log_no_checkpoint_covers_is_a_finding(tmp_path: Path) -> None:
    Home(tmp_path / "home").init()
    checks, problems = check_home(tmp_path / "home")
    assert {(c.log, c.check, c.status) for c in checks} == {
        (SYSTEM_LOG, "replay verify", "UNANCHORED"),
        (SYSTEM_LOG, "verify", "UNANCHORED"),
    }
    assert problems == [
        f"exoarmur replay verify --tenant {SYSTEM_LOG}: UNANCHORED",
        f"exoarmur verify --tenant {SYSTEM_LOG}: UNANCHORED",
    ]
    assert check_home(tmp_path / "nothing")[1][0].startswith("cannot open the home's ledger")


def test_the_demos_leave_every_log_anchored(tmp_path: Path) -> None:
    from exoarmur.containment.demos import posture_lockdown
    from exoarmur.demo import run_quickstart

    for name, demo in (("quickstart", run_quickstart), ("lockdown", posture_lockdown)):
        home = Home(tmp_path / name)
        home.init()
        with open_governor(home, seed=0) as governor:
            demo(governor)
            assert governor.ledger.verify(SYSTEM_LOG).status == "VERIFIED", name


def test_a_wrong_or_unstable_marker_fails_the_demo_with_the_literal_values() -> None:
    demo = Demo(
        "lockdown_misjudged",
        ("demo", "posture_lockdown"),
        ("POSTURE=normal", "REPLAY_VERIFIED=true"),
        ("AUDIT_STREAM_ID",),
    )
    finished: list[tuple[str, int]] = []
    (verdict,) = run_demos(
        [demo], workers=2, finished=lambda d, r: finished.append((d.name, r.number))
    )
    assert sorted(finished) == [("lockdown_misjudged", 1), ("lockdown_misjudged", 2)]
    assert not verdict.passed
    assert "run 1: marker POSTURE: want 'normal', got 'lockdown'" in verdict.problems
    assert "run 2: marker POSTURE: want 'normal', got 'lockdown'" in verdict.problems
    assert any(p.startswith("marker AUDIT_STREAM_ID differs") for p in verdict.problems)
    for run in verdict.runs:
        assert {c.status for c in run.checks} == {"VERIFIED"}
    document = Report([verdict], SuiteVerdict("skipped", "--skip-tests")).to_json()
    assert document["passed"] is False
    assert document["demos"][0]["runs"][0]["markers"]["POSTURE"] == "lockdown"


def test_a_demo_that_exits_non_zero_fails_with_its_last_error_line() -> None:
    demo = Demo("broken", ("demo", "dominance_plan", "--fail-at", "9"), ("PLAN_HASH",))
    run = run_demo(demo, 1)
    assert run.exit_code == 2
    assert run.problems[0] == "exit 2: error: --fail-at: a step number from 1 to 4"
    assert "marker PLAN_HASH missing" in run.problems


def test_verify_all_runs_a_demo_twice_and_exits_zero_when_everything_holds() -> None:
    result = runner.invoke(app, ["verify-all", "--skip-tests", "--only", "golden"])
    assert result.exit_code == 0, result.output
    assert "golden (home 1)" in result.output
    assert "golden (home 2)" in result.output
    assert "AUDIT_STREAM_ID=canonical-truth-reconstruction-demo" in result.output
    assert result.output.rstrip().endswith("VERIFY_ALL=PASS")


def test_the_table_shows_what_a_demo_printed_literally() -> None:
    demo = Demo("odd", ("demo", "x"), (), ("NOTE",))
    run = HomeRun(1, 0, {"NOTE": "[bold red]forged[/]"}, (), ("marker X: got '[link]'",))
    report = Report([judge(demo, [run])], SuiteVerdict("skipped", "--skip-tests"))
    out = io.StringIO()
    screen: Console = literal_console(file=out, width=200)
    screen.print(verdict_table(report))
    assert "NOTE=[bold red]forged[/]" in out.getvalue()
    assert "marker X: got '[link]'" in out.getvalue()


# -- the test suite -----------------------------------------------------------------


def test_the_suite_needs_a_source_checkout_and_the_dev_extra(tmp_path: Path) -> None:
    assert suite_blocker(tmp_path, lambda _: True) == (
        "not a source checkout (no tests/ next to src/)"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    assert suite_blocker(tmp_path, lambda _: True) is None
    blocker = suite_blocker(tmp_path, lambda name: name != "pytest_randomly")
    assert blocker is not None
    assert "pytest_randomly missing" in blocker


def test_a_failing_suite_fails_verify_all_and_runs_in_random_order(tmp_path: Path) -> None:
    assert verify_all([], skip_tests=False, root=tmp_path).suite == SuiteVerdict(
        "skipped", "not a source checkout (no tests/ next to src/)"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n", encoding="utf-8")
    test = tmp_path / "tests" / "test_one.py"
    test.write_text("def test_one():\n    assert 1 + 1 == 3\n", encoding="utf-8")
    announced: list[bool] = []
    with (tmp_path / "out.txt").open("w", encoding="utf-8") as output:
        report = verify_all(
            [],
            skip_tests=False,
            root=tmp_path,
            before_suite=lambda: announced.append(True),
            suite_output=output,
        )
    failed = report.suite
    assert announced == [True]
    assert (failed.status, failed.holds, failed.exit_code) == ("failed", False, 1)
    assert failed.command[1:] == ("-m", "pytest", "-p", "randomly")
    assert "Using --randomly-seed" in (tmp_path / "out.txt").read_text(encoding="utf-8")
    assert not report.passed
    assert json.loads(json.dumps(report.to_json()))["tests"]["status"] == "failed"
    assert verify_all([], skip_tests=True).passed


def test_plain_pytest_keeps_file_order_and_verify_alls_command_shuffles() -> None:
    import subprocess
    import sys
    import tomllib

    root = Path(__file__).resolve().parents[1]
    options = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    addopts = options["pytest"]["ini_options"]["addopts"]
    assert addopts[addopts.index("no:randomly") - 1] == "-p"
    # ...and the option verify-all passes after it turns the plugin back on
    quiet = ("--no-cov", "-p", "no:cacheprovider", "--co")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *quiet, "-p", "randomly", "tests/test_file_modes.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Using --randomly-seed" in done.stdout


def test_verify_all_json_is_the_report_alone_on_stdout() -> None:
    result = runner.invoke(
        app, ["verify-all", "--json", "--skip-tests", "--only", "primitives_deny"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["passed"] is True
    assert document["tests"] == {
        "status": "skipped",
        "reason": "--skip-tests",
        "command": [],
        "exit_code": None,
    }
    (demo,) = document["demos"]
    assert [run["markers"]["ACTIONS_EXECUTED"] for run in demo["runs"]] == ["0", "0"]
    assert {c["status"] for run in demo["runs"] for c in run["checks"]} == {"VERIFIED"}
