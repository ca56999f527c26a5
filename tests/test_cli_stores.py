"""Choosing a store from the command line: --store / EXOARMUR_STORE, db upgrade, ledger copy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.errors import ConfigError
from exoarmur.home import open_store

pytest_plugins = ["backends"]

runner = CliRunner()
MARKER = re.compile(r"^([A-Z_]+)=(.*)$", re.MULTILINE)


def cli(home: Path, store: str | None, *args: str) -> Any:
    prefix = ["--home", str(home)] + (["--store", store] if store else [])
    return runner.invoke(app, [*prefix, *args])


@pytest.fixture
def database(postgres_server: Any) -> Iterator[str]:
    name = postgres_server.create_database()
    yield postgres_server.dsn(name)
    postgres_server.drop_database(name)


def test_the_demo_and_replay_run_on_postgresql(tmp_path: Path, database: str) -> None:
    home = tmp_path / "home"
    upgraded = cli(home, database, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert "applied" in upgraded.stdout
    assert "up to date" in cli(home, database, "db", "upgrade").stdout
    assert json.loads(cli(home, database, "db", "upgrade", "--json").stdout) == {"applied": []}
    demo = cli(home, database, "demo", "quickstart", "--deterministic")
    assert demo.exit_code == 0, demo.output
    markers = dict(MARKER.findall(demo.stdout))
    assert markers["DEMO_RESULT"] == "PASS"
    assert not (home / "ledger.db").exists()  # the ledger is in PostgreSQL
    replayed = cli(home, database, "replay", "verify", "-t", "demo")
    assert replayed.exit_code == 0, replayed.output
    health = json.loads(cli(home, database, "health", "--json").stdout)
    assert health["healthy"] is True
    detail = next(c["detail"] for c in health["checks"] if c["name"] == "store")
    assert "postgresql://" in detail
    # the same deterministic run on SQLite gives the same root
    sqlite_demo = cli(tmp_path / "other", None, "demo", "quickstart", "--deterministic")
    assert dict(MARKER.findall(sqlite_demo.stdout))["ROOT_HASH"] == markers["ROOT_HASH"]


def test_ledger_copy_from_sqlite_to_postgresql_keeps_proofs_and_checkpoints(
    tmp_path: Path, database: str
) -> None:
    home = tmp_path / "home"
    assert cli(home, None, "demo", "quickstart").exit_code == 0
    source = f"sqlite:///{home / 'ledger.db'}"
    copied = cli(home, None, "ledger", "copy", "--from", source, "--to", database, "--json")
    assert copied.exit_code == 0, copied.output
    report = json.loads(copied.stdout)
    assert report["verified"] == {"_system": True, "demo": True}
    assert report["copied"]["demo"] == 14
    # the destination answers for itself: replay there, with the same key
    assert cli(home, database, "replay", "verify", "-t", "demo").exit_code == 0
    again = cli(home, None, "ledger", "copy", "--from", source, "--to", database)
    assert again.exit_code == 2  # never merged into a log that already has events
    text = cli(home, None, "ledger", "copy", "--from", source, "--to", f"sqlite:///{tmp_path}/c.db")
    assert "verified" in text.stdout


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ledger.db", "is not a URL"),
        ("mysql://x", "unknown scheme"),
        ("sqlite://", "write sqlite:///relative.db"),
    ],
)
def test_bad_store_urls_are_named(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url, tmp_path / "default.db")
    result = cli(tmp_path / "home", url, "init")
    assert result.exit_code == 2
    assert message in result.stderr


def test_db_upgrade_needs_a_postgresql_url(tmp_path: Path) -> None:
    result = cli(tmp_path / "home", None, "db", "upgrade")
    assert result.exit_code == 2
    assert "postgresql://" in result.stderr


def test_passwords_are_not_printed(tmp_path: Path) -> None:
    from exoarmur.cli._common import redact_url as _redact_url

    assert _redact_url("postgresql://me:s3cret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert _redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_a_key_repeated_inside_one_append_is_refused_clearly_on_postgresql(database: str) -> None:
    from datetime import UTC, datetime

    from exoarmur.errors import StoreError
    from exoarmur.model.event import EventDraft

    now = datetime(2026, 1, 1, tzinfo=UTC)
    drafts = [
        EventDraft(
            event_id=f"e{n}",
            tenant="acme",
            type="intent.recorded",
            correlation_id="c",
            event_time=now,
            process_time=now,
            actor={"id": "a", "kind": "agent"},
            payload={},
            intent_id=f"i{n}",
            idempotency_key="same",
        )
        for n in range(2)
    ]
    store = open_store(database, Path("unused.db"))
    try:
        with pytest.raises(StoreError, match="appears twice"):
            store.append("acme", drafts)
        assert store.size("acme") == 0
    finally:
        store.close()
