"""The exoarmur command: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.home import Home
from exoarmur.ledger.checkpoint import open_checkpoint
from exoarmur.ledger.keys import Verifier
from exoarmur.ledger.merkle import verify_consistency, verify_inclusion
from exoarmur.policy import PolicyBundle, PolicyEngine
from samples import intent

runner = CliRunner()
MARKER = re.compile(r"^([A-Z_]+)=(.*)$", re.MULTILINE)


def cli(home: Path, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, ["--home", str(home), *args], input=stdin)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    result = cli(path, "init")
    assert result.exit_code == 0, result.output
    return path


def ledger_rows(home: Path) -> int:
    """Events in tenant logs (init records the policy activation in the system log)."""
    with sqlite3.connect(home / "ledger.db") as conn:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE tenant != '_system'").fetchone()[0]
        )


def submit(home: Path, body: dict[str, Any] | str, *extra: str) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    return cli(home, "submit", "-", *extra, stdin=text)


def test_init_creates_a_private_key_and_a_readable_policy(home: Path) -> None:
    key = home / "keys" / "ledger.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "permit" in (home / "policy" / "default.cedar").read_text()
    again = cli(home, "init")
    assert again.exit_code == 0
    assert "nothing changed" in again.output


def test_submit_exit_codes_follow_the_verdict(home: Path) -> None:
    allowed = submit(home, intent(action="demo.read"), "--json")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["status"] == "executed"
    decided = submit(home, intent())
    assert decided.exit_code == 0
    assert "decided" in decided.output
    denied = submit(home, intent(action="fs.delete", safety_class="A2"))
    assert denied.exit_code == 3
    assert "denied" in denied.output
    dup = submit(home, intent(action="fs.delete", safety_class="A2", idempotency_key="k"))
    again = submit(home, intent(action="fs.delete", safety_class="A2", idempotency_key="k"))
    assert dup.exit_code == again.exit_code == 3
    assert "duplicate" in again.output


def test_submit_from_a_file(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "intent.json"
    path.write_text(json.dumps(intent()))
    assert cli(home, "submit", str(path)).exit_code == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "malformed JSON"),
        (json.dumps(intent(surprise=True)), "surprise: unknown field"),
        (json.dumps(intent(safety_class=3)), "safety_class"),
        (json.dumps({k: v for k, v in intent().items() if k != "tenant"}), "tenant: is required"),
        (json.dumps(intent(params={"x": "y" * 70000})), "exceeds the limit"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    home: Path, body: str, message: str
) -> None:
    result = submit(home, body)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert ledger_rows(home) == 0


def test_missing_intent_file_is_bad_input(home: Path, tmp_path: Path) -> None:
    result = cli(home, "submit", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "cannot read intent file" in result.stderr


def test_uninitialised_home_says_what_to_do(tmp_path: Path) -> None:
    result = submit(tmp_path / "empty", intent())
    assert result.exit_code == 2
    assert "run `exoarmur init` first" in result.stderr


def test_a_key_readable_by_others_is_refused_and_nothing_written(home: Path) -> None:
    os.chmod(home / "keys" / "ledger.key", 0o644)
    result = submit(home, intent())
    assert result.exit_code == 1
    assert "chmod 600" in result.stderr
    assert ledger_rows(home) == 0
    health = cli(home, "health")
    assert health.exit_code == 1


def test_a_tampered_key_is_refused_and_nothing_written(home: Path) -> None:
    key = home / "keys" / "ledger.key"
    text = key.read_text()
    key.write_text(text[:-6] + ("A" if text[-6] != "A" else "B") + text[-5:])
    result = submit(home, intent())
    assert result.exit_code == 1
    assert "ledger.key" in result.stderr
    assert ledger_rows(home) == 0


def test_a_corrupt_database_is_refused_clearly(home: Path) -> None:
    (home / "ledger.db").write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        (home / f"ledger.db{suffix}").unlink(missing_ok=True)
    result = submit(home, intent())
    assert result.exit_code == 1
    assert "corrupt or foreign file" in result.stderr
    assert cli(home, "health").exit_code == 1


def test_log_checkpoint_and_proofs_agree(home: Path) -> None:
    for n in range(5):
        submit(home, intent(target=f"t{n}"))
    events = json.loads(cli(home, "log", "--tenant", "acme", "--json").stdout)["events"]
    assert [e["seq"] for e in events] == list(range(10))
    table = cli(home, "log")
    assert "intent.recorded" in table.stdout

    vkey = cli(home, "key", "public").stdout.strip()
    note = cli(home, "checkpoint", "--tenant", "acme").stdout
    checkpoint = open_checkpoint(note, Verifier.from_string(vkey))
    assert checkpoint.size == 10

    proof = json.loads(
        cli(
            home, "prove", "inclusion", "-t", "acme", "--event-id", events[3]["event_id"], "--json"
        ).stdout
    )
    assert proof["leaf_index"] == 3
    assert proof["tree_size"] == 10
    assert proof["leaf_hash"] == events[3]["leaf_hash"]
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        3,
        10,
        [bytes.fromhex(h) for h in proof["hashes"]],
        checkpoint.root_hash,
    )
    text = cli(home, "prove", "inclusion", "-t", "acme", "--event-id", events[0]["event_id"])
    assert "verified: True" in text.stdout

    cons = json.loads(
        cli(
            home, "prove", "consistency", "-t", "acme", "--from", "4", "--to", "10", "--json"
        ).stdout
    )
    assert verify_consistency(
        4,
        10,
        bytes.fromhex(cons["old_root"]),
        checkpoint.root_hash,
        [bytes.fromhex(h) for h in cons["hashes"]],
    )
    assert (
        "verified: True"
        in cli(home, "prove", "consistency", "-t", "acme", "--from", "4", "--to", "10").stdout
    )
    assert (
        cli(home, "prove", "consistency", "-t", "acme", "--from", "9", "--to", "4").exit_code == 2
    )
    assert (
        cli(home, "prove", "consistency", "-t", "acme", "--from", "1", "--to", "99").exit_code == 1
    )

    corr = json.loads(
        cli(home, "log", "--correlation", events[0]["correlation_id"], "--json").stdout
    )["events"]
    assert len(corr) == 2

    verified = cli(home, "verify", "--tenant", "acme", "--json")
    assert verified.exit_code == 0
    assert json.loads(verified.stdout)["ok"] is True
    assert "VERIFIED" in cli(home, "verify", "-t", "acme").stdout


def test_verify_reports_an_edited_event(home: Path) -> None:
    submit(home, intent())
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute(
            "UPDATE events SET canonical = "
            "CAST(replace(CAST(canonical AS TEXT), 'q3', 'q4') AS BLOB) WHERE seq = 0"
        )
    result = cli(home, "verify", "-t", "acme")
    assert result.exit_code == 1
    assert "event seq 0" in result.stdout


def test_unknown_event_is_an_error_naming_it(home: Path) -> None:
    result = cli(home, "prove", "inclusion", "-t", "acme", "--event-id", "nope")
    assert result.exit_code == 1
    assert "no event 'nope'" in result.stderr


def test_a_reused_intent_id_exits_2_and_writes_nothing(home: Path) -> None:
    chosen = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"  # the largest ULID is still one
    first = submit(home, intent(action="demo.read", intent_id=chosen, idempotency_key="a"))
    assert first.exit_code == 0, first.output
    rows = ledger_rows(home)
    again = submit(home, intent(action="demo.read", intent_id=chosen, idempotency_key="b"))
    assert again.exit_code == 2
    assert f"intent_id: {chosen} is already recorded" in again.stderr
    assert ledger_rows(home) == rows


def test_init_shows_the_class_floor_and_health_warns_when_it_is_lowered(home: Path) -> None:
    shown = cli(home, "init")
    assert "class floor (approvals whatever policy says): A2 1, A3 2" in shown.stdout
    config = home / "config.toml"
    assert "[gate.class_floor]" in config.read_text()
    assert "\nA2 = 1\nA3 = 2\n" in config.read_text()
    report = json.loads(cli(home, "health", "--json").stdout)
    assert report["warnings"] == []
    config.write_text(config.read_text().replace("A3 = 2", "A3 = 0"))
    lowered = cli(home, "health", "--json")
    assert lowered.exit_code == 0  # a warning, not a failure
    (warning,) = json.loads(lowered.stdout)["warnings"]
    assert "A3 needs 0 approval(s), default 2" in warning
    table = cli(home, "health")
    assert "WARNING" in table.stdout
    assert "class floor lowered" in table.stdout
    # the lowered floor is in force once recorded, and the snapshot says so
    a3 = submit(home, intent(action="demo.read", safety_class="A3", target="x"), "--json")
    with sqlite3.connect(home / "ledger.db") as conn:
        (snapshot,) = conn.execute(
            "SELECT canonical FROM events WHERE tenant = '_system' AND type = 'config.snapshot' "
            "ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    assert json.loads(snapshot)["payload"]["config"]["gate"]["class_floor"]["A3"] == 0
    assert a3.exit_code == 3  # the default policy denies it: the floor only ever adds approvals
    config.write_text("[gate.class_floor]\nA3 = 'none'\n")
    broken = json.loads(cli(home, "health", "--json").stdout)
    assert broken["healthy"] is False  # an unreadable config fails; no warning is guessed
    assert broken["warnings"] == []


def test_health_reports_each_part(home: Path) -> None:
    result = cli(home, "health", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["healthy"] is True
    assert {c["name"] for c in report["checks"]} == {
        "home",
        "signing key",
        "policy",
        "executors",
        "store",
        "gate",
    }
    assert cli(home, "health").exit_code == 0
    (home / "policy" / "default.cedar").write_text("permit(principal, action")
    broken = json.loads(cli(home, "health", "--json").stdout)
    # The directory is not what decides: the bundle in force still is, with a warning.
    assert broken["healthy"] is True
    assert any(
        c["name"] == "policy" and "warning" in c["detail"] and "default.cedar" in c["detail"]
        for c in broken["checks"]
    )


def _policy_check(home: Path) -> dict[str, Any]:
    report = json.loads(cli(home, "health", "--json").stdout)
    check: dict[str, Any] = next(c for c in report["checks"] if c["name"] == "policy")
    return check


def test_health_reports_the_bundle_in_force_not_the_policy_directory(
    home: Path, tmp_path: Path
) -> None:
    directory = PolicyEngine(PolicyBundle.from_dir(home / "policy")).policy_hash
    assert _policy_check(home)["detail"] == f"bundle {directory} in force"
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "all.cedar").write_text('@id("all") permit (principal, action, resource);')
    assert cli(home, "policy", "activate", str(candidate)).exit_code == 0
    assert cli(home, "policy", "activate", str(candidate), "--tenant", "acme").exit_code == 0
    in_force = PolicyEngine(PolicyBundle.from_dir(candidate)).policy_hash
    check = _policy_check(home)
    assert check["ok"] is True
    assert check["detail"].startswith(f"bundle {in_force} in force; tenant acme: bundle {in_force}")
    assert (
        f"warning: {home / 'policy'} holds bundle {directory}, which is not in force"
        in (check["detail"])
    )


def test_health_fails_when_no_policy_is_in_force(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Home(home).init()
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute("DELETE FROM events WHERE type = 'policy.activated'")
    check = _policy_check(home)
    assert check["ok"] is False
    assert "no policy is in force" in check["detail"]


def test_demo_is_deterministic_across_fresh_homes(tmp_path: Path) -> None:
    outputs = []
    for name in ("one", "two"):
        result = cli(tmp_path / name, "demo", "quickstart", "--deterministic")
        assert result.exit_code == 0, result.output
        outputs.append(dict(MARKER.findall(result.stdout)))
    one, two = outputs
    assert one["DEMO_RESULT"] == "PASS"
    assert one["CHECKPOINT_VERIFIED"] == "true"
    assert one["ACTIONS_ALLOWED"] == "3"
    assert one["ACTIONS_DENIED"] == "2"
    assert one["ACTIONS_EXECUTED"] == "2"
    assert one["ROOT_HASH"] == two["ROOT_HASH"]
    assert one["TREE_SIZE"] == two["TREE_SIZE"] == "14"
    # again in the same home: every step is a duplicate, the log does not grow
    again = cli(tmp_path / "one", "demo", "quickstart", "--deterministic", "--json")
    assert json.loads(again.stdout)["markers"]["ROOT_HASH"] == one["ROOT_HASH"]


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("exoarmur ")


def test_a_deterministic_run_records_its_seed_once(tmp_path: Path) -> None:
    home = tmp_path / "det"
    for _ in range(2):
        assert cli(home, "demo", "quickstart", "--seed", "41").exit_code == 0
    system = json.loads(cli(home, "log", "--tenant", "_system", "--json").stdout)["events"]
    runs = [e for e in system if e["type"] == "run.started"]
    assert len(runs) == 1
    assert runs[0]["type"] == "run.started"
    assert runs[0]["payload"]["ids"] == {"generator": "seeded-ulid", "seed": 41}
    assert runs[0]["payload"]["clock"]["kind"] == "step"
