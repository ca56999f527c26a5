"""The SQLite store: atomic, durable appends, group commit, idempotency, tamper detection."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exoarmur.errors import DuplicateIntent, StoreError, StoreUnavailable
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.merkle import Frontier, leaf_hash
from exoarmur.ledger.sqlite import SqliteStore
from exoarmur.model.event import EventDraft

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def draft(
    n: int, tenant: str = "acme", key: str | None = None, intent: str | None = None
) -> EventDraft:
    return EventDraft(
        event_id=f"ev-{tenant}-{n}",
        tenant=tenant,
        type="test.event",
        correlation_id=f"corr-{n % 3}",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n},
        intent_id=intent,
        idempotency_key=key,
    )


def test_appends_get_consecutive_positions_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with SqliteStore(path) as store:
        first = store.append("acme", [draft(0), draft(1)])
        second = store.append("acme", [draft(2)])
        assert [e.seq for e in first + second] == [0, 1, 2]
    with SqliteStore(path) as store:
        assert store.size("acme") == 3
        events = list(store.events("acme"))
        assert [e.payload["n"] for e in events] == [0, 1, 2]
        assert all(leaf_hash(e.canonical) == e.leaf_hash for e in events)
        assert store.event_by_id("acme", "ev-acme-1") == events[1]
        assert [e.seq for e in store.events_for_correlation("acme", "corr-0")] == [0]


def test_tenants_have_separate_logs(store: SqliteStore) -> None:
    store.append("acme", [draft(0)])
    store.append("globex", [draft(0, tenant="globex"), draft(1, tenant="globex")])
    assert store.size("acme") == 1
    assert store.size("globex") == 2
    assert store.tenants() == ["acme", "globex"]
    assert store.event_by_id("acme", "ev-globex-0") is None


def test_a_draft_of_another_tenant_is_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="belongs to tenant"):
        store.append("acme", [draft(0, tenant="globex")])
    assert store.size("acme") == 0


def test_duplicate_idempotency_key_writes_nothing(store: SqliteStore) -> None:
    store.append("acme", [draft(0, key="k", intent="i-1"), draft(1)])
    with pytest.raises(DuplicateIntent) as caught:
        store.append("acme", [draft(2, key="k", intent="i-2"), draft(3)])
    assert caught.value.intent_id == "i-1"
    assert store.size("acme") == 2
    assert store.intent_for_key("acme", "k") == "i-1"
    # the same key in another tenant is another key
    store.append("globex", [draft(0, tenant="globex", key="k", intent="i-9")])


def test_group_commit_batches_concurrent_appends_and_loses_none(store: SqliteStore) -> None:
    threads, per_thread = 8, 60
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                store.append("acme", [draft(t * 1000 + i)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors
    total = threads * per_thread
    assert store.size("acme") == total
    assert sorted(e.payload["n"] for e in store.events("acme")) == sorted(
        t * 1000 + i for t in range(threads) for i in range(per_thread)
    )
    assert store.commits < total, "every append paid its own commit: no group commit"


def test_a_duplicate_in_a_batch_does_not_sink_the_others(store: SqliteStore) -> None:
    store.append("acme", [draft(0, key="taken", intent="i-0")])
    results: dict[int, BaseException | int] = {}
    barrier = threading.Barrier(6)

    def work(n: int) -> None:
        barrier.wait()
        key = "taken" if n % 2 else f"free-{n}"
        try:
            results[n] = store.append("acme", [draft(n, key=key, intent=f"i-{n}")])[0].seq
        except DuplicateIntent as exc:
            results[n] = exc

    pool = [threading.Thread(target=work, args=(n,)) for n in range(1, 7)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert sorted(v for v in results.values() if isinstance(v, int)) == [1, 2, 3]
    assert sum(isinstance(v, DuplicateIntent) for v in results.values()) == 3
    assert store.size("acme") == 4
    frontier = Frontier()
    for event in store.events("acme"):
        frontier.append(event.leaf_hash)
    assert Ledger(store, SigningKey.generate("x/y")).root("acme") == frontier.root()


def test_two_stores_on_one_file_keep_one_consistent_tree(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "shared.db"
    with SqliteStore(path) as a, SqliteStore(path) as b:
        for n in range(20):
            (a if n % 3 else b).append("acme", [draft(n)])
        assert a.size("acme") == b.size("acme") == 20
        assert [e.seq for e in a.events("acme")] == list(range(20))
        assert Ledger(a, key).verify("acme").ok


def test_a_corrupt_database_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StoreUnavailable, match="corrupt or foreign file"):
        SqliteStore(path)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreUnavailable, match="schema version 99"):
        SqliteStore(path)


def test_closed_store_refuses_appends(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.append("acme", [draft(0)])
    assert store.append("acme", []) == []


def test_events_page_through_long_logs(store: SqliteStore) -> None:
    store.append("acme", [draft(n) for n in range(2500)])
    assert sum(1 for _ in store.events("acme")) == 2500
    assert [e.seq for e in store.events("acme", 998, 1003)] == [998, 999, 1000, 1001, 1002]


def test_latest_of_type_uses_an_index_not_a_scan(store: SqliteStore) -> None:
    store.append("acme", [draft(n) for n in range(50)])
    with sqlite3.connect(store.path) as conn:
        plan = " ".join(
            str(row[3])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT canonical, leaf_hash FROM events WHERE tenant = ? "
                "AND seq = (SELECT max(seq) FROM events WHERE tenant = ? AND type = ?)",
                ("acme", "acme", "test.event"),
            )
        )
    assert "events_by_type" in plan
    latest = store.latest_of_type("acme", "test.event")
    assert latest is not None
    assert latest.seq == 49
    assert store.latest_of_type("acme", "no.such.type") is None


def test_events_of_type_uses_an_index_not_a_scan(store: SqliteStore) -> None:
    store.append("acme", [draft(n) for n in range(50)])
    with sqlite3.connect(store.path) as conn:
        plan = " ".join(
            str(row[3])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT canonical FROM events INDEXED BY events_by_type "
                "WHERE tenant = ? AND type IN (?, ?) AND seq < ? ORDER BY seq",
                ("acme", "test.event", "other", 10),
            )
        )
    assert "USING INDEX events_by_type" in plan
    assert [e.seq for e in store.events_of_type("acme", "test.event", stop=3)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("events_for_intent", "events_by_intent_seq"),
        ("events_for_correlation", "events_by_correlation_seq"),
    ],
)
def test_per_intent_and_per_correlation_reads_use_their_index(
    store: SqliteStore, query: str, index: str
) -> None:
    # Without statistics SQLite would walk every event of the tenant for these.
    store.append("acme", [draft(n, intent=f"i-{n % 5}") for n in range(60)])
    with sqlite3.connect(store.path) as conn:
        sql = (
            f"EXPLAIN QUERY PLAN SELECT canonical FROM events INDEXED BY {index} "
            "WHERE tenant = ? AND intent_id = ? ORDER BY seq"
        )
        if "correlation" in index:
            sql = sql.replace("intent_id", "correlation_id")
        plan = " ".join(str(row[3]) for row in conn.execute(sql, ("acme", "x")))
    assert index in plan
    found = getattr(store, query)("acme", "i-1" if query == "events_for_intent" else "corr-1")
    assert found
    assert [e.seq for e in found] == sorted(e.seq for e in found)
