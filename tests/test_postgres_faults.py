"""PostgreSQL under faults, on a real server of this module's own that is killed for real.

The server is SIGKILLed (postmaster and every backend at once) during a stream
of appends; an ExoArmur process is SIGKILLed mid-stream; every submission is
delivered twice, across a restart. Acknowledged means present exactly once;
an outage means a fast ``StoreUnavailable``, never a hang and never a false
success; the same store object goes on once the server is back.

Also here: what only PostgreSQL has (schema migrations, session settings,
refusals the database makes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from children import whole_lines
from exoarmur.clock import SystemClock
from exoarmur.errors import ConfigError, StoreError, StoreUnavailable
from exoarmur.executors import EchoExecutor, ExecutorRegistry
from exoarmur.ids import RandomIds
from exoarmur.ledger import postgres
from exoarmur.ledger.keys import SigningKey
from exoarmur.ledger.log import Ledger
from exoarmur.ledger.postgres import Migration, PostgresStore, RunLock, upgrade
from exoarmur.ledger.store import LedgerStore
from exoarmur.model.event import EventDraft, intent_key
from exoarmur.pipeline import Governor
from exoarmur.policy import PolicyBundle, PolicyEngine
from samples import POLICY

if TYPE_CHECKING:
    from backends import LocalPostgres, PostgresBackend

pytest_plugins = ["backends"]

TESTS_DIR = Path(__file__).resolve().parent
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY_SEED = bytes(range(32, 64))
KEY = SigningKey.from_seed("faults.exoarmur/log", KEY_SEED)


def draft(n: int, tenant: str = "acme", event_id: str | None = None) -> EventDraft:
    return EventDraft(
        event_id=event_id or f"ev-{tenant}-{n}",
        tenant=tenant,
        type="test.event",
        correlation_id=f"corr-{n % 3}",
        event_time=T0,
        process_time=T0,
        actor={"id": "tester", "kind": "system"},
        payload={"n": n},
    )


#: how much longer than on an idle machine a wait for progress may take: on a
#: loaded two-core machine work is slower, never wrong; only a hang should fail
PATIENCE = 4


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def db(private_postgres: LocalPostgres) -> Iterator[PostgresBackend]:
    with private_postgres.database() as made:
        yield made


def verified(store: LedgerStore, tenant: str = "acme") -> None:
    events = list(store.events(tenant))
    assert [e.seq for e in events] == list(range(store.size(tenant)))
    ledger = Ledger(store, KEY)
    ledger.checkpoint(tenant)
    verification = ledger.verify(tenant)
    assert verification.ok, verification.problems


# -- schema and migrations -----------------------------------------------------


def applied(server: LocalPostgres, database: str) -> list[tuple[object, ...]]:
    return server.execute(database, "SELECT version, name FROM schema_migrations ORDER BY 1")


def test_a_store_creates_the_schema_of_an_empty_database(db: PostgresBackend) -> None:
    db.open().close()
    assert applied(db.server, db.database) == [(1, "0001_ledger")]
    assert upgrade(db.spec) == []  # nothing left to do


def test_upgrade_applies_each_migration_once_even_when_raced(db: PostgresBackend) -> None:
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        results.append(upgrade(db.spec))

    pool = [threading.Thread(target=run) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert sorted(results) == [[], [], [], ["0001_ledger"]]
    assert applied(db.server, db.database) == [(1, "0001_ledger")]


def test_an_outdated_schema_is_refused_until_upgraded(
    db: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.open().close()
    later = Migration(2, "0002_test_extra", ("CREATE TABLE test_extra (x integer)",))
    monkeypatch.setattr(postgres, "MIGRATIONS", (*postgres.MIGRATIONS, later))
    with pytest.raises(StoreUnavailable, match=r"outdated ledger schema.*exoarmur db upgrade"):
        PostgresStore(db.spec)
    assert upgrade(db.spec) == ["0002_test_extra"]
    store = db.open()
    store.append("acme", [draft(0)])
    assert store.size("acme") == 1


def test_a_newer_schema_is_refused(db: PostgresBackend) -> None:
    db.open().close()
    db.server.execute(
        db.database, "INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future')"
    )
    with pytest.raises(StoreUnavailable, match=r"migration 99 \(0099_future\), newer.*upgrade"):
        PostgresStore(db.spec)
    with pytest.raises(StoreUnavailable, match="newer than this ExoArmur knows"):
        upgrade(db.spec)


def test_a_database_used_by_something_else_is_refused(db: PostgresBackend) -> None:
    db.server.execute(db.database, "CREATE TABLE events (x integer)")
    with pytest.raises(StoreUnavailable, match="tables ExoArmur did not create"):
        PostgresStore(db.spec)
    with pytest.raises(StoreUnavailable, match="tables ExoArmur did not create"):
        upgrade(db.spec)
    # and the failed attempt left nothing half-made behind
    assert db.server.execute(db.database, "SELECT to_regclass('schema_migrations')") == [(None,)]


def test_a_malformed_dsn_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a PostgreSQL connection string"):
        PostgresStore("postgresql://host:notaport/x?bogus=1")
    with pytest.raises(ConfigError):
        upgrade("no such=thing=")


def test_an_unreachable_server_fails_fast_and_hides_the_password() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"postgresql://postgres:s3cret-pw@127.0.0.1:{port}/ledger"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"cannot connect to PostgreSQL at 127.0.0.1:{port}"):
        PostgresStore(dsn)
    with pytest.raises(StoreUnavailable) as caught:
        upgrade(dsn)
    assert "s3cret-pw" not in str(caught.value)
    assert time.monotonic() - started < 5


def test_sessions_never_commit_weaker_than_synchronous_commit_on(db: PostgresBackend) -> None:
    db.server.execute(db.database, f'ALTER DATABASE "{db.database}" SET synchronous_commit = off')
    store = PostgresStore(db.spec)
    try:
        for link in (store._write_link, store._read_link):
            conn, _ = link.get()
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    finally:
        store.close()


# -- refusals inside the database --------------------------------------------------


def test_a_value_postgres_cannot_store_refuses_only_its_append(db: PostgresBackend) -> None:
    store = db.open()
    results: dict[int, int | StoreError] = {}
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        barrier.wait()
        bad = n == 2
        try:
            event_id = "nul\x00byte" if bad else None
            results[n] = store.append("acme", [draft(n, event_id=event_id)])[0].seq
        except StoreError as exc:
            results[n] = exc

    pool = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert isinstance(results.pop(2), StoreError)
    assert sorted(seq for seq in results.values() if isinstance(seq, int)) == [0, 1, 2]
    with pytest.raises(StoreError, match="cannot store"):
        store.append("acme", [draft(9, event_id="nul\x00byte")])
    with pytest.raises(StoreError, match="NUL character"):
        store.append("a\x00b", [draft(9, tenant="a\x00b")])
    verified(store)


def test_a_batch_the_database_refuses_fails_whole_and_the_store_goes_on(
    db: PostgresBackend,
) -> None:
    store = db.open()
    store.append("acme", [draft(0)])
    db.server.execute(db.database, "ALTER TABLE trees ADD CONSTRAINT tiny CHECK (size < 4)")
    store.append("acme", [draft(1), draft(2)])
    with pytest.raises(StoreError, match=r"ledger append failed.*tiny") as caught:
        store.append("acme", [draft(3)])
    assert not isinstance(caught.value, StoreUnavailable)
    assert store.size("acme") == 3
    db.server.execute(db.database, "ALTER TABLE trees DROP CONSTRAINT tiny")
    assert store.append("acme", [draft(3)])[0].seq == 3
    db.server.execute(db.database, "DROP TABLE checkpoints")
    with pytest.raises(StoreError, match="ledger read failed"):
        store.latest_checkpoint("acme")
    assert store.size("acme") == 4


def keyed(n: int) -> EventDraft:
    """An intent's first event, with its key, as intake appends it."""
    return dataclasses.replace(draft(n), intent_id=f"i-{n}", idempotency_key=f"k-{n}")


@contextlib.contextmanager
def writer_held(db: PostgresBackend, tenant: str = "acme") -> Iterator[None]:
    """Hold ``tenant``'s append lock from outside until the store's writer waits for it.

    Appends submitted meanwhile queue behind the writer's first batch, so that
    they reach the writer together when the block ends.
    """
    import psycopg

    with psycopg.connect(db.spec) as blocker:
        blocker.execute("SELECT size FROM trees WHERE tenant = %s FOR UPDATE", (tenant,))
        yield
        wait_until(
            lambda: (
                db.server.execute(
                    db.database,
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND wait_event_type = 'Lock'",
                    db.database,
                )
                == [(1,)]
            ),
            10,
            "the writer to wait for the tree lock",
        )
        blocker.rollback()


def test_a_batch_takes_four_statements_whatever_its_size(db: PostgresBackend) -> None:
    store = db.open()
    store.append("acme", [draft(0)])
    conn, _ = store._write_link.get()
    statements: list[str] = []
    execute = conn.execute

    def counted(query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query)[:30])
        return execute(query, *args, **kwargs)

    conn.execute = counted  # type: ignore[method-assign]
    commits: list[int] = []
    store.observe_commits(commits.append)
    appends = 12
    pool = []
    with writer_held(db):
        for n in range(1, appends + 1):
            expect = {"expect": (f"i-{n}", -1)}
            pool.append(
                threading.Thread(target=store.append, args=("acme", [keyed(n)]), kwargs=expect)
            )
            pool[-1].start()
    for thread in pool:
        thread.join()
    assert sum(commits) == appends
    # the tree lock, the keys, the expectations, every row: per batch, not per append
    assert len(statements) == 4 * len(commits), statements
    assert store.size("acme") == appends + 1
    verified(store)


#: what only the database refuses, by the part of an append that carries it
REFUSED_ROWS = {
    "a recorded event id": (
        lambda n: draft(n, event_id="ev-acme-0"),
        "already recorded",
    ),
    "a NUL in an idempotency key": (
        lambda n: dataclasses.replace(keyed(n), idempotency_key="k\x00"),
        "cannot store",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED_ROWS))
def test_a_row_the_database_refuses_in_a_batch_refuses_its_append_alone(
    db: PostgresBackend, case: str
) -> None:
    store = db.open()
    store.append("acme", [draft(0)])
    refused_draft, reason = REFUSED_ROWS[case]
    results: dict[int, int | StoreError] = {}

    def work(n: int) -> None:
        event = refused_draft(n) if n == 3 else keyed(n)
        try:
            results[n] = store.append("acme", [event])[0].seq
        except StoreError as exc:
            results[n] = exc

    pool = [threading.Thread(target=work, args=(n,)) for n in range(1, 7)]
    with writer_held(db):
        for thread in pool:
            thread.start()
    for thread in pool:
        thread.join()
    refused = results.pop(3)
    assert isinstance(refused, StoreError)
    assert reason in str(refused)
    assert sorted(seq for seq in results.values() if isinstance(seq, int)) == [1, 2, 3, 4, 5]
    verified(store)


def test_a_tree_row_deleted_behind_the_store_fails_its_appends_closed(
    db: PostgresBackend,
) -> None:
    store = db.open()
    store.append("acme", [draft(0)])
    db.server.execute(db.database, "DELETE FROM trees WHERE tenant = 'acme'")
    with pytest.raises(StoreError, match="no row to lock"):
        store.append("acme", [draft(1)])
    # created again at size 0: position 0 is taken, so nothing is written over it
    with pytest.raises(StoreError, match="refused by constraint events_pkey"):
        store.append("acme", [draft(1)])
    assert store.integrity_check() == "tenant 'acme': tree size 0, 1 events up to seq 0"


def test_missing_tree_nodes_fail_the_append_not_the_store(db: PostgresBackend) -> None:
    store = db.open()
    store.append("acme", [draft(n) for n in range(4)])
    db.server.execute(db.database, "DELETE FROM nodes WHERE level = 2")
    fresh = db.open()  # no cached frontier: it must read the nodes
    with pytest.raises(StoreError, match=r"ledger append failed.*no hash for tree node"):
        fresh.append("acme", [draft(4)])
    assert fresh.size("acme") == 4


def test_the_integrity_check_finds_a_log_that_lost_an_event(db: PostgresBackend) -> None:
    store = db.adopt(PostgresStore(db.spec))
    store.append("acme", [draft(n) for n in range(3)])
    store.append("globex", [draft(0, tenant="globex")])
    assert store.integrity_check() == "ok"
    db.server.execute(db.database, "DELETE FROM events WHERE tenant = 'acme' AND seq = 1")
    assert store.integrity_check() == "tenant 'acme': tree size 3, 2 events up to seq 2"


def _wait_until_no_advisory_lock(dsn: str, attempts: int = 2400) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(attempts):
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("closed sessions still hold the run lock")


def test_the_run_lock_lets_one_governor_recover_across_machines(db: PostgresBackend) -> None:
    first, second, third, last = (RunLock(db.spec) for _ in range(4))
    try:
        assert first.acquire()  # alone: may recover
        seen: list[bool] = []
        waiting = threading.Thread(target=lambda: seen.append(second.acquire()))
        waiting.start()
        time.sleep(0.3)
        assert seen == []  # a starting governor waits while the first one recovers
        first.share()
        waiting.join(timeout=120)  # a generous bound: only a hung server reaches it
        assert seen == [False]
        assert not third.acquire()  # others run: not alone, may not recover
        for lock in (first, second, third):
            lock.release()  # the lock ends with its session
        # The server drops a closed session's locks when its backend has ended, a
        # moment after the client closed: wait for that, not for a time.
        _wait_until_no_advisory_lock(db.spec)
        assert last.acquire()
    finally:
        for lock in (first, second, third, last):
            lock.release()
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        RunLock("postgresql://postgres@127.0.0.1:1/x").acquire()


def test_a_closed_store_refuses_reads_and_writes(db: PostgresBackend) -> None:
    store = PostgresStore(db.spec)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append("acme", [draft(0)])
    with pytest.raises(StoreError, match="closed"):
        store.size("acme")
    assert store.append("acme", []) == []


# -- the server killed -----------------------------------------------------------


def test_a_server_restart_between_calls_goes_unnoticed(
    private_postgres: LocalPostgres, db: PostgresBackend
) -> None:
    with PostgresStore(db.spec) as store:
        store.append("acme", [draft(0)])
        assert store.size("acme") == 1
        private_postgres.kill()
        private_postgres.start()
        # Both connections died while idle; nothing was in flight, so the
        # first call after the restart simply goes through on a new one.
        assert store.size("acme") == 1
        assert store.append("acme", [draft(1)])[0].seq == 1
        verified(store)


def test_an_outage_fails_each_call_at_once(
    private_postgres: LocalPostgres, db: PostgresBackend
) -> None:
    store = db.adopt(PostgresStore(db.spec, reconnect_backoff=(5.0, 5.0)))
    store.append("acme", [draft(0)])
    assert store.size("acme") == 1
    private_postgres.kill()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="cannot connect to"):
            store.size("acme")
        with pytest.raises(StoreUnavailable, match=r"is unreachable .*next attempt in [45]\.\ds"):
            store.size("acme")  # within the pause: no attempt at all
        with pytest.raises(StoreUnavailable, match="cannot connect to"):
            store.append("acme", [draft(1)])
        with pytest.raises(StoreUnavailable, match="next attempt in"):
            store.append("acme", [draft(1)])
        assert time.monotonic() - started < 2
    finally:
        private_postgres.start()


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_append(
    private_postgres: LocalPostgres, db: PostgresBackend
) -> None:
    server = private_postgres
    store = db.adopt(PostgresStore(db.spec, connect_timeout=2, reconnect_backoff=(0.02, 0.5)))
    acked: dict[str, int] = {}
    attempted: list[str] = []
    failures: list[tuple[float, BaseException]] = []
    stop = threading.Event()

    def stream(name: str) -> None:
        n = 0
        while not stop.is_set():
            one = draft(n, event_id=f"{name}-{n}")
            n += 1
            attempted.append(one.event_id)
            started = time.monotonic()
            try:
                (event,) = store.append("acme", [one])
            except StoreError as exc:
                failures.append((time.monotonic() - started, exc))
                time.sleep(0.005)
            else:
                acked[one.event_id] = event.seq

    # Three appenders, so that the kill lands on group-committed batches too.
    writers = [threading.Thread(target=stream, args=(f"w{t}",)) for t in range(3)]
    for writer in writers:
        writer.start()
    try:
        wait_until(lambda: len(acked) >= 600, 30, "600 appends before the kill")
        server.kill()
        at_kill = len(acked)
        wait_until(lambda: len(failures) >= 30, 30, "appends to fail during the outage")
        time.sleep(0.3)  # an outage of a while: every call in it fails, none succeeds
        # (the appends in flight as the kill landed may have been acknowledged)
        assert len(acked) <= at_kill + len(writers)
        during_outage = len(failures)
        with pytest.raises(StoreUnavailable):
            store.size("acme")  # reads fail fast too
        server.start()
        wait_until(lambda: len(acked) >= at_kill + 600, 30, "the same store to go on")
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
    assert not any(writer.is_alive() for writer in writers)

    assert during_outage >= 30
    slowest = max(took for took, _ in failures)
    assert slowest < 3.0, f"an append took {slowest:.1f}s to fail: not fast"
    assert all(isinstance(exc, StoreUnavailable) for _, exc in failures)
    messages = {str(exc) for _, exc in failures}
    kinds = ("lost the connection", "cannot connect to", "is unreachable")
    assert all(any(kind in m for kind in kinds) for m in messages), messages
    assert all("PostgreSQL at 127.0.0.1" in m for m in messages)
    assert any("next attempt in" in m for m in messages)  # the backoff is said, not hidden

    stored = Counter(e.event_id for e in store.events("acme"))
    assert max(stored.values()) == 1
    for event_id, seq in acked.items():
        found = store.event_by_id("acme", event_id)
        assert found is not None, f"acknowledged {event_id} lost"
        assert found.seq == seq
    assert set(stored) <= set(attempted)
    verified(store)


# -- an ExoArmur process killed ------------------------------------------------------

SUBMITTER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from exoarmur.clock import SystemClock
    from exoarmur.executors import EchoExecutor, ExecutorRegistry
    from exoarmur.ids import RandomIds
    from exoarmur.ledger.keys import SigningKey
    from exoarmur.ledger.log import Ledger
    from exoarmur.ledger.postgres import PostgresStore
    from exoarmur.pipeline import Governor
    from exoarmur.policy import PolicyBundle, PolicyEngine
    from samples import POLICY

    dsn, seed, name, keys, rounds = sys.argv[2:7]
    key = SigningKey.from_seed("faults.exoarmur/log", bytes.fromhex(seed))
    executors = ExecutorRegistry()
    executors.bind("demo.*", EchoExecutor())
    governor = Governor(
        ledger=Ledger(PostgresStore(dsn), key),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=SystemClock(),
        ids=RandomIds(),
    )
    n = 0
    while keys == "endless" or n < int(keys):
        ikey = f"{name}-{n}" if keys == "endless" else f"k-{n}"
        for _ in range(int(rounds)):
            outcome = governor.submit({
                "tenant": "acme",
                "actor": {"id": "agent-1", "kind": "agent"},
                "action": "demo.write" if n % 2 else "inventory.lookup",
                "target": f"item/{n}",
                "safety_class": "A0" if n % 3 else "A2",
                "idempotency_key": ikey,
            })
            status = outcome.status.value
            print("ACK", ikey, outcome.intent_id, status, int(outcome.duplicate), flush=True)
        n += 1
    governor.close()
    """
)


def submitter(dsn: str, name: str, keys: str, rounds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            SUBMITTER,
            str(TESTS_DIR),
            dsn,
            KEY_SEED.hex(),
            name,
            keys,
            str(rounds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def governor_on(dsn: str) -> Governor:
    executors = ExecutorRegistry()
    executors.bind("demo.*", EchoExecutor())
    return Governor(
        ledger=Ledger(PostgresStore(dsn), KEY),
        policy=PolicyEngine(PolicyBundle.from_text(POLICY)),
        executors=executors,
        clock=SystemClock(),
        ids=RandomIds(),
    )


def acks(line: str) -> tuple[str, str, str, bool]:
    tag, key, intent_id, status, duplicate = line.split()
    assert tag == "ACK"
    return key, intent_id, status, duplicate == "1"


def assert_each_intent_once(governor: Governor) -> Counter[tuple[str, str]]:
    per_intent = Counter(
        (e.intent_id, e.type) for e in governor.ledger.store.events("acme") if e.intent_id
    )
    for intent_id in {i for i, _ in per_intent}:
        assert per_intent[(intent_id, "intent.recorded")] == 1
        assert per_intent[(intent_id, "decision.recorded")] == 1
        assert per_intent[(intent_id, "execution.started")] <= 1
        finished = (
            per_intent[(intent_id, "execution.finished")]
            + per_intent[(intent_id, "execution.outcome_unknown")]
        )
        assert finished == per_intent[(intent_id, "execution.started")]
    return per_intent


@pytest.mark.slow
def test_a_killed_exoarmur_process_loses_no_acknowledged_intent(db: PostgresBackend) -> None:
    children = [submitter(db.spec, f"c{c}", "endless", 1) for c in range(2)]
    acked: dict[str, tuple[str, str]] = {}
    lock = threading.Lock()

    def read(child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        for line in whole_lines(child.stdout):  # the kill may cut the last one short
            key, intent_id, status, _ = acks(line)
            with lock:
                acked[key] = (intent_id, status)

    readers = [threading.Thread(target=read, args=(child,)) for child in children]
    for reader in readers:
        reader.start()
    try:
        # A child that died on its own ends the wait at once, not after the timeout.
        wait_until(
            lambda: len(acked) >= 2000 or any(child.poll() is not None for child in children),
            60,
            "2000 acknowledged intents",
        )
        assert all(child.poll() is None for child in children), "a submitter exited by itself"
    finally:
        for child in children:
            child.kill()  # SIGKILL, mid-stream
            child.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=30)
        for child in children:
            assert child.stdout is not None
            child.stdout.close()
    assert all(child.returncode == -9 for child in children)

    with governor_on(db.spec) as governor:  # "restart"
        governor.recover()  # an execution cut short becomes outcome_unknown
        assert governor.ledger.store.unfinished_executions("acme") == []
        for key, (intent_id, status) in acked.items():
            assert (
                governor.ledger.store.intent_for_key("acme", intent_key("agent-1", key))
                == intent_id
            )
            assert governor.outcome("acme", intent_id).status.value == status
        per_intent = assert_each_intent_once(governor)
        assert len({i for i, _ in per_intent}) >= len(acked)
        verified(governor.ledger.store)


@pytest.mark.slow
def test_every_submission_twice_across_a_restart_doubles_no_count(
    private_postgres: LocalPostgres, db: PostgresBackend
) -> None:
    intents = 150
    # Two processes deliver the same intents at once, each of them twice.
    children = [submitter(db.spec, f"d{c}", str(intents), 2) for c in range(2)]
    first: dict[str, set[str]] = {}
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0
        for line in out.splitlines():
            key, intent_id, _, _ = acks(line)
            first.setdefault(key, set()).add(intent_id)
    assert len(first) == intents
    assert all(len(ids) == 1 for ids in first.values()), "one key, two intents"
    store = PostgresStore(db.spec)
    size = store.size("acme")
    recorded = Counter(e.type for e in store.events("acme"))
    store.close()
    assert recorded["intent.recorded"] == intents

    private_postgres.kill()  # and the delivery after the crash is a duplicate too
    private_postgres.start()
    with governor_on(db.spec) as governor:
        for n in range(intents):
            outcome = governor.submit(
                {
                    "tenant": "acme",
                    "actor": {"id": "agent-1", "kind": "agent"},
                    "action": "demo.write" if n % 2 else "inventory.lookup",
                    "target": f"item/{n}",
                    "safety_class": "A0" if n % 3 else "A2",
                    "idempotency_key": f"k-{n}",
                }
            )
            assert outcome.duplicate
            assert {outcome.intent_id} == first[f"k-{n}"]
        after = governor.ledger.store
        assert after.size("acme") == size
        assert Counter(e.type for e in after.events("acme")) == recorded
        assert_each_intent_once(governor)
        executed = sum(1 for n in range(intents) if n % 2 and n % 3)
        assert recorded["execution.finished"] == executed
        verified(after)
