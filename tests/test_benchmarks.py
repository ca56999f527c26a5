"""The benchmarks still run and say what they measured.

Never asserts a time or a ratio: those belong to the machine, not to the
code. What is checked is that every row is there, every number is a
positive number, the floor wrote exactly the rows the pipeline wrote,
stamped histories replay without a divergence, and the determinism load
finds one root. Peers are never installed here (``--no-peers``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from exoarmur.bench import SCRIPTS_ENV, SuiteOptions, benchmark, find_suite

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


# -- `exoarmur benchmark`: the suite, through the command -----------------------------

BENCHMARK = typer.Typer()
BENCHMARK.command()(benchmark)
runner = CliRunner()


def _run(*args: str) -> Result:
    """The command in this process (so bench.py is covered); the suite runs as its child."""
    return runner.invoke(BENCHMARK, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    where = tmp_path_factory.mktemp("suite")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONWARNINGS", "error")
        result = _run(
            "--quick", "--no-peers", "--json", "--dir", str(where), "--memory-dir", str(where)
        )
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def _positive_numbers(where: str, values: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        assert _positive(values[key]), (where, key, values.get(key))


@pytest.mark.slow
def test_the_suite_reports_every_measurement(suite: dict[str, Any]) -> None:
    results = suite["results"]
    assert set(results) == {
        "pipeline",
        "approvals",
        "containment",
        "replay",
        "evidence",
        "memory",
        "peers",
    }
    assert suite["quick"] is True
    assert suite["command"].startswith("exoarmur benchmark")
    for field in MACHINE:
        assert suite["machine"][field], field
    rows = {(s["path"], s["concurrency"]) for s in results["pipeline"]["scenarios"]}
    allow = {("allow", c) for c in (1, 8, 32, 64)}
    assert rows == allow | {("deny", 1), ("deny", 8)}
    for row in results["pipeline"]["scenarios"]:
        _positive_numbers(row["key"], row, MEASURES)
    approvals = results["approvals"]
    _positive_numbers("approvals", approvals, ("flows_per_s", "p50_ms", "p99_ms", "p999_ms"))
    assert approvals["events_in_log"] == 8 * (approvals["n"] + 3)  # 8 events a flow, 3 warm-ups


FLOWS = ("per_s", "p50_ms", "p99_ms", "p999_ms", "events_per_flow")


@pytest.mark.slow
def test_door_net_is_measured_beside_four_single_actions(suite: dict[str, Any]) -> None:
    containment = suite["results"]["containment"]
    plan = containment["door_net"]
    _positive_numbers("door net", plan, FLOWS)
    assert plan["steps"] == 4
    assert plan["votes"] == 2  # two operators approve in the loop
    singles = containment["singles"]
    assert list(singles) == [
        "revoke_sessions",
        "isolate_endpoint",
        "rate_limit",
        "disable_workload",
    ]
    for name, row in singles.items():
        _positive_numbers(name, row, FLOWS)
        assert row["n"] == plan["n"] == suite["sizes"]["containment_n"]
        assert row["votes"] == (2 if name in ("isolate_endpoint", "disable_workload") else 0)
        assert row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"]
    # the plan runs its four steps, each recorded: more events than any single action
    assert plan["events_per_flow"] > max(row["events_per_flow"] for row in singles.values())


def test_the_containment_rows_are_rendered(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_suite import key_values, sections
    finally:
        sys.path.pop(0)
    row = {"per_s": 12.5, "p50_ms": 70.0, "p99_ms": 90.0, "p999_ms": 95.0, "votes": 2}
    containment = {
        "door_net": row | {"steps": 4, "events_per_flow": 18.0},
        "singles": {"rate_limit": row | {"votes": 0, "events_per_flow": 4.0}},
    }
    report = {"results": {"containment": containment}}
    [(title, _, rows)] = sections(report)
    assert title.startswith("Containment")
    assert rows[0][:4] == ["Door Net plan (4 steps)", "2", "18.0", "12.5"]
    assert rows[1][0] == "single rate_limit"
    assert "CONTAINMENT_DOOR_NET_PER_S=12.50" in key_values({"date": "d", **report}, [])


@pytest.mark.slow
def test_replay_and_evidence_are_measured_beside_their_floor(suite: dict[str, Any]) -> None:
    replay = suite["results"]["replay"]
    assert replay["complete"] is True
    assert replay["divergences"] == 0
    assert replay["checkpoint_verified"] is True
    assert replay["events_replayed"] == replay["events_in_log"] >= suite["sizes"]["replay_events"]
    assert replay["floor"]["root_hash"] == replay["root_hash"]
    assert len(replay["tenths_events_per_s"]) == 10
    _positive_numbers("replay", replay, ("events_per_s", "floor_events_per_s", "ratio"))
    evidence = suite["results"]["evidence"]
    assert evidence["passed"] is True
    assert evidence["bundle_events"] == evidence["events_in_log"]
    _positive_numbers("evidence", evidence, ("export_s", "verify_s", "bundle_bytes"))


@pytest.mark.slow
def test_memory_is_sampled_through_the_run(suite: dict[str, Any]) -> None:
    for what, measured in suite["results"]["memory"].items():
        assert measured["complete"] is True, what
        assert set(measured["rss_mib"]) == {str(p) for p in range(10, 101, 10)}, what
        for value in (*measured["rss_mib"].values(), measured["peak_mib"]):
            assert _positive(value), what
        assert measured["flat"] in (True, False)


@pytest.mark.slow
def test_peers_are_skipped_and_targets_still_listed(suite: dict[str, Any]) -> None:
    peers = suite["results"]["peers"]
    assert set(peers) == {"exoarmur-core", "agent-governance-toolkit"}
    for peer in peers.values():
        assert peer["status"] == "skipped"
        assert peer["does_less"]
    by_name = {t["target"]: t for t in suite["targets"]}
    assert by_name["allow C=1 ÷ exoarmur-core allow (in memory)"]["met"] is None
    floors = [t for t in suite["targets"] if t["target"].endswith("its floor")]
    assert len(floors) == 7  # six pipeline rows and replay
    for target in floors:
        assert _positive(target["ratio"]), target
        assert target["met"] in (True, False)


@pytest.mark.slow
@pytest.mark.parametrize("as_json", [True, False])
def test_determinism_load_has_one_root(tmp_path: Path, as_json: bool) -> None:
    args = ["--determinism-load", "--quick", "--runs", "2", "--concurrency", "2"]
    result = _run(*args, "--dir", str(tmp_path), *(["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    if as_json:
        report = json.loads(result.stdout)
        assert report["status"] == "PASS"
        assert report["distinct_roots"] == 1
        assert len(report["roots"]) == report["runs"] == 2
    else:
        lines = result.stdout.strip().splitlines()
        assert lines[-1] == "STATUS: PASS"
        assert "DISTINCT_ROOTS=1" in lines


@pytest.mark.slow
def test_plot_says_what_is_missing_or_draws(tmp_path: Path) -> None:
    target = tmp_path / "bench.png"
    result = _run("--quick", "--only", "approvals", "--plot", str(target), "--dir", str(tmp_path))
    if importlib.util.find_spec("matplotlib") is None:
        assert result.exit_code == 2
        assert not target.exists()
    else:
        assert result.exit_code == 0, result.output
        assert target.read_bytes().startswith(b"\x89PNG")


def test_bad_options_are_refused_by_the_suite() -> None:
    result = _run("--only", "everything")
    assert result.exit_code == 2


def test_options_become_the_suites_arguments(tmp_path: Path) -> None:
    options = SuiteOptions(
        quick=True,
        as_json=True,
        only="replay,peers",
        sizes=("replay_events=500",),
        budget=5.0,
        peers_dir=tmp_path,
        determinism_load=True,
        runs=3,
    )
    assert options.argv() == [
        "--quick",
        "--json",
        "--determinism-load",
        "--only",
        "replay,peers",
        "--budget",
        "5.0",
        "--peers-dir",
        str(tmp_path),
        "--runs",
        "3",
        "--size",
        "replay_events=500",
    ]
    assert SuiteOptions().argv() == []


def test_a_missing_suite_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="benchmarks/ folder"):
        find_suite(tmp_path)
    monkeypatch.setenv(SCRIPTS_ENV, str(tmp_path))
    result = _run("--quick")
    assert result.exit_code == 1
    assert "no benchmark suite" in result.output
    monkeypatch.delenv(SCRIPTS_ENV)
    assert find_suite() == ROOT / "benchmarks" / "bench_suite.py"


def _peers_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_peers", ROOT / "benchmarks" / "peers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_a_peer_that_fails_is_reported_unavailable(tmp_path: Path) -> None:
    """No install, no network: an environment that is already there, and drivers that fail."""
    peers = _peers_module()
    env = tmp_path / f"fake-py{sys.version_info.major}{sys.version_info.minor}"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    (drivers / "crash.py").write_text("raise SystemExit('no such peer API')\n")
    (drivers / "talks.py").write_text("print('hello')\n")
    (drivers / "fine.py").write_text(
        "import json\nprint(json.dumps({'version': '0', 'rows': {'allow': {'ops': 1.0}}}))\n"
    )
    found = {}
    for driver in ("crash.py", "talks.py", "fine.py"):
        peer = peers.Peer("fake", "Fake", "fake==0", driver, (("allow", "allow"),), ("all",))
        (env / peers._MARKER).write_text(peer.requirement)
        found[driver] = peers.run_peer(peer, tmp_path, 10, drivers=drivers)
    assert found["crash.py"]["status"] == "unavailable"
    assert "no such peer API" in found["crash.py"]["reason"]
    assert found["talks.py"]["status"] == "unavailable"
    assert found["fine.py"]["status"] == "ok"
    assert found["fine.py"]["environment"] == "reused"
    assert found["fine.py"]["rows"]["allow"]["ops"] == 1.0


@pytest.mark.slow
def test_determinism_load_prints_the_core_block(tmp_path: Path) -> None:
    """`exoarmur benchmark --determinism-load --runs N --concurrency C`, as Core's README has it."""
    from exoarmur.cli import app

    result = runner.invoke(
        app,
        [
            "benchmark",
            "--determinism-load",
            "--runs",
            "3",
            "--concurrency",
            "40",
            "--dir",
            str(tmp_path),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-5:] == [
        "DETERMINISM",
        "Concurrency: 40",
        "Executions: 3",
        "Unique Hashes: 1",
        "STATUS: PASS",
    ]
    assert "DISTINCT_ROOTS=1" in lines
    assert "3 runs × 40 concurrent submitters × 4 intents each, fresh home per run" in lines


def test_the_determinism_load_stays_bounded_at_any_concurrency() -> None:
    sys.path.insert(0, str(Path(find_suite()).parent))
    try:
        from bench_determinism import MAX_THREADS, intents_per_submitter, pool_size
    finally:
        sys.path.pop(0)
    assert pool_size(500) == MAX_THREADS <= 16
    assert pool_size(2) == 2
    assert intents_per_submitter(40, 4) == 40
    assert intents_per_submitter(40, 40) == 4
    assert intents_per_submitter(40, 500) == 1


def test_the_plan_lookup_benchmark_runs_and_finds_the_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_plan_lookup import main
    finally:
        sys.path.pop(0)
    assert main(["--events", "200", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "tenant log: 200 events" in out
    assert "plan show, after" in out


def test_replay_s_rss_is_a_target_met_when_flat(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_replay import rss_summary
        from bench_suite import sections, targets
    finally:
        sys.path.pop(0)
    rss = {str(p): 100.0 + p / 10 for p in range(10, 101, 10)}
    replayed = {"done": 1000, "target": 1000, "stopped_by_budget": False, "rss_mib": rss}
    memory = {"govern": replayed | {"flat": True}, "replay": replayed}
    (row,) = [t for t in targets([], {"memory": memory}) if t["target"].startswith("RSS")]
    assert row["ratio"] == pytest.approx(110 / 101)
    assert row["met"] is True
    rss["100"] = 112.0  # grows past 10 %
    (row,) = [t for t in targets([], {"memory": memory}) if t["target"].startswith("RSS")]
    assert row["met"] is False
    shown = {title: rows for title, _, rows in sections({"results": {}, "targets": [row]})}
    assert shown["Targets"][0][4] == "≤ 1.1"
    found = replayed | {"complete": True, "peak_mib": 120.0, "flat": False}
    summary = rss_summary(found)
    assert summary["rss_100_over_10"] == pytest.approx(112 / 101)
    assert summary["events_replayed"] == 1000


def test_replay_s_per_tenth_rates_come_from_sampled_times() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_replay import _tenths
    finally:
        sys.path.pop(0)
    # 1,000 events sampled every 10, one second per 100 events
    marks = [(n, n / 100) for n in range(10, 1001, 10)]
    assert _tenths(marks, 0.0) == pytest.approx([100.0] * 10)
    assert _tenths([(9, 1.0)], 0.0) == []
