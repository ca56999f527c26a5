"""What `verify`, `health` and every start must refuse (issue 10, items 4 to 7 and 12).

A verification over nothing, a log nothing signed covers, a store rolled back
behind its last checkpoint, a signing key swapped in, an index column moved
to another intent, a garbage row: each is named, never reported as fine.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import EXIT_UNANCHORED, app
from exoarmur.errors import KeyFileError, LedgerCorrupt
from exoarmur.home import Home, open_governor
from exoarmur.ledger.checkpoint import open_checkpoint
from exoarmur.ledger.keys import SigningKey, Verifier, load_signing_key, write_signing_key
from exoarmur.model.event import KEY_RECORDED, KEY_ROTATED, SYSTEM_LOG
from samples import intent

runner = CliRunner()
MARKER = re.compile(r"^([A-Z_]+)=(.*)$", re.MULTILINE)


def cli(home: Path, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, ["--home", str(home), *args], input=stdin)


def submit(home: Path, **fields: Any) -> None:
    result = cli(home, "submit", "-", stdin=json.dumps(intent(**fields)))
    assert result.exit_code == 0, result.output


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert cli(path, "init").exit_code == 0
    submit(path, action="demo.read")
    return path


# -- 5: verified over nothing ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "--tenant", "never-existed"),
        ("replay", "verify", "--tenant", "acmee"),
        ("checkpoint", "--tenant", "acmee"),
    ],
)
def test_an_unknown_tenant_is_an_error_naming_it(home: Path, args: tuple[str, ...]) -> None:
    result = cli(home, *args)
    assert result.exit_code == 2, result.output
    assert repr(args[-1]) in result.stderr
    assert "VERIFIED" not in result.stdout


def test_an_unknown_audit_stream_is_an_error_naming_it(home: Path) -> None:
    result = cli(home, "replay", "verify", "-t", "acme", "--audit-stream-id", "01NOPE")
    assert result.exit_code == 2
    assert "'01NOPE'" in result.stderr
    assert "REPLAY_VERIFIED" not in result.stdout


def test_a_log_with_nothing_signed_at_its_end_is_unanchored(home: Path) -> None:
    unanchored = cli(home, "verify", "-t", "acme", "--json")
    assert unanchored.exit_code == EXIT_UNANCHORED == 7
    report = json.loads(unanchored.stdout)
    assert report["status"] == "UNANCHORED"
    assert report["checkpoint_size"] is None
    text = cli(home, "verify", "-t", "acme")
    assert text.exit_code == EXIT_UNANCHORED
    assert "UNANCHORED" in text.stdout
    assert "VERIFIED" not in text.stdout
    replayed = cli(home, "replay", "verify", "-t", "acme")
    assert replayed.exit_code == EXIT_UNANCHORED
    assert dict(MARKER.findall(replayed.stdout))["STATUS"] == "UNANCHORED"

    assert cli(home, "checkpoint", "-t", "acme").exit_code == 0
    assert cli(home, "verify", "-t", "acme").exit_code == 0
    assert cli(home, "replay", "verify", "-t", "acme").exit_code == 0
    # the checkpoints rows deleted: back to unanchored, never VERIFIED
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute("DELETE FROM checkpoints")
    again = cli(home, "verify", "-t", "acme", "--json")
    assert again.exit_code == EXIT_UNANCHORED
    assert json.loads(again.stdout)["status"] == "UNANCHORED"


# -- 6: rollback ------------------------------------------------------------------


def test_a_store_restored_from_before_its_last_checkpoint_is_refused(
    home: Path, tmp_path: Path
) -> None:
    """A database copied, then more events and a checkpoint, then the copy put back
    (what deleting ledger.db-wal after a crash does): start and health refuse it."""
    assert cli(home, "checkpoint", "-t", "acme").exit_code == 0
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        if (home / name).exists():
            shutil.copy2(home / name, saved / name)
    for n in range(3):
        submit(home, action="demo.read", target=f"reports/{n}.txt")
    kept = tmp_path / "kept.note"
    kept.write_text(cli(home, "checkpoint", "-t", "acme").stdout)
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
        (home / name).unlink(missing_ok=True)
        if (saved / name).exists():
            shutil.copy2(saved / name, home / name)

    refused = cli(home, "submit", "-", stdin=json.dumps(intent(action="demo.read")))
    assert refused.exit_code == 1
    assert "rolled back" in refused.stderr
    assert "log 'acme' holds 4 events, but a checkpoint signed here covered 16" in refused.stderr
    with pytest.raises(LedgerCorrupt, match="rolled back"):
        open_governor(home)
    health = cli(home, "health", "--json")
    assert health.exit_code == 1
    store = next(c for c in json.loads(health.stdout)["checks"] if c["name"] == "store")
    assert not store["ok"]
    assert "rolled back" in store["detail"]
    # verify reports it, from the home's anchor and from a note kept anywhere else
    (home / "anchors.json").unlink()
    alone = cli(home, "verify", "-t", "acme")
    assert alone.exit_code == 0  # the store alone cannot know...
    caught = cli(home, "verify", "-t", "acme", "--checkpoint", str(kept), "--json")
    assert caught.exit_code == 1  # ...a checkpoint kept elsewhere can
    problems = json.loads(caught.stdout)["problems"]
    assert "kept checkpoint 1 covers 16 events, the log holds 4" in problems[0]


def test_a_kept_checkpoint_of_another_tree_is_caught(home: Path, tmp_path: Path) -> None:
    note = cli(home, "checkpoint", "-t", "acme").stdout
    submit(home, action="demo.read", target="reports/2.txt")
    assert cli(home, "checkpoint", "-t", "acme").exit_code == 0
    good = tmp_path / "good.note"
    good.write_text(note)
    result = cli(home, "verify", "-t", "acme", "--checkpoint", str(good), "--json")
    assert result.exit_code == 0, result.output
    # the note kept elsewhere, then the one beside the database
    assert json.loads(result.stdout)["kept_checkpoint_sizes"] == [4, 8]
    # a note for the same size with another root: signed by the same key, so only a fork makes it
    key = load_signing_key(home / "keys" / "ledger.key")
    from exoarmur.ledger.checkpoint import Checkpoint, sign_checkpoint

    checkpoint = open_checkpoint(note, key.verifier())
    fork = Checkpoint(checkpoint.origin, checkpoint.size, bytes(32))
    bad = tmp_path / "fork.note"
    bad.write_text(sign_checkpoint(fork, key))
    result = cli(home, "verify", "-t", "acme", "--checkpoint", str(bad), "--json")
    assert result.exit_code == 1
    assert "is not a prefix of this log" in json.loads(result.stdout)["problems"][0]
    stranger = tmp_path / "stranger.note"
    stranger.write_text(sign_checkpoint(checkpoint, SigningKey.generate(key.name)))
    result = cli(home, "verify", "-t", "acme", "--checkpoint", str(stranger), "--json")
    assert result.exit_code == 1
    assert "no signature by" in json.loads(result.stdout)["problems"][0]
    missing = cli(home, "verify", "-t", "acme", "--checkpoint", str(tmp_path / "absent"))
    assert missing.exit_code == 2
    assert "--checkpoint: cannot read" in missing.stderr


# -- 7: the signing key --------------------------------------------------------------


def test_init_records_the_key_and_a_swapped_key_is_refused(home: Path) -> None:
    key_path = home / "keys" / "ledger.key"
    key = load_signing_key(key_path)
    with open_governor(home) as governor:
        recorded = governor.ledger.store.latest_of_type(SYSTEM_LOG, KEY_RECORDED)
    assert recorded is not None
    assert recorded.payload == {"verifier_key": key.verifier_key()}

    key_path.unlink()
    write_signing_key(key_path, SigningKey.generate(key.name))  # valid, 0600, another key
    refused = cli(home, "submit", "-", stdin=json.dumps(intent(action="demo.read")))
    assert refused.exit_code == 1
    assert "is not the key this ledger records" in refused.stderr
    assert "exoarmur key rotate" in refused.stderr
    with pytest.raises(KeyFileError, match="not the key this ledger records"):
        open_governor(home)
    assert cli(home, "checkpoint", "-t", "acme").exit_code == 1
    assert cli(home, "health").exit_code == 1


def test_a_rotated_key_is_accepted_and_old_checkpoints_still_verify(
    home: Path, tmp_path: Path
) -> None:
    old = load_signing_key(home / "keys" / "ledger.key")
    old_note = tmp_path / "old.note"
    old_note.write_text(cli(home, "checkpoint", "-t", "acme").stdout)

    rotated = cli(home, "key", "rotate")
    assert rotated.exit_code == 0, rotated.output
    new = load_signing_key(home / "keys" / "ledger.key")
    assert new.key_id() != old.key_id()
    assert new.name == old.name
    # the printed note is signed by both keys
    for key in (old, new):
        open_checkpoint(rotated.stdout, key.verifier())
    assert not (home / "keys" / "ledger.key.next").exists()

    submit(home, action="demo.read", target="reports/after.txt")
    with open_governor(home) as governor:
        event = governor.ledger.store.latest_of_type(SYSTEM_LOG, KEY_ROTATED)
    assert event is not None
    assert event.payload["old_verifier_key"] == old.verifier_key()
    assert event.payload["new_verifier_key"] == new.verifier_key()
    assert event.payload["retired"] == [old.verifier_key()]

    note = cli(home, "checkpoint", "-t", "acme").stdout
    assert open_checkpoint(note, Verifier.from_string(new.verifier_key())).size == 8
    for log in ("acme", SYSTEM_LOG):
        assert cli(home, "checkpoint", "-t", log).exit_code == 0
        result = cli(home, "verify", "-t", log, "--checkpoint", str(old_note))
        if log == "acme":
            assert result.exit_code == 0, result.output
    assert cli(home, "replay", "verify", "-t", "acme").exit_code == 0
    assert cli(home, "health").exit_code == 0
    bundle = tmp_path / "bundle.json"
    story = _first_story(home)
    exported = cli(home, "evidence", "export", "-t", "acme", "-c", story, "-o", str(bundle))
    assert exported.exit_code == 0, exported.output
    checked = cli(home, "verify-bundle", str(bundle))
    assert checked.exit_code == 0, checked.output

    # the old key put back is now a swapped key
    (home / "keys" / "ledger.key").unlink()
    write_signing_key(home / "keys" / "ledger.key", old)
    assert cli(home, "health").exit_code == 1


def _first_story(home: Path) -> str:
    with open_governor(home) as governor:
        return next(governor.ledger.store.events("acme", 0, 1)).correlation_id


def test_a_ledger_without_a_key_record_records_the_key_once(tmp_path: Path) -> None:
    path = tmp_path / "home"
    assert cli(path, "init").exit_code == 0
    # a ledger from before keys were recorded: here, a new one under the same home
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "anchors.json"):
        (path / name).unlink(missing_ok=True)
    home = Home(path)
    with open_governor(home) as governor:
        first = governor.ledger.store.latest_of_type(SYSTEM_LOG, KEY_RECORDED)
    with open_governor(home) as governor:
        again = governor.ledger.store.latest_of_type(SYSTEM_LOG, KEY_RECORDED)
    assert first is not None
    assert again is not None
    assert again.seq == first.seq  # recorded once, not at every start


# -- 4 and 12 from the command line ----------------------------------------------------


def test_a_finish_moved_to_another_intent_fails_verify_replay_and_show(home: Path) -> None:
    submit(home, action="demo.read", target="reports/other.txt")
    assert cli(home, "checkpoint", "-t", "acme").exit_code == 0
    with sqlite3.connect(home / "ledger.db") as conn:
        first, second = (
            row[0]
            for row in conn.execute(
                "SELECT intent_id FROM events WHERE tenant = 'acme' AND type = "
                "'intent.recorded' ORDER BY seq"
            )
        )
        conn.execute(
            "UPDATE events SET intent_id = ? WHERE tenant = 'acme' AND intent_id = ? "
            "AND type = 'execution.finished'",
            (second, first),
        )
    verified = cli(home, "verify", "-t", "acme")
    assert verified.exit_code == 1
    assert "FAILED" in verified.stdout
    assert "log 'acme' seq 3: the stored intent_id is" in verified.stdout
    replayed = cli(home, "replay", "verify", "-t", "acme")
    assert replayed.exit_code == 1
    assert "log 'acme' seq 3" in replayed.stderr
    shown = cli(home, "show", "-t", "acme", second)
    assert shown.exit_code == 1
    assert "log 'acme' seq 3" in shown.stderr
    # the next start does not record outcome_unknown for the intent that finished
    refused = cli(home, "submit", "-", stdin=json.dumps(intent(action="demo.read")))
    assert refused.exit_code == 1
    assert "log 'acme' seq 3" in refused.stderr
    with sqlite3.connect(home / "ledger.db") as conn:
        unknown = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'execution.outcome_unknown'"
        ).fetchone()[0]
    assert unknown == 0


def test_a_garbage_row_is_named_by_log_and_position(home: Path) -> None:
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute("UPDATE events SET canonical = X'00ff' WHERE tenant = 'acme' AND seq = 2")
    where = "log 'acme' seq 2: stored event bytes do not decode"
    verified = cli(home, "verify", "-t", "acme")
    assert verified.exit_code == 1
    assert where in verified.stdout
    for args in (("replay", "verify", "-t", "acme"), ("log", "-t", "acme")):
        result = cli(home, *args)
        assert result.exit_code == 1, args
        assert where in result.stderr, args


def test_serve_refuses_a_swapped_key_and_a_rolled_back_store(home: Path) -> None:
    key_path = home / "keys" / "ledger.key"
    key = load_signing_key(key_path)
    key_path.unlink()
    write_signing_key(key_path, SigningKey.generate(key.name))
    refused = cli(home, "serve", "--port", "1")
    assert refused.exit_code == 1
    assert "is not the key this ledger records" in refused.stderr
    key_path.unlink()
    write_signing_key(key_path, key)
    assert cli(home, "checkpoint", "-t", "acme").exit_code == 0
    anchors = json.loads((home / "anchors.json").read_text())
    anchors["logs"]["acme"]["size"] += 1  # as if the store lost the last event
    (home / "anchors.json").write_text(json.dumps(anchors))
    refused = cli(home, "serve", "--port", "1")
    assert refused.exit_code == 1
    assert "rolled back" in refused.stderr


def test_a_deleted_idempotency_row_is_caught(home: Path) -> None:
    """Without its row, the same key could record (and run) the intent a second time."""
    assert cli(home, "checkpoint", "-t", "acme").exit_code == 0
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute("DELETE FROM idempotency WHERE tenant = 'acme' AND key LIKE 'agent-1 %'")
    result = cli(home, "verify", "-t", "acme", "--json")
    assert result.exit_code == 1
    assert "is not indexed for it" in json.loads(result.stdout)["problems"][0]
