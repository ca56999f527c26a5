"""Replay from the ledger alone: golden histories replay; doctored ones are caught where and why."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.clock import StepClock
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import SeededIds
from exoarmur.ledger.checkpoint import open_checkpoint
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.ledger.transfer import copy_log, read_jsonl
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from exoarmur.replay import first_difference, replay, whatif

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
KEY = SigningKey.from_seed("golden.exoarmur/log", hashlib.sha256(b"golden").digest())


def load(path: Path, into: Path) -> SqliteStore:
    """A fresh store holding a history (positions, bytes and tree recomputed on load)."""
    store = SqliteStore(into / "replayed.db")
    by_log: dict[str, list[Any]] = defaultdict(list)
    for event in read_jsonl(path.read_text().splitlines()):
        by_log[event.tenant].append(event)
    for log, events in by_log.items():
        # Positions are renumbered in file order: a doctored file is a consistent forgery.
        renumbered = [
            type(e)(**{**{f: getattr(e, f) for f in e.__dataclass_fields__}, "seq": n})
            for n, e in enumerate(events)
        ]
        append_events_unchecked(store, log, renumbered)
    return store


def append_events_unchecked(store: SqliteStore, log: str, events: list[Any]) -> None:
    from exoarmur.model.event import draft_of

    store.append(log, [draft_of(e) for e in events])


def test_the_golden_history_replays_in_full(tmp_path: Path) -> None:
    store = load(GOLDEN / MANIFEST["good"], tmp_path)
    store.save_checkpoint("acme", store.size("acme"), MANIFEST["checkpoint"])
    report = replay(store, "acme", verifier=KEY.verifier())
    assert report.verified, report.divergences[:3]
    assert report.checkpoint_verified is True
    assert report.intents == 23
    assert report.decisions == 23
    assert report.votes == 7
    assert report.executions == 14
    assert (
        open_checkpoint(MANIFEST["checkpoint"], KEY.verifier()).root_hash.hex() == report.root_hash
    )
    store.close()


@pytest.mark.parametrize("name", sorted(MANIFEST["doctored"]))
def test_doctored_histories_are_caught_at_the_right_event(tmp_path: Path, name: str) -> None:
    entry = MANIFEST["doctored"][name]
    store = load(GOLDEN / entry["file"], tmp_path)
    report = replay(store, "acme")
    expect = entry["expect"]
    assert not report.verified
    first = report.first
    assert first is not None
    assert first.event_id == expect["event_id"], first
    assert first.field.startswith(expect["field"]), first
    assert expect["reason"] in first.reason, first
    store.close()


def test_regenerating_the_goldens_changes_no_byte(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(GOLDEN))
    try:
        import make_histories
    finally:
        sys.path.remove(str(GOLDEN))
    for path in make_histories.generate(tmp_path):
        committed = GOLDEN / path.name
        assert path.read_bytes() == committed.read_bytes(), (
            f"{path.name} changed: if the pipeline's records changed on purpose, run "
            "`python tests/golden/make_histories.py` and review the diff"
        )


def test_an_edited_byte_is_found_by_its_leaf_and_the_checkpoint(tmp_path: Path) -> None:
    store = load(GOLDEN / MANIFEST["good"], tmp_path)
    store.save_checkpoint("acme", store.size("acme"), MANIFEST["checkpoint"])
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "UPDATE events SET canonical = CAST(replace(CAST(canonical AS TEXT), "
            "'reports/1', 'reports/X') AS BLOB) WHERE tenant = 'acme' AND seq = 0"
        )
    report = replay(store, "acme", verifier=KEY.verifier())
    assert not report.verified
    assert report.first is not None
    assert report.first.seq == 0
    assert report.first.field == "leaf_hash"
    assert report.checkpoint_verified is False
    store.close()


def test_a_copy_keeps_bytes_proofs_and_checkpoints(tmp_path: Path) -> None:
    source = load(GOLDEN / MANIFEST["good"], tmp_path)
    source.save_checkpoint("acme", source.size("acme"), MANIFEST["checkpoint"])
    destination = SqliteStore(tmp_path / "copy.db")
    for log in ("_system", "acme"):
        copy_log(source, destination, log)
    report = replay(destination, "acme", verifier=KEY.verifier())
    assert report.verified
    assert report.checkpoint_verified is True
    assert Ledger(destination, KEY).root("acme") == Ledger(source, KEY).root("acme")
    from exoarmur.errors import InputError

    with pytest.raises(InputError, match="already holds"):
        copy_log(source, destination, "acme")
    source.close()
    destination.close()


def test_concurrent_submitters_replay_exactly(tmp_path: Path) -> None:
    registry = ExecutorRegistry()
    registry.bind("*", EchoExecutor())
    governor = Governor(
        ledger=Ledger(SqliteStore(tmp_path / "l.db"), KEY),
        policy=PolicyEngine(
            PolicyBundle.from_text(
                '@id("reads") permit (principal, action, resource) '
                'when { context.safety_class == "A0" };'
            )
        ),
        executors=registry,
        clock=StepClock(),
        ids=SeededIds(3),
    )

    def submit(worker: int) -> None:
        for n in range(40):
            governor.submit(
                {
                    "tenant": "acme",
                    "actor": {"id": f"agent-{worker}"},
                    "action": "fs.read" if n % 3 else "fs.write",
                    "target": f"t/{worker}/{n}",
                    "safety_class": "A0" if n % 3 else "A1",
                }
            )

    pool = [threading.Thread(target=submit, args=(w,)) for w in range(6)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    governor.ledger.checkpoint("acme")
    report = replay(governor.ledger.store, "acme", verifier=KEY.verifier())
    assert report.verified, report.divergences[:3]
    assert report.intents == 240
    governor.close()


def test_whatif_reports_what_a_candidate_would_change(tmp_path: Path) -> None:
    store = load(GOLDEN / MANIFEST["good"], tmp_path)
    candidate = PolicyEngine(
        PolicyBundle.from_text(
            '@id("reads") permit (principal, action, resource)\n'
            'when { context.safety_class == "A0" };\n'
            '@id("writes") permit (principal, action == Action::"fs.write", resource);\n'
            '@id("no-deletes") forbid (principal, action == Action::"db.delete", resource);\n'
        )
    )
    size_before = store.size("acme")
    report = whatif(store, "acme", candidate)
    # prod deletes forbidden, tickets no longer permitted, fs.write allowed, and
    # -- what the question is for -- the protected target is no longer protected
    assert report.summary == {"allow→deny": 3, "deny→allow": 2, "require_approval→deny": 4}
    assert any(c.target == "db/customers" and c.new_verdict == "allow" for c in report.changes)
    assert store.size("acme") == size_before  # nothing written
    assert report.to_json()["changed"] == len(report.changes)
    later = whatif(
        store,
        "acme",
        candidate,
        since=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert later.changes == ()
    store.close()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"x": 1}, {"x": 1}, None),
        ({"x": {"y": [1, 2]}}, {"x": {"y": [1, 3]}}, ("x.y[1]", 2, 3)),
        ({"x": 1}, {"x": 1, "z": 2}, ("z", None, 2)),
        ([1], [1, 2], ("(value)", [1], [1, 2])),
        (1, True, ("(value)", 1, True)),
    ],
)
def test_first_difference(a: Any, b: Any, expected: Any) -> None:
    assert first_difference(a, b) == expected


runner = CliRunner()
MARKER = re.compile(r"^([A-Z_]+)=(.*)$", re.MULTILINE)


def test_replay_and_whatif_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["--home", str(home), "demo", "quickstart"]).exit_code == 0
    verified = runner.invoke(app, ["--home", str(home), "replay", "verify", "--tenant", "demo"])
    assert verified.exit_code == 0, verified.output
    markers = dict(MARKER.findall(verified.stdout))
    assert markers["REPLAY_VERIFIED"] == "true"
    assert markers["DIVERGENCES"] == "0"
    assert markers["CHECKPOINT_VERIFIED"] == "true"
    as_json = runner.invoke(
        app, ["--home", str(home), "replay", "verify", "-t", "demo", "--json", "--from", "3"]
    )
    assert json.loads(as_json.stdout)["verified"] is True
    by_correlation = runner.invoke(
        app, ["--home", str(home), "replay", "verify", "-t", "demo", "--audit-stream-id", "x"]
    )
    assert by_correlation.exit_code == 2  # a stream that does not exist replays nothing
    assert "no events of correlation 'x'" in by_correlation.stderr
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute(
            "UPDATE events SET canonical = CAST(replace(CAST(canonical AS TEXT), "
            "'reports/q3.txt', 'reports/q4.txt') AS BLOB) WHERE tenant = 'demo' AND seq = 0"
        )
    broken = runner.invoke(app, ["--home", str(home), "replay", "verify", "-t", "demo"])
    assert broken.exit_code == 1
    assert "REPLAY_VERIFIED=false" in broken.stdout
    assert "first divergence" in broken.stdout
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "p.cedar").write_text('@id("nothing") forbid (principal, action, resource);')
    changed = runner.invoke(
        app,
        [
            "--home",
            str(home),
            "replay",
            "whatif",
            "-t",
            "demo",
            "--policy",
            str(candidate),
            "--json",
        ],
    )
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["summary"]["allow→deny"] == 3
    table = runner.invoke(
        app, ["--home", str(home), "replay", "whatif", "-t", "demo", "--policy", str(candidate)]
    )
    assert "allow→deny" in table.stdout


def _as_recorded_before_scoped_keys(event: Any) -> Any:
    """The draft an ExoArmur from before actor-scoped keys wrote for ``event``."""
    from dataclasses import replace

    from exoarmur.model.event import draft_of

    draft = draft_of(event)
    if event.type == "intent.recorded":
        return replace(draft, idempotency_key=event.payload["intent"]["idempotency_key"])
    return replace(draft, idempotency_key=None)  # no intent-id reservation either


def test_a_history_recorded_before_the_class_floor_and_scoped_keys_still_replays(
    tmp_path: Path,
) -> None:
    # Decided with no class floor (its config snapshot has none) and indexed by bare keys.
    store = SqliteStore(tmp_path / "old.db")
    by_log: dict[str, list[Any]] = defaultdict(list)
    for event in read_jsonl(
        (GOLDEN / "recorded-before-class-floor.jsonl").read_text().splitlines()
    ):
        by_log[event.tenant].append(event)
    for log, events in by_log.items():
        store.append(log, [_as_recorded_before_scoped_keys(e) for e in events])
    snapshot = store.latest_of_type("_system", "config.snapshot")
    assert snapshot is not None
    assert "class_floor" not in snapshot.payload["config"]["gate"]
    report = replay(store, "acme")
    assert report.verified, report.divergences[:3]
    assert report.intents == 23
    # its bare keys and missing intent-id reservations are what the events carried then
    ledger = Ledger(store, SigningKey.from_seed("old.exoarmur/log", bytes(32)))
    assert ledger.verify("acme").ok, ledger.verify("acme").problems
    store.close()


def test_a_history_recorded_before_policy_saw_the_posture_s_tightening_still_replays(
    tmp_path: Path,
) -> None:
    store = load(GOLDEN / "recorded-before-policy-saw-tightening.jsonl", tmp_path)
    snapshot = store.latest_of_type("_system", "config.snapshot")
    assert snapshot is not None
    assert "policy_sees_tightening" not in snapshot.payload["config"]["gate"]["posture"]
    report = replay(store, "acme")
    assert report.verified, report.divergences[:3]
    assert report.decisions == 23
    store.close()
