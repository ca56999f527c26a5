"""``exoarmur principal rotate`` and the book's fold: a new key, the old one stops when recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from exoarmur.cli import app
from exoarmur.clock import FixedClock
from exoarmur.encoding import parse_time
from exoarmur.errors import AuthenticationError, InputError, NotFound
from exoarmur.home import Home, open_governor
from exoarmur.model.event import PRINCIPAL_KEY_ROTATED, SYSTEM_LOG
from exoarmur.principals import PRINCIPAL_EVENTS, PrincipalBook

runner = CliRunner()


def cli(home: Path, *args: str) -> Any:
    return runner.invoke(app, ["--home", str(home), *args])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    Home(path).init()
    assert cli(path, "principal", "add", "alice", "--role", "operator", "-t", "acme").exit_code == 0
    return path


def _rotations(home: Path) -> list[Any]:
    with open_governor(home, recover=False, record_run=False) as governor:
        store = governor.ledger.store
        return [
            e
            for e in store.events(SYSTEM_LOG, 0, store.size(SYSTEM_LOG))
            if e.type == PRINCIPAL_KEY_ROTATED
        ]


def test_rotate_prints_the_new_key_once_and_records_only_its_hash(home: Path) -> None:
    done = cli(home, "principal", "rotate", "alice", "--grace", "60", "--json")
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    (event,) = _rotations(home)
    assert event.payload["key_id"] == answer["key_id"]
    assert event.payload["old_key_stops_at"] == answer["old_key_stops_at"]
    assert answer["api_key"].split("_", 2)[2] not in json.dumps(event.payload)
    stops = parse_time(answer["old_key_stops_at"])
    assert timedelta(seconds=55) < stops - datetime.now(UTC) <= timedelta(seconds=60)
    with open_governor(home, recover=False, record_run=False) as governor:
        assert governor.authenticate(answer["api_key"]).name == "alice"
        assert governor.principals().get("alice").key_id == answer["key_id"]  # type: ignore[union-attr]


def test_rotate_without_json_prints_only_the_key_on_stdout(home: Path) -> None:
    done = cli(home, "principal", "rotate", "alice")
    assert done.exit_code == 0, done.output
    key = done.stdout.strip()
    assert key.startswith("exo_")
    assert "\n" not in key
    with open_governor(home, recover=False, record_run=False) as governor:
        assert governor.authenticate(key).name == "alice"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["nobody"], 1, "no active principal"),  # as `principal revoke` answers a missing name
        (["alice", "--grace", "-1"], 2, "--grace"),
        (["alice", "--grace", str(10**9)], 2, "grace"),
    ],
)
def test_a_bad_rotation_exits_non_zero_and_records_nothing(
    home: Path, args: list[str], code: int, needle: str
) -> None:
    done = cli(home, "principal", "rotate", *args)
    assert done.exit_code == code, done.output
    assert needle in done.output
    assert _rotations(home) == []


def test_the_book_judges_a_replaced_key_by_the_clock_it_is_given(tmp_path: Path) -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    Home(tmp_path / "h").init()
    with open_governor(tmp_path / "h", clock=FixedClock(t0)) as governor:
        _, first = governor.add_principal("bob", "operator", ["acme"])
        _, second = governor.rotate_principal_key("bob", grace_seconds=100)
        # Replaced again within the grace: the first key keeps its earlier stop.
        _, third = governor.rotate_principal_key("bob", grace_seconds=1000)
        store = governor.ledger.store
        events = [
            e
            for e in store.events(SYSTEM_LOG, 0, store.size(SYSTEM_LOG))
            if e.type in PRINCIPAL_EVENTS
        ]
        with pytest.raises(InputError, match="grace"):
            governor.rotate_principal_key("bob", grace_seconds=True)  # type: ignore[arg-type]
        with pytest.raises(NotFound):
            governor.rotate_principal_key("nobody")
    book = PrincipalBook.from_events(events)
    for key in (first, second, third):
        assert book.authenticate(key, lambda: t0 + timedelta(seconds=99)).name == "bob"
    with pytest.raises(AuthenticationError):
        book.authenticate(first, lambda: t0 + timedelta(seconds=100))
    assert book.authenticate(second, lambda: t0 + timedelta(seconds=999)).name == "bob"
    for key in (first, second):
        with pytest.raises(AuthenticationError):
            book.authenticate(key, lambda: t0 + timedelta(seconds=1000))
    assert book.authenticate(third, lambda: t0 + timedelta(days=3650)).name == "bob"


def test_a_current_key_is_judged_without_reading_the_clock(tmp_path: Path) -> None:
    """A stepping clock must advance as before rotations existed: golden histories stay put."""
    Home(tmp_path / "h").init()
    with open_governor(tmp_path / "h", clock=FixedClock(datetime(2030, 1, 1, tzinfo=UTC))) as g:
        _, key = g.add_principal("bob", "operator", ["acme"])
        book = g.principals()

    def no_clock() -> datetime:
        raise AssertionError("the clock was read")

    assert book.authenticate(key, no_clock).name == "bob"
