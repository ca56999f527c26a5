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
import os
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
EQUAL_DURABILITY = "allow C=8 ÷ tracekit-ai C=8, fsync before reply (equal durability)"


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
    assert set(peers) == {"exoarmur-core", "agent-governance-toolkit", "tracekit-ai"}
    for peer in peers.values():
        assert peer["status"] == "skipped"
        assert peer["does_less"]
        assert peer["per_call"]
    by_name = {t["target"]: t for t in suite["targets"]}
    assert by_name["allow C=1 ÷ exoarmur-core allow (in memory)"]["met"] is None
    assert by_name[EQUAL_DURABILITY]["met"] is None
    floors = [t for t in suite["targets"] if t["target"].endswith(("its floor", "batched floor"))]
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


@pytest.mark.slow
def test_the_core_readme_determinism_command_holds_as_written(tmp_path: Path) -> None:
    """ExoArmur-Core's command, flags exactly as its README has them, on this machine.

    A child process, as a user would type it; coverage is not carried into it
    (the suite lives in benchmarks/, not src/, and tracing would only slow the
    hundred runs down). Its temporary homes go under ``tmp_path``, and each is
    deleted once its root is taken.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["TMPDIR"] = str(tmp_path)
    command = ["benchmark", "--determinism-load", "--runs", "100", "--concurrency", "500"]
    done = subprocess.run(
        [str(Path(sys.executable).with_name("exoarmur")), *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert lines[-5:] == [
        "DETERMINISM",
        "Concurrency: 500",
        "Executions: 100",
        "Unique Hashes: 1",
        "STATUS: PASS",
    ]
    assert "100 runs × 500 concurrent submitters × 1 intents each, fresh home per run" in lines
    roots = {line.split(": root ")[1] for line in lines if line.startswith("run ")}
    assert len(roots) == 1
    assert len([line for line in lines if line.startswith("run ")]) == 100


@pytest.mark.slow
def test_a_determinism_run_leaves_no_home_behind(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(find_suite()).parent))
    try:
        from bench_determinism import one_run
    finally:
        sys.path.pop(0)
    result = one_run(tmp_path, 7, 3, 2)
    assert len(result["logs"]) == 3
    assert list(tmp_path.iterdir()) == []


def test_the_determinism_load_stays_bounded_at_any_concurrency() -> None:
    sys.path.insert(0, str(Path(find_suite()).parent))
    try:
        from bench_determinism import MAX_THREADS, intents_per_submitter, pool_size, workers_for
    finally:
        sys.path.pop(0)
    assert workers_for(100, 2) == 2
    assert workers_for(1, 2) == 1
    assert workers_for(3, 0) == 1
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


def _bench_module(name: str, where: str = "benchmarks") -> Any:
    """A benchmark script imported by path (benchmarks/ is not a package)."""
    folder = ROOT / where
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", folder / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_the_tracekit_driver_configures_each_mode_and_counts_its_records(tmp_path: Path) -> None:
    """Its pure parts (tracekit itself is imported only where a signer runs)."""
    driver = _bench_module("tracekit_ai", "benchmarks/peer_drivers")
    modes = {
        mode: driver.signer_config(tmp_path, tmp_path / "s.sock", tmp_path / "p.json", mode)
        for mode in ("fsync", "write")
    }
    assert modes["fsync"]["durability"] == "ack-on-fsync"  # the flush-before-reply mode
    assert modes["write"]["durability"] == "ack-on-write"  # its default
    for config in modes.values():
        assert config["limits"]["events_per_s"] >= 1e6  # its rate limit never the measurement
        assert config["fsck_every_s"] == 0
    assert driver.row_name("fsync", 8) == "fsync_allow_c8"
    # a command name with spaces and a parenthesis must not shift the fields
    stat = "4242 (python -m (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0"
    assert driver.cpu_seconds(stat, 100.0) == 3.0  # utime 250 + stime 50 ticks
    assert driver.records_per_call(10, 610, 300) == 2.0
    with pytest.raises(SystemExit, match="fewer than the 2"):
        driver.records_per_call(10, 309, 300)  # one record short: a call went unrecorded
    peers = _peers_module()
    tracekit = next(p for p in peers.PEERS if p.key == "tracekit-ai")
    assert {row for row, _ in tracekit.rows} == {
        driver.row_name(mode, c) for mode in driver.MODES for c in (1, 8, 32)
    }


def test_timed_concurrent_makes_every_call_once_and_refuses_a_wrong_one() -> None:
    timing = _bench_module("_timing", "benchmarks/peer_drivers")
    made: list[int] = []
    callers = [made.append for _ in range(3)]  # list.append is thread-safe and returns None
    row = timing.timed_concurrent("calls", 10, callers, lambda result: result is None)
    assert sorted(made) == list(range(10))
    assert row["n"] == len(row["latencies_s"]) == 10
    assert row["concurrency"] == 3
    assert row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"]
    with pytest.raises(SystemExit, match="1 of 4 calls went wrong"):
        timing.timed_concurrent("calls", 4, [lambda i: i], lambda result: result != 2)


def test_a_durable_peer_writes_where_our_ledgers_are(tmp_path: Path) -> None:
    peers = _peers_module()
    env = tmp_path / f"fake-py{sys.version_info.major}{sys.version_info.minor}"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(sys.executable)
    drivers = tmp_path / "drivers"
    drivers.mkdir()
    (drivers / "argv.py").write_text(
        "import json, sys\nprint(json.dumps({'version': '0', 'rows': {}, 'argv': sys.argv[1:]}))\n"
    )
    found = {}
    for durable in (True, False):
        peer = peers.Peer("fake", "Fake", "fake==0", "argv.py", (), ("all",), durable=durable)
        (env / peers._MARKER).write_text(peer.requirement)
        found[durable] = peers.run_peer(peer, tmp_path, 7, drivers=drivers, data_dir=tmp_path)
    assert found[True]["argv"] == ["--n", "7", "--dir", str(tmp_path)]
    assert found[False]["argv"] == ["--n", "7"]


def _scenario(c: int, ops: float, floor_ops: float, path: str = "allow") -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(path=path, concurrency=c, ops=ops, floor_ops=floor_ops)


def _tracekit(ops: dict[str, float]) -> dict[str, Any]:
    rows = {
        name: {"ops": value, "p50_ms": 1.0, "p99_ms": 2.0, "p999_ms": 3.0, "ledger": "JSONL"}
        for name, value in ops.items()
    }
    return {"status": "ok", "version": "1.4.2", "rows": rows}


def test_each_target_divides_the_rows_it_names() -> None:
    suite = _bench_module("bench_suite")
    scenarios = [
        _scenario(1, 400.0, 500.0),
        _scenario(8, 600.0, 900.0),
        _scenario(32, 1600.0, 1800.0),
    ]
    tracekit = {"fsync_allow_c1": 100.0, "fsync_allow_c8": 250.0, "fsync_allow_c32": 320.0}
    tracekit |= {"write_allow_c1": 700.0, "write_allow_c8": 1200.0, "write_allow_c32": 1600.0}
    results: dict[str, Any] = {
        "peers": {
            "exoarmur-core": {"status": "ok", "rows": {"allow": {"ops": 1000.0}}},
            "tracekit-ai": _tracekit(tracekit),
        },
        "evidence": {"bundle_events": 10_003, "verify_s": 0.9},
        "memory": {
            "replay": {
                "complete": True,
                "done": 1_000_000,
                "target": 1_000_000,
                "rss_mib": {"10": 100.0, "100": 115.0},
            }
        },
    }
    found = {t["target"]: t for t in suite.targets(scenarios, results)}
    equal = found[EQUAL_DURABILITY]
    assert (equal["ours"], equal["theirs"], equal["ratio"]) == (600.0, 250.0, 2.4)
    assert equal["met"] is True
    assert equal["brief"] == "issue 11"
    default = found["allow C=8 ÷ tracekit-ai C=8, its default (synced ≤ 5 ms after reply)"]
    assert default["ratio"] == 0.5
    assert default["met"] is None  # less durable than ours: reported, never judged
    assert suite.verdict(default) == "reported"
    assert found["allow C=32 ÷ tracekit-ai C=32, fsync before reply"]["ratio"] == 5.0
    core = found["allow C=32 (SQLite, fsync) ÷ exoarmur-core allow (in memory)"]
    assert (core["ratio"], core["met"]) == (1.6, False)
    assert found["allow C=32 ÷ allow C=1 (group commit scaling)"]["ratio"] == 4.0
    assert found["allow C=1 ÷ its floor"]["ratio"] == 0.8
    batched = found["allow C=32 ÷ its batched floor"]
    assert (batched["theirs"], batched["met"]) == (1800.0, True)
    evidence = found["evidence bundle of 10,000 events: offline verify"]
    assert (evidence["measured"], evidence["met"], evidence["wanted_text"]) == (0.9, True, "< 1 s")
    rss = found["RSS replaying 1,000,000 events: at 100 % ÷ at 10 %"]
    assert rss["met"] is False  # 15 % more at the end than at a tenth
    # measured at another size than the target's: a figure, no verdict
    results["evidence"]["bundle_events"] = 200
    results["memory"]["replay"] |= {"done": 800, "target": 800}
    small = {t["target"]: t for t in suite.targets(scenarios, results)}
    for name in (evidence["target"], rss["target"]):
        assert small[name]["met"] is None
        assert suite.verdict(small[name]) == "no verdict"
    markdown = suite.markdown(
        {
            "date": "d",
            "command": "c",
            "sizes": {},
            "budget_s": 1.0,
            "memory_filesystem": "tmpfs",
            "machine": dict.fromkeys(
                ("cpu", "cores", "usable_cores", "platform", "filesystem", "python"), "x"
            )
            | dict.fromkeys(("exoarmur", "cedarpy", "sqlite"), "x"),
            "results": {},
            "targets": list(found.values()),
        }
    )
    cells = "issue 11 | 1.25–1.5× (by hand) | ≥ 2× | 600/s | 250/s | 2.400× | met"
    assert f"| {EQUAL_DURABILITY} | {cells} |" in markdown


def test_a_peer_row_is_compared_with_ours_at_its_concurrency() -> None:
    suite = _bench_module("bench_suite")
    assert suite.ours_path("allow") == ("allow", 1)
    assert suite.ours_path("allow C=32") == ("allow", 32)
    scenarios = [
        {"path": "allow", "concurrency": c, "ops": ops, "p50_ms": 1.0, "p99_ms": 2.0}
        | {"p999_ms": 3.0, "floor_ops": 1.0, "ratio": 1.0}
        for c, ops in ((1, 300.0), (8, 900.0))
    ]
    peer = _tracekit({"fsync_allow_c1": 100.0, "fsync_allow_c8": 450.0})
    peer |= {
        "compared_with": {"fsync_allow_c1": "allow C=1", "fsync_allow_c8": "allow C=8"},
        "per_call": "decide, complete",
        "does_less": ["no idempotency key"],
    }
    report = {"results": {"pipeline": {"scenarios": scenarios}, "peers": {"tracekit-ai": peer}}}
    tables = {title: rows for title, _, rows in suite.sections(report)}
    rows = {row[0]: row for row in tables["Governed actions"]}
    assert rows["tracekit-ai fsync_allow_c1"][6:] == ["ExoArmur allow C=1 ÷ this", "3.000"]
    assert rows["tracekit-ai fsync_allow_c8"][6:] == ["ExoArmur allow C=8 ÷ this", "2.000"]
    assert rows["tracekit-ai fsync_allow_c8"][1] == "JSONL"
    assert tables["Peers, per call"] == [["tracekit-ai", "decide, complete", "no idempotency key"]]


def test_alternating_rounds_pair_each_row_with_the_peer_at_its_concurrency() -> None:
    alternate = _bench_module("bench_tracekit")
    rounds = [
        {
            "first": "ExoArmur",
            "ours": {1: 300.0, 8: 600.0},
            "tracekit": {"fsync": {1: 100.0, 8: 400.0}, "write": {1: 600.0, 8: 1200.0}},
        },
        {
            "first": "tracekit-ai",
            "ours": {1: 200.0, 8: 900.0},
            "tracekit": {"fsync": {1: 200.0, 8: 300.0}, "write": {1: 400.0, 8: 900.0}},
        },
        {
            "first": "ExoArmur",
            "ours": {1: 100.0, 8: 800.0},
            "tracekit": {"fsync": {1: 50.0, 8: 200.0}, "write": {1: 100.0, 8: 800.0}},
        },
    ]
    assert alternate.ratios(rounds)["fsync"] == {1: [3.0, 1.0, 2.0], 8: [1.5, 3.0, 4.0]}
    medians = alternate.medians(rounds)
    assert medians == {"fsync": {1: 2.0, 8: 3.0}, "write": {1: 0.5, 8: 1.0}}
    report = {
        "date": "d",
        "command": "c",
        "n": 3000,
        "tracekit_version": "1.4.2",
        "machine": dict.fromkeys(("cpu", "cores", "filesystem", "python", "sqlite"), "x"),
        "rounds": rounds,
        "medians": medians,
    }
    text = alternate.markdown(report)
    assert "| 2 (tracekit-ai) | 8 | 900 | 300 | 3.00× | 900 | 1.00× |" in text
    assert "| **median** | 8 | | | **3.00×** | | **1.00×** |" in text
    assert "CPU milliseconds" not in text  # rounds measured without CPU figures
    for k, measured in enumerate(rounds):
        measured["ours_cpu_ms"] = {1: 1.0 + k, 8: 2.0}
        sides = {"client": 0.5, "signer": 1.5 + k}
        measured["tracekit_cpu_ms"] = {mode: {1: sides, 8: sides} for mode in ("fsync", "write")}
    cpu = alternate.cpu_medians(rounds)
    assert cpu[1] == {
        "ours": 2.0,
        "fsync_client": 0.5,
        "fsync_signer": 2.5,
        "write_client": 0.5,
        "write_signer": 2.5,
    }
    assert "| 1 | 2.00 | 0.50 + 2.50 | 0.50 + 2.50 |" in alternate.markdown(report)
    rounds[0]["tracekit_cpu_ms"]["fsync"][1] = {"client": 0.5, "signer": None}  # not Linux
    assert alternate.cpu_medians(rounds) == {}


def test_replay_s_rss_is_a_target_met_when_flat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_suite
        from bench_replay import rss_summary
        from bench_suite import sections, targets
    finally:
        sys.path.pop(0)
    monkeypatch.setattr(bench_suite, "MEMORY_TARGET_EVENTS", 1000)
    rss = {str(p): 100.0 + p / 10 for p in range(10, 101, 10)}
    replayed = {
        "done": 1000,
        "target": 1000,
        "complete": True,
        "stopped_by_budget": False,
        "rss_mib": rss,
    }
    memory = {"govern": replayed | {"flat": True}, "replay": replayed}
    (row,) = [t for t in targets([], {"memory": memory}) if t["target"].startswith("RSS")]
    assert row["ratio"] == pytest.approx(110 / 101)
    assert row["met"] is True
    rss["100"] = 112.0  # grows past 10 %
    (row,) = [t for t in targets([], {"memory": memory}) if t["target"].startswith("RSS")]
    assert row["met"] is False
    shown = {title: rows for title, _, rows in sections({"results": {}, "targets": [row]})}
    assert shown["Targets"][0][3] == "≤ 1.1×"
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
