"""Strangers' refused requests are audited within a budget, never one event each."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exoarmur.clock import FixedClock
from exoarmur.errors import ConfigError
from exoarmur.home import Home, open_governor
from exoarmur.model.event import ACCESS_REFUSED, ACCESS_REFUSED_COUNTED, SYSTEM_LOG, Event
from exoarmur.pipeline import Governor
from exoarmur.server import create_app
from exoarmur.server.audit import NAMED_SOURCES, RefusalAudit
from exoarmur.server.settings import RefusalBudget, ServiceSettings
from test_server_support import TestClient

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BUDGET = RefusalBudget(window_seconds=60, per_source=5, max_bytes_per_hour=20_000)


def _system_events(governor: Governor, since: int) -> list[Event]:
    return list(governor.ledger.store.events(SYSTEM_LOG, since, governor.ledger.size(SYSTEM_LOG)))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def governor(tmp_path: Path, clock: FixedClock) -> Iterator[Governor]:
    Home(tmp_path).init()
    with open_governor(tmp_path, clock=clock) as opened:
        yield opened


def test_thousands_of_anonymous_requests_add_a_bounded_number_of_events(
    governor: Governor, clock: FixedClock
) -> None:
    client = TestClient(create_app(governor, refusals=BUDGET), raise_server_exceptions=False)
    before = governor.ledger.size(SYSTEM_LOG)
    fake_keys = [f"exo_{n:016x}_{'A' * 43}" for n in range(40)]
    sent = 0
    for round_ in range(25):
        for path in ("/v1/whoami", "/v1/tenants/acme/approvals", "/v1/tenants/acme/events"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers={"Authorization": "Bearer garbage"}).status_code == 401
            sent += 2
        for key in fake_keys:
            headers = {"Authorization": f"Bearer {key}"}
            assert client.get("/v1/whoami", headers=headers).status_code == 401
            sent += 1
        if round_ == 12:
            clock.advance(timedelta(seconds=30))  # still the same window
    assert sent == 25 * (6 + 40)
    recorded = _system_events(governor, before)
    assert all(e.type == ACCESS_REFUSED for e in recorded)
    # per (source, key id): no key and "garbage" share the id None; 40 fake ids
    assert len(recorded) <= BUDGET.per_source * (1 + 40)
    bytes_added = sum(len(e.canonical) for e in recorded)
    largest = max(len(e.canonical) for e in recorded)
    assert bytes_added <= BUDGET.max_bytes_per_hour + largest
    assert all(e.payload["source"] == "testclient" for e in recorded)
    assert "A" * 43 not in str([e.payload for e in recorded])  # never a secret

    # The next window's first refusal writes the count of the last one (and is
    # itself only counted: this hour's bytes are spent).
    clock.advance(timedelta(seconds=60))
    assert client.get("/v1/whoami").status_code == 401
    after = _system_events(governor, before + len(recorded))
    assert [e.type for e in after] == [ACCESS_REFUSED_COUNTED]
    count = after[0].payload
    assert count["recorded"] == len(recorded)
    assert count["recorded"] + count["counted"] == sent
    assert count["window_start"] == "2026-03-01T12:00:00.000000Z"
    assert count["budget"] == BUDGET.to_canonical()
    assert len(count["sources"]) == NAMED_SOURCES
    assert count["sources"][0] == {
        "source": "testclient",
        "key_id": None,
        "count": 25 * 6 - BUDGET.per_source,
    }
    assert count["sources_not_named"] == 41 - NAMED_SOURCES
    assert sum(s["count"] for s in count["sources"]) <= count["counted"]


def test_a_window_with_nothing_counted_writes_no_count_and_a_new_window_starts_afresh(
    governor: Governor, clock: FixedClock
) -> None:
    audit = RefusalAudit(governor, BUDGET)
    before = governor.ledger.size(SYSTEM_LOG)
    assert all(audit.refuse("10.0.0.1", None, "GET /", "no credentials") for _ in range(5))
    assert not audit.refuse("10.0.0.1", None, "GET /", "no credentials")
    clock.advance(timedelta(seconds=60))
    assert audit.refuse("10.0.0.1", None, "GET /", "no credentials")  # a new window
    clock.advance(timedelta(seconds=60))
    assert audit.refuse("10.0.0.2", None, "GET /", "no credentials")
    audit.flush()  # nothing counted in this window: nothing to write
    types = [e.type for e in _system_events(governor, before)]
    assert types == [ACCESS_REFUSED] * 5 + [ACCESS_REFUSED_COUNTED] + [ACCESS_REFUSED] * 2


def test_the_byte_cap_holds_for_an_hour_then_resets_and_flush_writes_the_count(
    governor: Governor, clock: FixedClock
) -> None:
    budget = RefusalBudget(window_seconds=3600, per_source=1000, max_bytes_per_hour=2000)
    audit = RefusalAudit(governor, budget)
    before = governor.ledger.size(SYSTEM_LOG)
    outcomes = [audit.refuse(f"10.0.{n}.1", None, "GET /", "no credentials") for n in range(50)]
    recorded = outcomes.count(True)
    assert 1 <= recorded < 10
    assert outcomes[:recorded] == [True] * recorded
    audit.flush()
    events = _system_events(governor, before)
    assert events[-1].type == ACCESS_REFUSED_COUNTED
    assert events[-1].payload["counted"] == 50 - recorded
    clock.advance(timedelta(hours=1))
    assert audit.refuse("10.0.0.1", None, "GET /", "no credentials")


def test_sources_past_the_tracking_bound_are_counted_without_a_name(
    governor: Governor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exoarmur.server.audit.MAX_TRACKED_SOURCES", 3)
    audit = RefusalAudit(governor, BUDGET)
    for n in range(5):
        audit.refuse(f"10.9.0.{n}", "0123456789abcdef", "GET /", "unknown key")
    audit.flush()
    count = _system_events(governor, 0)[-1].payload
    assert (count["recorded"], count["counted"], count["untracked"]) == (3, 2, 2)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"server": []}, "server: must be a table"),
        ({"server": {"grace": 3}}, r"server.grace: unknown setting"),
        ({"server": {"grace_seconds": -1}}, r"server.grace_seconds: must be a number"),
        ({"server": {"grace_seconds": True}}, r"server.grace_seconds: must be a number"),
        ({"server": {"refusals": 5}}, r"server.refusals: must be a table"),
        ({"server": {"refusals": {"per_source": 0}}}, r"server.refusals.per_source: must be"),
        ({"server": {"refusals": {"burst": 1}}}, r"server.refusals.burst: unknown setting"),
    ],
)
def test_server_settings_errors_name_the_setting(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServiceSettings.from_config(table)


def test_server_settings_from_config() -> None:
    settings = ServiceSettings.from_config(
        {"server": {"grace_seconds": 2.5, "refusals": {"window_seconds": 30}}}
    )
    assert settings.grace_seconds == 2.5
    assert settings.refusals == RefusalBudget(window_seconds=30)
    assert settings.to_canonical()["grace_seconds"] == "2.5"
    assert ServiceSettings.from_config({}).to_canonical()["grace_seconds"] == 30
