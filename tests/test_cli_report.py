"""``exoarmur report``: a caller-executed action's start and end, recorded from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.home import open_governor
from exoarmur.replay import replay
from served import prepare

runner = CliRunner()
TICKET = {"tenant": "acme", "action": "ticket.read", "target": "tickets/7", "safety_class": "A0"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    prepare(home)
    return home


def _decided(home: Path) -> str:
    with open_governor(home) as governor:
        outcome = governor.submit(TICKET | {"actor": {"id": "agent-7", "kind": "agent"}})
    assert outcome.status == "decided"
    return outcome.intent_id


def _report(home: Path, *args: str) -> tuple[int, str]:
    answer = runner.invoke(app, ["--home", str(home), "report", *args])
    return answer.exit_code, answer.output


def test_start_then_status_records_the_story_which_replays(home: Path, tmp_path: Path) -> None:
    intent_id = _decided(home)
    code, out = _report(home, intent_id, "-t", "acme", "--start", "--actor", "agent-7")
    assert code == 0, out
    assert "execution.started" in out
    result = tmp_path / "result.json"
    result.write_text('{"title": "printer on fire"}', encoding="utf-8")
    code, out = _report(
        home,
        intent_id,
        "-t",
        "acme",
        "--status",
        "succeeded",
        "--result-file",
        str(result),
        "--actor",
        "agent-7",
        "--json",
    )
    assert code == 0, out
    outcome = json.loads(out)
    assert outcome["status"] == "executed"
    assert outcome["result"] == {"title": "printer on fire"}
    code, out = _report(
        home, intent_id, "-t", "acme", "--status", "failed", "--error", "x", "--actor", "agent-7"
    )
    assert code == 1
    assert "already recorded" in out
    with open_governor(home) as governor:
        report = replay(governor.ledger.store, "acme", verifier=governor.ledger.key.verifier())
    assert report.verified, report.divergences


def test_a_key_names_the_reporter(home: Path, tmp_path: Path) -> None:
    intent_id = _decided(home)
    with open_governor(home) as governor:
        _, key = governor.add_principal("agent-9", "agent", ["acme"])
    key_file = tmp_path / "key"
    key_file.write_text(key, encoding="utf-8")
    code, out = _report(home, intent_id, "-t", "acme", "--start", "--key-file", str(key_file))
    assert code == 3  # PermissionDenied: agent-9 did not submit it
    assert "agent-7" in out


def test_a_kill_switch_blocks_the_start(home: Path) -> None:
    intent_id = _decided(home)
    with open_governor(home) as governor:
        from exoarmur.pipeline import LOCAL_ADMIN

        governor.engage_killswitch("tenant:acme", "incident", LOCAL_ADMIN)
    code, out = _report(home, intent_id, "-t", "acme", "--start", "--actor", "agent-7")
    assert code == 3
    assert "blocked" in out


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        ((), "give exactly one"),
        (("--start", "--status", "failed"), "give exactly one"),
        (("--status", "maybe"), "must be succeeded or failed"),
        (("--start",), "--actor: name who submitted"),
        (("--status", "succeeded", "--result-file", "/nonexistent"), "cannot read"),
    ],
)
def test_bad_input_names_the_option_and_writes_nothing(
    home: Path, args: tuple[str, ...], rule: str
) -> None:
    intent_id = _decided(home)
    with open_governor(home) as governor:
        size = governor.ledger.size("acme")
    code, out = _report(home, intent_id, "-t", "acme", *args)
    assert code == 2, out
    assert rule in out
    with open_governor(home) as governor:
        assert governor.ledger.size("acme") == size


def test_a_result_file_that_is_not_json_is_refused(home: Path, tmp_path: Path) -> None:
    intent_id = _decided(home)
    _report(home, intent_id, "-t", "acme", "--start", "--actor", "agent-7")
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1, "a": 2}', encoding="utf-8")
    code, out = _report(
        home,
        intent_id,
        "-t",
        "acme",
        "--status",
        "succeeded",
        "--result-file",
        str(bad),
        "--actor",
        "agent-7",
    )
    assert code == 2
    assert "--result-file" in out
    big = tmp_path / "big.json"
    big.write_text(json.dumps("x" * 300_000), encoding="utf-8")
    code, out = _report(
        home,
        intent_id,
        "-t",
        "acme",
        "--status",
        "succeeded",
        "--result-file",
        str(big),
        "--actor",
        "agent-7",
    )
    assert code == 2
    assert "larger than" in out
