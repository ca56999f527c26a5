"""`exoarmur reality`: the whole claim, for real, with a kill -9 in the middle.

One run (module fixture) is checked artifact by artifact; the command is run
through its CLI once passing and once with one byte of the ledger file
corrupted before the replay, which must fail `replay_equivalence` and exit
non-zero. The scenario the children run is also driven in-process, so that
its code counts towards coverage and its resume-from-the-ledger is shown.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import runpy
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from exoarmur.encoding import canonical_bytes, content_hash, parse_time
from exoarmur.evidence import verify_bundle_text
from exoarmur.executors import ExecutionFailed
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.ledger.transfer import read_jsonl
from exoarmur.model.event import SYSTEM_LOG
from exoarmur.reality import (
    ACKS_BEFORE_KILL,
    EFFECTS_ENV,
    GATES,
    KILL_STEP,
    STEPS,
    TENANT,
    RealityReport,
    carry_out,
    child_main,
    new_run_id,
    prepare,
    reality,
    run_reality,
    step_display,
)
from exoarmur.reality import command as reality_command

pytestmark = pytest.mark.slow

ARTIFACTS = (
    "audit_export.jsonl",
    "storage_state.json",
    "replay_report.json",
    "service.log",
    "config_snapshot.json",
    "config_hash.txt",
    "time_model.json",
    "idempotency_report.json",
    "operator_actions.jsonl",
    "bundle.json",
    "PASS_FAIL.txt",
    "manifest.json",
    "public_key.txt",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealityReport, Path, list[str]]:
    out = tmp_path_factory.mktemp("reality") / "run"
    steps: list[str] = []
    report = run_reality(out, progress=steps.append)
    return report, out, steps


def _json(out: Path, name: str) -> Any:
    return json.loads((out / name).read_text(encoding="utf-8"))


def test_every_gate_passes(run: tuple[RealityReport, Path, list[str]]) -> None:
    report, out, steps = run
    assert [gate.name for gate in report.gates] == list(GATES)
    assert report.passed, "\n".join(report.lines())
    lines = (out / "PASS_FAIL.txt").read_text(encoding="utf-8").splitlines()
    assert lines == report.lines()
    assert [line.split("=", 1)[0] for line in lines] == [*GATES, "REALITY_RESULT"]
    assert all(line.split("=", 1)[1].startswith("PASS ") for line in lines[:-1])
    assert lines[-1] == "REALITY_RESULT=PASS"
    assert len(steps) >= 6
    assert any("SIGKILL" in step for step in steps)
    assert report.to_json()["result"] == "PASS"
    assert report.gate("replay_equivalence").passed


def test_every_artifact_exists_and_parses(run: tuple[RealityReport, Path, list[str]]) -> None:
    report, out, _ = run
    for name in ARTIFACTS:
        assert (out / name).is_file(), name
        assert name in report.artifacts
    for name in ARTIFACTS:
        if name.endswith(".json"):
            json.loads((out / name).read_text(encoding="utf-8"))
        elif name.endswith(".jsonl"):
            for line in (out / name).read_text(encoding="utf-8").splitlines():
                json.loads(line)

    # the audit export is the canonical bytes themselves, both logs, gap-free
    lines = (out / "audit_export.jsonl").read_text(encoding="utf-8").splitlines()
    events = list(read_jsonl(lines))
    assert all(canonical_bytes(json.loads(line)) == line.encode() for line in lines)
    for log in (SYSTEM_LOG, TENANT):
        assert [e.seq for e in events if e.tenant == log] == list(
            range(sum(1 for e in events if e.tenant == log))
        )

    storage = _json(out, "storage_state.json")
    assert storage["journal_mode"] == "wal"
    assert storage["synchronous_name"] == "FULL"
    assert storage["quick_check"] == "ok"
    tables = storage["tables"]
    assert isinstance(tables, dict)
    assert tables["events"] == len(events)

    snapshot = _json(out, "config_snapshot.json")
    config_hash = (out / "config_hash.txt").read_text(encoding="utf-8").strip()
    assert snapshot["config_hash"] == config_hash == content_hash(snapshot["config"])

    bundle_text = (out / "bundle.json").read_text(encoding="utf-8")
    public_key = (out / "public_key.txt").read_text(encoding="utf-8").strip()
    assert verify_bundle_text(bundle_text, public_key).passed

    time_model = _json(out, "time_model.json")
    logs = time_model["logs"]
    assert isinstance(logs, dict)
    for log in (SYSTEM_LOG, TENANT):
        assert logs[log]["seq_gap_free"] is True
        assert logs[log]["process_time_non_decreasing"] is True
    clocks = time_model["clock"]
    assert isinstance(clocks, dict)
    assert set(clocks["kind_recorded"].values()) == {"system"}

    for line in (out / "service.log").read_text(encoding="utf-8").splitlines():
        stamp, source, stream, _ = line.split(" ", 3)
        assert parse_time(stamp).tzinfo is not None
        assert source in ("child-1", "child-2")
        assert stream in ("stdout", "stderr", "parent")

    manifest = _json(out, "manifest.json")
    hashes = manifest["sha256"]
    assert isinstance(hashes, dict)
    for name, digest in hashes.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest


def test_the_child_was_killed_mid_run_and_the_second_one_finished(
    run: tuple[RealityReport, Path, list[str]],
) -> None:
    _, out, _ = run
    children = _json(out, "manifest.json")["children"]
    assert children == [
        {
            "process": "child-1",
            "returncode": -9,
            "acks": ACKS_BEFORE_KILL,
            "killed": True,
            "finished": False,
            "timed_out": False,
        },
        {
            "process": "child-2",
            "returncode": 0,
            "acks": children[1]["acks"],
            "killed": False,
            "finished": True,
            "timed_out": False,
        },
    ]
    log = (out / "service.log").read_text(encoding="utf-8")
    assert f"ACKs: {KILL_STEP} delivery 1 recorded, not acknowledged" in log
    assert "child-1 parent exited with return code -9" in log
    assert "child-2 stdout DONE" in log


def test_the_idempotency_report_shows_each_key_once(
    run: tuple[RealityReport, Path, list[str]],
) -> None:
    _, out, _ = run
    report = _json(out, "idempotency_report.json")
    keys = report["keys"]
    assert isinstance(keys, dict)
    submitted = [step for step in STEPS if step.kind == "submit"]
    names = [step.name for step in STEPS]
    before_kill = {step.key for step in STEPS[: names.index(KILL_STEP)]}
    assert sorted(keys) == sorted(step.key for step in submitted)
    assert report["intents_recorded"] == report["distinct_keys"] == len(submitted)
    for key, entry in keys.items():
        assert entry["recorded"] == 1, key
        # the one recorded as child 1 was killed never got a first answer: only duplicates
        assert entry["first_outcomes"] == (0 if key == f"reality-{KILL_STEP}" else 1), key
        assert entry["same_intent"], key
        assert entry["same_decision"], key
        # twice by each child before the kill; from the step in flight on, only by the second
        assert len(entry["deliveries"]) == (4 if key in before_kill else 2), key
        assert all(d["duplicate"] for d in entry["deliveries"][1:]), key
        assert entry["executions_started"] <= 1
        assert entry["side_effects"] == entry["executions_finished"]
    assert report["side_effects_total"] == report["executions_finished_total"] == 3
    actions = report["operator_actions"]
    assert isinstance(actions, dict)
    assert all(action["recorded"] == 1 for action in actions.values())
    assert report["problems"] == []


def test_the_replay_report_is_verified(run: tuple[RealityReport, Path, list[str]]) -> None:
    _, out, _ = run
    report = _json(out, "replay_report.json")
    assert report["verified"] is True
    assert report["divergences"] == []
    assert report["checkpoint_verified"] is True
    assert report["decisions"] == sum(1 for step in STEPS if step.kind == "submit")


def test_operator_actions_name_who_what_why_when(
    run: tuple[RealityReport, Path, list[str]],
) -> None:
    _, out, _ = run
    lines = (out / "operator_actions.jsonl").read_text(encoding="utf-8").splitlines()
    actions = [json.loads(line) for line in lines]
    keys = {
        name: info["key_id"] for name, info in _json(out, "manifest.json")["principals"].items()
    }
    votes = [(a["type"], a["who"]) for a in actions if a["type"].startswith("approval.")]
    assert votes == [
        ("approval.granted", "alice"),
        ("approval.rejected", "bob"),
        ("approval.refused", "agent-7"),
        ("approval.granted", "bob"),
    ]
    switches = [(a["type"], a["who"]) for a in actions if a["type"].startswith("killswitch.")]
    assert switches == [("killswitch.engaged", "alice"), ("killswitch.released", "alice")]
    for action in actions:
        assert action["when"]
        assert action["type"]
        if action["who"] in keys:
            assert action["key_id"] == keys[action["who"]]
        if action["type"] in ("approval.granted", "approval.rejected", "killswitch.engaged"):
            assert action["why"].endswith("]")  # the step's tagged reason
    approved = next(a for a in actions if a["type"] == "intent.approved")
    assert approved["what"]["approvers"] == ["alice", "bob"]
    assert approved["what"]["target"] == "db/orders"


# -- the scenario in-process: what the children run ------------------------------


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    prepare(tmp_path, "in-process")
    monkeypatch.setenv(EFFECTS_ENV, str(tmp_path / "side_effects.log"))
    return tmp_path


def _child(out: Path, process: str) -> list[tuple[str, Any]]:
    spec = {
        "home": str(out / "home"),
        "keys": str(out / "keys"),
        "source_time": "2026-01-01T00:00:00.000000Z",
        "run_id": "in-process",
        "process": process,
    }
    stdout = io.StringIO()
    code = child_main(["--child", json.dumps(spec)], io.StringIO("go\n" * 100), stdout)
    assert code == 0
    said = []
    for line in stdout.getvalue().splitlines():
        kind, _, body = line.partition(" ")
        said.append((kind, json.loads(body)))
    return said


def test_the_scenario_resumes_from_the_ledger_without_writing_twice(prepared: Path) -> None:
    first = _child(prepared, "child-1")
    acks = [record for kind, record in first if kind == "ACK"]
    assert next(kind for kind, _ in first) == "READY"
    assert [kind for kind, _ in first][-1] == "DONE"
    assert len(acks) == sum(2 if step.kind == "submit" else 1 for step in STEPS)
    assert [a["duplicate"] for a in acks if a["kind"] != "submit"] == [False] * 6
    by_step = {a["step"]: a for a in acks}
    assert by_step["approve-bob"]["status"] == "executed"
    assert by_step["self-approve"]["events"][0][1] == "approval.refused"

    with SqliteStore(prepared / "home" / "ledger.db") as store:
        size = store.size(TENANT)
    again = _child(prepared, "child-1")  # the same process name: nothing new at all
    assert all(record["duplicate"] for kind, record in again if kind == "ACK")
    with SqliteStore(prepared / "home" / "ledger.db") as store:
        assert store.size(TENANT) == size
    effects = (prepared / "side_effects.log").read_text(encoding="utf-8").splitlines()
    assert len(effects) == 3  # read-1, prod-delete, read-2: once each


def test_the_child_entry_point_refuses_other_arguments() -> None:
    assert child_main([], io.StringIO(), io.StringIO()) == 2


def test_python_dash_m_runs_the_child_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["exoarmur.reality"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("exoarmur.reality", run_name="__main__")
    assert exited.value.code == 2


def test_prepare_refuses_a_home_that_exists(prepared: Path) -> None:
    with pytest.raises(Exception, match="already exists"):
        prepare(prepared, "again")


def test_the_side_effect_needs_somewhere_to_go(
    prepared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exoarmur.model.intent import ActionIntent

    monkeypatch.delenv(EFFECTS_ENV)
    intent = ActionIntent.from_canonical(
        {
            "intent_id": "01KDVDNA0HQR10R2VW0000000A",
            "tenant": TENANT,
            "actor": {"id": "agent-7", "kind": "agent"},
            "action": "demo.read",
            "target": "x",
            "params": {},
            "safety_class": "A0",
            "idempotency_key": "k",
            "correlation_id": "01KDVDNA0HQR10R2VW0000000A",
            "event_time": "2026-01-01T00:00:00.000000Z",
        }
    )
    with pytest.raises(ExecutionFailed, match=EFFECTS_ENV):
        carry_out(intent)


# -- the command ----------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _main() -> None: ...

    app.command("reality")(reality)  # exactly how the cli package registers it
    return app


def test_the_command_prints_reality_result_pass(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["reality", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "REALITY_RESULT=PASS"
    assert f"EVIDENCE_DIR={tmp_path / 'cli'}" in lines
    assert [line.split("=", 1)[0] for line in lines[-len(GATES) - 1 : -1]] == list(GATES)


def flip_one_byte(ledger: Path) -> None:
    """Change one letter of the approved intent's target inside the SQLite file itself."""
    assert not Path(f"{ledger}-wal").exists() or Path(f"{ledger}-wal").stat().st_size == 0
    data = ledger.read_bytes()
    at = data.index(b'"target":"db/orders"') + len(b'"target":"db/')
    with ledger.open("r+b") as handle:
        handle.seek(at)
        handle.write(b"O")


def test_one_corrupted_byte_fails_replay_equivalence_and_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tampered = functools.partial(run_reality, before_replay=flip_one_byte)
    # the command resolves run_reality in its own module
    monkeypatch.setattr(reality_command, "run_reality", tampered)
    out = tmp_path / "tampered"
    result = CliRunner().invoke(_app(), ["reality", "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["result"] == "FAIL"
    gates = {gate["name"]: gate for gate in report["gates"]}
    assert not gates["replay_equivalence"]["passed"]
    assert "first divergence" in gates["replay_equivalence"]["evidence"]
    # what was checked before the corruption still stands
    assert gates["durable_persistence"]["passed"]
    assert gates["restart_survival"]["passed"]
    lines = (out / "PASS_FAIL.txt").read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("replay_equivalence=FAIL ") for line in lines)
    assert lines[-1] == "REALITY_RESULT=FAIL"
    replayed = _json(out, "replay_report.json")
    assert replayed["verified"] is False
    assert replayed["checkpoint_verified"] is False


def test_the_command_refuses_a_directory_in_use(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something").write_text("x", encoding="utf-8")
    result = CliRunner().invoke(_app(), ["reality", "--out", str(tmp_path / "busy")])
    assert result.exit_code == 2
    assert "not an empty directory" in result.output


# -- small parts ----------------------------------------------------------------------


def test_run_ids_name_the_time_and_differ() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first, second = new_run_id(moment), new_run_id(moment)
    assert first.startswith("20260102T030405Z-")
    assert first != second


@pytest.fixture
def terminal() -> Iterator[tuple[Console, io.StringIO]]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=100), buffer


def test_steps_show_on_a_terminal_as_a_progress_display(
    terminal: tuple[Console, io.StringIO],
) -> None:
    console, buffer = terminal
    with step_display(console, quiet=False) as step:
        assert step is not None
        step("first step")
        step("second step")
    assert "first step" in buffer.getvalue()
    assert "second step" in buffer.getvalue()


def test_steps_are_lines_off_a_terminal_and_nothing_when_quiet() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False)
    with step_display(console, quiet=False) as step:
        assert step is not None
        step("one step")
    assert "one step" in buffer.getvalue()
    with step_display(console, quiet=True) as nothing:
        assert nothing is None
