"""The checkpoint anchors beside the database and the key record: their own edges."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.clock import StepClock
from exoarmur.errors import KeyFileError, LedgerCorrupt, StoreError
from exoarmur.home import Home, open_governor
from exoarmur.ids import SeededIds
from exoarmur.ledger.anchor import Anchors
from exoarmur.ledger.checkpoint import Checkpoint
from exoarmur.ledger.keyring import rotate_key
from exoarmur.ledger.keys import SigningKey
from samples import intent

runner = CliRunner()


def cli(home: Path, *args: str, stdin: str | None = None) -> Any:
    return runner.invoke(app, ["--home", str(home), *args], input=stdin)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert cli(path, "init").exit_code == 0
    body = json.dumps(intent(action="demo.read"))
    assert cli(path, "submit", "-", stdin=body).exit_code == 0
    assert cli(path, "checkpoint", "-t", "acme").exit_code == 0
    return path


def test_anchors_only_move_forward_and_are_private(tmp_path: Path) -> None:
    anchors = Anchors(tmp_path / "anchors.json")
    assert anchors.load() == {}
    assert anchors.notes("acme") == []
    anchors.record("acme", Checkpoint("o/acme", 5, b"\x01" * 32), "note at 5")
    anchors.record("acme", Checkpoint("o/acme", 3, b"\x02" * 32), "note at 3")
    anchors.record("globex", Checkpoint("o/globex", 1, b"\x03" * 32), "note at 1")
    held = anchors.load()
    assert (held["acme"].size, held["acme"].root_hash) == (5, b"\x01" * 32)
    assert anchors.notes("acme") == ["note at 5"]
    assert held["globex"].size == 1
    assert stat.S_IMODE((tmp_path / "anchors.json").stat().st_mode) == 0o600
    assert not (tmp_path / "anchors.json.tmp").exists()


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"{not json", "do not decode"),
        (b'{"format": "something/else", "logs": {}}', "format is not"),
        (b'{"format": "exoarmur.anchors/v1", "logs": {"acme": {"size": 1}}}', "do not decode"),
    ],
)
def test_an_unreadable_anchor_file_refuses_the_start(
    home: Path, content: bytes, found: str
) -> None:
    (home / "anchors.json").write_bytes(content)
    with pytest.raises(LedgerCorrupt, match=found):
        open_governor(home)
    assert cli(home, "health").exit_code == 1


def test_another_root_at_the_anchored_size_is_refused(home: Path) -> None:
    path = home / "anchors.json"
    data = json.loads(path.read_text())
    data["logs"]["acme"]["root"] = "00" * 32
    path.write_text(json.dumps(data))
    with pytest.raises(LedgerCorrupt, match="log 'acme' has another root at size 4"):
        open_governor(home)


def test_a_log_the_store_lost_entirely_is_refused(home: Path) -> None:
    path = home / "anchors.json"
    data = json.loads(path.read_text())
    data["logs"]["globex"] = dict(data["logs"]["acme"])
    path.write_text(json.dumps(data))
    with pytest.raises(LedgerCorrupt, match="log 'globex' holds 0 events"):
        open_governor(home)


def test_a_rotated_key_keeps_its_name(home: Path) -> None:
    with open_governor(home) as governor:
        old = governor.ledger.key
        with pytest.raises(KeyFileError, match="keeps the name"):
            rotate_key(
                governor.ledger.store,
                old,
                SigningKey.generate("someone.else/key"),
                StepClock(),
                SeededIds(1),
                governor.ledger.root,
                governor.ledger.origin,
            )


def test_a_rotation_cut_short_is_not_overwritten(home: Path) -> None:
    staged = home / "keys" / "ledger.key.next"
    staged.write_text("whatever was there\n")
    result = cli(home, "key", "rotate")
    assert result.exit_code == 1
    assert "an earlier rotation was cut short" in result.stderr
    assert staged.read_text() == "whatever was there\n"
    assert Home(home).signing_key()  # the key in force is untouched


def test_kept_checkpoint_files_must_be_notes(home: Path, tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    result = cli(home, "verify", "-t", "acme", "--checkpoint", str(binary))
    assert result.exit_code == 2
    assert "is not UTF-8 text" in result.stderr
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (1 << 20 | 1))
    result = cli(home, "verify", "-t", "acme", "--checkpoint", str(huge))
    assert result.exit_code == 2
    assert "larger than a signed note" in result.stderr


def test_an_anchor_that_cannot_be_written_is_a_store_error(tmp_path: Path) -> None:
    anchors = Anchors(tmp_path / "missing-dir" / "anchors.json")
    with pytest.raises(StoreError, match="cannot keep the checkpoint of log 'acme'"):
        anchors.record("acme", Checkpoint("o/acme", 1, bytes(32)), "note")
